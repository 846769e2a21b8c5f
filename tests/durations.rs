//! Every public entry point that takes a `Duration` accepts any value of
//! its type: 0, 1 ns, `u64::MAX` seconds, `Duration::MAX` and anything
//! between. A huge timeout is no timeout, a huge grace or sleep waits until
//! done or cancelled, and a jitter over a year is refused naming the field.

use std::sync::Arc;
use std::time::Duration;

use mscribe_scheduler::{
    Clock, Error, JobConfig, JobContext, JobScheduler, LocalRuntime, MemoryStore, MisfirePolicy,
    RetryPolicy, Schedule, VirtualClock,
};
use proptest::prelude::*;

/// Durations at the edges of the type, and arbitrary ones.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_millis(1)),
        Just(Duration::from_secs(u64::MAX)),
        Just(Duration::MAX),
        (0u64..=u64::MAX, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (0u64..10_000_000).prop_map(Duration::from_millis),
    ]
}

/// One scheduler whose every duration setting is `d`, run for an hour of
/// virtual time with a job that sleeps `d` and retries after `d`, then
/// stopped with a grace of `d`. Nothing may panic; the scheduler must stop.
fn run_with(d: Duration) {
    let rt = LocalRuntime::new();
    let store = Arc::new(MemoryStore::new());
    let s = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
        .store(store.clone())
        .flush_timeout(d)
        // Heartbeats and fires every millisecond of a simulated day would
        // only make the test slow: short values are raised to a second.
        .heartbeat(d.max(Duration::from_secs(1)), d)
        .build();
    let retry = RetryPolicy::exponential(3).initial_delay(d).max_delay(d);
    // (A zero or tiny grace, window and delay are cheap: a few fires at most.)
    let misfire = MisfirePolicy::run_all(d, 3).grace(d);
    let sleeper = move |ctx: JobContext| async move {
        ctx.sleep(d).await;
        Err::<(), _>("then fails, to retry")
    };
    let mut job =
        JobConfig::new("sleeper", sleeper).schedule("@every 10m").retry(retry).misfire(misfire);
    if !d.is_zero() {
        job = job.timeout(d);
    }
    match s.register(job.clone().jitter(d)) {
        Ok(()) => {}
        Err(Error::InvalidPolicy { policy: "jitter", job: id, .. }) => {
            assert!(d > Duration::from_secs(365 * 86_400) && id == "sleeper");
            s.register(job).unwrap();
        }
        Err(e) => panic!("{d:?}: {e}"),
    }
    if let Ok(every) = Schedule::interval(d.max(Duration::from_secs(1))) {
        let _ = s.register(JobConfig::new("every", |_c: JobContext| async {}).schedule(every));
    }
    let at = rt.clock().now();
    if let Ok(phased) = Schedule::interval_at(at, d.max(Duration::from_secs(1))) {
        let _ = s.register(JobConfig::new("phased", |_c: JobContext| async {}).schedule(phased));
    }
    rt.block_on(s.start()).unwrap();
    rt.advance(Duration::from_secs(3600));
    rt.advance(d.min(Duration::from_secs(86_400)));
    // A huge grace waits for the runs: each sleeper sees its cancellation.
    let report = rt.block_on(s.stop(d)).unwrap();
    assert_eq!(report.unwritten, 0, "{d:?}");
}

#[test]
fn the_edges_of_duration_are_accepted_everywhere() {
    for d in [Duration::ZERO, Duration::from_nanos(1), Duration::from_secs(u64::MAX), Duration::MAX]
    {
        run_with(d);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_duration_is_accepted_by_every_parameter(d in duration()) {
        run_with(d);
    }

    #[test]
    fn any_duration_moves_a_virtual_clock_without_panicking(d in duration()) {
        let clock = VirtualClock::at_epoch_2026();
        clock.advance(d);
        let rt = LocalRuntime::new();
        rt.advance(d);
        prop_assert!(rt.clock().now() >= VirtualClock::at_epoch_2026().now());
    }
}

/// Times at the ends of what chrono holds: one-shots, phases and clock
/// jumps there fire or not, but never panic.
#[test]
fn times_at_the_ends_of_the_calendar_are_accepted() {
    use chrono::{DateTime, Utc};
    for edge in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
        let rt = LocalRuntime::new();
        let s = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner())).build();
        let once = JobConfig::new("once", |_c: JobContext| async {})
            .schedule(Schedule::once(edge))
            .jitter(Duration::from_secs(86_400));
        s.register(once).unwrap();
        let phased = Schedule::interval_at(edge, Duration::from_secs(60)).unwrap();
        s.register(JobConfig::new("phased", |_c: JobContext| async {}).schedule(phased)).unwrap();
        s.register(JobConfig::new("cron", |_c: JobContext| async {}).schedule("@hourly")).unwrap();
        rt.block_on(s.start()).unwrap();
        rt.advance(Duration::from_secs(3600));
        rt.clock().set(edge);
        rt.advance(Duration::from_secs(3600));
        rt.clock().set(VirtualClock::at_epoch_2026().now());
        rt.advance(Duration::from_secs(3600));
        s.pause("cron").unwrap();
        rt.clock().set(edge);
        s.resume("cron").unwrap();
        rt.advance(Duration::from_secs(3600));
        rt.block_on(s.stop(Duration::MAX)).unwrap();
        let _ = MisfirePolicy::run_all(Duration::MAX, 3).grace(Duration::MAX);
    }
}
