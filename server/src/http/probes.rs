//! The unauthenticated endpoints: `/health-check`, `/livez`, `/readyz` and
//! `/metrics`.

use std::sync::Arc;

use mscribe_scheduler::Phase;
use serde_json::json;
use warp::Reply;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use super::ServerState;
use super::reply::{NO_CACHE, json_response};
use crate::metrics::CONTENT_TYPE;
use crate::probe::HealthStatus;
use crate::token::bearer_matches;

fn strip_for_head(method: &Method, mut r: Response) -> Response {
    if method == Method::HEAD {
        *r.body_mut() = Default::default();
    }
    r
}

pub(super) async fn health_check(
    method: &Method,
    auth: Option<&str>,
    state: &ServerState,
) -> Response {
    let admin = bearer_matches(auth, &state.admin_token);
    let snap = state.health.check().await;
    let status = if snap.status == HealthStatus::Healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut r = json_response(status, &snap.body(admin));
    r.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    strip_for_head(method, r)
}

pub(super) fn livez(method: &Method) -> Response {
    strip_for_head(method, json_response(StatusCode::OK, &json!({ "status": "alive" })))
}

pub(super) async fn readyz(method: &Method, state: &Arc<ServerState>) -> Response {
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
    strip_for_head(method, json_response(status, &body))
}

pub(super) fn metrics(state: &ServerState) -> Response {
    let mut r =
        warp::reply::with_header(state.metrics.encode(), header::CONTENT_TYPE, CONTENT_TYPE)
            .into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
    r
}
