//! The database behind the server: a [`SqliteStore`] or a [`PostgresStore`]
//! from `mscribe-storage`, opened from a URL, and a thin adapter over what
//! the server keeps beside the executions (the hourly job metrics).
//!
//! The server holds no SQL: every table comes from the storage crate's
//! migrations (applied when a database is opened), and every query and
//! write goes through the stores ([`ExecutionStore`] for the executions,
//! [`HourlyMetricsStore`] for `job_metrics_hourly`, [`ControlStore`] for the
//! control plane), on the SQLite store's threads or the Postgres store's
//! pool. [`Database::open_existing`], for the commands that must not create
//! or migrate a database, opens it with the stores' read-only opens
//! ([`SqliteStore::open_existing`], [`PostgresStore::connect_existing`]),
//! which refuse a database that is missing, was never migrated or has
//! another schema than this build.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::probe::{Probe, ProbeReport};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::{ExecutionStore, StoreError};
use mscribe_storage::{
    AlertStore, ControlStore, HourlyMetricsStore, PostgresOptions, PostgresProbe, PostgresStore,
    SqliteOptions, SqliteProbe, SqliteStore,
};

use crate::config::is_postgres_url;

pub use mscribe_storage::{AttemptRow, HourlyRow};

/// Why a database operation of the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// Opening or migrating the store failed.
    #[error(transparent)]
    Open(#[from] mscribe_storage::Error),
    /// A query or write failed (or, at open, the SQLite file's directory
    /// could not be created).
    #[error("{target}: {message}")]
    Query {
        /// The database.
        target: String,
        /// What failed, with the driver's own text.
        message: String,
        /// The store's error (its source is the driver's), or the I/O error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The operation needs a database file and this one is in memory.
    #[error("{0} is in memory; {1} needs a database file")]
    InMemory(String, &'static str),
    /// [`Database::open_existing`]: the SQLite file does not exist.
    #[error(
        "database file {} does not exist; create it with `mscribe migrate` or `mscribe serve`, \
         check database_url (MSCRIBE_DATABASE_URL), or pass --url to ask a running server",
        .0.display()
    )]
    Missing(PathBuf),
    /// [`Database::open_existing`]: the database was never migrated, or its
    /// schema is older or newer than this build's.
    #[error("{target}: {message}")]
    Schema {
        /// The database.
        target: String,
        /// What is wrong and what to do.
        message: String,
    },
}

impl DbError {
    /// Whether the error is the caller's to fix (a missing database, one
    /// with another schema) rather than a failure of the database itself:
    /// the command line exits 2 for these, 1 for the others.
    pub fn is_usage(&self) -> bool {
        matches!(self, DbError::Missing(_) | DbError::Schema { .. })
    }
}

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
        /// The store.
        store: PostgresStore,
        /// The URL, password included (never logged).
        url: String,
    },
}

impl Database {
    /// Opens `url` (`sqlite://PATH`, `sqlite::memory:`, `postgres://...`),
    /// applying the storage migrations (which create every table, the
    /// server's `job_metrics_hourly` included). A new SQLite file is made
    /// readable by its owner only.
    pub async fn open(url: &str) -> Result<Database, DbError> {
        if is_postgres_url(url) {
            let store = PostgresStore::connect(url).await?;
            return Ok(Database::Postgres { store, url: url.to_owned() });
        }
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
        Ok(Database::Sqlite { store, path })
    }

    /// Opens a database that must already exist with this build's schema,
    /// for commands that must not create or migrate it: a missing SQLite
    /// file is [`DbError::Missing`] (nothing is created), a database never
    /// migrated or migrated by another version is [`DbError::Schema`]
    /// (nothing is migrated). The storage crate's read-only opens do the
    /// checking. An in-memory database opens as with [`open`](Self::open).
    pub async fn open_existing(url: &str) -> Result<Database, DbError> {
        if is_postgres_url(url) {
            let opts = PostgresOptions::new(url)?;
            let target = opts.target().to_owned();
            let store = PostgresStore::connect_existing(opts)
                .await
                .map_err(|e| existing_error(&target, e))?;
            return Ok(Database::Postgres { store, url: url.to_owned() });
        }
        let opts = SqliteOptions::from_url(url)?;
        let (path, target) = (opts.path().map(Path::to_path_buf), opts.target());
        let store =
            SqliteStore::open_existing(opts).await.map_err(|e| existing_error(&target, e))?;
        Ok(Database::Sqlite { store, path })
    }

    /// The execution store.
    pub fn store(&self) -> Arc<dyn ExecutionStore> {
        match self {
            Database::Sqlite { store, .. } => Arc::new(store.clone()),
            Database::Postgres { store, .. } => Arc::new(store.clone()),
        }
    }

    /// The control plane's store: pauses, triggers, cancel requests, the
    /// audit log.
    pub fn control(&self) -> Arc<dyn ControlStore> {
        match self {
            Database::Sqlite { store, .. } => Arc::new(store.clone()),
            Database::Postgres { store, .. } => Arc::new(store.clone()),
        }
    }

    /// The alert outbox on this database.
    pub fn alerts(&self) -> Arc<dyn AlertStore> {
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

    /// Where the hourly metrics are kept: `None` for an in-memory SQLite
    /// database, which keeps none (as before the table came from the
    /// migrations: the metric jobs skip it).
    fn hourly_store(&self) -> Option<&dyn HourlyMetricsStore> {
        match self {
            Database::Sqlite { path: None, .. } => None,
            Database::Sqlite { store, .. } => Some(store),
            Database::Postgres { store, .. } => Some(store),
        }
    }

    /// A failed store operation doing `what`: the message holds the
    /// driver's own text (the CLI prints a start error's Display only), the
    /// store's error is the source.
    fn store_error(&self, what: &str, e: StoreError) -> DbError {
        let text = match std::error::Error::source(&e) {
            Some(driver) => driver.to_string(),
            None => e.to_string(),
        };
        DbError::Query {
            target: self.target(),
            message: format!("{what}: {text}"),
            source: Some(Box::new(e)),
        }
    }

    /// The attempt rows whose nominal fire time is in `[from, to)`.
    pub async fn attempts_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AttemptRow>, DbError> {
        let Some(s) = self.hourly_store() else {
            return Err(DbError::InMemory(self.target(), "metric aggregation"));
        };
        s.attempts_between(from, to).await.map_err(|e| self.store_error("reading executions", e))
    }

    /// Inserts or replaces hourly rows (keyed by job and hour), in one
    /// transaction.
    pub async fn upsert_hourly(
        &self,
        rows: &[HourlyRow],
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let Some(s) = self.hourly_store() else {
            return Err(DbError::InMemory(self.target(), "metric aggregation"));
        };
        s.upsert_hourly(rows, now)
            .await
            .map_err(|e| self.store_error("writing job_metrics_hourly", e))
    }

    /// The hourly rows of a job (or of all jobs), oldest first.
    pub async fn hourly(&self, job_id: Option<&str>) -> Result<Vec<HourlyRow>, DbError> {
        let Some(s) = self.hourly_store() else {
            return Ok(Vec::new());
        };
        s.hourly(job_id).await.map_err(|e| self.store_error("reading job_metrics_hourly", e))
    }

    /// Deletes the control audit rows older than `before` (never the
    /// newest, so ids keep increasing); returns how many.
    pub async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, DbError> {
        self.control()
            .prune_audit(before)
            .await
            .map_err(|e| self.store_error("pruning control_audit", e))
    }

    /// Deletes the delivered and given-up alert deliveries raised before
    /// `before` (never the newest row); returns how many.
    pub async fn prune_alerts(&self, before: DateTime<Utc>) -> Result<u64, DbError> {
        self.alerts()
            .prune_alerts(before)
            .await
            .map_err(|e| self.store_error("pruning alert_outbox", e))
    }

    /// Deletes hourly rows older than `before`; returns how many.
    pub async fn prune_hourly(&self, before: DateTime<Utc>) -> Result<u64, DbError> {
        let Some(s) = self.hourly_store() else {
            return Ok(0);
        };
        s.prune_hourly(before).await.map_err(|e| self.store_error("pruning job_metrics_hourly", e))
    }
}

/// What a read-only open's refusal means for the command line: a missing
/// file or another schema is the caller's to fix ([`DbError::Missing`],
/// [`DbError::Schema`], with what to do); anything else failed opening.
fn existing_error(target: &str, e: mscribe_storage::Error) -> DbError {
    use mscribe_storage::Error;
    let schema = |message: String| DbError::Schema { target: target.to_owned(), message };
    match e {
        Error::NotFound { path } => DbError::Missing(path),
        Error::NotMigrated { known, .. } => schema(format!(
            "not an mscribe database, or never migrated (no mscribe_migrations rows); run \
             `mscribe migrate` first (this build's schema is {known})"
        )),
        Error::DatabaseTooOld { found, missing, known, .. } => schema(format!(
            "the schema is older than this build: it has migrations up to {found}, this build \
             needs {missing} (and up to {known}); run `mscribe migrate` with this build, then \
             retry"
        )),
        e if e.is_schema() => schema(e.to_string()),
        e => DbError::Open(e),
    }
}

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

    /// An in-memory database keeps no hourly metrics: aggregation is
    /// refused as in memory, reads find nothing, pruning deletes nothing.
    #[tokio::test]
    async fn an_in_memory_database_keeps_no_hourly_metrics() {
        let db = Database::open("sqlite::memory:").await.unwrap();
        let now = Utc::now();
        let e = db.attempts_between(now, now).await.unwrap_err();
        assert!(matches!(e, DbError::InMemory(_, "metric aggregation")), "{e:?}");
        assert!(matches!(db.upsert_hourly(&[], now).await, Err(DbError::InMemory(..))));
        assert!(db.hourly(None).await.unwrap().is_empty());
        assert_eq!(db.prune_hourly(now).await.unwrap(), 0);
    }

    /// A store error becomes a query error naming the database and the
    /// operation, with the store's error as the source.
    #[tokio::test]
    async fn a_store_error_names_the_database_and_the_operation() {
        let db = Database::open("sqlite::memory:").await.unwrap();
        let e = db.store_error(
            "reading executions",
            StoreError::Rejected { message: "bad value".into(), source: None },
        );
        assert_eq!(
            e.to_string(),
            "sqlite in-memory database: reading executions: store rejected the operation: bad value"
        );
        let source = std::error::Error::source(&e).expect("the store's error is the source");
        assert!(source.downcast_ref::<StoreError>().is_some());
    }
}
