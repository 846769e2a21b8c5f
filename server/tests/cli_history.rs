//! `mscribe history --cursor` without `--url`: the command pages through
//! the database with the store's own paging (the cursor the API gives), so
//! rows that share a start time are neither skipped nor repeated, with or
//! without a status filter.

mod common;

use std::path::Path;

use chrono::{DateTime, Utc};
use common::{base_env, run_cli};
use mscribe_scheduler::{
    AttemptEnd, AttemptStart, ExecutionEvent, ExecutionId, ExecutionStatus, ExecutionStore,
    FireKind, HistoryQuery,
};
use mscribe_storage::SqliteStore;
use serde_json::Value;

const JOB: &str = "database-backup";

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_772_330_400 + secs, 0).unwrap()
}

fn run(id: u128, attempt: u32, started: DateTime<Utc>, status: ExecutionStatus) -> ExecutionEvent {
    if status == ExecutionStatus::Running {
        return ExecutionEvent::Started(AttemptStart {
            job_id: JOB.into(),
            execution_id: ExecutionId::from_u128(id),
            attempt,
            scheduled_at: started,
            started_at: started,
            instance_id: "i".into(),
            kind: FireKind::Schedule,
            fence: None,
        });
    }
    ExecutionEvent::Finished(AttemptEnd {
        job_id: JOB.into(),
        execution_id: ExecutionId::from_u128(id),
        attempt,
        scheduled_at: started,
        started_at: started,
        instance_id: "i".into(),
        status,
        completed_at: started,
        duration: std::time::Duration::from_millis(5),
        error: None,
        error_kind: None,
        result: None,
        metrics: None,
        kind: FireKind::Schedule,
        fence: None,
        ends_run: true,
    })
}

/// Every page through the command line: `(execution_id, attempt)` of each
/// row, page by page.
fn pages(dir: &Path, env: &[(String, String)], limit: usize, status: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let n = limit.to_string();
        let mut args = vec!["history", JOB, "--json", "-n", &n];
        if !status.is_empty() {
            args.extend(["--status", status]);
        }
        if let Some(c) = &cursor {
            args.extend(["--cursor", c]);
        }
        let (code, stdout, err) = run_cli(dir, env, &args);
        assert_eq!(code, 0, "{args:?}: {err}");
        let v: Value = serde_json::from_str(&stdout).unwrap();
        let rows: Vec<String> = v["executions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{}/{}", r["execution_id"].as_str().unwrap(), r["attempt"]))
            .collect();
        assert!(rows.len() <= limit);
        out.push(rows);
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
        assert!(out.len() < 50, "no end");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_through_the_database_with_the_cursor() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("mscribe.db");
    let env = base_env(dir, &format!("sqlite://{}", db.display()));
    assert_eq!(run_cli(dir, &env, &["migrate"]).0, 0);

    // Runs alone and runs sharing a start time, two attempts of some, of
    // several statuses: 16 rows.
    let statuses = [ExecutionStatus::Failed, ExecutionStatus::Succeeded];
    let mut events = Vec::new();
    for id in 1..=10u128 {
        let started = at(if (3..=7).contains(&id) { 30 } else { id as i64 * 10 });
        events.push(run(id, 1, started, statuses[id as usize % 2]));
        if id % 2 == 0 {
            events.push(run(id, 2, started, statuses[(id as usize + 1) % 2]));
        }
    }
    events.push(run(11, 1, at(30), ExecutionStatus::Running));
    let store = SqliteStore::open(&db).await.unwrap();
    store.write(&events).await.unwrap();
    let key = |r: &mscribe_scheduler::ExecutionRecord| format!("{}/{}", r.execution_id, r.attempt);
    let all: Vec<String> =
        store.history(&HistoryQuery::new(JOB, 100)).await.unwrap().iter().map(key).collect();
    let failed: Vec<String> = store
        .history(&HistoryQuery::new(JOB, 100).with_status(ExecutionStatus::Failed))
        .await
        .unwrap()
        .iter()
        .map(key)
        .collect();
    drop(store);
    assert_eq!(all.len(), 16);
    assert!(failed.len() > 3 && failed.len() < all.len());

    for limit in [1, 3, 5, 16] {
        let got = pages(dir, &env, limit, "");
        assert_eq!(got.len(), 16usize.div_ceil(limit), "limit {limit}");
        assert_eq!(got.concat(), all, "limit {limit}: every row once, in order");
    }
    for limit in [1, 2, 4] {
        assert_eq!(pages(dir, &env, limit, "failed").concat(), failed, "failed, limit {limit}");
    }
    // Without --json the next page's command is printed.
    let (code, out, err) = run_cli(dir, &env, &["history", JOB, "-n", "4"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().filter(|l| l.contains("2026-")).count(), 4, "{out}");
    assert!(err.contains(&format!("mscribe history {JOB} -n 4 --cursor ")), "{err}");
}
