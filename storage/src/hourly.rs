//! The hourly job metrics kept beside the executions (`job_metrics_hourly`):
//! the rows they are computed from, the rows themselves, and
//! [`HourlyMetricsStore`], which both SQL stores implement.
//!
//! The table comes from the migrations (`0005_job_metrics_hourly.sql` for
//! SQLite, `0007_job_metrics_hourly.sql` for Postgres) like every other;
//! the rollup itself (which attempt counts, the percentiles) is the
//! caller's, e.g. the server's `metrics-aggregation` job.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::ExecutionStatus;
use mscribe_scheduler::StoreResult;

/// One attempt row (or skipped fire), as an hourly rollup reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    /// The job.
    pub job_id: String,
    /// The run, as text (a UUID).
    pub execution_id: String,
    /// The attempt (0 for a skipped fire).
    pub attempt: u32,
    /// Its status.
    pub status: ExecutionStatus,
    /// The nominal fire time.
    pub scheduled_at: DateTime<Utc>,
    /// How long it ran.
    pub duration_ms: Option<u64>,
}

/// One row of `job_metrics_hourly`: a job's runs in one hour.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HourlyRow {
    /// The job.
    pub job_id: String,
    /// The hour (by nominal fire time), UTC.
    pub hour_start: DateTime<Utc>,
    /// Runs that ended (retries count once, by their last attempt).
    pub runs: u64,
    /// Runs whose last attempt succeeded.
    pub successes: u64,
    /// Runs that ended in a failure status.
    pub failures: u64,
    /// Fires recorded as skipped.
    pub skipped: u64,
    /// `successes / runs`, none without runs.
    pub success_rate: Option<f64>,
    /// The median duration of the runs' last attempts.
    pub p50_ms: Option<u64>,
    /// The 95th percentile of the same.
    pub p95_ms: Option<u64>,
}

/// Reads executions for an hourly rollup and keeps its rows in
/// `job_metrics_hourly`. [`SqliteStore`](crate::SqliteStore) runs these on
/// its reader threads (reads) and its writer thread (writes),
/// [`PostgresStore`](crate::PostgresStore) on its pool; both with the
/// store's maintenance deadline.
///
/// Counts are stored as signed 64-bit integers: a count past `i64::MAX` is
/// stored as `i64::MAX`, and a negative one (written by hand) reads as 0.
#[async_trait]
pub trait HourlyMetricsStore: Send + Sync + fmt::Debug {
    /// The execution rows whose nominal fire time (`scheduled_at`) is in
    /// `[from, to)`, in no particular order. Bounds outside the supported
    /// years (1 to 9999) are brought into them.
    async fn attempts_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<AttemptRow>>;

    /// Inserts or replaces `rows` (keyed by job and hour), stamping each
    /// `updated_at = now`, in one transaction: all or none. A row the
    /// database cannot hold (an hour outside the supported years, a job id
    /// with a NUL character for Postgres) fails the call as rejected, and
    /// nothing is written.
    async fn upsert_hourly(&self, rows: &[HourlyRow], now: DateTime<Utc>) -> StoreResult<()>;

    /// The rows of one job, or of every job, by hour then job.
    async fn hourly(&self, job_id: Option<&str>) -> StoreResult<Vec<HourlyRow>>;

    /// Deletes the rows whose hour starts before `before`; returns how many.
    async fn prune_hourly(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// A count as stored, saturating.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn count_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored count; a negative one reads as 0.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn count_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate() {
        assert_eq!(count_i64(u64::MAX), i64::MAX);
        assert_eq!(count_i64(7), 7);
        assert_eq!(count_u64(-3), 0);
        assert_eq!(count_u64(9), 9);
    }
}
