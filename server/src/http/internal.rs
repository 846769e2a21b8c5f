//! The API called in process, as the dashboard calls it: the same routing,
//! checks and handlers as over HTTP (the token apart: the caller has
//! authenticated its user), answering the JSON body or the API's error.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::Stream;
use http_body_util::BodyExt;
use serde_json::Value;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::{Request, ServerState, dispatch, route, segments};

/// An API error as the dashboard shows it: the status and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallError {
    /// The status the API answered.
    pub(crate) status: StatusCode,
    /// Its `error` message.
    pub(crate) message: String,
    /// The whole answer (a degraded health check's report, say).
    pub(crate) body: Value,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status.as_u16())
    }
}

/// Calls `method path?query` with a JSON `body` as the API would answer a
/// request carrying the admin token; the answer's JSON (with its status),
/// or its error.
pub(crate) async fn call(
    state: &Arc<ServerState>,
    method: Method,
    path: &str,
    query: &str,
    body: Option<&Value>,
) -> Result<(StatusCode, Value), CallError> {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", state.admin_token.expose())) {
        headers.insert(header::AUTHORIZATION, v);
    }
    let req = Request { method, path: path.to_owned(), query: query.to_owned(), headers };
    let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let routed = segments(&req.path).map(|s| route(&s));
    let response = match routed {
        Ok(Some(r)) => match dispatch(&req, r, bytes, state).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
        Ok(None) => super::reply::ApiError::not_found().into_response(),
        Err(e) => e.into_response(),
    };
    let status = response.status();
    let body = response.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status.is_success() {
        Ok((status, value))
    } else {
        let message = value["error"].as_str().unwrap_or("the API gave no reason").to_owned();
        Err(CallError { status, message, body: value })
    }
}

/// A request body of at most `limit` bytes, read as the API reads one (a
/// 413 over it); the error as [`CallError`].
pub(crate) async fn read_body<S, B>(
    headers: &HeaderMap,
    body: S,
    limit: u64,
) -> Result<Bytes, CallError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    super::body::read_body(headers, body, limit).await.map_err(|e| CallError {
        status: e.status,
        message: e.message,
        body: Value::Null,
    })
}

/// The path's segments, percent-decoded as the API decodes them; `None`
/// for a bad encoding.
pub(crate) fn path_segments(path: &str) -> Option<Vec<String>> {
    segments(path).ok()
}
