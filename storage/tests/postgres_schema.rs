//! The Postgres schema, against a real server (these tests fail, never
//! skip, when it cannot be reached): row-level security with SET ROLE, the
//! roles' access to every table, the SQL helpers, and the store's refusal
//! of text Postgres cannot hold. The migrations are in
//! `postgres_migrations.rs`.

mod common;

use std::time::Duration;

use common::*;
use mscribe_scheduler::{ExecutionStatus, ExecutionStore, HistoryQuery};
use mscribe_storage::sqlx::{self, Connection, PgConnection};
use mscribe_storage::{HourlyMetricsStore, HourlyRow, PostgresOptions, PostgresStore};

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

// ----------------------------------------------------- row-level security

#[tokio::test]
async fn row_level_security_with_set_role() {
    let db = PgTestDb::create().await;
    let store = store_on(&db).await;
    let mut c = db.connect().await;
    // A running row of the job "rls", the run `id`.
    let insert = |id: &'static str| {
        sqlx::query(
            "INSERT INTO scheduled_job_executions
             (job_id, execution_id, attempt, status, scheduled_at, started_at, instance_id)
             VALUES ($1, $2::uuid, 1, 'running', now(), now(), 'sql')",
        )
        .bind("rls")
        .bind(id)
    };
    let count = "SELECT count(*) FROM scheduled_job_executions";

    // service_role: full access.
    sqlx::raw_sql("SET ROLE service_role").execute(&mut c).await.unwrap();
    insert("00000000-0000-0000-0000-000000000001").execute(&mut c).await.unwrap();
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
    let e = insert("00000000-0000-0000-0000-000000000002").execute(&mut c).await.unwrap_err();
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
    let e = insert("00000000-0000-0000-0000-000000000004").execute(&mut c).await.unwrap_err();
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
    for table in [
        "job_definitions",
        "job_pauses",
        "job_triggers",
        "execution_cancels",
        "control_audit",
        "backfill_locks",
    ] {
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
