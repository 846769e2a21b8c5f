//! The engine's promises where it once broke them: user code that panics
//! anywhere, durations at the edge of their type, cancellation in a
//! backoff and by id, clock jumps while paused, one-shots missed before
//! start, `last_run`, trigger-only jobs and permanent errors. Each case runs
//! on `LocalRuntime` and on tokio, with the inline dispatch on and off.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use mscribe_scheduler::{AttemptEnd, StoreResult};
use mscribe_scheduler::{
    Clock, Error, ErrorKind, ExecutionEvent, ExecutionId, ExecutionRecord, ExecutionStatus,
    ExecutionStore, HistoryQuery, JobConfig, JobContext, JobError, JobHandler, JobResult,
    JobResultExt, MemoryStore, MisfirePolicy, Observer, OverlapPolicy, RetryPolicy, Schedule,
    TriggerOutcome,
};
use support::{CASES, Kind, World};

/// A job that counts its runs, every `secs` seconds.
fn counter(id: &str, secs: u64, n: &Arc<AtomicU32>) -> JobConfig {
    let n = n.clone();
    JobConfig::new(id, move |_ctx: JobContext| {
        n.fetch_add(1, Ordering::SeqCst);
        async {}
    })
    .schedule(Duration::from_secs(secs))
}

// ---- 1. user code that panics --------------------------------------------

#[test]
fn a_handler_that_panics_before_returning_its_future_is_a_failed_attempt_and_retried() {
    for (kind, inline) in CASES {
        let w = World::new(kind, inline);
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let panics = move |_ctx: JobContext| -> futures::future::Ready<()> {
            c.fetch_add(1, Ordering::SeqCst);
            panic!("bad config in the closure");
        };
        let retry = RetryPolicy::exponential(2).initial_delay(Duration::from_secs(1));
        w.sched.register(JobConfig::new("p", panics).schedule("@every 10s").retry(retry)).unwrap();
        let steady = Arc::new(AtomicU32::new(0));
        w.sched.register(counter("steady", 10, &steady)).unwrap();
        w.start();
        w.rt.advance(Duration::from_secs(65));
        assert_eq!(
            steady.load(Ordering::SeqCst),
            6,
            "{kind:?} inline {inline}: others keep firing"
        );
        let rows = w.rows("p");
        assert_eq!(rows.len(), 12, "{kind:?} inline {inline}: two attempts per fire");
        for pair in rows.chunks(2) {
            assert_eq!(pair[0].status, ExecutionStatus::Failed);
            assert_eq!(pair[1].status, ExecutionStatus::RetriesExhausted);
            assert_eq!(
                pair[0].error.as_deref(),
                Some("handler panicked: bad config in the closure")
            );
            assert_eq!(pair[0].error_kind, Some(ErrorKind::Transient));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 12);
        let report = w.stop(Duration::from_secs(1));
        assert_eq!(report.dropped, 0, "{kind:?} inline {inline}");
        assert!(w.store.all().iter().all(|r| r.status != ExecutionStatus::Running));
    }
}

/// A handler type whose `run_owned` panics before it makes a future, and
/// whose `run` panics before its first `.await`.
#[derive(Debug)]
struct PanicsEarly {
    in_run_owned: bool,
}

#[async_trait]
impl JobHandler for PanicsEarly {
    async fn run(&self, _ctx: JobContext) -> JobResult {
        panic!("panic in run before the first await");
    }

    fn run_owned(self: Arc<Self>, ctx: JobContext) -> BoxFuture<'static, JobResult> {
        if self.in_run_owned {
            panic!("panic in run_owned");
        }
        Box::pin(async move { self.run(ctx).await })
    }
}

#[test]
fn a_job_type_that_panics_in_run_or_run_owned_is_a_failed_attempt() {
    for (kind, inline) in CASES {
        let w = World::new(kind, inline);
        for (id, in_run_owned) in [("owned", true), ("run", false)] {
            let handler: Arc<dyn JobHandler> = Arc::new(PanicsEarly { in_run_owned });
            w.sched.register(JobConfig::from_arc(id, handler).schedule("@every 10s")).unwrap();
        }
        w.start();
        w.rt.advance(Duration::from_secs(30));
        for (id, msg) in
            [("owned", "panic in run_owned"), ("run", "panic in run before the first await")]
        {
            let rows = w.rows(id);
            assert_eq!(rows.len(), 3, "{kind:?} inline {inline} {id}");
            assert!(rows.iter().all(|r| r.status == ExecutionStatus::Failed));
            assert_eq!(rows[0].error.as_deref(), Some(format!("handler panicked: {msg}").as_str()));
        }
        assert_eq!(w.stop(Duration::from_secs(1)).dropped, 0);
    }
}

#[derive(Debug, Default)]
struct PanickingObserver {
    seen: AtomicU32,
}

impl Observer for PanickingObserver {
    fn on_event(&self, _event: &ExecutionEvent) {
        self.seen.fetch_add(1, Ordering::SeqCst);
        panic!("observer bug");
    }
}

#[test]
fn an_observer_that_panics_is_skipped_and_the_scheduler_goes_on() {
    for (kind, inline) in CASES {
        let observer = Arc::new(PanickingObserver::default());
        let o = observer.clone();
        let w = World::with(kind, move |b| b.inline_dispatch(inline).observer(o));
        let n = Arc::new(AtomicU32::new(0));
        w.sched.register(counter("c", 10, &n)).unwrap();
        w.start();
        w.rt.advance(Duration::from_secs(50));
        assert_eq!(n.load(Ordering::SeqCst), 5, "{kind:?} inline {inline}");
        assert_eq!(w.stop(Duration::from_secs(1)).unwritten, 0);
        assert_eq!(w.rows("c").len(), 5, "every record still reached the store");
        assert!(observer.seen.load(Ordering::SeqCst) >= 5);
    }
}

/// A store whose writes panic while `panics` is set: in their future, or
/// with `early`, before they return it (a method not written as an
/// `async fn`).
#[derive(Debug, Default)]
struct PanickingStore {
    inner: MemoryStore,
    panics: AtomicBool,
    early: bool,
}

#[async_trait]
impl ExecutionStore for PanickingStore {
    fn write<'life0, 'life1, 'async_trait>(
        &'life0 self,
        events: &'life1 [ExecutionEvent],
    ) -> BoxFuture<'async_trait, StoreResult<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        if self.panics.load(Ordering::SeqCst) {
            if self.early {
                panic!("store bug before its future");
            }
            return Box::pin(futures::future::lazy(|_| -> StoreResult<()> { panic!("store bug") }));
        }
        self.inner.write(events)
    }

    async fn history(&self, q: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        self.inner.history(q).await
    }

    async fn last_fire(&self, job_id: &str) -> StoreResult<Option<DateTime<Utc>>> {
        if self.panics.load(Ordering::SeqCst) {
            panic!("store bug in last_fire");
        }
        self.inner.last_fire(job_id).await
    }

    async fn heartbeat(&self, instance_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        if self.panics.load(Ordering::SeqCst) {
            panic!("store bug in heartbeat");
        }
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

    async fn prune(&self, policy: mscribe_scheduler::PrunePolicy) -> StoreResult<u64> {
        self.inner.prune(policy).await
    }
}

#[test]
fn a_store_that_panics_leaves_the_scheduler_running_and_counts_the_failure() {
    for ((kind, inline), early) in CASES.into_iter().flat_map(|c| [(c, false), (c, true)]) {
        let store = Arc::new(PanickingStore { early, ..PanickingStore::default() });
        store.panics.store(true, Ordering::SeqCst);
        let s = store.clone();
        let w = World::with(kind, move |b| {
            b.inline_dispatch(inline)
                .store(s)
                .heartbeat(Duration::from_secs(5), Duration::from_secs(60))
        });
        let n = Arc::new(AtomicU32::new(0));
        w.sched.register(counter("c", 10, &n)).unwrap();
        w.start();
        w.rt.advance(Duration::from_secs(30));
        assert_eq!(
            n.load(Ordering::SeqCst),
            3,
            "{kind:?} inline {inline} early {early}: jobs keep firing"
        );
        let health = w.sched.store_health();
        assert!(health.failing && health.failed_writes > 0, "{health:?}");
        assert!(
            health
                .last_error
                .as_deref()
                .unwrap()
                .contains("the store panicked in write: store bug")
        );
        store.panics.store(false, Ordering::SeqCst);
        w.rt.advance(Duration::from_secs(10));
        assert_eq!(w.stop(Duration::from_secs(1)).unwritten, 0);
        let rows = store.inner.all();
        assert_eq!(rows.len(), 4, "{kind:?} inline {inline}: the kept records were written");
    }
}

/// A clock that panics on `now()` while told to.
#[derive(Debug)]
struct FlakyClock {
    inner: mscribe_scheduler::VirtualClock,
    panics: AtomicBool,
}

impl Clock for FlakyClock {
    fn now(&self) -> DateTime<Utc> {
        if self.panics.swap(false, Ordering::SeqCst) {
            panic!("clock bug");
        }
        self.inner.now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        self.inner.sleep_until(deadline)
    }
}

#[test]
fn a_clock_that_panics_once_leaves_the_scheduler_firing() {
    for (kind, inline) in CASES {
        let rt = support::Rt::new(kind);
        let clock = Arc::new(FlakyClock { inner: rt.clock(), panics: AtomicBool::new(false) });
        let sched = mscribe_scheduler::JobScheduler::builder(clock.clone(), rt.spawner())
            .inline_dispatch(inline)
            .build();
        let n = Arc::new(AtomicU32::new(0));
        sched.register(counter("c", 10, &n)).unwrap();
        let s = sched.clone();
        rt.block_on(async move { s.start().await }).unwrap();
        rt.advance(Duration::from_secs(15));
        clock.panics.store(true, Ordering::SeqCst);
        rt.advance(Duration::from_secs(30));
        assert_eq!(n.load(Ordering::SeqCst), 4, "{kind:?} inline {inline}");
        let s = sched.clone();
        assert_eq!(
            rt.block_on(async move { s.stop(Duration::from_secs(1)).await }).unwrap().dropped,
            0
        );
    }
}

// ---- 2. durations at the edge of their type -------------------------------

#[test]
fn a_huge_timeout_is_no_timeout_and_a_huge_grace_waits_for_the_run() {
    for (kind, inline) in CASES {
        let w = World::with(kind, |b| b.inline_dispatch(inline).flush_timeout(Duration::MAX));
        let job = JobConfig::new("long", |ctx: JobContext| async move {
            ctx.sleep(Duration::from_secs(3600)).await;
        })
        .schedule("@every 1d")
        .timeout(Duration::MAX);
        w.sched.register(job).unwrap();
        let sleeper = JobConfig::new("forever", |ctx: JobContext| async move {
            // Sleeps until cancelled: a sleep past the end of time.
            assert!(!ctx.sleep(Duration::MAX).await);
        })
        .schedule("@every 1d");
        w.sched.register(sleeper).unwrap();
        w.start();
        w.rt.advance(Duration::from_secs(86_400 + 3_600));
        let rows = w.rows("long");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].status, ExecutionStatus::Succeeded, "{kind:?} inline {inline}");
        assert_eq!(rows[0].duration_ms, Some(3_600_000));
        let report = w.stop(Duration::MAX);
        assert_eq!((report.finished_in_grace, report.dropped), (1, 0), "{kind:?} inline {inline}");
        let rows = w.rows("forever");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].status, ExecutionStatus::Succeeded, "it saw the cancellation and ended");
    }
}

#[test]
fn a_jitter_over_a_year_is_refused_naming_the_field() {
    let w = World::new(Kind::Local, true);
    let err = w
        .sched
        .register(
            JobConfig::new("j", |_c: JobContext| async {})
                .schedule("@hourly")
                .jitter(Duration::MAX),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidPolicy { policy: "jitter", .. }), "{err}");
    assert!(err.to_string().contains("job \"j\""), "{err}");
    // At the bound it is taken; a one-shot has no next fire to bound it.
    let at = Schedule::once(w.secs(10));
    let year = Duration::from_secs(365 * 86_400);
    w.sched
        .register(JobConfig::new("once", |_c: JobContext| async {}).schedule(at).jitter(year))
        .unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(366 * 86_400));
    assert_eq!(w.rows("once").len(), 1);
}

// ---- 3 and 11. cancellation ---------------------------------------------

#[test]
fn a_run_replaced_during_its_backoff_is_recorded_cancelled_as_job_info_says() {
    for (kind, inline) in CASES {
        let w = World::new(kind, inline);
        let retry = RetryPolicy::exponential(5).initial_delay(Duration::from_secs(30));
        let failing = |_ctx: JobContext| async { Err::<(), _>("down") };
        w.sched
            .register(
                JobConfig::new("r", failing)
                    .schedule("@every 1m")
                    .retry(retry)
                    .overlap(OverlapPolicy::Replace),
            )
            .unwrap();
        w.start();
        // The fire at 60 s fails; its retry would be at 90 s. The fire at
        // 120 s replaces the run while it waits for its third attempt.
        w.rt.advance(Duration::from_secs(100));
        w.rt.advance(Duration::from_secs(20));
        let rows = w.rows("r");
        let first = rows[0].execution_id;
        let of_first: Vec<_> = rows.iter().filter(|r| r.execution_id == first).collect();
        let last = of_first.last().unwrap();
        assert_eq!(last.status, ExecutionStatus::Cancelled, "{kind:?} inline {inline}: {rows:#?}");
        assert_eq!(
            last.error.as_deref(),
            Some(
                "cancelled during the retry backoff (a newer fire replaced it (overlap policy replace)); attempt 3 never started"
            )
        );
        w.stop(Duration::ZERO);
        let info = w.sched.job("r").unwrap();
        let newest = w.rows("r").into_iter().max_by_key(|r| (r.started_at, r.attempt)).unwrap();
        assert_eq!(info.last_status, Some(newest.status));
    }
}

#[test]
fn cancel_by_execution_id_ends_a_running_or_queued_run_as_cancelled() {
    for (kind, inline) in CASES {
        let w = World::new(kind, inline);
        let slow = |ctx: JobContext| async move {
            ctx.sleep(Duration::from_secs(100)).await;
        };
        w.sched
            .register(
                JobConfig::new("slow", slow).schedule("@every 1h").overlap(OverlapPolicy::Queue),
            )
            .unwrap();
        w.start();
        let s = w.sched.clone();
        let (running, queued) = w.rt.block_on(async move {
            let TriggerOutcome::Started { execution_id: a } = s.trigger("slow").unwrap() else {
                panic!("the first trigger starts")
            };
            let TriggerOutcome::Queued { execution_id: b } = s.trigger("slow").unwrap() else {
                panic!("the second one queues")
            };
            (a, b)
        });
        w.rt.advance(Duration::from_secs(10));
        w.sched.cancel(queued).unwrap();
        w.sched.cancel(running).unwrap();
        w.rt.advance(Duration::from_secs(1));
        let rows = w.rows("slow");
        assert_eq!(rows.len(), 2, "{kind:?} inline {inline}: the queued run never started");
        let by_id = |id: ExecutionId| rows.iter().find(|r| r.execution_id == id).unwrap();
        assert_eq!(by_id(running).status, ExecutionStatus::Cancelled);
        assert_eq!(
            by_id(running).error.as_deref(),
            Some("cancelled (cancelled on request): dropped without finishing")
        );
        assert_eq!(by_id(queued).status, ExecutionStatus::Cancelled);
        assert_eq!(
            by_id(queued).error.as_deref(),
            Some("cancelled while queued (cancelled on request)")
        );
        let info = w.sched.job("slow").unwrap();
        assert_eq!((info.running, info.queued), (0, 0));
        assert!(matches!(w.sched.cancel(running), Err(Error::UnknownExecution(_))));
        assert!(matches!(
            w.sched.cancel(ExecutionId::from_u128(0)),
            Err(Error::UnknownExecution(_))
        ));
        w.stop(Duration::ZERO);
    }
}

// ---- 4. clock jumps while paused -----------------------------------------

#[test]
fn pause_then_a_backward_jump_then_resume_runs_no_fire_twice() {
    for (kind, inline) in CASES {
        let w = World::new(kind, inline);
        let n = Arc::new(AtomicU32::new(0));
        w.sched.register(counter("c", 60, &n)).unwrap();
        w.start();
        w.rt.advance(Duration::from_secs(300));
        assert_eq!(n.load(Ordering::SeqCst), 5);
        w.sched.pause("c").unwrap();
        w.rt.clock().set(w.secs(30));
        w.sched.resume("c").unwrap();
        assert_eq!(w.sched.job("c").unwrap().next_run, Some(w.secs(360)));
        w.rt.advance(Duration::from_secs(400));
        let fires: Vec<_> = w.rows("c").iter().map(|r| r.scheduled_at).collect();
        let mut unique = fires.clone();
        unique.dedup();
        assert_eq!(fires, unique, "{kind:?} inline {inline}: a fire ran twice");
        assert_eq!(fires.last(), Some(&w.secs(420)));
        w.stop(Duration::ZERO);
    }
}

// ---- 5. one-shots missed before start ------------------------------------

#[test]
fn a_one_shot_whose_time_passed_before_start_follows_the_misfire_policy() {
    for (kind, inline) in CASES {
        let cases = [
            ("skip", MisfirePolicy::skip(), ExecutionStatus::Skipped),
            ("once", MisfirePolicy::run_once(), ExecutionStatus::Succeeded),
            (
                "all",
                MisfirePolicy::run_all(Duration::from_secs(86_400), 5),
                ExecutionStatus::Succeeded,
            ),
        ];
        let w = World::new(kind, inline);
        w.rt.advance(Duration::from_secs(3600));
        for (id, policy, _) in &cases {
            let at = Schedule::once(w.secs(60));
            let job = JobConfig::new(*id, |_c: JobContext| async {}).schedule(at).misfire(*policy);
            w.sched.register(job).unwrap();
        }
        w.start();
        w.rt.advance(Duration::from_secs(10));
        for (id, _, want) in &cases {
            let rows = w.rows(id);
            assert_eq!(rows.len(), 1, "{kind:?} inline {inline} {id}");
            assert_eq!(rows[0].status, *want, "{id}");
            assert_eq!(rows[0].scheduled_at, w.secs(60));
            assert_eq!(w.sched.job(id).unwrap().next_run, None);
        }
        assert_eq!(
            w.rows("skip")[0].error.as_deref(),
            Some("misfire: its one-shot time passed before the scheduler started")
        );
        // Registered after start, the same.
        let late = JobConfig::new("late", |_c: JobContext| async {})
            .schedule(Schedule::once(w.secs(60)))
            .misfire(MisfirePolicy::skip());
        w.sched.register(late).unwrap();
        w.rt.advance(Duration::from_secs(1));
        assert_eq!(
            w.rows("late")[0].error.as_deref(),
            Some("misfire: its one-shot time passed before registered")
        );
        w.stop(Duration::ZERO);
    }
}

#[test]
fn a_one_shot_that_ran_before_a_restart_does_not_run_again() {
    let store = Arc::new(MemoryStore::unbounded());
    let rt = mscribe_scheduler::LocalRuntime::new();
    let at = Schedule::once(rt.clock().now() + chrono::Duration::seconds(60));
    for round in 0..2 {
        let s =
            mscribe_scheduler::JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
                .store(store.clone())
                .build();
        s.register(JobConfig::new("once", |_c: JobContext| async {}).schedule(at.clone())).unwrap();
        rt.block_on(s.start()).unwrap();
        rt.advance(Duration::from_secs(120));
        rt.block_on(s.stop(Duration::ZERO)).unwrap();
        assert_eq!(store.all().len(), 1, "round {round}");
    }
}

// ---- 6. last_run ---------------------------------------------------------

#[test]
fn last_run_counts_misfire_skips_and_triggers_as_the_store_does() {
    for (kind, inline) in CASES {
        let w = World::new(kind, inline);
        let job = JobConfig::new("m", |_c: JobContext| async {})
            .schedule("@every 1m")
            .misfire(MisfirePolicy::skip());
        w.sched.register(job).unwrap();
        w.start();
        w.rt.advance(Duration::from_secs(60));
        // A jump: the fires at 120..=600 s are missed and skipped.
        w.rt.clock().set(w.secs(630));
        w.rt.advance(Duration::ZERO);
        let last_row = |w: &World| w.rows("m").iter().map(|r| r.scheduled_at).max();
        assert_eq!(w.rows("m").last().unwrap().status, ExecutionStatus::Skipped);
        assert_eq!(
            w.sched.job("m").unwrap().last_run,
            Some(w.secs(600)),
            "{kind:?} inline {inline}"
        );
        assert_eq!(w.sched.job("m").unwrap().last_run, last_row(&w));
        let s = w.sched.clone();
        w.rt.block_on(async move { s.trigger("m").map(|_| ()) }).unwrap();
        w.rt.advance(Duration::ZERO);
        assert_eq!(w.sched.job("m").unwrap().last_run, Some(w.secs(630)));
        assert_eq!(w.sched.job("m").unwrap().last_run, last_row(&w));
        let store = w.store.clone();
        let stored =
            w.rt.block_on(async move { store.last_fires(&["m".to_owned()]).await }).unwrap();
        assert_eq!(stored.get("m").copied(), w.sched.job("m").unwrap().last_run);
        w.stop(Duration::ZERO);
    }
}

#[test]
fn missed_fires_of_an_interval_are_recorded_at_their_nominal_times() {
    for (kind, inline) in CASES {
        let w = World::new(kind, inline);
        let job = JobConfig::new("i", |_c: JobContext| async {})
            .schedule("@every 1m")
            .misfire(MisfirePolicy::skip());
        w.sched.register(job).unwrap();
        w.start();
        w.rt.clock().set(w.secs(200));
        w.rt.advance(Duration::ZERO);
        let fires: Vec<_> = w.rows("i").iter().map(|r| r.scheduled_at).collect();
        assert_eq!(fires, [w.secs(60), w.secs(120), w.secs(180)], "{kind:?} inline {inline}");
        w.stop(Duration::ZERO);
    }
}

// ---- 7. trigger-only jobs ------------------------------------------------

#[test]
fn a_trigger_only_job_never_fires_by_itself_and_runs_when_triggered() {
    for (kind, inline) in CASES {
        let w = World::new(kind, inline);
        let n = Arc::new(AtomicU32::new(0));
        let c = n.clone();
        let job = JobConfig::new("manual", move |_ctx: JobContext| {
            c.fetch_add(1, Ordering::SeqCst);
            async {}
        });
        w.sched.register(job).unwrap();
        w.start();
        w.rt.advance(Duration::from_secs(86_400));
        let info = w.sched.job("manual").unwrap();
        assert_eq!((info.schedule, info.next_run, n.load(Ordering::SeqCst)), (None, None, 0));
        let s = w.sched.clone();
        let out = w.rt.block_on(async move { s.trigger("manual") }).unwrap();
        assert!(matches!(out, TriggerOutcome::Started { .. }), "{kind:?} inline {inline}");
        w.rt.advance(Duration::ZERO);
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert_eq!(w.rows("manual").len(), 1);
        assert_eq!(w.sched.job("manual").unwrap().next_run, None);
        w.stop(Duration::ZERO);
    }
    let w = World::new(Kind::Local, true);
    let typo = JobConfig::new("t", |_c: JobContext| async {}).timezone("Europe/Berln");
    let err = w.sched.register(typo).unwrap_err().to_string();
    assert_eq!(err, r#"invalid timezone for job "t": unknown time zone "Europe/Berln""#);
}

// ---- 8. permanent errors ---------------------------------------------------

#[test]
fn a_permanent_error_ends_the_run_without_retry_and_is_recorded_with_its_kind() {
    for (kind, inline) in CASES {
        let w = World::new(kind, inline);
        let retry = RetryPolicy::exponential(5).initial_delay(Duration::from_secs(1));
        let missing = |_ctx: JobContext| async {
            Err::<(), _>(JobError::permanent("pg_dump not found on PATH"))
        };
        w.sched
            .register(JobConfig::new("perm", missing).schedule("@every 1h").retry(retry.clone()))
            .unwrap();
        let flaky = |_ctx: JobContext| async {
            std::fs::metadata("/nonexistent/mscribe-test")?;
            Ok::<(), JobError>(())
        };
        w.sched
            .register(JobConfig::new("io", flaky).schedule("@every 1h").retry(retry.clone()))
            .unwrap();
        let marked = |_ctx: JobContext| async {
            "x".parse::<u32>().permanent()?;
            Ok::<(), JobError>(())
        };
        w.sched
            .register(JobConfig::new("marked", marked).schedule("@every 1h").retry(retry))
            .unwrap();
        w.start();
        w.rt.advance(Duration::from_secs(3600 + 60));
        let rows = w.rows("perm");
        assert_eq!(rows.len(), 1, "{kind:?} inline {inline}: no retry");
        assert_eq!(rows[0].status, ExecutionStatus::Failed);
        assert_eq!(rows[0].error_kind, Some(ErrorKind::Permanent));
        assert_eq!(rows[0].error.as_deref(), Some("pg_dump not found on PATH"));
        let rows = w.rows("io");
        assert_eq!(rows.len(), 5, "a transient error is retried");
        assert!(rows.iter().all(|r| r.error_kind == Some(ErrorKind::Transient)));
        assert_eq!(rows[4].status, ExecutionStatus::RetriesExhausted);
        let rows = w.rows("marked");
        assert_eq!((rows.len(), rows[0].error_kind), (1, Some(ErrorKind::Permanent)));
        assert_eq!(rows[0].error.as_deref(), Some("invalid digit found in string"));
        assert_eq!(w.sched.job("perm").unwrap().last_status, Some(ExecutionStatus::Failed));
        w.stop(Duration::ZERO);
    }
}

#[test]
fn a_job_result_can_fail_permanently() {
    let w = World::new(Kind::Local, true);
    let job = JobConfig::new("r", |_ctx: JobContext| async {
        JobResult::failed_permanently("bad input")
    })
    .schedule("@every 1h")
    .retry(RetryPolicy::exponential(3));
    w.sched.register(job).unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(3600 + 60));
    let rows = w.rows("r");
    assert_eq!((rows.len(), rows[0].error_kind), (1, Some(ErrorKind::Permanent)));
}

// ---- 9 and 10. schedules and registration errors -------------------------

#[test]
fn an_integer_schedule_is_milliseconds_and_a_bare_number_string_is_refused() {
    let w = World::new(Kind::Local, true);
    w.sched.register(JobConfig::new("ms", |_c: JobContext| async {}).schedule(60_000)).unwrap();
    assert_eq!(w.sched.job("ms").unwrap().schedule.as_deref(), Some("@every 1m"));
    let err = w
        .sched
        .register(JobConfig::new("s", |_c: JobContext| async {}).schedule("700"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid schedule for job "s": invalid schedule "700": a bare number is ambiguous: write "700ms" for milliseconds or "@every 700s" for seconds (an integer given as a number, not a string, is milliseconds)"#
    );
    w.sched.register(JobConfig::new("s", |_c: JobContext| async {}).schedule("700ms")).unwrap();
}

#[test]
fn every_registration_error_names_the_job_and_the_field() {
    let w = World::new(Kind::Local, true);
    let job = || JobConfig::new("bad-job", |_c: JobContext| async {});
    let cases: Vec<(JobConfig, &str)> = vec![
        (job().schedule("61 * * * *"), "schedule"),
        (job().schedule("@every 0s"), "schedule"),
        (job().schedule("banana"), "schedule"),
        (job().schedule("@daily").timezone("Mars/Olympus"), "timezone"),
        (job().timeout(Duration::ZERO), "timeout"),
        (job().retry(RetryPolicy::exponential(0)), "retry"),
        (job().misfire(MisfirePolicy::run_all(Duration::from_secs(1), 0)), "misfire"),
        (job().jitter(Duration::MAX), "jitter"),
    ];
    for (cfg, field) in cases {
        let err = w.sched.register(cfg).unwrap_err().to_string();
        assert!(err.contains("\"bad-job\""), "{err}");
        assert!(err.contains(field), "{field}: {err}");
    }
}

/// Rows of a failing job keep their kind through `AttemptEnd` to observers.
#[derive(Debug, Default)]
struct Kinds(Mutex<Vec<Option<ErrorKind>>>);

impl Observer for Kinds {
    fn on_event(&self, event: &ExecutionEvent) {
        if let ExecutionEvent::Finished(AttemptEnd { error_kind, .. }) = event {
            self.0.lock().unwrap().push(*error_kind);
        }
    }
}

#[test]
fn observers_see_the_error_kind_of_each_attempt() {
    let kinds = Arc::new(Kinds::default());
    let k = kinds.clone();
    let w = World::with(Kind::Local, move |b| b.observer(k));
    let fails = |_ctx: JobContext| async { Err::<(), _>(JobError::permanent("no")) };
    w.sched.register(JobConfig::new("f", fails).schedule("@every 1m")).unwrap();
    w.sched
        .register(JobConfig::new("ok", |_c: JobContext| async {}).schedule("@every 1m"))
        .unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(60));
    let mut seen = kinds.0.lock().unwrap().clone();
    seen.sort_by_key(|k| k.map(|k| k.as_str()));
    assert_eq!(seen, vec![None, Some(ErrorKind::Permanent)]);
}
