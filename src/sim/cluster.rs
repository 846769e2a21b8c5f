//! A simulated cluster: several scheduler instances sharing one
//! [`MemoryStore`], each with its own skewed clock and its own faulty path
//! to the store, crashed at any await point (every task of the instance is
//! dropped where it stands) and restarted under a new id, while instances
//! trigger jobs by hand; then the checker of the lease guarantee
//! (docs/SEMANTICS.md §12).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::{AbortHandle, BoxFuture, abortable};

use super::faults::{FaultyStore, StoreFaults};
use crate::clock::{Clock, VirtualClock, after, before};
use crate::job::{JobConfig, JobContext};
use crate::policy::{MisfirePolicy, OverlapPolicy};
use crate::runtime::{LocalRuntime, Spawner};
use crate::scheduler::JobScheduler;
use crate::store::{ExecutionId, ExecutionStatus, ExecutionStore, MemoryStore};

/// A stretch of time, from and to (the same instant for a crash).
type Span = (DateTime<Utc>, DateTime<Utc>);

/// The jobs every instance runs (see `ClusterSim::jobs`).
const JOBS: [&str; 4] = ["tick", "slow", "wide", "queued"];

/// The settings of a [`ClusterSim`].
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The seed of everything random.
    pub seed: u64,
    /// How many instances run at once.
    pub instances: usize,
    /// The lease of claimed fires.
    pub lease: Duration,
    /// The largest clock skew of an instance, either way.
    pub max_skew: Duration,
    /// How long the simulation runs.
    pub duration: Duration,
    /// The chance, per step of 1–20 s, that an instance crashes.
    pub crash: f64,
    /// The chance, per step, that an instance's path to the store fails
    /// for a while.
    pub store_outage: f64,
    /// The chance, per step, that an instance triggers one of its jobs.
    pub trigger: f64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            seed: 0,
            instances: 3,
            lease: Duration::from_secs(15),
            max_skew: Duration::from_secs(1),
            duration: Duration::from_secs(3600),
            crash: 0.05,
            store_outage: 0.03,
            trigger: 0.2,
        }
    }
}

/// One handler start: the fire key, the instance, the attempt and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// `JobContext::fire_key()` as text.
    pub fire: String,
    /// The instance that started it.
    pub instance: String,
    /// The attempt number.
    pub attempt: u32,
    /// When, by the shared clock.
    pub at: DateTime<Utc>,
}

/// What a [`ClusterSim`] run found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterReport {
    /// Fires with a record.
    pub fires: usize,
    /// Handler starts.
    pub starts: usize,
    /// Fires whose handler started more than once (each after its owner
    /// crashed or lost the store).
    pub restarts: usize,
    /// Instances crashed.
    pub crashes: usize,
    /// Store outages of one instance.
    pub outages: usize,
    /// Manual triggers made (each claimed, so run once in the cluster).
    pub triggers: usize,
}

/// A broken guarantee, with what shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterViolation(pub String);

impl fmt::Display for ClusterViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A spawner whose tasks can all be dropped at once: a crash.
#[derive(Debug)]
struct Crashable {
    inner: Arc<dyn Spawner>,
    tasks: Mutex<Vec<AbortHandle>>,
    dead: AtomicBool,
}

impl Spawner for Crashable {
    fn spawn(&self, fut: BoxFuture<'static, ()>) {
        if self.dead.load(Ordering::Acquire) {
            return;
        }
        let (fut, handle) = abortable(fut);
        let mut tasks = self.tasks.lock().expect("tasks lock");
        tasks.retain(|h| !h.is_aborted());
        tasks.push(handle);
        drop(tasks);
        self.inner.spawn(Box::pin(async move {
            let _ = fut.await;
        }));
    }
}

impl Crashable {
    fn crash(&self) {
        self.dead.store(true, Ordering::Release);
        for h in self.tasks.lock().expect("tasks lock").drain(..) {
            h.abort();
        }
    }
}

/// The shared clock seen `skew` ahead (or behind, negative).
#[derive(Debug)]
struct Skewed {
    base: VirtualClock,
    skew_ms: i64,
}

impl Clock for Skewed {
    fn now(&self) -> DateTime<Utc> {
        shift(self.base.now(), self.skew_ms)
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        self.base.sleep_until(shift(deadline, -self.skew_ms))
    }
}

fn shift(t: DateTime<Utc>, ms: i64) -> DateTime<Utc> {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 { after(t, d) } else { before(t, d) }
}

struct Member {
    id: String,
    scheduler: JobScheduler,
    spawner: Arc<Crashable>,
    store: Arc<FaultyStore<Arc<MemoryStore>>>,
    /// While its store fails: until then.
    outage_until: Option<DateTime<Utc>>,
}

/// Several instances on one store, with crashes, store outages and skew.
pub struct ClusterSim {
    cfg: ClusterConfig,
    rt: LocalRuntime,
    store: Arc<MemoryStore>,
    rng: fastrand::Rng,
    members: Vec<Member>,
    starts: Arc<Mutex<Vec<Start>>>,
    /// When each instance could not renew its leases: from its crash on,
    /// or for the length of an outage (a crash is the instant it happened).
    /// A restart of its fire is allowed once that overlaps its run.
    lost: BTreeMap<String, Vec<Span>>,
    /// The triggers made, by job: the instance that made each.
    triggers: BTreeMap<&'static str, Vec<String>>,
    next_id: usize,
    report: ClusterReport,
}

impl fmt::Debug for ClusterSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSim").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl ClusterSim {
    /// A cluster per `cfg`, its instances started.
    pub fn new(cfg: ClusterConfig) -> Self {
        let rt = LocalRuntime::with_clock(VirtualClock::at_epoch_2026());
        let mut sim = ClusterSim {
            rng: fastrand::Rng::with_seed(cfg.seed),
            cfg,
            rt,
            store: Arc::new(MemoryStore::unbounded()),
            members: Vec::new(),
            starts: Arc::default(),
            lost: BTreeMap::new(),
            triggers: BTreeMap::new(),
            next_id: 0,
            report: ClusterReport::default(),
        };
        for _ in 0..sim.cfg.instances {
            sim.launch();
        }
        sim
    }

    /// The jobs every instance runs: fast and slow, with runs that often
    /// outlast the lease, on several misfire and overlap policies.
    fn jobs(&self, instance: &str) -> Vec<JobConfig> {
        let specs: [(&str, u64, u64, MisfirePolicy, OverlapPolicy); JOBS.len()] = [
            ("tick", 7, 2, MisfirePolicy::run_once(), OverlapPolicy::Skip),
            (
                "slow",
                60,
                45,
                MisfirePolicy::run_all(Duration::from_secs(3600), 3),
                OverlapPolicy::Skip,
            ),
            (
                "wide",
                30,
                50,
                MisfirePolicy::run_all(Duration::from_secs(600), 2),
                OverlapPolicy::Allow,
            ),
            ("queued", 20, 25, MisfirePolicy::skip(), OverlapPolicy::Queue),
        ];
        specs
            .into_iter()
            .map(|(id, every, max_run, misfire, overlap)| {
                let starts = self.starts.clone();
                let me = instance.to_owned();
                let seed = self.cfg.seed;
                let real = self.rt.clock();
                JobConfig::new(id, move |ctx: JobContext| {
                    let starts = starts.clone();
                    let me = me.clone();
                    // By the shared clock, as crashes are.
                    let at = real.now();
                    async move {
                        let fire = ctx.fire_key().to_string();
                        starts.lock().expect("starts lock").push(Start {
                            fire: fire.clone(),
                            instance: me,
                            attempt: ctx.attempt,
                            at,
                        });
                        // A run length drawn from the fire, not the instance.
                        let h = fire.bytes().fold(seed, |h, b| {
                            h.rotate_left(5) ^ u64::from(b).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                        });
                        ctx.sleep(Duration::from_millis(h % (max_run * 1000))).await;
                    }
                })
                .schedule(Duration::from_secs(every))
                .misfire(misfire)
                .overlap(overlap)
            })
            .collect()
    }

    /// Starts a new instance.
    fn launch(&mut self) {
        self.next_id += 1;
        let id = format!("i{}", self.next_id);
        let skew_range = self.cfg.max_skew.as_millis() as i64;
        let skew_ms = if skew_range == 0 { 0 } else { self.rng.i64(-skew_range..=skew_range) };
        let clock: Arc<dyn Clock> = Arc::new(Skewed { base: self.rt.clock(), skew_ms });
        let store = Arc::new(FaultyStore::new(
            self.store.clone(),
            StoreFaults::default(),
            self.rng.u64(..),
            clock.clone(),
        ));
        let spawner = Arc::new(Crashable {
            inner: Arc::new(self.rt.spawner()),
            tasks: Mutex::new(Vec::new()),
            dead: AtomicBool::new(false),
        });
        let scheduler = JobScheduler::builder(clock, spawner.clone())
            .store(store.clone() as Arc<dyn ExecutionStore>)
            .instance_id(id.clone())
            .seed(self.rng.u64(..))
            .claim_fires(true)
            .lease(self.cfg.lease)
            .heartbeat(Duration::from_secs(5), Duration::from_secs(20))
            .build();
        for job in self.jobs(&id) {
            scheduler.register(job).expect("valid jobs");
        }
        self.rt.block_on(scheduler.start()).expect("start");
        self.members.push(Member { id, scheduler, spawner, store, outage_until: None });
    }

    /// Runs the cluster for the configured time, then ends every outage,
    /// lets the leases of the dead run out and be taken over, and stops
    /// the instances.
    pub fn run(&mut self) {
        let end = after(self.rt.clock().now(), self.cfg.duration);
        while self.rt.clock().now() < end {
            if self.rng.f64() < self.cfg.trigger {
                let m = &self.members[self.rng.usize(..self.members.len())];
                let job = JOBS[self.rng.usize(..JOBS.len())];
                // Claimed: the claim is sent as the clock moves on.
                if m.scheduler.trigger(job).is_ok() {
                    self.triggers.entry(job).or_default().push(m.id.clone());
                    self.report.triggers += 1;
                }
            }
            let step = Duration::from_millis(self.rng.u64(1_000..20_000));
            self.rt.advance(step);
            let now = self.rt.clock().now();
            for m in &mut self.members {
                if m.outage_until.is_some_and(|t| t <= now) {
                    m.store.set_faults(StoreFaults::default());
                    m.outage_until = None;
                }
            }
            if self.rng.f64() < self.cfg.crash {
                let i = self.rng.usize(..self.members.len());
                let m = self.members.remove(i);
                m.spawner.crash();
                self.lost.entry(m.id.clone()).or_default().push((now, now));
                self.report.crashes += 1;
                self.launch();
            }
            if self.rng.f64() < self.cfg.store_outage {
                let i = self.rng.usize(..self.members.len());
                let m = &mut self.members[i];
                if m.outage_until.is_none() {
                    let len = Duration::from_millis(self.rng.u64(1_000..60_000));
                    m.store.set_faults(StoreFaults { error: 1.0, ..StoreFaults::default() });
                    m.outage_until = Some(after(now, len));
                    self.lost.entry(m.id.clone()).or_default().push((now, after(now, len)));
                    self.report.outages += 1;
                }
            }
        }
        for m in &mut self.members {
            m.store.set_faults(StoreFaults::default());
            m.outage_until = None;
        }
        // Long enough for every run (50 s at most) and for the leases of the
        // crashed to run out and be taken over.
        self.rt.advance(self.cfg.lease * 3 + Duration::from_secs(120));
        for m in &self.members {
            let _ = self.rt.block_on(m.scheduler.stop(Duration::from_secs(60)));
        }
        self.rt.advance(Duration::from_secs(1));
    }

    /// Checks the guarantee: one execution per fire, ended; no row left
    /// `running`; a handler started again only after the instance that
    /// started it crashed or lost the store.
    pub fn check(&mut self) -> Result<ClusterReport, Vec<ClusterViolation>> {
        let mut bad = Vec::new();
        let rows = self.store.all();
        let mut fires: BTreeMap<(String, DateTime<Utc>), BTreeSet<ExecutionId>> = BTreeMap::new();
        let mut last: BTreeMap<ExecutionId, (u32, ExecutionStatus)> = BTreeMap::new();
        for r in &rows {
            fires.entry((r.job_id.clone(), r.scheduled_at)).or_default().insert(r.execution_id);
            let e = last.entry(r.execution_id).or_insert((r.attempt, r.status));
            if r.attempt >= e.0 {
                *e = (r.attempt, r.status);
            }
            if r.status == ExecutionStatus::Running {
                bad.push(ClusterViolation(format!("left running: {r:?}")));
            }
        }
        for ((job, at), ids) in &fires {
            if ids.len() != 1 {
                let rows: Vec<_> =
                    rows.iter().filter(|r| &r.job_id == job && r.scheduled_at == *at).collect();
                bad.push(ClusterViolation(format!(
                    "fire {job}@{at} has {} executions: {rows:#?}",
                    ids.len()
                )));
            }
        }
        let starts = self.starts.lock().expect("starts lock").clone();
        let mut by_fire: BTreeMap<&str, Vec<&Start>> = BTreeMap::new();
        for s in &starts {
            by_fire.entry(&s.fire).or_default().push(s);
        }
        for (fire, ss) in &by_fire {
            for w in ss.windows(2) {
                let (a, b) = (w[0], w[1]);
                if a.instance == b.instance && b.attempt > a.attempt {
                    continue; // A retry on the same instance.
                }
                // Its owner could not renew at some time between the two
                // starts (an outage may have begun before the first).
                let lost = self.lost.get(&a.instance).into_iter().flatten();
                if !lost.into_iter().any(|(from, to)| *from <= b.at && *to >= a.at) {
                    bad.push(ClusterViolation(format!(
                        "fire {fire} started again on {} at {} while {} (started {}) neither crashed nor lost the store",
                        b.instance, b.at, a.instance, a.at
                    )));
                }
            }
        }
        // Each trigger is one manual fire: none twice, and none lost but
        // those of an instance that crashed or lost the store before its
        // claim was written (the server's control plane takes them again).
        for (job, by) in &self.triggers {
            let manual: BTreeSet<DateTime<Utc>> = rows
                .iter()
                .filter(|r| r.job_id == *job && r.kind == crate::store::FireKind::Manual)
                .map(|r| r.scheduled_at)
                .collect();
            let sure = by.iter().filter(|i| !self.lost.contains_key(*i)).count();
            if manual.len() < sure || manual.len() > by.len() {
                bad.push(ClusterViolation(format!(
                    "job {job}: {} triggers ({sure} by instances that never crashed or lost the store) made {} manual fires",
                    by.len(),
                    manual.len()
                )));
            }
        }
        self.report.fires = fires.len();
        self.report.starts = starts.len();
        self.report.restarts = by_fire
            .values()
            .filter(|ss| ss.windows(2).any(|w| w[0].instance != w[1].instance))
            .count();
        if bad.is_empty() { Ok(self.report.clone()) } else { Err(bad) }
    }
}
