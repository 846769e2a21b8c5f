//! mscribe-scheduler: an embeddable async job scheduler.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cancel;
pub mod clock;
mod error;
pub mod job;
pub mod policy;
pub mod retry;
pub mod runtime;
pub mod schedule;
pub mod store;

pub use cancel::CancellationToken;
#[cfg(feature = "tokio")]
pub use clock::SystemClock;
pub use clock::{Clock, VirtualClock};
pub use error::{Error, Result};
pub use job::{IntoJobResult, JobConfig, JobContext, JobHandler, JobResult, ScheduleSpec};
pub use policy::{MisfireMode, MisfirePlan, MisfirePolicy, OverlapPolicy};
pub use retry::{Jitter, RetryPolicy};
pub use runtime::{LocalRuntime, Spawner};
pub use schedule::Schedule;
pub use store::{
    ExecutionEvent, ExecutionId, ExecutionRecord, ExecutionStatus, ExecutionStore, HistoryQuery,
    MemoryStore, PrunePolicy, StoreError,
};
