//! Scheduler behaviour on the virtual clock: retries, timeouts,
//! cancellation, panics, graceful stop, registry errors.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mscribe_scheduler::{
    Clock, Error, ExecutionStatus, JobConfig, JobContext, JobResult, OverlapPolicy, RetryPolicy,
    Schedule,
};
use support::World;

fn failing() -> impl Fn(JobContext) -> futures::future::Ready<Result<(), String>> {
    |_ctx| futures::future::ready(Err("boom".to_owned()))
}

#[test]
fn attempts_start_at_exactly_the_backoff_instants() {
    let w = World::local();
    let retry = RetryPolicy::exponential(4)
        .initial_delay(Duration::from_secs(2))
        .multiplier(3.0)
        .max_delay(Duration::from_secs(10));
    w.sched
        .register(JobConfig::new("flaky", failing()).schedule("@every 1h").retry(retry))
        .unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(3600 + 60));
    let rows = w.rows("flaky");
    let starts: Vec<_> = rows.iter().map(|r| r.started_at).collect();
    // Fire at 1h; attempts after 2 s, 6 s, then the cap of 10 s.
    assert_eq!(starts, vec![w.secs(3600), w.secs(3602), w.secs(3608), w.secs(3618)]);
    let statuses: Vec<_> = rows.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![
            ExecutionStatus::Failed,
            ExecutionStatus::Failed,
            ExecutionStatus::Failed,
            ExecutionStatus::RetriesExhausted
        ]
    );
    assert!(rows.iter().all(|r| r.error.as_deref() == Some("boom")));
    assert!(rows.windows(2).all(|p| p[0].execution_id == p[1].execution_id));
    w.stop(Duration::ZERO);
}

#[test]
fn a_hanging_handler_ends_exactly_at_its_timeout() {
    let w = World::local();
    let saw_cancel = Arc::new(AtomicU32::new(0));
    let seen = saw_cancel.clone();
    let hang = move |ctx: JobContext| {
        let seen = seen.clone();
        async move {
            // Ignores cancellation apart from noting it: never returns.
            let _guard = NoteOnDrop(seen, ctx.cancel.clone());
            futures::future::pending::<()>().await;
        }
    };
    w.sched
        .register(
            JobConfig::new("hang", hang).schedule(60_000).timeout(Duration::from_millis(1500)),
        )
        .unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(62));
    let rows = w.rows("hang");
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.status, ExecutionStatus::TimedOut);
    assert_eq!(r.started_at, w.secs(60));
    assert_eq!(r.completed_at, Some(w.secs(60) + chrono::Duration::milliseconds(1500)));
    assert_eq!(r.duration_ms, Some(1500));
    assert_eq!(r.error.as_deref(), Some("timed out after 1.5s"));
    assert_eq!(saw_cancel.load(Ordering::SeqCst), 1, "the token fired before the drop");
    w.stop(Duration::ZERO);
}

struct NoteOnDrop(Arc<AtomicU32>, mscribe_scheduler::CancellationToken);

impl Drop for NoteOnDrop {
    fn drop(&mut self) {
        if self.1.is_cancelled() {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Whatever a handler keeps of its token past its attempt (a clone, a
/// child, with one attempt or several) is cancelled when the attempt ends,
/// also when the handler ends on its first poll on the driver.
#[test]
fn what_a_handler_keeps_of_its_token_is_cancelled_when_its_attempt_ends() {
    type Kept = Arc<Mutex<Vec<(&'static str, mscribe_scheduler::CancellationToken)>>>;
    let w = World::local();
    let kept: Kept = Arc::default();
    let keep = |name: &'static str, child: bool| {
        let kept = kept.clone();
        move |ctx: JobContext| {
            let token = if child { ctx.cancel.child() } else { ctx.cancel.clone() };
            kept.lock().unwrap().push((name, token));
            futures::future::ready(())
        }
    };
    let retry = RetryPolicy::exponential(3);
    for (name, child, retries) in [
        ("clone", false, false),
        ("child", true, false),
        ("clone-retrying", false, true),
        ("child-retrying", true, true),
    ] {
        let job = JobConfig::new(name, keep(name, child)).schedule("@every 1m");
        let job = if retries { job.retry(retry.clone()) } else { job };
        w.sched.register(job).unwrap();
    }
    w.start();
    w.rt.advance(Duration::from_secs(61));
    let kept = kept.lock().unwrap();
    assert_eq!(kept.len(), 4, "one attempt of each job");
    for (name, token) in kept.iter() {
        assert!(token.is_cancelled(), "{name}: the kept token is cancelled");
    }
    assert!(w.statuses().iter().all(|s| *s == ExecutionStatus::Succeeded));
    w.stop(Duration::ZERO);
}

#[test]
fn cancelling_mid_backoff_stops_all_further_attempts() {
    let w = World::local();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let handler = move |_ctx: JobContext| {
        c.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>("nope") }
    };
    let retry = RetryPolicy::exponential(10).initial_delay(Duration::from_secs(30));
    w.sched.register(JobConfig::new("r", handler).schedule("@every 10m").retry(retry)).unwrap();
    w.start();
    // First attempt at 600 s fails; next would be at 630 s.
    w.rt.advance(Duration::from_secs(610));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    w.sched.unregister("r").unwrap();
    w.rt.advance(Duration::from_secs(3600));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "no attempt after cancellation");
    // The failed attempt, then the attempt that never started, recorded
    // `cancelled` with the reason, as `JobInfo` reports the run.
    let rows = w.rows("r");
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].attempt, rows[0].status), (1, ExecutionStatus::Failed));
    assert_eq!((rows[1].attempt, rows[1].status), (2, ExecutionStatus::Cancelled));
    assert_eq!(
        rows[1].error.as_deref(),
        Some(
            "cancelled during the retry backoff (the job was unregistered); attempt 2 never started"
        )
    );
    assert_eq!(rows[1].execution_id, rows[0].execution_id);
    w.stop(Duration::ZERO);
}

#[test]
fn stop_during_backoff_stops_attempts_and_leaves_nothing_running() {
    let w = World::local();
    let retry = RetryPolicy::exponential(5).initial_delay(Duration::from_secs(30));
    w.sched.register(JobConfig::new("r", failing()).schedule("@every 1m").retry(retry)).unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(65));
    let report = w.stop(Duration::from_secs(5));
    assert_eq!(report.dropped, 0);
    // Stop returns immediately: the run was only waiting for its backoff.
    assert_eq!(w.rt.clock().now(), w.secs(65));
    let rows = w.rows("r");
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.status != ExecutionStatus::Running));
    assert_eq!(rows[1].status, ExecutionStatus::Cancelled);
    assert!(rows[1].error.as_deref().unwrap().contains("(the scheduler is stopping)"));
    assert_eq!(w.sched.job("r").unwrap().last_status, Some(ExecutionStatus::Cancelled));
}

#[test]
fn a_panicking_handler_is_a_failed_attempt_and_others_keep_firing() {
    let w = World::local();
    let ticks = Arc::new(AtomicU32::new(0));
    let t = ticks.clone();
    w.sched
        .register(
            JobConfig::new("panics", |_ctx: JobContext| async {
                if true {
                    panic!("handler bug")
                }
            })
            .schedule("@every 10s"),
        )
        .unwrap();
    w.sched
        .register(
            JobConfig::new("steady", move |_ctx: JobContext| {
                t.fetch_add(1, Ordering::SeqCst);
                async {}
            })
            .schedule("@every 10s"),
        )
        .unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(60));
    let panics = w.rows("panics");
    assert_eq!(panics.len(), 6);
    assert!(panics.iter().all(|r| r.status == ExecutionStatus::Failed));
    assert_eq!(panics[0].error.as_deref(), Some("handler panicked: handler bug"));
    assert_eq!(ticks.load(Ordering::SeqCst), 6);
    assert!(w.rows("steady").iter().all(|r| r.status == ExecutionStatus::Succeeded));
    w.stop(Duration::ZERO);
}

#[test]
fn stop_waits_for_a_cooperative_handler_and_cuts_off_a_stubborn_one() {
    let w = World::local();
    // Cooperative: works 100 s, but notices cancellation and finishes 2 s later.
    let coop = |ctx: JobContext| async move {
        if ctx.sleep(Duration::from_secs(100)).await {
            return JobResult::ok();
        }
        ctx.clock().sleep_until(ctx.clock().now() + chrono::Duration::seconds(2)).await;
        JobResult::ok().with_data(serde_json::json!({"cleaned_up": true}))
    };
    let stubborn = |ctx: JobContext| async move {
        ctx.clock().sleep_until(ctx.clock().now() + chrono::Duration::hours(5)).await;
    };
    w.sched.register(JobConfig::new("coop", coop).schedule("@every 1m")).unwrap();
    w.sched.register(JobConfig::new("stubborn", stubborn).schedule("@every 1m")).unwrap();
    w.start();
    w.rt.advance(Duration::from_secs(70));
    let stop_at = w.rt.clock().now();
    let report = w.stop(Duration::from_secs(10));
    assert_eq!(report.finished_in_grace, 1);
    assert_eq!(report.dropped, 1);
    assert_eq!(w.rt.clock().now(), stop_at + chrono::Duration::seconds(10));
    let coop = w.rows("coop");
    assert_eq!(coop.len(), 1);
    assert_eq!(coop[0].status, ExecutionStatus::Succeeded);
    assert_eq!(coop[0].completed_at, Some(stop_at + chrono::Duration::seconds(2)));
    let stubborn = w.rows("stubborn");
    assert_eq!(stubborn[0].status, ExecutionStatus::Cancelled);
    assert_eq!(stubborn[0].completed_at, Some(stop_at + chrono::Duration::seconds(10)));
    assert!(w.store.all().iter().all(|r| r.status != ExecutionStatus::Running));
}

#[test]
fn jobs_reports_next_and_last_run_and_status() {
    let w = World::local();
    w.sched.register(JobConfig::new("a", failing()).name("Job A").schedule("*/5 * * * *")).unwrap();
    w.start();
    let info = w.sched.job("a").unwrap();
    assert_eq!(info.next_run, Some(w.secs(300)));
    assert_eq!(info.last_run, None);
    w.rt.advance(Duration::from_secs(301));
    let info = w.sched.job("a").unwrap();
    assert_eq!(info.name, "Job A");
    assert_eq!(info.next_run, Some(w.secs(600)));
    assert_eq!(info.last_run, Some(w.secs(300)));
    assert_eq!(info.last_status, Some(ExecutionStatus::Failed));
    w.stop(Duration::ZERO);
}

#[test]
fn overlap_skip_records_the_skipped_fire() {
    let w = World::local();
    let slow = |ctx: JobContext| async move {
        ctx.sleep(Duration::from_secs(25)).await;
    };
    w.sched
        .register(JobConfig::new("slow", slow).schedule("@every 10s").overlap(OverlapPolicy::Skip))
        .unwrap();
    w.start();
    // Runs 10 s..35 s; the fires at 20 s and 30 s find it running.
    w.rt.advance(Duration::from_secs(36));
    let st: Vec<_> = w.rows("slow").iter().map(|r| (r.scheduled_at, r.status)).collect();
    assert_eq!(
        st,
        vec![
            (w.secs(10), ExecutionStatus::Succeeded),
            (w.secs(20), ExecutionStatus::Skipped),
            (w.secs(30), ExecutionStatus::Skipped),
        ]
    );
    w.stop(Duration::from_secs(60));
}

#[test]
fn many_jobs_register_and_fire_without_scanning() {
    let w = World::local();
    let count = Arc::new(AtomicU32::new(0));
    for i in 0..2_000 {
        let c = count.clone();
        w.sched
            .register(
                JobConfig::new(format!("job-{i}"), move |_ctx: JobContext| {
                    c.fetch_add(1, Ordering::Relaxed);
                    async {}
                })
                .schedule(Schedule::interval(Duration::from_millis(1000 + i % 7)).unwrap()),
            )
            .unwrap();
    }
    w.start();
    w.rt.advance(Duration::from_secs(10));
    let expected: u32 = (0..2_000u64).map(|i| (10_000 / (1000 + i % 7)) as u32).sum();
    assert_eq!(count.load(Ordering::Relaxed), expected);
    w.stop(Duration::ZERO);
}

/// A burst of fires due at one instant does not hold the runtime until it
/// is through: a task that becomes ready during it runs before its end.
#[test]
fn a_burst_lets_other_tasks_run_before_its_end() {
    const JOBS: u32 = 5_000;
    let w = World::local();
    let count = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(Mutex::new(None));
    let spawner = w.rt.spawner();
    for i in 0..JOBS {
        let (c, seen, spawner) = (count.clone(), seen.clone(), spawner.clone());
        w.sched
            .register(
                JobConfig::new(format!("job-{i}"), move |_ctx: JobContext| {
                    // The first fire makes a task ready, which notes how
                    // many fires had run when it got its turn.
                    if c.fetch_add(1, Ordering::Relaxed) == 0 {
                        let (c, seen) = (c.clone(), seen.clone());
                        spawner.spawn(Box::pin(async move {
                            *seen.lock().unwrap() = Some(c.load(Ordering::Relaxed));
                        }));
                    }
                    async {}
                })
                .schedule(Duration::from_secs(1)),
            )
            .unwrap();
    }
    w.start();
    w.rt.advance(Duration::from_secs(1));
    assert_eq!(count.load(Ordering::Relaxed), JOBS, "every job fired once");
    let seen = seen.lock().unwrap().expect("the task ran");
    assert!(seen < JOBS, "the task waited for the whole burst ({seen} fires)");
    w.stop(Duration::ZERO);
}

#[test]
fn registration_errors() {
    let w = World::local();
    let ok = || JobConfig::new("x", |_c: JobContext| async {}).schedule("@hourly");
    w.sched.register(ok()).unwrap();
    let errs: Vec<String> = vec![
        w.sched.register(ok()).unwrap_err(),
        w.sched.register(ok().name(" ")).unwrap_err(),
        w.sched
            .register(
                JobConfig::new("", |_c: JobContext| async {}).name("nameless").schedule("@hourly"),
            )
            .unwrap_err(),
        w.sched
            .register(
                JobConfig::new("y", |_c: JobContext| async {})
                    .jitter(Duration::from_secs(366 * 86_400)),
            )
            .unwrap_err(),
        w.sched
            .register(JobConfig::new("y", |_c: JobContext| async {}).schedule("61 * * * *"))
            .unwrap_err(),
        w.sched
            .register(JobConfig::new("y", |_c: JobContext| async {}).schedule(Duration::ZERO))
            .unwrap_err(),
        w.sched.register(JobConfig::new("y", |_c: JobContext| async {}).schedule("0")).unwrap_err(),
        w.sched
            .register(
                JobConfig::new("y", |_c: JobContext| async {})
                    .schedule("@daily")
                    .timezone("Mars/Olympus"),
            )
            .unwrap_err(),
        w.sched
            .register(
                JobConfig::new("y", |_c: JobContext| async {})
                    .schedule("@daily")
                    .timeout(Duration::ZERO),
            )
            .unwrap_err(),
        w.sched
            .register(
                JobConfig::new("y", |_c: JobContext| async {})
                    .schedule("@daily")
                    .retry(RetryPolicy::exponential(0)),
            )
            .unwrap_err(),
        w.sched
            .register(
                JobConfig::new("y", |_c: JobContext| async {})
                    .schedule("@daily")
                    .retry(RetryPolicy::exponential(3).multiplier(0.5)),
            )
            .unwrap_err(),
        w.sched
            .register(
                JobConfig::new("y", |_c: JobContext| async {})
                    .schedule("@daily")
                    .misfire(mscribe_scheduler::MisfirePolicy::run_all(Duration::from_secs(60), 0)),
            )
            .unwrap_err(),
    ]
    .into_iter()
    .map(|e: Error| e.to_string())
    .collect();
    insta::assert_snapshot!(errs.join("\n"));
    assert!(matches!(w.sched.trigger("x"), Err(Error::NotStarted)));
    assert!(matches!(w.sched.pause("nope"), Err(Error::UnknownJob(_))));
}

#[test]
fn trigger_under_skip_while_running_is_recorded_skipped() {
    let w = World::local();
    let slow = |ctx: JobContext| async move {
        ctx.sleep(Duration::from_secs(30)).await;
    };
    w.sched.register(JobConfig::new("slow", slow).schedule("@hourly")).unwrap();
    w.start();
    let first = w.sched.trigger("slow").unwrap();
    assert!(matches!(first, mscribe_scheduler::TriggerOutcome::Started { .. }));
    w.rt.advance(Duration::from_secs(5));
    assert_eq!(w.sched.trigger("slow").unwrap(), mscribe_scheduler::TriggerOutcome::Skipped);
    w.rt.advance(Duration::from_secs(60));
    let st: Vec<_> = w.rows("slow").iter().map(|r| r.status).collect();
    assert_eq!(st, vec![ExecutionStatus::Succeeded, ExecutionStatus::Skipped]);
    w.stop(Duration::ZERO);
}

#[test]
fn same_seed_same_history() {
    fn run(seed: u64) -> Vec<(String, DateTime<Utc>, ExecutionStatus, String)> {
        let w = World::local_with(|b| b.seed(seed));
        let log = Arc::new(Mutex::new(0u32));
        for i in 0..20 {
            let log = log.clone();
            let retry = RetryPolicy::exponential(3).jitter(mscribe_scheduler::Jitter::Full);
            w.sched
                .register(
                    JobConfig::new(format!("j{i}"), move |_c: JobContext| {
                        let mut n = log.lock().unwrap();
                        *n += 1;
                        let fail = (*n).is_multiple_of(3);
                        async move { if fail { Err("odd") } else { Ok(()) } }
                    })
                    .schedule(format!("@every {}s", 5 + i))
                    .jitter(Duration::from_secs(2))
                    .retry(retry),
                )
                .unwrap();
        }
        w.start();
        w.rt.advance(Duration::from_secs(600));
        w.stop(Duration::ZERO);
        w.store
            .all()
            .into_iter()
            .map(|r| (r.job_id, r.started_at, r.status, r.execution_id.to_string()))
            .collect()
    }
    let a = run(99);
    assert!(a.len() > 500);
    assert_eq!(a, run(99));
    assert_ne!(a, run(100));
}

#[test]
fn phased_intervals_fire_on_their_grid_wherever_they_are_registered() {
    let w = World::local();
    // One job registered before start, phased 250 ms into each second; one
    // registered 1.7 s after start, phased 600 ms in, with a start in the
    // past; one whose start is still 3 s ahead.
    let phased = |ms: i64| {
        Schedule::interval_at(w.t0 + chrono::Duration::milliseconds(ms), Duration::from_secs(1))
            .unwrap()
    };
    let noop = |_ctx: JobContext| async {};
    w.sched.register(JobConfig::new("a", noop).schedule(phased(250))).unwrap();
    w.start();
    w.rt.advance(Duration::from_millis(1_700));
    w.sched.register(JobConfig::new("b", noop).schedule(phased(-400))).unwrap();
    w.sched.register(JobConfig::new("c", noop).schedule(phased(4_000))).unwrap();
    w.rt.advance(Duration::from_millis(3_000));
    let fires = |job: &str| -> Vec<i64> {
        w.rows(job).iter().map(|r| (r.scheduled_at - w.t0).num_milliseconds()).collect()
    };
    assert_eq!(fires("a"), [250, 1_250, 2_250, 3_250, 4_250]);
    assert_eq!(fires("b"), [2_600, 3_600, 4_600], "the next grid point after registering");
    assert_eq!(fires("c"), [4_000], "never before its start");
    for r in w.rows("a").iter().chain(&w.rows("b")) {
        assert_eq!(r.started_at, r.scheduled_at, "each on time");
    }
    w.stop(Duration::from_secs(1));
}

#[test]
fn a_timezone_that_contradicts_the_schedules_cron_tz_is_refused_naming_both() {
    let w = World::local();
    let job = |tz: &str| {
        JobConfig::new("j", |_c: JobContext| async {})
            .schedule("CRON_TZ=Asia/Tokyo 0 2 * * *")
            .timezone(tz)
    };
    let err = w.sched.register(job("Europe/Berlin")).unwrap_err().to_string();
    assert!(
        err.contains("timezone") && err.contains("Asia/Tokyo") && err.contains("Europe/Berlin"),
        "{err}"
    );
    w.sched.register(job("Asia/Tokyo")).unwrap();
    assert_eq!(w.sched.job("j").unwrap().schedule.as_deref(), Some("CRON_TZ=Asia/Tokyo 0 2 * * *"));
}
