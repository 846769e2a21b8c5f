//! Crash recovery: a child process killed with SIGKILL mid-run leaves its
//! row `running`; the next start marks it `abandoned` and the misfire policy
//! then plans the fires missed while it was down.
//!
//! The test re-runs its own binary as the child (selected by an env var).
//! Both sides run the scheduler on a virtual clock, so no wall-clock wait is
//! needed beyond the child's start-up and its real SQLite I/O.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use mscribe_scheduler::{
    ExecutionStatus, ExecutionStore, HistoryQuery, JobConfig, JobContext, JobScheduler,
    LocalRuntime, MisfirePolicy, VirtualClock,
};
use mscribe_storage::SqliteStore;

const CHILD_ENV: &str = "MSCRIBE_CRASH_CHILD_DB";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap()
}

fn job(hang: bool) -> JobConfig {
    JobConfig::new("report", move |ctx: JobContext| async move {
        if hang {
            futures::future::pending::<()>().await;
        }
        ctx.sleep(Duration::from_secs(1)).await;
    })
    .schedule("@every 1m")
    .misfire(MisfirePolicy::run_once())
}

/// The child: starts a run that never ends, reports READY once the store
/// holds the `running` row, then waits to be killed.
fn child(db: &str) -> ! {
    let rt = LocalRuntime::with_clock(VirtualClock::new(t0()));
    let store = Arc::new(rt.block_on(SqliteStore::open(db)).expect("child: open"));
    let sched = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
        .store(store.clone())
        .instance_id("child-instance")
        .build();
    sched.register(job(true)).unwrap();
    rt.block_on(sched.start()).unwrap();
    rt.advance(Duration::from_secs(61));
    loop {
        let rows = rt.block_on(store.history(&HistoryQuery::new("report", 10))).unwrap();
        if rows.iter().any(|r| r.status == ExecutionStatus::Running) {
            break;
        }
        rt.run_until_stalled();
        std::thread::yield_now();
    }
    println!("READY");
    loop {
        std::thread::park();
    }
}

#[test]
fn killed_process_leaves_running_rows_that_the_next_start_abandons() {
    if let Ok(db) = std::env::var(CHILD_ENV) {
        child(&db);
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let mut proc = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "killed_process_leaves_running_rows_that_the_next_start_abandons",
            "--nocapture",
        ])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let out = BufReader::new(proc.stdout.take().unwrap());
    let mut ready = false;
    for line in out.lines() {
        if line.unwrap().trim() == "READY" {
            ready = true;
            break;
        }
    }
    assert!(ready, "child never reported READY");
    proc.kill().expect("SIGKILL the child"); // Child::kill sends SIGKILL on Unix
    let status = proc.wait().unwrap();
    assert!(!status.success());

    // The next start, 3 hours (virtual) later.
    let restart = t0() + chrono::Duration::seconds(3 * 3600 + 30);
    let rt = LocalRuntime::with_clock(VirtualClock::new(restart));
    let store = Arc::new(rt.block_on(SqliteStore::open(&db)).expect("reopen"));
    let before = rt.block_on(store.history(&HistoryQuery::new("report", 10))).unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].status, ExecutionStatus::Running);

    let sched = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
        .store(store.clone())
        .build();
    sched.register(job(false)).unwrap();
    rt.block_on(sched.start()).unwrap();
    rt.advance(Duration::from_secs(5));
    let report = rt.block_on(sched.stop(Duration::from_secs(5))).unwrap();
    assert_eq!(report.unwritten, 0);

    let rows = rt.block_on(store.history(&HistoryQuery::new("report", 1_000))).unwrap();
    let abandoned: Vec<_> =
        rows.iter().filter(|r| r.status == ExecutionStatus::Abandoned).collect();
    assert_eq!(abandoned.len(), 1);
    assert_eq!(abandoned[0].instance_id, "child-instance");
    assert_eq!(abandoned[0].scheduled_at, t0() + chrono::Duration::seconds(60));
    assert!(abandoned[0].error.as_deref().unwrap().contains("child-instance"));
    // RunOnce: the fires from 12:02 to 15:00 were missed; the latest runs, the rest are skipped.
    let skipped = rows.iter().filter(|r| r.status == ExecutionStatus::Skipped).count();
    let ran: Vec<_> = rows.iter().filter(|r| r.status == ExecutionStatus::Succeeded).collect();
    assert_eq!(skipped, 3 * 60 - 1 - 1);
    assert_eq!(ran.len(), 1);
    assert_eq!(ran[0].scheduled_at, t0() + chrono::Duration::seconds(3 * 3600));
    assert!(rows.iter().all(|r| r.status != ExecutionStatus::Running));
}
