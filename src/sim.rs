//! Deterministic simulation: a seeded, single-threaded world for running
//! your own jobs — and ours — through months of schedule in seconds, with
//! faults injected and invariants checked.
//!
//! A [`Sim`] holds a [`VirtualClock`], the [`LocalRuntime`] executor, an
//! RNG, a [`FaultyStore`] in front of a [`MemoryStore`], and an
//! [`EventLog`] of every record the scheduler made. A run is a function of
//! its seed: [`run_seeded`] reads `MSCRIBE_SIM_SEED` (to replay) and, when
//! the body panics, prints the seed and the command that replays it.
//!
//! ```
//! use std::time::Duration;
//! use mscribe_scheduler::sim::{Faults, Sim, SimConfig};
//! use mscribe_scheduler::JobConfig;
//!
//! let mut sim = Sim::new(SimConfig { seed: 7, faults: Faults::chaotic(), ..SimConfig::default() });
//! let handler = sim.faulty_handler();
//! sim.register(JobConfig::from_arc("sync", handler).schedule("*/5 * * * *").timeout(Duration::from_secs(60)))?;
//! sim.start();
//! sim.run_for(Duration::from_secs(24 * 3600));
//! sim.stop(Duration::from_secs(10));
//! let report = sim.check().expect("invariants hold");
//! assert_eq!(report.fires_due, 288);
//! # Ok::<(), mscribe_scheduler::Error>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::{Clock, VirtualClock, after, before, std_dur};
use crate::error::Result;
use crate::job::{JobConfig, JobContext, JobHandler, JobResult};
use crate::policy::{MisfirePolicy, OverlapPolicy};
use crate::retry::{Jitter, RetryPolicy};
use crate::runtime::LocalRuntime;
use crate::schedule::Schedule;
use crate::scheduler::{JobScheduler, Observer, StopReport};
use crate::store::{
    ExecutionEvent, ExecutionRecord, ExecutionStatus, ExecutionStore, FireClaim, HistoryQuery,
    MemoryStore, PrunePolicy, StoreError, StoreResult,
};

/// Job `i` of the standard mixed workload (the simulation test and the
/// simulation benchmark): cron in three zones and intervals of 5 to 53
/// minutes, every overlap policy in turn, retries with each jitter on one job
/// in three, schedule jitter on one in seven, timeouts of 1 to 5 minutes.
pub fn mixed_job(i: usize, handler: Arc<dyn JobHandler>) -> JobConfig {
    let crons = [
        "*/5 * * * *",
        "0 * * * *",
        "15,45 * * * *",
        "0 */6 * * *",
        "30 2 * * *",
        "0 9 * * 1-5",
        "*/10 8-18 * * *",
        "0 0 1 * *",
    ];
    let zones = ["UTC", "Europe/Berlin", "America/New_York"];
    let overlaps =
        [OverlapPolicy::Skip, OverlapPolicy::Queue, OverlapPolicy::Allow, OverlapPolicy::Replace];
    let mut cfg = JobConfig::from_arc(format!("job-{i:04}"), handler)
        .overlap(overlaps[i % overlaps.len()])
        .misfire(MisfirePolicy::run_once())
        .timeout(Duration::from_secs(60 + (i as u64 % 5) * 60));
    cfg = if i.is_multiple_of(2) {
        cfg.schedule(crons[(i / 2) % crons.len()]).timezone(zones[i % zones.len()])
    } else {
        cfg.schedule(Duration::from_secs(300 + (i as u64 % 13) * 240))
    };
    if i.is_multiple_of(3) {
        let jitter = [Jitter::None, Jitter::Full, Jitter::Equal][(i / 3) % 3];
        cfg = cfg.retry(
            RetryPolicy::exponential(3)
                .initial_delay(Duration::from_secs(5))
                .max_delay(Duration::from_secs(60))
                .jitter(jitter),
        );
    }
    if i.is_multiple_of(7) {
        cfg = cfg.jitter(Duration::from_secs(30));
    }
    cfg
}

/// The environment variable that fixes the seed of [`run_seeded`].
pub const SEED_ENV: &str = "MSCRIBE_SIM_SEED";

/// Runs `body` with a seed: `MSCRIBE_SIM_SEED` if set, else `default`. If
/// `body` panics, prints the seed and how to replay it, then re-panics.
pub fn run_seeded<T>(test_name: &str, default: u64, body: impl FnOnce(u64) -> T) -> T {
    let seed = match std::env::var(SEED_ENV) {
        Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("{SEED_ENV}=\"{s}\" is not a u64")),
        Err(_) => default,
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(seed))) {
        Ok(v) => v,
        Err(p) => {
            eprintln!(
                "simulation failed with seed {seed}; replay with:\n  {SEED_ENV}={seed} cargo test {test_name}"
            );
            std::panic::resume_unwind(p)
        }
    }
}

/// Installs (once per process) a panic hook that stays silent for the
/// panics the faulty handler injects and defers to the previous hook for
/// every other panic. Without it each injected panic prints (and, with
/// `RUST_BACKTRACE` set, symbolises) a backtrace, which dominates the run.
pub fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&INJECTED_PANIC) {
                previous(info);
            }
        }));
    });
}

const INJECTED_PANIC: &str = "injected panic";

/// What the faulty handler does, as probabilities per attempt (the rest
/// succeed). Run times are drawn uniformly up to the given maximum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Return an error.
    pub fail: f64,
    /// Panic.
    pub panic: f64,
    /// Never return (ignore cancellation).
    pub hang: f64,
    /// Run up to `long_run` (cooperatively: returns early when cancelled).
    pub long: f64,
    /// The longest "long" run.
    pub long_run: Duration,
    /// The longest normal run.
    pub normal_run: Duration,
}

impl Default for Faults {
    /// No faults; runs take up to 1 s.
    fn default() -> Self {
        Faults {
            fail: 0.0,
            panic: 0.0,
            hang: 0.0,
            long: 0.0,
            long_run: Duration::from_secs(600),
            normal_run: Duration::from_secs(1),
        }
    }
}

impl Faults {
    /// 5% failures, 1% panics, 1% hangs, 3% long runs (up to 10 min).
    pub fn chaotic() -> Self {
        Faults { fail: 0.05, panic: 0.01, hang: 0.01, long: 0.03, ..Faults::default() }
    }
}

/// What the store wrapper does, as probabilities per write.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StoreFaults {
    /// Fail the write as unavailable.
    pub error: f64,
    /// Stall the write for `stall_for` before doing it.
    pub stall: f64,
    /// How long a stall lasts.
    pub stall_for: Duration,
}

/// The settings of a [`Sim`].
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The seed of everything random.
    pub seed: u64,
    /// Where the clock starts.
    pub start: DateTime<Utc>,
    /// Handler faults, for [`Sim::faulty_handler`].
    pub faults: Faults,
    /// Store faults.
    pub store_faults: StoreFaults,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            start: VirtualClock::at_epoch_2026().now(),
            faults: Faults::default(),
            store_faults: StoreFaults::default(),
        }
    }
}

/// A store wrapper that fails or stalls writes, drawn from a seeded RNG.
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    faults: Mutex<StoreFaults>,
    rng: Mutex<fastrand::Rng>,
    clock: Arc<dyn Clock>,
    injected: Mutex<(u64, u64)>,
}

impl<S: ExecutionStore> FaultyStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, faults: StoreFaults, seed: u64, clock: Arc<dyn Clock>) -> Self {
        FaultyStore {
            inner,
            faults: Mutex::new(faults),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            clock,
            injected: Mutex::new((0, 0)),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Changes the faults (e.g. to end an outage).
    pub fn set_faults(&self, f: StoreFaults) {
        *self.faults.lock().expect("faults lock") = f;
    }

    /// How many errors and stalls were injected.
    pub fn injected(&self) -> (u64, u64) {
        *self.injected.lock().expect("injected lock")
    }

    /// Draws this call's fault: an error, a stall, or nothing.
    async fn fault(&self) -> StoreResult<()> {
        let f = *self.faults.lock().expect("faults lock");
        let (err, stall) = {
            let mut rng = self.rng.lock().expect("rng lock");
            (rng.f64() < f.error, rng.f64() < f.stall)
        };
        if err {
            self.injected.lock().expect("injected lock").0 += 1;
            return Err(StoreError::Unavailable {
                message: "injected fault: store unavailable".to_owned(),
                source: None,
            });
        }
        if stall {
            self.injected.lock().expect("injected lock").1 += 1;
            self.clock.sleep_until(after(self.clock.now(), f.stall_for)).await;
        }
        Ok(())
    }
}

#[async_trait]
impl<S: ExecutionStore> ExecutionStore for FaultyStore<S> {
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()> {
        self.fault().await?;
        self.inner.write(events).await
    }

    async fn history(&self, q: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        self.inner.history(q).await
    }

    async fn last_fire(&self, job_id: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.inner.last_fire(job_id).await
    }

    async fn heartbeat(&self, instance_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.inner.heartbeat(instance_id, now).await
    }

    async fn mark_abandoned(
        &self,
        own: &str,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        self.inner.mark_abandoned(own, now, stale_after).await
    }

    async fn prune(&self, p: PrunePolicy) -> StoreResult<u64> {
        self.inner.prune(p).await
    }

    fn supports_claims(&self) -> bool {
        self.inner.supports_claims()
    }

    /// Fails or stalls like [`write`](ExecutionStore::write).
    async fn claim_fires(
        &self,
        instance_id: &str,
        fires: &[FireClaim],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<bool>> {
        self.fault().await?;
        self.inner.claim_fires(instance_id, fires, now).await
    }
}

/// One logged event with the virtual time it was made at.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    /// When the scheduler made it.
    pub at: DateTime<Utc>,
    /// The event.
    pub event: ExecutionEvent,
}

/// An [`Observer`] that keeps every event in order.
#[derive(Debug)]
pub struct EventLog {
    clock: Arc<dyn Clock>,
    events: Mutex<Vec<LoggedEvent>>,
}

impl EventLog {
    /// An empty log stamping events from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        EventLog { clock, events: Mutex::new(Vec::new()) }
    }

    /// The events so far.
    pub fn events(&self) -> Vec<LoggedEvent> {
        self.events.lock().expect("log lock").clone()
    }

    /// How many events so far.
    pub fn len(&self) -> usize {
        self.events.lock().expect("log lock").len()
    }

    /// Whether no event was logged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Observer for EventLog {
    fn on_event(&self, event: &ExecutionEvent) {
        let at = self.clock.now();
        self.events.lock().expect("log lock").push(LoggedEvent { at, event: event.clone() });
    }
}

/// What the checker knows of a job.
#[derive(Debug, Clone)]
struct JobModel {
    /// `None` for a trigger-only job.
    schedule: Option<Schedule>,
    timeout: Option<Duration>,
    retry: RetryPolicy,
    overlap: OverlapPolicy,
    jitter: Duration,
    registered_at: DateTime<Utc>,
    /// Set when the sim's caller paused, unregistered or triggered it: the
    /// exactly-once check then skips the job.
    irregular: bool,
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: &'static str,
    /// The job.
    pub job_id: String,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated by job \"{}\": {}", self.invariant, self.job_id, self.detail)
    }
}

/// What [`Sim::check`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckReport {
    /// Nominal fires that came due in the checked window.
    pub fires_due: u64,
    /// Runs started (first attempts).
    pub runs: u64,
    /// Attempts in all.
    pub attempts: u64,
    /// Fires recorded as skipped.
    pub skipped: u64,
    /// Attempts per final status.
    pub timed_out: u64,
    /// Attempts that failed (any failure status).
    pub failed: u64,
}

/// The simulated world. See the module docs.
pub struct Sim {
    rt: LocalRuntime,
    store: Arc<FaultyStore<MemoryStore>>,
    log: Arc<EventLog>,
    scheduler: JobScheduler,
    seed: u64,
    faults: Faults,
    models: BTreeMap<String, JobModel>,
    started_at: Option<DateTime<Utc>>,
    stop_began: Option<DateTime<Utc>>,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.seed)
            .field("now", &self.rt.clock().now())
            .field("jobs", &self.models.len())
            .field("events", &self.log.len())
            .finish()
    }
}

impl Sim {
    /// A world per `cfg`.
    pub fn new(cfg: SimConfig) -> Self {
        if cfg.faults.panic > 0.0 {
            quiet_injected_panics();
        }
        let rt = LocalRuntime::with_clock(VirtualClock::new(cfg.start));
        let clock: Arc<dyn Clock> = Arc::new(rt.clock());
        // The invariants read the whole history.
        let store = Arc::new(FaultyStore::new(
            MemoryStore::unbounded(),
            cfg.store_faults,
            cfg.seed ^ 0x5707_e5ee_d000_0001,
            clock.clone(),
        ));
        let log = Arc::new(EventLog::new(clock.clone()));
        let scheduler = JobScheduler::builder(clock, Arc::new(rt.spawner()))
            .store(store.clone())
            .observer(log.clone())
            .seed(cfg.seed)
            .instance_id(format!("sim-{:x}", cfg.seed))
            .build();
        Sim {
            rt,
            store,
            log,
            scheduler,
            seed: cfg.seed,
            faults: cfg.faults,
            models: BTreeMap::new(),
            started_at: None,
            stop_began: None,
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The scheduler under test.
    pub fn scheduler(&self) -> &JobScheduler {
        &self.scheduler
    }

    /// The runtime (clock and executor).
    pub fn runtime(&self) -> &LocalRuntime {
        &self.rt
    }

    /// The store wrapper (to change faults mid-run).
    pub fn store(&self) -> &Arc<FaultyStore<MemoryStore>> {
        &self.store
    }

    /// The current virtual time.
    pub fn now(&self) -> DateTime<Utc> {
        self.rt.clock().now()
    }

    /// A handler that misbehaves per the configured [`Faults`]. Its choice
    /// for an attempt depends only on the seed, the job, the nominal time and
    /// the attempt number, so it does not change with scheduling order.
    pub fn faulty_handler(&self) -> Arc<dyn JobHandler> {
        Arc::new(FaultyHandler { seed: self.seed, faults: self.faults })
    }

    /// Registers a job and remembers its model for the checker.
    pub fn register(&mut self, cfg: JobConfig) -> Result<()> {
        let id = cfg.id.clone();
        let timeout = cfg.timeout;
        let retry = cfg.retry.clone();
        let overlap = cfg.overlap;
        let jitter = cfg.jitter.unwrap_or_default();
        let schedule = cfg.schedule.clone();
        let timezone = cfg.timezone.clone();
        self.scheduler.register(cfg)?;
        // Registration checked both; a trigger-only job runs only by hand.
        let schedule = match (schedule, timezone) {
            (Some(s), Some(tz)) => Some(s.build().and_then(|s| s.with_timezone(&tz))?),
            (Some(s), None) => Some(s.build()?),
            (None, _) => None,
        };
        let irregular = schedule.is_none();
        let registered_at = self.now();
        self.models.insert(
            id,
            JobModel { schedule, timeout, retry, overlap, jitter, registered_at, irregular },
        );
        Ok(())
    }

    /// Marks a job as driven by hand (paused, triggered, unregistered), so
    /// the exactly-once check leaves it out; the other invariants still apply.
    pub fn mark_irregular(&mut self, job_id: &str) {
        if let Some(m) = self.models.get_mut(job_id) {
            m.irregular = true;
        }
    }

    /// Starts the scheduler.
    pub fn start(&mut self) {
        self.started_at = Some(self.now());
        self.rt.block_on(self.scheduler.start()).expect("sim: start");
    }

    /// Runs the world for `d` of virtual time.
    pub fn run_for(&self, d: Duration) {
        self.rt.advance(d);
    }

    /// Stops the scheduler with `grace`.
    pub fn stop(&mut self, grace: Duration) -> StopReport {
        self.stop_began = Some(self.now());
        self.rt.block_on(self.scheduler.stop(grace)).expect("sim: stop")
    }

    /// Every event the scheduler made, in order.
    pub fn events(&self) -> Vec<LoggedEvent> {
        self.log.events()
    }

    /// Every stored row.
    pub fn records(&self) -> Vec<ExecutionRecord> {
        self.store.inner().all()
    }

    /// Checks every invariant over the log and the store; call after
    /// [`stop`](Self::stop).
    pub fn check(&self) -> std::result::Result<CheckReport, Vec<Violation>> {
        let events = self.log.events();
        check_invariants(
            &self.models,
            &events,
            &self.records(),
            self.started_at.unwrap_or_else(|| self.now()),
            self.stop_began.unwrap_or_else(|| self.now()),
        )
    }
}

struct FaultyHandler {
    seed: u64,
    faults: Faults,
}

#[async_trait]
impl JobHandler for FaultyHandler {
    async fn run(&self, ctx: JobContext) -> JobResult {
        let mut h = std::hash::DefaultHasher::new();
        (self.seed, &*ctx.job_id, ctx.scheduled_at, ctx.attempt).hash(&mut h);
        let mut rng = fastrand::Rng::with_seed(h.finish());
        let f = &self.faults;
        let roll = rng.f64();
        let pick = |max: Duration, rng: &mut fastrand::Rng| {
            Duration::from_millis(rng.u64(0..=u64::try_from(max.as_millis()).unwrap_or(0)))
        };
        if roll < f.fail {
            ctx.sleep(pick(f.normal_run, &mut rng)).await;
            JobResult::failed("injected failure")
        } else if roll < f.fail + f.panic {
            std::panic::panic_any(INJECTED_PANIC)
        } else if roll < f.fail + f.panic + f.hang {
            // Ignores cancellation: only a timeout or the end of a stop grace ends it.
            futures::future::pending::<JobResult>().await
        } else if roll < f.fail + f.panic + f.hang + f.long {
            let d = pick(f.long_run, &mut rng);
            if ctx.sleep(d).await { JobResult::ok() } else { JobResult::failed("cancelled") }
        } else {
            ctx.sleep(pick(f.normal_run, &mut rng)).await;
            JobResult::ok()
        }
    }
}

type Attempts = BTreeMap<u32, (Option<DateTime<Utc>>, Option<(DateTime<Utc>, ExecutionStatus)>)>;

fn check_invariants(
    models: &BTreeMap<String, JobModel>,
    events: &[LoggedEvent],
    records: &[ExecutionRecord],
    started: DateTime<Utc>,
    stop_began: DateTime<Utc>,
) -> std::result::Result<CheckReport, Vec<Violation>> {
    let mut v = Vec::new();
    let mut report = CheckReport::default();
    let mut bad = |invariant: &'static str, job: &str, detail: String| {
        v.push(Violation { invariant, job_id: job.to_owned(), detail })
    };
    // Per job: nominal times seen (runs and skips), and per execution its attempts.
    let mut seen: HashMap<&str, Vec<DateTime<Utc>>> = HashMap::new();
    let mut runs: HashMap<&str, BTreeMap<crate::store::ExecutionId, Attempts>> = HashMap::new();
    // Attempts recorded `cancelled` without ever starting (a run cut in its
    // retry backoff, a queued run cancelled): one row each, and no start.
    let mut unstarted = 0u64;
    for e in events {
        match &e.event {
            ExecutionEvent::Started(s) => {
                report.attempts += 1;
                if s.attempt == 1 {
                    report.runs += 1;
                    seen.entry(&s.job_id).or_default().push(s.scheduled_at);
                    if s.started_at < s.scheduled_at {
                        bad(
                            "no fire runs early",
                            &s.job_id,
                            format!("started {} before {}", s.started_at, s.scheduled_at),
                        );
                    }
                }
                if s.started_at > stop_began {
                    bad(
                        "nothing runs after cancellation",
                        &s.job_id,
                        format!(
                            "attempt {} started at {} after stop at {stop_began}",
                            s.attempt, s.started_at
                        ),
                    );
                }
                runs.entry(&s.job_id)
                    .or_default()
                    .entry(s.execution_id)
                    .or_default()
                    .entry(s.attempt)
                    .or_default()
                    .0 = Some(s.started_at);
            }
            ExecutionEvent::Finished(f) => {
                let started = runs
                    .get(&*f.job_id)
                    .and_then(|r| r.get(&f.execution_id))
                    .and_then(|a| a.get(&f.attempt))
                    .is_some_and(|(start, _)| start.is_some());
                if !started
                    && f.status == ExecutionStatus::Cancelled
                    && f.duration.is_zero()
                    && f.started_at == f.completed_at
                {
                    unstarted += 1;
                    continue;
                }
                match f.status {
                    ExecutionStatus::TimedOut => report.timed_out += 1,
                    s if s.is_failure() => report.failed += 1,
                    _ => {}
                }
                runs.entry(&f.job_id)
                    .or_default()
                    .entry(f.execution_id)
                    .or_default()
                    .entry(f.attempt)
                    .or_default()
                    .1 = Some((f.completed_at, f.status));
            }
            ExecutionEvent::Skipped(s) => {
                report.skipped += 1;
                seen.entry(&s.job_id).or_default().push(s.scheduled_at);
            }
        }
    }
    for (job, model) in models {
        let job = job.as_str();
        // Exactly once: every nominal fire in the window, once; none other.
        if let (false, Some(schedule)) = (model.irregular, &model.schedule) {
            let from = model.registered_at.max(started);
            // Fires close to the stop may be cut by jitter or the stop itself.
            let horizon = before(stop_began, model.jitter);
            let mut due = Vec::new();
            let mut t = from;
            while let Some(n) = schedule.next_after(t) {
                if n > stop_began {
                    break;
                }
                due.push(n);
                t = n;
            }
            report.fires_due += due.len() as u64;
            let mut got = seen.remove(job).unwrap_or_default();
            got.sort();
            for w in got.windows(2) {
                if w[0] == w[1] {
                    bad(
                        "every due fire exactly once",
                        job,
                        format!("fire {} recorded twice", w[0]),
                    );
                }
            }
            for d in &due {
                if *d <= horizon && got.binary_search(d).is_err() {
                    bad(
                        "every due fire exactly once",
                        job,
                        format!("fire {d} neither run nor skipped"),
                    );
                }
            }
            for g in &got {
                if due.binary_search(g).is_err() {
                    bad("every due fire exactly once", job, format!("fire {g} is not a due fire"));
                }
            }
        }
        let mut intervals = Vec::new();
        for (exec, attempts) in runs.remove(job).unwrap_or_default() {
            let mut prev_end: Option<(u32, DateTime<Utc>)> = None;
            let (mut first, mut last) = (None, None);
            for (n, (start, end)) in &attempts {
                let Some(start) = start else {
                    bad(
                        "stop leaves no record open",
                        job,
                        format!("execution {exec} attempt {n} ended without a start"),
                    );
                    continue;
                };
                first = first.or(Some(*start));
                let Some((end, status)) = end else {
                    bad(
                        "stop leaves no record open",
                        job,
                        format!("execution {exec} attempt {n} never ended"),
                    );
                    continue;
                };
                last = Some(*end);
                if *status == ExecutionStatus::TimedOut {
                    let want = model.timeout.map(|t| after(*start, t));
                    if want != Some(*end) {
                        bad(
                            "timeouts end at the deadline",
                            job,
                            format!(
                                "execution {exec} attempt {n} timed out at {end}, deadline {want:?}"
                            ),
                        );
                    }
                }
                if let Some((pn, pend)) = prev_end {
                    let (lo, hi) = model.retry.bounds(pn);
                    let gap = std_dur(pend, *start);
                    if *start < pend || gap < lo || gap > hi {
                        bad(
                            "attempt times follow the backoff formula",
                            job,
                            format!(
                                "execution {exec}: attempt {n} began {gap:?} after attempt {pn}, expected within [{lo:?}, {hi:?}]"
                            ),
                        );
                    }
                }
                prev_end = Some((*n, *end));
            }
            if let (Some(a), Some(b)) = (first, last) {
                intervals.push((a, b, exec));
            }
        }
        if matches!(model.overlap, OverlapPolicy::Skip | OverlapPolicy::Queue) {
            intervals.sort();
            for w in intervals.windows(2) {
                if w[1].0 < w[0].1 {
                    bad(
                        "overlap policy holds",
                        job,
                        format!(
                            "execution {} started at {} while {} ran until {}",
                            w[1].2, w[1].0, w[0].2, w[0].1
                        ),
                    );
                }
            }
        }
    }
    // Every event reached the store: one row per attempt and per skip.
    let expected_rows = report.attempts + report.skipped + unstarted;
    if records.len() as u64 != expected_rows {
        bad(
            "every record reaches the store",
            "*",
            format!("{} rows stored, {expected_rows} made", records.len()),
        );
    }
    if let Some(r) = records.iter().find(|r| r.status == ExecutionStatus::Running) {
        bad(
            "stop leaves no record open",
            &r.job_id,
            format!("row {} attempt {} still running", r.execution_id, r.attempt),
        );
    }
    if v.is_empty() { Ok(report) } else { Err(v) }
}
