//! SQLite-specific behaviour: files, bad paths, migrations, locking, the
//! probe, and running without tokio.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mscribe_scheduler::{ErrorKind, StoreError};
use mscribe_scheduler::{ExecutionEvent, ExecutionStatus, ExecutionStore, HistoryQuery};
use mscribe_storage::rusqlite::{self, Connection};
use mscribe_storage::{Error, SqliteOptions, SqliteProbe, SqliteStore};

fn raw(path: &std::path::Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

/// The first column of `sql`'s rows, as text.
fn texts(c: &Connection, sql: &str) -> Vec<String> {
    c.prepare(sql)
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[tokio::test]
async fn a_file_keeps_its_rows_across_reopen_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keep.db");
    {
        let s = SqliteStore::open(&path).await.unwrap();
        s.write(&[start("j", 1, 1, 100, "i1"), end("j", 1, 1, 100, ExecutionStatus::Succeeded)])
            .await
            .unwrap();
    }
    let s = SqliteStore::open(&path).await.unwrap();
    let got = s.history(&HistoryQuery::new("j", 10)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, ExecutionStatus::Succeeded);

    let c = raw(&path);
    let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let applied: Vec<(i64, String)> = c
        .prepare("SELECT version, name FROM mscribe_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let names = [
        "executions",
        "instances",
        "fire_claims",
        "error_kind",
        "job_metrics_hourly",
        "control",
        "leases",
        "once_per_cluster",
        "alerts",
    ];
    assert_eq!(applied, (1..).zip(names.map(str::to_owned)).collect::<Vec<_>>());
    // Timestamps are readable text.
    let started: String =
        c.query_row("SELECT started_at FROM scheduled_job_executions", [], |r| r.get(0)).unwrap();
    assert_eq!(started, "2026-01-01T00:00:00.100000Z");
}

#[tokio::test]
async fn prune_forgets_instances_long_silent_without_a_running_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("instances.db");
    prune_after_three_heartbeats(&SqliteStore::open(&path).await.unwrap()).await;
    let left = texts(&raw(&path), "SELECT instance_id FROM scheduler_instances ORDER BY 1");
    assert_eq!(left, ["busy", "fresh"]);
}

/// Two stores on one file, as two scheduler processes: each fire is won
/// once between them, and the claims are readable rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_file_claim_each_fire_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claims.db");
    let a = SqliteStore::open(&path).await.unwrap();
    let b = SqliteStore::open(&path).await.unwrap();
    claims_race(Arc::new(a), Arc::new(b)).await;
    let claimed = texts(
        &raw(&path),
        "SELECT scheduled_at FROM fire_claims WHERE job_id = 'w' ORDER BY 1 LIMIT 1",
    );
    assert_eq!(claimed, ["2026-01-01T00:00:00.000000Z"]);
}

/// Two stores on one file take over the same expired leases at the same
/// moment, round after round, while the old owner writes: one take-over
/// per fire, and the owner's late record written before it or refused
/// after it. The leases are readable rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_file_take_a_fire_over_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("retake.db");
    let a = SqliteStore::open(&path).await.unwrap();
    let b = SqliteStore::open(&path).await.unwrap();
    retake_race(Arc::new(a), Arc::new(b), 100).await;
    let fences = texts(
        &raw(&path),
        "SELECT DISTINCT fence || ' ' || ended || ' ' || (execution_id IS NOT NULL)
         FROM fire_claims",
    );
    assert_eq!(fences, ["2 1 1"]);
}

/// Two stores on one file claim fires of a job limited to one live lease:
/// the immediate transactions count one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_file_hold_a_cluster_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limit.db");
    let a = SqliteStore::open(&path).await.unwrap();
    let b = SqliteStore::open(&path).await.unwrap();
    limited_claims_race(Arc::new(a), Arc::new(b), 100).await;
}

#[test]
fn works_without_tokio() {
    futures::executor::block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path().join("plain.db")).await.unwrap();
        s.write(&[start("j", 1, 1, 100, "i1")]).await.unwrap();
        assert_eq!(s.history(&HistoryQuery::new("j", 10)).await.unwrap().len(), 1);
        assert!(SqliteProbe::new(&s).check().await.ok);
        let m = SqliteStore::open_memory().await.unwrap();
        m.heartbeat("i1", t(0)).await.unwrap();
        assert!(m.mark_abandoned("i1", t(0), Duration::from_secs(1)).await.unwrap().is_empty());
    });
}

#[tokio::test]
async fn in_memory_stores_are_private() {
    let a = SqliteStore::open_memory().await.unwrap();
    let b = SqliteStore::open_memory().await.unwrap();
    a.write(&[start("j", 1, 1, 100, "i1")]).await.unwrap();
    assert_eq!(a.history(&HistoryQuery::new("j", 10)).await.unwrap().len(), 1);
    assert!(b.history(&HistoryQuery::new("j", 10)).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "these are my notes, not a database\n".repeat(200)).unwrap();
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    assert!(!err.is_transient());
    let msg = err.to_string();
    assert!(msg.contains("notes.txt"), "{msg}");
    assert!(msg.contains("the file exists but is not a SQLite database"), "{msg}");
    // The file is left as it was.
    assert!(std::fs::read_to_string(&path).unwrap().starts_with("these are my notes"));
}

#[tokio::test]
async fn a_path_that_cannot_hold_a_file_is_refused_clearly() {
    // Works as root too: no permission bit can make a regular file a directory.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    for path in
        [file.join("mscribe.db"), file.join("sub/dir/mscribe.db"), dir.path().join("missing/x.db")]
    {
        let err = SqliteStore::open(&path).await.unwrap_err();
        assert!(matches!(err, Error::Open { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("cannot be opened or created"), "{msg}");
    }
    // A directory is not a database file either.
    let err = SqliteStore::open(dir.path()).await.unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
}

#[tokio::test]
async fn a_changed_applied_migration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    drop(SqliteStore::open(&path).await.unwrap());
    raw(&path)
        .execute("UPDATE mscribe_migrations SET checksum = 'f00d' WHERE version = 1", [])
        .unwrap();
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(
        matches!(&err, Error::MigrationModified { migration, .. } if migration == "0001_executions")
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "migration 0001_executions was previously applied but has been modified \
             (checksum f00d in the database, "
        ),
        "{msg}"
    );
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    drop(SqliteStore::open(&path).await.unwrap());
    raw(&path)
        .execute(
            "INSERT INTO mscribe_migrations (version, name, checksum, applied_at)
             VALUES (42, 'from_the_future', 'x', '2030-01-01T00:00:00.000000Z')",
            [],
        )
        .unwrap();
    let err = SqliteStore::open(&path).await.unwrap_err();
    let newest = mscribe_storage::migrate::SQLITE_MIGRATIONS.last().unwrap().label();
    assert_eq!(
        err.to_string(),
        format!(
            "database schema is newer than this build: it has migration 0042_from_the_future, \
             this build knows up to {newest}; upgrade mscribe or use another database"
        )
    );
}

/// A database from before the leases, with a claim of that time: opening
/// applies 0007_leases, which marks the claim ended (it holds no lease),
/// and the fire stays taken.
#[tokio::test]
async fn a_claim_from_before_the_leases_holds_no_lease() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let c = raw(&path);
    c.execute_batch(
        "CREATE TABLE mscribe_migrations (version INTEGER PRIMARY KEY NOT NULL,
         name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .unwrap();
    for m in mscribe_storage::migrate::SQLITE_MIGRATIONS.iter().filter(|m| m.version <= 5) {
        c.execute_batch(m.sql).unwrap();
        c.execute(
            "INSERT INTO mscribe_migrations VALUES (?1, ?2, ?3, '2026-01-01T00:00:00.000000Z')",
            rusqlite::params![m.version, m.name, m.checksum()],
        )
        .unwrap();
    }
    c.execute(
        "INSERT INTO fire_claims VALUES ('j', ?1, 'old', ?1)",
        [mscribe_storage::sqlite_ts_text(t(0))],
    )
    .unwrap();
    let s = SqliteStore::open(&path).await.unwrap();
    assert!(s.expired_leases(t(1_000_000), 10).await.unwrap().is_empty());
    let got = s.claim_fires("new", &[fire("j", 0)], t(10), LEASE).await.unwrap();
    assert_eq!(got, [mscribe_scheduler::ClaimOutcome::Taken]);
    let row = texts(&c, "SELECT fence || ' ' || ended || ' ' || instance_id FROM fire_claims");
    assert_eq!(row, ["1 1 old"]);
}

#[tokio::test]
async fn a_failing_migration_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("taken.db");
    // Someone else's table with the name migration 0002 wants.
    raw(&path).execute_batch("CREATE TABLE scheduler_instances (x INTEGER)").unwrap();
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(
        matches!(&err, Error::MigrationFailed { migration, .. } if migration == "0002_instances")
    );
    assert!(err.to_string().contains("table scheduler_instances already exists"), "{err}");
    let tables =
        texts(&raw(&path), "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    assert_eq!(tables, vec!["scheduler_instances".to_owned()]);
}

/// The files alone, in order, on an empty database, as the `sqlite3` shell
/// applies them (scripts/test.sh runs it too): no file needs the runner.
#[test]
fn the_files_apply_in_order_without_the_runner() {
    let dir = tempfile::tempdir().unwrap();
    let c = raw(&dir.path().join("plain.db"));
    for m in mscribe_storage::migrate::SQLITE_MIGRATIONS {
        c.execute_batch(m.sql)
            .unwrap_or_else(|e| panic!("{} fails without the runner: {e}", m.label()));
    }
    let tables = texts(&c, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    assert_eq!(
        tables,
        [
            "alert_job_state",
            "alert_leases",
            "alert_outbox",
            "backfill_locks",
            "control_audit",
            "execution_cancels",
            "fire_claims",
            "job_definitions",
            "job_metrics_hourly",
            "job_pauses",
            "job_triggers",
            "scheduled_job_executions",
            "scheduler_instances"
        ]
    );
    let columns = texts(&c, "SELECT name FROM pragma_table_info('scheduled_job_executions')");
    assert!(columns.iter().any(|n| n == "error_kind"), "{columns:?}");
}

/// The statements servers before migration 0005 ran at every open, to make
/// their table themselves.
const SERVER_MADE_HOURLY_TABLE: &str = "\
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

/// A database from before 0005, where the server had made
/// `job_metrics_hourly` itself: the migration applies, and the table keeps
/// its rows, which the store reads.
#[tokio::test]
async fn a_database_whose_server_made_the_hourly_table_keeps_it() {
    use mscribe_storage::HourlyMetricsStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    drop(SqliteStore::open(&path).await.unwrap());
    // Back to 0004, then the old server's table and a row of it.
    let c = raw(&path);
    c.execute_batch(
        "DROP TABLE job_metrics_hourly; DELETE FROM mscribe_migrations WHERE version = 5;",
    )
    .unwrap();
    c.execute_batch(SERVER_MADE_HOURLY_TABLE).unwrap();
    c.execute(
        "INSERT INTO job_metrics_hourly VALUES
         ('backup', '2026-01-01T10:00:00.000000Z', 2, 1, 1, 0, 0.5, 300, 900,
          '2026-01-01T12:00:00.000000Z')",
        [],
    )
    .unwrap();
    drop(c);
    let s = SqliteStore::open(&path).await.unwrap();
    let rows = s.hourly(None).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].job_id.as_str(), rows[0].runs, rows[0].p95_ms), ("backup", 2, Some(900)));
    drop(s);
    let c = raw(&path);
    let applied = texts(&c, "SELECT name FROM mscribe_migrations WHERE version = 5");
    assert_eq!(applied, ["job_metrics_hourly"]);
    let indexes = texts(
        &c,
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'job_metrics_hourly' AND sql IS NOT NULL",
    );
    assert_eq!(indexes, ["job_metrics_hourly_hour"]);
}

/// A database locked by another writer for longer than the busy timeout:
/// opening fails as transient, naming the migration step and SQLite's words.
#[tokio::test]
async fn a_locked_database_at_open_names_the_step_and_sqlites_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    let other = raw(&path);
    other.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let opts = SqliteOptions::file(&path).busy_timeout(Duration::from_millis(100));
    let err = SqliteStore::open_with(opts).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_transient());
    let msg = err.to_string();
    assert!(msg.ends_with("migrating: starting the transaction: database is locked"), "{msg}");
    other.execute_batch("ROLLBACK").unwrap();
}

#[tokio::test]
async fn events_a_store_cannot_hold_are_rejected_and_the_rest_written() {
    let s = SqliteStore::open_memory().await.unwrap();
    bad_events_are_rejected_but_the_rest_written(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_fails_writes_promptly_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let s =
        SqliteStore::open_with(SqliteOptions::file(&path).busy_timeout(Duration::from_millis(300)))
            .await
            .unwrap();
    s.write(&[start("j", 1, 1, 100, "i1")]).await.unwrap();

    // Another process holds the write lock.
    let other = raw(&path);
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let t0 = Instant::now();
    let err = s.write(&[end("j", 1, 1, 100, ExecutionStatus::Succeeded)]).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("database is locked"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // Reads go on meanwhile (WAL).
    assert_eq!(s.history(&HistoryQuery::new("j", 10)).await.unwrap().len(), 1);
    // The probe queues behind the writer: a slow writer shows.
    let probe = SqliteProbe::new(&s).timeout(Duration::from_millis(50));
    let batch = [end("j", 1, 1, 100, ExecutionStatus::Succeeded)];
    let slow = s.write(&batch);
    let (w, report) = tokio::join!(slow, async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        probe.check().await
    });
    assert!(w.is_err());
    assert!(!report.ok, "{report:?}");
    assert!(report.message.unwrap().contains("no answer within"));

    other.execute_batch("COMMIT").unwrap();
    s.write(&[end("j", 1, 1, 100, ExecutionStatus::Succeeded)]).await.unwrap();
    let got = s.history(&HistoryQuery::new("j", 10)).await.unwrap();
    assert_eq!(got[0].status, ExecutionStatus::Succeeded);
    let report = probe.timeout(Duration::from_secs(2)).check().await;
    assert!(report.ok && report.message.is_none(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_and_group_commit_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open_with(SqliteOptions::file(dir.path().join("load.db")).readers(3))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..32u128 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20u128 {
                let id = w * 100 + i;
                s.write(&[start("load", id, 1, id as i64, "i1")]).await.unwrap();
                s.last_fire("load").await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.history(&HistoryQuery::new("load", 10_000)).await.unwrap().len(), 640);
    // Reads through the writer when there are no readers.
    let r0 = SqliteStore::open_with(SqliteOptions::file(dir.path().join("load.db")).readers(0))
        .await
        .unwrap();
    assert_eq!(r0.history(&HistoryQuery::new("load", 10_000)).await.unwrap().len(), 640);
}

#[tokio::test]
async fn from_url_opens_memory_and_files() {
    let s =
        SqliteStore::open_with(SqliteOptions::from_url("sqlite::memory:").unwrap()).await.unwrap();
    assert_eq!(s.target(), "sqlite in-memory database");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("u.db").display());
    let s = SqliteStore::open_with(SqliteOptions::from_url(&url).unwrap()).await.unwrap();
    assert!(s.target().ends_with("u.db"));
    let err = SqliteOptions::from_url("sqlite://").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid database configuration: invalid sqlite location \"sqlite://\": no path"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_writer_times_writes_out_and_the_retry_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stalled.db");
    let s = SqliteStore::open_with(
        SqliteOptions::file(&path)
            .busy_timeout(Duration::from_secs(3))
            .operation_timeout(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let other = raw(&path);
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let batch = [start("j", 1, 1, 100, "i1"), end("j", 1, 1, 100, ExecutionStatus::Failed)];
    let t0 = Instant::now();
    let err = s.write(&batch).await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert!(err.is_transient());
    assert!(err.to_string().contains("write timed out after 200ms"), "{err}");
    // The lock goes away while the writer still waits: the timed-out write lands.
    other.execute_batch("COMMIT").unwrap();
    let mut tries = 0;
    while let Err(e) = s.write(&batch).await {
        tries += 1;
        assert!(tries < 20, "{e}");
    }
    let got = s.history(&HistoryQuery::new("j", 10)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, ExecutionStatus::Failed);
}

/// The column takes only the two kinds; a stored text the store does not
/// know (written with the CHECK turned off) reads as corrupt, naming it.
#[tokio::test]
async fn error_kind_is_checked_and_unknown_text_reads_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kinds.db");
    let s = SqliteStore::open(&path).await.unwrap();
    let mut e = end_with("j", 1, 1, 100, "i1", ExecutionStatus::Failed, 10);
    e.error_kind = Some(ErrorKind::Permanent);
    s.write(&[ExecutionEvent::Finished(e)]).await.unwrap();
    let c = raw(&path);
    assert_eq!(texts(&c, "SELECT error_kind FROM scheduled_job_executions"), ["permanent"]);
    let err =
        c.execute("UPDATE scheduled_job_executions SET error_kind = 'fatal'", []).unwrap_err();
    assert!(err.to_string().contains("CHECK constraint failed"), "{err}");
    c.execute("UPDATE scheduled_job_executions SET error_kind = NULL", []).unwrap();

    c.execute_batch(
        "PRAGMA ignore_check_constraints = ON;
         UPDATE scheduled_job_executions SET error_kind = 'fatal';",
    )
    .unwrap();
    let err = s.history(&HistoryQuery::new("j", 10)).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("error_kind \"fatal\""), "{err}");
}
