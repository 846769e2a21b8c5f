//! [`PostgresStore`] and its [`ExecutionStore`] impl: each `write` is at
//! most two multi-row statements, whatever the number of events.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::{
    ExecutionEvent, ExecutionRecord, ExecutionStore, FireClaim, HistoryQuery, PrunePolicy,
    StoreError, StoreResult,
};
use sqlx::Row as _;
use sqlx::postgres::{PgPool, PgRow};

use super::sql;
use super::time::{cutoff_param, ts_param};
use super::worker::{timed, write_ops};
use crate::codec::{self, Dialect};

/// An [`ExecutionStore`] in Postgres.
///
/// Opening connects once (so a bad URL, a wrong password or an unreachable
/// server is reported right away), applies the migrations under an advisory
/// lock, then serves everything from a pool. Every operation has a deadline
/// ([`PostgresOptions::operation_timeout`](super::PostgresOptions::operation_timeout)),
/// so while the server is down calls fail promptly as
/// [`StoreError::Unavailable`]; the engine buffers and retries, and writes
/// are idempotent. Cloning shares the pool.
///
/// ```no_run
/// use mscribe_storage::{PostgresOptions, PostgresStore};
///
/// # async fn run() -> mscribe_storage::Result<()> {
/// let store = PostgresStore::connect_with(
///     PostgresOptions::new("postgres://scheduler@db:5432/ops")?.max_connections(4),
/// )
/// .await?;
/// # let _ = store;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pub(super) pool: PgPool,
    pub(super) target: Arc<str>,
    pub(super) operation_timeout: Duration,
    pub(super) maintenance_timeout: Duration,
    pub(super) hostname: Option<Arc<str>>,
}

impl PostgresStore {
    /// The pool, for queries of your own.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// `postgres database NAME at HOST:PORT`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs `fut` with the operation deadline.
    pub(super) async fn op<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> StoreResult<T> {
        timed(&self.target, what, self.operation_timeout, fut).await
    }

    /// Runs `fut` with the maintenance deadline.
    pub(super) async fn maintenance<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> StoreResult<T> {
        timed(&self.target, what, self.maintenance_timeout, fut).await
    }
}

/// Decodes a row of `sql::columns!`.
fn decode_row(row: &PgRow) -> StoreResult<ExecutionRecord> {
    let get = |e: sqlx::Error| StoreError::Corrupt { message: format!("unreadable row: {e}") };
    let execution_id: String = row.try_get("execution_id").map_err(get)?;
    let attempt: i32 = row.try_get("attempt").map_err(get)?;
    let status: String = row.try_get("status").map_err(get)?;
    let duration_ms: Option<i64> = row.try_get("duration_ms").map_err(get)?;
    let result: Option<String> = row.try_get("result").map_err(get)?;
    let metrics: Option<String> = row.try_get("metrics").map_err(get)?;
    let error_kind: Option<String> = row.try_get("error_kind").map_err(get)?;
    Ok(ExecutionRecord {
        job_id: row.try_get("job_id").map_err(get)?,
        execution_id: codec::decode_execution_id(&execution_id)?,
        attempt: codec::decode_u32("attempt", i64::from(attempt))?,
        status: codec::decode_status(&status)?,
        scheduled_at: row.try_get("scheduled_at").map_err(get)?,
        started_at: row.try_get("started_at").map_err(get)?,
        completed_at: row.try_get("completed_at").map_err(get)?,
        duration_ms: duration_ms.map(codec::decode_ms).transpose()?,
        error: row.try_get("error").map_err(get)?,
        error_kind: error_kind.as_deref().map(codec::decode_error_kind).transpose()?,
        result: result.as_deref().map(codec::decode_json).transpose()?,
        metrics: metrics.as_deref().map(codec::decode_metrics).transpose()?,
        instance_id: row.try_get("instance_id").map_err(get)?,
    })
}

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(super) fn rejected(message: String) -> StoreError {
    StoreError::Rejected { message, source: None }
}

#[async_trait]
impl ExecutionStore for PostgresStore {
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()> {
        let (ops, bad) = codec::encode(events, Dialect::Postgres);
        if !ops.is_empty() {
            self.op("write", write_ops(&self.pool, &ops)).await?;
        }
        bad.map_or(Ok(()), Err)
    }

    async fn history(&self, q: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        let limit = limit_i64(q.limit);
        let rows = self
            .op("history", async {
                match q.status {
                    None => {
                        sqlx::query(sql::HISTORY)
                            .bind(&q.job_id)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await
                    }
                    Some(s) => {
                        sqlx::query(sql::HISTORY_BY_STATUS)
                            .bind(&q.job_id)
                            .bind(s.as_str())
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await
                    }
                }
            })
            .await?;
        rows.iter().map(decode_row).collect()
    }

    async fn last_fire(&self, job_id: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.op(
            "last_fire",
            sqlx::query_scalar::<_, Option<DateTime<Utc>>>(sql::LAST_FIRE)
                .bind(job_id)
                .fetch_one(&self.pool),
        )
        .await
    }

    async fn last_fires(&self, job_ids: &[String]) -> StoreResult<HashMap<String, DateTime<Utc>>> {
        let rows = self
            .op(
                "last_fires",
                sqlx::query_as::<_, (String, DateTime<Utc>)>(sql::LAST_FIRES)
                    .bind(job_ids)
                    .fetch_all(&self.pool),
            )
            .await?;
        Ok(rows.into_iter().collect())
    }

    async fn heartbeat(&self, instance_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let now = ts_param("heartbeat time", now).map_err(rejected)?;
        let instance_id = Dialect::Postgres.id("instance id", instance_id).map_err(rejected)?;
        self.op(
            "heartbeat",
            sqlx::query(sql::HEARTBEAT)
                .bind(instance_id)
                .bind(now)
                .bind(self.hostname.as_deref())
                .execute(&self.pool),
        )
        .await
        .map(drop)
    }

    async fn mark_abandoned(
        &self,
        own_instance: &str,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let now = ts_param("now", now).map_err(rejected)?;
        let cutoff = codec::cutoff(now, stale_after);
        // Concurrent sweeps by several instances are safe: the second one
        // waits on the row locks, re-checks `status = 'running'`, and skips.
        let rows = self
            .maintenance(
                "mark_abandoned",
                sqlx::query(sql::MARK_ABANDONED)
                    .bind(own_instance)
                    .bind(now)
                    .bind(cutoff)
                    .fetch_all(&self.pool),
            )
            .await?;
        rows.iter().map(decode_row).collect()
    }

    async fn prune(&self, p: PrunePolicy) -> StoreResult<u64> {
        let older = cutoff_param(p.older_than);
        let failures = p.failures_older_than.map(cutoff_param);
        let rows = self
            .maintenance(
                "prune",
                sqlx::query(sql::PRUNE).bind(older).bind(failures).execute(&self.pool),
            )
            .await?
            .rows_affected();
        self.maintenance(
            "prune",
            sqlx::query(sql::FORGET_SILENT_INSTANCES).bind(older).execute(&self.pool),
        )
        .await?;
        self.maintenance("prune", sqlx::query(sql::PRUNE_CLAIMS).bind(older).execute(&self.pool))
            .await?;
        Ok(rows)
    }

    fn supports_claims(&self) -> bool {
        true
    }

    /// One statement: `INSERT .. ON CONFLICT DO NOTHING RETURNING` of the
    /// whole batch, so every instance's batch is atomic against the others.
    /// The rows go in key order: two batches inserting the same keys in
    /// different orders would wait on each other's uncommitted rows, a
    /// deadlock that Postgres breaks by failing one of them.
    async fn claim_fires(
        &self,
        instance_id: &str,
        fires: &[FireClaim],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<bool>> {
        let now = ts_param("claim time", now).map_err(rejected)?;
        let instance_id = Dialect::Postgres.id("instance id", instance_id).map_err(rejected)?;
        let mut jobs = Vec::with_capacity(fires.len());
        let mut times = Vec::with_capacity(fires.len());
        for f in fires {
            times.push(Dialect::Postgres.check_claim(f).map_err(rejected)?);
            jobs.push(f.job_id.to_string());
        }
        let taken: Vec<(String, DateTime<Utc>)> = self
            .op(
                "claim_fires",
                sqlx::query_as(sql::CLAIM_FIRES)
                    .bind(&jobs)
                    .bind(&times)
                    .bind(instance_id)
                    .bind(now)
                    .fetch_all(&self.pool),
            )
            .await?;
        // A fire listed twice in the batch is taken by its first listing.
        let mut taken: HashSet<(String, DateTime<Utc>)> = taken.into_iter().collect();
        Ok(jobs.into_iter().zip(times).map(|k| taken.remove(&k)).collect())
    }
}
