//! OpenTelemetry (feature `otel`): the spans of runs, attempts and API
//! requests and their attributes, through the SDK's in-memory exporter and
//! the server's own layer ([`telemetry::layer`]); the `traceparent` an HTTP
//! job sends. Schedulers on a virtual clock; the tests share one global
//! subscriber and tell their spans apart by job id or route. And the real
//! `mscribe serve` posting its spans to a collector over OTLP/HTTP when it
//! stops.
#![cfg(feature = "otel")]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mscribe_scheduler::{
    Clock, JobConfig, JobContext, JobScheduler, MemoryStore, RetryPolicy, TokioSpawner,
    TriggerOutcome, VirtualClock,
};
use mscribe_server::config::{HttpOptions, Secret, TelemetryConfig};
use mscribe_server::health::{HealthChecker, HealthSettings};
use mscribe_server::http::{ServerState, routes};
use mscribe_server::metrics::ServerMetrics;
use mscribe_server::ops::HttpJob;
use mscribe_server::telemetry;
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;
use warp::Filter;

const TOKEN: &str = "otel-token-0123456789abcdef0123456789";

/// The exporter every span of this binary goes to (installed once).
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    &EXPORTER
        .get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let provider = telemetry::provider_builder(&TelemetryConfig::default())
                .with_simple_exporter(exporter.clone())
                .build();
            let subscriber = tracing_subscriber::registry().with(telemetry::layer(&provider));
            tracing::subscriber::set_global_default(subscriber).unwrap();
            (exporter, provider)
        })
        .0
}

/// The finished spans named `name` whose attribute `key` is `value`.
fn spans(name: &str, key: &str, value: &str) -> Vec<SpanData> {
    let mut out: Vec<SpanData> = exporter()
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|s| s.name == name && attr(s, key).as_deref() == Some(value))
        .collect();
    out.sort_by_key(|s| attr(s, "attempt"));
    out
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
}

/// Lets the spawned runs make progress until `done` (no wall clock).
async fn settle(what: &str, done: impl Fn() -> bool) {
    for _ in 0..100_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("not reached: {what}");
}

fn scheduler(clock: &VirtualClock) -> JobScheduler {
    JobScheduler::builder(Arc::new(clock.clone()), Arc::new(TokioSpawner::current()))
        .store(Arc::new(MemoryStore::new()))
        .seed(5)
        .build()
}

#[tokio::test]
async fn runs_and_attempts_are_spans_with_job_fire_attempt_status_and_trigger() {
    exporter();
    let clock = VirtualClock::at_epoch_2026();
    let s = scheduler(&clock);
    // Fails its first attempt, succeeds on the retry 1 s later.
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    s.register(
        JobConfig::new("otel-flaky", move |ctx: JobContext| {
            c.fetch_add(1, Ordering::SeqCst);
            async move { if ctx.attempt == 1 { Err("boom") } else { Ok(()) } }
        })
        .schedule("0 * * * *")
        .retry(RetryPolicy::exponential(2).initial_delay(Duration::from_secs(1))),
    )
    .unwrap();
    s.register(JobConfig::new("otel-manual", |_ctx: JobContext| async { Err::<(), _>("nope") }))
        .unwrap();
    s.start().await.unwrap();

    // The 01:00 fire: attempt 1 fails on the driver, the retry is a task.
    clock.advance(Duration::from_secs(3600));
    settle("attempt 1", || spans("mscribe.attempt", "job_id", "otel-flaky").len() == 1).await;
    clock.advance(Duration::from_secs(2));
    settle("the run", || spans("mscribe.run", "job_id", "otel-flaky").len() == 1).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let TriggerOutcome::Started { execution_id } = s.trigger("otel-manual").unwrap() else {
        panic!("not started")
    };
    settle("the manual run", || spans("mscribe.run", "job_id", "otel-manual").len() == 1).await;
    s.stop(Duration::from_secs(1)).await.unwrap();

    let run = &spans("mscribe.run", "job_id", "otel-flaky")[0];
    let attempts = spans("mscribe.attempt", "job_id", "otel-flaky");
    assert_eq!(attempts.len(), 2);
    let fire_key = "otel-flaky@2026-01-01T01:00:00.000Z";
    assert_eq!(attr(run, "fire_key").as_deref(), Some(fire_key));
    assert_eq!(attr(run, "trigger").as_deref(), Some("schedule"));
    assert_eq!(attr(run, "status").as_deref(), Some("succeeded"));
    assert_eq!(attr(run, "attempt"), None);
    assert_eq!(run.parent_span_id, SpanId::INVALID, "a run is a root");
    assert_eq!(run.status, Status::Unset);
    for (a, (n, status)) in attempts.iter().zip([("1", "failed"), ("2", "succeeded")]) {
        assert_eq!(attr(a, "attempt").as_deref(), Some(n));
        assert_eq!(attr(a, "status").as_deref(), Some(status));
        assert_eq!(attr(a, "fire_key").as_deref(), Some(fire_key));
        assert_eq!(attr(a, "trigger").as_deref(), Some("schedule"));
        assert_eq!(attr(a, "execution_id"), attr(run, "execution_id"));
        assert_eq!(a.parent_span_id, run.span_context.span_id());
        assert_eq!(a.span_context.trace_id(), run.span_context.trace_id());
    }
    assert!(matches!(attempts[0].status, Status::Error { .. }));
    assert_eq!(attempts[1].status, Status::Unset);
    // The backoff lies between the attempts, inside the run.
    assert!(attempts[0].end_time <= attempts[1].start_time);
    assert!(run.start_time <= attempts[0].start_time && attempts[1].end_time <= run.end_time);

    let run = &spans("mscribe.run", "job_id", "otel-manual")[0];
    let attempt = &spans("mscribe.attempt", "job_id", "otel-manual")[0];
    assert_eq!(attr(run, "execution_id"), Some(execution_id.to_string()));
    for span in [run, attempt] {
        assert_eq!(attr(span, "trigger").as_deref(), Some("manual"));
        assert_eq!(attr(span, "status").as_deref(), Some("failed"));
        assert!(attr(span, "fire_key").unwrap().starts_with("otel-manual@2026-01-01T01:00:02"));
        assert!(matches!(span.status, Status::Error { .. }));
    }
    assert_eq!(attr(attempt, "attempt").as_deref(), Some("1"));
}

#[tokio::test]
async fn an_http_job_sends_its_attempt_s_traceparent() {
    exporter();
    // A local server that keeps the traceparent of each request.
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let keep = seen.clone();
    let route = warp::path("hook").and(warp::header::optional::<String>("traceparent")).map(
        move |t: Option<String>| {
            keep.lock().unwrap().push(t);
            let _ = tx.send(());
            "ok"
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());

    let clock = VirtualClock::at_epoch_2026();
    let s = scheduler(&clock);
    let options = HttpOptions { url: format!("http://{addr}/hook"), ..HttpOptions::default() };
    let job = Arc::new(HttpJob::new("otel-http", options));
    s.register(JobConfig::new("otel-http", move |ctx: JobContext| {
        let job = job.clone();
        async move { job.execute(&ctx.cancel).await.into_job_result() }
    }))
    .unwrap();
    s.start().await.unwrap();
    s.trigger("otel-http").unwrap();
    rx.recv().await.unwrap();
    settle("the run", || spans("mscribe.run", "job_id", "otel-http").len() == 1).await;
    s.stop(Duration::from_secs(1)).await.unwrap();

    let attempt = &spans("mscribe.attempt", "job_id", "otel-http")[0];
    assert_eq!(attr(attempt, "status").as_deref(), Some("succeeded"));
    let cx = &attempt.span_context;
    let expected = format!("00-{}-{}-01", cx.trace_id(), cx.span_id());
    assert_eq!(*seen.lock().unwrap(), vec![Some(expected)]);
}

#[tokio::test]
async fn an_api_request_is_a_server_span_child_of_its_caller() {
    exporter();
    let clock = VirtualClock::at_epoch_2026();
    let s = scheduler(&clock);
    s.register(JobConfig::new("otel-api", |_ctx: JobContext| async { Ok::<_, String>(()) }))
        .unwrap();
    let state = Arc::new(ServerState {
        scheduler: s,
        health: HealthChecker::new(
            Vec::new(),
            Arc::new(clock.clone()) as Arc<dyn Clock>,
            HealthSettings::default(),
        ),
        metrics: ServerMetrics::new(),
        admin_token: Secret::new(TOKEN),
        max_body_bytes: 1024,
        control: None,
        alerts: None,
    });
    let caller_trace = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let res = warp::test::request()
        .method("GET")
        .path("/jobs/otel-api")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .reply(&routes(state.clone()))
        .await;
    assert_eq!(res.status(), 200);
    let res =
        warp::test::request().method("GET").path("/jobs/otel-nope").reply(&routes(state)).await;
    assert_eq!(res.status(), 401);

    let found = spans("GET /jobs/{id}", "url.path", "/jobs/otel-api");
    let [span] = found.as_slice() else { panic!("one span expected, got {found:?}") };
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(attr(span, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(attr(span, "http.route").as_deref(), Some("/jobs/{id}"));
    assert_eq!(attr(span, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(span.span_context.trace_id(), TraceId::from_hex(caller_trace).unwrap());
    assert_eq!(span.parent_span_id, SpanId::from_hex(caller_span).unwrap());
    assert_eq!(span.status, Status::Unset);

    let found = spans("GET /jobs/{id}", "url.path", "/jobs/otel-nope");
    let [span] = found.as_slice() else { panic!("one span expected, got {found:?}") };
    assert_eq!(attr(span, "http.response.status_code").as_deref(), Some("401"));
    assert_eq!(span.parent_span_id, SpanId::INVALID, "no caller: a root");
}

#[tokio::test]
async fn span_status_codes_and_attempt_numbers_are_integer_attributes() {
    // OpenTelemetry's semantic conventions make `http.response.status_code`
    // an int: a backend filtering on `>= 500` needs a number, not "500".
    exporter();
    let value = |span: &SpanData, key: &str| {
        span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.clone())
    };
    let clock = VirtualClock::at_epoch_2026();
    let s = scheduler(&clock);
    s.register(JobConfig::new("otel-int", |_ctx: JobContext| async { Ok::<_, String>(()) }))
        .unwrap();
    s.start().await.unwrap();
    s.trigger("otel-int").unwrap();
    settle("the run", || spans("mscribe.run", "job_id", "otel-int").len() == 1).await;
    let attempt = &spans("mscribe.attempt", "job_id", "otel-int")[0];
    assert_eq!(value(attempt, "attempt"), Some(opentelemetry::Value::I64(1)));

    let state = Arc::new(ServerState {
        scheduler: s,
        health: HealthChecker::new(
            Vec::new(),
            Arc::new(clock.clone()) as Arc<dyn Clock>,
            HealthSettings::default(),
        ),
        metrics: ServerMetrics::new(),
        admin_token: Secret::new(TOKEN),
        max_body_bytes: 1024,
        control: None,
        alerts: None,
    });
    let res =
        warp::test::request().method("GET").path("/jobs/otel-int-401").reply(&routes(state)).await;
    assert_eq!(res.status(), 401);
    let found = spans("GET /jobs/{id}", "url.path", "/jobs/otel-int-401");
    let [span] = found.as_slice() else { panic!("one span expected, got {found:?}") };
    assert_eq!(value(span, "http.response.status_code"), Some(opentelemetry::Value::I64(401)));
}

/// One OTLP/HTTP export: its content type and body.
type Export = (Option<String>, bytes::Bytes);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_posts_its_spans_to_the_collector_and_flushes_them_at_stop() {
    // A collector: keeps each OTLP/HTTP export's content type and body.
    let posts: Arc<Mutex<Vec<Export>>> = Arc::default();
    let keep = posts.clone();
    let collector = warp::post()
        .and(warp::path!("v1" / "traces"))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::bytes())
        .map(move |ct: Option<String>, body: bytes::Bytes| {
            keep.lock().unwrap().push((ct, body));
            ""
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(collector).incoming(listener).run());

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let mut env = common::base_env(dir.path(), &format!("sqlite://{}", db.display()));
    env.push(("MSCRIBE_TELEMETRY_OTLP_ENDPOINT".to_owned(), format!("http://{addr}")));
    env.push(("MSCRIBE_TELEMETRY_SERVICE_NAME".to_owned(), "otel-e2e".to_owned()));
    let srv = common::Server::start(dir.path(), &env);
    assert_eq!(srv.req("GET", "/livez", None).await.status, 200);
    // The batch exporter has not sent yet (every 5 s): the stop flushes.
    let (status, stderr) = tokio::task::spawn_blocking(move || srv.terminate()).await.unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("OpenTelemetry traces on"), "{stderr}");

    let posts = posts.lock().unwrap();
    assert!(!posts.is_empty(), "nothing exported; stderr:\n{stderr}");
    let contains = |needle: &str| {
        posts.iter().any(|(_, b)| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
    };
    assert!(posts.iter().all(|(ct, _)| ct.as_deref() == Some("application/x-protobuf")));
    assert!(contains("GET /livez"), "no span of the request");
    assert!(contains("otel-e2e"), "no service.name");
}
