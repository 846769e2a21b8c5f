//! Connecting to Postgres: [`PostgresOptions`], and [`PostgresStore`]'s
//! constructors (connect, migrate, build the pool).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};

use super::error::connect_error;
use super::migrate::{check, migrate};
use super::store::PostgresStore;
use crate::codec;
use crate::error::{Error, Result, redact_url};
use crate::migrate::POSTGRES_MIGRATIONS;

/// How to connect a [`PostgresStore`].
///
/// ```
/// use std::time::Duration;
/// use mscribe_storage::PostgresOptions;
///
/// let opts = PostgresOptions::new("postgres://mscribe:secret@db.internal:5432/ops")?
///     .max_connections(8)
///     .operation_timeout(Duration::from_secs(5));
/// // Debug output never shows the password.
/// assert!(!format!("{opts:?}").contains("secret"));
/// # Ok::<(), mscribe_storage::Error>(())
/// ```
#[derive(Clone)]
pub struct PostgresOptions {
    connect: PgConnectOptions,
    target: String,
    max_connections: u32,
    min_connections: u32,
    connect_timeout: Duration,
    acquire_timeout: Duration,
    operation_timeout: Duration,
    maintenance_timeout: Duration,
    migration_timeout: Duration,
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("target", &self.target)
            .field("user", &self.connect.get_username())
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("maintenance_timeout", &self.maintenance_timeout)
            .finish_non_exhaustive()
    }
}

impl PostgresOptions {
    /// Parses a URL such as `postgres://user:password@host:5432/dbname`
    /// (any option libpq-style URLs take, e.g. `?sslmode=disable`).
    pub fn new(url: &str) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url).map_err(|e| Error::Config {
            message: format!("invalid postgres URL \"{}\": {e}", redact_url(url)),
            source: Some(Box::new(e)),
        })?;
        Ok(Self::from_connect_options(connect))
    }

    /// Uses sqlx connect options built by hand.
    pub fn from_connect_options(mut connect: PgConnectOptions) -> Self {
        if connect.get_application_name().is_none() {
            connect = connect.application_name("mscribe-scheduler");
        }
        let target = format!(
            "postgres database {} at {}:{}",
            connect.get_database().unwrap_or("(default)"),
            connect.get_host(),
            connect.get_port()
        );
        PostgresOptions {
            connect,
            target,
            max_connections: 10,
            min_connections: 0,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(10),
            maintenance_timeout: Duration::from_secs(300),
            migration_timeout: Duration::from_secs(120),
        }
    }

    /// The pool's size; default 10.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Connections kept open while idle; default 0.
    pub fn min_connections(mut self, n: u32) -> Self {
        self.min_connections = n;
        self
    }

    /// How long opening waits for the first connection; default 5 s.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// How long an operation waits for a pooled connection (including
    /// connecting a new one); default 5 s. While the server is unreachable,
    /// writes fail after about this long.
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.acquire_timeout = d;
        self
    }

    /// The deadline of each read or write, connection included; default
    /// 10 s. Past it the operation fails as unavailable; a write whose
    /// outcome was unknown is safe to repeat.
    pub fn operation_timeout(mut self, d: Duration) -> Self {
        self.operation_timeout = d;
        self
    }

    /// The deadline of `prune` and `mark_abandoned`; default 5 min.
    pub fn maintenance_timeout(mut self, d: Duration) -> Self {
        self.maintenance_timeout = d;
        self
    }

    /// The deadline of applying migrations at open (waiting for another
    /// instance that migrates included); default 2 min.
    pub fn migration_timeout(mut self, d: Duration) -> Self {
        self.migration_timeout = d;
        self
    }

    /// `postgres database NAME at HOST:PORT`, as messages name it.
    pub fn target(&self) -> &str {
        &self.target
    }
}

impl PostgresStore {
    /// Connects with default options.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(PostgresOptions::new(url)?).await
    }

    /// Connects, migrates, and builds the pool.
    pub async fn connect_with(opts: PostgresOptions) -> Result<Self> {
        Self::connect_as(opts, true).await
    }

    /// Connects to a database that must already have this build's schema,
    /// creating and migrating nothing (no migration lock is taken, no
    /// table created): for tools that read a database (or act on one) which
    /// a server or `migrate` made.
    ///
    /// One connection reads `mscribe_migrations` first:
    ///
    /// - [`Error::NotMigrated`] when the database has no
    ///   `mscribe_migrations` rows (never migrated, or another
    ///   application's);
    /// - [`Error::DatabaseTooOld`] when it lacks migrations this build has;
    /// - [`Error::DatabaseTooNew`], [`Error::MigrationModified`] and
    ///   [`Error::MigrationMissing`] as for
    ///   [`connect_with`](Self::connect_with);
    /// - [`Error::Connect`] and [`Error::Open`] as for
    ///   [`connect_with`](Self::connect_with).
    ///
    /// Then the pool is built as [`connect_with`](Self::connect_with)
    /// builds it, and the store reads and writes as usual.
    pub async fn connect_existing(opts: PostgresOptions) -> Result<Self> {
        Self::connect_as(opts, false).await
    }

    /// Connects; applies the migrations (`migrate_it`) or checks that the
    /// database has exactly this build's; builds the pool.
    async fn connect_as(opts: PostgresOptions, migrate_it: bool) -> Result<Self> {
        let target = opts.target.clone();
        let mut conn =
            tokio::time::timeout(opts.connect_timeout, PgConnection::connect_with(&opts.connect))
                .await
                .map_err(|_| Error::Connect {
                    target: target.clone(),
                    message: format!("no answer within {:?}", opts.connect_timeout),
                    source: None,
                })?
                .map_err(|e| connect_error(&target, e))?;
        let schema = async {
            if migrate_it {
                migrate(&mut conn, &target, POSTGRES_MIGRATIONS).await
            } else {
                check(&mut conn, &target, POSTGRES_MIGRATIONS).await
            }
        };
        tokio::time::timeout(opts.migration_timeout, schema).await.map_err(|_| {
            Error::Connect {
                target: target.clone(),
                message: if migrate_it {
                    format!(
                        "migrations did not finish within {:?} (waiting for another instance that \
                     holds the migration lock included)",
                        opts.migration_timeout
                    )
                } else {
                    format!("reading mscribe_migrations took over {:?}", opts.migration_timeout)
                },
                source: None,
            }
        })??;
        if let Err(e) = conn.close().await {
            tracing::debug!(error = %e, "closing the migration connection failed");
        }
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections)
            .min_connections(opts.min_connections)
            .acquire_timeout(opts.acquire_timeout)
            .connect_lazy_with(opts.connect.clone());
        Ok(PostgresStore {
            pool,
            target: target.into(),
            operation_timeout: opts.operation_timeout,
            maintenance_timeout: opts.maintenance_timeout,
            hostname: codec::hostname().map(Arc::from),
        })
    }
}
