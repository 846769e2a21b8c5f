//! Leases on claimed fires: an instance that stops renewing (dead or cut
//! off from the store) loses its fire to another instance, which runs it
//! again with the same fire key and the next attempt; the old owner's late
//! writes are refused by their stale fence; cluster-wide overlap and
//! `max_concurrent` hold across instances.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::executor::block_on;
use mscribe_scheduler::sim::StoreFaults;
use mscribe_scheduler::{
    AttemptStart, ClaimOutcome, Clock, ExecutionEvent, ExecutionId, ExecutionRecord,
    ExecutionStatus, ExecutionStore, FireClaim, FireKind, JobConfig, JobContext, LocalRuntime,
    MemoryStore, MisfirePolicy, OverlapPolicy, OverlapScope, StoreError,
};
use support::cluster::{Log, cuttable, instance, slow_job};

/// An hourly [`slow_job`]. Missed fires within 2 h run again.
fn slow(log: &Log, instance: &str) -> JobConfig {
    slow_job(log, instance)
        .schedule(Duration::from_secs(3600))
        .misfire(MisfirePolicy::run_all(Duration::from_secs(7200), 1))
}

fn rows(store: &MemoryStore, job: &str) -> Vec<ExecutionRecord> {
    let mut rows: Vec<ExecutionRecord> =
        store.all().into_iter().filter(|r| r.job_id == job).collect();
    rows.sort_by_key(|r| (r.scheduled_at, r.attempt));
    rows
}

#[test]
fn a_fire_whose_owner_stops_renewing_its_lease_is_taken_over_with_the_same_fire_key() {
    let rt = LocalRuntime::new();
    let shared = Arc::new(MemoryStore::unbounded());
    let cut = cuttable(&rt, &shared);
    let log: Log = Arc::default();
    let a = instance(&rt, cut.clone(), "a", vec![slow(&log, "a")]);
    rt.block_on(a.start()).unwrap();
    // A alone takes the first fire; then B joins.
    let first = rt.clock().now();
    rt.advance(Duration::from_secs(3600) - Duration::from_secs(first.timestamp() as u64 % 3600));
    rt.advance(Duration::from_millis(10));
    assert_eq!(log.lock().unwrap().len(), 1, "{:?}", log.lock().unwrap());
    let b = instance(&rt, shared.clone(), "b", vec![slow(&log, "b")]);
    rt.block_on(b.start()).unwrap();
    // A loses the store: it cannot renew, and stops its run once its lease
    // has run out; B takes the fire over after that.
    cut.set_faults(StoreFaults { error: 1.0, ..StoreFaults::default() });
    rt.advance(Duration::from_secs(40));
    let starts = log.lock().unwrap().clone();
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert_eq!(starts[0].0, starts[1].0, "the same fire key: {starts:?}");
    assert_eq!((starts[0].1.as_str(), starts[0].2), ("a", 1));
    assert_eq!((starts[1].1.as_str(), starts[1].2), ("b", 2));
    rt.advance(Duration::from_secs(20 * 60));
    // A comes back: its records of the fire carry the old fence and are
    // refused; the fire has one run, ended once.
    cut.set_faults(StoreFaults::default());
    rt.advance(Duration::from_secs(10));
    assert!(a.store_health().fenced >= 1, "{:?}", a.store_health());
    let fire = starts[0].0.clone();
    let rows: Vec<ExecutionRecord> = rows(&shared, "slow")
        .into_iter()
        .filter(|r| format!("slow@{}", r.scheduled_at.format("%Y-%m-%dT%H:%M:%S%.3fZ")) == fire)
        .collect();
    let ids: std::collections::BTreeSet<ExecutionId> =
        rows.iter().map(|r| r.execution_id).collect();
    assert_eq!(ids.len(), 1, "{rows:#?}");
    let got: Vec<(u32, ExecutionStatus, &str, Option<u64>)> =
        rows.iter().map(|r| (r.attempt, r.status, r.instance_id.as_str(), r.fence)).collect();
    assert_eq!(
        got,
        vec![
            (1, ExecutionStatus::Abandoned, "a", Some(1)),
            (2, ExecutionStatus::Succeeded, "b", Some(2)),
        ],
        "{rows:#?}"
    );
    assert!(rows[0].error.as_deref().unwrap().contains("took the fire over"), "{rows:#?}");
}

#[test]
fn an_event_with_a_stale_fence_is_refused_and_the_rest_of_the_batch_written() {
    let store = MemoryStore::unbounded();
    let at: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let claim = FireClaim {
        job_id: "j".into(),
        scheduled_at: at,
        execution_id: ExecutionId::from_u128(7),
        max_running: None,
        kind: FireKind::Schedule,
    };
    let lease = Duration::from_secs(10);
    let won = block_on(store.claim_fires("a", std::slice::from_ref(&claim), at, lease)).unwrap();
    assert_eq!(won, vec![ClaimOutcome::Won { fence: 1 }]);
    assert_eq!(
        block_on(store.claim_fires("b", &[claim], at, lease)).unwrap(),
        vec![ClaimOutcome::Taken]
    );
    let later = at + chrono::Duration::seconds(11);
    let expired = block_on(store.expired_leases(later, 10)).unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!((expired[0].owner.as_str(), expired[0].fence), ("a", 1));
    let new_id = ExecutionId::from_u128(8);
    let taken = block_on(store.retake_fire("b", &expired[0], new_id, later, lease, true)).unwrap();
    assert_eq!(taken.map(|t| (t.fence, t.next_attempt)), Some((2, 1)));
    // A second taker finds it taken.
    assert_eq!(
        block_on(store.retake_fire("c", &expired[0], new_id, later, lease, true)).unwrap(),
        None
    );
    let start = |fence, id| {
        ExecutionEvent::Started(AttemptStart {
            job_id: "j".into(),
            execution_id: ExecutionId::from_u128(id),
            attempt: 1,
            scheduled_at: at,
            started_at: later,
            instance_id: "x".into(),
            kind: FireKind::Schedule,
            fence: Some(fence),
        })
    };
    let err = block_on(store.write(&[start(1, 7), start(2, 8)])).unwrap_err();
    assert!(matches!(err, StoreError::Fenced { refused: 1, .. }), "{err}");
    assert!(err.to_string().contains("j at 2026-01-01"), "{err}");
    let all = store.all();
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].execution_id, new_id);
    // The old owner cannot renew either.
    let stale = mscribe_scheduler::FireLease { job_id: "j".into(), scheduled_at: at, fence: 1 };
    assert_eq!(block_on(store.renew_leases("a", &[stale], later, lease)).unwrap(), vec![false]);
}

/// Every minute, a run of 90 s: with the overlap held across the cluster,
/// the fire that finds the job running on the other instance is skipped
/// once, by whichever instance claimed it.
#[test]
fn cluster_overlap_skips_a_fire_while_another_instance_runs_the_job() {
    let rt = LocalRuntime::new();
    let shared = Arc::new(MemoryStore::unbounded());
    let job = || {
        JobConfig::new("long", |ctx: JobContext| async move {
            ctx.sleep(Duration::from_secs(90)).await;
        })
        .schedule(Duration::from_secs(60))
        .overlap(OverlapPolicy::Skip)
        .overlap_scope(OverlapScope::Cluster)
    };
    let a = instance(&rt, shared.clone(), "a", vec![job()]);
    let b = instance(&rt, shared.clone(), "b", vec![job()]);
    rt.block_on(a.start()).unwrap();
    rt.block_on(b.start()).unwrap();
    rt.advance(Duration::from_secs(10 * 60));
    let rows = rows(&shared, "long");
    let mut by_fire = std::collections::BTreeMap::<DateTime<Utc>, Vec<ExecutionStatus>>::new();
    for r in &rows {
        by_fire.entry(r.scheduled_at).or_default().push(r.status);
    }
    assert!(by_fire.len() >= 9, "{by_fire:#?}");
    for (at, statuses) in &by_fire {
        assert_eq!(statuses.len(), 1, "one row per fire at {at}: {by_fire:#?}");
    }
    // Runs alternate with skips: never two runs at once across the two.
    let runs: Vec<&ExecutionRecord> =
        rows.iter().filter(|r| r.status != ExecutionStatus::Skipped).collect();
    for w in runs.windows(2) {
        let end = w[0].completed_at.unwrap_or(w[0].started_at + chrono::Duration::seconds(90));
        assert!(w[1].started_at >= end, "overlap: {:#?}", (w[0], w[1]));
    }
    let skip = rows.iter().find(|r| r.status == ExecutionStatus::Skipped).expect("a skip");
    assert!(skip.error.as_deref().unwrap().contains("live leases across the cluster"), "{skip:#?}");
}

/// `max_concurrent = 2` with overlap allowed: at most two runs at once
/// across the cluster.
#[test]
fn max_concurrent_limits_runs_across_the_cluster() {
    let rt = LocalRuntime::new();
    let shared = Arc::new(MemoryStore::unbounded());
    let job = || {
        JobConfig::new("wide", |ctx: JobContext| async move {
            ctx.sleep(Duration::from_secs(150)).await;
        })
        .schedule(Duration::from_secs(60))
        .overlap(OverlapPolicy::Allow)
        .max_concurrent(2)
    };
    let a = instance(&rt, shared.clone(), "a", vec![job()]);
    let b = instance(&rt, shared.clone(), "b", vec![job()]);
    rt.block_on(a.start()).unwrap();
    rt.block_on(b.start()).unwrap();
    rt.advance(Duration::from_secs(10 * 60));
    let rows = rows(&shared, "wide");
    let runs: Vec<&ExecutionRecord> =
        rows.iter().filter(|r| r.status != ExecutionStatus::Skipped).collect();
    for r in &runs {
        let at = r.started_at;
        let live = runs
            .iter()
            .filter(|o| o.started_at <= at && o.completed_at.is_none_or(|c| c > at))
            .count();
        assert!(live <= 2, "{live} runs at {at}: {rows:#?}");
    }
    assert!(rows.iter().any(|r| r.status == ExecutionStatus::Skipped), "{rows:#?}");
}

#[test]
fn an_owner_cut_off_from_the_store_stops_its_run_before_its_lease_runs_out() {
    let rt = LocalRuntime::new();
    let shared = Arc::new(MemoryStore::unbounded());
    let cut = cuttable(&rt, &shared);
    // When the run's future was dropped (stopped), by the clock.
    let stopped: Arc<Mutex<Option<DateTime<Utc>>>> = Arc::default();
    struct OnDrop(Arc<Mutex<Option<DateTime<Utc>>>>, LocalRuntime);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Some(self.1.clock().now());
        }
    }
    let (flag, rt2) = (stopped.clone(), rt.clone());
    let job = JobConfig::new("long", move |ctx: JobContext| {
        let guard = OnDrop(flag.clone(), rt2.clone());
        async move {
            let _guard = guard;
            ctx.sleep(Duration::from_secs(3600)).await;
        }
    })
    .schedule(Duration::from_secs(3600));
    let a = instance(&rt, cut.clone(), "a", vec![job]);
    rt.block_on(a.start()).unwrap();
    let first = rt.clock().now();
    rt.advance(Duration::from_secs(3600) - Duration::from_secs(first.timestamp() as u64 % 3600));
    rt.advance(Duration::from_millis(10));
    let lease_from = rt.clock().now();
    cut.set_faults(StoreFaults { error: 1.0, ..StoreFaults::default() });
    rt.advance(Duration::from_secs(60));
    let at = stopped.lock().unwrap().expect("the run was never stopped while cut off");
    // The lease (15 s) runs out at lease_from + 15 s: the run stops before.
    assert!(
        at <= lease_from + chrono::TimeDelta::seconds(15),
        "stopped at {at}, lease from {lease_from}"
    );
}

/// The shortest lease the builder takes still renews in time: a lone,
/// healthy instance never takes its own fire over.
#[test]
fn the_shortest_lease_is_renewed_in_time_and_never_runs_a_fire_twice() {
    for lease in [Duration::ZERO, Duration::from_millis(1), Duration::from_millis(2)] {
        let rt = LocalRuntime::new();
        let store = Arc::new(MemoryStore::unbounded());
        let job = JobConfig::new("slow", |ctx: JobContext| async move {
            ctx.sleep(Duration::from_secs(3)).await;
        });
        let s =
            mscribe_scheduler::JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
                .store(store.clone())
                .claim_fires(true)
                .lease(lease)
                .build();
        s.register(job).unwrap();
        rt.block_on(s.start()).unwrap();
        s.trigger("slow").unwrap();
        rt.advance(Duration::from_secs(5));
        rt.block_on(s.stop(Duration::from_secs(5))).unwrap();
        let rows = rows(&store, "slow");
        assert_eq!(rows.len(), 1, "lease {lease:?}: {rows:?}");
        assert_eq!(rows[0].status, ExecutionStatus::Succeeded, "lease {lease:?}: {rows:?}");
    }
}
