//! Several instances on one store with `claim_fires`: each scheduled fire
//! runs once between them; manual triggers and per-instance jobs run on
//! each; a failed claim skips the fire with a row that says why; a store
//! that cannot claim is refused at start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::StoreResult;
use mscribe_scheduler::sim::{FaultyStore, StoreFaults};
use mscribe_scheduler::{
    Clock, Error, ExecutionEvent, ExecutionRecord, ExecutionStatus, ExecutionStore, FireKind,
    HistoryQuery, JobConfig, JobContext, JobScheduler, LocalRuntime, MemoryStore, MisfirePolicy,
    PrunePolicy,
};

fn instance(rt: &LocalRuntime, store: Arc<dyn ExecutionStore>, id: &str) -> JobScheduler {
    let sched = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
        .store(store)
        .instance_id(id)
        .claim_fires(true)
        .build();
    for job in jobs() {
        sched.register(job).unwrap();
    }
    sched
}

/// `tick` every 10 s (instant), `slow` every 10 s taking 4 s, `local`
/// every 10 s on every instance.
fn jobs() -> Vec<JobConfig> {
    vec![
        JobConfig::new("tick", |_ctx: JobContext| async {}).schedule(Duration::from_secs(10)),
        JobConfig::new("slow", |ctx: JobContext| async move {
            ctx.sleep(Duration::from_secs(4)).await;
        })
        .schedule(Duration::from_secs(10)),
        JobConfig::new("local", |_ctx: JobContext| async {})
            .schedule(Duration::from_secs(10))
            .per_instance(true),
    ]
}

fn rows(store: &MemoryStore, job: &str) -> Vec<ExecutionRecord> {
    store.all().into_iter().filter(|r| r.job_id == job).collect()
}

/// How many rows each instance wrote for `job`.
fn per_instance(rows: &[ExecutionRecord]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in rows {
        *out.entry(r.instance_id.clone()).or_insert(0) += 1;
    }
    out
}

#[test]
fn three_instances_on_one_store_run_each_fire_once() {
    let rt = LocalRuntime::new();
    let store = Arc::new(MemoryStore::unbounded());
    let all: Vec<JobScheduler> =
        ["a", "b", "c"].iter().map(|id| instance(&rt, store.clone(), id)).collect();
    for s in &all {
        rt.block_on(s.start()).unwrap();
    }
    rt.advance(Duration::from_secs(3600));
    for s in &all {
        rt.block_on(s.stop(Duration::from_secs(10))).unwrap();
    }
    for job in ["tick", "slow"] {
        let rows = rows(&store, job);
        let mut fires: Vec<DateTime<Utc>> = rows.iter().map(|r| r.scheduled_at).collect();
        fires.sort();
        fires.dedup();
        assert_eq!(fires.len(), 360, "{job}: one row per fire of the hour");
        assert_eq!(rows.len(), 360, "{job}: no fire ran twice");
        assert!(rows.iter().all(|r| r.status == ExecutionStatus::Succeeded), "{job}");
    }
    let local = rows(&store, "local");
    assert_eq!(local.len(), 3 * 360, "a per-instance job runs on every instance");
    assert_eq!(per_instance(&local).values().collect::<Vec<_>>(), [&360, &360, &360]);
    // What the instances report agrees with the store.
    for s in &all {
        let info = s.jobs().into_iter().find(|j| j.id == "local").unwrap();
        assert_eq!(info.last_status, Some(ExecutionStatus::Succeeded));
    }
}

/// One row per nominal time of `job`, whatever its status.
fn one_row_per_fire(store: &MemoryStore, job: &str) -> Vec<DateTime<Utc>> {
    let rows = rows(store, job);
    let mut fires: Vec<DateTime<Utc>> = rows.iter().map(|r| r.scheduled_at).collect();
    fires.sort();
    fires.dedup();
    assert_eq!(rows.len(), fires.len(), "{job}: a fire with two rows: {rows:#?}");
    fires
}

#[test]
fn instances_started_apart_share_an_interval_on_the_epoch_grid() {
    let rt = LocalRuntime::new();
    let store = Arc::new(MemoryStore::unbounded());
    let a = instance(&rt, store.clone(), "a");
    rt.block_on(a.start()).unwrap();
    rt.advance(Duration::from_millis(1500));
    let b = instance(&rt, store.clone(), "b");
    rt.block_on(b.start()).unwrap();
    rt.advance(Duration::from_secs(600));
    let fires = one_row_per_fire(&store, "tick");
    assert!(fires.len() >= 60, "{}", fires.len());
    assert!(fires.iter().all(|t| t.timestamp() % 10 == 0 && t.timestamp_subsec_nanos() == 0));
    assert_eq!(
        a.job("tick").unwrap().schedule.as_deref(),
        Some("@every 10s from 1970-01-01T00:00:00Z")
    );
    // A per-instance interval keeps counting from its instance's start.
    let local = rows(&store, "local");
    assert!(local.iter().any(|r| r.scheduled_at.timestamp_subsec_millis() == 500), "{local:?}");
}

/// A 15 s job every 10 s under `Skip`: the instance that wins a fire
/// applies the overlap policy, so each fire has one row (run or skipped)
/// even while another instance is busy with the previous one.
#[test]
fn the_winner_of_a_fire_applies_the_overlap_policy() {
    let rt = LocalRuntime::new();
    let store = Arc::new(MemoryStore::unbounded());
    let long = || {
        JobConfig::new("long", |ctx: JobContext| async move {
            ctx.sleep(Duration::from_secs(15)).await;
        })
        .schedule(Duration::from_secs(10))
    };
    let all: Vec<JobScheduler> = ["a", "b"]
        .iter()
        .map(|id| {
            let s = instance(&rt, store.clone(), id);
            s.register(long()).unwrap();
            rt.block_on(s.start()).unwrap();
            s
        })
        .collect();
    rt.advance(Duration::from_secs(600));
    for s in &all {
        rt.block_on(s.stop(Duration::from_secs(30))).unwrap();
    }
    let fires = one_row_per_fire(&store, "long");
    assert!(fires.len() >= 59, "{}", fires.len());
}

/// Two instances start after an outage: the missed fires of a `Skip` job
/// are recorded once, and those of a `RunAll` job run once, between them.
#[test]
fn missed_fires_are_claimed_too() {
    let rt = LocalRuntime::new();
    let store = Arc::new(MemoryStore::unbounded());
    let t0 = rt.clock().now();
    let last = t0 - chrono::Duration::minutes(35);
    for (job, id) in [("skip-missed", 1), ("run-missed", 2)] {
        let ended = mscribe_scheduler::AttemptEnd {
            job_id: job.into(),
            execution_id: mscribe_scheduler::ExecutionId::from_u128(id),
            attempt: 1,
            scheduled_at: last,
            started_at: last,
            instance_id: "before".into(),
            status: ExecutionStatus::Succeeded,
            completed_at: last,
            duration: Duration::ZERO,
            error: None,
            error_kind: None,
            result: None,
            metrics: None,
            kind: mscribe_scheduler::FireKind::Schedule,
            fence: None,
            ends_run: true,
        };
        rt.block_on(store.write(&[ExecutionEvent::Finished(ended)])).unwrap();
    }
    let all: Vec<JobScheduler> = ["a", "b"]
        .iter()
        .map(|id| {
            let s = instance(&rt, store.clone(), id);
            let every = |job: &str| {
                JobConfig::new(job, |_ctx: JobContext| async {}).schedule("*/10 * * * *")
            };
            s.register(every("skip-missed").misfire(MisfirePolicy::skip())).unwrap();
            let run_all = MisfirePolicy::run_all(Duration::from_secs(3600), 10);
            s.register(every("run-missed").misfire(run_all)).unwrap();
            rt.block_on(s.start()).unwrap();
            s
        })
        .collect();
    rt.advance(Duration::from_secs(60));
    for s in &all {
        rt.block_on(s.stop(Duration::from_secs(10))).unwrap();
    }
    for job in ["skip-missed", "run-missed"] {
        let fires = one_row_per_fire(&store, job);
        assert!(fires.len() >= 4, "{job}: the last fire and three missed: {fires:?}");
    }
    let skipped = rows(&store, "skip-missed");
    assert!(skipped.iter().filter(|r| r.status == ExecutionStatus::Skipped).count() >= 3);
    let ran = rows(&store, "run-missed");
    assert!(ran.iter().filter(|r| r.status == ExecutionStatus::Succeeded).count() >= 4);
}

#[test]
fn manual_triggers_are_claimed_each_at_its_own_instant() {
    let rt = LocalRuntime::new();
    let store = Arc::new(MemoryStore::unbounded());
    let (a, b) = (instance(&rt, store.clone(), "a"), instance(&rt, store.clone(), "b"));
    rt.block_on(a.start()).unwrap();
    rt.block_on(b.start()).unwrap();
    // In the same millisecond: both run, each its own fire.
    a.trigger("tick").unwrap();
    b.trigger("tick").unwrap();
    rt.advance(Duration::from_secs(1));
    let rows = rows(&store, "tick");
    let manual: Vec<_> = rows.iter().filter(|r| r.kind == FireKind::Manual).collect();
    assert_eq!(manual.len(), 2, "{rows:#?}");
    assert_ne!(manual[0].scheduled_at, manual[1].scheduled_at, "{manual:#?}");
    assert!(manual.iter().all(|r| r.fence.is_some()), "claimed, with a lease: {manual:#?}");
    assert_eq!(per_instance(&rows), BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 1)]));
}

#[test]
fn a_failed_claim_skips_the_fire_and_says_why() {
    let rt = LocalRuntime::new();
    let clock: Arc<dyn Clock> = Arc::new(rt.clock());
    let faults = StoreFaults { error: 1.0, ..StoreFaults::default() };
    let store = Arc::new(FaultyStore::new(MemoryStore::unbounded(), faults, 1, clock));
    let a = instance(&rt, store.clone(), "a");
    rt.block_on(a.start()).unwrap();
    rt.advance(Duration::from_secs(10));
    // The store is back: the skip rows reach it, and the next fires run.
    store.set_faults(StoreFaults::default());
    rt.advance(Duration::from_secs(15));
    rt.block_on(a.stop(Duration::from_secs(10))).unwrap();
    let tick = rows(store.inner(), "tick");
    let statuses: Vec<_> = tick.iter().map(|r| (r.scheduled_at, r.status)).collect();
    let t0 = tick[0].scheduled_at;
    assert_eq!(
        statuses,
        [
            (t0, ExecutionStatus::Skipped),
            (t0 + chrono::Duration::seconds(10), ExecutionStatus::Succeeded),
        ]
    );
    let why = tick[0].error.as_deref().unwrap_or_default();
    assert!(why.contains("claim failed, not run") && why.contains("injected fault"), "{why}");
    assert_eq!(rows(store.inner(), "local").len(), 2, "per-instance fires need no claim");
}

/// A store that keeps rows but cannot claim (the trait's default).
#[derive(Debug)]
struct NoClaims(MemoryStore);

#[async_trait]
impl ExecutionStore for NoClaims {
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()> {
        self.0.write(events).await
    }

    async fn history(&self, q: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        self.0.history(q).await
    }

    async fn last_fire(&self, job_id: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.0.last_fire(job_id).await
    }

    async fn heartbeat(&self, instance_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.0.heartbeat(instance_id, now).await
    }

    async fn mark_abandoned(
        &self,
        own: &str,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        self.0.mark_abandoned(own, now, stale_after).await
    }

    async fn prune(&self, p: PrunePolicy) -> StoreResult<u64> {
        self.0.prune(p).await
    }
}

#[test]
fn a_store_that_cannot_claim_is_refused_at_start() {
    let rt = LocalRuntime::new();
    let store = Arc::new(NoClaims(MemoryStore::new()));
    let a = instance(&rt, store.clone(), "a");
    let err = rt.block_on(a.start()).unwrap_err();
    assert!(matches!(err, Error::ClaimsUnsupported(_)), "{err:?}");
    assert!(err.to_string().contains("NoClaims"), "{err}");
    let now = rt.clock().now();
    let e = rt.block_on(store.claim_fires("a", &[], now, Duration::from_secs(1))).unwrap_err();
    assert!(e.to_string().contains("cannot claim fires"), "{e}");
    // Without claims the same store runs the scheduler.
    let b =
        JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner())).store(store).build();
    rt.block_on(b.start()).unwrap();
}
