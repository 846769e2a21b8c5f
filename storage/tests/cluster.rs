//! The engine's lease scenarios (`tests/leases.rs` at the workspace root)
//! on the SQL stores: two schedulers on one SQLite file, or one Postgres
//! database, each with `claim_fires`, on one virtual clock. A take-over
//! after the owner loses the store, cluster-wide overlap, and
//! `max_concurrent` across the instances.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::{
    ClaimOutcome, Clock, ExecutionEvent, ExecutionId, ExecutionRecord, ExecutionStatus,
    ExecutionStore, ExpiredLease, FireClaim, FireKind, FireLease, HistoryQuery, JobConfig,
    JobContext, JobScheduler, LocalRuntime, MisfirePolicy, OverlapPolicy, OverlapScope,
    PrunePolicy, RetakenFire, StoreError, StoreResult, external,
};

use common::PgTestDb;
use mscribe_storage::{PostgresStore, SqliteStore};

/// A store that an instance can lose: every call fails as unavailable
/// while `down` is set. Every call is [`external`]: the virtual clock waits
/// for the database (the SQLite store marks its own calls so; the Postgres
/// store's run on tokio beside the clock's runtime).
#[derive(Debug)]
struct Cut {
    inner: Arc<dyn ExecutionStore>,
    down: AtomicBool,
}

impl Cut {
    fn new(inner: Arc<dyn ExecutionStore>) -> Arc<Cut> {
        Arc::new(Cut { inner, down: AtomicBool::new(false) })
    }

    fn check(&self) -> StoreResult<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable { message: "cut off".to_owned(), source: None });
        }
        Ok(())
    }
}

#[async_trait]
impl ExecutionStore for Cut {
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()> {
        self.check()?;
        external(self.inner.write(events)).await
    }

    async fn history(&self, q: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        self.check()?;
        external(self.inner.history(q)).await
    }

    async fn last_fire(&self, job_id: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.check()?;
        external(self.inner.last_fire(job_id)).await
    }

    async fn last_scheduled_fires(
        &self,
        job_ids: &[String],
    ) -> StoreResult<HashMap<String, DateTime<Utc>>> {
        self.check()?;
        external(self.inner.last_scheduled_fires(job_ids)).await
    }

    async fn heartbeat(&self, instance_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.check()?;
        external(self.inner.heartbeat(instance_id, now)).await
    }

    async fn mark_abandoned(
        &self,
        own: &str,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        self.check()?;
        external(self.inner.mark_abandoned(own, now, stale_after)).await
    }

    async fn prune(&self, policy: PrunePolicy) -> StoreResult<u64> {
        self.check()?;
        external(self.inner.prune(policy)).await
    }

    fn supports_claims(&self) -> bool {
        true
    }

    async fn claim_fires(
        &self,
        instance_id: &str,
        fires: &[FireClaim],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimOutcome>> {
        self.check()?;
        external(self.inner.claim_fires(instance_id, fires, now, lease)).await
    }

    async fn renew_leases(
        &self,
        instance_id: &str,
        leases: &[FireLease],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Vec<bool>> {
        self.check()?;
        external(self.inner.renew_leases(instance_id, leases, now, lease)).await
    }

    async fn expired_leases(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<ExpiredLease>> {
        self.check()?;
        external(self.inner.expired_leases(now, limit)).await
    }

    async fn retake_fire(
        &self,
        instance_id: &str,
        expired: &ExpiredLease,
        new_execution_id: ExecutionId,
        now: DateTime<Utc>,
        lease: Duration,
        rerun: bool,
    ) -> StoreResult<Option<RetakenFire>> {
        self.check()?;
        external(self.inner.retake_fire(instance_id, expired, new_execution_id, now, lease, rerun))
            .await
    }

    async fn recorded_fires(
        &self,
        job_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        self.check()?;
        external(self.inner.recorded_fires(job_id, from, to)).await
    }
}

type Log = Arc<Mutex<Vec<(String, String, u32)>>>;

fn instance(
    rt: &LocalRuntime,
    store: Arc<dyn ExecutionStore>,
    id: &str,
    jobs: Vec<JobConfig>,
) -> JobScheduler {
    let sched = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
        .store(store)
        .instance_id(id)
        .claim_fires(true)
        .lease(Duration::from_secs(15))
        .build();
    for job in jobs {
        sched.register(job).unwrap();
    }
    sched
}

/// An hourly job whose run takes 20 minutes; each start logs its fire key,
/// instance and attempt.
fn slow(log: &Log, instance: &str) -> JobConfig {
    let log = log.clone();
    let me = instance.to_owned();
    JobConfig::new("slow", move |ctx: JobContext| {
        let log = log.clone();
        let me = me.clone();
        async move {
            log.lock().unwrap().push((ctx.fire_key().to_string(), me, ctx.attempt));
            ctx.sleep(Duration::from_secs(20 * 60)).await;
        }
    })
    .schedule(Duration::from_secs(3600))
    .misfire(MisfirePolicy::run_all(Duration::from_secs(7200), 1))
}

fn rows(rt: &LocalRuntime, store: &dyn ExecutionStore, job: &str) -> Vec<ExecutionRecord> {
    let mut rows = rt.block_on(store.history(&HistoryQuery::new(job, 10_000))).unwrap();
    rows.sort_by_key(|r| (r.scheduled_at, r.attempt));
    rows
}

/// Instance `a` runs an hourly fire, then loses the store: it cannot renew
/// its lease and stops the run when the lease runs out; `b` takes the fire
/// over with the next attempt and the same fire key. When `a` comes back,
/// its late records carry the old fence and are refused.
fn take_over(shared: Arc<dyn ExecutionStore>) {
    let rt = LocalRuntime::new();
    let cut = Cut::new(shared.clone());
    let log: Log = Arc::default();
    let a = instance(&rt, cut.clone(), "a", vec![slow(&log, "a")]);
    rt.block_on(a.start()).unwrap();
    let first = rt.clock().now();
    rt.advance(Duration::from_secs(3600) - Duration::from_secs(first.timestamp() as u64 % 3600));
    rt.advance(Duration::from_millis(10));
    assert_eq!(log.lock().unwrap().len(), 1, "{:?}", log.lock().unwrap());
    let b = instance(&rt, shared.clone(), "b", vec![slow(&log, "b")]);
    rt.block_on(b.start()).unwrap();
    cut.down.store(true, Ordering::SeqCst);
    rt.advance(Duration::from_secs(40));
    let starts = log.lock().unwrap().clone();
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert_eq!(starts[0].0, starts[1].0, "the same fire key: {starts:?}");
    assert_eq!((starts[0].1.as_str(), starts[0].2), ("a", 1));
    assert_eq!((starts[1].1.as_str(), starts[1].2), ("b", 2));
    rt.advance(Duration::from_secs(20 * 60));
    cut.down.store(false, Ordering::SeqCst);
    rt.advance(Duration::from_secs(10));
    assert!(a.store_health().fenced >= 1, "{:?}", a.store_health());
    let fire = starts[0].0.clone();
    let rows: Vec<ExecutionRecord> = rows(&rt, &*shared, "slow")
        .into_iter()
        .filter(|r| format!("slow@{}", r.scheduled_at.format("%Y-%m-%dT%H:%M:%S%.3fZ")) == fire)
        .collect();
    let ids: std::collections::BTreeSet<ExecutionId> =
        rows.iter().map(|r| r.execution_id).collect();
    assert_eq!(ids.len(), 1, "{rows:#?}");
    let got: Vec<(u32, ExecutionStatus, &str, Option<u64>, FireKind)> = rows
        .iter()
        .map(|r| (r.attempt, r.status, r.instance_id.as_str(), r.fence, r.kind))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, ExecutionStatus::Abandoned, "a", Some(1), FireKind::Schedule),
            (2, ExecutionStatus::Succeeded, "b", Some(2), FireKind::Schedule),
        ],
        "{rows:#?}"
    );
    assert!(rows[0].error.as_deref().unwrap().contains("took the fire over"), "{rows:#?}");
    rt.block_on(a.stop(Duration::from_secs(5))).unwrap();
    rt.block_on(b.stop(Duration::from_secs(5))).unwrap();
}

/// Every minute, a run of 90 s, its overlap held across the cluster: runs
/// alternate with skips, one row per fire, never two runs at once.
fn cluster_overlap(shared: Arc<dyn ExecutionStore>) {
    let rt = LocalRuntime::new();
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
    let rows = rows(&rt, &*shared, "long");
    let mut by_fire = std::collections::BTreeMap::<DateTime<Utc>, usize>::new();
    for r in &rows {
        *by_fire.entry(r.scheduled_at).or_default() += 1;
    }
    assert!(by_fire.len() >= 9, "{rows:#?}");
    assert!(by_fire.values().all(|n| *n == 1), "one row per fire: {rows:#?}");
    let runs: Vec<&ExecutionRecord> =
        rows.iter().filter(|r| r.status != ExecutionStatus::Skipped).collect();
    for w in runs.windows(2) {
        let end = w[0].completed_at.unwrap_or(w[0].started_at + chrono::Duration::seconds(90));
        assert!(w[1].started_at >= end, "overlap: {:#?}", (w[0], w[1]));
    }
    let skip = rows.iter().find(|r| r.status == ExecutionStatus::Skipped).expect("a skip");
    assert!(skip.error.as_deref().unwrap().contains("live leases across the cluster"), "{skip:#?}");
    assert!(rows.iter().all(|r| r.fence == Some(1)), "{rows:#?}");
    rt.block_on(a.stop(Duration::from_secs(5))).unwrap();
    rt.block_on(b.stop(Duration::from_secs(5))).unwrap();
}

/// `max_concurrent = 2` with overlap allowed: at most two runs at once
/// across the cluster.
fn max_concurrent(shared: Arc<dyn ExecutionStore>) {
    let rt = LocalRuntime::new();
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
    let rows = rows(&rt, &*shared, "wide");
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
    rt.block_on(a.stop(Duration::from_secs(5))).unwrap();
    rt.block_on(b.stop(Duration::from_secs(5))).unwrap();
}

/// One SQLite file; each scheduler through a store of its own, as two
/// processes would.
fn on_sqlite(case: fn(Arc<dyn ExecutionStore>)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.db");
    let store = futures::executor::block_on(SqliteStore::open(&path)).unwrap();
    case(Cut::new(Arc::new(store)));
}

/// One Postgres database; the schedulers run on the virtual clock, the
/// pool's I/O on a tokio runtime beside it.
fn on_postgres(case: fn(Arc<dyn ExecutionStore>)) {
    let io = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let io = io.unwrap();
    let db = io.block_on(PgTestDb::create());
    let store = io.block_on(PostgresStore::connect_with(db.store_options())).unwrap();
    let _enter = io.enter();
    case(Cut::new(Arc::new(store)));
}

#[test]
fn sqlite_take_over_with_the_same_fire_key() {
    on_sqlite(take_over);
}

#[test]
fn sqlite_cluster_overlap() {
    on_sqlite(cluster_overlap);
}

#[test]
fn sqlite_max_concurrent_across_the_cluster() {
    on_sqlite(max_concurrent);
}

#[test]
fn postgres_take_over_with_the_same_fire_key() {
    on_postgres(take_over);
}

#[test]
fn postgres_cluster_overlap() {
    on_postgres(cluster_overlap);
}

#[test]
fn postgres_max_concurrent_across_the_cluster() {
    on_postgres(max_concurrent);
}
