//! [`SqliteStore`] and its [`ExecutionStore`] impl: events become rows on
//! the writer thread, queries run on the reader threads.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::{
    ClaimOutcome, ExecutionEvent, ExecutionId, ExecutionRecord, ExecutionStatus, ExecutionStore,
    ExpiredLease, FireClaim, FireLease, HistoryQuery, InstanceHeartbeat, PrunePolicy, RetakenFire,
    StoreError, StoreResult, abandoned_for_retake,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::error::store_error;
use super::sql;
use super::time::{cutoff_param, parse_ts, ts_param, ts_text};
use super::worker::Worker;
use crate::codec::{self, Dialect, HistoryBound};

/// An [`ExecutionStore`] in a SQLite file (or in memory).
///
/// All writes go to one dedicated thread that owns the write connection and
/// commits every queued `write` call in one transaction (group commit); the
/// async side only sends a message and awaits a oneshot reply, so no
/// runtime thread ever blocks on SQLite, and any runtime works. Queries run
/// on a small pool of reader threads (WAL lets them read while the writer
/// writes). Cloning is cheap and shares the threads; they stop when the last
/// clone is dropped.
///
/// ```
/// use mscribe_storage::SqliteStore;
/// use mscribe_scheduler::{ExecutionStore, HistoryQuery};
///
/// # futures::executor::block_on(async {
/// let store = SqliteStore::open_memory().await?;
/// assert!(store.history(&HistoryQuery::new("backup", 10)).await?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    worker: Worker,
    hostname: Option<String>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("target", &self.inner.worker.target())
            .field("readers", &self.inner.worker.reader_count())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// A store over started threads (see `open.rs`).
    pub(super) fn new(worker: Worker) -> Self {
        SqliteStore { inner: Arc::new(Inner { worker, hostname: codec::hostname() }) }
    }

    /// What the store is, for messages: `sqlite database PATH` or `sqlite
    /// in-memory database`.
    pub fn target(&self) -> &str {
        self.inner.worker.target()
    }

    /// The threads.
    pub(super) fn worker(&self) -> &Worker {
        &self.inner.worker
    }
}

/// An execution row as read, before decoding.
struct RawRow {
    job_id: String,
    execution_id: String,
    attempt: i64,
    status: String,
    scheduled_at: String,
    started_at: String,
    completed_at: Option<String>,
    duration_ms: Option<i64>,
    error: Option<String>,
    error_kind: Option<String>,
    result: Option<String>,
    metrics: Option<String>,
    instance_id: String,
    kind: String,
    fence: Option<i64>,
}

/// The columns of `sql::columns!`, in order.
fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        job_id: r.get(0)?,
        execution_id: r.get(1)?,
        attempt: r.get(2)?,
        status: r.get(3)?,
        scheduled_at: r.get(4)?,
        started_at: r.get(5)?,
        completed_at: r.get(6)?,
        duration_ms: r.get(7)?,
        error: r.get(8)?,
        error_kind: r.get(9)?,
        result: r.get(10)?,
        metrics: r.get(11)?,
        instance_id: r.get(12)?,
        kind: r.get(13)?,
        fence: r.get(14)?,
    })
}

impl RawRow {
    fn decode(self) -> StoreResult<ExecutionRecord> {
        Ok(ExecutionRecord {
            execution_id: codec::decode_execution_id(&self.execution_id)?,
            attempt: codec::decode_u32("attempt", self.attempt)?,
            status: codec::decode_status(&self.status)?,
            scheduled_at: parse_ts("scheduled_at", &self.scheduled_at)?,
            started_at: parse_ts("started_at", &self.started_at)?,
            completed_at: self
                .completed_at
                .as_deref()
                .map(|s| parse_ts("completed_at", s))
                .transpose()?,
            duration_ms: self.duration_ms.map(codec::decode_ms).transpose()?,
            error: self.error,
            error_kind: self.error_kind.as_deref().map(codec::decode_error_kind).transpose()?,
            result: self.result.as_deref().map(codec::decode_json).transpose()?,
            metrics: self.metrics.as_deref().map(codec::decode_metrics).transpose()?,
            job_id: self.job_id,
            instance_id: self.instance_id,
            kind: codec::decode_kind(&self.kind)?,
            fence: self.fence.map(codec::decode_fence).transpose()?,
        })
    }
}

fn query_records(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<ExecutionRecord>> {
    let mut stmt = conn.prepare_cached(sql).map_err(|e| store_error("query", e))?;
    let raw = stmt
        .query_map(params, raw_row)
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(|e| store_error("query", e))?;
    raw.into_iter().map(RawRow::decode).collect()
}

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn rejected(message: String) -> StoreError {
    StoreError::Rejected { message, source: None }
}

impl SqliteStore {
    /// Marks the running rows that `select` finds (with `args`) abandoned
    /// at `now`, in one transaction; the rows as they are afterwards.
    async fn abandon(
        &self,
        op: &'static str,
        select: &'static str,
        args: Vec<String>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let w = self.worker();
        w.on_writer(op, w.limits().maintenance_timeout, move |c| {
            let failed = |e| store_error(op, e);
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
            let stale: Vec<(i64, RawRow)> = {
                let mut stmt = tx.prepare_cached(select).map_err(failed)?;
                stmt.query_map(rusqlite::params_from_iter(&args), |r| {
                    Ok((r.get("id")?, raw_row(r)?))
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(failed)?
            };
            let mut changed = Vec::with_capacity(stale.len());
            {
                let mut upd = tx.prepare_cached(sql::MARK_ABANDONED).map_err(failed)?;
                for (id, raw) in stale {
                    let mut rec = raw.decode()?;
                    rec.status = ExecutionStatus::Abandoned;
                    rec.completed_at = Some(now);
                    let ms = codec::abandoned_ms(rec.started_at, now);
                    rec.duration_ms = Some(codec::decode_ms(ms)?);
                    rec.error = Some(codec::abandoned_error(&rec.instance_id));
                    upd.execute(params![id, ts_text(now), ms, rec.error]).map_err(failed)?;
                    changed.push(rec);
                }
            }
            tx.commit().map_err(failed)?;
            Ok(changed)
        })
        .await
    }
}

#[async_trait]
impl ExecutionStore for SqliteStore {
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()> {
        let (ops, bad) = codec::encode(events, Dialect::Sqlite);
        let refused = if ops.is_empty() { Vec::new() } else { self.worker().write(ops).await? };
        StoreError::write_outcome(events.len(), bad, refused)
    }

    async fn history(&self, q: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        let job = q.job_id.clone();
        let limit = limit_i64(q.limit);
        let status = q.status.map(|s| s.as_str());
        let before = match codec::history_bound(q.before) {
            HistoryBound::Nothing => return Ok(Vec::new()),
            HistoryBound::All => None,
            HistoryBound::Before { started_at, attempt, execution_id } => {
                Some((ts_text(started_at), attempt, execution_id.to_string()))
            }
        };
        let w = self.worker();
        w.on_reader("history", w.limits().operation_timeout, move |c| match (status, before) {
            (None, None) => query_records(c, sql::HISTORY, params![job, limit]),
            (Some(s), None) => query_records(c, sql::HISTORY_BY_STATUS, params![job, s, limit]),
            (None, Some((t, a, id))) => {
                query_records(c, sql::HISTORY_BEFORE, params![job, t, a, id, limit])
            }
            (Some(s), Some((t, a, id))) => {
                query_records(c, sql::HISTORY_BY_STATUS_BEFORE, params![job, s, t, a, id, limit])
            }
        })
        .await
    }

    async fn last_fire(&self, job_id: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let job = job_id.to_owned();
        let w = self.worker();
        w.on_reader("last_fire", w.limits().operation_timeout, move |c| last_fire_of(c, &job)).await
    }

    async fn last_fires(&self, job_ids: &[String]) -> StoreResult<HashMap<String, DateTime<Utc>>> {
        let jobs = job_ids.to_vec();
        let w = self.worker();
        w.on_reader("last_fires", w.limits().operation_timeout, move |c| {
            let mut out = HashMap::new();
            for job in jobs {
                if let Some(t) = last_fire_of(c, &job)? {
                    out.insert(job, t);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn last_scheduled_fires(
        &self,
        job_ids: &[String],
    ) -> StoreResult<HashMap<String, DateTime<Utc>>> {
        let jobs = job_ids.to_vec();
        let w = self.worker();
        w.on_reader("last_scheduled_fires", w.limits().operation_timeout, move |c| {
            let mut out = HashMap::new();
            for job in jobs {
                if let Some(t) =
                    scheduled_at_of(c, "last_scheduled_fires", sql::LAST_SCHEDULED_FIRE, &job)?
                {
                    out.insert(job, t);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn heartbeat(&self, instance_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let now = ts_param("heartbeat time", now).map_err(rejected)?;
        let instance = instance_id.to_owned();
        let host = self.inner.hostname.clone();
        let w = self.worker();
        w.on_writer("heartbeat", w.limits().operation_timeout, move |c| {
            c.prepare_cached(sql::HEARTBEAT)
                .and_then(|mut s| s.execute(params![instance, now, host]))
                .map(drop)
                .map_err(|e| store_error("heartbeat", e))
        })
        .await
    }

    async fn attempts(
        &self,
        job_id: &str,
        execution_id: ExecutionId,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let (job, id) = (job_id.to_owned(), execution_id.to_string());
        let w = self.worker();
        w.on_reader("attempts", w.limits().operation_timeout, move |c| {
            query_records(c, sql::ATTEMPTS, params![job, id])
        })
        .await
    }

    async fn instances(&self, since: DateTime<Utc>) -> StoreResult<Vec<InstanceHeartbeat>> {
        let since = cutoff_param(since);
        let w = self.worker();
        let raw = w
            .on_reader("instances", w.limits().operation_timeout, move |c| {
                let mut stmt =
                    c.prepare_cached(sql::INSTANCES).map_err(|e| store_error("instances", e))?;
                stmt.query_map(params![since], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                    ))
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(|e| store_error("instances", e))
            })
            .await?;
        raw.into_iter()
            .map(|(instance_id, beat, start, hostname)| {
                Ok(InstanceHeartbeat {
                    instance_id,
                    heartbeat_at: parse_ts("heartbeat_at", &beat)?,
                    started_at: Some(parse_ts("started_at", &start)?),
                    hostname,
                })
            })
            .collect()
    }

    async fn mark_abandoned(
        &self,
        own_instance: &str,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let now = codec::check_ts("now", now).map_err(rejected)?;
        let cutoff = ts_text(codec::cutoff(now, stale_after));
        let args = vec![own_instance.to_owned(), cutoff];
        self.abandon("mark_abandoned", sql::STALE_RUNNING, args, now).await
    }

    async fn abandon_own(
        &self,
        instance_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let now = codec::check_ts("now", now).map_err(rejected)?;
        self.abandon("abandon_own", sql::OWN_RUNNING, vec![instance_id.to_owned()], now).await
    }

    async fn prune(&self, p: PrunePolicy) -> StoreResult<u64> {
        let older = cutoff_param(p.older_than);
        let failures = p.failures_older_than.map(cutoff_param);
        let w = self.worker();
        w.on_writer("prune", w.limits().maintenance_timeout, move |c| {
            let failed = |e| store_error("prune", e);
            let rows = c.execute(sql::PRUNE, params![older, failures]).map_err(failed)?;
            c.execute(sql::FORGET_SILENT_INSTANCES, params![older]).map_err(failed)?;
            c.execute(sql::PRUNE_CLAIMS, params![older]).map_err(failed)?;
            Ok(rows as u64)
        })
        .await
    }

    fn supports_claims(&self) -> bool {
        true
    }

    /// One immediate transaction: processes sharing the file take turns, so
    /// the live leases a claim with `max_running` counts are the file's.
    async fn claim_fires(
        &self,
        instance_id: &str,
        fires: &[FireClaim],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimOutcome>> {
        let now = codec::check_ts("claim time", now).map_err(rejected)?;
        let (now_text, until) = (ts_text(now), ts_text(codec::lease_until(now, lease)));
        let fires = fires
            .iter()
            .map(|f| {
                let at = ts_text(Dialect::Sqlite.check_claim(f)?);
                let exec = f.execution_id.to_string();
                Ok((f.job_id.clone(), at, exec, f.max_running, f.kind.as_str()))
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(rejected)?;
        let instance = instance_id.to_owned();
        let w = self.worker();
        w.on_writer("claim_fires", w.limits().operation_timeout, move |c| {
            let failed = |e| store_error("claim_fires", e);
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
            let mut out = Vec::with_capacity(fires.len());
            {
                let mut claim = tx.prepare_cached(sql::CLAIM_FIRE).map_err(failed)?;
                let mut live = tx.prepare_cached(sql::LIVE_LEASES).map_err(failed)?;
                for (job, at, exec, max, kind) in &fires {
                    let running = match max {
                        Some(_) => live
                            .query_row(params![&**job, now_text], |r| r.get::<_, i64>(0))
                            .map_err(failed)?,
                        None => 0,
                    };
                    let running = u32::try_from(running).unwrap_or(u32::MAX);
                    let busy = max.is_some_and(|max| running >= max);
                    let won = claim
                        .execute(params![&**job, at, instance, now_text, exec, until, busy, kind])
                        .map_err(failed)?
                        == 1;
                    out.push(match (won, busy) {
                        (false, _) => ClaimOutcome::Taken,
                        (true, true) => ClaimOutcome::Busy { fence: 1, running },
                        (true, false) => ClaimOutcome::Won { fence: 1 },
                    });
                }
            }
            tx.commit().map_err(failed)?;
            Ok(out)
        })
        .await
    }

    /// One immediate transaction, one `UPDATE` per lease.
    async fn renew_leases(
        &self,
        instance_id: &str,
        leases: &[FireLease],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Vec<bool>> {
        let now = codec::check_ts("renewal time", now).map_err(rejected)?;
        let until = ts_text(codec::lease_until(now, lease));
        let leases: Vec<(String, String, i64)> = leases
            .iter()
            .map(|l| {
                let at = codec::check_ts("scheduled_at", l.scheduled_at)?;
                Ok((l.job_id.to_string(), ts_text(at), codec::fence_i64(l.fence)?))
            })
            .collect::<Result<_, String>>()
            .map_err(rejected)?;
        let instance = instance_id.to_owned();
        let w = self.worker();
        w.on_writer("renew_leases", w.limits().operation_timeout, move |c| {
            let failed = |e| store_error("renew_leases", e);
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
            let kept = {
                let mut renew = tx.prepare_cached(sql::RENEW_LEASE).map_err(failed)?;
                leases
                    .iter()
                    .map(|(job, at, fence)| {
                        renew.execute(params![job, at, instance, fence, until]).map(|n| n == 1)
                    })
                    .collect::<rusqlite::Result<Vec<bool>>>()
                    .map_err(failed)?
            };
            tx.commit().map_err(failed)?;
            Ok(kept)
        })
        .await
    }

    async fn expired_leases(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<ExpiredLease>> {
        let now = cutoff_param(now);
        let limit = limit_i64(limit);
        let w = self.worker();
        w.on_reader("expired_leases", w.limits().operation_timeout, move |c| {
            let failed = |e| store_error("expired_leases", e);
            let mut stmt = c.prepare_cached(sql::EXPIRED_LEASES).map_err(failed)?;
            let raw = stmt
                .query_map(params![now, limit], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                    ))
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(failed)?;
            raw.into_iter()
                .map(|(job_id, at, exec, fence, owner, expired, kind)| {
                    Ok(ExpiredLease {
                        kind: codec::decode_kind(&kind)?,
                        scheduled_at: parse_ts("scheduled_at", &at)?,
                        execution_id: codec::decode_claim_execution_id(&job_id, exec.as_deref())?,
                        fence: codec::decode_fence(fence)?,
                        expired_at: parse_ts("lease_expires_at", &expired)?,
                        job_id,
                        owner,
                    })
                })
                .collect()
        })
        .await
    }

    /// One immediate transaction: the claim (if its fence and expiry still
    /// hold), then the run's rows.
    async fn retake_fire(
        &self,
        instance_id: &str,
        expired: &ExpiredLease,
        new_execution_id: ExecutionId,
        now: DateTime<Utc>,
        lease: Duration,
        rerun: bool,
    ) -> StoreResult<Option<RetakenFire>> {
        let now = codec::check_ts("retake time", now).map_err(rejected)?;
        let until = ts_text(codec::lease_until(now, lease));
        let at = ts_text(codec::check_ts("scheduled_at", expired.scheduled_at).map_err(rejected)?);
        let old_fence = codec::fence_i64(expired.fence).map_err(rejected)?;
        let (job, old_id, new_id) = (
            expired.job_id.clone(),
            expired.execution_id.to_string(),
            new_execution_id.to_string(),
        );
        let (owner, taker) = (expired.owner.clone(), instance_id.to_owned());
        let w = self.worker();
        w.on_writer("retake_fire", w.limits().operation_timeout, move |c| {
            let failed = |e| store_error("retake_fire", e);
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
            let fence: Option<i64> = tx
                .prepare_cached(sql::RETAKE_CLAIM)
                .and_then(|mut s| {
                    s.query_row(
                        params![job, at, taker, new_id, until, old_fence, ts_text(now)],
                        |r| r.get(0),
                    )
                    .optional()
                })
                .map_err(failed)?;
            let Some(fence) = fence else {
                return Ok(None);
            };
            let fence = codec::decode_fence(fence)?;
            let rows: Vec<(i64, i64, String, String)> = tx
                .prepare_cached(sql::RUN_ROWS)
                .and_then(|mut s| {
                    s.query_map(params![old_id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .and_then(|rows| rows.collect())
                })
                .map_err(failed)?;
            let error = abandoned_for_retake(&owner, &taker, fence, rerun);
            let mut last = 0;
            {
                let mut abandon = tx.prepare_cached(sql::MARK_ABANDONED).map_err(failed)?;
                for (id, attempt, status, started_at) in &rows {
                    last = last.max(codec::decode_u32("attempt", *attempt)?);
                    if status == ExecutionStatus::Running.as_str() {
                        let ms = codec::abandoned_ms(parse_ts("started_at", started_at)?, now);
                        abandon.execute(params![id, ts_text(now), ms, error]).map_err(failed)?;
                    }
                }
            }
            let had_rows = !rows.is_empty();
            if had_rows {
                tx.execute(sql::MOVE_RUN, params![old_id, new_id]).map_err(failed)?;
            }
            if !rerun && had_rows {
                tx.execute(sql::END_CLAIM, params![job, at]).map_err(failed)?;
            }
            tx.commit().map_err(failed)?;
            Ok(Some(RetakenFire { fence, next_attempt: last + 1, had_rows }))
        })
        .await
    }

    async fn recorded_fires(
        &self,
        job_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        let (job, from, to) = (job_id.to_owned(), cutoff_param(from), cutoff_param(to));
        let w = self.worker();
        w.on_reader("recorded_fires", w.limits().operation_timeout, move |c| {
            let texts: Vec<String> = c
                .prepare_cached(sql::RECORDED_FIRES)
                .and_then(|mut s| {
                    s.query_map(params![job, from, to], |r| r.get(0))
                        .and_then(|rows| rows.collect())
                })
                .map_err(|e| store_error("recorded_fires", e))?;
            texts.iter().map(|t| parse_ts("scheduled_at", t)).collect()
        })
        .await
    }
}

fn last_fire_of(c: &Connection, job: &str) -> StoreResult<Option<DateTime<Utc>>> {
    scheduled_at_of(c, "last_fire", sql::LAST_FIRE, job)
}

/// The one `scheduled_at` (or none) that `query` answers for `job`, for
/// operation `op`.
fn scheduled_at_of(
    c: &Connection,
    op: &'static str,
    query: &str,
    job: &str,
) -> StoreResult<Option<DateTime<Utc>>> {
    let s: Option<String> = c
        .prepare_cached(query)
        .and_then(|mut s| s.query_row(params![job], |r| r.get(0)).optional())
        .map_err(|e| store_error(op, e))?
        .flatten();
    s.map(|s| parse_ts("scheduled_at", &s)).transpose()
}
