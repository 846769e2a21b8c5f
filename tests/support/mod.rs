//! Test support shared by the engine's integration tests: a scheduler on a
//! virtual clock, driven by the crate's `LocalRuntime` or by a tokio
//! runtime, with one API for both.
#![allow(dead_code, unreachable_pub)]

pub mod cluster;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mscribe_scheduler::{
    Clock, ExecutionRecord, ExecutionStatus, ExecutionStore, JobScheduler, LocalRuntime,
    MemoryStore, SchedulerBuilder, Spawner, StopReport, VirtualClock,
};
use mscribe_scheduler::{FnSpawner, TokioSpawner};

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

/// The tasks a started scheduler spawns for itself: its driver, its
/// heartbeat loop and its record writer.
pub const BACKGROUND_TASKS: usize = 3;

/// A runtime on a virtual clock.
pub enum Rt {
    Local(LocalRuntime),
    Tokio(tokio::runtime::Runtime, VirtualClock),
}

impl Rt {
    /// A runtime whose clock starts at 2026-01-01T00:00:00Z.
    pub fn new(kind: Kind) -> Self {
        Self::with_clock(kind, VirtualClock::at_epoch_2026())
    }

    /// A runtime whose clock starts at `t`.
    pub fn at(kind: Kind, t: DateTime<Utc>) -> Self {
        Self::with_clock(kind, VirtualClock::new(t))
    }

    /// A runtime over `clock`.
    pub fn with_clock(kind: Kind, clock: VirtualClock) -> Self {
        match kind {
            Kind::Local => Rt::Local(LocalRuntime::with_clock(clock)),
            Kind::Tokio => {
                let rt = tokio::runtime::Builder::new_current_thread().build().expect("tokio");
                Rt::Tokio(rt, clock)
            }
        }
    }

    /// The `LocalRuntime` of a `Kind::Local` runtime, for what only it does
    /// (a `block_on` of a future that borrows, `run_until_stalled`'s count).
    ///
    /// # Panics
    /// On tokio.
    pub fn local(&self) -> &LocalRuntime {
        match self {
            Rt::Local(rt) => rt,
            Rt::Tokio(..) => panic!("a LocalRuntime was asked of a tokio runtime"),
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
    /// every task is idle (as `LocalRuntime::block_on` does). A future that
    /// borrows runs on [`local`](Self::local)'s `block_on`.
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

/// A scheduler on a runtime, with a store the test reads. The scheduler's
/// spawner is the runtime's, counting the tasks it starts
/// ([`spawned`](Self::spawned)).
pub struct World {
    pub rt: Rt,
    pub store: Arc<MemoryStore>,
    pub sched: JobScheduler,
    /// When the world was made: the clock's reading then.
    pub t0: DateTime<Utc>,
    spawner: Arc<dyn Spawner>,
    spawns: Arc<AtomicUsize>,
}

impl World {
    /// A world on `kind`, with the inline dispatch `inline`.
    pub fn new(kind: Kind, inline: bool) -> Self {
        Self::with(kind, |b| b.inline_dispatch(inline))
    }

    /// A world whose builder `f` finishes (its observers, settings, ...),
    /// recording to an unbounded store.
    pub fn with(kind: Kind, f: impl FnOnce(SchedulerBuilder) -> SchedulerBuilder) -> Self {
        Self::on(Rt::new(kind), MemoryStore::unbounded(), f)
    }

    /// A world on `LocalRuntime` with the scheduler's defaults: inline
    /// dispatch on, and a store with `MemoryStore::new()`'s bound per job.
    pub fn local() -> Self {
        Self::local_with(|b| b)
    }

    /// [`local`](Self::local), with the builder finished by `f`.
    pub fn local_with(f: impl FnOnce(SchedulerBuilder) -> SchedulerBuilder) -> Self {
        Self::on(Rt::new(Kind::Local), MemoryStore::new(), f)
    }

    /// A world on `rt` recording to `store`, whose builder `f` finishes.
    /// Every constructor ends here: the scheduler has seed 7 unless `f`
    /// sets another.
    pub fn on(
        rt: Rt,
        store: MemoryStore,
        f: impl FnOnce(SchedulerBuilder) -> SchedulerBuilder,
    ) -> Self {
        let spawns = Arc::new(AtomicUsize::new(0));
        let (inner, counted) = (rt.spawner(), spawns.clone());
        let spawner: Arc<dyn Spawner> = Arc::new(FnSpawner(move |fut| {
            counted.fetch_add(1, Ordering::SeqCst);
            inner.spawn(fut);
        }));
        let store = Arc::new(store);
        let sched = f(builder(&rt, &store, &spawner)).build();
        let t0 = rt.clock().now();
        World { rt, store, sched, t0, spawner, spawns }
    }

    /// Replaces the scheduler with a new one on the same runtime and store,
    /// as a restarted process makes: `f` finishes its builder (seed 7 unless
    /// it sets another), as in [`on`](Self::on).
    pub fn restart(&mut self, f: impl FnOnce(SchedulerBuilder) -> SchedulerBuilder) {
        self.sched = f(builder(&self.rt, &self.store, &self.spawner)).build();
    }

    pub fn start(&self) {
        let s = self.sched.clone();
        self.rt.block_on(async move { s.start().await }).expect("start");
    }

    pub fn stop(&self, grace: Duration) -> StopReport {
        let s = self.sched.clone();
        self.rt.block_on(async move { s.stop(grace).await }).expect("stop")
    }

    /// Starts the scheduler and lets it run for `d`.
    pub fn run_for(&self, d: Duration) {
        self.start();
        self.rt.advance(d);
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

    /// Every row of `job` as (scheduled, started, status), the times in
    /// seconds from `t0`, by start, then scheduled time, then attempt.
    pub fn timeline(&self, job: &str) -> Vec<(i64, i64, ExecutionStatus)> {
        let mut rows: Vec<_> = self.store.all().into_iter().filter(|r| r.job_id == job).collect();
        rows.sort_by_key(|r| (r.started_at, r.scheduled_at, r.attempt));
        let secs = |t: DateTime<Utc>| (t - self.t0).num_seconds();
        rows.iter().map(|r| (secs(r.scheduled_at), secs(r.started_at), r.status)).collect()
    }

    /// The status of every row, in the order the store got them.
    pub fn statuses(&self) -> Vec<ExecutionStatus> {
        self.store.all().iter().map(|r| r.status).collect()
    }

    /// The store holds `runs` rows, each a success that took `ms`.
    pub fn assert_succeeded(&self, runs: usize, ms: u64) {
        let rows = self.store.all();
        assert_eq!(rows.len(), runs);
        assert!(
            rows.iter()
                .all(|r| r.status == ExecutionStatus::Succeeded && r.duration_ms == Some(ms))
        );
    }

    /// How many tasks the world's schedulers have spawned.
    pub fn spawned(&self) -> usize {
        self.spawns.load(Ordering::SeqCst)
    }

    /// How many of its runs the world's scheduler, once started (and never
    /// restarted), has spawned as tasks: every spawn but its
    /// [`BACKGROUND_TASKS`].
    pub fn runs_spawned(&self) -> usize {
        self.spawned() - BACKGROUND_TASKS
    }
}

/// A builder on `rt`'s clock, `spawner` and `store`, with seed 7.
fn builder(rt: &Rt, store: &Arc<MemoryStore>, spawner: &Arc<dyn Spawner>) -> SchedulerBuilder {
    JobScheduler::builder(Arc::new(rt.clock()), spawner.clone())
        .store(store.clone() as Arc<dyn ExecutionStore>)
        .seed(7)
}
