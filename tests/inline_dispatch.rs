//! Inline dispatch on the virtual clock: a handler that finishes on its first
//! poll runs on the driver (no task) and reaches the store as one completed
//! row; a handler that waits, or that holds the driver for over 1 ms, is
//! spawned from then on; `inline_dispatch(false)` spawns every run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mscribe_scheduler::FnSpawner;
use mscribe_scheduler::{
    ExecutionEvent, ExecutionStatus, JobConfig, JobContext, JobScheduler, LocalRuntime,
    MemoryStore, Observer, Spawner,
};

/// Counts what the scheduler spawns, and the events its observers see.
struct World {
    rt: LocalRuntime,
    store: Arc<MemoryStore>,
    sched: JobScheduler,
    spawns: Arc<AtomicUsize>,
    seen: Arc<Seen>,
}

#[derive(Debug, Default)]
struct Seen(Mutex<Vec<&'static str>>);

impl Observer for Seen {
    fn on_event(&self, ev: &ExecutionEvent) {
        let kind = match ev {
            ExecutionEvent::Started(_) => "started",
            ExecutionEvent::Finished(_) => "finished",
            ExecutionEvent::Skipped(_) => "skipped",
        };
        self.0.lock().unwrap().push(kind);
    }
}

impl Seen {
    fn count(&self, kind: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|k| **k == kind).count()
    }
}

/// The driver, the heartbeat loop and the record writer.
const BACKGROUND_TASKS: usize = 3;

fn world(inline: bool) -> World {
    world_with(inline, true)
}

/// Without observers the start event of an inline attempt is built only
/// when the handler turns out to wait.
fn world_with(inline: bool, observed: bool) -> World {
    let rt = LocalRuntime::new();
    let store = Arc::new(MemoryStore::new());
    let spawns = Arc::new(AtomicUsize::new(0));
    let local = rt.spawner();
    let counted = spawns.clone();
    let spawner = FnSpawner(move |f| {
        counted.fetch_add(1, Ordering::SeqCst);
        local.spawn(f);
    });
    let seen = Arc::new(Seen::default());
    let mut builder = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(spawner))
        .store(store.clone())
        .inline_dispatch(inline)
        .seed(3);
    if observed {
        builder = builder.observer(seen.clone());
    }
    let sched = builder.build();
    World { rt, store, sched, spawns, seen }
}

impl World {
    fn run_for(&self, d: Duration) {
        self.rt.block_on(self.sched.start()).unwrap();
        self.rt.advance(d);
    }

    fn runs_spawned(&self) -> usize {
        self.spawns.load(Ordering::SeqCst) - BACKGROUND_TASKS
    }

    fn statuses(&self) -> Vec<ExecutionStatus> {
        self.store.all().iter().map(|r| r.status).collect()
    }

    /// The store holds `runs` rows, each a success that took `ms`.
    fn assert_succeeded(&self, runs: usize, ms: u64) {
        let rows = self.store.all();
        assert_eq!(rows.len(), runs);
        assert!(
            rows.iter()
                .all(|r| r.status == ExecutionStatus::Succeeded && r.duration_ms == Some(ms))
        );
    }
}

fn every_10s(id: &str, handler: impl mscribe_scheduler::JobHandler) -> JobConfig {
    JobConfig::new(id, handler).schedule(Duration::from_secs(10)).timeout(Duration::from_secs(5))
}

#[test]
fn a_handler_done_on_its_first_poll_runs_on_the_driver_as_one_completed_row() {
    let w = world(true);
    w.sched.register(every_10s("quick", |_ctx: JobContext| async {})).unwrap();
    w.run_for(Duration::from_secs(100));
    assert_eq!(w.runs_spawned(), 0, "no run needed a task");
    assert_eq!(w.statuses(), vec![ExecutionStatus::Succeeded; 10]);
    // Observers see both ends of every attempt; no timeout timer was left.
    assert_eq!((w.seen.count("started"), w.seen.count("finished")), (10, 10));
    assert_eq!(w.rt.clock().pending_timers(), 2, "only the driver's and the heartbeat's");
    let report = w.rt.block_on(w.sched.stop(Duration::ZERO)).unwrap();
    assert_eq!(report.dropped, 0);
}

#[test]
fn a_handler_that_waits_is_spawned_and_so_are_its_jobs_later_runs() {
    for observed in [true, false] {
        a_handler_that_waits(world_with(true, observed));
    }
}

fn a_handler_that_waits(w: World) {
    w.sched
        .register(every_10s("waits", |ctx: JobContext| async move {
            ctx.sleep(Duration::from_secs(1)).await;
        }))
        .unwrap();
    w.rt.block_on(w.sched.start()).unwrap();
    // Half-way through the first run its start is in the store: it runs.
    w.rt.advance(Duration::from_millis(10_500));
    assert_eq!(w.statuses(), vec![ExecutionStatus::Running]);
    w.rt.advance(Duration::from_millis(94_500));
    assert_eq!(w.runs_spawned(), 10, "the first after its inline poll, the rest directly");
    w.assert_succeeded(10, 1000);
}

#[test]
fn a_handler_that_holds_the_driver_over_1_ms_is_spawned_from_then_on() {
    let w = world(true);
    let clock = w.rt.clock();
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    w.sched
        .register(every_10s("busy", move |_ctx: JobContext| {
            // Synchronous work before the first await: 5 ms of (virtual) time.
            p.fetch_add(1, Ordering::SeqCst);
            clock.advance(Duration::from_millis(5));
            async {}
        }))
        .unwrap();
    w.run_for(Duration::from_secs(100));
    assert_eq!(polls.load(Ordering::SeqCst), 10);
    assert_eq!(w.runs_spawned(), 9, "all but the first, which ran inline");
    w.assert_succeeded(10, 5);
}

#[test]
fn with_inline_dispatch_off_every_run_is_spawned() {
    let w = world(false);
    w.sched.register(every_10s("quick", |_ctx: JobContext| async {})).unwrap();
    w.run_for(Duration::from_secs(100));
    assert_eq!(w.runs_spawned(), 10);
    assert_eq!(w.statuses(), vec![ExecutionStatus::Succeeded; 10]);
}
