//! Every shell and SQL block of the docs says whether it runs, and the SQL
//! ones run, against SQLite and against Postgres (`MSCRIBE_TEST_POSTGRES_URL`,
//! default `postgres://postgres@127.0.0.1:5432/test`; like the other
//! Postgres tests this fails, never skips, when none answers). The runnable
//! shell blocks run in `docs_readme.rs` and `docs_runbooks.rs`.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use common::docs::{
    DOCS, SHELL_LANGS, doc_blocks, end_event, shell_marker, sql_blocks, sql_marker,
};
use mscribe_scheduler::{AttemptStart, ExecutionId, FireKind, SkippedFire};
use mscribe_scheduler::{ExecutionEvent, ExecutionStatus};
use mscribe_server::db::Database;

#[test]
fn every_shell_and_sql_block_is_marked() {
    let mut errors = Vec::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for doc in DOCS {
        for b in doc_blocks(doc) {
            let res = if SHELL_LANGS.contains(&b.lang.as_str()) {
                shell_marker(&b.attrs)
                    .map(|m| if m.is_some() { "runnable" } else { "not runnable" })
            } else if b.lang == "sql" {
                sql_marker(&b.attrs).map(|m| m.unwrap_or("not runnable"))
            } else {
                continue;
            };
            match res {
                Ok(kind) => *counts.entry(kind).or_default() += 1,
                Err(e) => errors.push(format!("{}: {e}", b.location())),
            }
        }
    }
    println!("marked blocks: {counts:?}");
    assert!(errors.is_empty(), "unmarked or malformed blocks:\n{}", errors.join("\n"));
}

/// Rows the queries can find: runs, a failure, a late run, a skipped fire,
/// a run left running.
fn seed_events() -> Vec<ExecutionEvent> {
    let now = Utc::now();
    let min = chrono::Duration::minutes;
    let mut late =
        end_event("metrics-aggregation", 13, 1, now - min(50), ExecutionStatus::Succeeded);
    late.started_at = now - min(45);
    vec![
        ExecutionEvent::Finished(end_event(
            "database-backup",
            10,
            1,
            now - min(90),
            ExecutionStatus::Failed,
        )),
        ExecutionEvent::Finished(end_event(
            "database-backup",
            10,
            2,
            now - min(89),
            ExecutionStatus::RetriesExhausted,
        )),
        ExecutionEvent::Finished(end_event(
            "health-snapshot",
            11,
            1,
            now - min(5),
            ExecutionStatus::Succeeded,
        )),
        ExecutionEvent::Finished(late),
        ExecutionEvent::Skipped(SkippedFire {
            job_id: "log-rotation".into(),
            execution_id: ExecutionId::from_u128(12),
            scheduled_at: now - min(120),
            decided_at: now - min(30),
            reason: "misfire: missed while down or stalled".into(),
            instance_id: "docs-test".into(),
            kind: FireKind::Schedule,
            fence: None,
        }),
        ExecutionEvent::Started(AttemptStart {
            job_id: "temp-cleanup".into(),
            execution_id: ExecutionId::from_u128(14),
            attempt: 1,
            scheduled_at: now - min(1),
            started_at: now - min(1),
            instance_id: "docs-test".into(),
            kind: FireKind::Schedule,
            fence: None,
        }),
    ]
}

async fn open_and_seed(url: &str) -> Database {
    let db = Database::open(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    let store = db.store();
    store.write(&seed_events()).await.expect("seed rows");
    store.heartbeat("docs-test", Utc::now()).await.expect("seed heartbeat");
    db
}

#[test]
fn sqlite_sql_blocks_run() {
    let blocks = sql_blocks("sqlite");
    assert!(blocks.len() >= 5, "only {} SQLite blocks", blocks.len());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("mscribe.db");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let db = rt.block_on(open_and_seed(&format!("sqlite://{}", path.display())));
    rt.block_on(db.close());
    drop(db);
    let conn = rusqlite::Connection::open(&path).expect("open sqlite");
    let mut errors = Vec::new();
    for b in &blocks {
        let run = || -> rusqlite::Result<usize> {
            conn.execute_batch("BEGIN")?;
            let mut rows = 0;
            let mut batch = rusqlite::Batch::new(&conn, &b.body);
            let res = (|| {
                while let Some(mut stmt) = batch.next()? {
                    let mut r = stmt.raw_query();
                    while r.next()?.is_some() {
                        rows += 1;
                    }
                }
                Ok(())
            })();
            conn.execute_batch("ROLLBACK")?;
            res.map(|()| rows)
        };
        match run() {
            Ok(rows) => println!("{}: {rows} rows", b.location()),
            Err(e) => errors.push(format!("{}: {e}\n{}", b.location(), b.body)),
        }
    }
    assert!(errors.is_empty(), "SQLite blocks failed:\n{}", errors.join("\n"));
}

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    match base[scheme_end..].find('/') {
        Some(i) => format!("{}/{name}{query}", &base[..scheme_end + i]),
        None => format!("{base}/{name}{query}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sql_blocks_run() {
    use sqlx::{Connection, Executor, PgConnection};
    let blocks = sql_blocks("postgres");
    assert!(blocks.len() >= 5, "only {} Postgres blocks", blocks.len());
    let admin_url = std::env::var("MSCRIBE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let mut admin =
        tokio::time::timeout(Duration::from_secs(30), PgConnection::connect(&admin_url))
            .await
            .unwrap_or_else(|_| panic!("Postgres at {admin_url} did not answer within 30 s"))
            .unwrap_or_else(|e| {
                panic!(
                    "cannot connect to Postgres at {admin_url} (set MSCRIBE_TEST_POSTGRES_URL): {e}"
                )
            });
    let name = common::fresh_db_name("mscribe_docs");
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create database");
    let url = with_database(&admin_url, &name);

    let db = open_and_seed(&url).await;
    let mut errors = Vec::new();
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    for b in &blocks {
        let mut tx = conn.begin().await.expect("begin");
        let res = sqlx::raw_sql(&b.body).execute(&mut *tx).await;
        let _ = tx.rollback().await;
        match res {
            Ok(_) => println!("{}: ok", b.location()),
            Err(e) => errors.push(format!("{}: {e}\n{}", b.location(), b.body)),
        }
    }
    let _ = conn.close().await;
    db.close().await;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .expect("drop database");
    assert!(errors.is_empty(), "Postgres blocks failed:\n{}", errors.join("\n"));
}
