//! Test support shared by the engine's integration tests: a scheduler on a
//! virtual clock, driven by the crate's `LocalRuntime` or by a tokio
//! runtime, with one API for both.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mscribe_scheduler::TokioSpawner;
use mscribe_scheduler::{
    Clock, ExecutionRecord, ExecutionStore, JobScheduler, LocalRuntime, MemoryStore,
    SchedulerBuilder, Spawner, StopReport, VirtualClock,
};

/// Which runtime a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The crate's single-threaded executor.
    Local,
    /// A current-thread tokio runtime with the scheduler's tasks on
    /// `TokioSpawner`, and the same virtual clock moved by the test.
    Tokio,
}

/// Every runtime, with the inline dispatch on and off: the cases a
/// promise of the engine must hold in.
pub const CASES: [(Kind, bool); 4] =
    [(Kind::Local, true), (Kind::Local, false), (Kind::Tokio, true), (Kind::Tokio, false)];

/// A runtime on a virtual clock.
pub enum Rt {
    Local(LocalRuntime),
    Tokio(tokio::runtime::Runtime, VirtualClock),
}

impl Rt {
    pub fn new(kind: Kind) -> Self {
        match kind {
            Kind::Local => Rt::Local(LocalRuntime::new()),
            Kind::Tokio => {
                let rt = tokio::runtime::Builder::new_current_thread().build().expect("tokio");
                Rt::Tokio(rt, VirtualClock::at_epoch_2026())
            }
        }
    }

    pub fn clock(&self) -> VirtualClock {
        match self {
            Rt::Local(rt) => rt.clock(),
            Rt::Tokio(_, clock) => clock.clone(),
        }
    }

    pub fn spawner(&self) -> Arc<dyn Spawner> {
        match self {
            Rt::Local(rt) => Arc::new(rt.spawner()),
            Rt::Tokio(rt, _) => Arc::new(TokioSpawner::new(rt.handle().clone())),
        }
    }

    /// Runs every task that can make progress, without moving the clock.
    pub fn settle(&self) {
        match self {
            Rt::Local(rt) => {
                rt.run_until_stalled();
            }
            Rt::Tokio(rt, _) => rt.block_on(async {
                for _ in 0..64 {
                    tokio::task::yield_now().await;
                }
            }),
        }
    }

    /// Moves the clock forward by `d`, timer by timer, letting the tasks
    /// run at each one.
    pub fn advance(&self, d: Duration) {
        match self {
            Rt::Local(rt) => rt.advance(d),
            Rt::Tokio(_, clock) => {
                let to = clock.now() + chrono::Duration::from_std(d).expect("a test's duration");
                self.settle();
                while let Some(next) = clock.next_timer().filter(|t| *t <= to) {
                    clock.advance_to(next);
                    self.settle();
                }
                clock.advance_to(to);
                self.settle();
            }
        }
    }

    /// Drives `fut` to its end, moving the clock to the next timer whenever
    /// every task is idle (as `LocalRuntime::block_on` does).
    pub fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Rt::Local(rt) => rt.block_on(fut),
            Rt::Tokio(rt, clock) => {
                let task = rt.spawn(fut);
                loop {
                    self.settle();
                    if task.is_finished() {
                        return rt.block_on(task).expect("the task ran to its end");
                    }
                    let next = clock.next_timer().expect("a blocked future with no timer");
                    clock.advance_to(next);
                }
            }
        }
    }
}

/// A scheduler on a runtime, with a store the test reads.
pub struct World {
    pub rt: Rt,
    pub store: Arc<MemoryStore>,
    pub sched: JobScheduler,
    pub t0: DateTime<Utc>,
}

impl World {
    /// A world on `kind`, with the inline dispatch `inline`.
    pub fn new(kind: Kind, inline: bool) -> Self {
        Self::with(kind, |b| b.inline_dispatch(inline))
    }

    /// A world whose builder `f` finishes (its store, observers, ...).
    pub fn with(kind: Kind, f: impl FnOnce(SchedulerBuilder) -> SchedulerBuilder) -> Self {
        let rt = Rt::new(kind);
        let store = Arc::new(MemoryStore::unbounded());
        let builder = JobScheduler::builder(Arc::new(rt.clock()), rt.spawner())
            .store(store.clone() as Arc<dyn ExecutionStore>)
            .seed(7);
        let sched = f(builder).build();
        let t0 = rt.clock().now();
        World { rt, store, sched, t0 }
    }

    pub fn start(&self) {
        let s = self.sched.clone();
        self.rt.block_on(async move { s.start().await }).expect("start");
    }

    pub fn stop(&self, grace: Duration) -> StopReport {
        let s = self.sched.clone();
        self.rt.block_on(async move { s.stop(grace).await }).expect("stop")
    }

    /// `t0 + s` seconds.
    pub fn secs(&self, s: i64) -> DateTime<Utc> {
        self.t0 + chrono::Duration::seconds(s)
    }

    /// Every row of `job`, by start then attempt.
    pub fn rows(&self, job: &str) -> Vec<ExecutionRecord> {
        let mut rows: Vec<_> = self.store.all().into_iter().filter(|r| r.job_id == job).collect();
        rows.sort_by_key(|r| (r.started_at, r.attempt));
        rows
    }
}
