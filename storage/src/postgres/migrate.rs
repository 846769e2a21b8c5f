//! Applying the Postgres migrations at open.

use sqlx::{Connection, PgConnection};

use super::error::connect_error;
use crate::error::{Error, Result};
use crate::migrate::{Applied, Migration, plan};

/// The advisory lock taken while migrating, so that instances starting
/// together migrate one after the other ("mscribe" in ASCII).
const LOCK_KEY: i64 = 0x006d_7363_7269_6265;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS mscribe_migrations (
    version     bigint PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)";

/// Applies the missing migrations in one transaction, under an advisory
/// lock. DDL is transactional in Postgres: a failing migration leaves
/// nothing behind.
pub(crate) async fn migrate(
    conn: &mut PgConnection,
    target: &str,
    known: &[Migration],
) -> Result<()> {
    let mut tx = conn.begin().await.map_err(|e| connect_error(target, e))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *tx)
        .await
        .map_err(|e| connect_error(target, e))?;
    // Only create the table when missing: a role without CREATE on the
    // schema (a service_role member) may still open a migrated database.
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('mscribe_migrations') IS NOT NULL")
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| connect_error(target, e))?;
    if !exists {
        sqlx::raw_sql(CREATE_TABLE)
            .execute(&mut *tx)
            .await
            .map_err(|e| connect_error(target, e))?;
    }
    let applied: Vec<Applied> = sqlx::query_as::<_, (i64, String, String)>(
        "SELECT version, name, checksum FROM mscribe_migrations ORDER BY version",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| connect_error(target, e))?
    .into_iter()
    .map(|(version, name, checksum)| Applied { version, name, checksum })
    .collect();
    let pending = plan(known, &applied)?;
    for m in pending {
        let failed = |e: sqlx::Error| {
            let message = match &e {
                sqlx::Error::Database(db) => match db.code() {
                    Some(code) => format!("{} (SQLSTATE {code})", db.message()),
                    None => db.message().to_owned(),
                },
                other => other.to_string(),
            };
            Error::MigrationFailed { migration: m.label(), message, source: Some(Box::new(e)) }
        };
        sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(failed)?;
        sqlx::query("INSERT INTO mscribe_migrations (version, name, checksum) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(m.checksum())
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tracing::info!(migration = %m.label(), database = target, "applied postgres migration");
    }
    tx.commit().await.map_err(|e| connect_error(target, e))
}
