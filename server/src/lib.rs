//! mscribe-server: the `mscribe` binary's library. A warp HTTP server (health
//! check, jobs API, Prometheus metrics) around an `mscribe-scheduler`
//! scheduler that records to SQLite or Postgres (`mscribe-storage`), and the
//! seven operational jobs as a reusable API ([`ops`]).
//!
//! Embedding the operational jobs in an application of your own (see also
//! `examples/scheduled_jobs.rs`):
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use mscribe_scheduler::{JobScheduler, LocalRuntime, MemoryStore};
//! use mscribe_server::config::{Config, RetentionOptions};
//! use mscribe_server::ops::{HistoryRetention, TempCleanup, job_config};
//!
//! let cfg = Config::default();
//! let rt = LocalRuntime::new();
//! let store = Arc::new(MemoryStore::new());
//! let scheduler = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
//!     .store(store.clone())
//!     .build();
//! scheduler.register(job_config(
//!     "history-retention",
//!     "History retention",
//!     cfg.jobs.common("history-retention").unwrap(),
//!     HistoryRetention::new(store, RetentionOptions::default()),
//! ))?;
//! let tmp = std::env::temp_dir().join("mscribe-doc-example-cache");
//! scheduler.register(job_config(
//!     "temp-cleanup",
//!     "Temp cleanup",
//!     cfg.jobs.common("temp-cleanup").unwrap(),
//!     TempCleanup::new(vec![tmp], Duration::from_secs(7 * 86_400), true),
//! ))?;
//! assert_eq!(scheduler.jobs().len(), 2);
//! # Ok::<(), mscribe_scheduler::Error>(())
//! ```
//!
//! The binary: `mscribe serve`, `migrate`, `jobs`, `history`, `run`,
//! `trigger`, `pause`, `resume`, `cancel`, `audit`, `backfill`, `upcoming`,
//! `health` ([`cli`]; with `--url` they ask a running server).
//! Configuration: [`config`]. Endpoints: [`http`].
//! Pause, resume, trigger and cancel for every instance on one database:
//! [`control`]. The seven jobs, and the kinds `command` and `http` of the
//! jobs of your own (`[jobs.<id>] kind = ...`, [`config::UserJobDef`]), are
//! the rows of one table, [`ops::JOBS`], which registration, the
//! configuration and the command line read.
//! Webhook alerts through an outbox, once per cluster: [`alerts`].
//! Reloading the configuration's jobs and alerts on SIGHUP: [`reload`].
//! OpenTelemetry traces of runs, attempts and API requests (feature
//! `otel`, `[telemetry]`): [`telemetry`].

pub mod alerts;
pub mod app;
pub mod cli;
pub mod config;
pub mod control;
pub mod db;
pub mod health;
pub mod http;
pub mod http_client;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod probe;
pub mod reload;
pub mod telemetry;
pub mod token;
pub mod ui;
