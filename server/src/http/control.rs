//! The control routes beside the jobs: `POST /executions/{id}/cancel` and
//! `GET /audit`, through the [`ControlPlane`](crate::control::ControlPlane);
//! and how its errors become answers.

use mscribe_scheduler::ExecutionId;
use mscribe_storage::{AuditQuery, MAX_AUDIT_LIMIT, Source};
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::ServerState;
use super::reply::{ApiError, json_response, limit_param, query_params};
use crate::control::{CANCELLED, ControlError, ControlPlane};

/// The default `limit` of `GET /audit`.
const DEFAULT_AUDIT_LIMIT: usize = 50;

/// The state's plane, or 404 when it has none.
pub(super) fn plane<'a>(state: &'a ServerState, what: &str) -> Result<&'a ControlPlane, ApiError> {
    state.control.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{what} needs the control plane, which this server has not"),
        )
    })
}

/// A control plane error as an answer: its status, the note's errors
/// naming the field.
pub(super) fn control_error(endpoint: &str, e: ControlError) -> ApiError {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let message = match e.field() {
        Some("note") => format!("{endpoint}: field \"note\": {e}"),
        _ => e.to_string(),
    };
    ApiError::new(status, message)
}

/// `POST /executions/{id}/cancel`: 200 when the instance running it
/// cancelled it, 404 when no instance runs it, 202 while the request is
/// pending.
pub(super) async fn cancel(state: &ServerState, id: &str) -> Result<Response, ApiError> {
    let plane = plane(state, "cancel")?;
    let execution_id: ExecutionId =
        id.parse().map_err(|e| ApiError::bad_request(format!("{e}")))?;
    let endpoint = format!("POST /executions/{id}/cancel");
    let receipt = plane
        .cancel(execution_id, None, None, Source::Api)
        .await
        .map_err(|e| control_error(&endpoint, e))?;
    tracing::info!(execution_id = %execution_id, outcome = receipt.outcome.as_deref().unwrap_or("pending"), "cancel requested through the API");
    match receipt.outcome.as_deref() {
        Some(CANCELLED) => Ok(json_response(StatusCode::OK, &receipt)),
        Some(other) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, format!("execution {execution_id}: {other}")))
        }
        None => Ok(json_response(StatusCode::ACCEPTED, &receipt)),
    }
}

/// The query of `GET /audit`: `limit`, `job`, `before`; every error names
/// its parameter in `"field"`.
fn parse_audit_query(raw: &str) -> Result<AuditQuery, ApiError> {
    let map = query_params(raw, &["limit", "job", "before"])?;
    let limit = match map.get("limit") {
        None => DEFAULT_AUDIT_LIMIT,
        Some(v) => limit_param(v, MAX_AUDIT_LIMIT)?,
    };
    let mut q = AuditQuery::new(limit);
    if let Some(j) = map.get("job") {
        if j.is_empty() {
            return Err(ApiError::bad_request("job must not be empty").with_field("job"));
        }
        q = q.job(j.clone());
    }
    if let Some(b) = map.get("before") {
        let id: i64 = b.parse().map_err(|_| {
            ApiError::bad_request(format!("before must be an audit id (an integer), got \"{b}\""))
                .with_field("before")
        })?;
        q = q.before(id);
    }
    Ok(q)
}

/// `GET /audit?limit=&job=&before=`: rows newest first, and `next_before`
/// (the last id, when the page is full) for the next page.
pub(super) async fn audit(state: &ServerState, query: &str) -> Result<Response, ApiError> {
    let plane = plane(state, "the audit log")?;
    let q = parse_audit_query(query)?;
    let rows = plane.audit(&q).await.map_err(|e| control_error("GET /audit", e))?;
    let next = if rows.len() == q.limit { rows.last().map(|r| r.id) } else { None };
    Ok(json_response(StatusCode::OK, &json!({ "entries": rows, "next_before": next })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error of the audit query names its parameter in `"field"`.
    #[test]
    fn audit_query_errors_name_the_parameter() {
        for (raw, status, field) in [
            ("limit=0", StatusCode::UNPROCESSABLE_ENTITY, "limit"),
            ("limit=x", StatusCode::BAD_REQUEST, "limit"),
            ("before=x", StatusCode::BAD_REQUEST, "before"),
            ("job=", StatusCode::BAD_REQUEST, "job"),
            ("color=red", StatusCode::BAD_REQUEST, "color"),
            ("job=a&job=b", StatusCode::BAD_REQUEST, "job"),
        ] {
            let e = parse_audit_query(raw).unwrap_err();
            assert_eq!((e.status, e.field.as_deref()), (status, Some(field)), "{raw}: {e:?}");
        }
    }

    #[test]
    fn audit_queries_are_strict() {
        let q = parse_audit_query("limit=5&job=a&before=9").unwrap();
        assert_eq!((q.limit, q.job_id.as_deref(), q.before_id), (5, Some("a"), Some(9)));
        assert_eq!(parse_audit_query("").unwrap().limit, DEFAULT_AUDIT_LIMIT);
        for (raw, msg) in [
            ("x=1", "unknown query parameter \"x\"; expected limit, job or before"),
            ("before=abc", "before must be an audit id (an integer), got \"abc\""),
            ("job=", "job must not be empty"),
            ("limit=1&limit=2", "query parameter \"limit\" given twice"),
            ("limit=0", "limit must be between 1 and 1000, got 0"),
            (
                "limit=18446744073709551615",
                "limit must be between 1 and 1000, got 18446744073709551615",
            ),
        ] {
            assert_eq!(parse_audit_query(raw).unwrap_err().message, msg, "{raw}");
        }
    }
}
