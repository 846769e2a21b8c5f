//! The health check's tests: the checker's cache and single flight, and
//! each probe.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::{Clock, ExecutionStatus, HistoryQuery, JobScheduler, Spawner};

use super::*;
use crate::probe::ScriptedProbe;
use crate::probe::{HealthStatus, Probe, ProbeReport};
use mscribe_scheduler::LocalRuntime;

#[derive(Debug)]
struct Counting {
    runs: Arc<AtomicU64>,
    clock: Arc<dyn Clock>,
    delay: Duration,
}

#[async_trait]
impl Probe for Counting {
    fn name(&self) -> &str {
        "database"
    }
    async fn check(&self) -> ProbeReport {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let until = self.clock.now() + chrono::Duration::from_std(self.delay).unwrap();
        self.clock.sleep_until(until).await;
        ProbeReport::healthy(self.delay)
    }
}

#[test]
fn concurrent_requests_share_one_refresh_per_ttl() {
    let rt = LocalRuntime::new();
    let clock: Arc<dyn Clock> = Arc::new(rt.clock());
    let runs = Arc::new(AtomicU64::new(0));
    let probe: Arc<dyn Probe> = Arc::new(Counting {
        runs: runs.clone(),
        clock: clock.clone(),
        delay: Duration::from_millis(100),
    });
    let checker = HealthChecker::new(vec![probe], clock.clone(), HealthSettings::default());
    // 100 concurrent requests while the probe takes 100 ms: one probe run.
    let all = futures::future::join_all((0..100).map(|_| checker.check()));
    let snaps = rt.block_on(all);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(snaps.iter().all(|s| Arc::ptr_eq(s, &snaps[0])));
    // Within the TTL: still one.
    rt.advance(Duration::from_millis(1800));
    rt.block_on(futures::future::join_all((0..50).map(|_| checker.check())));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // At the TTL: exactly one more, however many ask.
    rt.advance(Duration::from_millis(200));
    rt.block_on(futures::future::join_all((0..50).map(|_| checker.check())));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(checker.refreshes(), 2);
    // A forced refresh joins one under way.
    rt.block_on(futures::future::join(checker.refresh(), checker.check()));
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[test]
fn hooks_see_every_fresh_result_and_bodies_hide_messages() {
    let rt = LocalRuntime::new();
    let clock: Arc<dyn Clock> = Arc::new(rt.clock());
    let db: Arc<dyn Probe> = Arc::new(ScriptedProbe::new(
        "database",
        true,
        ProbeReport::unhealthy(Duration::from_millis(3), "db.internal:5432 refused"),
    ));
    let seen = Arc::new(AtomicU64::new(0));
    let s2 = seen.clone();
    let checker = HealthChecker::with_hooks(
        vec![db],
        clock,
        HealthSettings::default(),
        vec![Box::new(move |_| {
            s2.fetch_add(1, Ordering::SeqCst);
        })],
    );
    let snap = rt.block_on(checker.check());
    assert_eq!(snap.status, HealthStatus::Unhealthy);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    let anon = snap.body(false).to_string();
    assert!(!anon.contains("db.internal"), "{anon}");
    assert!(snap.body(true).to_string().contains("db.internal:5432 refused"));
}

#[test]
fn scheduler_probe_sees_phase_a_stalled_driver_and_a_backlogged_store() {
    use futures::future::BoxFuture;
    use mscribe_scheduler::FnSpawner;
    use mscribe_scheduler::{JobConfig, JobContext, VirtualClock};
    // A spawner that never polls: the driver and the store writer stall.
    let parked: Arc<Mutex<Vec<BoxFuture<'static, ()>>>> = Arc::default();
    let p2 = parked.clone();
    let spawner = FnSpawner(move |f| p2.lock().unwrap().push(f));
    let clock = VirtualClock::at_epoch_2026();
    let scheduler = JobScheduler::builder(Arc::new(clock.clone()), Arc::new(spawner))
        .buffer_capacity(4)
        .build();
    scheduler
        .register(JobConfig::new("j", |_ctx: JobContext| async {}).schedule("* * * * *"))
        .unwrap();
    let probe = SchedulerProbe::new(scheduler.clone(), Duration::from_secs(60));
    let check = || futures::executor::block_on(probe.check());
    let r = check();
    assert_eq!(r.status, HealthStatus::Unhealthy);
    assert_eq!(r.message.as_deref(), Some("scheduler is created"));
    futures::executor::block_on(scheduler.start()).unwrap();
    assert_eq!(check().status, HealthStatus::Healthy);
    // The first fire is due at 00:01; two minutes later nothing ran it.
    clock.advance(Duration::from_secs(180));
    let r = check();
    assert_eq!(r.status, HealthStatus::Degraded);
    assert!(r.message.unwrap().contains("behind its earliest fire"));
    // A run is parked, so triggers are skipped (overlap skip); their
    // records fill the buffer that no writer drains: over half full.
    for _ in 0..4 {
        scheduler.trigger("j").unwrap();
    }
    let msg = check().message.unwrap();
    assert!(
        msg.contains("execution store backlogged: 3 of 4 records buffered, 0 dropped"),
        "{msg}"
    );
    assert!(!parked.lock().unwrap().is_empty());
}

#[test]
fn a_watched_job_that_failed_last_degrades_until_it_succeeds() {
    use mscribe_scheduler::{AttemptEnd, FireKind};
    use mscribe_scheduler::{
        ExecutionEvent, ExecutionId, ExecutionStore, JobConfig, JobContext, JobResult, MemoryStore,
    };
    use std::sync::atomic::AtomicBool;
    let rt = LocalRuntime::new();
    let store = Arc::new(MemoryStore::new());
    let fail = Arc::new(AtomicBool::new(true));
    let build = || {
        let s = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
            .store(store.clone())
            .build();
        let f = fail.clone();
        let backup = JobConfig::new("database-backup", move |_ctx: JobContext| {
            let failing = f.load(Ordering::SeqCst);
            async move {
                if failing {
                    JobResult::failed("pg_dump not found on PATH")
                } else {
                    JobResult::ok()
                }
            }
        });
        s.register(backup.schedule("0 2 * * *")).unwrap();
        s
    };
    let probe_of = |s: &JobScheduler| {
        SchedulerProbe::new(s.clone(), Duration::from_secs(60))
            .spawner(Arc::new(rt.spawner()))
            .watch_failures("database-backup")
            .watch_failures("not-registered")
    };
    // A check never waits for the store: the read it starts runs on the
    // runtime, and the next check uses it.
    let check = |p: &SchedulerProbe| rt.block_on(p.check());
    let read_in_background = || rt.run_until_stalled();
    let run = |s: &JobScheduler| {
        s.trigger("database-backup").unwrap();
        rt.run_until_stalled();
    };

    let s = build();
    rt.block_on(s.start()).unwrap();
    let probe = probe_of(&s);
    // Never run: nothing in the store, healthy.
    assert_eq!(check(&probe).status, HealthStatus::Healthy);
    run(&s);
    let r = check(&probe);
    assert_eq!(r.status, HealthStatus::Degraded);
    assert_eq!(
        r.message.as_deref(),
        Some("the last run of database-backup ended failed; see `mscribe history database-backup`")
    );

    // A restart: no run in the new process, the store's verdict stands,
    // read once at start (as the server does) before the first check.
    rt.block_on(s.stop(Duration::from_secs(1))).unwrap();
    let s = build();
    rt.block_on(s.start()).unwrap();
    let probe = probe_of(&s);
    rt.block_on(probe.read_store());
    assert_eq!(check(&probe).status, HealthStatus::Degraded);

    // Another process (`mscribe run`) backs up successfully: the row it
    // writes clears the failure.
    let last = store.all().into_iter().max_by_key(|r| r.started_at).unwrap();
    let later = last.started_at + chrono::Duration::minutes(5);
    let ok = AttemptEnd {
        job_id: "database-backup".into(),
        execution_id: ExecutionId::from_u128(u128::MAX),
        attempt: 1,
        scheduled_at: later,
        started_at: later,
        instance_id: "cli".into(),
        status: ExecutionStatus::Succeeded,
        completed_at: later,
        duration: Duration::from_secs(1),
        error: None,
        error_kind: None,
        result: None,
        metrics: None,
        kind: FireKind::Schedule,
        fence: None,
        ends_run: true,
    };
    rt.block_on(store.write(&[ExecutionEvent::Finished(ok)])).unwrap();
    assert_eq!(check(&probe).status, HealthStatus::Degraded, "not read yet");
    read_in_background();
    assert_eq!(check(&probe).status, HealthStatus::Healthy);

    // This process's own runs, after that one: a failure degrades, a
    // success clears it.
    rt.advance(Duration::from_secs(600));
    run(&s);
    assert_eq!(check(&probe).status, HealthStatus::Degraded);
    fail.store(false, Ordering::SeqCst);
    run(&s);
    assert_eq!(check(&probe).status, HealthStatus::Healthy);

    // Several instances share the job (`claim_fires`): another one's
    // later failure is the last run, though this one's own succeeded.
    let last = store.all().into_iter().max_by_key(|r| r.started_at).unwrap();
    let later = last.started_at + chrono::Duration::minutes(5);
    let failed = AttemptEnd {
        job_id: "database-backup".into(),
        execution_id: ExecutionId::from_u128(u128::MAX - 1),
        attempt: 1,
        scheduled_at: later,
        started_at: later,
        instance_id: "other".into(),
        status: ExecutionStatus::Failed,
        completed_at: later,
        duration: Duration::from_secs(1),
        error: Some("pg_dump failed".to_owned()),
        error_kind: None,
        result: None,
        metrics: None,
        kind: FireKind::Schedule,
        fence: None,
        ends_run: true,
    };
    rt.block_on(store.write(&[ExecutionEvent::Finished(failed)])).unwrap();
    assert_eq!(check(&probe).status, HealthStatus::Healthy, "alone, its own run decides");
    read_in_background();
    assert_eq!(check(&probe).status, HealthStatus::Healthy, "alone, its own run decides");
    let shared = probe_of(&s).shared(true);
    assert_eq!(check(&shared).status, HealthStatus::Healthy, "not read yet");
    read_in_background();
    assert_eq!(check(&shared).status, HealthStatus::Degraded);
    let shared = probe_of(&s).shared(true);
    rt.block_on(shared.read_store());
    assert_eq!(check(&shared).status, HealthStatus::Degraded);
}

/// How the database behaves in [`OutageStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    /// It answers.
    Up,
    /// Connections are refused: every call fails at once.
    Refusing,
    /// A network partition: every call waits, and fails only when the
    /// database is back (the connection was lost meanwhile).
    Hanging,
}

/// A [`MemoryStore`](mscribe_scheduler::MemoryStore) behind a database
/// that can be taken away, as `scripts/chaos.sh` does through its proxy.
#[derive(Debug)]
struct OutageStore {
    inner: mscribe_scheduler::MemoryStore,
    mode: Mutex<Outage>,
    clock: Arc<dyn Clock>,
    /// `history` calls, and how many of them are under way.
    reads: AtomicU64,
    reading: AtomicU64,
}

impl OutageStore {
    fn new(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(OutageStore {
            inner: mscribe_scheduler::MemoryStore::new(),
            mode: Mutex::new(Outage::Up),
            clock,
            reads: AtomicU64::new(0),
            reading: AtomicU64::new(0),
        })
    }

    fn set(&self, m: Outage) {
        *self.mode.lock().unwrap() = m;
    }

    fn mode(&self) -> Outage {
        *self.mode.lock().unwrap()
    }

    async fn gate(&self) -> mscribe_scheduler::StoreResult<()> {
        let unavailable = |message: &str| {
            Err(mscribe_scheduler::StoreError::Unavailable {
                message: message.to_owned(),
                source: None,
            })
        };
        let mut hung = false;
        loop {
            match self.mode() {
                Outage::Up if hung => return unavailable("connection lost"),
                Outage::Up => return Ok(()),
                Outage::Refusing => return unavailable("connection refused"),
                Outage::Hanging => {
                    hung = true;
                    let next = crate::probe::after(self.clock.now(), Duration::from_millis(100));
                    self.clock.sleep_until(next).await;
                }
            }
        }
    }
}

#[async_trait]
impl mscribe_scheduler::ExecutionStore for OutageStore {
    async fn write(
        &self,
        events: &[mscribe_scheduler::ExecutionEvent],
    ) -> mscribe_scheduler::StoreResult<()> {
        self.gate().await?;
        self.inner.write(events).await
    }
    async fn history(
        &self,
        query: &HistoryQuery,
    ) -> mscribe_scheduler::StoreResult<Vec<mscribe_scheduler::ExecutionRecord>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.reading.fetch_add(1, Ordering::SeqCst);
        struct Done<'a>(&'a AtomicU64);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _done = Done(&self.reading);
        self.gate().await?;
        self.inner.history(query).await
    }
    async fn last_fire(
        &self,
        job_id: &str,
    ) -> mscribe_scheduler::StoreResult<Option<DateTime<Utc>>> {
        self.gate().await?;
        self.inner.last_fire(job_id).await
    }
    async fn last_scheduled_fires(
        &self,
        job_ids: &[String],
    ) -> mscribe_scheduler::StoreResult<std::collections::HashMap<String, DateTime<Utc>>> {
        self.gate().await?;
        self.inner.last_scheduled_fires(job_ids).await
    }
    async fn heartbeat(
        &self,
        instance_id: &str,
        now: DateTime<Utc>,
    ) -> mscribe_scheduler::StoreResult<()> {
        self.gate().await?;
        self.inner.heartbeat(instance_id, now).await
    }
    async fn mark_abandoned(
        &self,
        own_instance: &str,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> mscribe_scheduler::StoreResult<Vec<mscribe_scheduler::ExecutionRecord>> {
        self.gate().await?;
        self.inner.mark_abandoned(own_instance, now, stale_after).await
    }
    async fn prune(
        &self,
        policy: mscribe_scheduler::PrunePolicy,
    ) -> mscribe_scheduler::StoreResult<u64> {
        self.gate().await?;
        self.inner.prune(policy).await
    }
    fn supports_claims(&self) -> bool {
        true
    }
    async fn claim_fires(
        &self,
        instance_id: &str,
        fires: &[mscribe_scheduler::FireClaim],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> mscribe_scheduler::StoreResult<Vec<mscribe_scheduler::ClaimOutcome>> {
        self.gate().await?;
        self.inner.claim_fires(instance_id, fires, now, lease).await
    }
    async fn renew_leases(
        &self,
        instance_id: &str,
        leases: &[mscribe_scheduler::FireLease],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> mscribe_scheduler::StoreResult<Vec<bool>> {
        self.gate().await?;
        self.inner.renew_leases(instance_id, leases, now, lease).await
    }
    async fn expired_leases(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> mscribe_scheduler::StoreResult<Vec<mscribe_scheduler::ExpiredLease>> {
        self.gate().await?;
        self.inner.expired_leases(now, limit).await
    }
    async fn retake_fire(
        &self,
        instance_id: &str,
        expired: &mscribe_scheduler::ExpiredLease,
        new_execution_id: mscribe_scheduler::ExecutionId,
        now: DateTime<Utc>,
        lease: Duration,
        rerun: bool,
    ) -> mscribe_scheduler::StoreResult<Option<mscribe_scheduler::RetakenFire>> {
        self.gate().await?;
        self.inner.retake_fire(instance_id, expired, new_execution_id, now, lease, rerun).await
    }
}

/// A probe that is one round trip through the store, as the server's
/// `database` probe is through its pool.
#[derive(Debug)]
struct ThroughStore {
    name: &'static str,
    critical: bool,
    store: Arc<OutageStore>,
}

#[async_trait]
impl Probe for ThroughStore {
    fn name(&self) -> &str {
        self.name
    }
    fn critical(&self) -> bool {
        self.critical
    }
    async fn check(&self) -> ProbeReport {
        use mscribe_scheduler::ExecutionStore;
        match self.store.history(&HistoryQuery::new("probe", 1)).await {
            Ok(_) => ProbeReport::healthy(Duration::ZERO),
            Err(e) => ProbeReport::unhealthy(Duration::ZERO, e.to_string()),
        }
    }
}

/// A started scheduler over `store` with a job firing every 250 ms (its
/// records reach the store, or wait in the buffer; with `claim`, each
/// fire is claimed in the store first, as with `claim_fires`) and the
/// watched `database-backup`.
fn scheduler_over(rt: &LocalRuntime, store: &Arc<OutageStore>, claim: bool) -> JobScheduler {
    use mscribe_scheduler::{JobConfig, JobContext};
    let s = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
        .store(store.clone())
        .claim_fires(claim)
        .build();
    s.register(
        JobConfig::new("tick", |_ctx: JobContext| async {}).schedule(Duration::from_millis(250)),
    )
    .unwrap();
    s.register(
        JobConfig::new("database-backup", |_ctx: JobContext| async {}).schedule("0 2 * * *"),
    )
    .unwrap();
    rt.block_on(s.start()).unwrap();
    s
}

/// server/README.md, "Database outages": while the database is away the
/// `database` check is unhealthy and the `scheduler` check degraded (its
/// records wait in the buffer, or its claims fail; the scheduler runs).
/// The scheduler check read the watched job's rows from the store in
/// the check itself (every check, with `claim_fires`), so a database
/// that did not answer made it time out: unhealthy, "timed out after
/// 1s". Whether the database refuses or holds connections, with or
/// without `claim_fires`.
#[test]
fn the_scheduler_check_is_degraded_not_unhealthy_while_the_database_is_unreachable() {
    let cases = [
        (false, Outage::Refusing, "execution store failing: "),
        (false, Outage::Hanging, "execution store not answering: a write has waited "),
        (true, Outage::Refusing, "claims failing: "),
        (true, Outage::Hanging, "execution store not answering: a claim of fires has waited "),
    ];
    for (claim, outage, expected) in cases {
        let rt = LocalRuntime::new();
        let clock: Arc<dyn Clock> = Arc::new(rt.clock());
        let store = OutageStore::new(clock.clone());
        let scheduler = scheduler_over(&rt, &store, claim);
        let probes: Vec<Arc<dyn Probe>> = vec![
            Arc::new(ThroughStore { name: "database", critical: true, store: store.clone() }),
            Arc::new(
                SchedulerProbe::new(scheduler.clone(), Duration::from_secs(60))
                    .shared(true)
                    .watch_failures("database-backup"),
            ),
        ];
        let checker = HealthChecker::new(probes, clock.clone(), HealthSettings::default());
        assert_eq!(rt.block_on(checker.refresh()).status, HealthStatus::Healthy);

        store.set(outage);
        rt.advance(Duration::from_secs(3));
        let snap = rt.block_on(checker.refresh());
        let scheduler_check = snap.check("scheduler").unwrap();
        assert_eq!(snap.check("database").unwrap().status, HealthStatus::Unhealthy, "{outage:?}");
        assert_eq!(
            scheduler_check.status,
            HealthStatus::Degraded,
            "{outage:?}: {scheduler_check:?}"
        );
        let message = scheduler_check.message.as_deref().unwrap_or_default();
        assert!(message.contains(expected), "claim {claim}, {outage:?}: {message}");
        assert_eq!(snap.status, HealthStatus::Unhealthy, "{outage:?}");

        // Back: the buffered records are written and the failed claims
        // claimed again (every third of the lease), all healthy again.
        store.set(Outage::Up);
        rt.advance(Duration::from_secs(10));
        let snap = rt.block_on(checker.refresh());
        assert_eq!(snap.status, HealthStatus::Healthy, "claim {claim}, {outage:?}: {snap:?}");
        let health = scheduler.store_health();
        assert_eq!((health.buffered, health.unclaimed), (0, 0), "{health:?}");
    }
}

/// Polls `/health-check` every 250 ms, as `scripts/chaos.sh` does, from
/// 2 s before a 10 s outage that hangs every probe touching the
/// database (the critical `database` one and a non-critical one) to 6 s
/// after it, with the server's settings and wiring. Every answer comes
/// within the probe timeout (in fact within the answer budget): a
/// request that finds the cache expired waits for the refresh at most
/// that long, then gets the cached result, while the refresh goes on.
/// The answers match the README once the last result from before the
/// outage has expired.
#[test]
fn the_health_answer_comes_within_its_timeout_while_the_database_hangs() {
    let rt = LocalRuntime::new();
    let clock: Arc<dyn Clock> = Arc::new(rt.clock());
    let spawner: Arc<dyn Spawner> = Arc::new(rt.spawner());
    let settings = HealthSettings::default();
    let store = OutageStore::new(clock.clone());
    let scheduler = scheduler_over(&rt, &store, true);
    let probes: Vec<Arc<dyn Probe>> = vec![
        Arc::new(ThroughStore { name: "database", critical: true, store: store.clone() }),
        Arc::new(
            SchedulerProbe::new(scheduler.clone(), Duration::from_secs(60))
                .shared(true)
                .store_timeout(settings.probe_timeout)
                .spawner(spawner.clone())
                .watch_failures("database-backup"),
        ),
        Arc::new(ThroughStore { name: "auth", critical: false, store: store.clone() }),
    ];
    let checker =
        HealthChecker::in_background(probes, clock.clone(), settings, Vec::new(), spawner);
    // The server refreshes once before it listens.
    assert_eq!(rt.block_on(checker.refresh()).status, HealthStatus::Healthy);

    let start = clock.now();
    let outage = (start + chrono::Duration::seconds(2), start + chrono::Duration::seconds(12));
    let settled =
        outage.0 + chrono::Duration::from_std(settings.ttl + settings.probe_timeout).unwrap();
    let mut answers = Vec::new();
    while clock.now() < start + chrono::Duration::seconds(18) {
        let asked = clock.now();
        if asked >= outage.1 {
            store.set(Outage::Up);
        } else if asked >= outage.0 {
            store.set(Outage::Hanging);
        }
        let snap = rt.block_on(checker.check());
        let took = crate::probe::std_dur(asked, clock.now());
        assert!(
            took < settings.probe_timeout,
            "the answer asked {:?} after the start took {took:?}",
            crate::probe::std_dur(start, asked)
        );
        answers.push((asked, took, snap));
        rt.run_until(asked + chrono::Duration::milliseconds(250));
    }
    let during: Vec<_> = answers.iter().filter(|a| a.0 >= settled && a.0 < outage.1).collect();
    assert!(during.len() >= 20, "{}", during.len());
    for (asked, _, snap) in during {
        let at = crate::probe::std_dur(outage.0, *asked);
        let status = |name| snap.check(name).map(|r| r.status);
        assert_eq!(snap.status, HealthStatus::Unhealthy, "{at:?} in: {snap:?}");
        assert_eq!(status("database"), Some(HealthStatus::Unhealthy), "{at:?} in");
        assert_eq!(status("scheduler"), Some(HealthStatus::Degraded), "{at:?} in: {snap:?}");
    }
    let waited = answers.iter().map(|a| a.1).max().unwrap();
    assert!(waited <= settings.answer_budget(), "{waited:?}");
    assert!(waited > Duration::ZERO, "some answers waited for a refresh");
    let (_, _, last) = answers.last().unwrap();
    assert_eq!(last.status, HealthStatus::Healthy, "after the outage: {last:?}");
    // The hung probes were cut: one refresh per TTL, not one per request.
    assert!(checker.refreshes() <= 1 + 18 / 2, "{}", checker.refreshes());
}

/// The watched job's rows are read off the check: a check starts a read
/// and answers at once with the verdict it has; a read that hangs is
/// given up at the store timeout, and no second read starts while one
/// is under way.
#[test]
fn a_watched_job_is_read_in_the_background_and_a_hung_read_is_given_up() {
    let rt = LocalRuntime::new();
    let clock: Arc<dyn Clock> = Arc::new(rt.clock());
    let store = OutageStore::new(clock.clone());
    let scheduler = scheduler_over(&rt, &store, true);
    let probe = SchedulerProbe::new(scheduler.clone(), Duration::from_secs(60))
        .shared(true)
        .store_timeout(Duration::from_secs(1))
        .spawner(Arc::new(rt.spawner()))
        .watch_failures("database-backup");
    rt.block_on(probe.read_store());
    assert_eq!(store.reads.load(Ordering::SeqCst), 1);

    store.set(Outage::Hanging);
    let asked = clock.now();
    for _ in 0..4 {
        assert_eq!(rt.block_on(probe.check()).status, HealthStatus::Healthy);
        rt.advance(Duration::from_millis(200));
    }
    assert_eq!(crate::probe::std_dur(asked, clock.now()), Duration::from_millis(800));
    assert_eq!(store.reads.load(Ordering::SeqCst), 2, "one read at a time");
    assert_eq!(store.reading.load(Ordering::SeqCst), 1);
    rt.advance(Duration::from_millis(250));
    assert_eq!(store.reading.load(Ordering::SeqCst), 0, "given up at the store timeout");
    rt.block_on(probe.check());
    rt.advance(Duration::from_millis(100));
    assert_eq!(store.reads.load(Ordering::SeqCst), 3, "the next check reads again");
    store.set(Outage::Up);
    rt.advance(Duration::from_secs(2));
    assert_eq!(store.reading.load(Ordering::SeqCst), 0);
}

#[test]
fn storage_probe_finds_missing_unwritable_and_full() {
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok");
    std::fs::create_dir(&ok).unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let rt = LocalRuntime::new();
    let check = |paths: Vec<PathBuf>, bytes: u64, pct: f64| {
        rt.block_on(StorageProbe::new(paths, bytes, pct).check())
    };
    assert_eq!(check(vec![ok.clone()], 0, 0.0).status, HealthStatus::Healthy);
    let r = check(vec![ok.clone(), dir.path().join("missing")], 0, 0.0);
    assert_eq!(r.status, HealthStatus::Unhealthy);
    assert!(r.message.unwrap().contains("missing: No such file"));
    let r = check(vec![file], 0, 0.0);
    assert!(r.message.unwrap().ends_with("file: not a directory"));
    let r = check(vec![ok.clone()], u64::MAX, 0.0);
    assert_eq!(r.status, HealthStatus::Degraded);
    assert!(r.message.unwrap().contains("low disk space"));
    assert_eq!(check(vec![ok.clone()], 0, 100.1).status, HealthStatus::Degraded);
    // No probe file is left behind.
    assert_eq!(std::fs::read_dir(&ok).unwrap().count(), 0);
}
