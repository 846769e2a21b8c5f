//! Postgres-specific behaviour, against a real server (these tests fail,
//! never skip, when it cannot be reached): bad URLs and unreachable hosts,
//! migrations, row-level security with SET ROLE, the SQL helpers, and an
//! outage in the middle of a run.

mod common;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use mscribe_scheduler::MemoryStore;
use mscribe_scheduler::store::{ExecutionEvent, ExecutionStatus, ExecutionStore, HistoryQuery};
use mscribe_storage::migrate::POSTGRES_MIGRATIONS;
use mscribe_storage::sqlx::{self, Connection, PgConnection};
use mscribe_storage::{Error, PostgresOptions, PostgresProbe, PostgresStore};
use tokio::net::{TcpListener, TcpStream};

async fn store_on(db: &PgTestDb) -> PostgresStore {
    PostgresStore::connect_with(db.store_options()).await.unwrap()
}

#[tokio::test]
async fn prune_forgets_instances_long_silent_without_a_running_row() {
    let db = PgTestDb::create().await;
    prune_after_three_heartbeats(&store_on(&db).await).await;
    let left: Vec<String> =
        sqlx::query_scalar("SELECT instance_id FROM scheduler_instances ORDER BY instance_id")
            .fetch_all(&mut db.connect().await)
            .await
            .unwrap();
    assert_eq!(left, ["busy", "fresh"]);
}

/// Two stores on one database, as two scheduler instances: each fire is
/// won once between them. The claims table has the other tables' access
/// rules: the admin role reads it and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_claim_each_fire_once() {
    let db = PgTestDb::create().await;
    let (a, b) = (store_on(&db).await, store_on(&db).await);
    claims_race(Arc::new(a), Arc::new(b)).await;
    let mut c = db.connect().await;
    sqlx::raw_sql("SET ROLE scheduler_admin").execute(&mut c).await.unwrap();
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM fire_claims").fetch_one(&mut c).await.unwrap();
    assert_eq!(n, 50);
    let e = sqlx::raw_sql("DELETE FROM fire_claims").execute(&mut c).await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
}

/// The column takes only the two kinds, with the other columns' access
/// rules (service_role writes it, scheduler_admin only reads it); a stored
/// text the store does not know (the CHECK dropped) reads as corrupt.
#[tokio::test]
async fn error_kind_is_checked_and_unknown_text_reads_as_corrupt() {
    let db = PgTestDb::create().await;
    let s = store_on(&db).await;
    let mut e = end_with("j", 1, 1, 100, "i1", ExecutionStatus::Failed, 10);
    e.error_kind = Some(mscribe_scheduler::ErrorKind::Transient);
    s.write(&[ExecutionEvent::Finished(e)]).await.unwrap();
    let mut c = db.connect().await;
    sqlx::raw_sql("SET ROLE service_role").execute(&mut c).await.unwrap();
    let kind: Option<String> =
        sqlx::query_scalar("SELECT error_kind FROM scheduled_job_executions")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(kind.as_deref(), Some("transient"));
    let e = sqlx::raw_sql("UPDATE scheduled_job_executions SET error_kind = 'fatal'")
        .execute(&mut c)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "23514", "{e}");
    sqlx::raw_sql("UPDATE scheduled_job_executions SET error_kind = 'permanent'")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::raw_sql("RESET ROLE; SET ROLE scheduler_admin").execute(&mut c).await.unwrap();
    let kind: Option<String> =
        sqlx::query_scalar("SELECT error_kind FROM scheduled_job_executions")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(kind.as_deref(), Some("permanent"));
    let e = sqlx::raw_sql("UPDATE scheduled_job_executions SET error_kind = NULL")
        .execute(&mut c)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
    sqlx::raw_sql("RESET ROLE").execute(&mut c).await.unwrap();

    sqlx::raw_sql(
        "ALTER TABLE scheduled_job_executions
             DROP CONSTRAINT scheduled_job_executions_error_kind_check;
         UPDATE scheduled_job_executions SET error_kind = 'fatal';",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let err = s.history(&HistoryQuery::new("j", 10)).await.unwrap_err();
    assert!(matches!(&err, mscribe_scheduler::StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("error_kind \"fatal\""), "{err}");
}

fn sqlstate(e: &sqlx::Error) -> String {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned()).unwrap_or_default()
}

// ---------------------------------------------------------------- bad input

#[tokio::test]
async fn a_malformed_url_is_refused_without_leaking_the_password() {
    for url in [
        "postgres://user:hunter2@db.internal:notaport/ops",
        "postgres://user:hunter2@[::1/ops",
        "not a url at all",
    ] {
        let err = PostgresOptions::new(url).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{url}: {err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with("invalid database configuration: invalid postgres URL"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(!err.is_transient());
    }
    let err = PostgresStore::connect("postgres://u:hunter2@h:99999/db").await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"));
}

#[tokio::test]
async fn an_unreachable_host_fails_promptly_and_transiently() {
    let t0 = Instant::now();
    let opts = PostgresOptions::new("postgres://postgres@127.0.0.1:1/test")
        .unwrap()
        .connect_timeout(Duration::from_secs(3));
    let err = PostgresStore::connect_with(opts).await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_transient());
    let msg = err.to_string();
    assert!(msg.starts_with("cannot connect to postgres database test at 127.0.0.1:1:"), "{msg}");
}

#[tokio::test]
async fn a_missing_database_is_a_clear_permanent_error() {
    let opts: mscribe_storage::sqlx::postgres::PgConnectOptions = pg_url().parse().unwrap();
    let opts = opts.database("mscribe_no_such_database_here");
    let err =
        PostgresStore::connect_with(PostgresOptions::from_connect_options(opts)).await.unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    assert!(!err.is_transient());
    let msg = err.to_string();
    assert!(msg.contains("database \"mscribe_no_such_database_here\" does not exist"), "{msg}");
    assert!(msg.contains("SQLSTATE 3D000"), "{msg}");
}

#[tokio::test]
async fn events_a_store_cannot_hold_are_rejected_and_the_rest_written() {
    let db = PgTestDb::create().await;
    let s = store_on(&db).await;
    bad_events_are_rejected_but_the_rest_written(&s).await;

    // NUL characters: refused in ids, replaced in free text.
    let mut nul_id = start("j\0x", 10, 1, 100, "i1");
    if let ExecutionEvent::Started(a) = &mut nul_id {
        a.job_id = "bad\0job".into();
    }
    let ExecutionEvent::Finished(mut e) = end("k", 11, 1, 100, ExecutionStatus::Failed) else {
        unreachable!()
    };
    e.error = Some("nul\0here".into());
    e.result = Some(serde_json::json!({"s": "a\u{0}b"}));
    let err = s.write(&[nul_id, ExecutionEvent::Finished(e)]).await.unwrap_err();
    assert!(err.to_string().contains("contains a NUL character"), "{err}");
    let got = s.history(&HistoryQuery::new("k", 5)).await.unwrap();
    assert_eq!(got[0].error.as_deref(), Some("nul\u{fffd}here"));
    assert_eq!(got[0].result, Some(serde_json::json!({"s": "a\u{fffd}b"})));
}

// --------------------------------------------------------------- migrations

#[tokio::test]
async fn migrations_apply_once_even_when_instances_start_together() {
    let db = PgTestDb::create().await;
    let opens = (0..4).map(|_| PostgresStore::connect_with(db.store_options()));
    for r in futures::future::join_all(opens).await {
        r.unwrap();
    }
    let mut c = db.connect().await;
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT version, name FROM mscribe_migrations ORDER BY version")
            .fetch_all(&mut c)
            .await
            .unwrap();
    let names: Vec<String> = rows.iter().map(|(v, n)| format!("{v:04}_{n}")).collect();
    assert_eq!(
        names,
        [
            "0001_executions",
            "0002_instances",
            "0003_row_level_security",
            "0004_sql_helpers",
            "0005_fire_claims",
            "0006_error_kind"
        ]
    );
    let checksum: String =
        sqlx::query_scalar("SELECT checksum FROM mscribe_migrations WHERE version = 1")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(checksum, mscribe_storage::migrate::POSTGRES_MIGRATIONS[0].checksum());
}

#[tokio::test]
async fn a_changed_applied_migration_is_refused() {
    let db = PgTestDb::create().await;
    store_on(&db).await.close().await;
    let mut c = db.connect().await;
    sqlx::query("UPDATE mscribe_migrations SET checksum = $1 WHERE version = 3")
        .bind("0badc0de")
        .execute(&mut c)
        .await
        .unwrap();
    let err = PostgresStore::connect_with(db.store_options()).await.unwrap_err();
    assert!(
        matches!(&err, Error::MigrationModified { migration, .. } if migration == "0003_row_level_security"),
        "{err:?}"
    );
    assert!(err.to_string().starts_with(
        "migration 0003_row_level_security was previously applied but has been modified \
         (checksum 0badc0de in the database, "
    ));
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused() {
    let db = PgTestDb::create().await;
    store_on(&db).await.close().await;
    let mut c = db.connect().await;
    sqlx::query(
        "INSERT INTO mscribe_migrations (version, name, checksum) VALUES (7, 'leases', 'x')",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let err = PostgresStore::connect_with(db.store_options()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "database schema is newer than this build: it has migration 0007_leases, \
         this build knows up to 0006_error_kind; upgrade mscribe or use another database"
    );
}

#[tokio::test]
async fn a_failing_migration_leaves_nothing_behind() {
    let db = PgTestDb::create().await;
    let mut c = db.connect().await;
    sqlx::raw_sql("CREATE TABLE scheduler_instances (x int)").execute(&mut c).await.unwrap();
    let err = PostgresStore::connect_with(db.store_options()).await.unwrap_err();
    assert!(
        matches!(&err, Error::MigrationFailed { migration, .. } if migration == "0002_instances")
    );
    assert!(err.to_string().contains("already exists (SQLSTATE 42P07)"), "{err}");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(tables, vec!["scheduler_instances".to_owned()]);
}

/// What the migrations make, checked table by table: the tables (with
/// `mscribe_migrations` only where the runner applied them), row-level
/// security and two policies on each, the SQL helpers, the last
/// migration's column, and with the runner every migration recorded once
/// with this build's checksum.
async fn assert_schema_complete(c: &mut PgConnection, by_runner: bool) {
    let mut want = vec!["fire_claims", "scheduled_job_executions", "scheduler_instances"];
    if by_runner {
        want.insert(1, "mscribe_migrations");
    }
    let tables: Vec<(String, bool)> = sqlx::query_as(
        "SELECT relname::text, relrowsecurity FROM pg_class
         WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY 1",
    )
    .fetch_all(&mut *c)
    .await
    .unwrap();
    assert_eq!(tables.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(), want);
    assert!(tables.iter().all(|(_, rls)| *rls), "{tables:?}");
    let policies: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tablename::text, count(*) FROM pg_policies
         WHERE schemaname = 'public' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&mut *c)
    .await
    .unwrap();
    assert_eq!(policies, want.iter().map(|t| (t.to_string(), 2)).collect::<Vec<_>>());
    let functions: Vec<String> = sqlx::query_scalar(
        "SELECT proname::text FROM pg_proc
         WHERE pronamespace = 'public'::regnamespace ORDER BY 1",
    )
    .fetch_all(&mut *c)
    .await
    .unwrap();
    assert_eq!(functions, ["log_heartbeat", "log_job_complete", "log_job_start"]);
    let error_kind: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns
         WHERE table_name = 'scheduled_job_executions' AND column_name = 'error_kind')",
    )
    .fetch_one(&mut *c)
    .await
    .unwrap();
    assert!(error_kind);
    if by_runner {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT version, checksum FROM mscribe_migrations ORDER BY version")
                .fetch_all(&mut *c)
                .await
                .unwrap();
        let want: Vec<(i64, String)> =
            POSTGRES_MIGRATIONS.iter().map(|m| (m.version, m.checksum())).collect();
        assert_eq!(rows, want);
    }
}

/// Three instances, each on a connection and a tokio task of its own, start
/// at the same moment on an empty database: the advisory lock lets one
/// migrate while the others wait, then they find nothing to do. All come
/// up and can write.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn three_instances_starting_on_an_empty_database_all_come_up() {
    let db = PgTestDb::create().await;
    let go = Arc::new(tokio::sync::Barrier::new(3));
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let (opts, go) = (db.store_options(), go.clone());
            tokio::spawn(async move {
                go.wait().await;
                let s = PostgresStore::connect_with(opts).await?;
                s.heartbeat(&format!("i{i}"), t(0)).await?;
                s.close().await;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        task.await.unwrap().unwrap_or_else(|e| panic!("instance {i} failed to start: {e}"));
    }
    let mut c = db.connect().await;
    assert_schema_complete(&mut c, true).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM scheduler_instances")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 3);
}

/// The files alone, in order, on an empty database, as `psql -f` applies
/// them (scripts/test.sh runs psql itself): no file needs the runner.
#[tokio::test]
async fn the_files_apply_in_order_without_the_runner() {
    let db = PgTestDb::create().await;
    let mut c = db.connect().await;
    for m in POSTGRES_MIGRATIONS {
        sqlx::raw_sql(m.sql)
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{} fails without the runner: {e}", m.label()));
    }
    assert_schema_complete(&mut c, false).await;
}

/// A database migrated when 0003 still named mscribe_migrations outright
/// recorded that text's checksum: it opens, works, and keeps its record.
#[tokio::test]
async fn a_database_that_applied_the_earlier_0003_opens_as_before() {
    let db = PgTestDb::create().await;
    store_on(&db).await.close().await;
    let m = &POSTGRES_MIGRATIONS[2];
    assert_eq!(m.label(), "0003_row_level_security");
    let earlier = m.superseded[0];
    let mut c = db.connect().await;
    sqlx::query("UPDATE mscribe_migrations SET checksum = $1 WHERE version = 3")
        .bind(earlier)
        .execute(&mut c)
        .await
        .unwrap();
    let s = store_on(&db).await;
    s.write(&[start("j", 1, 1, 100, "i1")]).await.unwrap();
    s.close().await;
    let kept: String =
        sqlx::query_scalar("SELECT checksum FROM mscribe_migrations WHERE version = 3")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(kept, earlier);
    assert_schema_complete_but_0003(&mut c).await;
}

async fn assert_schema_complete_but_0003(c: &mut PgConnection) {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM mscribe_migrations m
         WHERE m.version <> 3 AND m.checksum = ANY($1)",
    )
    .bind(POSTGRES_MIGRATIONS.iter().map(|m| m.checksum()).collect::<Vec<_>>())
    .fetch_one(&mut *c)
    .await
    .unwrap();
    assert_eq!(n, POSTGRES_MIGRATIONS.len() as i64 - 1);
}

/// A step of the runner that fails (here: a role that may not create the
/// runner's table) says which step, with the server's own words.
#[tokio::test]
async fn a_failing_migration_step_names_the_step_and_the_servers_reason() {
    // The roles are the cluster's: migrating any database creates them.
    let first = PgTestDb::create().await;
    store_on(&first).await.close().await;
    let db = PgTestDb::create().await;
    let mut c = db.connect().await;
    sqlx::raw_sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC").execute(&mut c).await.unwrap();
    let opts = db.options.clone().options([("role", "scheduler_admin")]);
    let err =
        PostgresStore::connect_with(PostgresOptions::from_connect_options(opts)).await.unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    assert!(!err.is_transient());
    let msg = err.to_string();
    assert!(
        msg.ends_with(
            "migrating: creating mscribe_migrations: permission denied for schema public \
             (SQLSTATE 42501)"
        ),
        "{msg}"
    );
}

// ----------------------------------------------------- row-level security

#[tokio::test]
async fn row_level_security_with_set_role() {
    let db = PgTestDb::create().await;
    let store = store_on(&db).await;
    let mut c = db.connect().await;
    let insert = "INSERT INTO scheduled_job_executions
        (job_id, execution_id, attempt, status, scheduled_at, started_at, instance_id)
        VALUES ($1, $2::uuid, 1, 'running', now(), now(), 'sql')";
    let count = "SELECT count(*) FROM scheduled_job_executions";

    // service_role: full access.
    sqlx::raw_sql("SET ROLE service_role").execute(&mut c).await.unwrap();
    sqlx::query(insert)
        .bind("rls")
        .bind("00000000-0000-0000-0000-000000000001")
        .execute(&mut c)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar(count).fetch_one(&mut c).await.unwrap();
    assert_eq!(n, 1);
    sqlx::raw_sql("UPDATE scheduled_job_executions SET error = 'x'").execute(&mut c).await.unwrap();
    sqlx::raw_sql("INSERT INTO scheduler_instances VALUES ('sr', now(), now(), NULL)")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::raw_sql("RESET ROLE").execute(&mut c).await.unwrap();

    // scheduler_admin: reads everything, writes nothing.
    sqlx::raw_sql("SET ROLE scheduler_admin").execute(&mut c).await.unwrap();
    let n: i64 = sqlx::query_scalar(count).fetch_one(&mut c).await.unwrap();
    assert_eq!(n, 1);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM scheduler_instances")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let e = sqlx::query(insert)
        .bind("rls")
        .bind("00000000-0000-0000-0000-000000000002")
        .execute(&mut c)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
    for stmt in [
        "UPDATE scheduled_job_executions SET error = 'y'",
        "DELETE FROM scheduled_job_executions",
        "INSERT INTO scheduler_instances VALUES ('adm', now(), now(), NULL)",
        "SELECT log_job_start('x', '00000000-0000-0000-0000-000000000003'::uuid, 1)",
    ] {
        let e = sqlx::raw_sql(stmt).execute(&mut c).await.unwrap_err();
        assert_eq!(sqlstate(&e), "42501", "{stmt}: {e}");
    }
    sqlx::raw_sql("RESET ROLE").execute(&mut c).await.unwrap();

    // Anyone else: nothing, even with table privileges (as Supabase grants
    // anon and authenticated by default).
    let other = format!("mscribe_test_other_{:08x}", fastrand::u32(..));
    sqlx::raw_sql(&format!("CREATE ROLE {other} NOLOGIN")).execute(&mut c).await.unwrap();
    sqlx::raw_sql(&format!("SET ROLE {other}")).execute(&mut c).await.unwrap();
    let e = sqlx::raw_sql(count).execute(&mut c).await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "without grants: {e}");
    sqlx::raw_sql("RESET ROLE").execute(&mut c).await.unwrap();
    sqlx::raw_sql(&format!(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON scheduled_job_executions, scheduler_instances TO {other};
         GRANT EXECUTE ON FUNCTION log_job_start(text, uuid, integer, text, timestamptz) TO {other};"
    ))
    .execute(&mut c)
    .await
    .unwrap();
    sqlx::raw_sql(&format!("SET ROLE {other}")).execute(&mut c).await.unwrap();
    let n: i64 = sqlx::query_scalar(count).fetch_one(&mut c).await.unwrap();
    assert_eq!(n, 0, "another role sees no row");
    let e = sqlx::query(insert)
        .bind("rls")
        .bind("00000000-0000-0000-0000-000000000004")
        .execute(&mut c)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
    assert!(e.to_string().contains("row-level security"), "{e}");
    let r = sqlx::raw_sql("UPDATE scheduled_job_executions SET error = 'z'")
        .execute(&mut c)
        .await
        .unwrap();
    assert_eq!(r.rows_affected(), 0);
    let r = sqlx::raw_sql("DELETE FROM scheduled_job_executions").execute(&mut c).await.unwrap();
    assert_eq!(r.rows_affected(), 0);
    // The helper runs with the caller's rights: RLS still applies.
    let e =
        sqlx::raw_sql("SELECT log_job_start('x', '00000000-0000-0000-0000-000000000005'::uuid, 1)")
            .execute(&mut c)
            .await
            .unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
    sqlx::raw_sql("RESET ROLE").execute(&mut c).await.unwrap();

    // Nothing changed for the store.
    let rows = store.history(&HistoryQuery::new("rls", 10)).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].error.as_deref(), Some("x"));

    store.close().await;
    drop(c);
    drop(db); // drops the database, so the role owns nothing any more
    let mut admin = PgConnection::connect(&pg_url()).await.unwrap();
    sqlx::raw_sql(&format!("DROP ROLE IF EXISTS {other}")).execute(&mut admin).await.unwrap();
}

#[tokio::test]
async fn a_login_member_of_service_role_can_run_the_store() {
    let db = PgTestDb::create().await;
    store_on(&db).await.close().await;
    let app = format!("mscribe_test_app_{:08x}", fastrand::u32(..));
    let mut c = db.connect().await;
    sqlx::raw_sql(&format!("CREATE ROLE {app} LOGIN IN ROLE service_role"))
        .execute(&mut c)
        .await
        .unwrap();
    let opts = db.options.clone().username(&app);
    let result = async {
        let s = PostgresStore::connect_with(PostgresOptions::from_connect_options(opts)).await?;
        s.write(&[
            start("app", 1, 1, 100, "i1"),
            end("app", 1, 1, 100, ExecutionStatus::Succeeded),
        ])
        .await?;
        s.heartbeat("i1", t(0)).await?;
        s.mark_abandoned("i1", t(0), Duration::from_secs(1)).await?;
        let n = s.history(&HistoryQuery::new("app", 5)).await?.len();
        s.prune(mscribe_scheduler::PrunePolicy { older_than: t(0), failures_older_than: None })
            .await?;
        s.close().await;
        Ok::<_, Box<dyn std::error::Error>>(n)
    }
    .await;
    drop(c);
    drop(db);
    let mut admin = PgConnection::connect(&pg_url()).await.unwrap();
    sqlx::raw_sql(&format!("DROP ROLE IF EXISTS {app}")).execute(&mut admin).await.unwrap();
    assert_eq!(result.unwrap(), 1);
}

// -------------------------------------------------------------- SQL helpers

#[tokio::test]
async fn sql_helpers_write_rows_the_store_reads() {
    let db = PgTestDb::create().await;
    let store = store_on(&db).await;
    let mut c = db.connect().await;
    sqlx::raw_sql("SET ROLE service_role").execute(&mut c).await.unwrap();
    let exec = "7d0f6b8e-0d7e-4a57-9a4e-1c2b3d4e5f60";

    let inserted: bool = sqlx::query_scalar("SELECT log_job_start($1, $2::uuid, 1)")
        .bind("nightly-export")
        .bind(exec)
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert!(inserted);
    let again: bool = sqlx::query_scalar("SELECT log_job_start($1, $2::uuid, 1)")
        .bind("nightly-export")
        .bind(exec)
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert!(!again, "a repeated start is ignored");
    let running = store.history(&HistoryQuery::new("nightly-export", 5)).await.unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].status, ExecutionStatus::Running);
    assert_eq!(running[0].execution_id.to_string(), exec);
    assert_eq!(running[0].instance_id, "sql:postgres");
    // The helper's heartbeat keeps a starting scheduler from abandoning it.
    let swept =
        store.mark_abandoned("me", chrono::Utc::now(), Duration::from_secs(600)).await.unwrap();
    assert!(swept.is_empty(), "{swept:?}");

    let attempt: i32 = sqlx::query_scalar(
        "SELECT log_job_complete($1::uuid, 'failed', 'disk full', '{\"rows\": 3}'::jsonb, '{\"seconds\": 1.5}'::jsonb)",
    )
    .bind(exec)
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(attempt, 1);
    // A second attempt, completed with the defaults.
    sqlx::query("SELECT log_job_start($1, $2::uuid, 2, 'worker-7')")
        .bind("nightly-export")
        .bind(exec)
        .execute(&mut c)
        .await
        .unwrap();
    let attempt: i32 = sqlx::query_scalar("SELECT log_job_complete($1::uuid, 'succeeded')")
        .bind(exec)
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(attempt, 2);

    let rows = store.history(&HistoryQuery::new("nightly-export", 5)).await.unwrap();
    assert_eq!(rows.len(), 2);
    let (second, first) = (&rows[0], &rows[1]);
    assert_eq!((second.attempt, second.status), (2, ExecutionStatus::Succeeded));
    assert_eq!(second.instance_id, "worker-7");
    assert_eq!((first.attempt, first.status), (1, ExecutionStatus::Failed));
    assert_eq!(first.error.as_deref(), Some("disk full"));
    assert_eq!(first.result, Some(serde_json::json!({"rows": 3})));
    assert_eq!(first.metrics.as_ref().unwrap()["seconds"], 1.5);
    assert!(first.completed_at.is_some() && first.duration_ms.is_some());

    // Clear errors for bad calls.
    let e = sqlx::query("SELECT log_job_complete($1::uuid, 'running')")
        .bind(exec)
        .execute(&mut c)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "22023");
    assert!(e.to_string().contains("invalid final status \"running\""), "{e}");
    let e = sqlx::query(
        "SELECT log_job_complete('00000000-0000-0000-0000-00000000abcd'::uuid, 'failed')",
    )
    .execute(&mut c)
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&e), "P0002");
    assert!(e.to_string().contains("has no started attempt"), "{e}");
    let e =
        sqlx::query("SELECT log_job_complete($1::uuid, 'failed', NULL, NULL, '{\"m\": \"text\"}')")
            .bind(exec)
            .execute(&mut c)
            .await
            .unwrap_err();
    assert_eq!(sqlstate(&e), "23514", "metrics must be numbers: {e}");
}

// ------------------------------------------------------------------ outage

/// A TCP proxy the test controls: `up` forwards to Postgres, `down` cuts
/// every connection and refuses new ones.
struct Proxy {
    port: u16,
    mode: Arc<AtomicU8>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

const UP: u8 = 0;
const DOWN: u8 = 1;

impl Proxy {
    async fn start(upstream: (String, u16)) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(UP));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (m, cs) = (mode.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                if m.load(Ordering::SeqCst) == DOWN {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                cs.lock().unwrap().push(task);
            }
        });
        Proxy { port, mode, conns, accept }
    }

    fn down(&self) {
        self.mode.store(DOWN, Ordering::SeqCst);
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn up(&self) {
        self.mode.store(UP, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down();
        self.accept.abort();
    }
}

/// Writes through the store as the engine does: batches wait in a bounded
/// buffer and are retried, in order, until the store takes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_mid_run_loses_and_duplicates_nothing() {
    let db = PgTestDb::create().await;
    store_on(&db).await.close().await; // migrate directly
    let proxy = Proxy::start((db.options.get_host().to_owned(), db.options.get_port())).await;
    let store = PostgresStore::connect_with(
        PostgresOptions::from_connect_options(db.options.clone().port(proxy.port))
            .max_connections(3)
            .acquire_timeout(Duration::from_millis(500))
            .operation_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    let probe = PostgresProbe::new(&store).timeout(Duration::from_secs(1));
    // Unbounded: the model keeps every row, as a database does.
    let model = MemoryStore::unbounded();

    let mut buffer: std::collections::VecDeque<Vec<ExecutionEvent>> = Default::default();
    let (mut failures, mut slowest_failure) = (0, Duration::ZERO);
    let mut open: Vec<u128> = Vec::new();
    let mut next_id = 0u128;
    for step in 0..40 {
        // Each step: start 5 runs, finish the runs started last step.
        let mut batch = Vec::new();
        for id in open.drain(..) {
            batch.push(end("outage", id, 1, id as i64 * 10, ExecutionStatus::Succeeded));
        }
        for _ in 0..5 {
            batch.push(start("outage", next_id, 1, next_id as i64 * 10, "i1"));
            open.push(next_id);
            next_id += 1;
        }
        model.write(&batch).await.unwrap();
        buffer.push_back(batch);
        assert!(buffer.len() <= 64, "the test's buffer is bounded");

        match step {
            10 => proxy.down(),
            // Cut the line while a write is in flight: its outcome is unknown.
            20 => {
                let cut = async {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    proxy.down();
                };
                let w = store.write(buffer.front().unwrap());
                let (r, ()) = tokio::join!(w, cut);
                if r.is_ok() {
                    buffer.pop_front();
                }
            }
            16 | 26 => {
                let report = probe.check().await;
                assert!(!report.ok, "the probe sees the outage: {report:?}");
                proxy.up();
            }
            _ => {}
        }
        while let Some(b) = buffer.front() {
            let t0 = Instant::now();
            match store.write(b).await {
                Ok(()) => {
                    buffer.pop_front();
                }
                Err(e) => {
                    assert!(e.is_transient(), "{e}");
                    failures += 1;
                    slowest_failure = slowest_failure.max(t0.elapsed());
                    break;
                }
            }
        }
    }
    // Recovered: drain what is left, retrying like the engine.
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in open.drain(..) {
        let b = vec![end("outage", id, 1, id as i64 * 10, ExecutionStatus::Succeeded)];
        model.write(&b).await.unwrap();
        buffer.push_back(b);
    }
    while let Some(b) = buffer.front() {
        match store.write(b).await {
            Ok(()) => {
                buffer.pop_front();
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "store did not recover: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    eprintln!("outage: {failures} failed writes, slowest failure {slowest_failure:?}");
    assert!(failures >= 2, "the outage was felt: {failures} failed writes");
    assert!(
        slowest_failure < Duration::from_secs(3),
        "writes failed promptly: {slowest_failure:?}"
    );
    assert!(probe.check().await.ok);

    // Every record exactly once, as the reference store has it.
    let mut direct = db.connect().await;
    let dupes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT execution_id, attempt FROM scheduled_job_executions
         GROUP BY 1, 2 HAVING count(*) > 1) d",
    )
    .fetch_one(&mut direct)
    .await
    .unwrap();
    assert_eq!(dupes, 0);
    let q = HistoryQuery::new("outage", 10_000);
    let got = store.history(&q).await.unwrap();
    assert_eq!(got.len(), 200);
    assert_eq!(got, model.history(&q).await.unwrap());
    assert!(got.iter().all(|r| r.status == ExecutionStatus::Succeeded));
}

/// A live server that does not answer (a lock held elsewhere) makes a write
/// time out, not hang; the timed-out write may still land, and retrying it
/// is harmless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_times_writes_out_and_retries_are_idempotent() {
    let db = PgTestDb::create().await;
    let store = PostgresStore::connect_with(
        db.store_options().operation_timeout(Duration::from_millis(700)),
    )
    .await
    .unwrap();
    store.write(&[start("stall", 1, 1, 100, "i1")]).await.unwrap();

    let mut locker = db.connect().await;
    sqlx::raw_sql("BEGIN; LOCK TABLE scheduled_job_executions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let batch =
        [end("stall", 1, 1, 100, ExecutionStatus::Succeeded), start("stall", 2, 1, 200, "i1")];
    let t0 = Instant::now();
    let err = store.write(&batch).await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(err.is_transient());
    assert!(err.to_string().contains("write timed out after 700ms"), "{err}");
    sqlx::raw_sql("COMMIT").execute(&mut locker).await.unwrap();

    let mut tries = 0;
    while let Err(e) = store.write(&batch).await {
        tries += 1;
        assert!(tries < 20, "{e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = store.history(&HistoryQuery::new("stall", 10)).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got.iter().filter(|r| r.status == ExecutionStatus::Succeeded).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sweeps_abandon_each_row_once() {
    let db = PgTestDb::create().await;
    let store = store_on(&db).await;
    let events: Vec<_> = (0..200u128).map(|i| start("sweep", i, 1, i as i64, "dead")).collect();
    store.write(&events).await.unwrap();
    let sweeps = (0..4).map(|k| {
        let s = store.clone();
        tokio::spawn(async move {
            s.mark_abandoned(&format!("me-{k}"), t(1_000_000), Duration::from_secs(1)).await
        })
    });
    let mut seen = Vec::new();
    for r in futures::future::join_all(sweeps).await {
        seen.extend(r.unwrap().unwrap().into_iter().map(|r| r.execution_id));
    }
    seen.sort();
    let before = seen.len();
    seen.dedup();
    assert_eq!(before, seen.len(), "no row abandoned twice");
    assert_eq!(seen.len(), 200);
}

#[tokio::test]
async fn the_probe_reports_latency_and_failure() {
    let db = PgTestDb::create().await;
    let store = store_on(&db).await;
    let report = PostgresProbe::new(&store).check().await;
    assert!(report.ok, "{report:?}");
    assert!(report.message.is_none());
    assert!(report.latency < Duration::from_secs(2));
    store.close().await;
    let report = PostgresProbe::new(&store).check().await;
    assert!(!report.ok);
    assert!(report.message.unwrap().contains(&db.name));
}

/// A server whose port is closed (connection refused): writes keep failing,
/// each within about the acquire timeout, as transient errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_fail_within_the_acquire_timeout_when_the_port_is_closed() {
    let db = PgTestDb::create().await;
    store_on(&db).await.close().await;
    let proxy = Proxy::start((db.options.get_host().to_owned(), db.options.get_port())).await;
    let store = PostgresStore::connect_with(
        PostgresOptions::from_connect_options(db.options.clone().port(proxy.port))
            .acquire_timeout(Duration::from_millis(400)),
    )
    .await
    .unwrap();
    store.write(&[start("closed", 1, 1, 100, "i1")]).await.unwrap();
    drop(proxy); // listener closed, connections cut
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..3 {
        let t0 = Instant::now();
        let err = store.write(&[start("closed", 2, 1, 200, "i1")]).await.unwrap_err();
        let took = t0.elapsed();
        assert!(err.is_transient(), "{err}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!(
            err.to_string().starts_with("store unavailable: postgres database mscribe_test_"),
            "{err}"
        );
    }
}
