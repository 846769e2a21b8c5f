//! The Postgres migrations, against a real server (these tests fail, never
//! skip, when it cannot be reached): the runner applies each migration
//! once, even when instances start together, refuses a changed or a newer
//! database and leaves nothing behind when a step fails; the files apply
//! without it; databases from earlier builds open as before. The schema's
//! access rules and SQL helpers are in `postgres_schema.rs`.

mod common;

use std::sync::Arc;

use common::*;
use mscribe_scheduler::ExecutionStore;
use mscribe_storage::migrate::POSTGRES_MIGRATIONS;
use mscribe_storage::sqlx::{self, PgConnection};
use mscribe_storage::{Error, HourlyMetricsStore, PostgresOptions, PostgresStore};

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
            "0010_once_per_cluster",
            "0011_alerts"
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
        "backfill_locks",
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
        want.insert(11, "mscribe_migrations");
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
