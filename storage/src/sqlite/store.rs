//! [`SqliteStore`] and its [`ExecutionStore`] impl: events become rows on
//! the writer thread, queries run on the reader threads.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::{
    ExecutionEvent, ExecutionRecord, ExecutionStatus, ExecutionStore, FireClaim, HistoryQuery,
    PrunePolicy, StoreError, StoreResult,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::error::store_error;
use super::sql;
use super::time::{cutoff_param, parse_ts, ts_param, ts_text};
use super::worker::Worker;
use crate::codec::{self, Dialect};

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

#[async_trait]
impl ExecutionStore for SqliteStore {
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()> {
        let (ops, bad) = codec::encode(events, Dialect::Sqlite);
        if !ops.is_empty() {
            self.worker().write(ops).await?;
        }
        bad.map_or(Ok(()), Err)
    }

    async fn history(&self, q: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        let job = q.job_id.clone();
        let limit = limit_i64(q.limit);
        let status = q.status;
        let w = self.worker();
        w.on_reader("history", w.limits().operation_timeout, move |c| match status {
            None => query_records(c, sql::HISTORY, params![job, limit]),
            Some(s) => query_records(c, sql::HISTORY_BY_STATUS, params![job, s.as_str(), limit]),
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

    async fn mark_abandoned(
        &self,
        own_instance: &str,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let now = codec::check_ts("now", now).map_err(rejected)?;
        let cutoff = ts_text(codec::cutoff(now, stale_after));
        let own = own_instance.to_owned();
        let w = self.worker();
        w.on_writer("mark_abandoned", w.limits().maintenance_timeout, move |c| {
            let failed = |e| store_error("mark_abandoned", e);
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
            let stale: Vec<(i64, RawRow)> = {
                let mut stmt = tx.prepare_cached(sql::STALE_RUNNING).map_err(failed)?;
                stmt.query_map(params![own, cutoff], |r| Ok((r.get("id")?, raw_row(r)?)))
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

    /// One immediate transaction: processes sharing the file take turns.
    async fn claim_fires(
        &self,
        instance_id: &str,
        fires: &[FireClaim],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<bool>> {
        let now = ts_param("claim time", now).map_err(rejected)?;
        let fires = fires
            .iter()
            .map(|f| Ok((f.job_id.clone(), ts_text(Dialect::Sqlite.check_claim(f)?))))
            .collect::<Result<Vec<_>, String>>()
            .map_err(rejected)?;
        let instance = instance_id.to_owned();
        let w = self.worker();
        w.on_writer("claim_fires", w.limits().operation_timeout, move |c| {
            let failed = |e| store_error("claim_fires", e);
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
            let won = {
                let mut stmt = tx.prepare_cached(sql::CLAIM_FIRE).map_err(failed)?;
                fires
                    .iter()
                    .map(|(job, at)| {
                        stmt.execute(params![&**job, at, instance, now]).map(|n| n == 1)
                    })
                    .collect::<rusqlite::Result<Vec<bool>>>()
                    .map_err(failed)?
            };
            tx.commit().map_err(failed)?;
            Ok(won)
        })
        .await
    }
}

fn last_fire_of(c: &Connection, job: &str) -> StoreResult<Option<DateTime<Utc>>> {
    let s: Option<String> = c
        .prepare_cached(sql::LAST_FIRE)
        .and_then(|mut s| s.query_row(params![job], |r| r.get(0)).optional())
        .map_err(|e| store_error("last_fire", e))?
        .flatten();
    s.map(|s| parse_ts("scheduled_at", &s)).transpose()
}
