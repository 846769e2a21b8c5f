//! Applying the SQLite migrations at open, on the writer's connection, or
//! checking them, changing nothing, for a read-only open.

use chrono::Utc;
use rusqlite::{Connection, TransactionBehavior, params};

use super::error::{migration_step_error, step_error};
use super::sql;
use super::time::ts_text;
use crate::error::{Error, Result};
use crate::migrate::{Applied, Migration, check_current, plan};

/// Applies the missing migrations in one immediate transaction (which also
/// keeps two processes from migrating the same file at once).
///
/// Every error names its step and carries SQLite's own text.
pub(crate) fn migrate(conn: &mut Connection, target: &str, known: &[Migration]) -> Result<()> {
    let step = |step: &'static str| move |e: rusqlite::Error| migration_step_error(target, step, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(step("starting the transaction"))?;
    tx.execute_batch(sql::CREATE_MIGRATIONS_TABLE).map_err(step("creating mscribe_migrations"))?;
    let applied = applied(&tx).map_err(step("reading mscribe_migrations"))?;
    let pending = plan(known, &applied)?;
    for m in pending {
        let failed = |e: rusqlite::Error| Error::MigrationFailed {
            migration: m.label(),
            message: e.to_string(),
            source: Some(Box::new(e)),
        };
        tx.execute_batch(m.sql).map_err(failed)?;
        tx.execute(
            sql::RECORD_MIGRATION,
            params![m.version, m.name, m.checksum(), ts_text(Utc::now())],
        )
        .map_err(failed)?;
        tracing::info!(migration = %m.label(), database = target, "applied sqlite migration");
    }
    tx.commit().map_err(step("committing"))
}

/// The rows of `mscribe_migrations`, in order.
fn applied(conn: &Connection) -> rusqlite::Result<Vec<Applied>> {
    let mut stmt = conn.prepare(sql::APPLIED_MIGRATIONS)?;
    let rows = stmt.query_map([], |r| {
        Ok(Applied { version: r.get(0)?, name: r.get(1)?, checksum: r.get(2)? })
    })?;
    rows.collect()
}

/// Checks, reading only, that the database on `conn` has exactly the
/// migrations `known` (see [`check_current`]); a database without
/// `mscribe_migrations` was never migrated.
pub(crate) fn check(conn: &Connection, target: &str, known: &[Migration]) -> Result<()> {
    let step = |step: &'static str| {
        move |e: rusqlite::Error| step_error(target, "checking the schema", step, e)
    };
    let exists: bool = conn
        .query_row(sql::MIGRATIONS_TABLE_EXISTS, [], |r| r.get(0))
        .map_err(step("looking for mscribe_migrations"))?;
    let applied = if exists {
        applied(conn).map_err(step("reading mscribe_migrations"))?
    } else {
        Vec::new()
    };
    check_current(known, &applied, target)
}
