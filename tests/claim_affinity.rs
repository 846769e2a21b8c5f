//! Claim affinity across instances on one store: each job's fires are
//! claimed at once by one preferred live instance and spread over all of
//! them; a fire whose preferred instance is gone runs after the standby
//! delay when claims are made at the instant, on time when they are made
//! ahead of it, and the job's next fires on time again, each once.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mscribe_scheduler::sim::StoreFaults;
use mscribe_scheduler::{
    Clock, ExecutionRecord, ExecutionStore, JobConfig, JobContext, JobScheduler, LocalRuntime,
    MemoryStore,
};
use support::cluster::cuttable;

/// `n` instant jobs every 10 s.
fn jobs(n: usize) -> Vec<JobConfig> {
    (0..n)
        .map(|i| {
            JobConfig::new(format!("job-{i:02}"), |_ctx: JobContext| async {})
                .schedule(Duration::from_secs(10))
        })
        .collect()
}

/// Instance `id` with the 30 jobs, claiming `ahead` of each fire.
fn instance_ahead(
    rt: &LocalRuntime,
    store: Arc<dyn ExecutionStore>,
    id: &str,
    ahead: Duration,
) -> JobScheduler {
    let s = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
        .store(store)
        .instance_id(id)
        .claim_fires(true)
        .claim_ahead(ahead)
        .build();
    for job in jobs(30) {
        s.register(job).unwrap();
    }
    s
}

/// Instance `id` with the 30 jobs and the default settings.
fn instance(rt: &LocalRuntime, store: Arc<dyn ExecutionStore>, id: &str) -> JobScheduler {
    instance_ahead(rt, store, id, mscribe_scheduler::DEFAULT_CLAIM_AHEAD)
}

/// Every row of the store, by (job, nominal time); panics on a fire with
/// two rows.
fn by_fire(store: &MemoryStore) -> BTreeMap<(String, DateTime<Utc>), ExecutionRecord> {
    let mut out = BTreeMap::new();
    for r in store.all() {
        let key = (r.job_id.clone(), r.scheduled_at);
        if let Some(old) = out.insert(key, r) {
            panic!("a fire with two rows: {old:?}");
        }
    }
    out
}

fn lateness(r: &ExecutionRecord) -> chrono::TimeDelta {
    r.started_at - r.scheduled_at
}

#[test]
fn each_job_is_claimed_at_once_by_one_preferred_instance_and_the_jobs_spread_over_all() {
    let rt = LocalRuntime::new();
    let store = Arc::new(MemoryStore::unbounded());
    let all: Vec<JobScheduler> =
        ["a", "b", "c"].iter().map(|id| instance(&rt, store.clone(), id)).collect();
    for s in &all {
        rt.block_on(s.start()).unwrap();
    }
    let settled = rt.clock().now() + chrono::Duration::seconds(20);
    rt.advance(Duration::from_secs(300));
    for s in &all {
        rt.block_on(s.stop(Duration::from_secs(10))).unwrap();
    }
    let rows = by_fire(&store);
    let mut owners: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for ((job, at), r) in &rows {
        assert_eq!(lateness(r), chrono::TimeDelta::zero(), "{job} at {at}: {r:?}");
        if *at >= settled {
            owners.entry(job).or_default().insert(&r.instance_id);
        }
    }
    assert_eq!(owners.len(), 30);
    // Once every instance has heard of the others, a job stays on one.
    for (job, on) in &owners {
        assert_eq!(on.len(), 1, "{job} ran on {on:?}");
    }
    let used: BTreeSet<&str> = owners.values().flatten().copied().collect();
    assert_eq!(used, BTreeSet::from(["a", "b", "c"]), "the jobs spread over every instance");
}

/// Cuts c, the preferred instance of some jobs, from the store while its
/// heartbeat is fresh: each of its jobs' fires after the cut has one row,
/// none from c. Answers the lateness of each such job's fires after the cut.
fn lateness_after_the_preferred_instance_is_cut(ahead: Duration) -> BTreeMap<String, Vec<i64>> {
    let rt = LocalRuntime::new();
    let shared = Arc::new(MemoryStore::unbounded());
    let cut = cuttable(&rt, &shared);
    let a = instance_ahead(&rt, shared.clone(), "a", ahead);
    let b = instance_ahead(&rt, shared.clone(), "b", ahead);
    let c = instance_ahead(&rt, cut.clone(), "c", ahead);
    for s in [&a, &b, &c] {
        rt.block_on(s.start()).unwrap();
    }
    rt.advance(Duration::from_secs(45));
    // c's link to the database goes while its heartbeat is still fresh.
    let cut_at = rt.clock().now();
    let on_c: BTreeSet<String> = by_fire(&shared)
        .into_iter()
        .filter(|((_, at), r)| {
            *at >= cut_at - chrono::Duration::seconds(10) && &*r.instance_id == "c"
        })
        .map(|((job, _), _)| job)
        .collect();
    assert!(!on_c.is_empty(), "c ran none of the jobs");
    cut.set_faults(StoreFaults { error: 1.0, ..StoreFaults::default() });
    rt.advance(Duration::from_secs(60));
    let end = rt.clock().now();
    for s in [&a, &b, &c] {
        rt.block_on(s.stop(Duration::from_secs(1))).unwrap();
    }
    let rows = by_fire(&shared);
    // Every fire of every job has its row, c's jobs' included.
    for job in jobs(30) {
        let fires = rows.keys().filter(|(j, at)| *j == job.id() && *at < end).count();
        assert!(fires >= 10, "{}: {fires} rows", job.id());
    }
    let mut out = BTreeMap::new();
    for job in on_c {
        let after: Vec<&ExecutionRecord> =
            rows.iter().filter(|((j, at), _)| *j == job && *at > cut_at).map(|(_, r)| r).collect();
        assert!(after.iter().all(|r| &*r.instance_id != "c"), "{job}: {after:?}");
        assert_eq!(after.len(), 6, "{job}: {after:?}");
        out.insert(job, after.iter().map(|r| lateness(r).num_milliseconds()).collect());
    }
    out
}

#[test]
fn a_fire_whose_preferred_instance_is_gone_runs_after_the_standby_delay_then_on_time() {
    for (job, late) in lateness_after_the_preferred_instance_is_cut(Duration::ZERO) {
        // The first fire waits for the standby claims; the instance that won
        // it claims the job at once from then on.
        assert_eq!(late[0], 250, "{job}: {late:?}");
        assert!(late[1..].iter().all(|&ms| ms == 0), "{job}: {late:?}");
    }
}

#[test]
fn a_fire_claimed_ahead_whose_preferred_instance_is_gone_runs_on_time() {
    // The standby claims go out 250 ms after the claims made 500 ms ahead:
    // before the instant.
    for (job, late) in lateness_after_the_preferred_instance_is_cut(Duration::from_millis(500)) {
        assert!(late.iter().all(|&ms| ms == 0), "{job}: {late:?}");
    }
}

#[test]
fn an_instance_that_stops_drops_its_standby_claims_and_its_jobs_move_to_the_others() {
    let rt = LocalRuntime::new();
    let store = Arc::new(MemoryStore::unbounded());
    // Claims at the instant: the standby claims wait after it.
    let a = instance_ahead(&rt, store.clone(), "a", Duration::ZERO);
    let b = instance_ahead(&rt, store.clone(), "b", Duration::ZERO);
    for s in [&a, &b] {
        rt.block_on(s.start()).unwrap();
    }
    rt.advance(Duration::from_secs(30));
    // Just after a fire instant, each instance's standby claims of the
    // other's jobs are waiting.
    let now = rt.clock().now();
    let next = 10_000 - now.timestamp_millis().rem_euclid(10_000);
    rt.advance(Duration::from_millis(next as u64 + 100));
    let stopped_at = rt.clock().now();
    rt.block_on(a.stop(Duration::from_secs(1))).unwrap();
    assert_eq!(rt.clock().now(), stopped_at, "stop waited for the standby delay");
    rt.advance(Duration::from_secs(40));
    rt.block_on(b.stop(Duration::from_secs(1))).unwrap();
    let rows = by_fire(&store);
    assert!(rows.values().all(|r| &*r.instance_id != "a" || r.scheduled_at < stopped_at));
    let mut firsts = BTreeMap::new();
    for ((job, at), r) in &rows {
        if *at > stopped_at {
            firsts.entry(job.clone()).or_insert_with(|| lateness(r).num_milliseconds());
        }
    }
    assert_eq!(firsts.len(), 30, "every job ran after a stopped");
    let moved = firsts.values().filter(|&&ms| ms == 250).count();
    assert!(moved > 0 && firsts.values().all(|&ms| ms == 0 || ms == 250), "{firsts:?}");
}
