//! `GET /openapi.json`: the document lists exactly the router's routes and
//! methods, is valid against the official OpenAPI 3.1 schema
//! (`tests/data/openapi-3.1-schema.json`), every example in it validates
//! against its schema, and real answers of the routes (warp's test client,
//! a scheduler on a virtual clock, a control plane and an alert outbox over
//! in-memory SQLite) validate against the schema of their status.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use mscribe_scheduler::{
    ErrorKind, ExecutionStatus, ExecutionStore, FireKind, HistoryQuery, JobConfig, JobContext,
    JobResult, JobScheduler, MemoryStore, OverlapPolicy, TokioSpawner, VirtualClock,
};
use mscribe_server::config::Secret;
use mscribe_server::control::{ControlPlane, ControlSettings};
use mscribe_server::health::{HealthChecker, HealthSettings, SchedulerProbe};
use mscribe_server::http::{ServerState, api_routes, openapi_document, routes};
use mscribe_server::metrics::ServerMetrics;
use mscribe_server::probe::{HealthStatus, Probe, ProbeReport, ScriptedProbe};
use mscribe_storage::{AlertStore, NewAlert, SqliteStore};
use serde_json::{Value, json};

const TOKEN: &str = "openapi-token-0123456789abcdef0123456789";
const METHODS: [&str; 8] = ["get", "head", "put", "post", "delete", "patch", "options", "trace"];

/// A validator of `schema`, whose `$ref`s into `#/components/schemas` are
/// the document's.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}"))
}

/// The errors of `instance` against `schema`, as text.
fn errors(doc: &Value, schema: &Value, instance: &Value) -> Vec<String> {
    let v = validator(doc, schema);
    v.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                out.push((m.to_uppercase(), path.clone(), op));
            }
        }
    }
    out
}

#[test]
fn the_document_lists_every_route_and_method_and_no_other() {
    let doc = openapi_document();
    let router: BTreeSet<(String, String)> =
        api_routes().iter().map(|r| (r.method.to_owned(), r.path.to_owned())).collect();
    let spec: BTreeSet<(String, String)> =
        operations(&doc).into_iter().map(|(m, p, _)| (m, p)).collect();
    let undocumented: Vec<_> = router.difference(&spec).collect();
    let unrouted: Vec<_> = spec.difference(&router).collect();
    assert!(undocumented.is_empty(), "routes the document does not list: {undocumented:?}");
    assert!(unrouted.is_empty(), "operations the router does not answer: {unrouted:?}");
    assert_eq!(router.len(), api_routes().len(), "a route listed twice");

    // The bearer token: required where the router asks for it, optional or
    // none elsewhere.
    for r in api_routes() {
        let op = &doc["paths"][r.path][r.method.to_lowercase()];
        let security = op.get("security").cloned().unwrap_or(json!([]));
        if r.needs_token {
            assert_eq!(security, json!([{"bearer": []}]), "{} {}", r.method, r.path);
            assert!(op["responses"].get("401").is_some(), "{} {} has no 401", r.method, r.path);
        } else {
            let list = security.as_array().unwrap();
            assert!(
                list.is_empty() || list.contains(&json!({})),
                "{} {} needs no token",
                r.method,
                r.path
            );
        }
        assert!(op["responses"].get("default").is_some(), "{} {} has no default", r.method, r.path);
        assert!(op.get("operationId").is_some(), "{} {}", r.method, r.path);
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let doc = openapi_document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let schema: Value =
        serde_json::from_str(include_str!("data/openapi-3.1-schema.json")).expect("the schema");
    let v = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .expect("the OpenAPI 3.1 schema compiles");
    let errs: Vec<String> =
        v.iter_errors(&doc).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errs.is_empty(), "{errs:#?}");
    // And the check bites: a document without `info` is refused.
    let mut bad = doc.clone();
    bad.as_object_mut().unwrap().remove("info");
    assert!(!v.is_valid(&bad));

    // Every schema of the document compiles, and every `$ref` resolves.
    for (name, s) in doc["components"]["schemas"].as_object().unwrap() {
        let _ = validator(&doc, s);
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric()), "{name}");
    }
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"").skip(1) {
        let target = &r[..r.find('"').unwrap()];
        let name = target.strip_prefix("#/components/schemas/").expect(target);
        assert!(doc["components"]["schemas"].get(name).is_some(), "{target} is not defined");
    }
}

#[test]
fn every_example_validates_against_its_schema() {
    let doc = openapi_document();
    let mut checked = 0;
    let mut check = |what: String, schema: &Value, example: &Value| {
        let errs = errors(&doc, schema, example);
        assert!(errs.is_empty(), "the example of {what} does not fit its schema: {errs:#?}");
        checked += 1;
    };
    for (method, path, op) in operations(&doc) {
        let mut media = Vec::new();
        if let Some(content) = op.pointer("/requestBody/content").and_then(Value::as_object) {
            for (ty, m) in content {
                media.push((format!("{method} {path} request ({ty})"), m));
            }
        }
        for (status, resp) in op["responses"].as_object().unwrap() {
            for (ty, m) in resp.get("content").and_then(Value::as_object).into_iter().flatten() {
                media.push((format!("{method} {path} {status} ({ty})"), m));
            }
        }
        for (what, m) in media {
            let schema = m.get("schema").unwrap_or_else(|| panic!("{what} has no schema"));
            if let Some(e) = m.get("example") {
                check(what.clone(), schema, e);
            }
            for (name, e) in m.get("examples").and_then(Value::as_object).into_iter().flatten() {
                check(format!("{what} example {name}"), schema, &e["value"]);
            }
        }
    }
    for (name, s) in doc["components"]["schemas"].as_object().unwrap() {
        for e in s.get("examples").and_then(Value::as_array).into_iter().flatten() {
            check(format!("schema {name}"), s, e);
        }
        if let Some(e) = s.get("example") {
            check(format!("schema {name}"), s, e);
        }
    }
    assert!(checked >= 25, "only {checked} examples found");
}

/// The document's enums are the engine's: every status and fire kind, and
/// every overlap policy, error kind and health status it names parses.
#[test]
fn enums_are_the_engines() {
    let doc = openapi_document();
    let names = |schema: &str| -> Vec<String> {
        let values = doc["components"]["schemas"][schema]["enum"].as_array();
        values
            .unwrap_or_else(|| panic!("{schema} is no enum"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let statuses: Vec<String> =
        ExecutionStatus::ALL.iter().map(|s| s.as_str().to_owned()).collect();
    assert_eq!(names("ExecutionStatus"), statuses);
    let kinds: Vec<String> = FireKind::ALL.iter().map(|k| k.as_str().to_owned()).collect();
    assert_eq!(names("FireKind"), kinds);
    for name in names("OverlapPolicy") {
        serde_json::from_value::<OverlapPolicy>(json!(name)).unwrap();
    }
    assert_eq!(names("OverlapPolicy").len(), 4);
    for name in names("ErrorKind") {
        serde_json::from_value::<ErrorKind>(json!(name)).unwrap();
    }
    for name in names("HealthStatus") {
        serde_json::from_value::<HealthStatus>(json!(name)).unwrap();
    }
}

/// An example that does not fit is found: the check is not vacuous.
#[test]
fn a_wrong_example_is_refused() {
    let doc = openapi_document();
    let schema = json!({"$ref": "#/components/schemas/JobView"});
    assert!(!errors(&doc, &schema, &json!({"id": "a"})).is_empty());
    let schema = json!({"$ref": "#/components/schemas/ErrorBody"});
    assert!(errors(&doc, &schema, &json!({"error": "x", "field": "n"})).is_empty());
    assert!(!errors(&doc, &schema, &json!({"error": "x", "extra": 1})).is_empty());
    assert!(!errors(&doc, &schema, &json!({"error": "x", "field": null})).is_empty());
}

struct Fixture {
    state: Arc<ServerState>,
    store: Arc<MemoryStore>,
}

async fn fixture() -> Fixture {
    let now = Utc.with_ymd_and_hms(2026, 3, 10, 12, 30, 0).unwrap();
    let clock = VirtualClock::new(now);
    let store = Arc::new(MemoryStore::unbounded());
    let scheduler =
        JobScheduler::builder(Arc::new(clock.clone()), Arc::new(TokioSpawner::current()))
            .store(store.clone())
            .seed(5)
            .build();
    scheduler
        .register(
            JobConfig::new("nightly", |_ctx: JobContext| async {
                Ok::<_, String>(JobResult::ok().with_data(json!({ "rows": 3 })))
            })
            .name("Nightly export")
            .schedule("0 2 * * *")
            .timezone("Europe/Berlin")
            .timeout(Duration::from_secs(60)),
        )
        .unwrap();
    scheduler
        .register(JobConfig::new("adhoc", |_ctx: JobContext| async { Ok::<_, String>(()) }))
        .unwrap();
    scheduler.start().await.unwrap();
    let db = SqliteStore::open_memory().await.unwrap();
    db.enqueue_alerts(&[NewAlert {
        dedupe_key: "ops/failure/nightly/1".to_owned(),
        alert: "ops".to_owned(),
        event: "failure".to_owned(),
        job_id: Some("nightly".to_owned()),
        body: json!({"event": "failure", "job_id": "nightly"}),
        created_at: now,
    }])
    .await
    .unwrap();
    let plane =
        ControlPlane::new(Arc::new(db.clone()), scheduler.clone(), ControlSettings::sqlite());
    let probes: Vec<Arc<dyn Probe>> = vec![
        Arc::new(ScriptedProbe::new(
            "database",
            true,
            ProbeReport::healthy(Duration::from_millis(2)),
        )),
        Arc::new(SchedulerProbe::new(scheduler.clone(), Duration::from_secs(60))),
    ];
    let health = HealthChecker::new(probes, Arc::new(clock), HealthSettings::default());
    let state = Arc::new(ServerState {
        scheduler,
        health,
        metrics: ServerMetrics::new(),
        admin_token: Secret::new(TOKEN),
        max_body_bytes: 64 * 1024,
        control: Some(plane),
        alerts: Some(Arc::new(db) as Arc<dyn AlertStore>),
    });
    Fixture { state, store }
}

/// Calls the route and checks the answer against the document's schema
/// for its status (or `default`); returns the status and the body.
async fn checked(
    f: &Fixture,
    doc: &Value,
    (method, path, template): (&str, &str, &str),
    auth: bool,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = warp::test::request().method(method).path(path);
    if auth {
        req = req.header("authorization", format!("Bearer {TOKEN}"));
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let res = req.reply(&routes(f.state.clone())).await;
    let status = res.status().as_u16();
    let item = &doc["paths"][template];
    // A method the route does not answer (405): the path's first operation's
    // `default`.
    let op = item.get(method.to_lowercase()).unwrap_or_else(|| {
        assert_eq!(status, 405, "{method} {template} is not in the document");
        METHODS.iter().find_map(|m| item.get(*m)).expect(template)
    });
    let responses = &op["responses"];
    // A success must be documented as such; an error may be the `default`.
    let resp = responses
        .get(status.to_string())
        .or_else(|| responses.get("default").filter(|_| status >= 400))
        .unwrap_or_else(|| panic!("{method} {path}: status {status} not documented"));
    let content_type = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let Some(content) = resp.get("content").and_then(Value::as_object) else {
        assert!(res.body().is_empty(), "{method} {path}: {status} documents no body");
        return (status, Value::Null);
    };
    let (ty, media) = content.iter().next().unwrap();
    assert_eq!(content_type.as_deref(), Some(ty.as_str()), "{method} {path}: {status}");
    if ty != "application/json" {
        return (status, Value::Null);
    }
    let value: Value = serde_json::from_slice(res.body()).unwrap();
    let errs = errors(doc, &media["schema"], &value);
    assert!(
        errs.is_empty(),
        "{method} {path} answered {status} {value:#}\nnot as documented: {errs:#?}"
    );
    (status, value)
}

#[tokio::test]
async fn real_answers_fit_the_document() {
    let f = fixture().await;
    let doc = openapi_document();
    let d = &doc;
    // Two runs of nightly, stored: so that jobs show their last execution
    // and the history has a second page.
    let mut trig = Value::Null;
    for n in 1..=2 {
        let (s, t) =
            checked(&f, d, ("POST", "/jobs/nightly/trigger", "/jobs/{id}/trigger"), true, None)
                .await;
        assert_eq!(s, 202, "{t:#}");
        trig = t;
        for _ in 0..10_000 {
            let rows = f.store.history(&HistoryQuery::new("nightly", 10)).await.unwrap();
            if rows.iter().filter(|r| r.status.is_final()).count() == n {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    let mut seen = BTreeSet::new();
    let mut call = async |method: &str, path: &str, template: &str, auth: bool, body| {
        let r = checked(&f, d, (method, path, template), auth, body).await;
        seen.insert((method.to_owned(), template.to_owned(), r.0));
        r
    };
    assert_eq!(call("GET", "/health-check", "/health-check", false, None).await.0, 200);
    assert_eq!(call("GET", "/health-check", "/health-check", true, None).await.0, 200);
    assert_eq!(call("HEAD", "/health-check", "/health-check", false, None).await.0, 200);
    assert_eq!(call("GET", "/livez", "/livez", false, None).await.0, 200);
    assert_eq!(call("HEAD", "/livez", "/livez", false, None).await.0, 200);
    assert_eq!(call("HEAD", "/readyz", "/readyz", false, None).await.0, 200);
    assert_eq!(call("GET", "/readyz", "/readyz", false, None).await.0, 200);
    assert_eq!(call("GET", "/metrics", "/metrics", false, None).await.0, 200);
    let (s, served) = call("GET", "/openapi.json", "/openapi.json", false, None).await;
    assert_eq!((s, &served), (200, &doc));

    let (s, jobs) = call("GET", "/jobs", "/jobs", true, None).await;
    assert_eq!(s, 200);
    assert!(jobs["jobs"][1]["last_execution"].is_object(), "{jobs:#}");
    assert_eq!(call("GET", "/jobs", "/jobs", false, None).await.0, 401);
    assert_eq!(call("GET", "/jobs/nightly", "/jobs/{id}", true, None).await.0, 200);
    assert_eq!(call("GET", "/jobs/nope", "/jobs/{id}", true, None).await.0, 404);
    let (s, page) =
        call("GET", "/jobs/nightly/executions?limit=1", "/jobs/{id}/executions", true, None).await;
    assert_eq!(s, 200);
    assert!(page["next_cursor"].is_string(), "{page:#}");
    let next = format!("/jobs/nightly/executions?cursor={}", page["next_cursor"].as_str().unwrap());
    assert_eq!(call("GET", &next, "/jobs/{id}/executions", true, None).await.0, 200);
    let (s, _) =
        call("GET", "/jobs/nightly/executions?limit=0", "/jobs/{id}/executions", true, None).await;
    assert_eq!(s, 422);
    let (s, _) =
        call("GET", "/jobs/nightly/executions?x=1", "/jobs/{id}/executions", true, None).await;
    assert_eq!(s, 400);

    let pause = Some(json!({"note": "disk full"}));
    assert_eq!(call("POST", "/jobs/nightly/pause", "/jobs/{id}/pause", true, pause).await.0, 200);
    assert_eq!(call("GET", "/jobs", "/jobs", true, None).await.0, 200);
    let (s, _) =
        call("POST", "/jobs/nightly/pause", "/jobs/{id}/pause", true, Some(json!({"note": " "})))
            .await;
    assert_eq!(s, 400);
    assert_eq!(call("POST", "/jobs/nightly/resume", "/jobs/{id}/resume", true, None).await.0, 200);
    assert_eq!(call("POST", "/jobs/adhoc/trigger", "/jobs/{id}/trigger", true, None).await.0, 202);

    let (s, up) =
        call("GET", "/jobs/nightly/upcoming?n=3", "/jobs/{id}/upcoming", true, None).await;
    assert_eq!((s, up["fires"].as_array().map(Vec::len)), (200, Some(3)));
    assert_eq!(call("GET", "/jobs/adhoc/upcoming", "/jobs/{id}/upcoming", true, None).await.0, 200);
    let (s, e) = call("GET", "/jobs/nightly/upcoming?n=0", "/jobs/{id}/upcoming", true, None).await;
    assert_eq!((s, &e["field"]), (400, &json!("n")));

    let range =
        |dry| json!({"from": "2026-03-08T00:00:00Z", "to": "2026-03-10T00:00:00Z", "dry_run": dry});
    let (s, plan) =
        call("POST", "/jobs/nightly/backfill", "/jobs/{id}/backfill", true, Some(range(true)))
            .await;
    assert_eq!((s, plan["to_run"].as_u64()), (200, Some(2)));
    let (s, run) =
        call("POST", "/jobs/nightly/backfill", "/jobs/{id}/backfill", true, Some(range(false)))
            .await;
    assert_eq!((s, &run["state"]), (202, &json!("running")));
    let bad = Some(json!({"from": "2026-03-08T00:00:00Z", "to": "yesterday"}));
    let (s, e) = call("POST", "/jobs/nightly/backfill", "/jobs/{id}/backfill", true, bad).await;
    assert_eq!((s, &e["field"]), (400, &json!("to")));

    let id = trig["execution_id"].as_str().unwrap();
    let (s, _) =
        call("POST", &format!("/executions/{id}/cancel"), "/executions/{id}/cancel", true, None)
            .await;
    assert!(matches!(s, 202 | 404), "{s}");
    let (s, _) =
        call("POST", "/executions/nope/cancel", "/executions/{id}/cancel", true, None).await;
    assert_eq!(s, 400);

    let (s, audit) = call("GET", "/audit?limit=2", "/audit", true, None).await;
    assert_eq!(s, 200);
    assert!(audit["entries"].as_array().is_some_and(|e| !e.is_empty()), "{audit:#}");
    assert_eq!(call("GET", "/audit?before=x", "/audit", true, None).await.0, 400);
    let (s, alerts) = call("GET", "/alerts", "/alerts", true, None).await;
    assert_eq!((s, alerts["deliveries"].as_array().map(Vec::len)), (200, Some(1)));
    assert_eq!(call("GET", "/alerts?limit=0", "/alerts", true, None).await.0, 422);
    assert_eq!(call("GET", "/alerts?limit=x", "/alerts", true, None).await.0, 400);

    let def =
        Some(json!({"kind": "http", "schedule": "0 3 * * *", "url": "http://127.0.0.1:9/ping"}));
    let (s, receipt) = call("PUT", "/jobs/ping", "/jobs/{id}", true, def.clone()).await;
    assert_eq!((s, &receipt["created"]), (201, &json!(true)), "{receipt:#}");
    assert_eq!(call("PUT", "/jobs/ping", "/jobs/{id}", true, def).await.0, 200);
    let bad = Some(json!({"kind": "http", "schedule": "0 3 * * *", "urll": "x"}));
    assert_eq!(call("PUT", "/jobs/ping2", "/jobs/{id}", true, bad).await.0, 400);
    assert_eq!(call("DELETE", "/jobs/ping", "/jobs/{id}", true, None).await.0, 200);

    // The errors every route may answer: the `default` of each.
    assert_eq!(call("POST", "/jobs", "/jobs", true, None).await.0, 405);
    assert_eq!(call("GET", "/openapi.json?x=1", "/openapi.json", false, None).await.0, 400);
    assert_eq!(call("HEAD", "/openapi.json", "/openapi.json", false, None).await.0, 405);

    // Every operation was called at least once.
    let called: BTreeSet<(String, String)> =
        seen.iter().map(|(m, p, _)| (m.clone(), p.clone())).collect();
    for r in api_routes() {
        let key = (r.method.to_owned(), r.path.to_owned());
        assert!(called.contains(&key), "{} {} was not called", r.method, r.path);
    }
}

/// Every request body the document shows as an example is one the route
/// takes: the document's request schemas cannot drift from the parsers.
#[tokio::test]
async fn documented_request_examples_are_accepted() {
    let f = fixture().await;
    let doc = openapi_document();
    let mut sent = 0;
    for (method, path, op) in operations(&doc) {
        let Some(media) = op.pointer("/requestBody/content/application~1json") else { continue };
        let example = media.get("example").unwrap_or_else(|| panic!("{method} {path}: no example"));
        let concrete = path.replace("{id}", "nightly");
        let concrete =
            if method == "PUT" { path.replace("{id}", "from-the-example") } else { concrete };
        let (status, body) =
            checked(&f, &doc, (&method, &concrete, &path), true, Some(example.clone())).await;
        assert!((200..300).contains(&status), "{method} {concrete}: {status} {body:#}");
        sent += 1;
    }
    assert_eq!(sent, 3, "PUT /jobs/{{id}}, pause and backfill take bodies");
}

#[test]
fn the_document_snapshot() {
    insta::assert_json_snapshot!("openapi", openapi_document());
}
