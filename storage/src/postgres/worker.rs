//! How the Postgres store runs operations: every one under a deadline
//! ([`timed`]), and the write path, which turns a batch of rows into at
//! most two multi-row statements, whatever its size.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use mscribe_scheduler::{ExecutionId, StoreResult};
use sqlx::postgres::PgPool;
use sqlx::{PgConnection, Row as _};

use super::error::{store_error, timeout_error};
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

/// Writes a batch of rows.
///
/// The final state of a key after a sequence of "insert or ignore" (start,
/// skip) and "insert or set the end fields" (end) is: the first event's
/// whole row if the key was new, then the last end's end fields. So: one
/// INSERT .. DO NOTHING of each key's first row, then one UPDATE with each
/// key's last end, skipping the keys whose last end is the very row just
/// inserted.
pub(crate) async fn write_ops(pool: &PgPool, ops: &[Op]) -> Result<(), sqlx::Error> {
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
        insert_rows(pool, first.iter().map(|(_, r)| *r), false).await?;
        return Ok(());
    }
    let mut tx = pool.begin().await?;
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

/// Inserts rows, ignoring existing keys; with `returning`, gives the keys
/// actually inserted.
async fn insert_rows<'e, 'r>(
    exec: impl sqlx::PgExecutor<'e>,
    rows: impl Iterator<Item = &'r Row>,
    returning: bool,
) -> Result<HashSet<(ExecutionId, i32)>, sqlx::Error> {
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
    let sql = if returning { sql::INSERT_ROWS_RETURNING } else { sql::INSERT_ROWS };
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
