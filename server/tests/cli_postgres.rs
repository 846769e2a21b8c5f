//! The command line on Postgres without `--url`: read-only commands never
//! create or migrate a database (never migrated, or one migration behind:
//! exit 2, nothing changed), and control actions go through the database.
//! A fresh database `mscribe_cli_<random>` is made from
//! `MSCRIBE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and dropped after; an
//! unreachable server fails the test.

mod common;

use std::time::Duration;

use common::{base_env, run_cli};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

async fn connect(url: &str) -> PgConnection {
    tokio::time::timeout(Duration::from_secs(30), PgConnection::connect(url))
        .await
        .unwrap_or_else(|_| panic!("Postgres at {url} did not answer within 30 s"))
        .unwrap_or_else(|e| panic!("cannot connect to Postgres at {url}: {e}"))
}

/// A new empty database: its URL, and the admin URL and name to drop it.
async fn fresh_db() -> (String, String, String) {
    let admin =
        std::env::var("MSCRIBE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let mut c = connect(&admin).await;
    let name = common::fresh_db_name("mscribe_cli");
    c.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create database");
    let _ = c.close().await;
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b.to_owned(), format!("?{q}")),
        None => (admin.clone(), String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let url = match base[scheme_end..].find('/') {
        Some(i) => format!("{}/{name}{query}", &base[..scheme_end + i]),
        None => format!("{base}/{name}{query}"),
    };
    (url, admin, name)
}

async fn tables(url: &str) -> Vec<String> {
    let mut c = connect(url).await;
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
async fn read_only_commands_neither_create_nor_migrate_a_postgres_database() {
    let (url, admin, name) = fresh_db().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let env = base_env(dir, &url);

    for args in [&["jobs"][..], &["history", "database-backup"], &["audit"]] {
        let (code, out, err) = run_cli(dir, &env, args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains("not an mscribe database, or never migrated"), "{err}");
    }
    assert!(tables(&url).await.is_empty(), "nothing was created");

    assert_eq!(run_cli(dir, &env, &["migrate"]).0, 0);
    let (code, out, err) = run_cli(dir, &env, &["pause", "database-backup", "--note", "pg"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run_cli(dir, &env, &["audit", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["entries"][0]["action"].as_str(), v["entries"][0]["source"].as_str()),
        (Some("pause"), Some("cli"))
    );

    // One migration behind this build: refused, and left as it is.
    let latest = mscribe_storage::migrate::POSTGRES_MIGRATIONS.last().unwrap();
    let mut c = connect(&url).await;
    c.execute(
        format!("DELETE FROM mscribe_migrations WHERE version = {}", latest.version).as_str(),
    )
    .await
    .unwrap();
    let (code, _, err) = run_cli(dir, &env, &["jobs"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the schema is older than this build"), "{err}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM mscribe_migrations")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(count, latest.version - 1, "nothing was migrated");
    let _ = c.close().await;

    let mut c = connect(&admin).await;
    c.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await.unwrap();
}
