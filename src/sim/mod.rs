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

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::{Clock, VirtualClock};
use crate::error::Result;
use crate::job::{JobConfig, JobHandler};
use crate::runtime::LocalRuntime;
use crate::scheduler::{JobScheduler, StopReport};
use crate::store::{ExecutionRecord, MemoryStore};

mod check;
mod cluster;
mod faults;
mod log;
mod seed;
mod workload;

pub use check::{CheckReport, Violation};
use check::{JobModel, check_invariants};
pub use cluster::{ClusterConfig, ClusterReport, ClusterSim, ClusterViolation, Start};
use faults::FaultyHandler;
pub use faults::{Faults, FaultyStore, StoreFaults, quiet_injected_panics};
pub use log::{EventLog, LoggedEvent};
pub use seed::{SEED_ENV, run_seeded};
pub use workload::mixed_job;

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
