//! The database jobs against a real SQLite file: backup while the store
//! writes, keep-last-N, verification; the hourly rollup's idempotency; and
//! retention of both tables.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use mscribe_scheduler::{AttemptEnd, AttemptStart, ExecutionId, FireKind};
use mscribe_scheduler::{ExecutionEvent, ExecutionStatus, HistoryQuery};
use mscribe_server::config::{BackupOptions, RetentionOptions};
use mscribe_server::db::Database;
use mscribe_server::ops::{
    DatabaseBackup, HistoryRetention, MetricsAggregation, OpsJob, verify_sqlite_backup,
};

fn end(
    job: &str,
    id: u128,
    attempt: u32,
    status: ExecutionStatus,
    at: DateTime<Utc>,
    ms: u64,
) -> ExecutionEvent {
    ExecutionEvent::Finished(AttemptEnd {
        job_id: job.into(),
        execution_id: ExecutionId::from_u128(id),
        attempt,
        scheduled_at: at,
        started_at: at,
        instance_id: "test".into(),
        status,
        completed_at: at + chrono::Duration::milliseconds(ms as i64),
        duration: Duration::from_millis(ms),
        error: None,
        error_kind: None,
        result: None,
        metrics: None,
        kind: FireKind::Schedule,
        fence: None,
        ends_run: true,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_writing_keeps_last_n_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::open(&format!("sqlite://{}", tmp.path().join("live.db").display()))
        .await
        .unwrap();
    let store = db.store();
    let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    // A writer keeps writing while the backups run.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..400u128 {
                let at = t0 + chrono::Duration::seconds(i as i64);
                store
                    .write(&[end("w", i + 1, 1, ExecutionStatus::Succeeded, at, 5)])
                    .await
                    .unwrap();
            }
        })
    };
    let dir = tmp.path().join("backups");
    let job = DatabaseBackup::new(
        db.clone(),
        dir.clone(),
        BackupOptions { keep: 2, ..Default::default() },
    );
    let mut files = Vec::new();
    for i in 0..4 {
        let out = job.run_at(t0 + chrono::Duration::hours(i)).await;
        assert_eq!(out.error, None, "{}", out.data);
        assert_eq!(out.data["integrity_check"], "ok");
        assert_eq!(out.data["verified"], true);
        files.push(out.data["file"].as_str().unwrap().to_owned());
    }
    writer.await.unwrap();
    let mut left: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path().display().to_string()).collect();
    left.sort();
    assert_eq!(left, files[2..].to_vec(), "the two newest remain");
    for f in &left {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(f).unwrap().permissions().mode() & 0o777, 0o600);
        verify_sqlite_backup(std::path::Path::new(f)).unwrap();
    }
    // A final backup after the writer is done holds every row.
    let out = job.run_at(t0 + chrono::Duration::hours(10)).await;
    assert_eq!(out.data["executions"], 400);

    // A damaged file fails verification.
    let bad = tmp.path().join("bad.db");
    std::fs::copy(&left[1], &bad).unwrap();
    let mut bytes = std::fs::read(&bad).unwrap();
    bytes.truncate(bytes.len() / 2);
    for b in bytes.iter_mut().skip(100).take(4000) {
        *b = 0xAB;
    }
    std::fs::write(&bad, bytes).unwrap();
    assert!(verify_sqlite_backup(&bad).is_err());
}

#[tokio::test]
async fn in_memory_database_backup_is_a_skip_with_a_reason() {
    let db = Database::open("sqlite::memory:").await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = DatabaseBackup::new(db, tmp.path().to_owned(), BackupOptions::default())
        .run_at(Utc::now())
        .await;
    assert_eq!(out.error, None);
    assert_eq!(out.data["skipped"], true);
    assert!(out.data["reason"].as_str().unwrap().contains("in memory"));
}

#[tokio::test]
async fn a_backup_dir_that_cannot_be_created_fails_permanently() {
    let tmp = tempfile::tempdir().unwrap();
    let db =
        Database::open(&format!("sqlite://{}", tmp.path().join("b.db").display())).await.unwrap();
    // A file where backup_dir should be (chmod would not stop root).
    let in_the_way = tmp.path().join("backups");
    std::fs::write(&in_the_way, b"x").unwrap();
    for dir in [in_the_way.clone(), in_the_way.join("nested")] {
        let out = DatabaseBackup::new(db.clone(), dir.clone(), BackupOptions::default())
            .run_at(Utc::now())
            .await;
        assert!(out.permanent, "{dir:?}: {:?}", out.error);
        let error = out.error.clone().unwrap();
        assert!(
            error.starts_with(&format!("cannot create backup_dir {}: ", dir.display())),
            "{error}"
        );
        assert_eq!(
            out.into_job_result().error_kind(),
            Some(mscribe_scheduler::ErrorKind::Permanent)
        );
    }
    // The same job with a usable directory succeeds, transiently nothing.
    let out = DatabaseBackup::new(db, tmp.path().join("ok"), BackupOptions::default())
        .run_at(Utc::now())
        .await;
    assert_eq!((out.error, out.permanent), (None, false));
}

#[tokio::test]
async fn hourly_rollup_is_idempotent_and_retention_prunes_both_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let db =
        Database::open(&format!("sqlite://{}", tmp.path().join("m.db").display())).await.unwrap();
    let store = db.store();
    let h = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
    let m = |min: i64| h + chrono::Duration::minutes(min);
    let mut evs = vec![
        end("backup", 1, 1, ExecutionStatus::Failed, m(0), 100),
        end("backup", 1, 2, ExecutionStatus::Succeeded, m(0), 300),
        end("backup", 2, 1, ExecutionStatus::TimedOut, m(30), 900),
        end("scan", 3, 1, ExecutionStatus::Succeeded, m(65), 10),
    ];
    evs.push(ExecutionEvent::Started(AttemptStart {
        job_id: "scan".into(),
        execution_id: ExecutionId::from_u128(4),
        attempt: 1,
        scheduled_at: m(70),
        started_at: m(70),
        instance_id: "test".into(),
        kind: FireKind::Schedule,
        fence: None,
    }));
    store.write(&evs).await.unwrap();
    let agg = MetricsAggregation::new(db.clone(), Duration::from_secs(48 * 3600));
    let now = h + chrono::Duration::hours(2);
    let out = agg.run_at(now).await;
    assert_eq!(out.error, None, "{}", out.data);
    assert_eq!(out.data["rows_upserted"], 2);
    let rows = db.hourly(None).await.unwrap();
    assert_eq!(rows.len(), 2);
    let b = &rows[0];
    assert_eq!((b.job_id.as_str(), b.hour_start), ("backup", h));
    assert_eq!((b.runs, b.successes, b.failures), (2, 1, 1));
    assert_eq!(b.success_rate, Some(0.5));
    assert_eq!((b.p50_ms, b.p95_ms), (Some(300), Some(900)));
    let s = &rows[1];
    assert_eq!(
        (s.job_id.as_str(), s.hour_start, s.runs),
        ("scan", h + chrono::Duration::hours(1), 1)
    );

    // Rerun: the same rows, not doubled.
    agg.run_at(now).await;
    assert_eq!(db.hourly(None).await.unwrap(), rows);
    // The running attempt ends: the next pass updates the hour in place.
    store.write(&[end("scan", 4, 1, ExecutionStatus::Succeeded, m(70), 30)]).await.unwrap();
    agg.run_at(now).await;
    let rows2 = db.hourly(Some("scan")).await.unwrap();
    assert_eq!(rows2.len(), 1);
    assert_eq!((rows2[0].runs, rows2[0].p95_ms), (2, Some(30)));

    // Retention, a year later: execution rows and hourly rows go.
    let later = h + chrono::Duration::days(500);
    let ret =
        HistoryRetention::new(store.clone(), RetentionOptions::default()).with_database(db.clone());
    let out = ret.run_at(later).await;
    assert_eq!(out.error, None, "{}", out.data);
    assert_eq!(out.data["deleted"], 5);
    assert_eq!(out.data["metrics_deleted"], 2);
    assert!(store.history(&HistoryQuery::new("backup", 10)).await.unwrap().is_empty());
    assert!(db.hourly(None).await.unwrap().is_empty());
}

/// A failing query of the hourly metrics names the database and what was
/// being done, with SQLite's own words; the aggregation run fails (to be
/// retried) saying so.
#[tokio::test]
async fn a_failing_hourly_query_carries_the_drivers_text() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("gone.db");
    let db = Database::open(&format!("sqlite://{}", path.display())).await.unwrap();
    // Someone drops the table behind the server's back.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TABLE job_metrics_hourly")
        .unwrap();
    let e = db.hourly(None).await.unwrap_err();
    assert!(matches!(e, mscribe_server::db::DbError::Query { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "sqlite database {}: reading job_metrics_hourly: no such table: job_metrics_hourly",
            path.display()
        )
    );
    let now = Utc::now();
    let at = now - chrono::Duration::minutes(1);
    db.store().write(&[end("scan", 1, 1, ExecutionStatus::Succeeded, at, 10)]).await.unwrap();
    let out = MetricsAggregation::new(db.clone(), Duration::from_secs(3600)).run_at(now).await;
    let error = out.error.unwrap_or_else(|| panic!("the run fails: {}", out.data));
    assert!(!out.permanent, "{error}");
    assert!(
        error.starts_with("writing job_metrics_hourly failed: sqlite database ")
            && error.ends_with(": writing job_metrics_hourly: no such table: job_metrics_hourly"),
        "{error}"
    );
}

/// The table comes from the storage migrations: a new database file has it
/// (and every other table) as soon as it is opened, and opening it again
/// creates nothing.
#[tokio::test]
async fn every_table_comes_from_the_migrations() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("fresh.db");
    let url = format!("sqlite://{}", path.display());
    drop(Database::open(&url).await.unwrap());
    let tables = || -> Vec<String> {
        let c = rusqlite::Connection::open(&path).unwrap();
        let mut st =
            c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").unwrap();
        st.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    };
    let first = tables();
    assert_eq!(
        first,
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
            "mscribe_migrations",
            "scheduled_job_executions",
            "scheduler_instances"
        ]
    );
    drop(Database::open(&url).await.unwrap());
    assert_eq!(tables(), first);
}
