//! The SQLite store's threads: one writer that owns the write connection and
//! commits queued writes in groups, reader threads for queries, and the
//! oneshot replies the async side awaits.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{Either, select};
use mscribe_scheduler::StoreError;
use mscribe_scheduler::StoreResult;
use rusqlite::{Connection, TransactionBehavior, params};

use super::error::{shared_store_error, store_error};
use super::sql;
use super::time::ts_text;
use crate::codec::{Op, Row};
use crate::error::{Error, Result};

type WriterJob = Box<dyn FnOnce(&mut Connection) + Send>;
/// The fires of the events a `write` refused for their stale fence.
pub(crate) type Refused = Vec<String>;
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

enum Command {
    Write { ops: Vec<Op>, reply: oneshot::Sender<StoreResult<Refused>> },
    Run(WriterJob),
}

/// How the threads work: the group size and the deadlines of replies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// At most this many queued `write` calls per transaction.
    pub(crate) max_group: usize,
    /// The deadline of reads and writes.
    pub(crate) operation_timeout: Duration,
    /// The deadline of `prune`, `mark_abandoned` and the hourly metrics.
    pub(crate) maintenance_timeout: Duration,
}

/// Handles on the threads. The threads stop when this is dropped (their
/// channels close).
///
/// All writes go to the writer thread, which commits every queued `write`
/// call in one transaction (group commit); the async side only sends a
/// message and awaits a oneshot reply, so no runtime thread ever blocks on
/// SQLite, and any runtime works. Queries run on a small pool of reader
/// threads (WAL lets them read while the writer writes), or on the writer
/// when there are none.
pub(crate) struct Worker {
    target: String,
    writer: mpsc::Sender<Command>,
    readers: Option<mpsc::Sender<ReadJob>>,
    reader_count: usize,
    limits: Limits,
}

impl Worker {
    /// Starts the writer thread, which opens its connection with `open`
    /// (migrating included) before this returns, and reports its error.
    pub(crate) async fn start(
        target: String,
        limits: Limits,
        open: impl FnOnce() -> Result<Connection> + Send + 'static,
    ) -> Result<Worker> {
        let (tx, rx) = mpsc::channel::<Command>();
        let (ready_tx, ready_rx) = oneshot::channel::<Result<()>>();
        let (wtarget, max_group) = (target.clone(), limits.max_group);
        spawn_thread("mscribe-sqlite-writer", &target, move || {
            writer_main(open, wtarget, max_group, rx, ready_tx)
        })?;
        mscribe_scheduler::external(ready_rx).await.map_err(|_| Error::Open {
            target: target.clone(),
            message: "the writer thread stopped while opening".to_owned(),
            source: None,
        })??;
        Ok(Worker { target, writer: tx, readers: None, reader_count: 0, limits })
    }

    /// Starts `n` reader threads, each with a connection from `open`, one
    /// after the other; the first that cannot open fails this.
    pub(crate) async fn start_readers(
        &mut self,
        n: usize,
        open: impl Fn() -> Result<Connection> + Clone + Send + 'static,
    ) -> Result<()> {
        let (rtx, rrx) = mpsc::channel::<ReadJob>();
        let rrx = Arc::new(Mutex::new(rrx));
        for i in 0..n {
            let (ready_tx, ready_rx) = oneshot::channel::<Result<()>>();
            let (open, rrx) = (open.clone(), rrx.clone());
            spawn_thread(&format!("mscribe-sqlite-reader-{i}"), &self.target, move || {
                reader_main(open, rrx, ready_tx)
            })?;
            mscribe_scheduler::external(ready_rx).await.map_err(|_| Error::Open {
                target: self.target.clone(),
                message: "a reader thread stopped while opening".to_owned(),
                source: None,
            })??;
        }
        self.readers = Some(rtx);
        self.reader_count = n;
        Ok(())
    }

    /// What the store is, for messages.
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// How many reader threads serve queries.
    pub(crate) fn reader_count(&self) -> usize {
        self.reader_count
    }

    /// The deadlines.
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    fn gone(&self, what: &str) -> StoreError {
        StoreError::Unavailable {
            message: format!("{}: the {what} thread has stopped", self.target),
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
        match mscribe_scheduler::external(select(rx, timer)).await {
            Either::Left((Ok(r), _)) => r,
            Either::Left((Err(_), _)) => Err(self.gone(thread)),
            Either::Right(((), _)) => Err(StoreError::Unavailable {
                message: format!(
                    "{}: {what} timed out after {limit:?} (the {thread} is busy or the disk stalls)",
                    self.target
                ),
                source: None,
            }),
        }
    }

    /// Queues rows for the writer's next group commit and awaits the
    /// outcome, up to the operation timeout: the fires of the events
    /// refused for a stale fence (the others were written).
    pub(crate) async fn write(&self, ops: Vec<Op>) -> StoreResult<Refused> {
        let (tx, rx) = oneshot::channel();
        self.writer.send(Command::Write { ops, reply: tx }).map_err(|_| self.gone("writer"))?;
        self.reply(rx, "write", "writer", self.limits.operation_timeout).await
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
        self.writer.send(Command::Run(job)).map_err(|_| self.gone("writer"))?;
        self.reply(rx, what, "writer", limit).await
    }

    /// Runs a query on a reader thread (or the writer, without readers),
    /// up to `limit`.
    pub(crate) async fn on_reader<T: Send + 'static>(
        &self,
        what: &str,
        limit: Duration,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        match &self.readers {
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

fn writer_main(
    open: impl FnOnce() -> Result<Connection>,
    target: String,
    max_group: usize,
    rx: mpsc::Receiver<Command>,
    ready: oneshot::Sender<Result<()>>,
) {
    let mut conn = match open() {
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
                while group.len() < max_group {
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
    open: impl FnOnce() -> Result<Connection>,
    rx: Arc<Mutex<mpsc::Receiver<ReadJob>>>,
    ready: oneshot::Sender<Result<()>>,
) {
    let conn = match open() {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(e));
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
fn write_group(
    conn: &mut Connection,
    group: Vec<(Vec<Op>, oneshot::Sender<StoreResult<Refused>>)>,
) {
    let single = group.len() == 1;
    let outcome = (|| -> rusqlite::Result<Vec<StoreResult<Refused>>> {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut results = Vec::with_capacity(group.len());
        for (ops, _) in &group {
            if single {
                results.push(Ok(apply_ops(&tx, ops)?));
                continue;
            }
            let sp = tx.savepoint()?;
            match apply_ops(&sp, ops) {
                Ok(refused) => {
                    sp.commit()?;
                    results.push(Ok(refused));
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

/// Writes the rows of one `write` call. Each end is first written as its
/// key is likely to be: a plain insert when its start was merged into it,
/// else an update of its start's row; only when that guess fails (a
/// retried call, a start never written) does the upsert run, so the final
/// row is the upsert's either way. A row whose event carries a fence
/// is written only when the fence is its fire's current one (checked here,
/// in the writer's immediate transaction, so a take-over is either before
/// or after it); a current fence that ends the fire ends its lease. The
/// rows refused are answered by fire; events without a fence pay nothing.
fn apply_ops(conn: &Connection, ops: &[Op]) -> rusqlite::Result<Refused> {
    let mut insert = conn.prepare_cached(sql::INSERT_IGNORE)?;
    let mut upsert = conn.prepare_cached(sql::UPSERT_END)?;
    let mut insert_new = conn.prepare_cached(sql::INSERT_NEW)?;
    let mut update_end = conn.prepare_cached(sql::UPDATE_END)?;
    let mut refused = Vec::new();
    for op in ops {
        let r: &Row = op.row();
        if let Some((fence, ends)) = r.fenced() {
            let at = ts_text(r.scheduled_at);
            let current = if ends {
                conn.prepare_cached(sql::END_LEASE_IF_CURRENT)?
                    .execute(params![r.job_id, at, fence])?
                    == 1
            } else {
                conn.prepare_cached(sql::FENCE_IS_CURRENT)?.exists(params![r.job_id, at, fence])?
            };
            if !current {
                r.refuse_into(&mut refused);
                continue;
            }
        }
        let id = r.execution_id.to_string();
        let done = match op {
            Op::Insert(_) => false,
            // An end with its start merged in is expected new: a plain
            // insert spares the upsert's conflict handling.
            Op::Upsert(_) if r.events == 2 => match insert_new.execute(row_params(r, &id)) {
                Ok(_) => true,
                Err(rusqlite::Error::SqliteFailure(e, _)) if key_taken(e.extended_code) => false,
                Err(e) => return Err(e),
            },
            // Another end is expected to find its start's row.
            Op::Upsert(_) => {
                update_end.execute(params![
                    r.status.as_str(),
                    r.completed_at.map(ts_text),
                    r.duration_ms,
                    r.error,
                    r.error_kind,
                    r.result,
                    r.metrics,
                    id,
                    r.attempt,
                ])? == 1
            }
        };
        if !done {
            let stmt = match op {
                Op::Insert(_) => &mut insert,
                Op::Upsert(_) => &mut upsert,
            };
            stmt.execute(row_params(r, &id))?;
        }
    }
    Ok(refused)
}

/// Whether an insert failed for its key being there already.
fn key_taken(extended_code: std::ffi::c_int) -> bool {
    use rusqlite::ffi::{SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE};
    extended_code == SQLITE_CONSTRAINT_UNIQUE || extended_code == SQLITE_CONSTRAINT_PRIMARYKEY
}

/// A row's 15 columns as the insert statements bind them.
fn row_params<'a>(r: &'a Row, id: &'a str) -> impl rusqlite::Params + 'a {
    (
        &r.job_id,
        id,
        r.attempt,
        r.status.as_str(),
        ts_text(r.scheduled_at),
        ts_text(r.started_at),
        r.completed_at.map(ts_text),
        r.duration_ms,
        &r.error,
        r.error_kind,
        &r.result,
        &r.metrics,
        &r.instance_id,
        r.kind,
        r.fence,
    )
}
