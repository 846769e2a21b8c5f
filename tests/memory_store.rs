//! `MemoryStore`'s bound: it keeps the newest rows of each job, never a
//! running row's place, and the same answers as before within the bound.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use futures::executor::block_on;
use mscribe_scheduler::{AttemptEnd, AttemptStart, FireKind};
use mscribe_scheduler::{
    ExecutionEvent, ExecutionId, ExecutionStatus, ExecutionStore, HistoryQuery, MemoryStore,
    PrunePolicy,
};

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
}

fn attempt(job: &str, run: u128, at: i64) -> AttemptStart {
    AttemptStart {
        job_id: Arc::from(job),
        execution_id: ExecutionId::from_u128(run),
        attempt: 1,
        scheduled_at: t(at),
        started_at: t(at),
        instance_id: Arc::from("i1"),
        kind: FireKind::Schedule,
        fence: None,
    }
}

fn start(job: &str, run: u128, at: i64) -> ExecutionEvent {
    ExecutionEvent::Started(attempt(job, run, at))
}

/// The end of [`start`]'s attempt: a success one second long.
fn end(job: &str, run: u128, at: i64) -> ExecutionEvent {
    let AttemptStart {
        job_id,
        execution_id,
        attempt,
        scheduled_at,
        started_at,
        instance_id,
        kind,
        fence,
    } = attempt(job, run, at);
    ExecutionEvent::Finished(AttemptEnd {
        job_id,
        execution_id,
        attempt,
        scheduled_at,
        started_at,
        instance_id,
        status: ExecutionStatus::Succeeded,
        completed_at: t(at + 1),
        duration: Duration::from_secs(1),
        error: None,
        error_kind: None,
        result: None,
        metrics: None,
        kind,
        fence,
        ends_run: true,
    })
}

/// The runs of `job` in its history, newest first.
fn runs(store: &MemoryStore, job: &str) -> Vec<(u128, ExecutionStatus)> {
    let rows = block_on(store.history(&HistoryQuery::new(job, 100))).unwrap();
    rows.iter().map(|r| (r.execution_id.as_u128(), r.status)).collect()
}

/// Runs `runs` of `job` start to end, ten seconds apart.
fn run_all(store: &MemoryStore, job: &str, runs: std::ops::Range<u128>) {
    for run in runs {
        let at = run as i64 * 10;
        block_on(store.write(&[start(job, run, at), end(job, run, at)])).unwrap();
    }
}

fn bound(n: usize) -> MemoryStore {
    MemoryStore::with_rows_per_job(NonZeroUsize::new(n).unwrap())
}

#[test]
fn a_bounded_store_keeps_the_newest_rows_of_each_job() {
    let store = bound(3);
    run_all(&store, "a", 0..5);
    block_on(store.write(&[end("b", 10, 0), end("b", 11, 10)])).unwrap();
    let ok = ExecutionStatus::Succeeded;
    assert_eq!(runs(&store, "a"), vec![(4, ok), (3, ok), (2, ok)]);
    assert_eq!(runs(&store, "b"), vec![(11, ok), (10, ok)], "another job's rows are its own");
    assert_eq!(store.len(), 5);
    assert_eq!(block_on(store.last_fire("a")).unwrap(), Some(t(40)));
}

#[test]
fn a_running_row_keeps_its_place_and_its_end_finds_it() {
    let store = bound(2);
    block_on(store.write(&[start("a", 0, 0)])).unwrap();
    run_all(&store, "a", 1..3);
    // Over the bound, the oldest *finished* row went: run 1, not run 0.
    let (ok, running) = (ExecutionStatus::Succeeded, ExecutionStatus::Running);
    assert_eq!(runs(&store, "a"), vec![(2, ok), (0, running)]);
    block_on(store.write(&[end("a", 0, 0)])).unwrap();
    assert_eq!(runs(&store, "a"), vec![(2, ok), (0, ok)], "completed in place, not added");
    assert_eq!(store.len(), 2);
}

#[test]
fn pruning_a_bounded_store_leaves_it_consistent() {
    let store = bound(3);
    run_all(&store, "a", 0..6);
    let policy = PrunePolicy { older_than: t(45), failures_older_than: None };
    assert_eq!(block_on(store.prune(policy)).unwrap(), 2, "runs 3 and 4 were left to prune");
    let ok = ExecutionStatus::Succeeded;
    assert_eq!(runs(&store, "a"), vec![(5, ok)]);
    // Writing on after the prune keeps the bound.
    run_all(&store, "a", 6..10);
    assert_eq!(runs(&store, "a"), vec![(9, ok), (8, ok), (7, ok)]);
}

#[test]
fn an_unbounded_store_keeps_every_row() {
    let store = MemoryStore::unbounded();
    for run in 0..(MemoryStore::DEFAULT_ROWS_PER_JOB as u128 + 5) {
        block_on(store.write(&[end("a", run, run as i64)])).unwrap();
    }
    assert_eq!(store.len(), MemoryStore::DEFAULT_ROWS_PER_JOB + 5);
    assert_eq!(MemoryStore::new().rows_per_job(), Some(MemoryStore::DEFAULT_ROWS_PER_JOB));
}
