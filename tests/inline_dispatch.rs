//! Inline dispatch on the virtual clock: a handler that finishes on its first
//! poll runs on the driver (no task) and reaches the store as one completed
//! row; a handler that waits, or that holds the driver for over 1 ms, is
//! spawned from then on; `inline_dispatch(false)` spawns every run.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mscribe_scheduler::{ExecutionEvent, ExecutionStatus, JobConfig, JobContext, Observer};
use support::World;

/// The events the observers of a world see.
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

/// A world on `LocalRuntime` (seed 3) with the inline dispatch `inline`,
/// whose events the returned `Seen` observes.
fn world(inline: bool) -> (World, Arc<Seen>) {
    world_with(inline, true)
}

/// Without observers the start event of an inline attempt is built only
/// when the handler turns out to wait.
fn world_with(inline: bool, observed: bool) -> (World, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let w = World::local_with(|b| {
        let b = b.inline_dispatch(inline).seed(3);
        if observed { b.observer(seen.clone()) } else { b }
    });
    (w, seen)
}

fn every_10s(id: &str, handler: impl mscribe_scheduler::JobHandler) -> JobConfig {
    JobConfig::new(id, handler).schedule(Duration::from_secs(10)).timeout(Duration::from_secs(5))
}

#[test]
fn a_handler_done_on_its_first_poll_runs_on_the_driver_as_one_completed_row() {
    let (w, seen) = world(true);
    w.sched.register(every_10s("quick", |_ctx: JobContext| async {})).unwrap();
    w.run_for(Duration::from_secs(100));
    assert_eq!(w.runs_spawned(), 0, "no run needed a task");
    assert_eq!(w.statuses(), vec![ExecutionStatus::Succeeded; 10]);
    // Observers see both ends of every attempt; no timeout timer was left.
    assert_eq!((seen.count("started"), seen.count("finished")), (10, 10));
    assert_eq!(w.rt.clock().pending_timers(), 2, "only the driver's and the heartbeat's");
    let report = w.stop(Duration::ZERO);
    assert_eq!(report.dropped, 0);
}

#[test]
fn a_handler_that_waits_is_spawned_and_so_are_its_jobs_later_runs() {
    for observed in [true, false] {
        a_handler_that_waits(world_with(true, observed).0);
    }
}

fn a_handler_that_waits(w: World) {
    w.sched
        .register(every_10s("waits", |ctx: JobContext| async move {
            ctx.sleep(Duration::from_secs(1)).await;
        }))
        .unwrap();
    w.start();
    // Half-way through the first run its start is in the store: it runs.
    w.rt.advance(Duration::from_millis(10_500));
    assert_eq!(w.statuses(), vec![ExecutionStatus::Running]);
    w.rt.advance(Duration::from_millis(94_500));
    assert_eq!(w.runs_spawned(), 10, "the first after its inline poll, the rest directly");
    w.assert_succeeded(10, 1000);
}

#[test]
fn a_handler_that_holds_the_driver_over_1_ms_is_spawned_from_then_on() {
    let (w, _seen) = world(true);
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
    let (w, _seen) = world(false);
    w.sched.register(every_10s("quick", |_ctx: JobContext| async {})).unwrap();
    w.run_for(Duration::from_secs(100));
    assert_eq!(w.runs_spawned(), 10);
    assert_eq!(w.statuses(), vec![ExecutionStatus::Succeeded; 10]);
}
