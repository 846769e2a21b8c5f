//! Webhook alerts end to end, with a local HTTP receiver: `failure`,
//! `failures_in_a_row`, `recovered`, `overdue`, `missed`, `auto_paused`
//! (and the pause it makes), `paused_too_long`, two instances on one
//! database sending each event once, a receiver that is down delaying
//! nothing, and `GET /alerts`. On a virtual clock, except the test of the
//! receiver that is down, which measures real lateness.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::receiver::{Mode, Receiver};
use mscribe_scheduler::{
    BackfillRequest, Clock, ExecutionRecord, ExecutionStatus, ExecutionStore, HistoryQuery,
    JobConfig, JobContext, JobScheduler, MisfirePolicy, SystemClock, TokioSpawner, VirtualClock,
};
use mscribe_server::alerts::{AlertParts, AlertService, AlertSettings};
use mscribe_server::config::{AlertConfig, Config, JobAlerting, Secret};
use mscribe_server::control::{ControlPlane, ControlSettings};
use mscribe_server::health::{HealthChecker, HealthSettings};
use mscribe_server::http::{ServerState, routes};
use mscribe_server::metrics::ServerMetrics;
use mscribe_storage::{AlertQuery, AlertStore, ControlStore, SqliteStore};
use serde_json::Value;

const TOKEN: &str = "test-token-0123456789abcdef0123456789";

/// `[alerts.<name>]` blocks as the config reads them, with `url` set to
/// the receiver's.
fn alerts(url: &str, extra: &str) -> BTreeMap<String, AlertConfig> {
    let text = format!("[alerts.hook]\nurl = \"{url}\"\n{extra}\n");
    Config::from_toml_str(&text, "test.toml", |_| None).unwrap().alerts
}

/// One instance: a scheduler on `clock` over the SQLite file `db`, with a
/// job `flaky` that fails while `fail` is set, and its alert service.
struct Instance {
    scheduler: JobScheduler,
    service: AlertService,
    store: SqliteStore,
    plane: ControlPlane,
}

#[allow(clippy::too_many_arguments)]
async fn instance(
    name: &str,
    db: &std::path::Path,
    clock: Arc<dyn Clock>,
    fail: Arc<AtomicBool>,
    schedule: &str,
    alerts: BTreeMap<String, AlertConfig>,
    job: JobAlerting,
    settings: AlertSettings,
) -> Instance {
    let store = SqliteStore::open(db).await.unwrap();
    let (observer, intake) = AlertService::observer(&settings);
    let scheduler = JobScheduler::builder(clock, Arc::new(TokioSpawner::current()))
        .store(Arc::new(store.clone()))
        .instance_id(name)
        .observer(observer)
        .build();
    scheduler
        .register(
            JobConfig::new("flaky", move |_ctx: JobContext| {
                let fail = fail.load(Ordering::SeqCst);
                async move { if fail { Err("disk full".to_owned()) } else { Ok(()) } }
            })
            .schedule(schedule)
            .misfire(MisfirePolicy::skip()),
        )
        .unwrap();
    let plane = ControlPlane::new(
        Arc::new(store.clone()) as Arc<dyn ControlStore>,
        scheduler.clone(),
        ControlSettings::sqlite(),
    );
    let service = AlertService::new(AlertParts {
        alerts,
        jobs: BTreeMap::from([("flaky".to_owned(), job)]),
        intake,
        store: Arc::new(store.clone()),
        history: Arc::new(store.clone()),
        scheduler: scheduler.clone(),
        control: Some(plane.clone()),
        settings,
    });
    Instance { scheduler, service, store, plane }
}

/// Rounds until `done` (bounded: the runs and the store need a few turns).
async fn rounds_until(services: &[&AlertService], done: impl Fn() -> bool) {
    for _ in 0..400 {
        for s in services {
            s.round().await;
        }
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not reached");
}

/// Advances the clock to the next fire and waits until `n` runs of
/// `flaky` ended.
async fn fire(clock: &VirtualClock, inst: &Instance, n: usize) {
    clock.advance(Duration::from_secs(3600));
    ended(inst, "flaky", n).await;
}

/// Waits until `n` runs of `job` ended; returns its rows.
async fn ended(inst: &Instance, job: &str, n: usize) -> Vec<ExecutionRecord> {
    for _ in 0..2000 {
        let rows = inst.store.history(&HistoryQuery::new(job, 100)).await.unwrap();
        if rows.iter().filter(|r| r.status != ExecutionStatus::Running).count() >= n {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("run {n} of {job} did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_sends_failure_and_one_failures_in_a_row_then_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Mode::Ok).await;
    let clock = VirtualClock::at_epoch_2026();
    let fail = Arc::new(AtomicBool::new(true));
    let cfg = alerts(&rx.url, "failures_in_a_row = 2\nheaders = { X-Token = \"s3cret\" }");
    let a = instance(
        "a",
        &dir.path().join("db"),
        Arc::new(clock.clone()),
        fail.clone(),
        "@hourly",
        cfg,
        JobAlerting::default(),
        AlertSettings::default(),
    )
    .await;
    a.scheduler.start().await.unwrap();
    for n in 1..=3 {
        fire(&clock, &a, n).await;
        rounds_until(&[&a.service], || rx.count("failure") == n).await;
    }
    assert_eq!(rx.count("failures_in_a_row"), 1, "{:#?}", rx.bodies());
    fail.store(false, Ordering::SeqCst);
    fire(&clock, &a, 4).await;
    rounds_until(&[&a.service], || rx.count("recovered") == 1).await;
    // More rounds send nothing more.
    for _ in 0..5 {
        a.service.round().await;
    }
    // One round sends its rows concurrently: the receiver may get the
    // alerts of one fire in any order, so each fire's are compared as sets.
    let bodies = rx.bodies();
    let mut events: Vec<(String, String)> = bodies
        .iter()
        .map(|b| {
            let fire = b["details"]["scheduled_at"].as_str().unwrap().to_owned();
            (fire, b["event"].as_str().unwrap().to_owned())
        })
        .collect();
    events.sort();
    let want = [
        ("2026-01-01T01:00:00.000Z", "failure"),
        ("2026-01-01T02:00:00.000Z", "failure"),
        ("2026-01-01T02:00:00.000Z", "failures_in_a_row"),
        ("2026-01-01T03:00:00.000Z", "failure"),
        ("2026-01-01T04:00:00.000Z", "recovered"),
    ];
    let want: Vec<(String, String)> =
        want.iter().map(|(f, e)| ((*f).to_owned(), (*e).to_owned())).collect();
    assert_eq!(events, want, "{bodies:#?}");
    let of = |event: &str| bodies.iter().find(|b| b["event"] == event).unwrap().clone();
    let first = bodies.iter().find(|b| b["event"] == "failure").unwrap();
    assert_eq!(first["alert"], "hook");
    assert_eq!(first["job"], "flaky");
    assert_eq!(first["message"], "job flaky failed (failed): disk full");
    assert_eq!(first["details"]["scheduled_at"], "2026-01-01T01:00:00.000Z");
    assert_eq!(first["details"]["error"], "disk full");
    assert_eq!(of("failures_in_a_row")["details"]["failures_in_a_row"], 2);
    assert_eq!(of("recovered")["details"]["failed_runs_before"], 3);
    assert!(rx.tokens().iter().all(|t| t.as_deref() == Some("s3cret")));
    // Each delivery is recorded.
    let rows = a.store.alert_deliveries(&AlertQuery::new(100)).await.unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.state() == "delivered" && r.attempts == 1));
    assert!(rows.iter().all(|r| r.last_status == Some(200) && r.delivered_at.is_some()));
    a.scheduler.stop(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failed_run_of_one_fire_raises_its_own_failure_alert() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Mode::Ok).await;
    let clock = VirtualClock::at_epoch_2026();
    let cfg = alerts(&rx.url, "events = [\"failure\"]");
    let a = instance(
        "a",
        &dir.path().join("db"),
        Arc::new(clock.clone()),
        Arc::new(AtomicBool::new(true)),
        "@hourly",
        cfg,
        JobAlerting::default(),
        AlertSettings::default(),
    )
    .await;
    a.scheduler.start().await.unwrap();
    // One fire run twice by a forced backfill: two runs, two failures.
    let fire: chrono::DateTime<chrono::Utc> = "2025-12-31T23:00:00Z".parse().unwrap();
    let req = BackfillRequest { from: fire, to: fire, dry_run: false, force: true, concurrency: 1 };
    for n in 1..=2 {
        let report = a.scheduler.backfill("flaky", &req).await.unwrap();
        assert_eq!(report.runs.len(), 1, "{report:?}");
        rounds_until(&[&a.service], || rx.count("failure") == n).await;
    }
    // More rounds (a delivery retried, the records seen again) send no more.
    for _ in 0..5 {
        a.service.round().await;
    }
    let bodies = rx.bodies();
    assert_eq!(rx.count("failure"), 2, "{bodies:#?}");
    let runs: std::collections::BTreeSet<&str> =
        bodies.iter().filter_map(|b| b["details"]["execution_id"].as_str()).collect();
    assert_eq!(runs.len(), 2, "one alert per run: {bodies:#?}");
    assert!(bodies.iter().all(|b| b["details"]["scheduled_at"] == "2025-12-31T23:00:00.000Z"));
    a.scheduler.stop(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_after_failures_pauses_the_job_with_a_note_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Mode::Ok).await;
    let clock = VirtualClock::at_epoch_2026();
    let job = JobAlerting { pause_after_failures: Some(2), ..JobAlerting::default() };
    let a = instance(
        "a",
        &dir.path().join("db"),
        Arc::new(clock.clone()),
        Arc::new(AtomicBool::new(true)),
        "@hourly",
        alerts(
            &rx.url,
            "events = [\"auto_paused\", \"paused_too_long\"]\npaused_too_long = \"1h\"",
        ),
        job,
        AlertSettings::default(),
    )
    .await;
    a.scheduler.start().await.unwrap();
    fire(&clock, &a, 1).await;
    fire(&clock, &a, 2).await;
    rounds_until(&[&a.service], || rx.count("auto_paused") == 1).await;
    assert!(a.scheduler.job("flaky").unwrap().paused);
    let state = a.plane.job_state("flaky").await.unwrap().unwrap();
    assert!(state.paused);
    assert_eq!(state.source.as_str(), "alert");
    assert!(state.note.as_deref().unwrap().contains("pause_after_failures = 2"), "{state:?}");
    let body = &rx.bodies()[0];
    assert_eq!(
        body["message"],
        "job flaky paused after 2 failed runs in a row (pause_after_failures)"
    );
    // Paused for over an hour: paused_too_long, once.
    clock.advance(Duration::from_secs(3601));
    rounds_until(&[&a.service], || rx.count("paused_too_long") == 1).await;
    clock.advance(Duration::from_secs(3601));
    for _ in 0..3 {
        a.service.round().await;
    }
    assert_eq!(rx.count("paused_too_long"), 1);
    a.scheduler.stop(Duration::from_secs(1)).await.unwrap();
}

/// The alert keys of a job defined through the API count as those of a job
/// of the configuration: its own `failures_in_a_row` and its
/// `pause_after_failures` (they were stored and ignored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_defined_through_the_api_has_its_own_alert_keys() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Mode::Ok).await;
    let clock = VirtualClock::at_epoch_2026();
    let a = instance(
        "a",
        &dir.path().join("db"),
        Arc::new(clock.clone()),
        Arc::new(AtomicBool::new(false)),
        "@hourly",
        alerts(&rx.url, "events = [\"failures_in_a_row\", \"auto_paused\"]"),
        JobAlerting::default(),
        AlertSettings::default(),
    )
    .await;
    a.plane.prepare(Vec::new()).await.unwrap();
    a.scheduler.start().await.unwrap();
    // Nothing listens on port 9: each run fails at once.
    let def = serde_json::json!({
        "kind": "http", "url": "http://127.0.0.1:9/down", "schedule": "@yearly",
        "failures_in_a_row": 1, "pause_after_failures": 2
    });
    a.plane.define_job("api-fail", def, mscribe_storage::Source::Api).await.unwrap();
    for n in 1..=2 {
        clock.advance(Duration::from_secs(60));
        a.scheduler.trigger("api-fail").unwrap();
        let rows = ended(&a, "api-fail", n).await;
        let failed = rows.iter().filter(|r| r.status == ExecutionStatus::Failed).count();
        assert_eq!(failed, n, "run {n} of api-fail did not fail");
    }
    rounds_until(&[&a.service], || rx.count("auto_paused") == 1).await;
    assert!(a.scheduler.job("api-fail").unwrap().paused);
    assert!(rx.count("failures_in_a_row") >= 1, "its own threshold of 1");
    let first = rx.bodies().into_iter().find(|b| b["event"] == "failures_in_a_row").unwrap();
    assert!(first["message"].as_str().unwrap().contains("1 run"), "{first}");
    a.scheduler.stop(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_stops_succeeding_is_overdue_once_per_window() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Mode::Ok).await;
    let clock = VirtualClock::at_epoch_2026();
    let fail = Arc::new(AtomicBool::new(false));
    let window = JobAlerting {
        expect_success_within: Some(Duration::from_secs(2 * 3600 + 1800)),
        ..JobAlerting::default()
    };
    let a = instance(
        "a",
        &dir.path().join("db"),
        Arc::new(clock.clone()),
        fail.clone(),
        "@hourly",
        alerts(&rx.url, "events = [\"overdue\"]"),
        window,
        AlertSettings::default(),
    )
    .await;
    a.scheduler.start().await.unwrap();
    fire(&clock, &a, 1).await; // succeeds at 01:00
    fail.store(true, Ordering::SeqCst);
    fire(&clock, &a, 2).await; // 02:00 fails
    fire(&clock, &a, 3).await; // 03:00 fails: 2 h since the success
    for _ in 0..3 {
        a.service.round().await;
    }
    assert_eq!(rx.count("overdue"), 0);
    fire(&clock, &a, 4).await; // 04:00: 3 h > 2.5 h
    rounds_until(&[&a.service], || rx.count("overdue") == 1).await;
    for _ in 0..3 {
        a.service.round().await;
    }
    assert_eq!(rx.count("overdue"), 1, "raised once per window, not every check");
    let body = &rx.bodies()[0];
    assert_eq!(
        body["message"],
        "job flaky has not succeeded since 2026-01-01T01:00:00.000Z (expected within 2h 30m)"
    );
    assert_eq!(body["details"]["windows_missed"], 1);
    // The next whole window raises it again.
    fire(&clock, &a, 5).await;
    fire(&clock, &a, 6).await; // 06:00: 5 h = two windows
    rounds_until(&[&a.service], || rx.count("overdue") == 2).await;
    a.scheduler.stop(Duration::from_secs(1)).await.unwrap();
}

/// The `overdue` bodies `rx` received for `job`.
fn overdue_of(rx: &Receiver, job: &str) -> Vec<Value> {
    rx.bodies().into_iter().filter(|b| b["event"] == "overdue" && b["job"] == job).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_defined_after_the_start_is_overdue_one_window_after_its_definition() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Mode::Ok).await;
    let clock = VirtualClock::at_epoch_2026();
    let cfg = alerts(&rx.url, "events = [\"overdue\"]");
    let a = instance(
        "a",
        &dir.path().join("db"),
        Arc::new(clock.clone()),
        Arc::new(AtomicBool::new(false)),
        "@yearly",
        cfg.clone(),
        JobAlerting::default(),
        AlertSettings::default(),
    )
    .await;
    a.scheduler.start().await.unwrap();
    a.service.round().await;
    // Ten hours later, a job with a one-hour window is defined.
    clock.advance(Duration::from_secs(10 * 3600));
    a.scheduler
        .register(
            JobConfig::new("late", |_ctx: JobContext| async { Ok::<(), String>(()) })
                .schedule("@yearly"),
        )
        .unwrap();
    let hour = JobAlerting {
        expect_success_within: Some(Duration::from_secs(3600)),
        ..JobAlerting::default()
    };
    a.service.reconfigure(
        cfg,
        BTreeMap::from([("flaky".to_owned(), JobAlerting::default()), ("late".to_owned(), hour)]),
    );
    for _ in 0..3 {
        a.service.round().await;
    }
    assert!(overdue_of(&rx, "late").is_empty(), "defined just now: {:?}", rx.bodies());
    clock.advance(Duration::from_secs(1800));
    a.service.round().await;
    assert!(overdue_of(&rx, "late").is_empty(), "half a window: {:?}", rx.bodies());
    clock.advance(Duration::from_secs(1800));
    rounds_until(&[&a.service], || overdue_of(&rx, "late").len() == 1).await;
    assert_eq!(overdue_of(&rx, "late")[0]["details"]["windows_missed"], 1);
    a.scheduler.stop(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_never_succeeded_is_overdue_once_per_window_after_a_restart_too() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Mode::Ok).await;
    let clock = VirtualClock::at_epoch_2026();
    let hour = JobAlerting {
        expect_success_within: Some(Duration::from_secs(3600)),
        ..JobAlerting::default()
    };
    let start = async || {
        let i = instance(
            "a",
            &dir.path().join("db"),
            Arc::new(clock.clone()),
            Arc::new(AtomicBool::new(true)),
            "@yearly",
            alerts(&rx.url, "events = [\"overdue\"]"),
            hour.clone(),
            AlertSettings::default(),
        )
        .await;
        i.scheduler.start().await.unwrap();
        i.service.round().await;
        i
    };
    let a = start().await;
    for n in 1..=3 {
        clock.advance(Duration::from_secs(3600));
        rounds_until(&[&a.service], || overdue_of(&rx, "flaky").len() == n).await;
    }
    a.scheduler.stop(Duration::from_secs(1)).await.unwrap();
    drop(a);

    // Restarted: one alert per window again, counted from the restart.
    let a = start().await;
    clock.advance(Duration::from_secs(1800));
    for _ in 0..3 {
        a.service.round().await;
    }
    assert_eq!(overdue_of(&rx, "flaky").len(), 3, "half a window since the restart");
    clock.advance(Duration::from_secs(1800));
    rounds_until(&[&a.service], || overdue_of(&rx, "flaky").len() == 4).await;
    clock.advance(Duration::from_secs(3600));
    rounds_until(&[&a.service], || overdue_of(&rx, "flaky").len() == 5).await;
    for _ in 0..3 {
        a.service.round().await;
    }
    assert_eq!(overdue_of(&rx, "flaky").len(), 5, "once per window");
    a.scheduler.stop(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_service_releases_the_lease_for_the_next_instance_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Mode::Ok).await;
    let clock = VirtualClock::at_epoch_2026();
    let make = async |name: &str| {
        instance(
            name,
            &dir.path().join("db"),
            Arc::new(clock.clone()),
            Arc::new(AtomicBool::new(false)),
            "@yearly",
            alerts(&rx.url, ""),
            JobAlerting::default(),
            AlertSettings::default(),
        )
        .await
    };
    let a = make("a").await;
    let b = make("b").await;
    assert!(a.service.round().await.leader);
    assert!(!b.service.round().await.leader, "a holds the lease");
    a.service.stop(Duration::from_secs(1)).await;
    // No time has passed: the lease is free because a let it go.
    assert!(b.service.round().await.leader, "released at the stop");
    assert!(!a.service.round().await.leader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_send_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Mode::Ok).await;
    let db = dir.path().join("db");
    // Without claims both instances run every fire of `flaky`: each run
    // that fails is its own `failure` (two per fire), while the streak's
    // fire key counts each fire once, so `failures_in_a_row` is one alert.
    // Every instance's rounds see every row: the outbox's keys keep each
    // event to one delivery.
    let clocks = [VirtualClock::at_epoch_2026(), VirtualClock::at_epoch_2026()];
    let cfg = alerts(&rx.url, "failures_in_a_row = 2");
    let mut insts = Vec::new();
    for (name, clock) in ["a", "b"].iter().zip(&clocks) {
        insts.push(
            instance(
                name,
                &db,
                Arc::new(clock.clone()),
                Arc::new(AtomicBool::new(true)),
                "@hourly",
                cfg.clone(),
                JobAlerting::default(),
                AlertSettings::default(),
            )
            .await,
        );
    }
    for i in &insts {
        i.scheduler.start().await.unwrap();
    }
    for n in 1..=3 {
        for (clock, i) in clocks.iter().zip(&insts) {
            fire(clock, i, 2 * n - 1).await;
        }
        let services = [&insts[0].service, &insts[1].service];
        rounds_until(&services, || rx.count("failure") == 2 * n).await;
    }
    for _ in 0..5 {
        insts[0].service.round().await;
        insts[1].service.round().await;
    }
    assert_eq!((rx.count("failure"), rx.count("failures_in_a_row")), (6, 1), "{:#?}", rx.bodies());
    // Both instances ran each fire.
    let rows = insts[0].store.history(&HistoryQuery::new("flaky", 100)).await.unwrap();
    assert_eq!(rows.len(), 6, "{rows:#?}");
    for i in &insts {
        i.scheduler.stop(Duration::from_secs(1)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_fires_are_alerted() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Mode::Ok).await;
    let db = dir.path().join("db");
    let clock = VirtualClock::at_epoch_2026();
    let fail = Arc::new(AtomicBool::new(false));
    let cfg = alerts(&rx.url, "events = [\"missed\"]");
    let a = instance(
        "a",
        &db,
        Arc::new(clock.clone()),
        fail.clone(),
        "@hourly",
        cfg.clone(),
        JobAlerting::default(),
        AlertSettings::default(),
    )
    .await;
    a.scheduler.start().await.unwrap();
    fire(&clock, &a, 1).await;
    a.scheduler.stop(Duration::from_secs(1)).await.unwrap();
    // Down from 01:00 to 04:30: the 02:00, 03:00 and 04:00 fires are
    // skipped by the misfire policy at the next start.
    let clock = VirtualClock::new(clock.now() + chrono::Duration::minutes(210));
    let b = instance(
        "b",
        &db,
        Arc::new(clock.clone()),
        fail,
        "@hourly",
        cfg,
        JobAlerting::default(),
        AlertSettings::default(),
    )
    .await;
    b.scheduler.start().await.unwrap();
    rounds_until(&[&b.service], || rx.count("missed") == 3).await;
    // Sent concurrently: in any order.
    let mut fires: Vec<String> = rx
        .bodies()
        .iter()
        .map(|b| b["details"]["scheduled_at"].as_str().unwrap().to_owned())
        .collect();
    fires.sort();
    assert_eq!(
        fires,
        ["2026-01-01T02:00:00.000Z", "2026-01-01T03:00:00.000Z", "2026-01-01T04:00:00.000Z"]
    );
    b.scheduler.stop(Duration::from_secs(1)).await.unwrap();
}

/// Real clock: a failing job every 200 ms while the receiver hangs (every
/// delivery times out after 1 s). Its runs stay on time; once the receiver
/// answers, the retries deliver every alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_delays_nothing_and_deliveries_retry_until_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Mode::Hang).await;
    let settings = AlertSettings { poll: Duration::from_millis(50), ..AlertSettings::default() };
    let a = instance(
        "a",
        &dir.path().join("db"),
        Arc::new(SystemClock),
        Arc::new(AtomicBool::new(true)),
        "200ms",
        alerts(&rx.url, "events = [\"failure\"]\ntimeout = \"1s\"\nmax_attempts = 20"),
        JobAlerting::default(),
        settings,
    )
    .await;
    a.scheduler.start().await.unwrap();
    a.service.spawn();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let runs = a.store.history(&HistoryQuery::new("flaky", 1000)).await.unwrap();
    let late: Vec<i64> =
        runs.iter().map(|r| (r.started_at - r.scheduled_at).num_milliseconds()).collect();
    let worst = late.iter().copied().max().unwrap_or(i64::MAX);
    eprintln!("{} runs in 3 s while the receiver hangs; worst lateness {worst} ms", runs.len());
    assert!(runs.len() >= 12, "{} runs in 3 s at 200 ms", runs.len());
    assert!(worst < 150, "a run started {worst} ms late: {late:?}");
    assert_eq!(rx.count("failure"), 0);
    let pending = a.store.alert_deliveries(&AlertQuery::new(1000)).await.unwrap();
    assert!(pending.iter().all(|r| r.state() == "pending"));
    assert!(
        pending.iter().any(|r| r.attempts >= 1
            && r.last_error.as_deref().is_some_and(|e| e.starts_with("no answer within 1s"))),
        "{pending:#?}"
    );

    a.scheduler.stop(Duration::from_secs(1)).await.unwrap();
    let ran = a.store.history(&HistoryQuery::new("flaky", 1000)).await.unwrap().len();
    rx.set_mode(Mode::Ok);
    let store = a.store.clone();
    let mut delivered = 0;
    for _ in 0..300 {
        let rows = store.alert_deliveries(&AlertQuery::new(1000)).await.unwrap();
        delivered = rows.iter().filter(|r| r.state() == "delivered").count();
        if delivered == ran && rows.len() == ran {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(delivered, ran, "every failure delivered once the receiver is up");
    assert_eq!(rx.count("failure"), ran, "each exactly once");
    let rows = store.alert_deliveries(&AlertQuery::new(1000)).await.unwrap();
    eprintln!(
        "delivered {ran} alerts after the receiver came up; attempts per alert up to {}",
        rows.iter().map(|r| r.attempts).max().unwrap_or(0)
    );
    a.service.stop(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_outlasts_a_round_of_the_slowest_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::at_epoch_2026();
    let slow = alerts("http://127.0.0.1:9/hook", "timeout = \"40s\"");
    let a = instance(
        "a",
        &dir.path().join("db"),
        Arc::new(clock.clone()),
        Arc::new(AtomicBool::new(false)),
        "@hourly",
        slow,
        JobAlerting::default(),
        AlertSettings::default(),
    )
    .await;
    assert_eq!(a.service.settings().lease, Duration::from_secs(81));
    let b = instance(
        "b",
        &dir.path().join("db2"),
        Arc::new(clock.clone()),
        Arc::new(AtomicBool::new(false)),
        "@hourly",
        alerts("http://127.0.0.1:9/hook", ""),
        JobAlerting::default(),
        AlertSettings::default(),
    )
    .await;
    assert_eq!(b.service.settings().lease, Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_alerts_lists_deliveries_with_paging_and_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Mode::Fail).await;
    let clock = VirtualClock::at_epoch_2026();
    let a = instance(
        "a",
        &dir.path().join("db"),
        Arc::new(clock.clone()),
        Arc::new(AtomicBool::new(true)),
        "@hourly",
        alerts(&rx.url, "events = [\"failure\"]"),
        JobAlerting::default(),
        AlertSettings::default(),
    )
    .await;
    a.scheduler.start().await.unwrap();
    for n in 1..=3 {
        fire(&clock, &a, n).await;
    }
    let store = a.store.clone();
    for _ in 0..400 {
        a.service.round().await;
        if store
            .alert_deliveries(&AlertQuery::new(10))
            .await
            .unwrap()
            .iter()
            .filter(|r| r.attempts > 0)
            .count()
            == 3
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let state = Arc::new(ServerState {
        scheduler: a.scheduler.clone(),
        health: HealthChecker::with_hooks(
            vec![],
            Arc::new(clock.clone()),
            HealthSettings::default(),
            vec![],
        ),
        metrics: ServerMetrics::new(),
        admin_token: Secret::new(TOKEN),
        max_body_bytes: 1024,
        control: Some(a.plane.clone()),
        alerts: Some(Arc::new(a.store.clone()) as Arc<dyn AlertStore>),
    });
    let get = |path: &str, auth: bool| {
        let state = state.clone();
        let path = path.to_owned();
        async move {
            let mut req = warp::test::request().method("GET").path(&path);
            if auth {
                req = req.header("authorization", format!("Bearer {TOKEN}"));
            }
            let res = req.reply(&routes(state)).await;
            (res.status().as_u16(), serde_json::from_slice::<Value>(res.body()).unwrap())
        }
    };
    assert_eq!(get("/alerts", false).await.0, 401);
    let (code, body) = get("/alerts?limit=2", true).await;
    assert_eq!(code, 200, "{body}");
    let rows = body["deliveries"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["state"], "pending");
    assert_eq!(rows[0]["event"], "failure");
    assert_eq!(rows[0]["last_status"], 503);
    assert!(
        rows[0]["last_error"].as_str().unwrap().starts_with("receiver answered HTTP 503"),
        "{body}"
    );
    let next = body["next_before"].as_i64().unwrap();
    let (_, body) = get(&format!("/alerts?limit=2&before={next}"), true).await;
    assert_eq!(body["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(body["next_before"], Value::Null);
    let (_, body) = get("/alerts?job=other", true).await;
    assert_eq!(body["deliveries"], serde_json::json!([]));
    for (q, code, msg) in [
        ("limit=0", 422, "limit must be between 1 and 1000, got 0"),
        ("limit=1001", 422, "limit must be between 1 and 1000, got 1001"),
        ("limit=x", 400, "limit must be an integer, got \"x\""),
        ("before=soon", 400, "before must be a delivery id (an integer), got \"soon\""),
        (
            "colour=red",
            400,
            "unknown query parameter \"colour\"; expected limit, before, alert or job",
        ),
    ] {
        let (got, body) = get(&format!("/alerts?{q}"), true).await;
        assert_eq!((got, body["error"].as_str()), (code, Some(msg)), "{q}");
    }
    a.scheduler.stop(Duration::from_secs(1)).await.unwrap();
}
