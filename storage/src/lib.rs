//! SQLite and Postgres [`ExecutionStore`]s for `mscribe-scheduler`, their
//! schema migrations, and database health probes.
//!
//! ```
//! use chrono::Utc;
//! use mscribe_scheduler::{AttemptStart, ExecutionEvent, ExecutionId, FireKind};
//! use mscribe_scheduler::{ExecutionStatus, ExecutionStore, HistoryQuery};
//! use mscribe_storage::SqliteStore;
//!
//! # futures::executor::block_on(async {
//! // A file would be `SqliteStore::open("mscribe.db")`; any runtime works.
//! let store = SqliteStore::open_memory().await?;
//! let now = Utc::now();
//! store
//!     .write(&[ExecutionEvent::Started(AttemptStart {
//!         job_id: "backup".into(),
//!         execution_id: ExecutionId::from_u128(1),
//!         attempt: 1,
//!         scheduled_at: now,
//!         started_at: now,
//!         instance_id: "host-a".into(),
//!         kind: FireKind::Schedule,
//!         fence: None,
//!     })])
//!     .await?;
//! let runs = store.history(&HistoryQuery::new("backup", 10)).await?;
//! assert_eq!(runs[0].status, ExecutionStatus::Running);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! - [`SqliteStore`] (feature `sqlite`): rusqlite with bundled SQLite, WAL,
//!   writes batched in transactions on one dedicated thread, reads on a few
//!   reader threads; no async runtime required.
//! - [`PostgresStore`] (feature `postgres`): an sqlx pool, multi-row
//!   `UNNEST` inserts, row-level security and SQL helpers for other
//!   services; needs tokio.
//!
//! Both apply their embedded [migrations](migrate) when opened (every table
//! comes from them), and behave like the engine's `MemoryStore` (one
//! conformance suite runs against all three). Writes are idempotent; a store
//! reports failures promptly and leaves buffering and retrying to the
//! engine. See `storage/README.md`.
//!
//! Beside the executions, both keep the hourly job metrics
//! ([`HourlyMetricsStore`]: the rows a rollup reads and writes), so that an
//! application such as `mscribe-server` holds no SQL of its own.
//!
//! And the control plane's state, shared by every instance on one database
//! ([`ControlStore`]: job definitions, pause state, manual triggers, cancel
//! requests and the audit log; on Postgres each change is announced with
//! `NOTIFY`, which a [`ControlListener`] receives).
//!
//! And the alerts' outbox ([`AlertStore`]: webhook deliveries enqueued once
//! per cluster by a unique key, each job's run of failures, and the lease
//! that lets one instance at a time check and deliver).
//!
//! The two backends have the same shape, file for file (`open.rs`,
//! `worker.rs`, `sql.rs`, `time.rs`, `migrate.rs`, `error.rs`, `store.rs`,
//! `hourly.rs`, `control.rs`, `alerts.rs`, `probe.rs`); what differs in encoding values is
//! `codec::Dialect`.
#![cfg_attr(docsrs, feature(doc_cfg))]
// With no backend feature only the shared pieces remain, unused.
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]

mod alerts;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod codec;
mod control;
mod error;
mod hourly;
pub mod migrate;
mod probe;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use alerts::{
    AlertDelivery, AlertQuery, AlertStore, AttemptOutcome, DeliveryAttempt, MAX_ALERT_LIMIT,
    NewAlert, Streak,
};
pub use control::{
    AuditAction, AuditEntry, AuditQuery, AuditRecord, BackfillLock, BackfillLockOutcome,
    CancelRequest, ControlStore, JobDefinition, MAX_AUDIT_LIMIT, MAX_NOTE_CHARS, MAX_TAKE,
    NOTIFY_CHANNEL, NewCancel, NewTrigger, PauseChange, PauseState, Source, TRIGGER_RETAKE_AFTER,
    TRIGGER_RETAKE_WINDOW, TriggerRequest,
};
pub use error::{Error, Result};
pub use hourly::{AttemptRow, HourlyMetricsStore, HourlyRow};
pub use probe::{DEFAULT_PROBE_TIMEOUT, DbCheck};

#[cfg(feature = "postgres")]
pub use postgres::{ControlListener, PostgresOptions, PostgresProbe, PostgresStore};
#[cfg(feature = "sqlite")]
pub use sqlite::{
    DEFAULT_SQLITE_PATH, SqliteOptions, SqliteProbe, SqliteStore, Synchronous,
    ts_text as sqlite_ts_text, verify_sqlite_file,
};

/// The rusqlite crate this store is built on (for raw access in tools and tests).
#[cfg(feature = "sqlite")]
pub use rusqlite;
/// The sqlx crate this store is built on (for raw access in tools and tests).
#[cfg(feature = "postgres")]
pub use sqlx;

#[doc(no_inline)]
pub use mscribe_scheduler::{ExecutionStore, StoreError};
