//! Schema migrations, embedded in the binary and applied at open.
//!
//! Each backend has numbered SQL files (`migrations/sqlite/0001_executions.sql`,
//! ...). Opening a store applies the missing ones in order, in one
//! transaction, and records each in `mscribe_migrations(version, name,
//! checksum, applied_at)`. The checksum is the SHA-256 of the file's text
//! (line endings normalised to `\n`). Opening refuses a database where an
//! applied migration's checksum differs from this build's text, or whose
//! newest migration is newer than this build knows.
//!
//! Files are never edited once applied anywhere, with one exception: an
//! edit that leaves a database the runner migrated exactly as it was (the
//! same schema, grants and policies) may be made when it fixes the file for
//! other ways of applying it. The checksum of each earlier text then goes
//! into [`Migration::superseded`], and a database that recorded it opens as
//! before; its row keeps the earlier checksum, which says what text was
//! applied there (and a role that may only read the table can still open
//! it). So far: `postgres/0003_row_level_security.sql`, which named the
//! runner's own table `mscribe_migrations` outright and so failed when the
//! files were applied in order with plain `psql -f`; it now secures that
//! table only when it exists.
//!
//! Every file also applies, in order, on an empty database with the
//! database's own client (`psql -v ON_ERROR_STOP=1 -f`, `sqlite3`), without
//! this runner: `scripts/test.sh` checks it. Such a database has no
//! `mscribe_migrations` table, so this runner cannot adopt it (it would
//! apply `0001` again and fail on the existing table).

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
    /// Checksums of earlier texts of the file, still accepted in a
    /// database that recorded one of them: each edit left a database the
    /// runner migrated unchanged (see the [module docs](self)). Usually
    /// empty.
    pub superseded: &'static [&'static str],
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
        migration!($dir, $version, $name, superseded: [])
    };
    ($dir:literal, $version:literal, $name:literal, superseded: [$($old:literal),* $(,)?]) => {
        Migration {
            version: match i64::from_str_radix($version, 10) {
                Ok(v) => v,
                Err(_) => panic!("migration number is not decimal"),
            },
            name: $name,
            sql: include_str!(concat!(
                // storage/migrations links to the workspace's migrations/
                // (the one copy); `cargo package` follows the link, so the
                // published crate carries the files.
                "../migrations/",
                $dir,
                "/",
                $version,
                "_",
                $name,
                ".sql"
            )),
            superseded: &[$($old),*],
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
    migration!("sqlite", "0005", "job_metrics_hourly"),
    migration!("sqlite", "0006", "control"),
    migration!("sqlite", "0007", "leases"),
    migration!("sqlite", "0008", "once_per_cluster"),
    migration!("sqlite", "0009", "alerts"),
];

/// The Postgres migrations of this build, in order.
#[cfg(feature = "postgres")]
pub static POSTGRES_MIGRATIONS: &[Migration] = &[
    migration!("postgres", "0001", "executions"),
    migration!("postgres", "0002", "instances"),
    // The released text named mscribe_migrations outright (it failed under
    // plain psql); the edit secures that table only when it exists, which
    // changes nothing where the runner applied it.
    migration!(
        "postgres",
        "0003",
        "row_level_security",
        superseded: ["2499f0fae3d193a098c74f2195d19da1b70e7b7788a19c7fedf79abb38ccee49"]
    ),
    migration!("postgres", "0004", "sql_helpers"),
    migration!("postgres", "0005", "fire_claims"),
    migration!("postgres", "0006", "error_kind"),
    migration!("postgres", "0007", "job_metrics_hourly"),
    migration!("postgres", "0008", "control"),
    migration!("postgres", "0009", "leases"),
    migration!("postgres", "0010", "once_per_cluster"),
    migration!("postgres", "0011", "alerts"),
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
                if m.superseded.contains(&a.checksum.as_str()) {
                    tracing::debug!(
                        migration = %m.label(),
                        checksum = %a.checksum,
                        "migration was applied from an earlier, equivalent text"
                    );
                } else if expected != a.checksum {
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

/// Checks that a database with the migrations `applied` has exactly this
/// build's schema, for a read-only open: [`Error::NotMigrated`] when it has
/// none, [`Error::DatabaseTooOld`] when it lacks some of `known`, and
/// [`plan`]'s errors (newer, edited, unknown). `target` names the database.
pub(crate) fn check_current(known: &[Migration], applied: &[Applied], target: &str) -> Result<()> {
    let newest_known = || known.last().map(Migration::label).unwrap_or_else(|| "none".to_owned());
    if applied.is_empty() {
        return Err(Error::NotMigrated { target: target.to_owned(), known: newest_known() });
    }
    let pending = plan(known, applied)?;
    match (pending.first(), applied.iter().max_by_key(|a| a.version)) {
        (Some(missing), Some(newest)) => Err(Error::DatabaseTooOld {
            target: target.to_owned(),
            found: label(newest.version, &newest.name),
            missing: missing.label(),
            known: newest_known(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[Migration] = &[
        Migration { version: 1, name: "one", sql: "create table a(x int);", superseded: &[] },
        Migration { version: 2, name: "two", sql: "create table b(x int);", superseded: &[] },
    ];

    fn applied(m: &Migration) -> Applied {
        Applied { version: m.version, name: m.name.to_owned(), checksum: m.checksum() }
    }

    /// A read-only open takes exactly this build's schema: none, fewer,
    /// newer or edited migrations are refused, naming the database and the
    /// versions.
    #[test]
    fn a_read_only_open_takes_only_the_current_schema() {
        let all = [applied(&KNOWN[0]), applied(&KNOWN[1])];
        assert!(check_current(KNOWN, &all, "db").is_ok());
        let e = check_current(KNOWN, &[], "sqlite database x.db").unwrap_err();
        assert!(matches!(&e, Error::NotMigrated { known, .. } if known == "0002_two"));
        assert!(e.is_schema());
        assert_eq!(
            e.to_string(),
            "sqlite database x.db is not an mscribe database, or was never migrated \
             (no mscribe_migrations rows); this build's schema is 0002_two"
        );
        let e = check_current(KNOWN, &all[..1], "sqlite database x.db").unwrap_err();
        assert!(e.is_schema());
        assert_eq!(
            e.to_string(),
            "sqlite database x.db has an older schema than this build: it has migrations up to \
             0001_one, this build needs 0002_two (and up to 0002_two)"
        );
        let newer = Applied { version: 3, name: "three".into(), checksum: "x".into() };
        let e = check_current(KNOWN, &[all[0].clone(), all[1].clone(), newer], "db").unwrap_err();
        assert!(matches!(&e, Error::DatabaseTooNew { found, .. } if found == "0003_three"));
        let mut edited = all.clone();
        edited[1].checksum = checksum("something else");
        let e = check_current(KNOWN, &edited, "db").unwrap_err();
        assert!(matches!(&e, Error::MigrationModified { .. }) && e.is_schema());
        // Only the second applied: the first is what it lacks.
        let e = check_current(KNOWN, &all[1..], "db").unwrap_err();
        assert!(matches!(&e, Error::DatabaseTooOld { found, missing, .. }
            if found == "0002_two" && missing == "0001_one"));
        assert!(!Error::NotFound { path: "x".into() }.is_schema());
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
    fn superseded_checksum_is_accepted_and_no_other() {
        const EDITED: &[Migration] = &[
            Migration { version: 1, name: "one", sql: "create table a(x int);", superseded: &[] },
            Migration {
                version: 2,
                name: "two",
                sql: "create table b(x int); -- edited",
                superseded: &["7f3c"],
            },
        ];
        let mut old = applied(&EDITED[1]);
        old.checksum = "7f3c".to_owned();
        let rows = [applied(&EDITED[0]), old];
        assert!(plan(EDITED, &rows).unwrap().is_empty());
        assert!(plan(EDITED, &[applied(&EDITED[0]), applied(&EDITED[1])]).unwrap().is_empty());
        let mut other = applied(&EDITED[1]);
        other.checksum = "0bad".to_owned();
        let e = plan(EDITED, &[applied(&EDITED[0]), other]).unwrap_err();
        assert!(
            matches!(&e, Error::MigrationModified { migration, .. } if migration == "0002_two")
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

    /// Numbers start at 1 and go up by one, except over `reserved`: numbers
    /// another branch has taken for files not merged here yet (the runner
    /// applies what is missing in order of number, so a gap filled later
    /// applies then). Once those files are merged, `reserved` empties.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    fn assert_numbered_from_one(known: &[Migration], reserved: &[i64]) {
        let mut expected = 1;
        for m in known {
            while reserved.contains(&expected) && m.version != expected {
                expected += 1;
            }
            assert_eq!(m.version, expected, "{}", m.label());
            assert!(!m.sql.trim().is_empty());
            expected += 1;
        }
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn embedded_sqlite_migrations_are_numbered_from_one() {
        // 0006: the control tables, landing on main.
        assert_numbered_from_one(SQLITE_MIGRATIONS, &[6]);
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn embedded_postgres_migrations_are_numbered_from_one() {
        // 0008: the control tables, landing on main.
        assert_numbered_from_one(POSTGRES_MIGRATIONS, &[8]);
    }

    /// A database migrated before the reserved number's file existed here
    /// gets it later, after higher numbers: the gap is no error.
    #[test]
    fn a_gap_filled_later_is_applied_then() {
        const GAP: &[Migration] = &[
            KNOWN[0],
            Migration { version: 3, name: "three", sql: "create table c(x int);", superseded: &[] },
        ];
        const FILLED: &[Migration] = &[KNOWN[0], KNOWN[1], GAP[1]];
        let p = plan(GAP, &[]).unwrap();
        assert_eq!(p.iter().map(|m| m.version).collect::<Vec<_>>(), vec![1, 3]);
        let p = plan(FILLED, &[applied(&GAP[0]), applied(&GAP[1])]).unwrap();
        assert_eq!(p.iter().map(|m| m.version).collect::<Vec<_>>(), vec![2]);
    }

    /// A superseded checksum is a SHA-256 of another text, never the
    /// current one's.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[test]
    fn superseded_checksums_are_other_sha256s() {
        let mut all: Vec<&Migration> = Vec::new();
        #[cfg(feature = "sqlite")]
        all.extend(SQLITE_MIGRATIONS);
        #[cfg(feature = "postgres")]
        all.extend(POSTGRES_MIGRATIONS);
        for m in all {
            for old in m.superseded {
                assert_eq!(old.len(), 64, "{}", m.label());
                assert!(old.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')), "{old}");
                assert_ne!(*old, m.checksum(), "{}", m.label());
            }
        }
    }

    /// The folders hold exactly the embedded files: `psql -f` and `sqlite3`
    /// apply what is in the folder, the runner what is listed here.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[test]
    fn the_folders_hold_exactly_the_embedded_files() {
        let check = |dir: &str, known: &[Migration]| {
            let path =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dir);
            let mut files: Vec<String> = std::fs::read_dir(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".sql"))
                .collect();
            files.sort();
            let listed: Vec<String> = known.iter().map(|m| format!("{}.sql", m.label())).collect();
            assert_eq!(files, listed, "{dir}");
        };
        #[cfg(feature = "sqlite")]
        check("sqlite", SQLITE_MIGRATIONS);
        #[cfg(feature = "postgres")]
        check("postgres", POSTGRES_MIGRATIONS);
    }
}
