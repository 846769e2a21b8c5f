//! The freshness metrics of `/metrics` (issue 21, point 5): every per-job
//! series from registration, values that move when jobs run, `paused` that
//! follows pause and resume, the seed from the store's history, and the
//! build info; on a virtual clock.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use mscribe_scheduler::{
    AttemptEnd, AttemptStart, ExecutionEvent, ExecutionId, ExecutionStatus, ExecutionStore,
    FireKind, JobConfig, JobContext, JobScheduler, MemoryStore, TokioSpawner, VirtualClock,
};
use mscribe_server::metrics::{BUILD_COMMIT, BUILD_VERSION, ServerMetrics};

/// The value of the series `name{labels}` in `text`, if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.parse().expect("a number"))
}

fn fixture(store: Arc<MemoryStore>) -> (JobScheduler, Arc<ServerMetrics>, VirtualClock) {
    let clock = VirtualClock::at_epoch_2026();
    let metrics = ServerMetrics::new();
    let scheduler =
        JobScheduler::builder(Arc::new(clock.clone()), Arc::new(TokioSpawner::current()))
            .store(store)
            .observer(metrics.clone())
            .build();
    metrics.attach(scheduler.clone());
    scheduler
        .register(
            JobConfig::new("ok", |_ctx: JobContext| async { Ok::<_, String>(()) })
                .schedule("@hourly"),
        )
        .unwrap();
    scheduler
        .register(
            JobConfig::new("bad", |_ctx: JobContext| async { Err::<(), _>("boom") })
                .schedule("30 * * * *"),
        )
        .unwrap();
    (scheduler, metrics, clock)
}

/// Lets spawned runs make progress (no wall clock).
async fn settle(done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition not reached");
}

fn secs(t: DateTime<Utc>) -> f64 {
    t.timestamp() as f64
}

#[tokio::test]
async fn every_series_exists_from_registration_and_moves_when_jobs_run() {
    let (scheduler, metrics, clock) = fixture(Arc::new(MemoryStore::new()));
    // Before start, before any fire: every per-job series is there.
    let text = metrics.encode();
    for job in ["ok", "bad"] {
        let j = format!("{{job=\"{job}\"}}");
        assert_eq!(
            value(&text, &format!("mscribe_job_last_success_timestamp_seconds{j}")),
            Some(0.0),
            "{text}"
        );
        assert_eq!(value(&text, &format!("mscribe_job_paused{j}")), Some(0.0), "{text}");
        assert!(value(&text, &format!("mscribe_job_next_fire_timestamp_seconds{j}")).is_some());
        for st in [
            "succeeded",
            "failed",
            "timed_out",
            "cancelled",
            "retries_exhausted",
            "abandoned",
            "skipped",
        ] {
            let s =
                format!("mscribe_job_last_run_timestamp_seconds{{job=\"{job}\",status=\"{st}\"}}");
            assert_eq!(value(&text, &s), Some(0.0), "{s}\n{text}");
        }
    }
    scheduler.start().await.unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let text = metrics.encode();
    assert_eq!(
        value(&text, "mscribe_job_next_fire_timestamp_seconds{job=\"ok\"}"),
        Some(secs(t0 + chrono::Duration::hours(1)))
    );
    assert_eq!(
        value(&text, "mscribe_job_next_fire_timestamp_seconds{job=\"bad\"}"),
        Some(secs(t0 + chrono::Duration::minutes(30)))
    );

    // Both fire; "ok" succeeds, "bad" fails.
    clock.advance(Duration::from_secs(3600));
    let s = scheduler.clone();
    settle(|| s.jobs().iter().all(|j| j.last_status.is_some())).await;
    let text = metrics.encode();
    assert_eq!(
        value(&text, "mscribe_job_last_success_timestamp_seconds{job=\"ok\"}"),
        Some(secs(t0 + chrono::Duration::hours(1))),
        "{text}"
    );
    assert_eq!(
        value(&text, "mscribe_job_last_run_timestamp_seconds{job=\"ok\",status=\"succeeded\"}"),
        Some(secs(t0 + chrono::Duration::hours(1)))
    );
    assert_eq!(value(&text, "mscribe_job_last_success_timestamp_seconds{job=\"bad\"}"), Some(0.0));
    let failed =
        value(&text, "mscribe_job_last_run_timestamp_seconds{job=\"bad\",status=\"failed\"}");
    assert!(failed.is_some_and(|v| v >= secs(t0 + chrono::Duration::minutes(30))), "{text}");
    assert_eq!(
        value(&text, "mscribe_job_next_fire_timestamp_seconds{job=\"ok\"}"),
        Some(secs(t0 + chrono::Duration::hours(2)))
    );

    // Paused flips with pause and resume; a paused job has no next fire.
    scheduler.pause("ok").unwrap();
    let text = metrics.encode();
    assert_eq!(value(&text, "mscribe_job_paused{job=\"ok\"}"), Some(1.0));
    assert_eq!(value(&text, "mscribe_job_next_fire_timestamp_seconds{job=\"ok\"}"), Some(0.0));
    assert_eq!(value(&text, "mscribe_job_paused{job=\"bad\"}"), Some(0.0));
    scheduler.resume("ok").unwrap();
    let text = metrics.encode();
    assert_eq!(value(&text, "mscribe_job_paused{job=\"ok\"}"), Some(0.0));
    assert_eq!(
        value(&text, "mscribe_job_next_fire_timestamp_seconds{job=\"ok\"}"),
        Some(secs(t0 + chrono::Duration::hours(2)))
    );

    // An unregistered job's freshness series go (its counters stay).
    scheduler.unregister("bad").unwrap();
    let text = metrics.encode();
    for family in [
        "last_success_timestamp_seconds",
        "last_run_timestamp_seconds",
        "next_fire_timestamp_seconds",
        "paused",
    ] {
        let gone = format!("mscribe_job_{family}{{job=\"bad\"");
        assert!(!text.contains(&gone), "{gone}\n{text}");
    }
    assert!(text.contains("mscribe_job_last_success_timestamp_seconds{job=\"ok\"}"));
    scheduler.stop(Duration::from_secs(1)).await.unwrap();
}

fn end(job: &str, n: u128, at: DateTime<Utc>, status: ExecutionStatus) -> ExecutionEvent {
    ExecutionEvent::Finished(AttemptEnd {
        job_id: job.into(),
        execution_id: ExecutionId::from_u128(n),
        attempt: 1,
        scheduled_at: at,
        started_at: at,
        instance_id: "other".into(),
        status,
        completed_at: at + chrono::Duration::seconds(5),
        duration: Duration::from_secs(5),
        error: None,
        error_kind: None,
        result: None,
        metrics: None,
        kind: FireKind::Schedule,
        fence: None,
        ends_run: true,
    })
}

#[tokio::test]
async fn last_success_and_last_run_are_seeded_from_the_history() {
    let store = Arc::new(MemoryStore::new());
    let day = Utc.with_ymd_and_hms(2025, 12, 30, 0, 0, 0).unwrap();
    let mut events = vec![end("ok", 1, day, ExecutionStatus::Succeeded)];
    // A success older than the newest SEED_ROWS rows is still found.
    for i in 0..150u128 {
        let at = day + chrono::Duration::minutes(10 + i as i64);
        events.push(ExecutionEvent::Started(AttemptStart {
            job_id: "ok".into(),
            execution_id: ExecutionId::from_u128(100 + i),
            attempt: 1,
            scheduled_at: at,
            started_at: at,
            instance_id: "other".into(),
            kind: FireKind::Schedule,
            fence: None,
        }));
        events.push(end("ok", 100 + i, at, ExecutionStatus::Failed));
    }
    store.write(&events).await.unwrap();
    let (scheduler, metrics, _clock) = fixture(store.clone());
    let ids: Vec<String> = scheduler.jobs().into_iter().map(|j| j.id).collect();
    metrics.seed_from_store(&*store, &ids).await.unwrap();
    let text = metrics.encode();
    assert_eq!(
        value(&text, "mscribe_job_last_success_timestamp_seconds{job=\"ok\"}"),
        Some(secs(day) + 5.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "mscribe_job_last_run_timestamp_seconds{job=\"ok\",status=\"failed\"}"),
        Some(secs(day + chrono::Duration::minutes(159)) + 5.0)
    );
    assert_eq!(value(&text, "mscribe_job_last_success_timestamp_seconds{job=\"bad\"}"), Some(0.0));
}

#[test]
fn build_info_names_the_version_and_commit() {
    let text = ServerMetrics::new().encode();
    let line =
        format!("mscribe_build_info{{version=\"{BUILD_VERSION}\",commit=\"{BUILD_COMMIT}\"}} 1");
    assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    assert!(!BUILD_COMMIT.is_empty());
}

/// The OpenMetrics text in the classic text format that promtool reads: a
/// counter's `# HELP`/`# TYPE` name its `_total` samples, and no `# EOF`
/// (what a classic scrape of the same registry shows).
fn classic(open_metrics: &str) -> String {
    let counters: Vec<String> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter").map(str::to_owned))
        .collect();
    let mut out = String::new();
    for line in open_metrics.lines().filter(|l| *l != "# EOF") {
        let mut line = line.to_owned();
        for c in &counters {
            for kind in ["# HELP ", "# TYPE "] {
                let prefix = format!("{kind}{c} ");
                if let Some(rest) = line.strip_prefix(&prefix) {
                    line = format!("{kind}{c}_total {rest}");
                }
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `promtool check metrics` (Prometheus' own linter of metric names, types
/// and help) passes on a full scrape. `scripts/test.sh` installs promtool
/// and sets `MSCRIBE_REQUIRE_PROMTOOL=1`, so CI never skips it; elsewhere
/// the test says so when promtool is missing.
#[tokio::test]
async fn a_scrape_passes_promtool() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let (scheduler, metrics, clock) = fixture(Arc::new(MemoryStore::new()));
    scheduler.start().await.unwrap();
    clock.advance(Duration::from_secs(3600));
    let s = scheduler.clone();
    settle(|| s.jobs().iter().all(|j| j.last_status.is_some())).await;
    let text = metrics.encode();
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var("MSCRIBE_REQUIRE_PROMTOOL").as_deref() == Ok("1") => {
            panic!("promtool is required (MSCRIBE_REQUIRE_PROMTOOL=1) but could not run: {e}")
        }
        Err(e) => {
            eprintln!("NOT CHECKED: promtool could not run ({e}); scripts/test.sh installs it");
            return;
        }
    };
    child.stdin.take().unwrap().write_all(classic(&text).as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool:\n{report}\n{text}");
    scheduler.stop(Duration::from_secs(1)).await.unwrap();
}
