//! `GET /jobs/{id}/upcoming` and `POST /jobs/{id}/backfill` through the
//! routes (warp's test client), with a scheduler on a virtual clock (nothing
//! fires by itself) and a control plane over an in-memory SQLite store for
//! the audit log: dry runs and their plans, runs in the background and
//! their two audit rows, every refusal with the field it names, and the
//! daylight-saving notes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use mscribe_scheduler::{
    ExecutionStatus, FireKind, JobConfig, JobContext, JobScheduler, MemoryStore, TokioSpawner,
    VirtualClock,
};
use mscribe_server::config::Secret;
use mscribe_server::control::{ControlPlane, ControlSettings};
use mscribe_server::health::{HealthChecker, HealthSettings};
use mscribe_server::http::{ServerState, routes};
use mscribe_server::metrics::ServerMetrics;
use mscribe_storage::{AuditAction, AuditQuery, AuditRecord};
use serde_json::{Value, json};
use warp::http::StatusCode;

const TOKEN: &str = "fires-token-0123456789abcdef0123456789";

struct Fixture {
    state: Arc<ServerState>,
    store: Arc<MemoryStore>,
    plane: ControlPlane,
    runs: Arc<AtomicUsize>,
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// A started scheduler whose clock stands at `now`, with `hourly` (UTC, on
/// the hour), `berlin` (02:30 Europe/Berlin), `secondly`, `adhoc`
/// (trigger-only) and `slow` (an hour-long run).
async fn fixture(now: DateTime<Utc>) -> Fixture {
    let clock = VirtualClock::new(now);
    let store = Arc::new(MemoryStore::unbounded());
    let scheduler =
        JobScheduler::builder(Arc::new(clock.clone()), Arc::new(TokioSpawner::current()))
            .store(store.clone())
            .seed(11)
            .build();
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    scheduler
        .register(
            JobConfig::new("hourly", move |_ctx: JobContext| {
                let c = counter.clone();
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(())
                }
            })
            .schedule("0 * * * *"),
        )
        .unwrap();
    let ok = |_ctx: JobContext| async { Ok::<_, String>(()) };
    scheduler
        .register(JobConfig::new("berlin", ok).schedule("30 2 * * *").timezone("Europe/Berlin"))
        .unwrap();
    scheduler.register(JobConfig::new("secondly", ok).schedule("@every 1s")).unwrap();
    scheduler.register(JobConfig::new("adhoc", ok)).unwrap();
    scheduler
        .register(
            JobConfig::new("slow", |ctx: JobContext| async move {
                ctx.sleep(Duration::from_secs(3600)).await;
                Ok::<_, String>(())
            })
            .schedule("0 * * * *"),
        )
        .unwrap();
    scheduler.start().await.unwrap();
    let control = mscribe_storage::SqliteStore::open_memory().await.unwrap();
    let plane = ControlPlane::new(Arc::new(control), scheduler.clone(), ControlSettings::sqlite());
    let health = HealthChecker::new(Vec::new(), Arc::new(clock), HealthSettings::default());
    let state = Arc::new(ServerState {
        scheduler,
        health,
        metrics: ServerMetrics::new(),
        admin_token: Secret::new(TOKEN),
        max_body_bytes: 64 * 1024,
        control: Some(plane.clone()),
        alerts: None,
    });
    Fixture { state, store, plane, runs }
}

async fn call(f: &Fixture, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = warp::test::request()
        .method(method)
        .path(path)
        .header("authorization", format!("Bearer {TOKEN}"));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let res = req.reply(&routes(f.state.clone())).await;
    let body = serde_json::from_slice(res.body()).unwrap_or(Value::Null);
    (res.status(), body)
}

async fn backfill(f: &Fixture, job: &str, body: Value) -> (StatusCode, Value) {
    call(f, "POST", &format!("/jobs/{job}/backfill"), Some(body)).await
}

async fn audit_rows(f: &Fixture) -> Vec<AuditRecord> {
    f.plane.audit(&AuditQuery::new(100)).await.unwrap()
}

/// Waits (real time, bounded) for the audit log to hold `n` rows.
async fn wait_audit(f: &Fixture, n: usize) -> Vec<AuditRecord> {
    for _ in 0..500 {
        let rows = audit_rows(f).await;
        if rows.len() >= n {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the audit log never held {n} rows: {:?}", audit_rows(f).await);
}

fn t(s: DateTime<Utc>) -> String {
    s.to_rfc3339()
}

#[tokio::test]
async fn a_dry_run_plans_and_a_run_runs_in_the_background_with_two_audit_rows() {
    let now = at(2026, 3, 10, 12, 30);
    let f = fixture(now).await;

    // A first run over 08:00..09:00: two fires.
    let (code, body) = backfill(
        &f,
        "hourly",
        json!({ "from": t(at(2026, 3, 10, 8, 0)), "to": t(at(2026, 3, 10, 9, 0)) }),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["state"], "running");
    assert_eq!((body["to_run"].as_u64(), body["dry_run"].as_bool()), (Some(2), Some(false)));
    let started_id = body["audit_id"].as_i64().expect("an audit id");
    let rows = wait_audit(&f, 2).await;
    assert_eq!(f.runs.load(Ordering::SeqCst), 2);
    // Newest first: the end, then the start.
    let (end, start) = (&rows[0].entry, &rows[1].entry);
    assert_eq!(rows[1].id, started_id);
    for e in [end, start] {
        assert_eq!(
            (e.action.clone(), e.job_id.as_deref()),
            (AuditAction::Backfill, Some("hourly"))
        );
        assert_eq!(e.source.to_string(), "api");
    }
    let sd = start.detail.as_ref().unwrap();
    assert_eq!((sd["phase"].as_str(), sd["to_run"].as_u64()), (Some("started"), Some(2)));
    assert_eq!(sd["from"], "2026-03-10T08:00:00Z");
    let ed = end.detail.as_ref().unwrap();
    assert_eq!(ed["phase"], "ended");
    assert_eq!(ed["statuses"], json!({ "succeeded": 2 }));
    assert_eq!(ed["started_audit_id"], started_id);
    assert!(end.note.as_deref().unwrap().ends_with("ended: 2 runs: 2 succeeded"), "{end:?}");

    // The runs are recorded with the backfill kind and their nominal times.
    let recorded = |f: &Fixture| {
        let mut v: Vec<_> = f
            .store
            .all()
            .into_iter()
            .filter(|r| r.kind == FireKind::Backfill && r.status == ExecutionStatus::Succeeded)
            .map(|r| r.scheduled_at)
            .collect();
        v.sort();
        v
    };
    for _ in 0..500 {
        if recorded(&f).len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(recorded(&f), vec![at(2026, 3, 10, 8, 0), at(2026, 3, 10, 9, 0)]);

    // A dry run over 06:00..11:00: six fires, two recorded, four to run;
    // nothing runs and nothing is audited.
    let (code, plan) = backfill(
        &f,
        "hourly",
        json!({ "from": t(at(2026, 3, 10, 6, 0)), "to": t(at(2026, 3, 10, 11, 0)), "dry_run": true }),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{plan}");
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["fires"].as_array().unwrap().len(), 6);
    assert_eq!((plan["already_recorded"].as_u64(), plan["to_run"].as_u64()), (Some(2), Some(4)));
    let flags: Vec<bool> =
        plan["fires"].as_array().unwrap().iter().map(|x| x["recorded"] == true).collect();
    assert_eq!(flags, [false, false, true, true, false, false]);
    assert_eq!(plan["fires"][0]["scheduled_at"], "2026-03-10T06:00:00Z");
    assert!(plan["fires"][0].get("local").is_none(), "UTC: no local time");
    assert_eq!(plan["runs"], json!([]));
    // Forced, everything would run.
    let (_, forced) = backfill(
        &f,
        "hourly",
        json!({ "from": t(at(2026, 3, 10, 6, 0)), "to": t(at(2026, 3, 10, 11, 0)), "dry_run": true, "force": true }),
    )
    .await;
    assert_eq!(forced["to_run"], 6);
    assert_eq!(audit_rows(&f).await.len(), 2);
    assert_eq!(f.runs.load(Ordering::SeqCst), 2);

    // A run over what is already recorded: 200, nothing to run, audited once.
    let (code, body) = backfill(
        &f,
        "hourly",
        json!({ "from": t(at(2026, 3, 10, 8, 0)), "to": t(at(2026, 3, 10, 9, 0)) }),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        (body["state"].as_str(), body["to_run"].as_u64()),
        (Some("nothing_to_run"), Some(0))
    );
    let rows = audit_rows(&f).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].entry.detail.as_ref().unwrap()["phase"], "nothing_to_run");
    assert_eq!(f.runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn bad_backfills_get_a_400_naming_the_field_never_a_500() {
    let now = at(2026, 3, 10, 12, 30);
    let f = fixture(now).await;
    let (from, to) = (t(at(2026, 3, 10, 8, 0)), t(at(2026, 3, 10, 9, 0)));
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        ("hourly", json!({ "from": to, "to": from }), "from", "is after to"),
        ("hourly", json!({ "from": from, "to": t(at(2026, 3, 10, 13, 0)) }), "to", "in the future"),
        (
            "secondly",
            json!({ "from": t(at(2026, 3, 10, 0, 0)), "to": t(at(2026, 3, 10, 3, 0)) }),
            "range",
            "more than 10000 fires",
        ),
        ("hourly", json!({ "from": "last tuesday", "to": to }), "from", "not an RFC 3339 time"),
        ("hourly", json!({ "from": from, "to": "2026-03-10 09:00" }), "to", "not an RFC 3339 time"),
        ("hourly", json!({ "from": from, "to": to, "dry": true }), "dry", "unknown field `dry`"),
        ("hourly", json!({ "to": to }), "from", "missing field `from`"),
        ("hourly", json!({ "from": from, "to": to, "concurrency": 0 }), "concurrency", "1 to 64"),
        ("hourly", json!({ "from": from, "to": to, "concurrency": 100 }), "concurrency", "1 to 64"),
        ("hourly", json!({ "from": from, "to": to, "force": "yes" }), "force", "invalid type"),
        ("adhoc", json!({ "from": from, "to": to }), "schedule", "trigger-only"),
    ];
    for (job, body, field, msg) in cases {
        let (code, err) = backfill(&f, job, body.clone()).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert_eq!(err["field"], field, "{body}: {err}");
        let text = err["error"].as_str().unwrap();
        assert!(text.contains(msg), "{body}: {text}");
        assert!(text.starts_with(&format!("POST /jobs/{job}/backfill")), "{text}");
    }
    // Exactly the cap is fine: 10,000 fires of an every-second job.
    let (code, body) = backfill(
        &f,
        "secondly",
        json!({ "from": t(at(2026, 3, 10, 0, 0)), "to": t(at(2026, 3, 10, 0, 0) + chrono::Duration::seconds(9999)), "dry_run": true }),
    )
    .await;
    assert_eq!((code, body["fires"].as_array().map(Vec::len)), (StatusCode::OK, Some(10_000)));

    // No body, a body that is no object, an unknown job, a wrong method.
    let (code, err) = call(&f, "POST", "/jobs/hourly/backfill", None).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(err["error"].as_str().unwrap().contains("a JSON body is needed"), "{err}");
    let (code, _) = backfill(&f, "hourly", json!([1])).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, err) = backfill(&f, "nope", json!({ "from": from, "to": to })).await;
    assert_eq!(
        (code, err["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown job \"nope\""))
    );
    let (code, _) = call(&f, "GET", "/jobs/hourly/backfill", None).await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    // Nothing ran, nothing was audited.
    assert_eq!(f.runs.load(Ordering::SeqCst), 0);
    assert!(audit_rows(&f).await.is_empty());
}

#[tokio::test]
async fn a_second_backfill_of_a_job_waits_for_the_first() {
    let f = fixture(at(2026, 3, 10, 12, 30)).await;
    let body = json!({ "from": t(at(2026, 3, 10, 8, 0)), "to": t(at(2026, 3, 10, 9, 0)) });
    let (code, _) = backfill(&f, "slow", body.clone()).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let (code, err) = backfill(&f, "slow", body.clone()).await;
    assert_eq!(code, StatusCode::CONFLICT, "{err}");
    assert!(err["error"].as_str().unwrap().contains("a backfill of job \"slow\" is running"));
    // A dry run still answers, and another job is not held up.
    let dry = json!({ "from": body["from"], "to": body["to"], "dry_run": true });
    assert_eq!(backfill(&f, "slow", dry).await.0, StatusCode::OK);
    assert_eq!(backfill(&f, "hourly", body).await.0, StatusCode::ACCEPTED);
    assert_eq!(
        audit_rows(&f).await.iter().filter(|r| r.entry.job_id.as_deref() == Some("slow")).count(),
        1
    );
}

#[tokio::test]
async fn a_backfill_waits_for_one_running_on_another_instance() {
    let f = fixture(at(2026, 3, 10, 12, 30)).await;
    let store = f.plane.store().clone();
    let ttl = Duration::from_secs(60);
    let now = f.plane.now();
    // `secondly`: the other tests backfill `hourly` and `slow` at the same
    // time in this process, which has one instance id.
    let held = store.lock_backfill("secondly", "other-instance#7", now, ttl).await.unwrap();
    assert_eq!(held, mscribe_storage::BackfillLockOutcome::Acquired);
    let from = at(2026, 3, 10, 8, 0);
    let body = json!({ "from": t(from), "to": t(from + chrono::TimeDelta::seconds(9)) });
    let (code, err) = backfill(&f, "secondly", body.clone()).await;
    assert_eq!(code, StatusCode::CONFLICT, "{err}");
    let msg = err["error"].as_str().unwrap();
    assert!(
        msg.contains("running on another instance") && msg.contains("other-instance#7"),
        "{msg}"
    );
    assert!(audit_rows(&f).await.is_empty(), "nothing started, nothing audited");
    // Given back: this instance runs it, and gives the lock back at its end.
    assert!(store.unlock_backfill("secondly", "other-instance#7").await.unwrap());
    assert_eq!(backfill(&f, "secondly", body).await.0, StatusCode::ACCEPTED);
    wait_audit(&f, 2).await;
    for _ in 0..500 {
        let got = store.lock_backfill("secondly", "probe#1", now, ttl).await.unwrap();
        if got == mscribe_storage::BackfillLockOutcome::Acquired {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the backfill never gave its lock back");
}

#[tokio::test]
async fn upcoming_lists_the_next_fires_with_dst_notes() {
    // Before the spring change of 2026-03-29 in Berlin.
    let f = fixture(at(2026, 3, 26, 12, 0)).await;
    let (code, body) = call(&f, "GET", "/jobs/berlin/upcoming?n=5", None).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!((body["job_id"].as_str(), body["paused"].as_bool()), (Some("berlin"), Some(false)));
    let fires = body["fires"].as_array().unwrap();
    assert_eq!(fires.len(), 5);
    assert_eq!(fires[0]["scheduled_at"], "2026-03-27T01:30:00Z");
    assert_eq!(fires[0]["local"], "2026-03-27T02:30:00+01:00");
    assert!(fires[0].get("recorded").is_none(), "{body}");
    let notes: Vec<&str> = fires.iter().filter_map(|x| x["dst_note"].as_str()).collect();
    assert_eq!(notes, ["UTC offset +01:00 -> +02:00 (Europe/Berlin)"], "{body}");
    // The default is 10; the limit 1000; a UTC job has no local times.
    let (_, body) = call(&f, "GET", "/jobs/hourly/upcoming", None).await;
    assert_eq!(body["fires"].as_array().unwrap().len(), 10);
    assert_eq!(body["fires"][0], json!({ "scheduled_at": "2026-03-26T13:00:00Z" }));
    let (_, body) = call(&f, "GET", "/jobs/hourly/upcoming?n=1000", None).await;
    assert_eq!(body["fires"].as_array().unwrap().len(), 1000);
    // A trigger-only job has none.
    let (code, body) = call(&f, "GET", "/jobs/adhoc/upcoming", None).await;
    assert_eq!(
        (code, body["fires"].clone(), body["schedule"].clone()),
        (StatusCode::OK, json!([]), Value::Null)
    );
    // A paused job says so.
    f.state.scheduler.pause("hourly").unwrap();
    let (_, body) = call(&f, "GET", "/jobs/hourly/upcoming?n=1", None).await;
    assert_eq!(body["paused"], true);

    for (q, field) in
        [("n=0", "n"), ("n=1001", "n"), ("n=ten", "n"), ("n=1&n=2", "n"), ("limit=5", "limit")]
    {
        let (code, err) = call(&f, "GET", &format!("/jobs/berlin/upcoming?{q}"), None).await;
        assert_eq!(
            (code, err["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{q}: {err}"
        );
    }
    let (code, _) = call(&f, "GET", "/jobs/nope/upcoming", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = call(&f, "POST", "/jobs/berlin/upcoming", None).await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_backfill_across_the_dst_change_notes_it_and_skips_no_day() {
    let f = fixture(at(2026, 3, 31, 12, 0)).await;
    let (code, plan) = backfill(
        &f,
        "berlin",
        json!({ "from": "2026-03-27T00:00:00+01:00", "to": "2026-03-31T00:00:00+02:00", "dry_run": true }),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{plan}");
    let fires = plan["fires"].as_array().unwrap();
    let locals: Vec<&str> = fires.iter().map(|x| x["local"].as_str().unwrap()).collect();
    // 02:30 does not exist on the 29th: the fire runs at 03:00 (SEMANTICS §7).
    assert_eq!(
        locals,
        [
            "2026-03-27T02:30:00+01:00",
            "2026-03-28T02:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-30T02:30:00+02:00",
        ],
        "{plan}"
    );
    assert_eq!(fires[2]["dst_note"], "UTC offset +01:00 -> +02:00 (Europe/Berlin)");
    assert!(fires[3].get("dst_note").is_none());
}
