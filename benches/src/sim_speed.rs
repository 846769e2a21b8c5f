//! Simulation speed: the engine on the virtual clock and the single-threaded
//! `LocalRuntime`, with the job mix of `tests/simulation.rs`.
//!
//! Two runs: no-op handlers with no faults and records discarded (the
//! engine alone), and the chaotic run of the simulation test (failing,
//! panicking, hanging and long handlers, a store that errors and stalls,
//! every event logged for the invariant checker).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mscribe_scheduler::sim::{Faults, Sim, SimConfig, StoreFaults};
use mscribe_scheduler::{JobContext, JobHandler, JobScheduler, LocalRuntime};
use serde::{Deserialize, Serialize};

use crate::NullStore;

const DAY: u64 = 24 * 3600;

/// What one simulation run measured.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SimResult {
    /// `noop` or `chaotic`.
    pub kind: String,
    /// Jobs registered.
    pub jobs: usize,
    /// Simulated days.
    pub days: u64,
    /// Fires run or skipped (first attempts plus skips).
    pub fires: u64,
    /// Attempts started (retries included).
    pub attempts: u64,
    /// Wall time of start + run + stop, in seconds.
    pub wall_s: f64,
    /// `fires / wall_s`.
    pub fires_per_wall_s: f64,
    /// Simulated seconds per wall second.
    pub sim_to_real: f64,
    /// Fires per wall second of every repetition of this run, each in its
    /// own process; the fields above are the fastest one's (the machine is
    /// shared, so a slower repetition measures the neighbours too).
    #[serde(default)]
    pub repetitions: Vec<f64>,
}

/// No-op handlers, no faults, records discarded: the engine's own speed.
pub fn run_noop(jobs: usize, days: u64, seed: u64) -> SimResult {
    let rt = LocalRuntime::new();
    let store = Arc::new(NullStore::new());
    let scheduler = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
        .store(store.clone())
        .seed(seed)
        .build();
    let handler: Arc<dyn JobHandler> = Arc::new(|_ctx: JobContext| async {});
    for i in 0..jobs {
        scheduler
            .register(mscribe_scheduler::sim::mixed_job(i, handler.clone()))
            .expect("register");
    }
    let wall = Instant::now();
    rt.block_on(scheduler.start()).expect("start");
    rt.advance(Duration::from_secs(days * DAY));
    rt.block_on(scheduler.stop(Duration::from_secs(30))).expect("stop");
    let wall = wall.elapsed();
    let c = store.counts();
    finish("noop", jobs, days, c.first_finished + c.skipped, c.finished, wall)
}

/// The chaotic world of `tests/simulation.rs` (same seed, faults and store
/// faults), timed from start to stop; the invariant check is not timed.
pub fn run_chaotic(jobs: usize, days: u64, seed: u64) -> SimResult {
    let mut sim = Sim::new(SimConfig {
        seed,
        faults: Faults::chaotic(),
        store_faults: StoreFaults { error: 0.02, stall: 0.01, stall_for: Duration::from_secs(30) },
        ..SimConfig::default()
    });
    for i in 0..jobs {
        let handler = sim.faulty_handler();
        sim.register(mscribe_scheduler::sim::mixed_job(i, handler)).expect("register");
    }
    let wall = Instant::now();
    sim.start();
    sim.run_for(Duration::from_secs(days * DAY));
    sim.stop(Duration::from_secs(30));
    let wall = wall.elapsed();
    let report = sim.check().unwrap_or_else(|v| {
        panic!("simulation invariants violated ({} violations), first: {}", v.len(), v[0])
    });
    finish("chaotic", jobs, days, report.runs + report.skipped, report.attempts, wall)
}

fn finish(
    kind: &str,
    jobs: usize,
    days: u64,
    fires: u64,
    attempts: u64,
    wall: Duration,
) -> SimResult {
    let wall_s = wall.as_secs_f64();
    SimResult {
        kind: kind.to_owned(),
        jobs,
        days,
        fires,
        attempts,
        wall_s,
        fires_per_wall_s: fires as f64 / wall_s,
        sim_to_real: (days * DAY) as f64 / wall_s,
        repetitions: Vec::new(),
    }
}
