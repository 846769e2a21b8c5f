//! The HTTP API (warp): one filter takes every request and routes it by
//! its exact path, so that every answer, errors included, is JSON.
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `GET`/`HEAD /health-check` | optional | 200 healthy, 503 degraded/unhealthy; messages only with the token |
//! | `GET`/`HEAD /livez` | none | 200 while the process runs |
//! | `GET`/`HEAD /readyz` | none | 200 when the scheduler runs and the database answers, else 503 |
//! | `GET /metrics` | none | Prometheus (OpenMetrics) text |
//! | `GET /jobs` | bearer | every job with next/last run and status |
//! | `GET /jobs/{id}` | bearer | one job and its latest execution |
//! | `PUT /jobs/{id}` (body: the job's keys as JSON), `DELETE /jobs/{id}` | bearer | defines, redefines or deletes a job of your own for the whole cluster: 201/200, 400 naming the field, 403 for a command job not allowed, 409 for a job of the configuration |
//! | `GET /jobs/{id}/executions?limit=&status=&cursor=` | bearer | history, newest first, with `next_cursor` |
//! | `POST /jobs/{id}/trigger` | bearer | runs once in the cluster, here if this instance runs the job (per its overlap policy): 202 started/queued/requested, 200 skipped |
//! | `POST /jobs/{id}/pause` (body `{"note": ...}` optional), `/resume` | bearer | the job afterwards, paused or resumed on every instance |
//! | `GET /jobs/{id}/upcoming?n=` | bearer | the job's next `n` fires (default 10, at most 1000) with DST notes |
//! | `POST /jobs/{id}/backfill` (body `{"from", "to", "dry_run", "force", "concurrency"}`) | bearer | dry run: 200 with the plan; else 202, runs in the background here, audited |
//! | `POST /executions/{id}/cancel` | bearer | cancels the run wherever it runs: 200 handled, 202 pending |
//! | `GET /audit?limit=&job=&before=` | bearer | the audit log of control actions, newest first |
//! | `GET /alerts?limit=&before=&alert=&job=` | bearer | alert deliveries (the outbox), newest first, with `next_before` |
//! | `GET /openapi.json` | none | the OpenAPI 3.1 document of these routes ([`openapi_document`]) |
//!
//! Pause, resume, trigger, cancel and the audit log go through the
//! [`ControlPlane`] when the state has one (the server always does); without
//! one (an embedding with an execution store only) pause, resume and
//! trigger act on the local scheduler, and cancel and the audit log answer
//! 404.
//!
//! Errors are `{"error": "..."}` (and `"field"` when one body field or
//! query parameter is at fault) with 400 (a bad query, header or body, a
//! body sent where none is taken), 401 (no or wrong token), 404 (unknown
//! route or job; paths are matched exactly, so `/jobs//x` is not
//! `/jobs/x`), 405 (with `Allow`), 409 (a backfill of the job already runs
//! here), 413 (a body over `max_body_bytes`,
//! whatever its framing), 414 (a path and query over [`MAX_URI_BYTES`]),
//! 422 (a value out of range or unknown), 503 (scheduler stopped). Served
//! by [`serve`], the 400, 414 and 431 that hyper answers itself (a request
//! it cannot parse, a URI over 64 KiB, headers too large) are JSON too.
//!
//! Files: `reply.rs` (JSON answers and errors), `body.rs` (reading bodies
//! with a cap, strict JSON), `probes.rs` (health, liveness, readiness,
//! metrics), `jobs.rs` (the jobs API), `define.rs` (jobs defined through
//! the API), `fires.rs` (upcoming fires and
//! backfills), `control.rs` (cancel and the audit log), `alerts.rs` (the
//! alert deliveries), `cursor.rs`
//! (history paging), `serve.rs` (the TCP server, hyper's
//! own errors as JSON), `openapi/` (the OpenAPI document).
//!
//! [`api_routes`] lists every route and method of this table from the
//! router itself; a test compares it with the OpenAPI document's
//! operations both ways.

mod alerts;
mod body;
mod control;
pub(crate) mod cursor;
mod define;
mod fires;
pub(crate) mod internal;
mod jobs;
mod openapi;
mod probes;
pub(crate) mod reply;
mod serve;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::Stream;
use tracing::Instrument;
use warp::http::{HeaderMap, Method, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::config::Secret;
use crate::control::ControlPlane;
use crate::health::HealthChecker;
use crate::metrics::ServerMetrics;
use crate::token::bearer_matches;
use reply::ApiError;

pub use jobs::JobView;
pub use openapi::openapi_document;
pub use reply::error_response;
pub use serve::{serve, serve_filter};

/// What the routes need.
#[derive(Debug)]
pub struct ServerState {
    /// The scheduler.
    pub scheduler: mscribe_scheduler::JobScheduler,
    /// The health checker.
    pub health: Arc<HealthChecker>,
    /// The metrics.
    pub metrics: Arc<ServerMetrics>,
    /// The bearer token of the jobs API and of health details.
    pub admin_token: Secret,
    /// The largest request body accepted.
    pub max_body_bytes: u64,
    /// The cluster's control plane: pause, resume, trigger and cancel for
    /// every instance, and the audit log. `None`: the local scheduler only.
    pub control: Option<ControlPlane>,
    /// The alert outbox, read by `GET /alerts`. `None`: that route
    /// answers 404.
    pub alerts: Option<Arc<dyn mscribe_storage::AlertStore>>,
}

/// The largest `limit` of the executions route.
pub const MAX_HISTORY_LIMIT: usize = 1000;

/// The default `limit` of the executions route.
pub const DEFAULT_HISTORY_LIMIT: usize = 50;

/// The longest path and query string answered; a longer one gets a 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;

fn with_state(
    state: Arc<ServerState>,
) -> impl Filter<Extract = (Arc<ServerState>,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Every route, with errors rendered as JSON.
pub fn routes(
    state: Arc<ServerState>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::method()
        .and(warp::path::full())
        .and(raw_query)
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and(with_state(state))
        .then(
            |method: Method,
             path: warp::path::FullPath,
             query: String,
             headers: HeaderMap,
             body,
             state: Arc<ServerState>| async move {
                // The request's server span (exported with `[telemetry]`).
                let span = crate::telemetry::api_span(&method, path.as_str(), &headers, || {
                    route_name(path.as_str())
                });
                let req = Request { method, path: path.as_str().to_owned(), query, headers };
                let res = match handle(&req, body, &state).instrument(span.clone()).await {
                    Ok(r) => r,
                    Err(e) => e.into_response(),
                };
                crate::telemetry::record_response(&span, res.status());
                res
            },
        )
        .recover(|e: Rejection| reply::recover(e))
        .unify()
}

/// What a handler sees of a request (the body apart).
#[derive(Debug)]
struct Request {
    method: Method,
    /// The path as sent (percent-encoded).
    path: String,
    query: String,
    headers: HeaderMap,
}

impl Request {
    /// `METHOD /path`, as errors name the endpoint.
    fn endpoint(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn authorization(&self) -> Option<&str> {
        self.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
    }
}

/// Where a path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Health,
    Livez,
    Readyz,
    Metrics,
    Jobs,
    Job(String),
    Executions(String),
    Trigger(String),
    Pause(String),
    Resume(String),
    Upcoming(String),
    Backfill(String),
    Cancel(String),
    Audit,
    Alerts,
    OpenApi,
}

/// One operation of the JSON API: a method on a path template, as the
/// router answers it and as the OpenAPI document lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiRoute {
    /// The method: `GET`, `HEAD`, `PUT`, `POST` or `DELETE`.
    pub method: &'static str,
    /// The path, with `{id}` for a job's or an execution's id.
    pub path: &'static str,
    /// Whether the route needs the bearer token.
    pub needs_token: bool,
}

/// Every route of the JSON API with each method it answers (`HEAD`
/// included where the router answers it), from the router's own table.
pub fn api_routes() -> Vec<ApiRoute> {
    Route::ALL
        .iter()
        .flat_map(|r| {
            r.allow().split(", ").map(|method| ApiRoute {
                method,
                path: r.template(),
                needs_token: r.needs_token(),
            })
        })
        .collect()
}

impl Route {
    /// One of each route of the JSON API (ids empty): what [`api_routes`]
    /// lists, and what the OpenAPI document must describe. A new route of
    /// the API goes here too (the `every_route_is_listed` test fails
    /// otherwise); a route outside the JSON API (a dashboard's pages)
    /// stays out.
    const ALL: [Route; 16] = [
        Route::Health,
        Route::Livez,
        Route::Readyz,
        Route::Metrics,
        Route::Jobs,
        Route::Job(String::new()),
        Route::Executions(String::new()),
        Route::Trigger(String::new()),
        Route::Pause(String::new()),
        Route::Resume(String::new()),
        Route::Upcoming(String::new()),
        Route::Backfill(String::new()),
        Route::Cancel(String::new()),
        Route::Audit,
        Route::Alerts,
        Route::OpenApi,
    ];

    /// The path template, `{id}` standing for the id (as the OpenAPI
    /// document and the spans name the route).
    fn template(&self) -> &'static str {
        match self {
            Route::Health => "/health-check",
            Route::Livez => "/livez",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::Jobs => "/jobs",
            Route::Job(_) => "/jobs/{id}",
            Route::Executions(_) => "/jobs/{id}/executions",
            Route::Trigger(_) => "/jobs/{id}/trigger",
            Route::Pause(_) => "/jobs/{id}/pause",
            Route::Resume(_) => "/jobs/{id}/resume",
            Route::Upcoming(_) => "/jobs/{id}/upcoming",
            Route::Backfill(_) => "/jobs/{id}/backfill",
            Route::Cancel(_) => "/executions/{id}/cancel",
            Route::Audit => "/audit",
            Route::Alerts => "/alerts",
            Route::OpenApi => "/openapi.json",
        }
    }

    /// The methods the route answers, as `Allow` lists them.
    fn allow(&self) -> &'static str {
        match self {
            Route::Health | Route::Livez | Route::Readyz => "GET, HEAD",
            Route::Job(_) => "GET, PUT, DELETE",
            Route::Metrics | Route::Jobs | Route::Executions(_) => "GET",
            Route::Audit | Route::Alerts | Route::Upcoming(_) | Route::OpenApi => "GET",
            Route::Trigger(_) | Route::Pause(_) | Route::Resume(_) | Route::Cancel(_) => "POST",
            Route::Backfill(_) => "POST",
        }
    }

    fn needs_token(&self) -> bool {
        !matches!(
            self,
            Route::Health | Route::Livez | Route::Readyz | Route::Metrics | Route::OpenApi
        )
    }

    fn takes_body(&self, method: &Method) -> bool {
        matches!(self, Route::Pause(_) | Route::Backfill(_))
            || (matches!(self, Route::Job(_)) && method == Method::PUT)
    }

    fn takes_query(&self) -> bool {
        // The probes ignore a query (monitors add cache busters).
        matches!(self, Route::Health | Route::Livez | Route::Readyz | Route::Metrics)
            || matches!(
                self,
                Route::Executions(_) | Route::Audit | Route::Alerts | Route::Upcoming(_)
            )
    }
}

/// The path's segments, percent-decoded, empty ones kept (`/jobs//x` has
/// three: `jobs`, ``, `x`).
fn segments(path: &str) -> Result<Vec<String>, ApiError> {
    let Some(rest) = path.strip_prefix('/') else { return Err(ApiError::not_found()) };
    rest.split('/')
        .map(|s| {
            percent_decode(s).ok_or_else(|| {
                ApiError::bad_request(format!("invalid percent-encoding in path segment \"{s}\""))
            })
        })
        .collect()
}

/// `s` with each `%` and two ASCII hex digits as its byte; `None` for any
/// other `%` (`%zz`, `%+9`: `from_str_radix` alone would take the sign)
/// or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The route template of `path` for its span; `unknown` when none.
fn route_name(path: &str) -> &'static str {
    segments(path).ok().and_then(|s| route(&s)).map_or("unknown", |r| r.template())
}

fn route(segments: &[String]) -> Option<Route> {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let id = |x: &str| (!x.is_empty()).then(|| x.to_owned());
    Some(match s.as_slice() {
        ["health-check"] => Route::Health,
        ["livez"] => Route::Livez,
        ["readyz"] => Route::Readyz,
        ["metrics"] => Route::Metrics,
        ["jobs"] => Route::Jobs,
        ["jobs", x] => Route::Job(id(x)?),
        ["jobs", x, "executions"] => Route::Executions(id(x)?),
        ["jobs", x, "trigger"] => Route::Trigger(id(x)?),
        ["jobs", x, "pause"] => Route::Pause(id(x)?),
        ["jobs", x, "resume"] => Route::Resume(id(x)?),
        ["jobs", x, "upcoming"] => Route::Upcoming(id(x)?),
        ["jobs", x, "backfill"] => Route::Backfill(id(x)?),
        ["executions", x, "cancel"] => Route::Cancel(id(x)?),
        ["audit"] => Route::Audit,
        ["alerts"] => Route::Alerts,
        ["openapi.json"] => Route::OpenApi,
        _ => return None,
    })
}

async fn handle<S, B>(
    req: &Request,
    body: S,
    state: &Arc<ServerState>,
) -> Result<Response, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let uri_len = req.path.len() + if req.query.is_empty() { 0 } else { req.query.len() + 1 };
    if uri_len > MAX_URI_BYTES {
        body::drain(body).await;
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!(
                "request path and query of {uri_len} bytes are over the limit of {MAX_URI_BYTES} bytes"
            ),
        ));
    }
    // Read first, whatever the route: an answer sent before the body was
    // read reaches a client still sending it as a reset connection.
    let bytes = body::read_body(&req.headers, body, state.max_body_bytes).await?;
    let route = segments(&req.path).map(|s| route(&s))?;
    let is_jobs_api = ["/jobs", "/executions", "/audit", "/alerts"]
        .iter()
        .any(|p| req.path == *p || req.path.starts_with(&format!("{p}/")));
    if is_jobs_api || route.as_ref().is_some_and(Route::needs_token) {
        check_token(req, state)?;
    }
    let Some(route) = route else { return Err(ApiError::not_found()) };
    let allowed = route.allow().split(", ").any(|m| m == req.method.as_str());
    if !allowed {
        return Err(ApiError::method_not_allowed(route.allow()));
    }
    if !route.takes_body(&req.method) && !bytes.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{} takes no request body; got {} bytes",
            req.endpoint(),
            bytes.len()
        )));
    }
    if !route.takes_query() && !req.query.is_empty() {
        let e = ApiError::bad_request(format!(
            "{} takes no query string; got \"{}\"",
            req.endpoint(),
            req.query
        ));
        // One parameter at fault is named, as every query error names it.
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(&req.query).unwrap_or_default();
        let mut keys: Vec<String> = pairs.into_iter().map(|(k, _)| k).collect();
        keys.dedup();
        return Err(match <[String; 1]>::try_from(keys) {
            Ok([k]) => e.with_field(k),
            Err(_) => e,
        });
    }
    dispatch(req, route, bytes, state).await
}

fn check_token(req: &Request, state: &ServerState) -> Result<(), ApiError> {
    let auth = req.authorization();
    if bearer_matches(auth, &state.admin_token) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        if req.headers.contains_key(header::AUTHORIZATION) {
            "invalid bearer token"
        } else {
            "missing bearer token: send Authorization: Bearer <admin token>"
        },
    ))
}

async fn dispatch(
    req: &Request,
    route: Route,
    body: Bytes,
    state: &Arc<ServerState>,
) -> Result<Response, ApiError> {
    let s = &**state;
    Ok(match route {
        Route::Health => probes::health_check(&req.method, req.authorization(), s).await,
        Route::Livez => probes::livez(&req.method),
        Route::Readyz => probes::readyz(&req.method, state).await,
        Route::Metrics => probes::metrics(s),
        Route::Jobs => jobs::list(s).await,
        Route::Job(id) if req.method == Method::PUT => {
            define::define(s, &id, &body, &req.endpoint()).await?
        }
        Route::Job(id) if req.method == Method::DELETE => {
            define::delete(s, &id, &req.endpoint()).await?
        }
        Route::Job(id) => jobs::show(s, &id).await?,
        Route::Executions(id) => jobs::executions(s, &id, &req.query).await?,
        Route::Trigger(id) => jobs::trigger(s, &id).await?,
        Route::Pause(id) => {
            let b = jobs::parse_pause_body(&body, &req.endpoint())?;
            jobs::pause_or_resume(s, &id, Some(b)).await?
        }
        Route::Resume(id) => jobs::pause_or_resume(s, &id, None).await?,
        Route::Upcoming(id) => fires::upcoming(s, &id, &req.query).await?,
        Route::Backfill(id) => fires::backfill(s, &id, &body).await?,
        Route::Cancel(id) => control::cancel(s, &id).await?,
        Route::Audit => control::audit(s, &req.query).await?,
        Route::Alerts => alerts::list(s, &req.query).await?,
        Route::OpenApi => openapi::serve(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_matched_exactly() {
        let r = |p: &str| segments(p).ok().and_then(|s| route(&s));
        assert_eq!(r("/jobs"), Some(Route::Jobs));
        assert_eq!(r("/jobs/a"), Some(Route::Job("a".into())));
        assert_eq!(r("/jobs/a%20b"), Some(Route::Job("a b".into())));
        assert_eq!(r("/jobs/a%2Fb/executions"), Some(Route::Executions("a/b".into())));
        assert_eq!(r("/jobs/a/upcoming"), Some(Route::Upcoming("a".into())));
        assert_eq!(r("/jobs/a/backfill"), Some(Route::Backfill("a".into())));
        for p in ["/jobs/", "/jobs//a", "//jobs/a", "/jobs/a/", "/jobs//executions", "/", ""] {
            assert_eq!(r(p), None, "{p}");
        }
        assert!(segments("/jobs/%zz").is_err());
        assert!(segments("/jobs/%ff").is_err());
    }

    /// A `%` takes two ASCII hex digits: a sign (which `from_str_radix`
    /// accepts) or anything else is invalid, not a byte.
    #[test]
    fn percent_escapes_need_two_hex_digits() {
        assert_eq!(percent_decode("a%2Fb%2f").as_deref(), Some("a/b/"));
        for bad in ["%+9", "%-9", "%+f", "% 9", "%9", "%", "%zz", "a%+41"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
            assert!(segments(&format!("/jobs/{bad}")).is_err(), "{bad}");
        }
    }

    /// `Route::ALL` holds every variant once, and each template leads back
    /// to its route.
    #[test]
    fn every_route_is_listed() {
        // No wildcard: a new variant does not compile until it is added here
        // with the next number; a route of the JSON API goes into
        // `Route::ALL` too and the range below grows (a route outside the
        // API takes a number past the range and stays out of `ALL`).
        let ordinal = |r: &Route| match r {
            Route::Health => 0,
            Route::Livez => 1,
            Route::Readyz => 2,
            Route::Metrics => 3,
            Route::Jobs => 4,
            Route::Job(_) => 5,
            Route::Executions(_) => 6,
            Route::Trigger(_) => 7,
            Route::Pause(_) => 8,
            Route::Resume(_) => 9,
            Route::Upcoming(_) => 10,
            Route::Backfill(_) => 11,
            Route::Cancel(_) => 12,
            Route::Audit => 13,
            Route::Alerts => 14,
            Route::OpenApi => 15,
        };
        let ordinals: Vec<usize> = Route::ALL.iter().map(ordinal).collect();
        assert_eq!(ordinals, (0..=15).collect::<Vec<_>>());
        for r in &Route::ALL {
            let path = r.template().replace("{id}", "x");
            let back = segments(&path).ok().and_then(|s| route(&s));
            assert_eq!(back.as_ref().map(ordinal), Some(ordinal(r)), "{path}");
        }
        let routes = api_routes();
        assert!(routes.contains(&ApiRoute { method: "HEAD", path: "/livez", needs_token: false }));
        assert!(routes.contains(&ApiRoute {
            method: "DELETE",
            path: "/jobs/{id}",
            needs_token: true
        }));
    }
}
