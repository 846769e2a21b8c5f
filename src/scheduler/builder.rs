//! Building a scheduler: [`SchedulerBuilder`], its settings and their
//! defaults.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_listener::Event;

use super::registry::Jobs;
use super::timeline::Timeline;
use super::{Inner, JobScheduler, Observer, Phase, State};
use crate::cancel::CancellationToken;
use crate::clock::Clock;
use crate::guard::GuardedClock;
use crate::recorder::Recorder;
use crate::runtime::Spawner;
use crate::signal::Signal;
use crate::store::{ExecutionStore, MemoryStore};

/// How long before its instant a claimed job's scheduled fire is claimed,
/// unless [`SchedulerBuilder::claim_ahead`] says otherwise.
pub const DEFAULT_CLAIM_AHEAD: Duration = Duration::from_millis(500);

/// The shortest [`SchedulerBuilder::lease`]: 10 ms, so that its renewal
/// every third of it comes in time.
pub const MIN_LEASE: Duration = Duration::from_millis(10);

/// The longest [`SchedulerBuilder::claim_ahead`]: a year. A fire's time
/// minus a longer one could pass the start of the calendar.
pub const MAX_CLAIM_AHEAD: Duration = Duration::from_secs(366 * 24 * 3600);

/// Settings of a scheduler, set through [`SchedulerBuilder`].
#[derive(Debug, Clone)]
pub(super) struct Settings {
    buffer_capacity: usize,
    batch: usize,
    pub(super) flush_timeout: Duration,
    pub(super) heartbeat_interval: Duration,
    pub(super) stale_after: Duration,
    pub(super) inline: bool,
    pub(super) claim: bool,
    pub(super) lease: Duration,
    pub(super) standby: Duration,
    pub(super) ahead: Duration,
}

/// Builds a [`JobScheduler`] from its parts.
///
/// ```
/// use std::sync::Arc;
/// use mscribe_scheduler::{JobScheduler, LocalRuntime, MemoryStore};
///
/// let rt = LocalRuntime::new();
/// let scheduler = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
///     .store(Arc::new(MemoryStore::new()))
///     .seed(42)
///     .build();
/// assert!(scheduler.jobs().is_empty());
/// ```
pub struct SchedulerBuilder {
    clock: Arc<dyn Clock>,
    spawner: Arc<dyn Spawner>,
    store: Option<Arc<dyn ExecutionStore>>,
    seed: Option<u64>,
    instance_id: Option<String>,
    observers: Vec<Arc<dyn Observer>>,
    settings: Settings,
}

impl fmt::Debug for SchedulerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedulerBuilder")
            .field("clock", &self.clock)
            .field("spawner", &self.spawner)
            .field("store", &self.store)
            .field("seed", &self.seed)
            .field("instance_id", &self.instance_id)
            .field("settings", &self.settings)
            .finish()
    }
}

impl SchedulerBuilder {
    /// Records go to `store` (default: a new [`MemoryStore`]).
    pub fn store(mut self, store: Arc<dyn ExecutionStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Adds an observer of every record (metrics, alerts).
    pub fn observer(mut self, o: Arc<dyn Observer>) -> Self {
        self.observers.push(o);
        self
    }

    /// Seeds the RNG behind jitter and ids (default: random), so a run on a
    /// virtual clock repeats exactly.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Names this instance in its records (default: random hex).
    ///
    /// A fixed id (a host or pod name) must name one live process at a
    /// time: at its start a scheduler marks every run its id left
    /// `running` as `abandoned` ([`ExecutionStore::abandon_own`]), since
    /// nothing runs in it yet.
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// How many records may wait for the store (default 100,000).
    pub fn buffer_capacity(mut self, n: usize) -> Self {
        self.settings.buffer_capacity = n.max(1);
        self
    }

    /// How many records go to the store in one write (default 512).
    pub fn write_batch(mut self, n: usize) -> Self {
        self.settings.batch = n.max(1);
        self
    }

    /// How long `stop()` waits for buffered records to reach the store
    /// (default 30 s).
    pub fn flush_timeout(mut self, d: Duration) -> Self {
        self.settings.flush_timeout = d;
        self
    }

    /// How often this instance writes its heartbeat (default 10 s), and after
    /// how long without one another instance's runs count as abandoned
    /// (default 60 s).
    pub fn heartbeat(mut self, interval: Duration, stale_after: Duration) -> Self {
        self.settings.heartbeat_interval = interval.max(Duration::from_millis(1));
        self.settings.stale_after = stale_after;
        self
    }

    /// Whether the driver runs a due handler's first poll itself (default
    /// on). A handler that finishes on that poll (the common case for short
    /// jobs) then costs no task spawn; one that returns `Pending` is handed
    /// to the spawner, and so is every later run of a job whose handler ever
    /// returned `Pending` there or took longer than 1 ms in it. Turn it off
    /// when handlers block their thread in their first poll (synchronous
    /// I/O, heavy computation before the first `.await`): while the driver
    /// is inside one, no other fire starts.
    pub fn inline_dispatch(mut self, on: bool) -> Self {
        self.settings.inline = on;
        self
    }

    /// Whether each scheduled fire is claimed in the store before it is
    /// decided (default off), for several instances that share one store
    /// and register the same jobs: each fire then belongs to one instance,
    /// the first whose claim reaches the store
    /// ([`ExecutionStore::claim_fires`]). Manual triggers and jobs marked
    /// [`JobConfig::per_instance`](crate::JobConfig::per_instance) are not
    /// claimed. A fire whose claim fails is recorded `skipped`: without the
    /// store no instance can tell whether another ran it. The details are in
    /// docs/SEMANTICS.md §12.
    ///
    /// [`JobScheduler::start`] fails with
    /// [`Error::ClaimsUnsupported`](crate::Error::ClaimsUnsupported) when the
    /// store cannot claim ([`ExecutionStore::supports_claims`]).
    pub fn claim_fires(mut self, on: bool) -> Self {
        self.settings.claim = on;
        self
    }

    /// How long the lease on a claimed fire lasts (default 15 s, at least
    /// [`MIN_LEASE`], 10 ms). The owner renews its leases every third of it while their runs
    /// go on. Once a lease has run out without the fire ending, another
    /// instance takes the fire over (docs/SEMANTICS.md §12): a shorter
    /// lease recovers sooner from a crash, a longer one survives longer
    /// pauses of the owner (or of the database) without a second start.
    pub fn lease(mut self, d: Duration) -> Self {
        self.settings.lease = d.max(MIN_LEASE);
        self
    }

    /// How long an instance waits before it claims a fire that another
    /// live instance is preferred for (default 250 ms; zero turns claim
    /// affinity off).
    ///
    /// With claims on, each job is preferred by one of the instances that
    /// heartbeat into the store (rendezvous hashing of the job's id over
    /// them, read again at each heartbeat). The preferred instance claims
    /// the job's fires at once; the others claim them after this delay,
    /// and normally find them taken. A burst of N due fires is then about N
    /// claims at its instant instead of N per instance, and no claim waits
    /// for another instance's uncommitted one. Claims still decide every
    /// fire, so affinity changes when a fire is claimed, never whether it
    /// runs once. When the preferred instance is gone (crashed, stopped,
    /// partitioned), the job's next fire starts this much late; the
    /// instance that won it then claims the job at once until the view of
    /// the live instances settles. The details are in docs/SEMANTICS.md §12.
    pub fn claim_standby(mut self, d: Duration) -> Self {
        self.settings.standby = d;
        self
    }

    /// How long before its instant a scheduled fire is claimed (default
    /// [`DEFAULT_CLAIM_AHEAD`], 500 ms; zero claims each fire at its
    /// instant).
    ///
    /// With claims on, the claim of a fire is then settled before the fire
    /// is due: the fire won waits, leased, and starts at its instant with
    /// no round trip to the store in between, so a burst of fires due
    /// together is not late by the time the database takes to write its
    /// claims. The overlap policy is still applied at the instant. A fire
    /// held this way is recorded `skipped` when its job is paused or
    /// unregistered before the instant; a scheduler that stops first still
    /// starts the fires it holds, at their instant, and tells their runs
    /// to stop as it does the runs going on (those whose instant comes after
    /// the stop's grace are recorded `skipped`). A job with a cluster limit
    /// ([`JobConfig::max_concurrent`](crate::JobConfig::max_concurrent) or
    /// [`OverlapScope::Cluster`](crate::OverlapScope::Cluster)) is claimed
    /// at its instant, since its claim counts the runs live then. Standby claims
    /// (see [`claim_standby`](Self::claim_standby)) count their delay from
    /// the same earlier moment, so when the preferred instance is gone and
    /// the standby delay is shorter than this, the fire still starts on
    /// time. Keep it under the lease; the details are in
    /// docs/SEMANTICS.md §12. A value over [`MAX_CLAIM_AHEAD`] (a year) is
    /// taken as it.
    pub fn claim_ahead(mut self, d: Duration) -> Self {
        self.settings.ahead = d.min(MAX_CLAIM_AHEAD);
        self
    }

    /// Builds the scheduler. Nothing fires until [`JobScheduler::start`].
    pub fn build(self) -> JobScheduler {
        let clock = Arc::new(GuardedClock::new(self.clock));
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let mut rng = match self.seed {
            Some(s) => fastrand::Rng::with_seed(s),
            None => fastrand::Rng::new(),
        };
        // Execution ids are (instance bits, counter). The bits mix the seed's
        // draw with the build time, so a restarted instance with the same seed
        // (a replayed simulation, a test) never reuses an earlier id.
        let built_at = clock.now();
        let instance_bits = rng.u64(..)
            ^ (built_at.timestamp() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ u64::from(built_at.timestamp_subsec_nanos());
        let instance_id = self.instance_id.unwrap_or_else(|| format!("{instance_bits:016x}"));
        let recorder = Recorder::new(self.settings.buffer_capacity, self.settings.batch);
        JobScheduler {
            inner: Arc::new(Inner {
                clock,
                dyn_clock,
                spawner: self.spawner,
                store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
                recorder,
                instance_id: instance_id.into(),
                instance_bits,
                observers: self.observers,
                settings: self.settings,
                state: Mutex::new(State {
                    phase: Phase::Created,
                    jobs: Jobs::default(),
                    timeline: Timeline::default(),
                    seq: 0,
                    rng,
                    next_exec: 0,
                    live_runs: 0,
                    driver_wake: None,
                    shutdown: CancellationToken::new(),
                    background: 0,
                    launches: Vec::new(),
                    claims: Vec::new(),
                    claim_retry: Vec::new(),
                    claiming: Vec::new(),
                    claim_batches: 0,
                    peers: None,
                    standby: Default::default(),
                    standby_sending: false,
                    held: Default::default(),
                    claim_error: None,
                    waiters: HashMap::new(),
                    leases: HashMap::new(),
                    tokens: Vec::new(),
                    crons: HashMap::default(),
                }),
                wake: Signal::default(),
                idle: Event::new(),
            }),
        }
    }
}

#[cfg(feature = "tokio")]
impl Default for JobScheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl JobScheduler {
    /// A scheduler on the system clock and the current tokio runtime,
    /// recording to a [`MemoryStore`].
    ///
    /// # Panics
    /// Outside a tokio runtime.
    #[cfg(feature = "tokio")]
    pub fn new() -> Self {
        Self::builder(
            Arc::new(crate::clock::SystemClock),
            Arc::new(crate::runtime::TokioSpawner::current()),
        )
        .build()
    }

    /// A builder over a clock and a spawner.
    pub fn builder(clock: Arc<dyn Clock>, spawner: Arc<dyn Spawner>) -> SchedulerBuilder {
        SchedulerBuilder {
            clock,
            spawner,
            store: None,
            seed: None,
            instance_id: None,
            observers: Vec::new(),
            settings: Settings {
                buffer_capacity: 100_000,
                batch: 512,
                flush_timeout: Duration::from_secs(30),
                heartbeat_interval: Duration::from_secs(10),
                stale_after: Duration::from_secs(60),
                inline: true,
                claim: false,
                lease: Duration::from_secs(15),
                standby: Duration::from_millis(250),
                ahead: DEFAULT_CLAIM_AHEAD,
            },
        }
    }
}
