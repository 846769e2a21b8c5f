//! mscribe-scheduler: an embeddable async job scheduler with defined
//! semantics for retries, timeouts, overlap, missed runs and time zones, and
//! a deterministic virtual clock for tests.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use mscribe_scheduler::{
//!     ExecutionStatus, ExecutionStore, HistoryQuery, JobConfig, JobContext, JobResult, JobScheduler, LocalRuntime,
//!     MemoryStore, RetryPolicy,
//! };
//!
//! // A virtual clock and a single-threaded executor: an hour passes in microseconds.
//! let rt = LocalRuntime::new();
//! let store = Arc::new(MemoryStore::new());
//! let scheduler = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
//!     .store(store.clone())
//!     .build();
//!
//! scheduler.register(
//!     JobConfig::new("report", |ctx: JobContext| async move {
//!         Ok::<_, String>(JobResult::ok().with_metric("attempt", f64::from(ctx.attempt)))
//!     })
//!     .name("Quarter-hourly report")
//!     .schedule("*/15 * * * *")
//!     .timeout(Duration::from_secs(60))
//!     .retry(RetryPolicy::exponential(3)),
//! )?;
//!
//! rt.block_on(scheduler.start())?;
//! rt.advance(Duration::from_secs(3600));
//! rt.block_on(scheduler.stop(Duration::from_secs(5)))?;
//!
//! let runs = rt.block_on(store.history(&HistoryQuery::new("report", 10)))?;
//! assert_eq!(runs.len(), 4);
//! assert!(runs.iter().all(|r| r.status == ExecutionStatus::Succeeded));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! In a tokio application, [`JobScheduler::new`] uses the system clock and
//! the current runtime (see `examples/tokio_app.rs`).
//!
//! The parts, one concern each, each with a deterministic implementation in
//! this crate:
//!
//! | trait | real | deterministic |
//! |---|---|---|
//! | [`Clock`] | [`SystemClock`] (feature `tokio`) | [`VirtualClock`] |
//! | [`Spawner`] | [`TokioSpawner`] (feature `tokio`), or any closure via [`FnSpawner`] | [`LocalSpawner`] |
//! | [`ExecutionStore`] | SQLite and Postgres in `mscribe-storage` | [`MemoryStore`] |
//!
//! The semantics of every policy are described in `docs/SEMANTICS.md`.
//!
//! Each run and each attempt is a `tracing` span on the target
//! [`TRACE_TARGET`] (`mscribe::otel`), for an OpenTelemetry layer to
//! export; without a layer that enables that target a run costs one
//! cached check (an atomic load or two).
//!
//! Every public item has one path: the crate root, except the simulation's
//! items under `sim` (feature `sim`). The modules are private.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cancel;
mod clock;
mod error;
mod failure;
mod guard;
mod job;
mod logfmt;
mod policy;
mod recorder;
mod retry;
mod runtime;
mod schedule;
mod scheduler;
mod signal;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
mod store;
mod trace;

pub use cancel::CancellationToken;
#[cfg(feature = "tokio")]
pub use clock::SystemClock;
pub use clock::{Clock, VirtualClock};
pub use error::{Error, Result};
pub use failure::{ErrorKind, JobError, JobResultExt};
pub use job::{FireKey, IntoJobResult, JobConfig, JobContext, JobHandler, JobResult, ScheduleSpec};
pub use policy::{MisfireMode, MisfirePolicy, OverlapPolicy, OverlapScope};
pub use recorder::StoreHealth;
pub use retry::{Jitter, RetryPolicy};
#[cfg(feature = "tokio")]
pub use runtime::TokioSpawner;
pub use runtime::{FnSpawner, LocalRuntime, LocalSpawner, Spawner, external};
pub use schedule::Schedule;
pub use scheduler::{
    BackfillReport, BackfillRequest, BackfillRun, DEFAULT_CLAIM_AHEAD, JobInfo, JobScheduler,
    MAX_BACKFILL_FIRES, MAX_CLAIM_AHEAD, MAX_UPCOMING_FIRES, MIN_LEASE, Observer, Phase,
    PlannedFire, SchedulerBuilder, StopReport, TriggerOutcome,
};
pub use store::{
    AttemptEnd, AttemptStart, BoxError, ClaimOutcome, ExecutionEvent, ExecutionId, ExecutionRecord,
    ExecutionStatus, ExecutionStore, ExpiredLease, FireClaim, FireKind, FireLease, HistoryPosition,
    HistoryQuery, InstanceHeartbeat, MemoryStore, Metrics, ParseExecutionIdError, ParseStatusError,
    PrunePolicy, RetakenFire, SkippedFire, StoreError, StoreResult, abandoned_for_retake,
};
pub use trace::TRACE_TARGET;
