//! Opening a SQLite database: [`SqliteOptions`], the writer's and the
//! readers' connections, and [`SqliteStore`]'s constructors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::error::open_error;
use super::migrate::{check, migrate};
use super::sql;
use super::store::SqliteStore;
use super::worker::{Limits, Worker};
use crate::error::{Error, Result};
use crate::migrate::SQLITE_MIGRATIONS;

/// The database file used when none is given: `./mscribe.db`.
pub const DEFAULT_SQLITE_PATH: &str = "mscribe.db";

/// How hard SQLite syncs to disk on commit (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// Durable against a crash of the process; the last commits may be lost
    /// on power loss. The usual choice with WAL, and the default.
    #[default]
    Normal,
    /// Durable against power loss too, at the cost of an fsync per commit.
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => sql::SYNCHRONOUS_NORMAL,
            Synchronous::Full => sql::SYNCHRONOUS_FULL,
        }
    }
}

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    File(PathBuf),
    Memory,
}

/// How to open a [`SqliteStore`].
///
/// ```
/// use std::time::Duration;
/// use mscribe_storage::SqliteOptions;
///
/// let opts = SqliteOptions::file("/var/lib/mscribe/mscribe.db")
///     .readers(4)
///     .busy_timeout(Duration::from_secs(2));
/// # let _ = opts;
/// ```
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    location: Location,
    readers: usize,
    busy_timeout: Duration,
    synchronous: Synchronous,
    max_group: usize,
    operation_timeout: Duration,
    maintenance_timeout: Duration,
}

impl Default for SqliteOptions {
    /// `./mscribe.db`.
    fn default() -> Self {
        SqliteOptions::file(DEFAULT_SQLITE_PATH)
    }
}

impl SqliteOptions {
    /// A database file, created if missing (its directory must exist).
    pub fn file(path: impl AsRef<Path>) -> Self {
        SqliteOptions {
            location: Location::File(path.as_ref().to_owned()),
            readers: 2,
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Normal,
            max_group: 64,
            operation_timeout: Duration::from_secs(30),
            maintenance_timeout: Duration::from_secs(300),
        }
    }

    /// A private in-memory database that lives as long as the store. Reads
    /// go through the writer thread (there are no reader connections).
    pub fn memory() -> Self {
        SqliteOptions { location: Location::Memory, ..SqliteOptions::file(DEFAULT_SQLITE_PATH) }
    }

    /// Parses `sqlite::memory:`, `:memory:`, `sqlite://PATH`, `sqlite:PATH`
    /// or a plain path.
    pub fn from_url(url: &str) -> Result<Self> {
        let bad = |why: &str| Error::Config {
            message: format!("invalid sqlite location \"{url}\": {why}"),
            source: None,
        };
        let rest =
            url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
        if rest == ":memory:" {
            return Ok(SqliteOptions::memory());
        }
        if rest.is_empty() {
            return Err(bad("no path"));
        }
        if rest.contains('?') {
            return Err(bad("query options are not supported; use SqliteOptions"));
        }
        if url.contains("://") && !url.starts_with("sqlite://") {
            return Err(bad("not a sqlite URL"));
        }
        Ok(SqliteOptions::file(rest))
    }

    /// How many reader threads (each with its own connection) serve
    /// queries; default 2. Zero sends reads through the writer thread.
    /// Ignored for in-memory databases.
    pub fn readers(mut self, n: usize) -> Self {
        self.readers = n;
        self
    }

    /// How long a statement waits for a lock held by another connection or
    /// process before failing with a transient error; default 5 s.
    pub fn busy_timeout(mut self, d: Duration) -> Self {
        self.busy_timeout = d;
        self
    }

    /// `PRAGMA synchronous`; default [`Synchronous::Normal`].
    pub fn synchronous(mut self, s: Synchronous) -> Self {
        self.synchronous = s;
        self
    }

    /// At most this many queued `write` calls are committed in one
    /// transaction by the writer thread; default 64.
    pub fn max_group(mut self, n: usize) -> Self {
        self.max_group = n.max(1);
        self
    }

    /// How long a read or write waits for its thread's answer before
    /// failing as unavailable (a stalled disk, a writer busy with a long
    /// prune); default 30 s. A write that timed out may still land later;
    /// repeating it is harmless.
    pub fn operation_timeout(mut self, d: Duration) -> Self {
        self.operation_timeout = d;
        self
    }

    /// The same for `prune` and `mark_abandoned`; default 5 min.
    pub fn maintenance_timeout(mut self, d: Duration) -> Self {
        self.maintenance_timeout = d;
        self
    }

    /// The file, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        match &self.location {
            Location::File(p) => Some(p),
            Location::Memory => None,
        }
    }

    /// `sqlite database PATH` (or `sqlite in-memory database`), as messages
    /// name it.
    pub fn target(&self) -> String {
        match &self.location {
            Location::File(p) => format!("sqlite database {}", p.display()),
            Location::Memory => "sqlite in-memory database".to_owned(),
        }
    }
}

impl SqliteStore {
    /// Opens (or creates) a database file and applies the migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
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
        Self::open_as(opts, Mode::Migrate).await
    }

    /// Opens a database file that must already exist with this build's
    /// schema, creating and migrating nothing: for tools that read a
    /// database (or act on one) which a server or `migrate` made.
    ///
    /// Before anything else, a read-only connection checks the file and its
    /// `mscribe_migrations`, so a database that is refused is left exactly
    /// as it was (not even switched to WAL):
    ///
    /// - [`Error::NotFound`] when the file does not exist;
    /// - [`Error::NotMigrated`] when it has no `mscribe_migrations` rows
    ///   (never migrated, or another application's database);
    /// - [`Error::DatabaseTooOld`] when it lacks migrations this build has;
    /// - [`Error::DatabaseTooNew`], [`Error::MigrationModified`] and
    ///   [`Error::MigrationMissing`] as for [`open_with`](Self::open_with);
    /// - [`Error::Open`] for a path that is not a file or a file that is
    ///   not a SQLite database.
    ///
    /// The store then opens as [`open_with`](Self::open_with) does, minus
    /// the migrations, and reads and writes as usual. An in-memory location
    /// has nothing to check: it opens as with [`open_with`](Self::open_with).
    ///
    /// ```
    /// use mscribe_storage::{Error, SqliteOptions, SqliteStore};
    ///
    /// # futures::executor::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("mscribe.db");
    /// let e = SqliteStore::open_existing(SqliteOptions::file(&path)).await.unwrap_err();
    /// assert!(matches!(e, Error::NotFound { .. }));
    /// assert!(!path.exists());
    /// SqliteStore::open(&path).await?; // creates and migrates it
    /// let store = SqliteStore::open_existing(SqliteOptions::file(&path)).await?;
    /// # let _ = store;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn open_existing(opts: SqliteOptions) -> Result<Self> {
        Self::open_as(opts, Mode::Existing).await
    }

    async fn open_as(opts: SqliteOptions, mode: Mode) -> Result<Self> {
        let target = opts.target();
        let limits = Limits {
            max_group: opts.max_group,
            operation_timeout: opts.operation_timeout,
            maintenance_timeout: opts.maintenance_timeout,
        };
        let existing = mode == Mode::Existing && matches!(opts.location, Location::File(_));
        let (wopts, wtarget) = (opts.clone(), target.clone());
        let mut worker = Worker::start(target.clone(), limits, move || {
            if existing {
                if let Location::File(path) = &wopts.location {
                    check_existing(path, wopts.busy_timeout, &wtarget)?;
                }
                return open_connection(&wopts, &wtarget, false);
            }
            let mut c = open_connection(&wopts, &wtarget, true)?;
            migrate(&mut c, &wtarget, SQLITE_MIGRATIONS)?;
            Ok(c)
        })
        .await?;
        if let Location::File(path) = &opts.location
            && opts.readers > 0
        {
            let (path, busy) = (path.clone(), opts.busy_timeout);
            worker
                .start_readers(opts.readers, move || {
                    open_reader(&path, busy).map_err(|e| open_error(&target, e))
                })
                .await?;
        }
        Ok(SqliteStore::new(worker))
    }
}

/// How a store opens its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Create the file if missing, apply the migrations.
    Migrate,
    /// The file must exist with this build's schema; nothing is changed.
    Existing,
}

/// Checks, on a read-only connection of its own that changes nothing, that
/// `path` is an existing database with exactly this build's migrations.
fn check_existing(path: &Path, busy: Duration, target: &str) -> Result<()> {
    let not_a_file =
        |message: String| Error::Open { target: target.to_owned(), message, source: None };
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(not_a_file("the path exists but is not a file".to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound { path: path.to_owned() });
        }
        Err(e) => {
            return Err(Error::Open {
                target: target.to_owned(),
                message: format!("cannot read the file's metadata: {e}"),
                source: Some(Box::new(e)),
            });
        }
    }
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| open_error(target, e))?;
    c.busy_timeout(busy).map_err(|e| open_error(target, e))?;
    check(&c, target, SQLITE_MIGRATIONS)
}

/// The writer's connection: WAL for a file, the `synchronous` setting;
/// `create`: the file is created if missing.
fn open_connection(opts: &SqliteOptions, target: &str, create: bool) -> Result<Connection> {
    let conn = match &opts.location {
        Location::Memory => Connection::open_in_memory(),
        Location::File(path) => {
            let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            if create {
                flags |= OpenFlags::SQLITE_OPEN_CREATE;
            }
            Connection::open_with_flags(path, flags)
        }
    }
    .map_err(|e| open_error(target, e))?;
    conn.busy_timeout(opts.busy_timeout).map_err(|e| open_error(target, e))?;
    if matches!(opts.location, Location::File(_)) {
        // Reading the journal mode is the first access to the file: a file
        // that is not a database fails here, with a clear message.
        let mode: String = conn
            .query_row(sql::JOURNAL_MODE_WAL, [], |r| r.get(0))
            .map_err(|e| open_error(target, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(database = target, mode, "sqlite did not switch to WAL");
        }
        conn.execute_batch(sql::WAL_AUTOCHECKPOINT).map_err(|e| open_error(target, e))?;
    }
    conn.execute_batch(opts.synchronous.pragma()).map_err(|e| open_error(target, e))?;
    conn.execute_batch(sql::CACHE_SIZE).map_err(|e| open_error(target, e))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// A reader's connection: the same file, query-only.
fn open_reader(path: &Path, busy: Duration) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(busy)?;
    c.execute_batch(sql::QUERY_ONLY)?;
    c.set_prepared_statement_cache_capacity(32);
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(SqliteOptions::from_url("sqlite::memory:").unwrap().path(), None);
        assert_eq!(SqliteOptions::from_url(":memory:").unwrap().path(), None);
        assert_eq!(
            SqliteOptions::from_url("sqlite://data/x.db").unwrap().path(),
            Some(Path::new("data/x.db"))
        );
        assert_eq!(
            SqliteOptions::from_url("sqlite:///abs/x.db").unwrap().path(),
            Some(Path::new("/abs/x.db"))
        );
        assert_eq!(SqliteOptions::from_url("x.db").unwrap().path(), Some(Path::new("x.db")));
        for bad in ["sqlite://", "sqlite:", "", "postgres://h/db", "sqlite://x.db?mode=ro"] {
            let e = SqliteOptions::from_url(bad).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("invalid database configuration: invalid sqlite location"),
                "{e}"
            );
        }
    }

    #[test]
    fn default_is_mscribe_db_in_the_working_directory() {
        assert_eq!(SqliteOptions::default().path(), Some(Path::new("mscribe.db")));
    }
}
