//! The engine on a second runtime: smol's executor, driven by hand over the
//! virtual clock (no tokio involved, no wall-clock wait).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mscribe_scheduler::FnSpawner;
use mscribe_scheduler::{
    Clock, ExecutionStatus, JobConfig, JobContext, JobScheduler, MemoryStore, VirtualClock,
};

#[test]
fn runs_on_smol_executor() {
    let ex = Arc::new(smol::Executor::new());
    let clock = VirtualClock::at_epoch_2026();
    let t0 = clock.now();
    let store = Arc::new(MemoryStore::new());
    let spawn_ex = ex.clone();
    let sched = JobScheduler::builder(
        Arc::new(clock.clone()),
        Arc::new(FnSpawner(move |f| spawn_ex.spawn(f).detach())),
    )
    .store(store.clone())
    .build();
    let count = Arc::new(AtomicU32::new(0));
    let c = count.clone();
    sched
        .register(
            JobConfig::new("tick", move |ctx: JobContext| {
                c.fetch_add(1, Ordering::SeqCst);
                async move {
                    ctx.sleep(Duration::from_millis(5)).await;
                }
            })
            .schedule(Duration::from_millis(20)),
        )
        .unwrap();

    // Drives smol's executor until idle, then steps the clock to the next timer.
    let run_until = |until: chrono::DateTime<chrono::Utc>| loop {
        while ex.try_tick() {}
        match clock.next_timer() {
            Some(t) if t <= until => clock.advance_to(t),
            _ => {
                clock.advance_to(until);
                while ex.try_tick() {}
                break;
            }
        }
    };
    let start = ex.spawn({
        let s = sched.clone();
        async move { s.start().await }
    });
    run_until(t0);
    smol::block_on(start).unwrap();
    run_until(t0 + chrono::Duration::milliseconds(1_000));
    assert_eq!(count.load(Ordering::SeqCst), 50);

    let stop = ex.spawn({
        let s = sched.clone();
        async move { s.stop(Duration::from_secs(1)).await }
    });
    run_until(clock.now() + chrono::Duration::seconds(2));
    smol::block_on(stop).unwrap();
    let rows = store.all();
    assert_eq!(rows.len(), 50);
    // The fire at exactly 1 s had just started when stop() cancelled it; its
    // handler returns at once on cancellation.
    for (i, r) in rows.iter().enumerate() {
        let ms = if i == 49 { 0 } else { 5 };
        assert_eq!((r.status, r.duration_ms), (ExecutionStatus::Succeeded, Some(ms)), "{r:?}");
    }
}
