//! End to end against Postgres: the real `mscribe` binary with
//! `MSCRIBE_DATABASE_URL` pointing at a fresh database
//! `mscribe_e2e_<random>`, created from `MSCRIBE_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`) and dropped after.
//! An unreachable server fails the test: it is never skipped.

mod common;

use std::time::Duration;

use common::{Server, base_env, run_cli, scenario};
use mscribe_server::db::Database;
use mscribe_server::ops::{DatabaseBackup, MetricsAggregation, OpsJob};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database that is dropped at the end.
struct FreshDb {
    admin_url: String,
    name: String,
    url: String,
}

impl FreshDb {
    async fn create() -> FreshDb {
        let admin_url =
            std::env::var("MSCRIBE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let mut c = tokio::time::timeout(
            Duration::from_secs(30),
            PgConnection::connect(&admin_url),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "Postgres at {admin_url} did not answer within 30 s (set MSCRIBE_TEST_POSTGRES_URL)"
            )
        })
        .unwrap_or_else(|e| {
            panic!("cannot connect to Postgres at {admin_url} (set MSCRIBE_TEST_POSTGRES_URL): {e}")
        });
        let name = common::fresh_db_name("mscribe_e2e");
        c.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create database");
        let _ = c.close().await;
        let (base, query) = match admin_url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (admin_url.as_str(), String::new()),
        };
        let scheme_end = base.find("://").map_or(0, |i| i + 3);
        let url = match base[scheme_end..].find('/') {
            Some(i) => format!("{}/{name}{query}", &base[..scheme_end + i]),
            None => format!("{base}/{name}{query}"),
        };
        FreshDb { admin_url, name, url }
    }

    async fn drop_db(self) {
        let mut c = PgConnection::connect(&self.admin_url).await.expect("connect to drop");
        c.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await
            .expect("drop database");
    }
}

/// Tests of one binary create their databases at once, on several threads,
/// and two of them can read the same nanosecond: their names must differ.
#[test]
fn databases_made_in_the_same_nanosecond_get_different_names() {
    let nanos = 0x1234_5678_9abc;
    let (a, b) =
        (common::db_name_at("mscribe_e2e", nanos), common::db_name_at("mscribe_e2e", nanos));
    assert_ne!(a, b);
    assert!(a.len() <= 63 && b.len() <= 63, "Postgres cuts names at 63 bytes: {a}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_end_to_end_and_ops_jobs() {
    let db = FreshDb::create().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let env = base_env(dir, &db.url);

    let srv = Server::start(dir, &env);
    scenario(dir, &srv).await;
    let (status, stderr) = srv.terminate();
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");

    let mut c = PgConnection::connect(&db.url).await.unwrap();
    let running: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM scheduled_job_executions WHERE status = 'running'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM scheduled_job_executions")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(running, 0);
    assert!(total >= 2, "{total}");
    let _ = c.close().await;

    // The backup: a verified pg_dump archive (scripts/ensure-postgres.sh
    // puts pg_dump on PATH for the tests).
    let (code, out, err) = run_cli(dir, &env, &["history", "database-backup", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let result = &v["executions"][0]["result"];
    assert_eq!(result["verified"], true, "{result}");
    let file = result["file"].as_str().unwrap();
    assert!(file.ends_with(".pgdump") && std::path::Path::new(file).is_file(), "{result}");
    assert!(!result.to_string().contains("PGPASSWORD"));

    let (code, out, err) = run_cli(dir, &env, &["run", "metrics-aggregation"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = run_cli(dir, &env, &["jobs"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 8, "{out}");

    // The ops jobs directly against Postgres: the rollup is idempotent.
    let pg = Database::open(&db.url).await.unwrap();
    let agg = MetricsAggregation::new(pg.clone(), Duration::from_secs(48 * 3600));
    let now = chrono::Utc::now();
    let first = agg.run_at(now).await;
    assert_eq!(first.error, None, "{}", first.data);
    let rows1 = pg.hourly(None).await.unwrap();
    let second = agg.run_at(now).await;
    assert_eq!(second.error, None);
    let rows2 = pg.hourly(None).await.unwrap();
    assert!(!rows1.is_empty());
    assert_eq!(rows1, rows2);
    let backup_rows =
        rows1.iter().filter(|r| r.job_id == "database-backup").map(|r| r.runs).sum::<u64>();
    assert!(backup_rows >= 1, "{rows1:?}");

    // pg_dump missing: a failure that names the program, not a quiet skip.
    let opts = mscribe_server::config::BackupOptions {
        pg_dump: "/nonexistent/pg_dump".to_owned(),
        ..Default::default()
    };
    let out = DatabaseBackup::new(pg.clone(), dir.join("b2"), opts).run_at(now).await;
    assert!(out.permanent, "a missing program is no retry's business");
    let error = out.error.expect("a missing pg_dump fails the backup");
    assert!(
        error.starts_with("/nonexistent/pg_dump not found on PATH: no backup was made"),
        "{error}"
    );
    assert_eq!(out.data["pg_dump"], "/nonexistent/pg_dump");
    pg.close().await;

    db.drop_db().await;
}

/// `pg_dump` missing is a permanent failure: the run ends after one attempt,
/// `failed` with `error_kind` `permanent`, though the job's retry policy
/// allows five attempts (a transient failure would be retried 30 s later).
/// The scheduler runs on a virtual clock; the hour it is moved on covers
/// every backoff of the policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_without_pg_dump_fails_permanently_after_one_attempt_despite_retries() {
    use std::sync::Arc;

    use mscribe_scheduler::{
        ErrorKind, ExecutionStatus, ExecutionStore, HistoryQuery, JobScheduler, LocalRuntime,
        MemoryStore,
    };
    use mscribe_server::config::Config;
    use mscribe_server::ops::{job_config, job_name};

    let db = FreshDb::create().await;
    let pg = Database::open(&db.url).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = Config::from_toml_str(
        r#"
        [jobs.database-backup]
        pg_dump = "/nonexistent/pg_dump"
        retry = { attempts = 5, initial_delay = "30s", max_delay = "1m" }
        "#,
        "test.toml",
        |_| None,
    )
    .unwrap();
    let backup = DatabaseBackup::new(
        pg.clone(),
        tmp.path().join("backups"),
        cfg.jobs.database_backup.options.clone(),
    );

    let rt = LocalRuntime::new();
    let store = Arc::new(MemoryStore::new());
    let scheduler = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
        .store(store.clone())
        .build();
    scheduler
        .register(job_config(
            "database-backup",
            job_name("database-backup"),
            cfg.jobs.common("database-backup").unwrap(),
            backup,
        ))
        .unwrap();
    assert_eq!(scheduler.job("database-backup").unwrap().max_attempts, 5);
    rt.block_on(scheduler.start()).unwrap();
    scheduler.trigger("database-backup").unwrap();
    rt.run_until_stalled();
    // Past every backoff (30 s, 1 m, 1 m, 1 m), short of the 02:00 fire.
    rt.advance(Duration::from_secs(3600));

    let rows = rt.block_on(store.history(&HistoryQuery::new("database-backup", 10))).unwrap();
    assert_eq!(rows.len(), 1, "one attempt, no retry: {rows:#?}");
    let row = &rows[0];
    assert_eq!(row.attempt, 1);
    assert_eq!(row.status, ExecutionStatus::Failed);
    assert_eq!(row.error_kind, Some(ErrorKind::Permanent));
    let error = row.error.as_deref().unwrap();
    assert!(
        error.starts_with("/nonexistent/pg_dump not found on PATH: no backup was made"),
        "{error}"
    );
    let info = scheduler.job("database-backup").unwrap();
    assert_eq!((info.running, info.queued), (0, 0));
    rt.block_on(scheduler.stop(Duration::from_secs(1))).unwrap();

    pg.close().await;
    db.drop_db().await;
}

/// Two servers on one database with `claim_fires`: a shared job's fires
/// (metrics-aggregation, every second here) run once between them, a
/// per-host job's (health-snapshot) on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_claim_each_shared_fire_once() {
    let db = FreshDb::create().await;
    let (tmp_a, tmp_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let servers: Vec<Server> = [tmp_a.path(), tmp_b.path()]
        .iter()
        .map(|dir| {
            let mut env = base_env(dir, &db.url);
            for (k, v) in [
                ("MSCRIBE_CLAIM_FIRES", "true"),
                ("MSCRIBE_JOBS_METRICS_AGGREGATION_SCHEDULE", "* * * * * *"),
                ("MSCRIBE_JOBS_HEALTH_SNAPSHOT_SCHEDULE", "* * * * * *"),
            ] {
                env.push((k.to_owned(), v.to_owned()));
            }
            Server::start(dir, &env)
        })
        .collect();
    let mut c = PgConnection::connect(&db.url).await.unwrap();
    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
    // Both up, then three shared fires while both run (bounded wait).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let both: i64 = count(
            "SELECT count(*) FROM (SELECT scheduled_at FROM scheduled_job_executions
             WHERE job_id = 'health-snapshot' GROUP BY scheduled_at HAVING count(*) = 2) AS s",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        if both >= 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the two servers never fired together");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for srv in servers {
        let (status, stderr) = srv.terminate();
        assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    }
    let rows: i64 =
        count("SELECT count(*) FROM scheduled_job_executions WHERE job_id = 'metrics-aggregation'")
            .fetch_one(&mut c)
            .await
            .unwrap();
    let fires: i64 = count(
        "SELECT count(DISTINCT scheduled_at) FROM scheduled_job_executions
         WHERE job_id = 'metrics-aggregation'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    let claims: i64 =
        count("SELECT count(*) FROM fire_claims WHERE job_id = 'metrics-aggregation'")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert!(fires >= 3, "{fires} fires");
    assert_eq!(rows, fires, "each shared fire ran once");
    assert_eq!(claims, fires, "each shared fire was claimed once");
    let local: i64 = count("SELECT count(*) FROM fire_claims WHERE job_id = 'health-snapshot'")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(local, 0, "per-host jobs are not claimed");
    let _ = c.close().await;
    db.drop_db().await;
}

/// Three `mscribe serve` processes, started at the same moment on a fresh,
/// empty database (each with a directory and a free port of its own): all
/// three come up and answer `/livez`. Every table comes from the storage
/// migrations, which instances apply one after the other under an advisory
/// lock; nothing is created at run time, so nothing can race (this used to
/// fail in "creating job_metrics_hourly").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_starting_together_on_an_empty_database_all_come_up() {
    let db = FreshDb::create().await;
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let go = std::sync::Arc::new(std::sync::Barrier::new(3));
    let starts: Vec<_> = dirs
        .iter()
        .map(|dir| {
            let (dir, env, go) = (dir.path().to_owned(), base_env(dir.path(), &db.url), go.clone());
            std::thread::spawn(move || {
                go.wait();
                Server::start(&dir, &env)
            })
        })
        .collect();
    let servers: Vec<Server> = starts
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.join().unwrap_or_else(|_| panic!("server {i} did not start")))
        .collect();
    let mut ports: Vec<&str> = servers.iter().map(|s| s.addr.as_str()).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3, "distinct ports");
    for (i, srv) in servers.iter().enumerate() {
        let (code, _) = srv.json("GET", "/livez", None).await;
        assert_eq!(code, 200, "server {i}: /livez\nstderr:\n{}", srv.stderr());
        let stderr = srv.stderr();
        assert!(!stderr.contains("already exists"), "server {i}:\n{stderr}");
    }
    for (i, srv) in servers.into_iter().enumerate() {
        let (status, stderr) = srv.terminate();
        assert_eq!(status.code(), Some(0), "server {i}; stderr:\n{stderr}");
    }
    // Each migration applied once; the server's table is one of them.
    let mut c = PgConnection::connect(&db.url).await.unwrap();
    let applied: Vec<String> =
        sqlx::query_scalar("SELECT name FROM mscribe_migrations ORDER BY version")
            .fetch_all(&mut c)
            .await
            .unwrap();
    let known: Vec<&str> =
        mscribe_storage::migrate::POSTGRES_MIGRATIONS.iter().map(|m| m.name).collect();
    assert_eq!(applied, known);
    assert!(known.contains(&"job_metrics_hourly"));
    let _ = c.close().await;
    db.drop_db().await;
}
