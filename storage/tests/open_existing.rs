//! The read-only opens, `SqliteStore::open_existing` and
//! `PostgresStore::connect_existing`: a database that is missing, was never
//! migrated, or has another schema than this build's is refused with a
//! typed error naming it, and left exactly as it was (nothing created,
//! migrated, locked or switched to WAL); one with this build's schema opens
//! and is read and written as usual.

mod common;

use std::path::Path;

use common::*;
use mscribe_scheduler::{ExecutionStore, HistoryQuery};
use mscribe_storage::migrate::{Migration, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
use mscribe_storage::rusqlite::{self, Connection};
use mscribe_storage::sqlx::{self, Connection as _, Executor as _};
use mscribe_storage::{Error, PostgresStore, SqliteOptions, SqliteStore};

fn sqlite_tables(path: &Path) -> Vec<String> {
    let c = Connection::open(path).unwrap();
    let mut st =
        c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").unwrap();
    st.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

fn journal_mode(path: &Path) -> String {
    let c = Connection::open(path).unwrap();
    c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap()
}

/// Applies `migrations` to a new file as the runner would record them.
fn migrated_file(path: &Path, migrations: &[Migration]) -> Connection {
    let c = Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE mscribe_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
         checksum TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .unwrap();
    for m in migrations {
        c.execute_batch(m.sql).unwrap();
        c.execute(
            "INSERT INTO mscribe_migrations VALUES (?1, ?2, ?3, '2026-01-01T00:00:00Z')",
            rusqlite::params![m.version, m.name, m.checksum()],
        )
        .unwrap();
    }
    c
}

async fn open_existing(path: &Path) -> Result<SqliteStore, Error> {
    SqliteStore::open_existing(SqliteOptions::file(path)).await
}

#[tokio::test]
async fn sqlite_a_missing_file_is_not_found_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/mscribe.db");
    let e = open_existing(&path).await.unwrap_err();
    assert!(matches!(&e, Error::NotFound { path: p } if *p == path), "{e:?}");
    assert_eq!(e.to_string(), format!("database file {} does not exist", path.display()));
    assert!(!e.is_schema() && !e.is_transient());
    assert!(!path.exists() && !path.parent().unwrap().exists());

    let e = open_existing(dir.path()).await.unwrap_err();
    assert!(matches!(&e, Error::Open { message, .. } if message.contains("not a file")), "{e}");
}

#[tokio::test]
async fn sqlite_another_applications_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    let c = Connection::open(&path).unwrap();
    c.execute_batch("CREATE TABLE notes (x TEXT)").unwrap();
    drop(c);
    let e = open_existing(&path).await.unwrap_err();
    let target = format!("sqlite database {}", path.display());
    assert!(matches!(&e, Error::NotMigrated { target: t, known }
        if *t == target && *known == SQLITE_MIGRATIONS.last().unwrap().label()));
    assert!(e.is_schema());
    assert!(e.to_string().starts_with(&format!("{target} is not an mscribe database")), "{e}");
    assert_eq!(sqlite_tables(&path), ["notes"], "nothing created");
    assert_eq!(journal_mode(&path), "delete", "not switched to WAL");

    // A file that is not a database at all.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let e = open_existing(&junk).await.unwrap_err();
    assert!(matches!(&e, Error::Open { .. }), "{e:?}");
    assert!(e.to_string().contains("not a SQLite database"), "{e}");
    assert_eq!(std::fs::read(&junk).unwrap(), vec![b'x'; 4096]);
}

#[tokio::test]
async fn sqlite_an_older_or_newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let known = SQLITE_MIGRATIONS;
    let c = migrated_file(&path, &known[..known.len() - 1]);
    let before = sqlite_tables(&path);
    let e = open_existing(&path).await.unwrap_err();
    match &e {
        Error::DatabaseTooOld { found, missing, known: k, .. } => {
            assert_eq!(*found, known[known.len() - 2].label());
            assert_eq!(*missing, known.last().unwrap().label());
            assert_eq!(k, missing);
        }
        other => panic!("{other:?}"),
    }
    assert!(e.is_schema());
    assert_eq!(sqlite_tables(&path), before, "nothing migrated");

    // One migration newer than this build.
    c.execute_batch(known.last().unwrap().sql).unwrap();
    let last = known.last().unwrap();
    c.execute(
        "INSERT INTO mscribe_migrations VALUES (?1, ?2, ?3, '2026-01-01T00:00:00Z')",
        rusqlite::params![last.version, last.name, last.checksum()],
    )
    .unwrap();
    c.execute(
        "INSERT INTO mscribe_migrations VALUES (?1, 'future', 'x', '2026-01-01T00:00:00Z')",
        [last.version + 1],
    )
    .unwrap();
    let e = open_existing(&path).await.unwrap_err();
    assert!(
        matches!(&e, Error::DatabaseTooNew { found, .. }
        if *found == format!("{:04}_future", last.version + 1)),
        "{e:?}"
    );
    assert!(e.is_schema());
}

#[tokio::test]
async fn sqlite_a_current_database_opens_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mscribe.db");
    SqliteStore::open(&path).await.unwrap();
    let store = open_existing(&path).await.unwrap();
    store.write(&[start("j", 1, 1, 100, "i1")]).await.unwrap();
    assert_eq!(store.history(&HistoryQuery::new("j", 10)).await.unwrap().len(), 1);
    // In memory there is nothing to check: a fresh database.
    let mem = SqliteStore::open_existing(SqliteOptions::memory()).await.unwrap();
    assert!(mem.history(&HistoryQuery::new("j", 10)).await.unwrap().is_empty());
}

async fn pg_tables(db: &PgTestDb) -> Vec<String> {
    let mut c = db.connect().await;
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let _ = c.close().await;
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_a_database_never_migrated_older_or_newer_untouched() {
    let db = PgTestDb::create().await;
    let target = db.store_options().target().to_owned();
    let e = PostgresStore::connect_existing(db.store_options()).await.unwrap_err();
    assert!(
        matches!(&e, Error::NotMigrated { target: t, known }
        if *t == target && *known == POSTGRES_MIGRATIONS.last().unwrap().label()),
        "{e:?}"
    );
    assert!(pg_tables(&db).await.is_empty(), "nothing created");

    // Another application's table only.
    let mut c = db.connect().await;
    c.execute("CREATE TABLE notes (x text)").await.unwrap();
    let e = PostgresStore::connect_existing(db.store_options()).await.unwrap_err();
    assert!(matches!(&e, Error::NotMigrated { .. }), "{e:?}");
    assert_eq!(pg_tables(&db).await, ["notes"]);
    c.execute("DROP TABLE notes").await.unwrap();

    // Migrated: opens and works.
    PostgresStore::connect_with(db.store_options()).await.unwrap().close().await;
    let store = PostgresStore::connect_existing(db.store_options()).await.unwrap();
    store.write(&[start("j", 1, 1, 100, "i1")]).await.unwrap();
    assert_eq!(store.history(&HistoryQuery::new("j", 10)).await.unwrap().len(), 1);
    store.close().await;

    // One migration behind: refused, nothing migrated.
    let last = POSTGRES_MIGRATIONS.last().unwrap();
    c.execute(format!("DELETE FROM mscribe_migrations WHERE version = {}", last.version).as_str())
        .await
        .unwrap();
    let e = PostgresStore::connect_existing(db.store_options()).await.unwrap_err();
    match &e {
        Error::DatabaseTooOld { target: t, found, missing, .. } => {
            assert_eq!(*t, target);
            assert_eq!(*found, POSTGRES_MIGRATIONS[POSTGRES_MIGRATIONS.len() - 2].label());
            assert_eq!(*missing, last.label());
        }
        other => panic!("{other:?}"),
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM mscribe_migrations")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(count, last.version - 1, "nothing migrated");

    // Newer than this build.
    sqlx::query("INSERT INTO mscribe_migrations (version, name, checksum) VALUES ($1, $2, $3)")
        .bind(last.version)
        .bind(last.name)
        .bind(last.checksum())
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO mscribe_migrations (version, name, checksum) VALUES ($1, 'future', 'x')",
    )
    .bind(last.version + 1)
    .execute(&mut c)
    .await
    .unwrap();
    let e = PostgresStore::connect_existing(db.store_options()).await.unwrap_err();
    assert!(matches!(&e, Error::DatabaseTooNew { .. }) && e.is_schema(), "{e:?}");
    let _ = c.close().await;
}
