//! Manual triggers across instances: a trigger of a claimed job holds a
//! lease like a scheduled fire, so that it runs again on another instance,
//! with the same fire key, when the instance running it dies; two triggers
//! in one millisecond both run; a trigger at a chosen instant runs once in
//! the cluster.

mod support;

use std::sync::Arc;
use std::time::Duration;

use mscribe_scheduler::sim::StoreFaults;
use mscribe_scheduler::{
    Clock, ExecutionStatus, ExecutionStore, FireKind, JobScheduler, LocalRuntime, MemoryStore,
    OverlapPolicy, TriggerOutcome,
};
use support::cluster::{Log, cuttable, instance, slow_job};

/// A trigger-only [`slow_job`] that may run beside itself, on an
/// instance of its own.
fn instance_of(
    rt: &LocalRuntime,
    store: Arc<dyn ExecutionStore>,
    id: &str,
    log: &Log,
) -> JobScheduler {
    instance(rt, store, id, vec![slow_job(log, id).overlap(OverlapPolicy::Allow)])
}

fn starts(log: &Log) -> Vec<(String, String, u32)> {
    log.lock().unwrap().clone()
}

#[test]
fn a_trigger_whose_instance_dies_runs_again_on_another_instance_with_the_same_fire_key() {
    let rt = LocalRuntime::new();
    let shared = Arc::new(MemoryStore::unbounded());
    let cut = cuttable(&rt, &shared);
    let log: Log = Arc::default();
    let a = instance_of(&rt, cut.clone(), "a", &log);
    let b = instance_of(&rt, shared.clone(), "b", &log);
    rt.block_on(a.start()).unwrap();
    rt.block_on(b.start()).unwrap();
    let out = a.trigger("slow").unwrap();
    assert!(matches!(out, TriggerOutcome::Pending { .. }), "{out:?}");
    rt.advance(Duration::from_millis(10));
    assert_eq!(starts(&log).len(), 1, "{:?}", starts(&log));
    // A stops renewing (dead, or cut off): B takes the trigger over.
    cut.set_faults(StoreFaults { error: 1.0, ..StoreFaults::default() });
    rt.advance(Duration::from_secs(40));
    let got = starts(&log);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, got[1].0, "the same fire key: {got:?}");
    assert_eq!((got[0].1.as_str(), got[0].2), ("a", 1));
    assert_eq!((got[1].1.as_str(), got[1].2), ("b", 2));
    rt.advance(Duration::from_secs(20 * 60));
    let mut rows: Vec<_> = shared.all().into_iter().filter(|r| r.job_id == "slow").collect();
    rows.sort_by_key(|r| r.attempt);
    let got: Vec<(u32, ExecutionStatus, FireKind)> =
        rows.iter().map(|r| (r.attempt, r.status, r.kind)).collect();
    assert_eq!(
        got,
        vec![
            (1, ExecutionStatus::Abandoned, FireKind::Manual),
            (2, ExecutionStatus::Succeeded, FireKind::Manual),
        ],
        "{rows:#?}"
    );
}

#[test]
fn two_triggers_of_one_job_in_one_millisecond_on_two_instances_both_run() {
    let rt = LocalRuntime::new();
    let shared: Arc<dyn ExecutionStore> = Arc::new(MemoryStore::unbounded());
    let log: Log = Arc::default();
    let a = instance_of(&rt, shared.clone(), "a", &log);
    let b = instance_of(&rt, shared.clone(), "b", &log);
    rt.block_on(a.start()).unwrap();
    rt.block_on(b.start()).unwrap();
    for s in [&a, &b, &a] {
        assert!(matches!(s.trigger("slow").unwrap(), TriggerOutcome::Pending { .. }));
    }
    rt.advance(Duration::from_millis(10));
    let got = starts(&log);
    assert_eq!(got.len(), 3, "{got:?}");
    let keys: std::collections::BTreeSet<&str> = got.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(keys.len(), 3, "three fire keys: {got:?}");
}

#[test]
fn a_trigger_at_one_instant_runs_once_in_the_cluster() {
    let rt = LocalRuntime::new();
    let shared: Arc<dyn ExecutionStore> = Arc::new(MemoryStore::unbounded());
    let log: Log = Arc::default();
    let a = instance_of(&rt, shared.clone(), "a", &log);
    let b = instance_of(&rt, shared.clone(), "b", &log);
    rt.block_on(a.start()).unwrap();
    rt.block_on(b.start()).unwrap();
    let at = rt.clock().now() - chrono::TimeDelta::seconds(5);
    let first = a.trigger_at("slow", at).unwrap();
    let second = b.trigger_at("slow", at).unwrap();
    assert!(matches!(first, TriggerOutcome::Pending { .. }), "{first:?}");
    assert!(matches!(second, TriggerOutcome::Pending { .. }), "{second:?}");
    rt.advance(Duration::from_secs(60));
    let got = starts(&log);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].0.starts_with("slow@"), "{got:?}");
}

#[test]
fn a_trigger_without_claims_starts_at_once() {
    let rt = LocalRuntime::new();
    let log: Log = Arc::default();
    let sched = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
        .store(Arc::new(MemoryStore::unbounded()))
        .build();
    sched.register(slow_job(&log, "solo")).unwrap();
    rt.block_on(sched.start()).unwrap();
    assert!(matches!(sched.trigger("slow").unwrap(), TriggerOutcome::Started { .. }));
}
