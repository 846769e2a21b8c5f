//! The database behind the server: a [`SqliteStore`] or a [`PostgresStore`]
//! from `mscribe-storage`, plus what the server keeps beside the executions
//! (the `job_metrics_hourly` table) and raw access for backups.
//!
//! The storage crate's migration list is fixed at build time, so the
//! server's own table is created here with `CREATE TABLE IF NOT EXISTS`
//! whenever a database is opened (see [`SERVER_SCHEMA_SQLITE`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::{ExecutionStatus, ExecutionStore, Probe, ProbeReport};
use mscribe_storage::{PostgresProbe, PostgresStore, SqliteOptions, SqliteProbe, SqliteStore};

use crate::config::is_postgres_url;

/// Why a database operation of the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// Opening or migrating the store failed.
    #[error(transparent)]
    Open(#[from] mscribe_storage::Error),
    /// A query of the server's own failed.
    #[error("{target}: {message}")]
    Query {
        /// The database.
        target: String,
        /// What failed.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The operation needs a database file and this one is in memory.
    #[error("{0} is in memory; {1} needs a database file")]
    InMemory(String, &'static str),
    /// The blocking task that ran a query of the server's own (SQLite, on
    /// a thread of its own) panicked or was cancelled, so the query has no
    /// answer.
    #[error("{target}: {what}: the blocking task failed")]
    Task {
        /// The database.
        target: String,
        /// What the task was doing.
        what: String,
        /// Why the task ended without a result.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// The SQLite schema of the server's own table.
pub const SERVER_SCHEMA_SQLITE: &str = "\
CREATE TABLE IF NOT EXISTS job_metrics_hourly (
    job_id        TEXT    NOT NULL,
    hour_start    TEXT    NOT NULL,
    runs          INTEGER NOT NULL,
    successes     INTEGER NOT NULL,
    failures      INTEGER NOT NULL,
    skipped       INTEGER NOT NULL,
    success_rate  REAL,
    p50_ms        INTEGER,
    p95_ms        INTEGER,
    updated_at    TEXT    NOT NULL,
    PRIMARY KEY (job_id, hour_start)
);
CREATE INDEX IF NOT EXISTS job_metrics_hourly_hour ON job_metrics_hourly (hour_start);";

/// The Postgres schema of the server's own table.
pub const SERVER_SCHEMA_POSTGRES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS job_metrics_hourly (
    job_id        text             NOT NULL,
    hour_start    timestamptz      NOT NULL,
    runs          bigint           NOT NULL,
    successes     bigint           NOT NULL,
    failures      bigint           NOT NULL,
    skipped       bigint           NOT NULL,
    success_rate  double precision,
    p50_ms        bigint,
    p95_ms        bigint,
    updated_at    timestamptz      NOT NULL,
    PRIMARY KEY (job_id, hour_start)
)",
    "CREATE INDEX IF NOT EXISTS job_metrics_hourly_hour ON job_metrics_hourly (hour_start)",
];

/// An open database.
#[derive(Debug, Clone)]
pub enum Database {
    /// A SQLite file or in-memory database.
    Sqlite {
        /// The store.
        store: SqliteStore,
        /// The file, `None` in memory.
        path: Option<PathBuf>,
    },
    /// A Postgres database.
    Postgres {
        /// The store (its pool serves the server's queries too).
        store: PostgresStore,
        /// The URL, password included (never logged).
        url: String,
    },
}

/// One attempt row, as the metric rollup reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    /// The job.
    pub job_id: String,
    /// The run.
    pub execution_id: String,
    /// The attempt (0 for a skipped fire).
    pub attempt: u32,
    /// Its status.
    pub status: ExecutionStatus,
    /// The nominal fire time.
    pub scheduled_at: DateTime<Utc>,
    /// How long it ran.
    pub duration_ms: Option<u64>,
}

/// One row of `job_metrics_hourly`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HourlyRow {
    /// The job.
    pub job_id: String,
    /// The hour (by nominal fire time), UTC.
    pub hour_start: DateTime<Utc>,
    /// Runs that ended (retries count once, by their last attempt).
    pub runs: u64,
    /// Runs whose last attempt succeeded.
    pub successes: u64,
    /// Runs that ended in a failure status.
    pub failures: u64,
    /// Fires recorded as skipped.
    pub skipped: u64,
    /// `successes / runs`, none without runs.
    pub success_rate: Option<f64>,
    /// The median duration of the runs' last attempts.
    pub p50_ms: Option<u64>,
    /// The 95th percentile of the same.
    pub p95_ms: Option<u64>,
}

impl Database {
    /// Opens `url` (`sqlite://PATH`, `sqlite::memory:`, `postgres://...`),
    /// applying the storage migrations and creating the server's table.
    /// A new SQLite file is made readable by its owner only.
    pub async fn open(url: &str) -> Result<Database, DbError> {
        let db = if is_postgres_url(url) {
            let store = PostgresStore::connect(url).await?;
            Database::Postgres { store, url: url.to_owned() }
        } else {
            let opts = SqliteOptions::from_url(url)?;
            let path = opts.path().map(Path::to_path_buf);
            if let Some(p) = &path
                && let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|e| DbError::Query {
                    target: format!("sqlite database {}", p.display()),
                    message: format!("cannot create directory {}: {e}", dir.display()),
                    source: Some(Box::new(e)),
                })?;
            }
            // A new database file is created 0600 before SQLite opens it:
            // SQLite gives its -wal and -shm files the same mode.
            if let Some(p) = &path
                && !p.exists()
            {
                use std::os::unix::fs::OpenOptionsExt;
                if let Err(e) =
                    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(p)
                {
                    tracing::debug!(path = %p.display(), error = %e, "could not pre-create the database file");
                }
            }
            let store = SqliteStore::open_with(opts).await?;
            Database::Sqlite { store, path }
        };
        db.ensure_server_schema().await?;
        Ok(db)
    }

    /// The execution store.
    pub fn store(&self) -> Arc<dyn ExecutionStore> {
        match self {
            Database::Sqlite { store, .. } => Arc::new(store.clone()),
            Database::Postgres { store, .. } => Arc::new(store.clone()),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Database::Sqlite { .. } => "sqlite",
            Database::Postgres { .. } => "postgres",
        }
    }

    /// The database for messages (no password).
    pub fn target(&self) -> String {
        match self {
            Database::Sqlite { store, .. } => store.target().to_owned(),
            Database::Postgres { store, .. } => store.target().to_owned(),
        }
    }

    /// The SQLite file, if any.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite { path, .. } => path.as_deref(),
            Database::Postgres { .. } => None,
        }
    }

    /// The health probe, named `database`, critical.
    pub fn probe(&self, timeout: Duration) -> Arc<dyn Probe> {
        Arc::new(DatabaseProbe {
            inner: match self {
                Database::Sqlite { store, .. } => {
                    ProbeKind::Sqlite(SqliteProbe::new(store).timeout(timeout))
                }
                Database::Postgres { store, .. } => {
                    ProbeKind::Postgres(PostgresProbe::new(store).timeout(timeout))
                }
            },
        })
    }

    /// Closes connections (the Postgres pool); SQLite threads stop when the
    /// last handle is dropped.
    pub async fn close(&self) {
        if let Database::Postgres { store, .. } = self {
            store.close().await;
        }
    }

    fn query_error(
        &self,
        message: impl Into<String>,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> DbError {
        // The driver's own text is part of the message: the CLI prints a
        // start error's Display only.
        let message = format!("{}: {e}", message.into());
        DbError::Query { target: self.target(), message, source: Some(Box::new(e)) }
    }

    /// The [`DbError`] of [`blocking`] work doing `what`: a failed query is
    /// [`DbError::Query`], a failed task [`DbError::Task`].
    fn blocking_error(&self, what: &str, e: BlockingError) -> DbError {
        match e {
            BlockingError::Query(e) => self.query_error(what, e),
            BlockingError::Task(source) => {
                DbError::Task { target: self.target(), what: what.to_owned(), source }
            }
        }
    }

    /// Creates `job_metrics_hourly` if missing.
    pub async fn ensure_server_schema(&self) -> Result<(), DbError> {
        match self {
            Database::Sqlite { path: None, .. } => Ok(()),
            Database::Sqlite { path: Some(p), .. } => {
                let p = p.clone();
                blocking(move || {
                    let c = sqlite_conn(&p)?;
                    c.execute_batch(SERVER_SCHEMA_SQLITE)
                })
                .await
                .map_err(|e| match e {
                    BlockingError::Query(e) => DbError::Query {
                        target: self.target(),
                        message: format!("creating job_metrics_hourly: {e}"),
                        source: Some(Box::new(e)),
                    },
                    task @ BlockingError::Task(_) => {
                        self.blocking_error("creating job_metrics_hourly", task)
                    }
                })
            }
            Database::Postgres { store, .. } => {
                for stmt in SERVER_SCHEMA_POSTGRES {
                    sqlx::query(stmt)
                        .execute(store.pool())
                        .await
                        .map_err(|e| self.query_error("creating job_metrics_hourly", e))?;
                }
                Ok(())
            }
        }
    }

    /// The attempt rows whose nominal fire time is in `[from, to)`.
    pub async fn attempts_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AttemptRow>, DbError> {
        match self {
            Database::Sqlite { path: None, .. } => {
                Err(DbError::InMemory(self.target(), "metric aggregation"))
            }
            Database::Sqlite { path: Some(p), .. } => {
                let p = p.clone();
                let raw = blocking(move || {
                    let c = sqlite_conn(&p)?;
                    let mut st = c.prepare(
                        "SELECT job_id, execution_id, attempt, status, scheduled_at, duration_ms
                         FROM scheduled_job_executions
                         WHERE scheduled_at >= ?1 AND scheduled_at < ?2",
                    )?;
                    let rows =
                        st.query_map(rusqlite::params![ts_text(from), ts_text(to)], |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, String>(1)?,
                                r.get::<_, i64>(2)?,
                                r.get::<_, String>(3)?,
                                r.get::<_, String>(4)?,
                                r.get::<_, Option<i64>>(5)?,
                            ))
                        })?;
                    rows.collect::<Result<Vec<_>, _>>()
                })
                .await
                .map_err(|e| self.blocking_error("reading executions", e))?;
                raw.into_iter()
                    .map(|(job_id, execution_id, attempt, status, scheduled, duration)| {
                        let scheduled_at =
                            DateTime::parse_from_rfc3339(&scheduled).map(|t| t.to_utc()).map_err(
                                |e| self.query_error(format!("bad scheduled_at {scheduled:?}"), e),
                            )?;
                        decode_row(job_id, execution_id, attempt, &status, scheduled_at, duration)
                            .map_err(|m| DbError::Query {
                                target: self.target(),
                                message: m,
                                source: None,
                            })
                    })
                    .collect()
            }
            Database::Postgres { store, .. } => {
                let rows: Vec<PgAttemptRow> = sqlx::query_as(
                    "SELECT job_id, execution_id::text, attempt, status, scheduled_at, duration_ms
                         FROM scheduled_job_executions
                         WHERE scheduled_at >= $1 AND scheduled_at < $2",
                )
                .bind(from)
                .bind(to)
                .fetch_all(store.pool())
                .await
                .map_err(|e| self.query_error("reading executions", e))?;
                rows.into_iter()
                    .map(|(job_id, execution_id, attempt, status, scheduled_at, duration)| {
                        decode_row(
                            job_id,
                            execution_id,
                            i64::from(attempt),
                            &status,
                            scheduled_at,
                            duration,
                        )
                        .map_err(|m| DbError::Query {
                            target: self.target(),
                            message: m,
                            source: None,
                        })
                    })
                    .collect()
            }
        }
    }

    /// Inserts or replaces hourly rows (keyed by job and hour), in one
    /// transaction.
    pub async fn upsert_hourly(
        &self,
        rows: &[HourlyRow],
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        match self {
            Database::Sqlite { path: None, .. } => {
                Err(DbError::InMemory(self.target(), "metric aggregation"))
            }
            Database::Sqlite { path: Some(p), .. } => {
                let p = p.clone();
                let rows = rows.to_vec();
                blocking(move || {
                    let mut c = sqlite_conn(&p)?;
                    let tx =
                        c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    {
                        let mut st = tx.prepare(
                            "INSERT INTO job_metrics_hourly
                               (job_id, hour_start, runs, successes, failures, skipped,
                                success_rate, p50_ms, p95_ms, updated_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                             ON CONFLICT (job_id, hour_start) DO UPDATE SET
                               runs = excluded.runs, successes = excluded.successes,
                               failures = excluded.failures, skipped = excluded.skipped,
                               success_rate = excluded.success_rate, p50_ms = excluded.p50_ms,
                               p95_ms = excluded.p95_ms, updated_at = excluded.updated_at",
                        )?;
                        for r in &rows {
                            st.execute(rusqlite::params![
                                r.job_id,
                                ts_text(r.hour_start),
                                i64_of(r.runs),
                                i64_of(r.successes),
                                i64_of(r.failures),
                                i64_of(r.skipped),
                                r.success_rate,
                                r.p50_ms.map(i64_of),
                                r.p95_ms.map(i64_of),
                                ts_text(now),
                            ])?;
                        }
                    }
                    tx.commit()
                })
                .await
                .map_err(|e| self.blocking_error("writing job_metrics_hourly", e))
            }
            Database::Postgres { store, .. } => {
                let mut tx = store
                    .pool()
                    .begin()
                    .await
                    .map_err(|e| self.query_error("writing job_metrics_hourly", e))?;
                for r in rows {
                    sqlx::query(
                        "INSERT INTO job_metrics_hourly
                           (job_id, hour_start, runs, successes, failures, skipped,
                            success_rate, p50_ms, p95_ms, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                         ON CONFLICT (job_id, hour_start) DO UPDATE SET
                           runs = excluded.runs, successes = excluded.successes,
                           failures = excluded.failures, skipped = excluded.skipped,
                           success_rate = excluded.success_rate, p50_ms = excluded.p50_ms,
                           p95_ms = excluded.p95_ms, updated_at = excluded.updated_at",
                    )
                    .bind(&r.job_id)
                    .bind(r.hour_start)
                    .bind(i64_of(r.runs))
                    .bind(i64_of(r.successes))
                    .bind(i64_of(r.failures))
                    .bind(i64_of(r.skipped))
                    .bind(r.success_rate)
                    .bind(r.p50_ms.map(i64_of))
                    .bind(r.p95_ms.map(i64_of))
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.query_error("writing job_metrics_hourly", e))?;
                }
                tx.commit().await.map_err(|e| self.query_error("writing job_metrics_hourly", e))
            }
        }
    }

    /// The hourly rows of a job (or of all jobs), oldest first.
    pub async fn hourly(&self, job_id: Option<&str>) -> Result<Vec<HourlyRow>, DbError> {
        match self {
            Database::Sqlite { path: None, .. } => Ok(Vec::new()),
            Database::Sqlite { path: Some(p), .. } => {
                let p = p.clone();
                let job = job_id.map(str::to_owned);
                let raw = blocking(move || {
                    let c = sqlite_conn(&p)?;
                    let mut st = c.prepare(
                        "SELECT job_id, hour_start, runs, successes, failures, skipped,
                                success_rate, p50_ms, p95_ms
                         FROM job_metrics_hourly WHERE ?1 IS NULL OR job_id = ?1
                         ORDER BY hour_start, job_id",
                    )?;
                    let rows = st.query_map([job], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            [
                                r.get::<_, i64>(2)?,
                                r.get::<_, i64>(3)?,
                                r.get::<_, i64>(4)?,
                                r.get::<_, i64>(5)?,
                            ],
                            r.get::<_, Option<f64>>(6)?,
                            r.get::<_, Option<i64>>(7)?,
                            r.get::<_, Option<i64>>(8)?,
                        ))
                    })?;
                    rows.collect::<Result<Vec<_>, _>>()
                })
                .await
                .map_err(|e| self.blocking_error("reading job_metrics_hourly", e))?;
                raw.into_iter()
                    .map(|(job_id, hour, n, rate, p50, p95)| {
                        let hour_start = DateTime::parse_from_rfc3339(&hour)
                            .map(|t| t.to_utc())
                            .map_err(|e| self.query_error(format!("bad hour_start {hour:?}"), e))?;
                        Ok(HourlyRow {
                            job_id,
                            hour_start,
                            runs: u64_of(n[0]),
                            successes: u64_of(n[1]),
                            failures: u64_of(n[2]),
                            skipped: u64_of(n[3]),
                            success_rate: rate,
                            p50_ms: p50.map(u64_of),
                            p95_ms: p95.map(u64_of),
                        })
                    })
                    .collect()
            }
            Database::Postgres { store, .. } => {
                #[allow(clippy::type_complexity)]
                let rows: Vec<(
                    String,
                    DateTime<Utc>,
                    i64,
                    i64,
                    i64,
                    i64,
                    Option<f64>,
                    Option<i64>,
                    Option<i64>,
                )> = sqlx::query_as(
                    "SELECT job_id, hour_start, runs, successes, failures, skipped,
                                success_rate, p50_ms, p95_ms
                         FROM job_metrics_hourly WHERE $1::text IS NULL OR job_id = $1
                         ORDER BY hour_start, job_id",
                )
                .bind(job_id)
                .fetch_all(store.pool())
                .await
                .map_err(|e| self.query_error("reading job_metrics_hourly", e))?;
                Ok(rows
                    .into_iter()
                    .map(
                        |(
                            job_id,
                            hour_start,
                            runs,
                            successes,
                            failures,
                            skipped,
                            rate,
                            p50,
                            p95,
                        )| {
                            HourlyRow {
                                job_id,
                                hour_start,
                                runs: u64_of(runs),
                                successes: u64_of(successes),
                                failures: u64_of(failures),
                                skipped: u64_of(skipped),
                                success_rate: rate,
                                p50_ms: p50.map(u64_of),
                                p95_ms: p95.map(u64_of),
                            }
                        },
                    )
                    .collect())
            }
        }
    }

    /// Deletes hourly rows older than `before`; returns how many.
    pub async fn prune_hourly(&self, before: DateTime<Utc>) -> Result<u64, DbError> {
        match self {
            Database::Sqlite { path: None, .. } => Ok(0),
            Database::Sqlite { path: Some(p), .. } => {
                let p = p.clone();
                blocking(move || {
                    let c = sqlite_conn(&p)?;
                    c.execute(
                        "DELETE FROM job_metrics_hourly WHERE hour_start < ?1",
                        [ts_text(before)],
                    )
                })
                .await
                .map(|n| n as u64)
                .map_err(|e| self.blocking_error("pruning job_metrics_hourly", e))
            }
            Database::Postgres { store, .. } => {
                sqlx::query("DELETE FROM job_metrics_hourly WHERE hour_start < $1")
                    .bind(before)
                    .execute(store.pool())
                    .await
                    .map(|r| r.rows_affected())
                    .map_err(|e| self.query_error("pruning job_metrics_hourly", e))
            }
        }
    }
}

/// An attempt row as read from Postgres.
type PgAttemptRow = (String, String, i32, String, DateTime<Utc>, Option<i64>);

fn decode_row(
    job_id: String,
    execution_id: String,
    attempt: i64,
    status: &str,
    scheduled_at: DateTime<Utc>,
    duration_ms: Option<i64>,
) -> Result<AttemptRow, String> {
    Ok(AttemptRow {
        job_id,
        execution_id,
        attempt: u32::try_from(attempt).map_err(|_| format!("attempt {attempt} out of range"))?,
        status: status.parse().map_err(|e| format!("{e}"))?,
        scheduled_at,
        duration_ms: duration_ms.map(u64_of),
    })
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Opens a connection of the server's own to a SQLite file, waiting up to
/// 5 s for the store's writer.
pub(crate) fn sqlite_conn(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let c = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(Duration::from_secs(5))?;
    Ok(c)
}

/// Why [`blocking`] work failed.
#[derive(Debug)]
pub(crate) enum BlockingError {
    /// The query failed.
    Query(rusqlite::Error),
    /// The task panicked or was cancelled.
    Task(tokio::task::JoinError),
}

/// Runs blocking work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, BlockingError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(BlockingError::Query),
        Err(e) => Err(BlockingError::Task(e)),
    }
}

/// A timestamp as the SQLite store writes it (`YYYY-MM-DDTHH:MM:SS.ffffffZ`).
pub use mscribe_storage::sqlite_ts_text as ts_text;

#[derive(Debug)]
enum ProbeKind {
    Sqlite(SqliteProbe),
    Postgres(PostgresProbe),
}

/// The `database` health probe over the storage crate's probes.
#[derive(Debug)]
struct DatabaseProbe {
    inner: ProbeKind,
}

#[async_trait]
impl Probe for DatabaseProbe {
    fn name(&self) -> &str {
        "database"
    }

    async fn check(&self) -> ProbeReport {
        let r = match &self.inner {
            ProbeKind::Sqlite(p) => p.check().await,
            ProbeKind::Postgres(p) => p.check().await,
        };
        match (r.ok, r.message) {
            (true, _) => ProbeReport::healthy(r.latency),
            (false, m) => ProbeReport::unhealthy(
                r.latency,
                m.unwrap_or_else(|| "database check failed".to_owned()),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_blocking_task_is_a_task_error_with_the_join_error_as_source() {
        let r = blocking(|| -> rusqlite::Result<()> { panic!("the query thread died") }).await;
        let Err(e @ BlockingError::Task(_)) = r else { panic!("{r:?}") };
        let db = Database::open("sqlite::memory:").await.unwrap();
        let err = db.blocking_error("reading executions", e);
        assert!(matches!(err, DbError::Task { ref what, .. } if what == "reading executions"));
        assert_eq!(
            err.to_string(),
            format!("{}: reading executions: the blocking task failed", db.target())
        );
        let source = std::error::Error::source(&err).expect("the JoinError is the source");
        let join = source.downcast_ref::<tokio::task::JoinError>().expect("a JoinError");
        assert!(join.is_panic());
        // A query's own error stays a query error.
        let r = blocking(|| -> rusqlite::Result<()> { Err(rusqlite::Error::InvalidQuery) }).await;
        let err = db.blocking_error("reading executions", r.unwrap_err());
        assert!(matches!(err, DbError::Query { .. }), "{err:?}");
    }
}
