//! The SQLite store: rusqlite with bundled SQLite, WAL, one writer thread,
//! a few reader threads. Works on any async runtime.

mod error;
mod migrate;
mod probe;
mod store;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use probe::SqliteProbe;
pub use store::{SqliteStore, ts_text};

use crate::error::{Error, Result};

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
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
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

    fn target(&self) -> String {
        match &self.location {
            Location::File(p) => format!("sqlite database {}", p.display()),
            Location::Memory => "sqlite in-memory database".to_owned(),
        }
    }
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
