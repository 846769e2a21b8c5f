//! How the Postgres store runs operations: every one under a deadline
//! ([`timed`]), and the write path, which turns a batch of rows into one
//! multi-row statement (two when a key comes twice), whatever its size,
//! split over two connections when large, plus the fence check when rows
//! carry fences.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mscribe_scheduler::{ExecutionId, StoreResult};
use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};
use sqlx::postgres::PgPool;
use sqlx::types::Uuid;
use sqlx::{PgConnection, Row as _};

use super::error::{store_error, timeout_error};
use super::shaped::Shaped;
use super::sql;
use crate::codec::{Op, Row};

/// Runs `fut` (the operation `what` on `target`) up to `limit`: past it the
/// operation fails as unavailable; a driver error maps as
/// [`store_error`] does.
pub(crate) async fn timed<T>(
    target: &str,
    what: &str,
    limit: Duration,
    fut: impl Future<Output = Result<T, sqlx::Error>>,
) -> StoreResult<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(store_error(target, what, e)),
        Err(_) => Err(timeout_error(target, what, limit)),
    }
}

/// Writes a batch of rows; answers the fires of the events refused for a
/// stale fence (the others were written).
///
/// Rows without a fence (the common case) go as [`write_rows`] says. When
/// some rows carry one, the batch is one transaction that first locks the
/// claims of their fires, in key order, and reads their fences: a take-over
/// ([`sql::RETAKE_FIRE`]) is then wholly before or after it. A row whose
/// fence is not its fire's current one is left out; an admitted row that
/// ends its fire ends the claim's lease, in the same transaction.
pub(crate) async fn write_ops(pool: &PgPool, ops: &[Op]) -> Result<Vec<String>, sqlx::Error> {
    if ops.iter().all(|op| op.row().fence.is_none()) {
        write_rows(pool, ops.iter()).await?;
        return Ok(Vec::new());
    }
    let mut tx = pool.begin().await?;
    let current = lock_fences(&mut tx, ops).await?;
    let mut refused = Vec::new();
    let mut kept = Vec::with_capacity(ops.len());
    let (mut end_jobs, mut end_times, mut end_fences) = (Vec::new(), Vec::new(), Vec::new());
    for op in ops {
        let r = op.row();
        if let Some((fence, ends)) = r.fenced() {
            if current.get(&(&*r.job_id, r.scheduled_at)) != Some(&fence) {
                r.refuse_into(&mut refused);
                continue;
            }
            if ends {
                end_jobs.push(&*r.job_id);
                end_times.push(r.scheduled_at);
                end_fences.push(fence);
            }
        }
        kept.push(op);
    }
    write_rows_in(&mut tx, kept.into_iter()).await?;
    if !end_jobs.is_empty() {
        sqlx::query(sql::END_LEASES)
            .bind(end_jobs)
            .bind(end_times)
            .bind(end_fences)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(refused)
}

/// Locks the claims of the fires of the rows that carry a fence; their
/// current fences, by fire.
async fn lock_fences<'o>(
    conn: &mut PgConnection,
    ops: &'o [Op],
) -> Result<HashMap<(&'o str, DateTime<Utc>), i64>, sqlx::Error> {
    let (mut jobs, mut times) = (Vec::new(), Vec::new());
    for op in ops {
        let r = op.row();
        if r.fence.is_some() {
            jobs.push(&*r.job_id);
            times.push(r.scheduled_at);
        }
    }
    let rows: Vec<(String, DateTime<Utc>, i64)> =
        sqlx::query_as(sql::LOCK_FENCES).bind(&jobs).bind(&times).fetch_all(conn).await?;
    let by_fire: HashMap<(String, DateTime<Utc>), i64> =
        rows.into_iter().map(|(j, t, f)| ((j, t), f)).collect();
    Ok(jobs
        .into_iter()
        .zip(times)
        .filter_map(|(j, t)| by_fire.get(&(j.to_owned(), t)).map(|f| ((j, t), *f)))
        .collect())
}

/// Which rows a batch inserts, and which ends it then applies.
///
/// The final state of a key after a sequence of "insert or ignore" (start,
/// skip) and "insert or set the end fields" (end) is: the first event's
/// whole row if the key was new, then the last end's end fields. So: one
/// INSERT .. DO NOTHING of each key's first row, then one UPDATE with each
/// key's last end, skipping the keys whose last end is the very row just
/// inserted.
struct Plan<'r> {
    first: Vec<(usize, &'r Row)>,
    /// Per row of `first`, whether its key is expected to be new: a start,
    /// a skip, or an end with its start merged in. Other ends are expected
    /// to find their start's row.
    fresh: Vec<bool>,
    /// Per row of `first`, whether it is an end (upserted, not inserted).
    ends: Vec<bool>,
    /// Whether every key came once: then starts and skips are one insert
    /// and ends one upsert, with no keys to read back.
    distinct: bool,
    /// When a key came more than once, each key's last end; empty otherwise
    /// (`ends` says all).
    last_end: FxHashMap<(ExecutionId, i32), (usize, &'r Row)>,
}

impl<'r> Plan<'r> {
    fn new(ops: &[&'r Op]) -> Self {
        let n = ops.len();
        let mut seen = FxHashSet::with_capacity_and_hasher(n, FxBuildHasher);
        let mut first: Vec<(usize, &Row)> = Vec::with_capacity(n);
        let (mut fresh, mut ends) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (i, op) in ops.iter().enumerate() {
            let row = op.row();
            if seen.insert(row.key()) {
                first.push((i, row));
                fresh.push(matches!(op, Op::Insert(_)) || row.events == 2);
                ends.push(matches!(op, Op::Upsert(_)));
            }
        }
        let distinct = first.len() == n;
        let last_end = if distinct {
            FxHashMap::default()
        } else {
            let ends = ops.iter().enumerate().filter_map(|(i, op)| match op {
                Op::Upsert(r) => Some((r.key(), (i, r))),
                Op::Insert(_) => None,
            });
            ends.collect()
        };
        Plan { first, fresh, ends, distinct, last_end }
    }

    /// A plan of distinct keys cut in two at its middle (no key can be in
    /// both halves).
    fn split(mut self) -> (Self, Self) {
        let mid = self.first.len() / 2;
        let b = Plan {
            first: self.first.split_off(mid),
            fresh: self.fresh.split_off(mid),
            ends: self.ends.split_off(mid),
            distinct: true,
            last_end: FxHashMap::default(),
        };
        (self, b)
    }

    /// The ends to apply once the first rows are in (`inserted`: the keys
    /// the insert added), in batch order.
    fn updates(self, inserted: &FxHashSet<(ExecutionId, i32)>) -> Vec<&'r Row> {
        let first_index: FxHashMap<(ExecutionId, i32), usize> =
            self.first.iter().map(|(i, r)| (r.key(), *i)).collect();
        let mut updates: Vec<(usize, &Row)> = self
            .last_end
            .into_iter()
            .filter(|(key, (i, _))| !(inserted.contains(key) && first_index.get(key) == Some(i)))
            .map(|(_, v)| v)
            .collect();
        updates.sort_by_key(|(i, _)| *i);
        updates.into_iter().map(|(_, r)| r).collect()
    }
}

/// Writes rows without a fence. A batch in which no key comes twice (the
/// common case) is one statement, atomic on its own; otherwise a
/// transaction of an insert and an update.
///
/// A batch of [`SPLIT_AT`] rows or more is cut in two (its plan at the
/// middle when no key comes twice, else by [`halves`], each half planned
/// again), each half written at once on its own pooled connection:
/// Postgres then works on both cores. The halves commit apart, so a call
/// that fails may leave one written; its retry writes it again, which the
/// inserts and upserts make harmless (`ExecutionStore::write` is idempotent
/// per event, and each key's events stay in order in their half).
async fn write_rows<'r>(
    pool: &PgPool,
    ops: impl Iterator<Item = &'r Op>,
) -> Result<(), sqlx::Error> {
    let ops: Vec<&Op> = ops.collect();
    let plan = Plan::new(&ops);
    if ops.len() < SPLIT_AT || pool.options().get_max_connections() < 2 {
        return write_plan(pool, plan).await;
    }
    let (a, b) = if plan.distinct {
        plan.split()
    } else {
        let (a, b) = halves(ops);
        (Plan::new(&a), Plan::new(&b))
    };
    futures::future::try_join(write_plan(pool, a), write_plan(pool, b)).await.map(drop)
}

/// A batch cut in two at its middle, each key's rows kept in the half of
/// its first, in order.
fn halves(ops: Vec<&Op>) -> (Vec<&Op>, Vec<&Op>) {
    let mid = ops.len() / 2;
    let first: FxHashSet<(ExecutionId, i32)> = ops[..mid].iter().map(|op| op.row().key()).collect();
    let mut a = ops;
    let tail = a.split_off(mid);
    let mut b = Vec::with_capacity(tail.len());
    for op in tail {
        if first.contains(&op.row().key()) { a.push(op) } else { b.push(op) }
    }
    (a, b)
}

/// Rows in a batch from which it is split over two connections: under it
/// the second round trip costs more than the work it shares.
const SPLIT_AT: usize = 256;

/// [`write_rows`] of one plan, on one connection.
async fn write_plan(pool: &PgPool, plan: Plan<'_>) -> Result<(), sqlx::Error> {
    if plan.first.is_empty() {
        return Ok(());
    }
    if plan.distinct {
        return write_expected(pool, &plan).await;
    }
    let mut tx = pool.begin().await?;
    apply_plan(&mut tx, plan).await?;
    tx.commit().await
}

/// Writes a plan in which no key comes twice as the rows say is likely, in
/// one statement shaped to the batch ([`Shaped`]): the keys expected new by
/// a plain insert, the ends of starts written before by an update. That
/// spares the speculative insertion of `ON CONFLICT` (13–30% more server
/// time than a plain insert of the same rows, in psql). When the guess is
/// wrong, because a key was there (a retried call:
/// the statement fails as a whole, having written nothing) or an end found
/// no row (its start was never written), the plan is written again by
/// [`write_distinct`], whose inserts and upserts take any state.
async fn write_expected(pool: &PgPool, plan: &Plan<'_>) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let rows: Vec<&Row> = plan.first.iter().map(|(_, r)| *r).collect();
    let known = plan.fresh.iter().filter(|f| !**f).count();
    let guessed = if known == 0 {
        let shaped = Shaped::rows(&rows)?;
        let sql = format!("{}{}", sql::INSERT_NEW_INTO, shaped.select());
        sqlx::query_with(&sql, shaped.arguments()).execute(&mut *conn).await.map(|_| 0)
    } else {
        let flags = plan.fresh.iter().map(|f| !f).collect();
        let shaped = Shaped::rows(&rows)?.flags(flags)?;
        let sql = sql::write_expected(&shaped.select());
        sqlx::query_with(&sql, shaped.arguments())
            .execute(&mut *conn)
            .await
            .map(|d| d.rows_affected() as usize)
    };
    match guessed {
        Ok(updated) if updated == known => return Ok(()),
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {}
        Err(e) => return Err(e),
    }
    write_distinct(&mut *conn, plan).await
}

/// Writes a plan in which no key comes twice as one statement: starts and
/// skips inserted (a conflict ignored), ends upserted.
async fn write_distinct<'e>(
    exec: impl sqlx::PgExecutor<'e>,
    plan: &Plan<'_>,
) -> Result<(), sqlx::Error> {
    let rows = plan.first.iter().map(|(_, r)| *r);
    let ends = plan.ends.iter().filter(|e| **e).count();
    if ends == 0 {
        insert_rows(exec, rows, false).await?;
    } else if ends == plan.first.len() {
        write_arrays(exec, rows, sql::UPSERT_ENDS, false).await?;
    } else {
        let rows: Vec<&Row> = rows.collect();
        let shaped = Shaped::rows(&rows)?.flags(plan.ends.clone())?;
        let sql = sql::write_distinct(&shaped.select());
        sqlx::query_with(&sql, shaped.arguments()).execute(exec).await?;
    }
    Ok(())
}

/// [`write_rows`] inside a transaction the caller holds.
async fn write_rows_in<'r>(
    conn: &mut PgConnection,
    ops: impl Iterator<Item = &'r Op>,
) -> Result<(), sqlx::Error> {
    let ops: Vec<&Op> = ops.collect();
    let plan = Plan::new(&ops);
    if plan.first.is_empty() {
        return Ok(());
    }
    apply_plan(conn, plan).await
}

async fn apply_plan(conn: &mut PgConnection, plan: Plan<'_>) -> Result<(), sqlx::Error> {
    if plan.distinct {
        return write_distinct(conn, &plan).await;
    }
    let returning = !plan.last_end.is_empty();
    let inserted = insert_rows(&mut *conn, plan.first.iter().map(|(_, r)| *r), returning).await?;
    let updates = plan.updates(&inserted);
    if !updates.is_empty() {
        update_ends(conn, updates.into_iter()).await?;
    }
    Ok(())
}

/// Inserts rows, ignoring existing keys; with `returning`, gives the keys
/// actually inserted.
async fn insert_rows<'e, 'r>(
    exec: impl sqlx::PgExecutor<'e>,
    rows: impl Iterator<Item = &'r Row>,
    returning: bool,
) -> Result<FxHashSet<(ExecutionId, i32)>, sqlx::Error> {
    let sql = if returning { sql::INSERT_ROWS_RETURNING } else { sql::INSERT_ROWS };
    write_arrays(exec, rows, sql, returning).await
}

/// Binds rows as one array per column to `sql` (an insert from
/// `UNNEST`); with `returning`, gives the keys the statement answers.
async fn write_arrays<'e, 'r>(
    exec: impl sqlx::PgExecutor<'e>,
    rows: impl Iterator<Item = &'r Row>,
    sql: &'static str,
    returning: bool,
) -> Result<FxHashSet<(ExecutionId, i32)>, sqlx::Error> {
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
    let mut kind = Vec::with_capacity(n);
    let mut fence = Vec::with_capacity(n);
    for r in rows {
        job_id.push(&*r.job_id);
        execution_id.push(uuid(r.execution_id));
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
        instance_id.push(&*r.instance_id);
        kind.push(r.kind);
        fence.push(r.fence);
    }
    let q = sqlx::query(sql)
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
        .bind(instance_id)
        .bind(kind)
        .bind(fence);
    if !returning {
        q.execute(exec).await?;
        return Ok(FxHashSet::default());
    }
    let mut keys = FxHashSet::default();
    for row in q.fetch_all(exec).await? {
        let id: Uuid = row.try_get(0)?;
        keys.insert((ExecutionId::from_u128(id.as_u128()), row.try_get::<i32, _>(1)?));
    }
    Ok(keys)
}

async fn update_ends<'r>(
    conn: &mut PgConnection,
    rows: impl Iterator<Item = &'r Row>,
) -> Result<(), sqlx::Error> {
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
        execution_id.push(uuid(r.execution_id));
        attempt.push(r.attempt);
        status.push(r.status.as_str());
        completed_at.push(r.completed_at);
        duration_ms.push(r.duration_ms);
        error.push(r.error.as_deref());
        error_kind.push(r.error_kind);
        result.push(r.result.as_deref());
        metrics.push(r.metrics.as_deref());
    }
    sqlx::query(sql::UPDATE_ENDS)
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

/// An execution id as Postgres' `uuid`, bound in binary.
pub(crate) fn uuid(id: ExecutionId) -> Uuid {
    Uuid::from_u128(id.as_u128())
}
