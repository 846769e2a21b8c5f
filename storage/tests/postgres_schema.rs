//! The Postgres schema, against a real server (these tests fail, never
//! skip, when it cannot be reached): the migrations (with the runner, with
//! plain SQL, concurrently, on databases from earlier builds), row-level
//! security with SET ROLE, and the SQL helpers.
//!
//! Just over 800 lines: migrations, row-level security and SQL helpers share
//! one per-test database fixture; splitting the migration cases into their
//! own file is the next change here.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mscribe_scheduler::{ExecutionStatus, ExecutionStore, HistoryQuery};
use mscribe_storage::migrate::POSTGRES_MIGRATIONS;
use mscribe_storage::sqlx::{self, Connection, PgConnection};
use mscribe_storage::{Error, HourlyMetricsStore, HourlyRow, PostgresOptions, PostgresStore};

async fn store_on(db: &PgTestDb) -> PostgresStore {
    PostgresStore::connect_with(db.store_options()).await.unwrap()
}

fn sqlstate(e: &sqlx::Error) -> String {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned()).unwrap_or_default()
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
            "0006_error_kind",
            "0007_job_metrics_hourly",
            "0008_control",
            "0009_leases",
            "0010_alerts"
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
        "INSERT INTO mscribe_migrations (version, name, checksum) VALUES (42, 'leases', 'x')",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let err = PostgresStore::connect_with(db.store_options()).await.unwrap_err();
    let newest = POSTGRES_MIGRATIONS.last().unwrap().label();
    assert_eq!(
        err.to_string(),
        format!(
            "database schema is newer than this build: it has migration 0042_leases, \
             this build knows up to {newest}; upgrade mscribe or use another database"
        )
    );
}

/// A database from before the leases (the runner applied 0001 to 0007),
/// with a claim of that time: opening applies 0009_leases, which marks the
/// claim ended (it holds no lease), and the fire stays taken.
#[tokio::test]
async fn a_claim_from_before_the_leases_holds_no_lease() {
    let db = PgTestDb::create().await;
    let mut c = db.connect().await;
    sqlx::raw_sql(
        "CREATE TABLE mscribe_migrations (version bigint PRIMARY KEY, name text NOT NULL,
         checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&mut c)
    .await
    .unwrap();
    for m in POSTGRES_MIGRATIONS.iter().filter(|m| m.version <= 7) {
        sqlx::raw_sql(m.sql).execute(&mut c).await.unwrap();
        sqlx::query("INSERT INTO mscribe_migrations (version, name, checksum) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(m.checksum())
            .execute(&mut c)
            .await
            .unwrap();
    }
    sqlx::query("INSERT INTO fire_claims VALUES ('j', $1, 'old', $1)")
        .bind(t(0))
        .execute(&mut c)
        .await
        .unwrap();
    let s = store_on(&db).await;
    assert!(s.expired_leases(t(1_000_000), 10).await.unwrap().is_empty());
    let got = s.claim_fires("new", &[fire("j", 0)], t(10), LEASE).await.unwrap();
    assert_eq!(got, [mscribe_scheduler::ClaimOutcome::Taken]);
    s.close().await;
    let row: (i64, bool, String, Option<String>) =
        sqlx::query_as("SELECT fence, ended, instance_id, execution_id::text FROM fire_claims")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(row, (1, true, "old".to_owned(), None));
    assert_schema_complete(&mut c, true).await;
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
    let mut want = vec![
        "alert_job_state",
        "alert_leases",
        "alert_outbox",
        "control_audit",
        "execution_cancels",
        "fire_claims",
        "job_definitions",
        "job_metrics_hourly",
        "job_pauses",
        "job_triggers",
        "scheduled_job_executions",
        "scheduler_instances",
    ];
    if by_runner {
        want.insert(10, "mscribe_migrations");
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
    // 0009_leases: the lease columns, the fire's kind and fence, the index.
    let lease_columns: Vec<String> = sqlx::query_scalar(
        "SELECT table_name || '.' || column_name FROM information_schema.columns
         WHERE (table_name = 'fire_claims'
                AND column_name IN ('execution_id', 'fence', 'lease_expires_at', 'ended'))
            OR (table_name = 'scheduled_job_executions' AND column_name IN ('kind', 'fence'))
         ORDER BY 1",
    )
    .fetch_all(&mut *c)
    .await
    .unwrap();
    assert_eq!(
        lease_columns,
        [
            "fire_claims.ended",
            "fire_claims.execution_id",
            "fire_claims.fence",
            "fire_claims.lease_expires_at",
            "scheduled_job_executions.fence",
            "scheduled_job_executions.kind",
        ]
    );
    let open_leases: Vec<String> = sqlx::query_scalar(
        "SELECT indexname || ' ' || split_part(indexdef, ' USING btree ', 2) FROM pg_indexes
         WHERE indexname LIKE 'fire_claims_open_leases%' ORDER BY 1",
    )
    .fetch_all(&mut *c)
    .await
    .unwrap();
    assert_eq!(
        open_leases,
        [
            "fire_claims_open_leases (lease_expires_at) WHERE (NOT ended)",
            "fire_claims_open_leases_by_job (job_id, lease_expires_at) WHERE (NOT ended)",
        ]
    );
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

/// The statements servers before migration 0007 ran at every open, to make
/// their table themselves.
const SERVER_MADE_HOURLY_TABLE: &str = "
CREATE TABLE IF NOT EXISTS job_metrics_hourly (
    job_id        text             NOT NULL,
    hour_start    timestamptz      NOT NULL,
    runs          bigint           NOT NULL,
    successes     bigint           NOT NULL,
    failures      bigint           NOT NULL,
    skipped       bigint           NOT NULL,
    success_rate  double precision,
    p50_ms        bigint,
    p95_ms        bigint,
    updated_at    timestamptz      NOT NULL,
    PRIMARY KEY (job_id, hour_start)
);
CREATE INDEX IF NOT EXISTS job_metrics_hourly_hour ON job_metrics_hourly (hour_start);";

/// A database from before 0007, where the server had made
/// `job_metrics_hourly` itself (without row-level security): the migration
/// applies, the table keeps its rows, and gets the access rules of the
/// other tables.
#[tokio::test]
async fn a_database_whose_server_made_the_hourly_table_keeps_it() {
    let db = PgTestDb::create().await;
    store_on(&db).await.close().await;
    let mut c = db.connect().await;
    // Back to 0006, then the old server's table and a row of it.
    sqlx::raw_sql(
        "DROP TABLE job_metrics_hourly; DELETE FROM mscribe_migrations WHERE version = 7;",
    )
    .execute(&mut c)
    .await
    .unwrap();
    sqlx::raw_sql(SERVER_MADE_HOURLY_TABLE).execute(&mut c).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO job_metrics_hourly VALUES
         ('backup', '2026-01-01T10:00:00Z', 2, 1, 1, 0, 0.5, 300, 900, now())",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let s = store_on(&db).await;
    let rows = s.hourly(None).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].job_id.as_str(), rows[0].runs, rows[0].p95_ms), ("backup", 2, Some(900)));
    s.close().await;
    assert_schema_complete(&mut c, true).await;
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE tablename = 'job_metrics_hourly' ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(indexes, ["job_metrics_hourly_hour", "job_metrics_hourly_pkey"]);
}

/// A job id Postgres text cannot hold is refused, naming it; nothing is
/// written.
#[tokio::test]
async fn an_hourly_row_with_a_nul_in_its_job_id_is_rejected() {
    let db = PgTestDb::create().await;
    let s = store_on(&db).await;
    let row = |job: &str| HourlyRow {
        job_id: job.into(),
        hour_start: t(0),
        runs: 1,
        successes: 1,
        failures: 0,
        skipped: 0,
        success_rate: Some(1.0),
        p50_ms: None,
        p95_ms: None,
    };
    let e = s.upsert_hourly(&[row("ok"), row("a\0b")], t(0)).await.unwrap_err();
    assert!(!e.is_transient(), "{e}");
    assert!(e.to_string().contains(r#"job id "a\0b" contains a NUL character"#), "{e}");
    assert!(s.hourly(None).await.unwrap().is_empty());
    s.close().await;
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
        // The hourly metrics too (0007_job_metrics_hourly.sql grants them).
        let attempts = s.attempts_between(t(0), t(1000)).await?.len();
        let row = HourlyRow {
            job_id: "app".into(),
            hour_start: t(0),
            runs: 1,
            successes: 1,
            failures: 0,
            skipped: 0,
            success_rate: Some(1.0),
            p50_ms: Some(250),
            p95_ms: Some(250),
        };
        s.upsert_hourly(std::slice::from_ref(&row), t(0)).await?;
        s.upsert_hourly(std::slice::from_ref(&row), t(1)).await?;
        assert_eq!(s.hourly(Some("app")).await?, vec![row]);
        assert_eq!(s.prune_hourly(t(1)).await?, 1);
        // The control plane's tables and sequences (0008_control.sql).
        control_round_trip(&s).await?;
        s.close().await;
        assert_eq!(attempts, 1);
        Ok::<_, Box<dyn std::error::Error>>(n)
    }
    .await;
    drop(c);
    drop(db);
    let mut admin = PgConnection::connect(&pg_url()).await.unwrap();
    sqlx::raw_sql(&format!("DROP ROLE IF EXISTS {app}")).execute(&mut admin).await.unwrap();
    assert_eq!(result.unwrap(), 1);
}

/// Every `ControlStore` method once, as the caller's role.
async fn control_round_trip(s: &PostgresStore) -> Result<(), Box<dyn std::error::Error>> {
    use mscribe_storage::{
        AuditAction, AuditEntry, AuditQuery, ControlStore, JobDefinition, NewCancel, NewTrigger,
        PauseChange, Source,
    };
    let def = JobDefinition {
        job_id: "app".into(),
        name: "App".into(),
        schedule: None,
        timezone: None,
        kind: "rust".into(),
        policies: serde_json::json!({}),
        source: Source::Code,
        registered_by: "i1".into(),
        updated_at: t(0),
    };
    s.upsert_definitions(std::slice::from_ref(&def)).await?;
    assert_eq!(s.definitions().await?, vec![def]);
    let change = PauseChange {
        paused: true,
        note: None,
        source: Source::Api,
        instance_id: "i1".into(),
        at: t(0),
    };
    s.set_paused("app", &change).await?;
    assert_eq!(s.pause_states().await?.len(), 1);
    let trigger = NewTrigger {
        job_id: "app".into(),
        note: None,
        source: Source::Api,
        instance_id: "i1".into(),
        at: t(0),
        take: false,
    };
    let id = s.request_trigger(&trigger).await?;
    assert_eq!(s.take_triggers("i1", &["app".into()], t(1)).await?.len(), 1);
    assert!(s.finish_trigger(id, None, "skipped", t(2)).await?);
    let cancel = NewCancel {
        execution_id: "e".into(),
        job_id: None,
        note: None,
        source: Source::Api,
        instance_id: "i1".into(),
        at: t(0),
    };
    let id = s.request_cancel(&cancel).await?;
    assert!(s.finish_cancel(id, "i1", "cancelled", t(1)).await?);
    let entry = AuditEntry {
        at: t(3),
        action: AuditAction::Backfill,
        job_id: Some("app".into()),
        execution_id: None,
        note: None,
        source: Source::Api,
        instance_id: "i1".into(),
        detail: None,
    };
    s.record_audit(&entry).await?;
    assert_eq!(s.audit(&AuditQuery::new(10)).await?.len(), 4);
    s.prune_control(t(10)).await?;
    Ok(())
}

/// The control plane's tables follow the rules of the others:
/// scheduler_admin reads them and writes none.
#[tokio::test]
async fn scheduler_admin_reads_the_control_tables_and_writes_none() {
    let db = PgTestDb::create().await;
    store_on(&db).await.close().await;
    let mut c = db.connect().await;
    sqlx::raw_sql("SET ROLE scheduler_admin").execute(&mut c).await.unwrap();
    for table in
        ["job_definitions", "job_pauses", "job_triggers", "execution_cancels", "control_audit"]
    {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(n, 0);
        let e = sqlx::raw_sql(&format!("DELETE FROM {table}")).execute(&mut c).await.unwrap_err();
        assert_eq!(sqlstate(&e), "42501", "{table}: {e}");
    }
    let e = sqlx::raw_sql(
        "INSERT INTO control_audit (at, action, source, instance_id) VALUES (now(), 'x', 'y', 'z')",
    )
    .execute(&mut c)
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
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
