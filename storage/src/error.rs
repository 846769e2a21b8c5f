//! The storage crate's error: what can go wrong when opening a store.
//!
//! Operations on an open store return the engine's [`StoreError`]
//! (`Unavailable` for transient failures, `Rejected` for permanent ones).

use std::path::PathBuf;

use mscribe_scheduler::BoxError;
use mscribe_scheduler::StoreError;

/// A `Result` whose error defaults to the storage crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a store could not be opened.
///
/// Messages are lowercase, name the database (never its password) and keep
/// the driver's error as the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database URL, path or an option is malformed.
    #[error("invalid database configuration: {message}")]
    Config {
        /// What is wrong, quoting the bad value (passwords redacted).
        message: String,
        /// The parser's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The database server could not be reached in time; trying again later
    /// may work.
    #[error("cannot connect to {target}: {message}")]
    Connect {
        /// The database: a path, or `host:port/dbname`.
        target: String,
        /// What happened.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The database was reached but cannot be used: not a database, corrupt,
    /// a path that cannot hold one, authentication failed, missing rights.
    #[error("cannot open {target}: {message}")]
    Open {
        /// The database: a path, or `host:port/dbname`.
        target: String,
        /// What happened.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },
    /// A migration that was applied has been edited since.
    #[error(
        "migration {migration} was previously applied but has been modified \
         (checksum {applied} in the database, {expected} in this build)"
    )]
    MigrationModified {
        /// The migration, e.g. `0001_executions`.
        migration: String,
        /// The checksum recorded when it was applied.
        applied: String,
        /// The checksum of the text in this build.
        expected: String,
    },
    /// The database was migrated by a newer build.
    #[error(
        "database schema is newer than this build: it has migration {found}, \
         this build knows up to {known}; upgrade mscribe or use another database"
    )]
    DatabaseTooNew {
        /// The newest migration in the database, e.g. `0007_claims`.
        found: String,
        /// The newest migration this build knows.
        known: String,
    },
    /// A migration recorded in the database is unknown to this build, though
    /// older than its newest one.
    #[error("migration {0} was applied to the database but is missing from this build")]
    MigrationMissing(String),
    /// A migration failed to apply; nothing of it was kept.
    #[error("migration {migration} failed: {message}")]
    MigrationFailed {
        /// The migration, e.g. `0003_row_level_security`.
        migration: String,
        /// What happened.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },
    /// A read-only open ([`SqliteStore::open_existing`]): the database file
    /// does not exist. Nothing was created.
    ///
    /// [`SqliteStore::open_existing`]: crate::SqliteStore::open_existing
    #[error("database file {} does not exist", .path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// A read-only open ([`SqliteStore::open_existing`],
    /// [`PostgresStore::connect_existing`]): the database has no
    /// `mscribe_migrations` rows, so it was never migrated, or is another
    /// application's. Nothing was created or migrated.
    ///
    /// [`SqliteStore::open_existing`]: crate::SqliteStore::open_existing
    /// [`PostgresStore::connect_existing`]: crate::PostgresStore::connect_existing
    #[error(
        "{target} is not an mscribe database, or was never migrated (no mscribe_migrations \
         rows); this build's schema is {known}"
    )]
    NotMigrated {
        /// The database: a path, or `host:port/dbname`.
        target: String,
        /// The newest migration this build knows, e.g. `0007_leases`.
        known: String,
    },
    /// A read-only open: the database lacks migrations this build has.
    /// Nothing was migrated.
    #[error(
        "{target} has an older schema than this build: it has migrations up to {found}, \
         this build needs {missing} (and up to {known})"
    )]
    DatabaseTooOld {
        /// The database: a path, or `host:port/dbname`.
        target: String,
        /// The newest migration in the database, e.g. `0006_control`.
        found: String,
        /// The first migration this build has and the database lacks.
        missing: String,
        /// The newest migration this build knows.
        known: String,
    },
    /// An operation failed while opening (reading the migration table, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    /// Whether the database's schema is not this build's: never migrated,
    /// older, newer, or with a migration edited or unknown here. Opening
    /// the same database with the same build fails the same way until it
    /// is migrated (or the right build is used).
    pub fn is_schema(&self) -> bool {
        matches!(
            self,
            Error::NotMigrated { .. }
                | Error::DatabaseTooOld { .. }
                | Error::DatabaseTooNew { .. }
                | Error::MigrationModified { .. }
                | Error::MigrationMissing(_)
        )
    }

    /// Whether opening again later may succeed (the server was unreachable
    /// or busy).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect { .. } => true,
            Error::Store(e) => e.is_transient(),
            _ => false,
        }
    }
}

#[cfg(feature = "postgres")]
/// Hides the password of a URL such as `postgres://user:secret@host/db`,
/// and the value of its `password` and `sslpassword` query parameters (in
/// any case), which sqlx and libpq read as passwords too.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let head = match authority.rfind('@') {
        Some(at) => match authority[..at].find(':') {
            Some(colon) => {
                format!("{}{}:***{}", &url[..scheme_end + 3], &authority[..colon], &authority[at..])
            }
            None => url[..scheme_end + 3 + authority_end].to_owned(),
        },
        None => url[..scheme_end + 3 + authority_end].to_owned(),
    };
    let tail = &rest[authority_end..];
    let Some(q) = tail.find('?') else { return head + tail };
    let (query, fragment) =
        tail[q + 1..].split_at(tail[q + 1..].find('#').unwrap_or(tail.len() - q - 1));
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_secret_param(key) => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}{}?{}{fragment}", &tail[..q], pairs.join("&"))
}

#[cfg(feature = "postgres")]
/// Whether a query parameter's name, percent-decoded and in any case, is
/// `password` or `sslpassword`.
fn is_secret_param(key: &str) -> bool {
    let decoded = percent_decode(key).to_ascii_lowercase();
    matches!(decoded.as_str(), "password" | "sslpassword")
}

#[cfg(feature = "postgres")]
/// `s` with its `%XX` escapes decoded (a bad escape kept as written).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "postgres")]
    #[test]
    fn redacts_password_only() {
        assert_eq!(redact_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("postgres://h/db?x=@"), "postgres://h/db?x=@");
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(redact_url("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn redacts_password_query_parameters() {
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/db?password=SECRETQPW"),
            "postgres://postgres@127.0.0.1:5432/db?password=***"
        );
        assert_eq!(
            redact_url("postgres://u:pw@h/db?sslmode=require&PassWord=a&%73slpassword=b#f"),
            "postgres://u:***@h/db?sslmode=require&PassWord=***&%73slpassword=***#f"
        );
        assert_eq!(redact_url("postgres://h/db?password"), "postgres://h/db?password");
    }

    #[test]
    fn messages_name_the_migration() {
        let e = Error::MigrationModified {
            migration: "0001_executions".into(),
            applied: "aa".into(),
            expected: "bb".into(),
        };
        assert_eq!(
            e.to_string(),
            "migration 0001_executions was previously applied but has been modified \
             (checksum aa in the database, bb in this build)"
        );
        assert!(!e.is_transient());
    }
}
