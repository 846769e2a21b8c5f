//! Applying the Postgres migrations at open, on a connection of their own,
//! or checking them, changing nothing, for a read-only open.

use sqlx::{Connection, Executor as _, PgConnection};

use super::error::{migration_failed, migration_step_error, step_error};
use super::sql;
use crate::error::Result;
use crate::migrate::{Applied, Migration, check_current, plan};

/// The advisory lock taken while migrating, so that instances starting
/// together migrate one after the other ("mscribe" in ASCII).
const LOCK_KEY: i64 = 0x006d_7363_7269_6265;

/// Applies the missing migrations in one transaction, under an advisory
/// lock. DDL is transactional in Postgres: a failing migration leaves
/// nothing behind.
///
/// The lock is a transaction-level one (`pg_advisory_xact_lock`), taken
/// before anything is read: instances that start together on a new
/// database queue on it; the first creates `mscribe_migrations` and applies
/// everything; each next one, once the first has committed, reads what was
/// applied and finds nothing left to do. It goes with the transaction, so a
/// connection lost mid-migration never leaves it held. Advisory locks are
/// per database: migrating another database never waits on this one.
///
/// Every error names its step and carries the server's own text (and its
/// SQLSTATE, DETAIL and HINT).
pub(crate) async fn migrate(
    conn: &mut PgConnection,
    target: &str,
    known: &[Migration],
) -> Result<()> {
    let step = |step: &'static str| move |e: sqlx::Error| migration_step_error(target, step, e);
    let mut tx = conn.begin().await.map_err(step("starting the transaction"))?;
    sqlx::query(sql::MIGRATION_LOCK)
        .bind(LOCK_KEY)
        .execute(&mut *tx)
        .await
        .map_err(step("taking the migration lock"))?;
    // Only create the table when missing: a role without CREATE on the
    // schema (a service_role member) may still open a migrated database.
    let exists: bool = sqlx::query_scalar(sql::MIGRATIONS_TABLE_EXISTS)
        .fetch_one(&mut *tx)
        .await
        .map_err(step("looking for mscribe_migrations"))?;
    // `Executor::execute` rather than `raw_sql(..).execute(..)`: the latter
    // is an `async fn` generic over the executor's lifetime, which made
    // rustc unable to prove `PostgresStore::connect_with` `Send` for every
    // lifetime, so it could not be `tokio::spawn`ed ("implementation of
    // `Executor` is not general enough").
    if !exists {
        (&mut *tx)
            .execute(sqlx::raw_sql(sql::CREATE_MIGRATIONS_TABLE))
            .await
            .map_err(step("creating mscribe_migrations"))?;
    }
    let applied: Vec<Applied> = sqlx::query_as::<_, (i64, String, String)>(sql::APPLIED_MIGRATIONS)
        .fetch_all(&mut *tx)
        .await
        .map_err(step("reading mscribe_migrations"))?
        .into_iter()
        .map(|(version, name, checksum)| Applied { version, name, checksum })
        .collect();
    let pending = plan(known, &applied)?;
    for m in pending {
        let failed = |e: sqlx::Error| migration_failed(m.label(), e);
        (&mut *tx).execute(sqlx::raw_sql(m.sql)).await.map_err(failed)?;
        sqlx::query(sql::RECORD_MIGRATION)
            .bind(m.version)
            .bind(m.name)
            .bind(m.checksum())
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tracing::info!(migration = %m.label(), database = target, "applied postgres migration");
    }
    tx.commit().await.map_err(step("committing"))
}

/// Checks, reading only (no lock, no table created), that the database on
/// `conn` has exactly the migrations `known` (see [`check_current`]); a
/// database without `mscribe_migrations` was never migrated.
pub(crate) async fn check(
    conn: &mut PgConnection,
    target: &str,
    known: &[Migration],
) -> Result<()> {
    let step = |step: &'static str| {
        move |e: sqlx::Error| step_error(target, "checking the schema", step, e)
    };
    let exists: bool = sqlx::query_scalar(sql::MIGRATIONS_TABLE_EXISTS)
        .fetch_one(&mut *conn)
        .await
        .map_err(step("looking for mscribe_migrations"))?;
    let applied: Vec<Applied> = if exists {
        sqlx::query_as::<_, (i64, String, String)>(sql::APPLIED_MIGRATIONS)
            .fetch_all(&mut *conn)
            .await
            .map_err(step("reading mscribe_migrations"))?
            .into_iter()
            .map(|(version, name, checksum)| Applied { version, name, checksum })
            .collect()
    } else {
        Vec::new()
    };
    check_current(known, &applied, target)
}
