//! [`PostgresStore`] and its [`ExecutionStore`] impl: each `write` is at
//! most two multi-row statements, whatever the number of events (and, for
//! events of claimed fires, the fence check in the same transaction); the
//! claims and leases of fires.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::{
    ClaimOutcome, ExecutionEvent, ExecutionId, ExecutionRecord, ExecutionStore, ExpiredLease,
    FireClaim, FireLease, HistoryQuery, InstanceHeartbeat, PrunePolicy, RetakenFire, StoreError,
    StoreResult, abandoned_for_retake,
};
use sqlx::Row as _;
use sqlx::postgres::{PgPool, PgRow};

use super::sql;
use super::time::{cutoff_param, ts_param};
use super::worker::{timed, write_ops};
use crate::codec::{self, Dialect, HistoryBound};

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
    let kind: String = row.try_get("kind").map_err(get)?;
    let fence: Option<i64> = row.try_get("fence").map_err(get)?;
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
        kind: codec::decode_kind(&kind)?,
        fence: fence.map(codec::decode_fence).transpose()?,
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
        let refused = if ops.is_empty() {
            Vec::new()
        } else {
            self.op("write", write_ops(&self.pool, &ops)).await?
        };
        StoreError::write_outcome(events.len(), bad, refused)
    }

    async fn history(&self, q: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        let limit = limit_i64(q.limit);
        let before = match codec::history_bound(q.before) {
            HistoryBound::Nothing => return Ok(Vec::new()),
            HistoryBound::All => None,
            HistoryBound::Before { started_at, attempt, execution_id } => {
                Some((started_at, attempt, execution_id.to_string()))
            }
        };
        let rows = self
            .op("history", async {
                let query = match (q.status, &before) {
                    (None, None) => sqlx::query(sql::HISTORY).bind(&q.job_id),
                    (Some(s), None) => {
                        sqlx::query(sql::HISTORY_BY_STATUS).bind(&q.job_id).bind(s.as_str())
                    }
                    (None, Some((t, a, id))) => {
                        sqlx::query(sql::HISTORY_BEFORE).bind(&q.job_id).bind(t).bind(a).bind(id)
                    }
                    (Some(s), Some((t, a, id))) => sqlx::query(sql::HISTORY_BY_STATUS_BEFORE)
                        .bind(&q.job_id)
                        .bind(s.as_str())
                        .bind(t)
                        .bind(a)
                        .bind(id),
                };
                query.bind(limit).fetch_all(&self.pool).await
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

    async fn last_scheduled_fires(
        &self,
        job_ids: &[String],
    ) -> StoreResult<HashMap<String, DateTime<Utc>>> {
        let rows = self
            .op(
                "last_scheduled_fires",
                sqlx::query_as::<_, (String, DateTime<Utc>)>(sql::LAST_SCHEDULED_FIRES)
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

    async fn attempts(
        &self,
        job_id: &str,
        execution_id: ExecutionId,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let rows = self
            .op(
                "attempts",
                sqlx::query(sql::ATTEMPTS)
                    .bind(job_id)
                    .bind(execution_id.to_string())
                    .fetch_all(&self.pool),
            )
            .await?;
        rows.iter().map(decode_row).collect()
    }

    async fn instances(&self, since: DateTime<Utc>) -> StoreResult<Vec<InstanceHeartbeat>> {
        let rows = self
            .op(
                "instances",
                sqlx::query_as::<_, (String, DateTime<Utc>, DateTime<Utc>, Option<String>)>(
                    sql::INSTANCES,
                )
                .bind(cutoff_param(since))
                .fetch_all(&self.pool),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(instance_id, heartbeat_at, started_at, hostname)| InstanceHeartbeat {
                instance_id,
                heartbeat_at,
                started_at: Some(started_at),
                hostname,
            })
            .collect())
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

    async fn abandon_own(
        &self,
        instance_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let now = ts_param("now", now).map_err(rejected)?;
        let rows = self
            .maintenance(
                "abandon_own",
                sqlx::query(sql::ABANDON_OWN).bind(instance_id).bind(now).fetch_all(&self.pool),
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

    /// Without `max_running`, one statement: `INSERT .. ON CONFLICT DO
    /// NOTHING RETURNING` of the whole batch, so every instance's batch is
    /// atomic against the others. The rows go in key order: two batches
    /// inserting the same keys in different orders would wait on each
    /// other's uncommitted rows, a deadlock that Postgres breaks by failing
    /// one of them. With `max_running`, a transaction: an advisory lock per
    /// such job (so that instances count its live leases one after the
    /// other), one read of the batch's existing claims and the jobs' live
    /// leases, the decisions fire by fire, then the same insert.
    async fn claim_fires(
        &self,
        instance_id: &str,
        fires: &[FireClaim],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimOutcome>> {
        let now = ts_param("claim time", now).map_err(rejected)?;
        let until = codec::lease_until(now, lease);
        let instance_id = Dialect::Postgres.id("instance id", instance_id).map_err(rejected)?;
        let mut keys = Vec::with_capacity(fires.len());
        for f in fires {
            keys.push((f.job_id.to_string(), Dialect::Postgres.check_claim(f).map_err(rejected)?));
        }
        let claim = Claim { instance_id: &instance_id, now, until, fires, keys: &keys };
        if fires.iter().all(|f| f.max_running.is_none()) {
            // A fire listed twice in the batch is taken by its first listing.
            let mut seen = HashSet::with_capacity(keys.len());
            let first: Vec<bool> = keys.iter().map(|k| seen.insert(k)).collect();
            let won = self.op("claim_fires", claim.insert(&self.pool, &first, &[])).await?;
            return Ok(won
                .into_iter()
                .map(|w| if w { ClaimOutcome::Won { fence: 1 } } else { ClaimOutcome::Taken })
                .collect());
        }
        self.op("claim_fires", claim.counted(&self.pool)).await
    }

    /// One statement for the batch, locking the leases in key order.
    async fn renew_leases(
        &self,
        instance_id: &str,
        leases: &[FireLease],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Vec<bool>> {
        let now = ts_param("renewal time", now).map_err(rejected)?;
        let until = codec::lease_until(now, lease);
        let (mut jobs, mut times, mut fences) = (Vec::new(), Vec::new(), Vec::new());
        for l in leases {
            jobs.push(Dialect::Postgres.id("job id", &l.job_id).map_err(rejected)?);
            times.push(ts_param("scheduled_at", l.scheduled_at).map_err(rejected)?);
            fences.push(codec::fence_i64(l.fence).map_err(rejected)?);
        }
        let kept: Vec<(String, DateTime<Utc>, i64)> = self
            .op(
                "renew_leases",
                sqlx::query_as(sql::RENEW_LEASES)
                    .bind(&jobs)
                    .bind(&times)
                    .bind(&fences)
                    .bind(instance_id)
                    .bind(until)
                    .fetch_all(&self.pool),
            )
            .await?;
        let kept: HashSet<(String, DateTime<Utc>, i64)> = kept.into_iter().collect();
        Ok(jobs
            .into_iter()
            .zip(times)
            .zip(fences)
            .map(|((j, t), f)| kept.contains(&(j, t, f)))
            .collect())
    }

    async fn expired_leases(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<ExpiredLease>> {
        type Raw = (String, DateTime<Utc>, Option<String>, i64, String, DateTime<Utc>, String);
        let rows: Vec<Raw> = self
            .op(
                "expired_leases",
                sqlx::query_as(sql::EXPIRED_LEASES)
                    .bind(cutoff_param(now))
                    .bind(limit_i64(limit))
                    .fetch_all(&self.pool),
            )
            .await?;
        rows.into_iter()
            .map(|(job_id, scheduled_at, exec, fence, owner, expired_at, kind)| {
                Ok(ExpiredLease {
                    kind: codec::decode_kind(&kind)?,
                    execution_id: codec::decode_claim_execution_id(&job_id, exec.as_deref())?,
                    fence: codec::decode_fence(fence)?,
                    job_id,
                    scheduled_at,
                    owner,
                    expired_at,
                })
            })
            .collect()
    }

    /// One transaction: `SELECT .. FOR UPDATE` of the claim, checked, then
    /// one statement that takes the claim over and moves the run's rows.
    async fn retake_fire(
        &self,
        instance_id: &str,
        expired: &ExpiredLease,
        new_execution_id: ExecutionId,
        now: DateTime<Utc>,
        lease: Duration,
        rerun: bool,
    ) -> StoreResult<Option<RetakenFire>> {
        let now = ts_param("retake time", now).map_err(rejected)?;
        let until = codec::lease_until(now, lease);
        let taker = Dialect::Postgres.id("instance id", instance_id).map_err(rejected)?;
        let job = Dialect::Postgres.id("job id", &expired.job_id).map_err(rejected)?;
        let at = ts_param("scheduled_at", expired.scheduled_at).map_err(rejected)?;
        let old_fence = codec::fence_i64(expired.fence).map_err(rejected)?;
        let new_fence = expired.fence.checked_add(1).ok_or_else(|| {
            rejected(format!("fence {} of job {job:?} cannot go higher", expired.fence))
        })?;
        let error = Dialect::Postgres.free_text(&abandoned_for_retake(
            &expired.owner,
            &taker,
            new_fence,
            rerun,
        ));
        let retake = async {
            let mut tx = self.pool.begin().await?;
            let claim: Option<(i64, Option<DateTime<Utc>>, bool)> = sqlx::query_as(sql::LOCK_CLAIM)
                .bind(&job)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
            let Some((fence, expires, ended)) = claim else { return Ok(None) };
            if ended || fence != old_fence || expires.is_none_or(|e| e > now) {
                return Ok(None);
            }
            let (fence, last, moved): (Option<i64>, Option<i32>, i64) =
                sqlx::query_as(sql::RETAKE_FIRE)
                    .bind(&job)
                    .bind(at)
                    .bind(&taker)
                    .bind(new_execution_id.to_string())
                    .bind(until)
                    .bind(now)
                    .bind(&error)
                    .bind(expired.execution_id.to_string())
                    .bind(!rerun)
                    .fetch_one(&mut *tx)
                    .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Some((fence, last, moved)))
        };
        let Some((fence, last, moved)) = self.op("retake_fire", retake).await? else {
            return Ok(None);
        };
        let fence = fence.map(codec::decode_fence).transpose()?.ok_or_else(|| {
            StoreError::Corrupt { message: format!("the claim of job {job:?} vanished") }
        })?;
        let last = codec::decode_u32("attempt", i64::from(last.unwrap_or(0)))?;
        Ok(Some(RetakenFire { fence, next_attempt: last + 1, had_rows: moved > 0 }))
    }

    async fn recorded_fires(
        &self,
        job_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        self.op(
            "recorded_fires",
            sqlx::query_scalar(sql::RECORDED_FIRES)
                .bind(job_id)
                .bind(cutoff_param(from))
                .bind(cutoff_param(to))
                .fetch_all(&self.pool),
        )
        .await
    }
}

/// A batch of fires to claim, checked.
struct Claim<'a> {
    instance_id: &'a str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    fires: &'a [FireClaim],
    /// Each fire's `(job_id, scheduled_at)`, as stored.
    keys: &'a [(String, DateTime<Utc>)],
}

impl Claim<'_> {
    /// Inserts the fires marked in `insert` ([`sql::CLAIM_FIRES`]), those
    /// marked in `ended` (or beyond it: none) as ended; whether each fire of
    /// the batch was inserted by this statement.
    async fn insert<'e>(
        &self,
        exec: impl sqlx::PgExecutor<'e>,
        insert: &[bool],
        ended: &[bool],
    ) -> Result<Vec<bool>, sqlx::Error> {
        let n = insert.iter().filter(|i| **i).count();
        let (mut jobs, mut times, mut ids, mut ends, mut kinds) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::new(),
            Vec::with_capacity(n),
        );
        for (i, ((job, at), f)) in self.keys.iter().zip(self.fires).enumerate() {
            if insert[i] {
                jobs.push(job.as_str());
                times.push(*at);
                ids.push(f.execution_id.to_string());
                ends.push(ended.get(i).copied().unwrap_or(false));
                kinds.push(f.kind.as_str());
            }
        }
        if jobs.is_empty() {
            return Ok(vec![false; self.keys.len()]);
        }
        let won: Vec<(String, DateTime<Utc>)> = sqlx::query_as(sql::CLAIM_FIRES)
            .bind(&jobs)
            .bind(&times)
            .bind(&ids)
            .bind(&ends)
            .bind(self.instance_id)
            .bind(self.now)
            .bind(self.until)
            .bind(&kinds)
            .fetch_all(exec)
            .await?;
        let won: HashSet<(String, DateTime<Utc>)> = won.into_iter().collect();
        Ok(self.keys.iter().zip(insert).map(|(k, i)| *i && won.contains(k)).collect())
    }

    /// The batch with `max_running` (see `claim_fires`), in a transaction.
    async fn counted(&self, pool: &PgPool) -> Result<Vec<ClaimOutcome>, sqlx::Error> {
        let limited: Vec<&str> = self
            .keys
            .iter()
            .zip(self.fires)
            .filter(|(_, f)| f.max_running.is_some())
            .map(|((job, _), _)| job.as_str())
            .collect();
        let (jobs, times): (Vec<&str>, Vec<DateTime<Utc>>) =
            self.keys.iter().map(|(j, t)| (j.as_str(), *t)).unzip();
        let mut tx = pool.begin().await?;
        sqlx::query(sql::LOCK_JOBS).bind(&limited).execute(&mut *tx).await?;
        let rows: Vec<(String, Option<DateTime<Utc>>, Option<i64>)> =
            sqlx::query_as(sql::CLAIMS_AND_LIVE_LEASES)
                .bind(&jobs)
                .bind(&times)
                .bind(self.now)
                .bind(&limited)
                .fetch_all(&mut *tx)
                .await?;
        let mut exists: HashSet<(&str, DateTime<Utc>)> = HashSet::new();
        let mut live: HashMap<&str, u32> = HashMap::new();
        let batch: HashSet<(&str, DateTime<Utc>)> = jobs.iter().copied().zip(times).collect();
        for (job, at, count) in &rows {
            if let Some(key) = at.and_then(|at| batch.get(&(job.as_str(), at))) {
                exists.insert(*key);
            }
            if let Some(n) = count
                && let Some(j) = limited.iter().find(|j| **j == job.as_str())
            {
                live.insert(j, u32::try_from(*n).unwrap_or(u32::MAX));
            }
        }
        // Fire by fire, as the memory store decides: a new fire that is not
        // busy holds a live lease for the fires after it.
        let lease_is_live = self.until > self.now;
        let mut insert = Vec::with_capacity(self.fires.len());
        let mut busy = Vec::with_capacity(self.fires.len());
        let mut running = Vec::with_capacity(self.fires.len());
        for ((job, at), f) in self.keys.iter().zip(self.fires) {
            let key = (job.as_str(), *at);
            let new = exists.insert(key);
            let n = live.get(job.as_str()).copied().unwrap_or(0);
            let is_busy = new && f.max_running.is_some_and(|max| n >= max);
            if new && !is_busy && lease_is_live {
                *live.entry(job.as_str()).or_default() += 1;
            }
            insert.push(new);
            busy.push(is_busy);
            running.push(n);
        }
        let won = self.insert(&mut *tx, &insert, &busy).await?;
        tx.commit().await?;
        Ok(won
            .into_iter()
            .zip(busy)
            .zip(running)
            .map(|((won, busy), running)| match (won, busy) {
                (false, _) => ClaimOutcome::Taken,
                (true, true) => ClaimOutcome::Busy { fence: 1, running },
                (true, false) => ClaimOutcome::Won { fence: 1 },
            })
            .collect())
    }
}
