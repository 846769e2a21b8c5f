//! [`PostgresStore`]: an sqlx pool; each `write` is at most two multi-row
//! statements, whatever the number of events.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::store::{
    ExecutionEvent, ExecutionId, ExecutionRecord, ExecutionStore, FireClaim, HistoryQuery,
    PrunePolicy, StoreError, StoreResult,
};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, Row as _};

use super::PostgresOptions;
use super::error::{connect_error, store_error, timeout_error};
use super::migrate::migrate;
use crate::codec::{self, Op, Row};
use crate::error::{Error, Result};
use crate::migrate::POSTGRES_MIGRATIONS;

/// An [`ExecutionStore`] in Postgres.
///
/// Opening connects once (so a bad URL, a wrong password or an unreachable
/// server is reported right away), applies the migrations under an advisory
/// lock, then serves everything from a pool. Every operation has a deadline
/// ([`PostgresOptions::operation_timeout`]), so while the server is down
/// calls fail promptly as [`StoreError::Unavailable`]; the engine buffers
/// and retries, and writes are idempotent. Cloning shares the pool.
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
    pool: PgPool,
    target: Arc<str>,
    operation_timeout: Duration,
    maintenance_timeout: Duration,
    hostname: Option<Arc<str>>,
}

impl PostgresStore {
    /// Connects with default options.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(PostgresOptions::new(url)?).await
    }

    /// Connects, migrates, and builds the pool.
    pub async fn connect_with(opts: PostgresOptions) -> Result<Self> {
        let target = opts.target.clone();
        let mut conn =
            tokio::time::timeout(opts.connect_timeout, PgConnection::connect_with(&opts.connect))
                .await
                .map_err(|_| Error::Connect {
                    target: target.clone(),
                    message: format!("no answer within {:?}", opts.connect_timeout),
                    source: None,
                })?
                .map_err(|e| connect_error(&target, e))?;
        tokio::time::timeout(
            opts.migration_timeout,
            migrate(&mut conn, &target, POSTGRES_MIGRATIONS),
        )
        .await
        .map_err(|_| Error::Connect {
            target: target.clone(),
            message: format!(
                "migrations did not finish within {:?} (waiting for another instance that \
                 holds the migration lock included)",
                opts.migration_timeout
            ),
            source: None,
        })??;
        if let Err(e) = conn.close().await {
            tracing::debug!(error = %e, "closing the migration connection failed");
        }
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections)
            .min_connections(opts.min_connections)
            .acquire_timeout(opts.acquire_timeout)
            .connect_lazy_with(opts.connect.clone());
        Ok(PostgresStore {
            pool,
            target: target.into(),
            operation_timeout: opts.operation_timeout,
            maintenance_timeout: opts.maintenance_timeout,
            hostname: codec::hostname().map(Into::into),
        })
    }

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

    async fn timed<T>(
        &self,
        what: &str,
        limit: Duration,
        fut: impl Future<Output = std::result::Result<T, sqlx::Error>>,
    ) -> StoreResult<T> {
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(store_error(&self.target, what, e)),
            Err(_) => Err(timeout_error(&self.target, what, limit)),
        }
    }

    async fn write_ops(&self, ops: &[Op]) -> std::result::Result<(), sqlx::Error> {
        // The final state of a key after a sequence of "insert or ignore"
        // (start, skip) and "insert or set the end fields" (end) is: the
        // first event's whole row if the key was new, then the last end's
        // end fields. So: one INSERT .. DO NOTHING of each key's first row,
        // then one UPDATE with each key's last end, skipping the keys whose
        // last end is the very row just inserted.
        let mut seen = HashSet::with_capacity(ops.len());
        let mut first: Vec<(usize, &Row)> = Vec::with_capacity(ops.len());
        let mut last_end: HashMap<(ExecutionId, i32), (usize, &Row)> = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            let row = op.row();
            if seen.insert(row.key()) {
                first.push((i, row));
            }
            if let Op::Upsert(r) = op {
                last_end.insert(r.key(), (i, r));
            }
        }
        if last_end.is_empty() {
            // One statement is atomic on its own: no transaction needed.
            insert_rows(&self.pool, first.iter().map(|(_, r)| *r), false).await?;
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        let inserted = insert_rows(&mut *tx, first.iter().map(|(_, r)| *r), true).await?;
        let first_index: HashMap<(ExecutionId, i32), usize> =
            first.iter().map(|(i, r)| (r.key(), *i)).collect();
        let mut updates: Vec<(usize, &Row)> = last_end
            .into_iter()
            .filter(|(key, (i, _))| !(inserted.contains(key) && first_index.get(key) == Some(i)))
            .map(|(_, v)| v)
            .collect();
        if !updates.is_empty() {
            updates.sort_by_key(|(i, _)| *i);
            update_ends(&mut tx, updates.iter().map(|(_, r)| *r)).await?;
        }
        tx.commit().await
    }
}

const INSERT_ROWS: &str = "INSERT INTO scheduled_job_executions
    (job_id, execution_id, attempt, status, scheduled_at, started_at, completed_at,
     duration_ms, error, error_kind, result, metrics, instance_id)
    SELECT * FROM UNNEST(
        $1::text[], $2::uuid[], $3::int4[], $4::text[], $5::timestamptz[], $6::timestamptz[],
        $7::timestamptz[], $8::int8[], $9::text[], $10::text[], $11::jsonb[], $12::jsonb[],
        $13::text[])
    ON CONFLICT (execution_id, attempt) DO NOTHING";

/// Inserts rows, ignoring existing keys; with `returning`, gives the keys
/// actually inserted.
async fn insert_rows<'e, 'r>(
    exec: impl sqlx::PgExecutor<'e>,
    rows: impl Iterator<Item = &'r Row>,
    returning: bool,
) -> std::result::Result<HashSet<(ExecutionId, i32)>, sqlx::Error> {
    let rows: Vec<&Row> = rows.collect();
    let n = rows.len();
    let mut job_id = Vec::with_capacity(n);
    let mut execution_id = Vec::with_capacity(n);
    let mut attempt = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut scheduled_at = Vec::with_capacity(n);
    let mut started_at = Vec::with_capacity(n);
    let mut completed_at = Vec::with_capacity(n);
    let mut duration_ms = Vec::with_capacity(n);
    let mut error = Vec::with_capacity(n);
    let mut error_kind = Vec::with_capacity(n);
    let mut result = Vec::with_capacity(n);
    let mut metrics = Vec::with_capacity(n);
    let mut instance_id = Vec::with_capacity(n);
    for r in rows {
        job_id.push(r.job_id.as_str());
        execution_id.push(r.execution_id.to_string());
        attempt.push(r.attempt);
        status.push(r.status.as_str());
        scheduled_at.push(r.scheduled_at);
        started_at.push(r.started_at);
        completed_at.push(r.completed_at);
        duration_ms.push(r.duration_ms);
        error.push(r.error.as_deref());
        error_kind.push(r.error_kind);
        result.push(r.result.as_deref());
        metrics.push(r.metrics.as_deref());
        instance_id.push(r.instance_id.as_str());
    }
    let sql = if returning {
        format!("{INSERT_ROWS} RETURNING execution_id::text, attempt")
    } else {
        INSERT_ROWS.to_owned()
    };
    let q = sqlx::query(&sql)
        .bind(job_id)
        .bind(execution_id)
        .bind(attempt)
        .bind(status)
        .bind(scheduled_at)
        .bind(started_at)
        .bind(completed_at)
        .bind(duration_ms)
        .bind(error)
        .bind(error_kind)
        .bind(result)
        .bind(metrics)
        .bind(instance_id);
    if !returning {
        q.execute(exec).await?;
        return Ok(HashSet::new());
    }
    let mut keys = HashSet::new();
    for row in q.fetch_all(exec).await? {
        let id: String = row.try_get(0)?;
        let id = id.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        keys.insert((id, row.try_get::<i32, _>(1)?));
    }
    Ok(keys)
}

const UPDATE_ENDS: &str = "UPDATE scheduled_job_executions AS e
    SET status = v.status, completed_at = v.completed_at, duration_ms = v.duration_ms,
        error = v.error, error_kind = v.error_kind, result = v.result, metrics = v.metrics
    FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::timestamptz[], $5::int8[],
                $6::text[], $7::text[], $8::jsonb[], $9::jsonb[])
         AS v(execution_id, attempt, status, completed_at, duration_ms, error, error_kind,
              result, metrics)
    WHERE e.execution_id = v.execution_id AND e.attempt = v.attempt";

async fn update_ends<'r>(
    conn: &mut PgConnection,
    rows: impl Iterator<Item = &'r Row>,
) -> std::result::Result<(), sqlx::Error> {
    let mut execution_id = Vec::new();
    let mut attempt = Vec::new();
    let mut status = Vec::new();
    let mut completed_at = Vec::new();
    let mut duration_ms = Vec::new();
    let mut error = Vec::new();
    let mut error_kind = Vec::new();
    let mut result = Vec::new();
    let mut metrics = Vec::new();
    for r in rows {
        execution_id.push(r.execution_id.to_string());
        attempt.push(r.attempt);
        status.push(r.status.as_str());
        completed_at.push(r.completed_at);
        duration_ms.push(r.duration_ms);
        error.push(r.error.as_deref());
        error_kind.push(r.error_kind);
        result.push(r.result.as_deref());
        metrics.push(r.metrics.as_deref());
    }
    sqlx::query(UPDATE_ENDS)
        .bind(execution_id)
        .bind(attempt)
        .bind(status)
        .bind(completed_at)
        .bind(duration_ms)
        .bind(error)
        .bind(error_kind)
        .bind(result)
        .bind(metrics)
        .execute(conn)
        .await
        .map(drop)
}

const COLUMNS: &str = "job_id, execution_id::text AS execution_id, attempt, status, scheduled_at,
    started_at, completed_at, duration_ms, error, error_kind, result::text AS result,
    metrics::text AS metrics, instance_id";

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

fn rejected(message: String) -> StoreError {
    StoreError::Rejected { message, source: None }
}

/// Instances silent since before `$1` that own no `running` row (see
/// `ExecutionStore::prune`).
const FORGET_SILENT_INSTANCES: &str = "DELETE FROM scheduler_instances AS i
     WHERE heartbeat_at < $1
       AND NOT EXISTS (SELECT 1 FROM scheduled_job_executions AS e
                       WHERE e.instance_id = i.instance_id AND e.status = 'running')";

#[async_trait]
impl ExecutionStore for PostgresStore {
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()> {
        let (ops, bad) = codec::encode(events, true);
        if !ops.is_empty() {
            self.timed("write", self.operation_timeout, self.write_ops(&ops)).await?;
        }
        bad.map_or(Ok(()), Err)
    }

    async fn history(&self, q: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        let limit = limit_i64(q.limit);
        let rows = self
            .timed("history", self.operation_timeout, async {
                match q.status {
                    None => {
                        sqlx::query(&format!(
                            "SELECT {COLUMNS} FROM scheduled_job_executions WHERE job_id = $1
                             ORDER BY started_at DESC, attempt DESC, execution_id DESC LIMIT $2"
                        ))
                        .bind(&q.job_id)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await
                    }
                    Some(s) => {
                        sqlx::query(&format!(
                            "SELECT {COLUMNS} FROM scheduled_job_executions
                             WHERE job_id = $1 AND status = $2
                             ORDER BY started_at DESC, attempt DESC, execution_id DESC LIMIT $3"
                        ))
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
        self.timed(
            "last_fire",
            self.operation_timeout,
            sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
                "SELECT max(scheduled_at) FROM scheduled_job_executions WHERE job_id = $1",
            )
            .bind(job_id)
            .fetch_one(&self.pool),
        )
        .await
    }

    async fn last_fires(&self, job_ids: &[String]) -> StoreResult<HashMap<String, DateTime<Utc>>> {
        let rows = self
            .timed(
                "last_fires",
                self.operation_timeout,
                sqlx::query_as::<_, (String, DateTime<Utc>)>(
                    "SELECT job_id, max(scheduled_at) FROM scheduled_job_executions
                     WHERE job_id = ANY($1) GROUP BY job_id",
                )
                .bind(job_ids)
                .fetch_all(&self.pool),
            )
            .await?;
        Ok(rows.into_iter().collect())
    }

    async fn heartbeat(&self, instance_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let now = codec::check_ts("heartbeat time", now).map_err(rejected)?;
        if instance_id.contains('\0') {
            return Err(rejected(format!("instance id {instance_id:?} contains a NUL character")));
        }
        self.timed(
            "heartbeat",
            self.operation_timeout,
            sqlx::query(
                "INSERT INTO scheduler_instances (instance_id, heartbeat_at, started_at, hostname)
                 VALUES ($1, $2, $2, $3)
                 ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            )
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
        let now = codec::check_ts("now", now).map_err(rejected)?;
        let cutoff = codec::cutoff(now, stale_after);
        // Concurrent sweeps by several instances are safe: the second one
        // waits on the row locks, re-checks `status = 'running'`, and skips.
        let rows = self
            .timed(
                "mark_abandoned",
                self.maintenance_timeout,
                sqlx::query(&format!(
                    "WITH changed AS (
                         UPDATE scheduled_job_executions AS e
                         SET status = 'abandoned',
                             completed_at = $2,
                             duration_ms = greatest(0, floor(extract(epoch FROM ($2 - e.started_at)) * 1000))::bigint,
                             error = 'instance ' || e.instance_id || ' stopped while the attempt ran'
                         WHERE e.status = 'running' AND e.instance_id <> $1
                           AND NOT EXISTS (
                               SELECT 1 FROM scheduler_instances AS i
                               WHERE i.instance_id = e.instance_id AND i.heartbeat_at >= $3)
                         RETURNING e.*)
                     SELECT {COLUMNS} FROM changed ORDER BY id"
                ))
                .bind(own_instance)
                .bind(now)
                .bind(cutoff)
                .fetch_all(&self.pool),
            )
            .await?;
        rows.iter().map(decode_row).collect()
    }

    async fn prune(&self, p: PrunePolicy) -> StoreResult<u64> {
        let older = codec::clamp_ts(p.older_than);
        let failures = p.failures_older_than.map(codec::clamp_ts);
        let sql = format!(
            "DELETE FROM scheduled_job_executions
             WHERE status <> 'running'
               AND started_at < CASE
                   WHEN $2::timestamptz IS NOT NULL AND status IN {} THEN $2
                   ELSE $1 END",
            codec::FAILURE_STATUSES_SQL
        );
        let rows = self
            .timed(
                "prune",
                self.maintenance_timeout,
                sqlx::query(&sql).bind(older).bind(failures).execute(&self.pool),
            )
            .await?
            .rows_affected();
        self.timed(
            "prune",
            self.maintenance_timeout,
            sqlx::query(FORGET_SILENT_INSTANCES).bind(older).execute(&self.pool),
        )
        .await?;
        self.timed(
            "prune",
            self.maintenance_timeout,
            sqlx::query("DELETE FROM fire_claims WHERE scheduled_at < $1")
                .bind(older)
                .execute(&self.pool),
        )
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
        let now = codec::check_ts("claim time", now).map_err(rejected)?;
        if instance_id.contains('\0') {
            return Err(rejected(format!("instance id {instance_id:?} contains a NUL character")));
        }
        let mut jobs = Vec::with_capacity(fires.len());
        let mut times = Vec::with_capacity(fires.len());
        for f in fires {
            times.push(codec::check_claim(f, true).map_err(rejected)?);
            jobs.push(f.job_id.to_string());
        }
        let taken: Vec<(String, DateTime<Utc>)> = self
            .timed(
                "claim_fires",
                self.operation_timeout,
                sqlx::query_as(
                    "INSERT INTO fire_claims (job_id, scheduled_at, instance_id, claimed_at)
                     SELECT f.job_id, f.scheduled_at, $3, $4
                     FROM UNNEST($1::text[], $2::timestamptz[]) AS f(job_id, scheduled_at)
                     ORDER BY f.job_id, f.scheduled_at
                     ON CONFLICT DO NOTHING
                     RETURNING job_id, scheduled_at",
                )
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
