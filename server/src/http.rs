//! The HTTP API (warp).
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `GET`/`HEAD /health-check` | optional | 200 healthy, 503 degraded/unhealthy; messages only with the token |
//! | `GET`/`HEAD /livez` | none | 200 while the process runs |
//! | `GET`/`HEAD /readyz` | none | 200 when the scheduler runs and the database answers, else 503 |
//! | `GET /metrics` | none | Prometheus (OpenMetrics) text |
//! | `GET /jobs` | bearer | every job with next/last run and status |
//! | `GET /jobs/{id}` | bearer | one job and its latest execution |
//! | `GET /jobs/{id}/executions?limit=&status=` | bearer | history, newest first |
//! | `POST /jobs/{id}/trigger` | bearer | runs now per the overlap policy: 202 started/queued, 200 skipped |
//! | `POST /jobs/{id}/pause`, `/resume` | bearer | the job afterwards |
//!
//! Errors are `{"error": "..."}` with 400 (bad query), 401 (no or wrong
//! token), 404, 405 (with `Allow`), 413 (body over `max_body_bytes`), 422
//! (a value out of range or unknown), 503 (scheduler stopped).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use crate::probe::HealthStatus;
use mscribe_scheduler::{
    ExecutionRecord, ExecutionStatus, HistoryQuery, JobInfo, JobScheduler, Phase, TriggerOutcome,
};
use serde::Serialize;
use serde_json::{Value, json};
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::config::Secret;
use crate::health::HealthChecker;
use crate::metrics::{CONTENT_TYPE, ServerMetrics};
use crate::token::bearer_matches;

/// What the routes need.
#[derive(Debug)]
pub struct ServerState {
    /// The scheduler.
    pub scheduler: JobScheduler,
    /// The health checker.
    pub health: Arc<HealthChecker>,
    /// The metrics.
    pub metrics: Arc<ServerMetrics>,
    /// The bearer token of the jobs API and of health details.
    pub admin_token: Secret,
    /// The largest request body accepted.
    pub max_body_bytes: u64,
}

/// The largest `limit` of the executions route.
pub const MAX_HISTORY_LIMIT: usize = 1000;

/// The default `limit` of the executions route.
pub const DEFAULT_HISTORY_LIMIT: usize = 50;

const NO_CACHE: &str = "no-cache, no-store, must-revalidate";

/// A JSON response with a status.
fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let mut r = warp::reply::with_status(warp::reply::json(body), status).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
    r
}

/// `{"error": msg}` with a status.
pub fn error_response(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut r = json_response(status, &json!({ "error": msg.into() }));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut r =
        error_response(StatusCode::METHOD_NOT_ALLOWED, format!("method not allowed; use {allow}"));
    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn with_state(
    state: Arc<ServerState>,
) -> impl Filter<Extract = (Arc<ServerState>,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

fn authorization() -> impl Filter<Extract = (Option<String>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
}

/// Every route, with errors rendered as JSON.
pub fn routes(
    state: Arc<ServerState>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let health = warp::path("health-check")
        .and(warp::path::end())
        .and(warp::method())
        .and(authorization())
        .and(with_state(state.clone()))
        .then(health_check);
    let livez = warp::path("livez").and(warp::path::end()).and(warp::method()).map(|m: Method| {
        if m != Method::GET && m != Method::HEAD {
            return method_not_allowed("GET, HEAD");
        }
        let mut r = json_response(StatusCode::OK, &json!({ "status": "alive" }));
        if m == Method::HEAD {
            *r.body_mut() = Default::default();
        }
        r
    });
    let readyz = warp::path("readyz")
        .and(warp::path::end())
        .and(warp::method())
        .and(with_state(state.clone()))
        .then(readyz);
    let metrics = warp::path("metrics")
        .and(warp::path::end())
        .and(warp::method())
        .and(with_state(state.clone()))
        .map(|m: Method, s: Arc<ServerState>| {
            if m != Method::GET {
                return method_not_allowed("GET");
            }
            let mut r =
                warp::reply::with_header(s.metrics.encode(), header::CONTENT_TYPE, CONTENT_TYPE)
                    .into_response();
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
            r
        });
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let jobs = warp::path("jobs")
        .and(warp::path::tail())
        .and(warp::method())
        .and(authorization())
        .and(warp::header::optional::<String>("content-length"))
        .and(raw_query)
        .and(with_state(state))
        .then(jobs_api);
    health
        .or(livez)
        .unify()
        .or(readyz)
        .unify()
        .or(metrics)
        .unify()
        .or(jobs)
        .unify()
        .recover(recover)
        .unify()
}

async fn recover(err: Rejection) -> Result<Response, Infallible> {
    if err.is_not_found() {
        return Ok(error_response(StatusCode::NOT_FOUND, "not found"));
    }
    if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        return Ok(error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"));
    }
    if let Some(e) = err.find::<warp::reject::InvalidHeader>() {
        return Ok(error_response(StatusCode::BAD_REQUEST, e.to_string()));
    }
    if let Some(e) = err.find::<warp::reject::PayloadTooLarge>() {
        return Ok(error_response(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()));
    }
    tracing::warn!(rejection = ?err, "unhandled rejection");
    Ok(error_response(StatusCode::BAD_REQUEST, "bad request"))
}

async fn health_check(method: Method, auth: Option<String>, state: Arc<ServerState>) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed("GET, HEAD");
    }
    let admin = bearer_matches(auth.as_deref(), &state.admin_token);
    let snap = state.health.check().await;
    let status = if snap.status == HealthStatus::Healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut r = json_response(status, &snap.body(admin));
    r.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if method == Method::HEAD {
        *r.body_mut() = Default::default();
    }
    r
}

async fn readyz(method: Method, state: Arc<ServerState>) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed("GET, HEAD");
    }
    let phase = state.scheduler.phase();
    let mut problems = Vec::new();
    if phase != Phase::Running {
        problems.push(format!(
            "scheduler is {}",
            serde_json::to_value(phase)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ));
    }
    if phase == Phase::Running {
        let snap = state.health.check().await;
        if snap.check("database").is_some_and(|r| r.status == HealthStatus::Unhealthy) {
            problems.push("database unreachable".to_owned());
        }
    }
    let (status, body) = if problems.is_empty() {
        (StatusCode::OK, json!({ "status": "ready" }))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, json!({ "status": "not_ready", "reasons": problems }))
    };
    let mut r = json_response(status, &body);
    if method == Method::HEAD {
        *r.body_mut() = Default::default();
    }
    r
}

/// One job as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// The id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// The schedule; `null` for a trigger-only job.
    pub schedule: Option<String>,
    /// The next nominal fire.
    pub next_run: Option<chrono::DateTime<chrono::Utc>>,
    /// The latest `scheduled_at` among the job's fires that ran or were
    /// skipped, triggers included (docs/SEMANTICS.md §6).
    pub last_run: Option<chrono::DateTime<chrono::Utc>>,
    /// The last final status: of this process, else the latest stored row.
    pub last_status: Option<ExecutionStatus>,
    /// Whether paused.
    pub paused: bool,
    /// Runs in progress.
    pub running: usize,
    /// Fires waiting.
    pub queued: usize,
    /// The overlap policy.
    pub overlap: mscribe_scheduler::OverlapPolicy,
    /// The per-attempt timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Attempts per run.
    pub max_attempts: u32,
    /// The latest stored row.
    pub last_execution: Option<ExecutionRecord>,
}

async fn job_view(state: &ServerState, info: JobInfo) -> JobView {
    let last = state
        .scheduler
        .store()
        .history(&HistoryQuery::new(info.id.clone(), 1))
        .await
        .ok()
        .and_then(|mut v| v.pop());
    // Before this process fired the job, its last run is the store's.
    // The newest `scheduled_at` of the job's rows, whoever wrote them (another
    // instance, `mscribe run`), or this process's own if not stored yet.
    let stored = state.scheduler.store().last_fire(&info.id).await.ok().flatten();
    let last_run = stored.max(info.last_run);
    JobView {
        last_status: info.last_status.or_else(|| last.as_ref().map(|r| r.status)),
        last_run,
        id: info.id,
        name: info.name,
        schedule: info.schedule,
        next_run: info.next_run,
        paused: info.paused,
        running: info.running,
        queued: info.queued,
        overlap: info.overlap,
        timeout_ms: info.timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        max_attempts: info.max_attempts,
        last_execution: last,
    }
}

fn parse_history_query(
    raw: &str,
) -> Result<(usize, Option<ExecutionStatus>), (StatusCode, String)> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("invalid query string: {e}")))?;
    let mut map = HashMap::new();
    for (k, v) in pairs {
        if k != "limit" && k != "status" {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("unknown query parameter \"{k}\"; expected limit or status"),
            ));
        }
        map.insert(k, v);
    }
    let limit = match map.get("limit") {
        None => DEFAULT_HISTORY_LIMIT,
        Some(v) => {
            let n: i64 = v.parse().map_err(|_| {
                (StatusCode::BAD_REQUEST, format!("limit must be an integer, got \"{v}\""))
            })?;
            if !(1..=MAX_HISTORY_LIMIT as i64).contains(&n) {
                return Err((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("limit must be between 1 and {MAX_HISTORY_LIMIT}, got {n}"),
                ));
            }
            n as usize
        }
    };
    let status = match map.get("status") {
        None => None,
        Some(s) => Some(
            s.parse::<ExecutionStatus>()
                .map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?,
        ),
    };
    Ok((limit, status))
}

async fn jobs_api(
    tail: warp::path::Tail,
    method: Method,
    auth: Option<String>,
    content_length: Option<String>,
    query: String,
    state: Arc<ServerState>,
) -> Response {
    if !bearer_matches(auth.as_deref(), &state.admin_token) {
        return error_response(
            StatusCode::UNAUTHORIZED,
            if auth.is_some() {
                "invalid bearer token"
            } else {
                "missing bearer token: send Authorization: Bearer <admin token>"
            },
        );
    }
    if let Some(len) = content_length {
        match len.trim().parse::<u64>() {
            Ok(n) if n > state.max_body_bytes => {
                return error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "request body of {n} bytes is over the limit of {} bytes",
                        state.max_body_bytes
                    ),
                );
            }
            Ok(_) => {}
            Err(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    format!("invalid content-length \"{len}\""),
                );
            }
        }
    }
    let segments: Vec<&str> = tail.as_str().split('/').filter(|s| !s.is_empty()).collect();
    let s = &*state;
    match segments.as_slice() {
        [] => {
            if method != Method::GET {
                return method_not_allowed("GET");
            }
            let mut jobs = Vec::new();
            for info in s.scheduler.jobs() {
                jobs.push(job_view(s, info).await);
            }
            json_response(StatusCode::OK, &json!({ "jobs": jobs }))
        }
        [id] => {
            if method != Method::GET {
                return method_not_allowed("GET");
            }
            match s.scheduler.job(id) {
                Some(info) => json_response(StatusCode::OK, &job_view(s, info).await),
                None => unknown_job(id),
            }
        }
        [id, "executions"] => {
            if method != Method::GET {
                return method_not_allowed("GET");
            }
            if s.scheduler.job(id).is_none() {
                return unknown_job(id);
            }
            let (limit, status) = match parse_history_query(&query) {
                Ok(q) => q,
                Err((code, msg)) => return error_response(code, msg),
            };
            let mut q = HistoryQuery::new(*id, limit);
            q.status = status;
            match s.scheduler.store().history(&q).await {
                Ok(rows) => {
                    json_response(StatusCode::OK, &json!({ "job_id": id, "executions": rows }))
                }
                Err(e) => {
                    error_response(StatusCode::SERVICE_UNAVAILABLE, format!("execution store: {e}"))
                }
            }
        }
        [id, action @ ("trigger" | "pause" | "resume")] => {
            if method != Method::POST {
                return method_not_allowed("POST");
            }
            if s.scheduler.job(id).is_none() {
                return unknown_job(id);
            }
            match *action {
                "trigger" => match s.scheduler.trigger(id) {
                    Ok(outcome) => {
                        let code = match outcome {
                            TriggerOutcome::Started { .. } | TriggerOutcome::Queued { .. } => {
                                StatusCode::ACCEPTED
                            }
                            TriggerOutcome::Skipped => StatusCode::OK,
                        };
                        let mut body = serde_json::to_value(outcome).unwrap_or(Value::Null);
                        body["job_id"] = json!(id);
                        tracing::info!(job_id = %id, outcome = %body["outcome"], "triggered through the API");
                        json_response(code, &body)
                    }
                    Err(e) => scheduler_error(e),
                },
                _ => {
                    let res = if *action == "pause" {
                        s.scheduler.pause(id)
                    } else {
                        s.scheduler.resume(id)
                    };
                    match res {
                        Ok(()) => match s.scheduler.job(id) {
                            Some(info) => json_response(StatusCode::OK, &job_view(s, info).await),
                            None => unknown_job(id),
                        },
                        Err(e) => scheduler_error(e),
                    }
                }
            }
        }
        _ => error_response(StatusCode::NOT_FOUND, "not found"),
    }
}

fn unknown_job(id: &str) -> Response {
    error_response(StatusCode::NOT_FOUND, format!("unknown job \"{id}\""))
}

fn scheduler_error(e: mscribe_scheduler::Error) -> Response {
    match e {
        mscribe_scheduler::Error::UnknownJob(id) => unknown_job(&id),
        mscribe_scheduler::Error::NotStarted | mscribe_scheduler::Error::Stopped => {
            error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        other => error_response(StatusCode::UNPROCESSABLE_ENTITY, other.to_string()),
    }
}
