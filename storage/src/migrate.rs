//! Schema migrations, embedded in the binary and applied at open.
//!
//! Each backend has numbered SQL files (`migrations/sqlite/0001_executions.sql`,
//! ...). Opening a store applies the missing ones in order, in one
//! transaction, and records each in `mscribe_migrations(version, name,
//! checksum, applied_at)`. The checksum is the SHA-256 of the file's text
//! (line endings normalised to `\n`). Opening refuses a database where an
//! applied migration's checksum differs from this build's text, or whose
//! newest migration is newer than this build knows.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// One embedded migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Its number, from the file name (`0001_...` is 1).
    pub version: i64,
    /// Its name, from the file name (`0001_executions.sql` is `executions`).
    pub name: &'static str,
    /// The SQL text.
    pub sql: &'static str,
}

impl Migration {
    /// The SHA-256 of the text (CRLF read as LF), as 64 lowercase hex digits.
    pub fn checksum(&self) -> String {
        checksum(self.sql)
    }

    /// The file stem, e.g. `0001_executions`: how errors name it.
    pub fn label(&self) -> String {
        label(self.version, self.name)
    }
}

pub(crate) fn label(version: i64, name: &str) -> String {
    format!("{version:04}_{name}")
}

/// The SHA-256 of a migration text, with `\r\n` read as `\n` so a checkout
/// with Windows line endings does not look modified.
pub(crate) fn checksum(sql: &str) -> String {
    let mut h = Sha256::new();
    let mut rest = sql;
    while let Some(i) = rest.find("\r\n") {
        h.update(&rest.as_bytes()[..i]);
        h.update(b"\n");
        rest = &rest[i + 2..];
    }
    h.update(rest.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
macro_rules! migration {
    ($dir:literal, $version:literal, $name:literal) => {
        Migration {
            version: match i64::from_str_radix($version, 10) {
                Ok(v) => v,
                Err(_) => panic!("migration number is not decimal"),
            },
            name: $name,
            sql: include_str!(concat!(
                "../../migrations/",
                $dir,
                "/",
                $version,
                "_",
                $name,
                ".sql"
            )),
        }
    };
}

/// The SQLite migrations of this build, in order.
#[cfg(feature = "sqlite")]
pub static SQLITE_MIGRATIONS: &[Migration] = &[
    migration!("sqlite", "0001", "executions"),
    migration!("sqlite", "0002", "instances"),
    migration!("sqlite", "0003", "fire_claims"),
    migration!("sqlite", "0004", "error_kind"),
];

/// The Postgres migrations of this build, in order.
#[cfg(feature = "postgres")]
pub static POSTGRES_MIGRATIONS: &[Migration] = &[
    migration!("postgres", "0001", "executions"),
    migration!("postgres", "0002", "instances"),
    migration!("postgres", "0003", "row_level_security"),
    migration!("postgres", "0004", "sql_helpers"),
    migration!("postgres", "0005", "fire_claims"),
    migration!("postgres", "0006", "error_kind"),
];

/// A row of `mscribe_migrations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) version: i64,
    pub(crate) name: String,
    pub(crate) checksum: String,
}

/// Checks what the database has against what this build knows and returns
/// the migrations still to apply, in order.
pub(crate) fn plan<'a>(known: &'a [Migration], applied: &[Applied]) -> Result<Vec<&'a Migration>> {
    let newest_known = known.iter().map(|m| m.version).max().unwrap_or(0);
    if let Some(newest) = applied.iter().max_by_key(|a| a.version)
        && newest.version > newest_known
    {
        let known_label = known
            .iter()
            .find(|m| m.version == newest_known)
            .map(Migration::label)
            .unwrap_or_else(|| "none".to_owned());
        return Err(Error::DatabaseTooNew {
            found: label(newest.version, &newest.name),
            known: known_label,
        });
    }
    for a in applied {
        match known.iter().find(|m| m.version == a.version) {
            Some(m) => {
                let expected = m.checksum();
                if expected != a.checksum {
                    return Err(Error::MigrationModified {
                        migration: label(a.version, &a.name),
                        applied: a.checksum.clone(),
                        expected,
                    });
                }
            }
            None => return Err(Error::MigrationMissing(label(a.version, &a.name))),
        }
    }
    let mut pending: Vec<&Migration> =
        known.iter().filter(|m| !applied.iter().any(|a| a.version == m.version)).collect();
    pending.sort_by_key(|m| m.version);
    Ok(pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[Migration] = &[
        Migration { version: 1, name: "one", sql: "create table a(x int);" },
        Migration { version: 2, name: "two", sql: "create table b(x int);" },
    ];

    fn applied(m: &Migration) -> Applied {
        Applied { version: m.version, name: m.name.to_owned(), checksum: m.checksum() }
    }

    #[test]
    fn fresh_database_gets_everything_in_order() {
        let p = plan(KNOWN, &[]).unwrap();
        assert_eq!(p.iter().map(|m| m.version).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn partly_migrated_database_gets_the_rest() {
        let p = plan(KNOWN, &[applied(&KNOWN[0])]).unwrap();
        assert_eq!(p.iter().map(|m| m.version).collect::<Vec<_>>(), vec![2]);
        assert!(plan(KNOWN, &[applied(&KNOWN[0]), applied(&KNOWN[1])]).unwrap().is_empty());
    }

    #[test]
    fn modified_migration_is_refused_by_name() {
        let mut a = applied(&KNOWN[0]);
        a.checksum = checksum("create table a(x bigint);");
        let e = plan(KNOWN, &[a]).unwrap_err();
        assert!(
            matches!(&e, Error::MigrationModified { migration, .. } if migration == "0001_one")
        );
        assert!(
            e.to_string()
                .contains("migration 0001_one was previously applied but has been modified")
        );
    }

    #[test]
    fn newer_database_is_refused() {
        let newer = Applied { version: 7, name: "claims".into(), checksum: "x".into() };
        let e = plan(KNOWN, &[applied(&KNOWN[0]), applied(&KNOWN[1]), newer]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "database schema is newer than this build: it has migration 0007_claims, \
             this build knows up to 0002_two; upgrade mscribe or use another database"
        );
    }

    #[test]
    fn unknown_older_migration_is_refused() {
        let known = &[KNOWN[1]];
        let e = plan(known, &[applied(&KNOWN[0])]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "migration 0001_one was applied to the database but is missing from this build"
        );
    }

    #[test]
    fn checksum_ignores_crlf() {
        assert_eq!(checksum("a\r\nb\r\n"), checksum("a\nb\n"));
        assert_ne!(checksum("a\nb"), checksum("a\nc"));
        assert_eq!(checksum("").len(), 64);
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn embedded_sqlite_migrations_are_numbered_from_one() {
        for (i, m) in SQLITE_MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1);
            assert!(!m.sql.trim().is_empty());
        }
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn embedded_postgres_migrations_are_numbered_from_one() {
        for (i, m) in POSTGRES_MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1);
            assert!(!m.sql.trim().is_empty());
        }
    }
}
