//! warp filter tests of every route and error code, with a scheduler on a
//! virtual clock (nothing fires by itself) and scripted probes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::TokioSpawner;
use mscribe_scheduler::{
    Clock, ExecutionRecord, ExecutionStatus, ExecutionStore, HistoryQuery, JobConfig, JobContext,
    JobResult, JobScheduler, MemoryStore, OverlapPolicy, PrunePolicy, StoreResult, VirtualClock,
};
use mscribe_server::config::Secret;
use mscribe_server::health::{HealthChecker, HealthSettings, SchedulerProbe};
use mscribe_server::http::{ServerState, routes};
use mscribe_server::metrics::ServerMetrics;
use mscribe_server::probe::ScriptedProbe;
use mscribe_server::probe::{Probe, ProbeReport};
use serde_json::Value;
use warp::http::StatusCode;

const TOKEN: &str = "test-token-0123456789abcdef0123456789";

struct Fixture {
    state: Arc<ServerState>,
    store: Arc<MemoryStore>,
    clock: VirtualClock,
    db: Arc<ScriptedProbe>,
    auth: Arc<ScriptedProbe>,
}

fn fixture() -> Fixture {
    let clock = VirtualClock::at_epoch_2026();
    let store = Arc::new(MemoryStore::new());
    let metrics = ServerMetrics::new();
    let scheduler =
        JobScheduler::builder(Arc::new(clock.clone()), Arc::new(TokioSpawner::current()))
            .store(store.clone())
            .observer(metrics.clone())
            .seed(7)
            .build();
    metrics.attach(scheduler.clone());
    scheduler
        .register(
            JobConfig::new("quick", |_ctx: JobContext| async {
                Ok::<_, String>(JobResult::ok().with_data(serde_json::json!({ "done": true })))
            })
            .name("Quick job")
            .schedule("0 2 * * *")
            .timeout(Duration::from_secs(60)),
        )
        .unwrap();
    // Runs until cancelled: to test overlap on trigger.
    scheduler
        .register(
            JobConfig::new("slow", |ctx: JobContext| async move {
                if ctx.sleep(Duration::from_secs(3600)).await {
                    Ok(())
                } else {
                    Err("stopped early")
                }
            })
            .schedule("@daily")
            .overlap(OverlapPolicy::Skip),
        )
        .unwrap();
    let db = Arc::new(ScriptedProbe::new(
        "database",
        true,
        ProbeReport::healthy(Duration::from_millis(3)),
    ));
    let auth =
        Arc::new(ScriptedProbe::new("auth", false, ProbeReport::healthy(Duration::from_millis(5))));
    let probes: Vec<Arc<dyn Probe>> = vec![
        db.clone(),
        Arc::new(SchedulerProbe::new(scheduler.clone(), Duration::from_secs(60))),
        auth.clone(),
    ];
    let m = metrics.clone();
    let health = HealthChecker::with_hooks(
        probes,
        Arc::new(clock.clone()),
        HealthSettings { ttl: Duration::from_secs(2), ..HealthSettings::default() },
        vec![Box::new(move |s| m.record_health(s))],
    );
    let state = Arc::new(ServerState {
        scheduler,
        health,
        metrics,
        admin_token: Secret::new(TOKEN),
        max_body_bytes: 1024,
        control: None,
        alerts: None,
    });
    Fixture { state, store, clock, db, auth }
}

async fn started() -> Fixture {
    let f = fixture();
    f.state.scheduler.start().await.unwrap();
    f
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

async fn call(
    f: &Fixture,
    method: &str,
    path: &str,
    auth: bool,
) -> (StatusCode, warp::http::HeaderMap, Value) {
    let mut req = warp::test::request().method(method).path(path);
    if auth {
        req = req.header("authorization", bearer());
    }
    let res = req.reply(&routes(f.state.clone())).await;
    let status = res.status();
    let headers = res.headers().clone();
    let body = if res.body().is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(res.body())
            .unwrap_or(Value::String(String::from_utf8_lossy(res.body()).into_owned()))
    };
    (status, headers, body)
}

/// Expires the health cache.
fn next_ttl(f: &Fixture) {
    f.clock.advance(Duration::from_secs(3));
}

/// Lets spawned runs and the store writer make progress (no wall clock).
async fn settle(f: &Fixture, done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    let _ = f;
    panic!("condition not reached");
}

#[tokio::test]
async fn health_bodies_healthy_degraded_unhealthy_anonymous_and_admin() {
    let f = started().await;

    let (code, headers, body) = call(&f, "GET", "/health-check", false).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-cache, no-store, must-revalidate");
    assert_eq!(headers["content-type"], "application/json");
    insta::assert_json_snapshot!("health_healthy_anonymous", body, { ".timestamp" => "[timestamp]", ".version" => "[version]" });
    let (_, _, body) = call(&f, "GET", "/health-check", true).await;
    insta::assert_json_snapshot!("health_healthy_admin", body, { ".timestamp" => "[timestamp]", ".version" => "[version]" });

    // A non-critical probe down: degraded, 503.
    f.auth.push(ProbeReport::unhealthy(
        Duration::from_millis(5),
        "auth.internal:9000: connection refused",
    ));
    next_ttl(&f);
    let (code, _, body) = call(&f, "GET", "/health-check", false).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    insta::assert_json_snapshot!("health_degraded_anonymous", body, { ".timestamp" => "[timestamp]", ".version" => "[version]" });
    let (_, _, body) = call(&f, "GET", "/health-check", true).await;
    insta::assert_json_snapshot!("health_degraded_admin", body, { ".timestamp" => "[timestamp]", ".version" => "[version]" });

    // The database down: unhealthy, 503; details only for the admin.
    f.db.push(ProbeReport::unhealthy(Duration::from_millis(1000), "db.internal:5432: timed out"));
    next_ttl(&f);
    let (code, _, body) = call(&f, "GET", "/health-check", false).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!body.to_string().contains("db.internal"));
    insta::assert_json_snapshot!("health_unhealthy_anonymous", body, { ".timestamp" => "[timestamp]", ".version" => "[version]" });
    let (_, _, body) = call(&f, "GET", "/health-check", true).await;
    insta::assert_json_snapshot!("health_unhealthy_admin", body, { ".timestamp" => "[timestamp]", ".version" => "[version]" });

    // A wrong token is treated as anonymous.
    let res = warp::test::request()
        .path("/health-check")
        .header("authorization", "Bearer nope")
        .reply(&routes(f.state.clone()))
        .await;
    assert!(!String::from_utf8_lossy(res.body()).contains("db.internal"));
}

#[tokio::test]
async fn health_head_has_no_body_and_same_status() {
    let f = started().await;
    let (code, headers, body) = call(&f, "HEAD", "/health-check", false).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body, Value::Null);
    assert_eq!(headers["cache-control"], "no-cache, no-store, must-revalidate");
    f.db.push(ProbeReport::unhealthy(Duration::ZERO, "down"));
    next_ttl(&f);
    let (code, _, body) = call(&f, "HEAD", "/health-check", false).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, Value::Null);
}

#[derive(Debug)]
struct Counting(Arc<AtomicU64>);

#[async_trait]
impl Probe for Counting {
    fn name(&self) -> &str {
        "database"
    }
    async fn check(&self) -> ProbeReport {
        self.0.fetch_add(1, Ordering::SeqCst);
        // Yields once, so the other requests arrive while it runs.
        tokio::task::yield_now().await;
        ProbeReport::healthy(Duration::ZERO)
    }
}

#[tokio::test]
async fn a_flood_of_requests_probes_the_database_once_per_ttl() {
    let mut f = started().await;
    let runs = Arc::new(AtomicU64::new(0));
    let clock: Arc<dyn Clock> = Arc::new(f.clock.clone());
    let state = &f.state;
    let health = HealthChecker::new(
        vec![Arc::new(Counting(runs.clone()))],
        clock,
        HealthSettings::default(),
    );
    f.state = Arc::new(ServerState {
        scheduler: state.scheduler.clone(),
        health,
        metrics: state.metrics.clone(),
        admin_token: Secret::new(TOKEN),
        max_body_bytes: 1024,
        control: None,
        alerts: None,
    });
    let filter = routes(f.state.clone());
    let flood = (0..200).map(|_| warp::test::request().path("/health-check").reply(&filter));
    let replies = futures::future::join_all(flood).await;
    assert!(replies.iter().all(|r| r.status() == StatusCode::OK));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    f.clock.advance(Duration::from_millis(1999));
    futures::future::join_all(
        (0..50).map(|_| warp::test::request().path("/health-check").reply(&filter)),
    )
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    f.clock.advance(Duration::from_millis(1));
    futures::future::join_all(
        (0..50).map(|_| warp::test::request().path("/health-check").reply(&filter)),
    )
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn livez_and_readyz() {
    let f = fixture();
    let (code, _, body) = call(&f, "GET", "/livez", false).await;
    assert_eq!((code, body["status"].as_str()), (StatusCode::OK, Some("alive")));
    let (code, _, body) = call(&f, "HEAD", "/livez", false).await;
    assert_eq!((code, body), (StatusCode::OK, Value::Null));
    // Not started yet.
    let (code, _, body) = call(&f, "GET", "/readyz", false).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["reasons"][0], "scheduler is created");
    f.state.scheduler.start().await.unwrap();
    let (code, _, body) = call(&f, "GET", "/readyz", false).await;
    assert_eq!((code, body["status"].as_str()), (StatusCode::OK, Some("ready")));
    f.db.push(ProbeReport::unhealthy(Duration::ZERO, "down"));
    next_ttl(&f);
    let (code, _, body) = call(&f, "GET", "/readyz", false).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["reasons"][0], "database unreachable");
    f.state.scheduler.stop(Duration::from_secs(1)).await.unwrap();
    let (code, _, body) = call(&f, "HEAD", "/readyz", false).await;
    assert_eq!((code, body), (StatusCode::SERVICE_UNAVAILABLE, Value::Null));
    // Liveness does not depend on anything.
    assert_eq!(call(&f, "GET", "/livez", false).await.0, StatusCode::OK);
}

#[tokio::test]
async fn jobs_api_needs_the_bearer_token() {
    let f = started().await;
    for (method, path) in [
        ("GET", "/jobs"),
        ("GET", "/jobs/quick"),
        ("GET", "/jobs/nope"),
        ("GET", "/jobs/quick/executions"),
        ("POST", "/jobs/quick/trigger"),
        ("POST", "/jobs/quick/pause"),
        ("POST", "/jobs/quick/resume"),
        ("DELETE", "/jobs"),
    ] {
        let (code, headers, body) = call(&f, method, path, false).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        assert!(body["error"].as_str().unwrap().contains("missing bearer token"));
    }
    let res = warp::test::request()
        .path("/jobs")
        .header("authorization", "Bearer test-token-0123456789abcdef012345678X")
        .reply(&routes(f.state.clone()))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        serde_json::from_slice::<Value>(res.body()).unwrap()["error"],
        "invalid bearer token"
    );
    let res = warp::test::request()
        .path("/jobs")
        .header("authorization", format!("Basic {TOKEN}"))
        .reply(&routes(f.state.clone()))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Nothing was triggered.
    assert!(f.store.is_empty());
}

#[tokio::test]
async fn list_get_trigger_history_pause_resume() {
    let f = started().await;
    let (code, _, body) = call(&f, "GET", "/jobs", true).await;
    assert_eq!(code, StatusCode::OK);
    let jobs = body["jobs"].as_array().unwrap();
    assert_eq!(
        jobs.iter().map(|j| j["id"].as_str().unwrap()).collect::<Vec<_>>(),
        ["quick", "slow"]
    );
    assert_eq!(jobs[0]["name"], "Quick job");
    assert_eq!(jobs[0]["schedule"], "0 2 * * *");
    assert_eq!(jobs[0]["next_run"], "2026-01-01T02:00:00Z");
    assert_eq!(jobs[0]["timeout_ms"], 60_000);
    assert_eq!(jobs[0]["last_status"], Value::Null);

    let (code, _, body) = call(&f, "POST", "/jobs/quick/trigger", true).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert_eq!(body["outcome"], "started");
    assert_eq!(body["job_id"], "quick");
    let exec = body["execution_id"].as_str().unwrap().to_owned();
    let store = f.store.clone();
    settle(&f, || store.all().iter().any(|r| r.status == ExecutionStatus::Succeeded)).await;

    let (code, _, body) = call(&f, "GET", "/jobs/quick/executions", true).await;
    assert_eq!(code, StatusCode::OK);
    let rows = body["executions"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["execution_id"], exec.as_str());
    assert_eq!(rows[0]["status"], "succeeded");
    assert_eq!(rows[0]["result"]["done"], true);
    let (_, _, body) = call(&f, "GET", "/jobs/quick/executions?limit=5&status=failed", true).await;
    assert_eq!(body["executions"], serde_json::json!([]));
    let (_, _, body) =
        call(&f, "GET", "/jobs/quick/executions?status=succeeded&limit=1", true).await;
    assert_eq!(body["executions"].as_array().unwrap().len(), 1);

    let (code, _, body) = call(&f, "GET", "/jobs/quick", true).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["last_status"], "succeeded");
    assert_eq!(body["last_execution"]["execution_id"], exec.as_str());

    // Overlap: a trigger while the slow job runs is recorded as skipped.
    let (code, _, body) = call(&f, "POST", "/jobs/slow/trigger", true).await;
    assert_eq!((code, body["outcome"].as_str()), (StatusCode::ACCEPTED, Some("started")));
    let sched = f.state.scheduler.clone();
    settle(&f, || sched.job("slow").unwrap().running == 1).await;
    let (code, _, body) = call(&f, "POST", "/jobs/slow/trigger", true).await;
    assert_eq!((code, body["outcome"].as_str()), (StatusCode::OK, Some("skipped")));
    settle(&f, || {
        store.history_blocking("slow").iter().any(|r| r.status == ExecutionStatus::Skipped)
    })
    .await;

    let (code, _, body) = call(&f, "POST", "/jobs/quick/pause", true).await;
    assert_eq!((code, body["paused"].as_bool()), (StatusCode::OK, Some(true)));
    assert_eq!(body["next_run"], Value::Null);
    let (code, _, body) = call(&f, "POST", "/jobs/quick/resume", true).await;
    assert_eq!((code, body["paused"].as_bool()), (StatusCode::OK, Some(false)));
    assert_eq!(body["next_run"], "2026-01-01T02:00:00Z");

    // Metrics saw it all.
    let res = warp::test::request().path("/metrics").reply(&routes(f.state.clone())).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], mscribe_server::metrics::CONTENT_TYPE);
    let text = String::from_utf8_lossy(res.body()).into_owned();
    assert!(
        text.contains("mscribe_job_outcomes_total{job=\"quick\",status=\"succeeded\"} 1"),
        "{text}"
    );
    assert!(text.contains("mscribe_job_skipped_total{job=\"slow\"} 1"), "{text}");
    assert!(text.contains("mscribe_job_lateness_seconds_count{job=\"quick\"} 1"), "{text}");
    assert!(text.contains("mscribe_store_buffered_events"), "{text}");

    // Trigger after stop: 503.
    f.state.scheduler.stop(Duration::from_secs(1)).await.unwrap();
    let (code, _, body) = call(&f, "POST", "/jobs/quick/trigger", true).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "scheduler is stopped");
    // The slow run was cancelled by stop, and recorded so.
    let slow = f.store.history_blocking("slow");
    assert!(slow.iter().any(|r| r.status == ExecutionStatus::Cancelled), "{slow:?}");
    assert!(slow.iter().all(|r| r.status != ExecutionStatus::Running));
}

#[tokio::test]
async fn a_trigger_only_job_has_a_null_schedule_and_its_trigger_is_its_last_run() {
    let f = fixture();
    f.state
        .scheduler
        .register(JobConfig::new("adhoc", |_ctx: JobContext| async {}).name("Ad hoc"))
        .unwrap();
    f.state.scheduler.start().await.unwrap();
    let (code, _, body) = call(&f, "GET", "/jobs/adhoc", true).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["schedule"], Value::Null, "{body}");
    assert_eq!(body["next_run"], Value::Null);
    assert_eq!(body["last_run"], Value::Null);
    let (_, _, body) = call(&f, "GET", "/jobs", true).await;
    let listed = body["jobs"].as_array().unwrap().iter().find(|j| j["id"] == "adhoc").unwrap();
    assert_eq!(listed["schedule"], Value::Null);
    assert!(body["jobs"].as_array().unwrap().iter().any(|j| j["schedule"] == "0 2 * * *"));

    f.clock.advance(Duration::from_secs(90));
    let (code, _, _) = call(&f, "POST", "/jobs/adhoc/trigger", true).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let store = f.store.clone();
    settle(&f, || {
        store.all().iter().any(|r| r.job_id == "adhoc" && r.status == ExecutionStatus::Succeeded)
    })
    .await;
    let (_, _, body) = call(&f, "GET", "/jobs/adhoc", true).await;
    assert_eq!(body["last_run"], "2026-01-01T00:01:30Z", "{body}");
    assert_eq!(body["last_status"], "succeeded");
    assert_eq!(body["schedule"], Value::Null);
    f.state.scheduler.stop(Duration::from_secs(1)).await.unwrap();
}

trait Blocking {
    fn history_blocking(&self, job: &str) -> Vec<mscribe_scheduler::ExecutionRecord>;
}

impl Blocking for Arc<MemoryStore> {
    fn history_blocking(&self, job: &str) -> Vec<mscribe_scheduler::ExecutionRecord> {
        futures::executor::block_on(self.history(&HistoryQuery::new(job, 100))).unwrap()
    }
}

#[tokio::test]
async fn error_codes() {
    let f = started().await;
    let mut rows = Vec::new();
    for (method, path, auth, len) in [
        ("GET", "/nope", false, None),
        ("GET", "/jobs/nope", true, None),
        ("GET", "/jobs/nope/executions", true, None),
        ("POST", "/jobs/nope/trigger", true, None),
        ("GET", "/jobs/quick/whatever", true, None),
        ("POST", "/health-check", false, None),
        ("DELETE", "/livez", false, None),
        ("POST", "/metrics", false, None),
        ("POST", "/jobs", true, None),
        ("DELETE", "/jobs/quick", true, None),
        ("GET", "/jobs/quick/trigger", true, None),
        ("PUT", "/jobs/quick/pause", true, None),
        ("POST", "/jobs/quick/executions", true, None),
        ("GET", "/jobs/quick/executions?limit=abc", true, None),
        ("GET", "/jobs/quick/executions?limit=5&color=red", true, None),
        ("GET", "/jobs/quick/executions?limit=0", true, None),
        ("GET", "/jobs/quick/executions?limit=1001", true, None),
        ("GET", "/jobs/quick/executions?status=fine", true, None),
        ("POST", "/jobs/quick/trigger", true, Some("1025")),
        ("POST", "/jobs/quick/trigger", true, Some("12abc")),
    ] {
        let mut req = warp::test::request().method(method).path(path);
        if auth {
            req = req.header("authorization", bearer());
        }
        if let Some(l) = len {
            req = req.header("content-length", l);
        }
        let res = req.reply(&routes(f.state.clone())).await;
        let body: Value = serde_json::from_slice(res.body()).expect("a JSON error body");
        assert_eq!(res.headers()["content-type"], "application/json", "{method} {path}");
        let allow = res
            .headers()
            .get("allow")
            .map(|v| format!(" (Allow: {})", v.to_str().unwrap()))
            .unwrap_or_default();
        rows.push(format!(
            "{method} {path}{} -> {}{allow} {}",
            len.map(|l| format!(" [content-length {l}]")).unwrap_or_default(),
            res.status().as_u16(),
            body["error"].as_str().unwrap()
        ));
    }
    insta::assert_snapshot!("error_codes", rows.join("\n"));
    // None of them ran anything.
    assert!(f.store.is_empty());
}

#[tokio::test]
async fn unstarted_scheduler_refuses_triggers_with_503() {
    let f = fixture();
    let (code, _, body) = call(&f, "POST", "/jobs/quick/trigger", true).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "scheduler is not started");
}

/// A store whose reads never answer (a database gone without a word);
/// writes and everything else go to `inner`.
#[derive(Debug)]
struct ReadsHang(Arc<MemoryStore>);

#[async_trait]
impl ExecutionStore for ReadsHang {
    async fn write(&self, events: &[mscribe_scheduler::ExecutionEvent]) -> StoreResult<()> {
        self.0.write(events).await
    }
    async fn history(&self, _q: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        futures::future::pending().await
    }
    async fn last_fire(&self, _job: &str) -> StoreResult<Option<DateTime<Utc>>> {
        futures::future::pending().await
    }
    async fn heartbeat(&self, id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.0.heartbeat(id, now).await
    }
    async fn mark_abandoned(
        &self,
        own: &str,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        self.0.mark_abandoned(own, now, stale_after).await
    }
    async fn prune(&self, policy: PrunePolicy) -> StoreResult<u64> {
        self.0.prune(policy).await
    }
}

/// The jobs views answer from memory within the store budget (2 s) when
/// the store's reads hang: the last stored row is then absent.
#[tokio::test(start_paused = true)]
async fn the_jobs_views_answer_from_memory_when_the_store_does_not() {
    let mut f = fixture();
    let clock = f.clock.clone();
    let scheduler =
        JobScheduler::builder(Arc::new(clock.clone()), Arc::new(TokioSpawner::current()))
            .store(Arc::new(ReadsHang(f.store.clone())))
            .build();
    for id in ["a", "b", "c"] {
        scheduler
            .register(JobConfig::new(id, |_ctx: JobContext| async {}).schedule("@daily"))
            .unwrap();
    }
    f.state = Arc::new(ServerState {
        scheduler,
        health: f.state.health.clone(),
        metrics: f.state.metrics.clone(),
        admin_token: Secret::new(TOKEN),
        max_body_bytes: 1024,
        control: None,
        alerts: None,
    });
    let t0 = tokio::time::Instant::now();
    let (status, _, body) =
        tokio::time::timeout(Duration::from_secs(30), call(&f, "GET", "/jobs", true))
            .await
            .expect("GET /jobs answers");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["jobs"].as_array().map(Vec::len), Some(3), "{body}");
    assert!(body["jobs"][0]["last_execution"].is_null(), "{body}");
    assert!(t0.elapsed() <= Duration::from_secs(2), "{:?}", t0.elapsed());
    let (status, _, body) =
        tokio::time::timeout(Duration::from_secs(30), call(&f, "GET", "/jobs/b", true))
            .await
            .expect("GET /jobs/b answers");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], "b");
}
