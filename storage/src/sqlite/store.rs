//! [`SqliteStore`]: one writer thread that batches writes in transactions,
//! reader threads for queries, futures oneshot channels for the replies.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Timelike, Utc};
use futures::channel::oneshot;
use futures::future::{Either, select};
use mscribe_scheduler::store::{
    ExecutionEvent, ExecutionRecord, ExecutionStatus, ExecutionStore, FireClaim, HistoryQuery,
    PrunePolicy, StoreError, StoreResult,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::error::{open_error, shared_store_error, store_error};
use super::migrate::migrate;
use super::{Location, SqliteOptions};
use crate::codec::{self, Op, Row};
use crate::error::{Error, Result};
use crate::migrate::SQLITE_MIGRATIONS;

type WriterJob = Box<dyn FnOnce(&mut Connection) + Send>;
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

enum Command {
    Write { ops: Vec<Op>, reply: oneshot::Sender<StoreResult<()>> },
    Run(WriterJob),
}

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
    target: String,
    writer: mpsc::Sender<Command>,
    readers: Option<mpsc::Sender<ReadJob>>,
    reader_count: usize,
    hostname: Option<String>,
    operation_timeout: Duration,
    maintenance_timeout: Duration,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("target", &self.inner.target)
            .field("readers", &self.inner.reader_count)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) a database file and applies the migrations.
    pub async fn open(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::open_with(SqliteOptions::file(path)).await
    }

    /// Opens `./mscribe.db`.
    pub async fn open_default() -> Result<Self> {
        Self::open_with(SqliteOptions::default()).await
    }

    /// A fresh private in-memory database.
    pub async fn open_memory() -> Result<Self> {
        Self::open_with(SqliteOptions::memory()).await
    }

    /// Opens with options. The file is opened and migrated on the writer
    /// thread; this future only waits for it.
    pub async fn open_with(opts: SqliteOptions) -> Result<Self> {
        let target = opts.target();
        let (tx, rx) = mpsc::channel::<Command>();
        let (ready_tx, ready_rx) = oneshot::channel::<Result<()>>();
        let wopts = opts.clone();
        let wtarget = target.clone();
        spawn_thread("mscribe-sqlite-writer", &target, move || {
            writer_main(wopts, wtarget, rx, ready_tx)
        })?;
        mscribe_scheduler::runtime::external(ready_rx).await.map_err(|_| Error::Open {
            target: target.clone(),
            message: "the writer thread stopped while opening".to_owned(),
            source: None,
        })??;

        let mut readers = None;
        let mut reader_count = 0;
        if let Location::File(path) = &opts.location
            && opts.readers > 0
        {
            let (rtx, rrx) = mpsc::channel::<ReadJob>();
            let rrx = Arc::new(Mutex::new(rrx));
            for i in 0..opts.readers {
                let (ready_tx, ready_rx) = oneshot::channel::<Result<()>>();
                let (path, rrx, rtarget) = (path.clone(), rrx.clone(), target.clone());
                let busy = opts.busy_timeout;
                spawn_thread(&format!("mscribe-sqlite-reader-{i}"), &target, move || {
                    reader_main(path, rtarget, busy, rrx, ready_tx)
                })?;
                mscribe_scheduler::runtime::external(ready_rx).await.map_err(|_| {
                    Error::Open {
                        target: target.clone(),
                        message: "a reader thread stopped while opening".to_owned(),
                        source: None,
                    }
                })??;
            }
            readers = Some(rtx);
            reader_count = opts.readers;
        }
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                target,
                writer: tx,
                readers,
                reader_count,
                hostname: codec::hostname(),
                operation_timeout: opts.operation_timeout,
                maintenance_timeout: opts.maintenance_timeout,
            }),
        })
    }

    /// What the store is, for messages: `sqlite database PATH` or `sqlite
    /// in-memory database`.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    fn gone(&self, what: &str) -> StoreError {
        StoreError::Unavailable {
            message: format!("{}: the {what} thread has stopped", self.inner.target),
            source: None,
        }
    }

    /// Awaits a reply from a thread, up to `limit`. On timeout the work
    /// may still complete later (writes are idempotent).
    async fn reply<T>(
        &self,
        rx: oneshot::Receiver<StoreResult<T>>,
        what: &str,
        thread: &str,
        limit: Duration,
    ) -> StoreResult<T> {
        let timer = futures_timer::Delay::new(limit);
        // The reply comes from a thread: on a virtual-clock runtime, time
        // waits for it (I/O takes no virtual time).
        match mscribe_scheduler::runtime::external(select(rx, timer)).await {
            Either::Left((Ok(r), _)) => r,
            Either::Left((Err(_), _)) => Err(self.gone(thread)),
            Either::Right(((), _)) => Err(StoreError::Unavailable {
                message: format!(
                    "{}: {what} timed out after {limit:?} (the {thread} is busy or the disk stalls)",
                    self.inner.target
                ),
                source: None,
            }),
        }
    }

    /// Runs `f` on the writer thread and awaits its result, up to `limit`.
    pub(crate) async fn on_writer<T: Send + 'static>(
        &self,
        what: &str,
        limit: Duration,
        f: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel();
        let job: WriterJob = Box::new(move |c| {
            let _ = tx.send(f(c));
        });
        self.inner.writer.send(Command::Run(job)).map_err(|_| self.gone("writer"))?;
        self.reply(rx, what, "writer", limit).await
    }

    /// Runs a query on a reader thread (or the writer, without readers).
    async fn on_reader<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let limit = self.inner.operation_timeout;
        match &self.inner.readers {
            None => self.on_writer(what, limit, move |c| f(c)).await,
            Some(readers) => {
                let (tx, rx) = oneshot::channel();
                let job: ReadJob = Box::new(move |c| {
                    let _ = tx.send(f(c));
                });
                readers.send(job).map_err(|_| self.gone("reader"))?;
                self.reply(rx, what, "reader", limit).await
            }
        }
    }
}

fn spawn_thread(name: &str, target: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new().name(name.to_owned()).spawn(f).map(drop).map_err(|e| Error::Open {
        target: target.to_owned(),
        message: format!("cannot start thread {name}: {e}"),
        source: Some(Box::new(e)),
    })
}

fn open_connection(opts: &SqliteOptions, target: &str) -> Result<Connection> {
    let conn = match &opts.location {
        Location::Memory => Connection::open_in_memory(),
        Location::File(path) => Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ),
    }
    .map_err(|e| open_error(target, e))?;
    conn.busy_timeout(opts.busy_timeout).map_err(|e| open_error(target, e))?;
    if matches!(opts.location, Location::File(_)) {
        // Reading the journal mode is the first access to the file: a file
        // that is not a database fails here, with a clear message.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| open_error(target, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(database = target, mode, "sqlite did not switch to WAL");
        }
    }
    conn.execute_batch(&format!("PRAGMA synchronous = {}", opts.synchronous.pragma()))
        .map_err(|e| open_error(target, e))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

fn writer_main(
    opts: SqliteOptions,
    target: String,
    rx: mpsc::Receiver<Command>,
    ready: oneshot::Sender<Result<()>>,
) {
    let mut conn = match open_connection(&opts, &target)
        .and_then(|mut c| migrate(&mut c, &target, SQLITE_MIGRATIONS).map(|()| c))
    {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok(())).is_err() {
        return;
    }
    let mut deferred: Option<Command> = None;
    loop {
        let cmd = match deferred.take() {
            Some(c) => c,
            None => match rx.recv() {
                Ok(c) => c,
                Err(_) => break,
            },
        };
        match cmd {
            Command::Run(job) => {
                // A panicking job drops its reply sender: its caller gets an
                // error and the thread goes on.
                let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut conn)));
            }
            Command::Write { ops, reply } => {
                let mut group = vec![(ops, reply)];
                while group.len() < opts.max_group {
                    match rx.try_recv() {
                        Ok(Command::Write { ops, reply }) => group.push((ops, reply)),
                        Ok(other) => {
                            deferred = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                write_group(&mut conn, group);
            }
        }
    }
    tracing::debug!(database = target, "sqlite writer thread stopped");
}

fn reader_main(
    path: std::path::PathBuf,
    target: String,
    busy: Duration,
    rx: Arc<Mutex<mpsc::Receiver<ReadJob>>>,
    ready: oneshot::Sender<Result<()>>,
) {
    let open = || -> rusqlite::Result<Connection> {
        let c = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(busy)?;
        c.execute_batch("PRAGMA query_only = 1")?;
        c.set_prepared_statement_cache_capacity(32);
        Ok(c)
    };
    let conn = match open() {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(open_error(&target, e)));
            return;
        }
    };
    if ready.send(Ok(())).is_err() {
        return;
    }
    loop {
        let job = {
            let guard = rx.lock().unwrap_or_else(PoisonError::into_inner);
            match guard.recv() {
                Ok(job) => job,
                Err(_) => break,
            }
        };
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&conn)));
    }
}

/// Commits a group of `write` calls in one transaction, each in its own
/// savepoint so that one failing call does not undo the others.
fn write_group(conn: &mut Connection, group: Vec<(Vec<Op>, oneshot::Sender<StoreResult<()>>)>) {
    let single = group.len() == 1;
    let outcome = (|| -> rusqlite::Result<Vec<StoreResult<()>>> {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut results = Vec::with_capacity(group.len());
        for (ops, _) in &group {
            if single {
                apply_ops(&tx, ops)?;
                results.push(Ok(()));
                continue;
            }
            let sp = tx.savepoint()?;
            match apply_ops(&sp, ops) {
                Ok(()) => {
                    sp.commit()?;
                    results.push(Ok(()));
                }
                Err(e) => {
                    drop(sp); // rolls back this call only
                    results.push(Err(store_error("write", e)));
                }
            }
        }
        tx.commit()?;
        Ok(results)
    })();
    match outcome {
        Ok(results) => {
            for ((_, reply), r) in group.into_iter().zip(results) {
                let _ = reply.send(r);
            }
        }
        Err(e) => {
            let e = Arc::new(e);
            for (_, reply) in group {
                let _ = reply.send(Err(shared_store_error("write", &e)));
            }
        }
    }
}

const INSERT_IGNORE: &str = "INSERT INTO scheduled_job_executions
    (job_id, execution_id, attempt, status, scheduled_at, started_at, completed_at,
     duration_ms, error, error_kind, result, metrics, instance_id)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
    ON CONFLICT (execution_id, attempt) DO NOTHING";

const UPSERT_END: &str = "INSERT INTO scheduled_job_executions
    (job_id, execution_id, attempt, status, scheduled_at, started_at, completed_at,
     duration_ms, error, error_kind, result, metrics, instance_id)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
    ON CONFLICT (execution_id, attempt) DO UPDATE SET
        status = excluded.status,
        completed_at = excluded.completed_at,
        duration_ms = excluded.duration_ms,
        error = excluded.error,
        error_kind = excluded.error_kind,
        result = excluded.result,
        metrics = excluded.metrics";

fn apply_ops(conn: &Connection, ops: &[Op]) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(INSERT_IGNORE)?;
    let mut upsert = conn.prepare_cached(UPSERT_END)?;
    for op in ops {
        let r: &Row = op.row();
        let stmt = match op {
            Op::Insert(_) => &mut insert,
            Op::Upsert(_) => &mut upsert,
        };
        stmt.execute(params![
            r.job_id,
            r.execution_id.to_string(),
            r.attempt,
            r.status.as_str(),
            ts_text(r.scheduled_at),
            ts_text(r.started_at),
            r.completed_at.map(ts_text),
            r.duration_ms,
            r.error,
            r.error_kind,
            r.result,
            r.metrics,
            r.instance_id,
        ])?;
    }
    Ok(())
}

/// A timestamp as the SQLite store writes it: `YYYY-MM-DDTHH:MM:SS.ffffffZ`,
/// which sorts as text in time order (callers keep years within 1..=9999).
/// Public so that SQL written beside the store compares times the same way.
pub fn ts_text(t: DateTime<Utc>) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        (t.nanosecond() / 1000).min(999_999)
    )
}

fn parse_ts(what: &str, s: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| {
        StoreError::Corrupt { message: format!("{what} \"{s}\" is not a timestamp ({e})") }
    })
}

const COLUMNS: &str = "job_id, execution_id, attempt, status, scheduled_at, started_at,
    completed_at, duration_ms, error, error_kind, result, metrics, instance_id";

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

#[async_trait]
impl ExecutionStore for SqliteStore {
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()> {
        let (ops, bad) = codec::encode(events, false);
        if !ops.is_empty() {
            let (tx, rx) = oneshot::channel();
            self.inner
                .writer
                .send(Command::Write { ops, reply: tx })
                .map_err(|_| self.gone("writer"))?;
            self.reply(rx, "write", "writer", self.inner.operation_timeout).await?;
        }
        bad.map_or(Ok(()), Err)
    }

    async fn history(&self, q: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        let job = q.job_id.clone();
        let limit = limit_i64(q.limit);
        let status = q.status;
        self.on_reader("history", move |c| match status {
            None => query_records(
                c,
                &format!(
                    "SELECT {COLUMNS} FROM scheduled_job_executions WHERE job_id = ?1
                     ORDER BY started_at DESC, attempt DESC, execution_id DESC LIMIT ?2"
                ),
                params![job, limit],
            ),
            Some(s) => query_records(
                c,
                &format!(
                    "SELECT {COLUMNS} FROM scheduled_job_executions
                     WHERE job_id = ?1 AND status = ?2
                     ORDER BY started_at DESC, attempt DESC, execution_id DESC LIMIT ?3"
                ),
                params![job, s.as_str(), limit],
            ),
        })
        .await
    }

    async fn last_fire(&self, job_id: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let job = job_id.to_owned();
        self.on_reader("last_fire", move |c| last_fire_of(c, &job)).await
    }

    async fn last_fires(
        &self,
        job_ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, DateTime<Utc>>> {
        let jobs = job_ids.to_vec();
        self.on_reader("last_fires", move |c| {
            let mut out = std::collections::HashMap::new();
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
        let now = codec::check_ts("heartbeat time", now)
            .map_err(|m| StoreError::Rejected { message: m, source: None })?;
        let instance = instance_id.to_owned();
        let host = self.inner.hostname.clone();
        self.on_writer("heartbeat", self.inner.operation_timeout, move |c| {
            c.prepare_cached(
                "INSERT INTO scheduler_instances (instance_id, heartbeat_at, started_at, hostname)
                 VALUES (?1, ?2, ?2, ?3)
                 ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            )
            .and_then(|mut s| s.execute(params![instance, ts_text(now), host]))
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
        let now = codec::check_ts("now", now)
            .map_err(|m| StoreError::Rejected { message: m, source: None })?;
        let cutoff = codec::cutoff(now, stale_after);
        let own = own_instance.to_owned();
        self.on_writer("mark_abandoned", self.inner.maintenance_timeout, move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| store_error("mark_abandoned", e))?;
            let stale: Vec<(i64, RawRow)> = {
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS}, id FROM scheduled_job_executions AS e
                         WHERE e.status = 'running' AND e.instance_id <> ?1
                           AND NOT EXISTS (
                               SELECT 1 FROM scheduler_instances AS i
                               WHERE i.instance_id = e.instance_id AND i.heartbeat_at >= ?2)
                         ORDER BY e.id"
                    ))
                    .map_err(|e| store_error("mark_abandoned", e))?;
                stmt.query_map(params![own, ts_text(cutoff)], |r| Ok((r.get("id")?, raw_row(r)?)))
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(|e| store_error("mark_abandoned", e))?
            };
            let mut changed = Vec::with_capacity(stale.len());
            {
                let mut upd = tx
                    .prepare_cached(
                        "UPDATE scheduled_job_executions
                         SET status = 'abandoned', completed_at = ?2, duration_ms = ?3, error = ?4
                         WHERE id = ?1",
                    )
                    .map_err(|e| store_error("mark_abandoned", e))?;
                for (id, raw) in stale {
                    let mut rec = raw.decode()?;
                    rec.status = ExecutionStatus::Abandoned;
                    rec.completed_at = Some(now);
                    let ms = codec::abandoned_ms(rec.started_at, now);
                    rec.duration_ms = Some(codec::decode_ms(ms)?);
                    rec.error = Some(codec::abandoned_error(&rec.instance_id));
                    upd.execute(params![id, ts_text(now), ms, rec.error])
                        .map_err(|e| store_error("mark_abandoned", e))?;
                    changed.push(rec);
                }
            }
            tx.commit().map_err(|e| store_error("mark_abandoned", e))?;
            Ok(changed)
        })
        .await
    }

    async fn prune(&self, p: PrunePolicy) -> StoreResult<u64> {
        let older = ts_text(codec::clamp_ts(p.older_than));
        let failures = p.failures_older_than.map(|t| ts_text(codec::clamp_ts(t)));
        self.on_writer("prune", self.inner.maintenance_timeout, move |c| {
            let sql = format!(
                "DELETE FROM scheduled_job_executions
                 WHERE status <> 'running'
                   AND started_at < CASE
                       WHEN ?2 IS NOT NULL AND status IN {} THEN ?2
                       ELSE ?1 END",
                codec::FAILURE_STATUSES_SQL
            );
            let rows = c.execute(&sql, params![older, failures]);
            let rows = rows.map(|n| n as u64).map_err(|e| store_error("prune", e))?;
            c.execute(FORGET_SILENT_INSTANCES, params![older])
                .map_err(|e| store_error("prune", e))?;
            c.execute("DELETE FROM fire_claims WHERE scheduled_at < ?1", params![older])
                .map_err(|e| store_error("prune", e))?;
            Ok(rows)
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
        let rejected = |m| StoreError::Rejected { message: m, source: None };
        let now = ts_text(codec::check_ts("claim time", now).map_err(rejected)?);
        let fires = fires
            .iter()
            .map(|f| {
                Ok((f.job_id.clone(), ts_text(codec::check_claim(f, false).map_err(rejected)?)))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let instance = instance_id.to_owned();
        self.on_writer("claim_fires", self.inner.operation_timeout, move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| store_error("claim_fires", e))?;
            let won = {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO fire_claims (job_id, scheduled_at, instance_id, claimed_at)
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    )
                    .map_err(|e| store_error("claim_fires", e))?;
                fires
                    .iter()
                    .map(|(job, at)| {
                        stmt.execute(params![&**job, at, instance, now]).map(|n| n == 1)
                    })
                    .collect::<rusqlite::Result<Vec<bool>>>()
                    .map_err(|e| store_error("claim_fires", e))?
            };
            tx.commit().map_err(|e| store_error("claim_fires", e))?;
            Ok(won)
        })
        .await
    }
}

/// Instances silent since before `?1` that own no `running` row (see
/// `ExecutionStore::prune`).
const FORGET_SILENT_INSTANCES: &str = "DELETE FROM scheduler_instances AS i
     WHERE heartbeat_at < ?1
       AND NOT EXISTS (SELECT 1 FROM scheduled_job_executions AS e
                       WHERE e.instance_id = i.instance_id AND e.status = 'running')";

fn last_fire_of(c: &Connection, job: &str) -> StoreResult<Option<DateTime<Utc>>> {
    let s: Option<String> = c
        .prepare_cached("SELECT max(scheduled_at) FROM scheduled_job_executions WHERE job_id = ?1")
        .and_then(|mut s| s.query_row(params![job], |r| r.get(0)).optional())
        .map_err(|e| store_error("last_fire", e))?
        .flatten();
    s.map(|s| parse_ts("scheduled_at", &s)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_sort_as_text() {
        let a = Utc.with_ymd_and_hms(999, 1, 1, 0, 0, 0).unwrap();
        let b =
            Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap() + chrono::Duration::microseconds(8);
        assert_eq!(ts_text(a), "0999-01-01T00:00:00.000000Z");
        assert_eq!(ts_text(b), "2026-03-04T05:06:07.000008Z");
        assert!(ts_text(a) < ts_text(b));
        assert_eq!(parse_ts("t", &ts_text(b)).unwrap(), b);
    }
}
