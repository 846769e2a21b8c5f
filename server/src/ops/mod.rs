//! The seven operational jobs and the jobs of your own (`command`, `http`),
//! as a library: each is a struct with an async `run_at(now)` that does the
//! work and returns its report as JSON, and, through [`OpsHandler`],
//! implements the engine's [`JobHandler`] so it can be registered in any
//! [`JobScheduler`](mscribe_scheduler::JobScheduler).
//!
//! | id | struct | what it does |
//! |---|---|---|
//! | `history-retention` | [`HistoryRetention`] | prunes execution history, keeping failures longer |
//! | `database-backup` | [`DatabaseBackup`] | SQLite online backup (or `pg_dump`), verified, last N kept |
//! | `log-rotation` | [`LogRotation`] | rotates `*.log` by size or age, gzips, keeps last N |
//! | `temp-cleanup` | [`TempCleanup`] | deletes old files under configured dirs, never following symlinks |
//! | `security-scan` | [`SecurityScan`] | permissions of secrets and the database, token strength |
//! | `metrics-aggregation` | [`MetricsAggregation`] | hourly runs, success rate, p50/p95 per job into `job_metrics_hourly` |
//! | `health-snapshot` | [`HealthSnapshotJob`] | runs the probes, records the result, alerts on unhealthy |
//!
//! The jobs of your own are of two kinds:
//!
//! | kind | struct | what it does |
//! |---|---|---|
//! | `command` | [`CommandJob`] | runs a program (or a `/bin/sh -c` script) in its own process group, records its exit and the end of its output |
//! | `http` | [`HttpJob`] | sends one request, checks the status, records the status and the start of the body |
//!
//! Each built-in job is one row of [`JOBS`] (in `defs.rs`): its id, name,
//! defaults, settings type and constructor; each kind of jobs of your own
//! is one row too. [`ops_jobs`] builds every configured job from a
//! [`crate::config::Config`], as `mscribe serve` does;
//! `examples/scheduled_jobs.rs` shows them in an application of your own.
//!
//! ```
//! use std::time::Duration;
//! use mscribe_server::ops::{TempCleanup, job_config};
//! use mscribe_server::config::Config;
//!
//! let cfg = Config::default();
//! let cleanup = TempCleanup::new(vec!["/tmp/myapp-cache".into()], Duration::from_secs(86_400), true);
//! let job = job_config("temp-cleanup", "Temp cleanup", cfg.jobs.common("temp-cleanup").unwrap(), cleanup);
//! assert_eq!(job.id(), "temp-cleanup");
//! ```

mod backup;
mod cleanup;
mod command;
pub(crate) mod defs;
mod http;
mod logrotate;
mod metrics;
mod retention;
mod security;
mod snapshot;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::{ErrorKind, JobConfig, JobContext, JobError, JobHandler, JobResult};
use serde_json::Value;

pub use backup::{DatabaseBackup, backup_sqlite_file, verify_sqlite_backup};
pub use cleanup::TempCleanup;
pub use command::{CommandJob, parse_env_file, wait_for_group_kills};
pub use defs::{JOBS, JobKind, job_kind};
pub use http::HttpJob;
pub use logrotate::LogRotation;
pub use metrics::{MetricsAggregation, rollup};
pub use retention::HistoryRetention;
pub use security::{Finding, SecurityScan, Severity};
pub use snapshot::HealthSnapshotJob;

use crate::config::{CommonSettings, Config, Secret};
use crate::db::Database;
use crate::health::HealthChecker;

/// What an operational job's run found: its report, and whether it counts
/// as a failure (a failed run keeps its report as result data).
///
/// A failure is transient (retried per the job's `retry` policy: an I/O
/// hiccup, a database briefly unavailable) unless it is marked permanent:
/// a missing program, a configured directory that cannot be used, a
/// setting that turns out invalid when the job runs. No retry fixes those,
/// so the run ends at once ([`ErrorKind::Permanent`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OpsOutcome {
    /// The report, stored as the run's result data.
    pub data: Value,
    /// Numbers worth graphing, stored as the run's metrics.
    pub metrics: Vec<(&'static str, f64)>,
    /// Why the run failed, if it did.
    pub error: Option<String>,
    /// Whether the failure is permanent: the run is not retried. Always
    /// false for a success.
    pub permanent: bool,
}

impl OpsOutcome {
    /// A success.
    pub fn ok(data: Value) -> Self {
        OpsOutcome { data, metrics: Vec::new(), error: None, permanent: false }
    }

    /// A transient failure with its report: retried per the policy.
    pub fn failed(data: Value, error: impl Into<String>) -> Self {
        OpsOutcome { data, metrics: Vec::new(), error: Some(error.into()), permanent: false }
    }

    /// A permanent failure with its report: no retry follows.
    pub fn failed_permanently(data: Value, error: impl Into<String>) -> Self {
        OpsOutcome { permanent: true, ..OpsOutcome::failed(data, error) }
    }

    /// A failure of the kind `error` has, with its report.
    pub fn from_error(data: Value, error: JobError) -> Self {
        OpsOutcome { permanent: error.is_permanent(), ..OpsOutcome::failed(data, error.message()) }
    }

    /// The kind of the failure, `None` for a success.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        match (&self.error, self.permanent) {
            (None, _) => None,
            (Some(_), true) => Some(ErrorKind::Permanent),
            (Some(_), false) => Some(ErrorKind::Transient),
        }
    }

    /// Adds a metric.
    pub fn metric(mut self, name: &'static str, v: f64) -> Self {
        self.metrics.push((name, v));
        self
    }

    /// The engine's result.
    pub fn into_job_result(self) -> JobResult {
        let mut r = match self.error {
            None => JobResult::ok(),
            Some(e) if self.permanent => JobResult::failed_permanently(e),
            Some(e) => JobResult::failed(e),
        }
        .with_data(self.data);
        for (k, v) in self.metrics {
            r = r.with_metric(k, v);
        }
        r
    }
}

/// One operational job: work done at `now`.
#[async_trait]
pub trait OpsJob: Send + Sync + 'static {
    /// Does the work once.
    async fn run_at(&self, now: DateTime<Utc>) -> OpsOutcome;

    /// Does the work once for the attempt `ctx`. The default runs
    /// [`run_at`](Self::run_at) at the scheduler clock's now; a job that
    /// stops when the attempt is cancelled (its token) overrides it.
    async fn run(&self, ctx: &JobContext) -> OpsOutcome {
        self.run_at(ctx.clock().now()).await
    }
}

#[async_trait]
impl OpsJob for Box<dyn OpsJob> {
    async fn run_at(&self, now: DateTime<Utc>) -> OpsOutcome {
        (**self).run_at(now).await
    }

    async fn run(&self, ctx: &JobContext) -> OpsOutcome {
        (**self).run(ctx).await
    }
}

/// Adapts an [`OpsJob`] to the engine: runs it for the attempt
/// ([`OpsJob::run`]) and turns the outcome into a [`JobResult`].
#[derive(Debug)]
pub struct OpsHandler<J>(pub J);

#[async_trait]
impl<J: OpsJob> JobHandler for OpsHandler<J> {
    async fn run(&self, ctx: JobContext) -> JobResult {
        self.0.run(&ctx).await.into_job_result()
    }
}

/// A [`JobConfig`] for `job` with the scheduling settings of a config
/// section. A disabled job is registered paused.
pub fn job_config(
    id: &str,
    name: &str,
    settings: CommonSettings<'_>,
    job: impl OpsJob,
) -> JobConfig {
    let mut cfg = JobConfig::new(id, OpsHandler(job))
        .name(name)
        .schedule(settings.schedule)
        .timeout(settings.timeout)
        .retry(settings.retry.policy())
        .overlap(settings.overlap)
        .overlap_scope(settings.overlap_scope)
        .misfire(settings.misfire.policy())
        .paused(!settings.enabled);
    if let Some(n) = settings.max_concurrent {
        cfg = cfg.max_concurrent(n);
    }
    if let Some(tz) = settings.timezone {
        cfg = cfg.timezone(tz);
    }
    cfg
}

/// What the seven jobs need from the process.
#[derive(Clone)]
pub struct OpsContext {
    /// The configuration.
    pub config: Arc<Config>,
    /// The database.
    pub db: Database,
    /// The health checker (for the health snapshot).
    pub health: Arc<HealthChecker>,
    /// The admin token in use (for the security scan).
    pub admin_token: Option<Secret>,
    /// Called after a log file was renamed, so its writer reopens it.
    pub on_log_rotated: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for OpsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsContext")
            .field("db", &self.db)
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

/// The display name of built-in job `id` ([`JobKind::name`]), `""` for
/// another id.
pub fn job_name(id: &str) -> &'static str {
    job_kind(id).map_or("", |k| k.name)
}

/// Every configured job, from `ctx.config`: the seven built-in ones in the
/// order of [`JOBS`], then the jobs of your own by id
/// ([`JobsConfig::all`](crate::config::JobsConfig::all)).
pub fn ops_jobs(ctx: &OpsContext) -> Vec<JobConfig> {
    ctx.config.jobs.all().iter().filter_map(|j| j.kind.job_config(ctx, j.id)).collect()
}

/// Whether an I/O error on a configured path is one that no retry fixes:
/// the path cannot be used as configured (no permission, a file where a
/// directory belongs or the reverse, a read-only file system, a name the
/// file system refuses). Anything else (a full disk, an interrupted call,
/// a busy resource, ...) may pass next time.
pub(crate) fn io_error_is_permanent(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::PermissionDenied
            | K::NotADirectory
            | K::IsADirectory
            | K::AlreadyExists
            | K::ReadOnlyFilesystem
            | K::InvalidFilename
            | K::InvalidInput
    )
}

/// A [`JobError`] for an I/O error on a configured path: permanent when
/// [`io_error_is_permanent`], else transient.
pub(crate) fn io_job_error(message: impl std::fmt::Display, e: &std::io::Error) -> JobError {
    if io_error_is_permanent(e) {
        JobError::permanent(message)
    } else {
        JobError::transient(message)
    }
}

/// `now - d`, where `d` is the duration setting `setting` (named in the
/// error, e.g. `[jobs.history-retention] keep`). A duration that reaches
/// back past the earliest time there is is an invalid setting, found only
/// when the job runs: a permanent error (instead of the overflow's panic).
pub(crate) fn time_before(
    now: DateTime<Utc>,
    d: std::time::Duration,
    setting: &str,
) -> Result<DateTime<Utc>, JobError> {
    chrono::Duration::from_std(d).ok().and_then(|d| now.checked_sub_signed(d)).ok_or_else(|| {
        JobError::permanent(format!(
            "{setting} = \"{}\" reaches back before the earliest time there is; set a shorter duration",
            humantime::format_duration(d)
        ))
    })
}

/// A UTC timestamp for file names: `20260102T030405.678Z`; sorts in time order.
pub(crate) fn file_stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

/// Parses [`file_stamp`] back.
pub(crate) fn parse_file_stamp(s: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(s.strip_suffix('Z')?, "%Y%m%dT%H%M%S%.3f")
        .ok()
        .map(|n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn file_stamps_round_trip_and_sort() {
        let a = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
            + chrono::Duration::milliseconds(678);
        assert_eq!(file_stamp(a), "20260102T030405.678Z");
        assert_eq!(parse_file_stamp(&file_stamp(a)), Some(a));
        let b = a + chrono::Duration::milliseconds(1);
        assert!(file_stamp(a) < file_stamp(b));
        assert_eq!(parse_file_stamp("nope"), None);
    }
}
