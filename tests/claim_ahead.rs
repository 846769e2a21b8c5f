//! Claims ahead of the fire (`SchedulerBuilder::claim_ahead`): a claimed
//! job's fire starts on time although its claim takes a while to answer;
//! until its instant it is still the job's next run; a fire held for its
//! instant is recorded skipped when its job is paused or unregistered
//! first, run when the scheduler stops first (skipped when the stop's grace
//! ends before it), and run under the new definition of a job registered
//! again; a job with a cluster limit is claimed at its instant.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mscribe_scheduler::sim::{FaultyStore, StoreFaults};
use mscribe_scheduler::{
    Clock, ExecutionRecord, ExecutionStatus, ExecutionStore, JobConfig, JobContext, JobScheduler,
    LocalRuntime, MemoryStore,
};

/// An instant job `id` every 10 s.
fn tick(id: &str) -> JobConfig {
    JobConfig::new(id, |_ctx: JobContext| async {}).schedule(Duration::from_secs(10))
}

/// One instance claiming fires `ahead` of them on `store`, with `jobs`.
fn instance(
    rt: &LocalRuntime,
    store: Arc<dyn ExecutionStore>,
    ahead: Duration,
    jobs: Vec<JobConfig>,
) -> JobScheduler {
    let s = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
        .store(store)
        .instance_id("a")
        .claim_fires(true)
        .claim_ahead(ahead)
        .build();
    for job in jobs {
        s.register(job).unwrap();
    }
    s
}

/// A store whose every call takes 300 ms.
fn slow(rt: &LocalRuntime, store: &Arc<MemoryStore>) -> Arc<dyn ExecutionStore> {
    let faults = StoreFaults { stall: 1.0, stall_for: Duration::from_millis(300), error: 0.0 };
    Arc::new(FaultyStore::new(store.clone(), faults, 1, Arc::new(rt.clock()) as Arc<dyn Clock>))
}

fn rows(store: &MemoryStore, job: &str) -> Vec<ExecutionRecord> {
    let mut rows: Vec<ExecutionRecord> =
        store.all().into_iter().filter(|r| r.job_id == job).collect();
    rows.sort_by_key(|r| r.scheduled_at);
    rows
}

fn lateness_ms(rows: &[ExecutionRecord]) -> Vec<i64> {
    rows.iter().map(|r| (r.started_at - r.scheduled_at).num_milliseconds()).collect()
}

/// The next whole 10 s after now.
fn next_tick(rt: &LocalRuntime) -> DateTime<Utc> {
    let now = rt.clock().now();
    now + chrono::Duration::milliseconds(10_000 - now.timestamp_millis().rem_euclid(10_000))
}

/// Advances the clock to `ms` before the next whole 10 s.
fn to_before_next_tick(rt: &LocalRuntime, ms: i64) -> DateTime<Utc> {
    let at = next_tick(rt);
    let wait = (at - rt.clock().now() - chrono::Duration::milliseconds(ms)).to_std().unwrap();
    rt.advance(wait);
    at
}

/// `jobs` on one instance claiming 500 ms ahead, started and run 15 s,
/// then the clock `ms` before the next whole 10 s: the store, the
/// scheduler, and the instant of the fires it now holds.
fn holding(
    rt: &LocalRuntime,
    jobs: Vec<JobConfig>,
    ms: i64,
) -> (Arc<MemoryStore>, JobScheduler, DateTime<Utc>) {
    let store = Arc::new(MemoryStore::unbounded());
    let s = instance(rt, store.clone(), Duration::from_millis(500), jobs);
    rt.block_on(s.start()).unwrap();
    rt.advance(Duration::from_secs(15));
    let at = to_before_next_tick(rt, ms);
    (store, s, at)
}

#[test]
fn fires_claimed_ahead_start_on_time_when_the_claims_take_a_while() {
    let run = |ahead: Duration| {
        let rt = LocalRuntime::new();
        let store = Arc::new(MemoryStore::unbounded());
        let s = instance(&rt, slow(&rt, &store), ahead, vec![tick("t")]);
        rt.block_on(s.start()).unwrap();
        rt.advance(Duration::from_secs(95));
        rt.block_on(s.stop(Duration::from_secs(1))).unwrap();
        let rows = rows(&store, "t");
        assert_eq!(rows.len(), 9, "{rows:?}");
        assert!(rows.iter().all(|r| r.status == ExecutionStatus::Succeeded), "{rows:?}");
        lateness_ms(&rows)
    };
    assert_eq!(run(Duration::ZERO), vec![300; 9], "claimed at the instant: late by the claim");
    assert_eq!(run(Duration::from_millis(500)), vec![0; 9], "claimed ahead: on time");
}

#[test]
fn a_fire_claimed_ahead_is_the_next_run_until_its_instant() {
    let rt = LocalRuntime::new();
    let store = Arc::new(MemoryStore::unbounded());
    let s = instance(&rt, store.clone(), Duration::from_millis(500), vec![tick("t")]);
    rt.block_on(s.start()).unwrap();
    rt.advance(Duration::from_secs(25));
    let last = next_tick(&rt) - chrono::Duration::seconds(10);
    let at = to_before_next_tick(&rt, 200);
    // Its claim is won and the fire waits for its instant.
    let info = s.job("t").unwrap();
    assert_eq!(info.next_run, Some(at));
    assert_eq!(info.last_run, Some(last));
    assert_eq!(s.upcoming("t", 1).unwrap()[0].scheduled_at, at);
    rt.advance(Duration::from_millis(200));
    let info = s.job("t").unwrap();
    assert_eq!(info.last_run, Some(at));
    assert_eq!(info.next_run, Some(at + chrono::Duration::seconds(10)));
    rt.block_on(s.stop(Duration::from_secs(1))).unwrap();
    assert_eq!(lateness_ms(&rows(&store, "t")), vec![0; 3]);
}

#[test]
fn a_held_fire_is_skipped_when_its_job_is_paused_or_unregistered_before_its_instant() {
    let rt = LocalRuntime::new();
    let jobs = vec![tick("paused"), tick("removed"), tick("kept")];
    let (store, s, at) = holding(&rt, jobs, 100);
    s.pause("paused").unwrap();
    s.unregister("removed").unwrap();
    rt.advance(Duration::from_secs(30));
    rt.block_on(s.stop(Duration::from_secs(1))).unwrap();
    let skipped = |job: &str, why: &str| {
        let rows = rows(&store, job);
        let last = rows.last().unwrap();
        assert_eq!(last.scheduled_at, at, "{job}: {rows:?}");
        assert_eq!(last.status, ExecutionStatus::Skipped, "{job}: {rows:?}");
        assert_eq!(last.error.as_deref(), Some(why), "{job}: {rows:?}");
        assert!(rows[..rows.len() - 1].iter().all(|r| r.status == ExecutionStatus::Succeeded));
    };
    skipped("paused", "job paused after its fire was claimed");
    skipped("removed", "job unregistered");
    let kept = rows(&store, "kept");
    assert_eq!(kept.len(), 5, "{kept:?}");
    assert!(kept.iter().all(|r| r.status == ExecutionStatus::Succeeded), "{kept:?}");
}

#[test]
fn a_stop_before_the_instant_of_fires_won_ahead_runs_them_first() {
    let rt = LocalRuntime::new();
    let jobs = (0..20).map(|i| tick(&format!("t{i:02}"))).collect();
    let (store, s, at) = holding(&rt, jobs, 300);
    rt.block_on(s.stop(Duration::from_secs(1))).unwrap();
    assert_eq!(rt.clock().now(), at, "stop waits for the fires it holds, no longer");
    for i in 0..20 {
        let rows = rows(&store, &format!("t{i:02}"));
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[1].scheduled_at, at);
        assert!(rows.iter().all(|r| r.status == ExecutionStatus::Succeeded), "{rows:?}");
        assert_eq!(lateness_ms(&rows), vec![0, 0]);
    }
}

#[test]
fn a_stop_whose_grace_ends_before_the_instant_of_held_fires_records_them_skipped() {
    let rt = LocalRuntime::new();
    let (store, s, at) = holding(&rt, vec![tick("t")], 300);
    let stopped_at = rt.clock().now();
    rt.block_on(s.stop(Duration::from_millis(100))).unwrap();
    assert_eq!(rt.clock().now(), stopped_at + chrono::Duration::milliseconds(100));
    let rows = rows(&store, "t");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1].scheduled_at, at);
    assert_eq!(rows[1].status, ExecutionStatus::Skipped);
    assert_eq!(rows[1].error.as_deref(), Some("scheduler stopping"));
}

#[test]
fn a_job_with_a_cluster_limit_is_claimed_at_its_instant() {
    let rt = LocalRuntime::new();
    let store = Arc::new(MemoryStore::unbounded());
    let limited = tick("limited").max_concurrent(1);
    let s = instance(&rt, slow(&rt, &store), Duration::from_millis(500), vec![limited, tick("t")]);
    rt.block_on(s.start()).unwrap();
    rt.advance(Duration::from_secs(40));
    rt.block_on(s.stop(Duration::from_secs(1))).unwrap();
    // Its claim counts the runs live at the instant, so it is made then.
    assert_eq!(lateness_ms(&rows(&store, "limited")), vec![300; 4]);
    assert_eq!(lateness_ms(&rows(&store, "t")), vec![0; 4]);
}

#[test]
fn a_job_registered_again_before_the_instant_of_its_held_fire_runs_it_once_as_defined_now() {
    let rt = LocalRuntime::new();
    let (store, s, at) = holding(&rt, vec![tick("t")], 100);
    // An update: the job goes and comes back, with a handler that fails.
    s.unregister("t").unwrap();
    let failing = JobConfig::new("t", |_ctx: JobContext| async { Err::<(), _>("new definition") })
        .schedule(Duration::from_secs(10));
    s.register(failing).unwrap();
    rt.advance(Duration::from_secs(15));
    rt.block_on(s.stop(Duration::from_secs(1))).unwrap();
    let rows = rows(&store, "t");
    let fires: Vec<DateTime<Utc>> = rows.iter().map(|r| r.scheduled_at).collect();
    let expect: Vec<DateTime<Utc>> =
        (-1..=1).map(|i| at + chrono::Duration::seconds(10 * i)).collect();
    assert_eq!(fires, expect, "{rows:?}");
    assert_eq!(rows[0].status, ExecutionStatus::Succeeded);
    assert!(rows[1..].iter().all(|r| r.status == ExecutionStatus::Failed), "{rows:?}");
    assert_eq!(lateness_ms(&rows), vec![0; 3]);
}

/// A claim ahead past any sense (`Duration::MAX`) is taken as the longest
/// one, a year: each fire is still claimed, held and run at its instant.
#[test]
fn a_huge_claim_ahead_still_runs_each_fire_at_its_instant() {
    let rt = LocalRuntime::new();
    let store = Arc::new(MemoryStore::unbounded());
    let s = instance(&rt, store.clone(), Duration::MAX, vec![tick("j")]);
    let s2 = s.clone();
    rt.block_on(async move { s2.start().await }).unwrap();
    rt.advance(Duration::from_secs(35));
    let s2 = s.clone();
    rt.block_on(async move { s2.stop(Duration::from_secs(5)).await }).unwrap();
    let (ran, held): (Vec<_>, Vec<_>) =
        rows(&store, "j").into_iter().partition(|r| r.status == ExecutionStatus::Succeeded);
    assert_eq!(lateness_ms(&ran), [0, 0, 0], "{ran:?}");
    // The next fire, won ahead, is after the stop's grace: skipped.
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].error.as_deref(), Some("scheduler stopping"));
}
