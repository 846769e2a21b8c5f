//! The claim-path benchmark: several scheduler instances, each its own
//! child process with its own tokio runtime and `PostgresStore` pool, on one
//! fresh Postgres database, all registering the same no-op jobs with
//! `claim_fires(true)`, measured over a window after a warm-up; then the
//! database is read to count every fire of the window exactly once.
//!
//! The parent ([`run`]) creates the database (and migrates it once), spawns
//! the children (`claims child JSON`, [`child_main`]), waits until each has
//! started its scheduler, sends them one window (`t0 t1` in Unix
//! nanoseconds on stdin), samples the CPU of the Postgres backends serving
//! the database over it, collects each child's `RESULT` line, checks the
//! database, and drops it. [`markdown`] writes the report section.
//!
//! A file per role: this one holds the parameters, the results and the
//! parent-child protocol; `parent.rs` runs the benchmark, `child.rs` is one
//! instance, `sample.rs` watches the Postgres backends over the window,
//! `check.rs` counts the window's fires in the database, and `report.rs`
//! writes the section of `docs/BENCHMARKS.md`.
//!
//! Lateness is measured in the handler: the wall clock (`SystemTime`) at
//! its start minus the fire's nominal time (`JobContext::scheduled_at`). A
//! fire counts for the window when its nominal time is in `[t0, t1)`,
//! whenever it starts; it is *on time* when it started within
//! [`ClaimsParams::on_time_ms`] of it.

mod check;
mod child;
mod parent;
mod report;
mod sample;

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

use crate::measure::HistogramSnapshot;
use crate::report::Mode;
use crate::timed_store::CallSnapshot;

pub use check::DbCheck;
pub use child::child_main;
pub use parent::run;
pub use report::{markdown, title, unavailable};
pub use sample::Activity;

/// What one claims run does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimsParams {
    /// Scheduler instances (child processes).
    pub instances: usize,
    /// Jobs each instance registers (the same ids on every instance).
    pub jobs: usize,
    /// Their interval, in milliseconds.
    pub interval_ms: u64,
    /// The measured window, in seconds (whole intervals).
    pub window_s: u64,
    /// How long the instances run before the window, at least, in seconds.
    pub warmup_s: f64,
    /// How long after the window a fire due in it may still start and count.
    pub grace_s: f64,
    /// The claims' lease, in milliseconds (`SchedulerBuilder::lease`).
    pub lease_ms: u64,
    /// The claim affinity's standby delay, in milliseconds
    /// (`SchedulerBuilder::claim_standby`; 0: every instance claims every
    /// fire at once).
    #[serde(default = "default_standby_ms")]
    pub standby_ms: u64,
    /// How long before its instant each fire is claimed, in milliseconds
    /// (`SchedulerBuilder::claim_ahead`; 0: at its instant).
    #[serde(default = "default_ahead_ms")]
    pub ahead_ms: u64,
    /// Each instance's `PostgresStore` pool size.
    pub pool: u32,
    /// Tokio worker threads per instance.
    pub workers: usize,
    /// A fire is on time when it starts within this many milliseconds.
    pub on_time_ms: u64,
    /// Try-out of a store-side change: each instance sends one claim
    /// statement at a time, merging the claims that come meanwhile
    /// ([`TimedStore::coalescing`]). Off in the reported runs.
    #[serde(default)]
    pub coalesce_claims: bool,
    /// Spread the jobs' phases over [`SLOTS`] slots of the interval instead
    /// of every job due at the same instant (profiling: the burst's share
    /// of the lateness). Off in the reported runs.
    #[serde(default)]
    pub staggered: bool,
}

/// The engine's default standby delay.
fn default_standby_ms() -> u64 {
    250
}

/// The engine's default claim-ahead time.
fn default_ahead_ms() -> u64 {
    mscribe_scheduler::DEFAULT_CLAIM_AHEAD.as_millis() as u64
}

/// The slots of the staggered shape.
pub const SLOTS: usize = 100;

impl ClaimsParams {
    /// The parameters of a mode: 3 instances, 10,000 jobs on 1 s, a pool of
    /// 10 (the store's default, as the server uses it), the default 15 s
    /// lease; a 20 s window after 5 s (quick) or 60 s after 10 s (full).
    pub fn for_mode(mode: Mode) -> Self {
        let quick = mode == Mode::Quick;
        ClaimsParams {
            instances: 3,
            jobs: 10_000,
            interval_ms: 1_000,
            window_s: if quick { 20 } else { 60 },
            warmup_s: if quick { 5.0 } else { 10.0 },
            grace_s: 3.0,
            lease_ms: 15_000,
            standby_ms: default_standby_ms(),
            ahead_ms: default_ahead_ms(),
            pool: 10,
            workers: std::thread::available_parallelism().map(usize::from).unwrap_or(2),
            on_time_ms: 100,
            coalesce_claims: false,
            staggered: false,
        }
    }

    /// Fires due in the window, over all jobs.
    pub fn due(&self) -> u64 {
        self.jobs as u64 * self.periods()
    }

    /// Jobs per slot of the staggered shape (all jobs in one slot otherwise).
    fn per_slot(&self) -> usize {
        if self.staggered { self.jobs.div_ceil(SLOTS).max(1) } else { self.jobs.max(1) }
    }

    /// The phase of job `i`, in milliseconds after the interval's grid.
    fn phase_ms(&self, i: usize) -> u64 {
        (i / self.per_slot()) as u64 * self.interval_ms / SLOTS as u64
    }

    fn periods(&self) -> u64 {
        (self.window_s * 1_000 / self.interval_ms.max(1)).max(1)
    }
}

/// What a child is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildParams {
    /// The server's URL (any database on it).
    pub url: String,
    /// The bench database on that server.
    pub database: String,
    /// This instance's number, from 0.
    pub instance: usize,
    /// The run.
    pub params: ClaimsParams,
}

/// What one instance measured.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChildResult {
    /// The instance's number.
    pub instance: usize,
    /// Its `instance_id` in the store.
    pub instance_id: String,
    /// Connecting to the store, in milliseconds.
    pub connect_ms: f64,
    /// Registering the jobs, in milliseconds.
    pub register_ms: f64,
    /// `start()`, in milliseconds.
    pub start_ms: f64,
    /// Handler runs of fires due in the window (whenever they started).
    pub fires_run: u64,
    /// Of those, the ones on time.
    pub on_time: u64,
    /// Of those, the ones that started before their nominal time (counted
    /// as 0 lateness).
    pub early: u64,
    /// Their lateness.
    pub lateness: HistogramSnapshot,
    /// User + system CPU time of the process over the window, in seconds.
    pub cpu_s: f64,
    /// The window as this process measured it, in seconds.
    pub window_s: f64,
    /// The largest `JobScheduler::overdue()` sampled every 50 ms in the
    /// window, in milliseconds: how far behind its timeline the driver was.
    pub max_overdue_ms: f64,
    /// The store calls of the window.
    pub calls: CallSnapshot,
    /// Records written since start, at the end.
    pub written: u64,
    /// Records dropped from a full buffer.
    pub dropped: u64,
    /// Records the store rejected.
    pub rejected: u64,
    /// Records refused for a stale fence.
    pub fenced: u64,
    /// Writes that failed (and were repeated).
    pub failed_writes: u64,
    /// `stop()`, flushing the records, in milliseconds.
    pub stop_ms: f64,
    /// Anything odd.
    pub note: Option<String>,
}

/// Everything one claims run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimsResult {
    /// The run's parameters.
    pub params: ClaimsParams,
    /// The mode it was run in.
    pub mode: Mode,
    /// When it began (UTC, RFC 3339).
    pub started_at: String,
    /// `git rev-parse --short HEAD` at the run, when it could be read.
    pub commit: Option<String>,
    /// The Postgres server's version.
    pub postgres: String,
    /// The window, RFC 3339.
    pub window_from: String,
    /// The window's end (exclusive), RFC 3339.
    pub window_to: String,
    /// `/proc/loadavg` before the run.
    pub load_before: [f64; 3],
    /// `/proc/loadavg` after it.
    pub load_after: [f64; 3],
    /// Each instance.
    pub children: Vec<ChildResult>,
    /// The database's account.
    pub db: Option<DbCheck>,
    /// CPU time of the Postgres backends serving the bench database over
    /// the window, in seconds (the server's own processes, the WAL writer
    /// and checkpointer, are not counted).
    pub pg_backend_cpu_s: Option<f64>,
    /// How many backends those were.
    pub pg_backends: usize,
    /// What those backends were doing, sampled over the window.
    #[serde(default)]
    pub activity: Option<Activity>,
    /// The whole run's wall time, in seconds.
    pub run_s: f64,
    /// Why it was not measured, or anything odd.
    pub note: Option<String>,
}

/// The prefix of a child's result line.
pub const RESULT: &str = "RESULT ";
/// What a child prints once its scheduler runs.
pub const READY: &str = "READY";

/// Connecting to the bench database `database` on the server of `url`.
fn bench_db_options(url: &str, database: &str) -> Result<PgConnectOptions, String> {
    let o = PgConnectOptions::from_str(url).map_err(|e| format!("bad Postgres URL: {e}"))?;
    Ok(o.database(database).application_name("mscribe-bench-claims").disable_statement_logging())
}

/// The wall clock, in Unix nanoseconds.
fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time left until `ns` (Unix nanoseconds), zero once it is past.
fn until(ns: i64) -> Duration {
    Duration::from_nanos(u64::try_from(ns - now_ns()).unwrap_or(0))
}
