//! What every answer is made of: JSON bodies, the `{"error": ...}` shape of
//! every error (with `"field"` when one input field is at fault; 405 with
//! `Allow`, 401 with `WWW-Authenticate`, 413 closing the connection), and
//! the last-resort rendering of warp's rejections.

use std::collections::HashMap;
use std::convert::Infallible;
use std::num::IntErrorKind;

use serde::Serialize;
use serde_json::json;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Rejection, Reply};

pub(super) const NO_CACHE: &str = "no-cache, no-store, must-revalidate";

/// A JSON response with a status.
pub(super) fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let mut r = warp::reply::with_status(warp::reply::json(body), status).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
    r
}

/// `{"error": msg}` with a status (and `WWW-Authenticate: Bearer` for a
/// 401).
pub fn error_response(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut r = json_response(status, &json!({ "error": msg.into() }));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// An error answer: its status, its message, and what it needs beside the
/// body (the input field it is about, the methods of a 405, closing the
/// connection after a 413).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    /// The body field or query parameter at fault, answered as `"field"`
    /// beside `"error"`.
    pub(crate) field: Option<String>,
    allow: Option<&'static str>,
    close: bool,
}

/// The parameters of a query string by name, each one of `expected` and
/// given at most once; an unknown parameter or one given twice is a 400
/// naming it in `"field"`.
pub(super) fn query_params(
    raw: &str,
    expected: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
    let mut map = HashMap::new();
    for (k, v) in pairs {
        if !expected.contains(&k.as_str()) {
            let msg = format!("unknown query parameter \"{k}\"; expected {}", one_of(expected));
            return Err(ApiError::bad_request(msg).with_field(k));
        }
        if map.contains_key(&k) {
            let msg = format!("query parameter \"{k}\" given twice");
            return Err(ApiError::bad_request(msg).with_field(k));
        }
        map.insert(k, v);
    }
    Ok(map)
}

/// `a, b or c`.
fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// A `limit` query parameter: an integer from 1 to `max`. A value that is
/// not an integer is a 400; one out of the range, however many digits it
/// has, is a 422 (on every route, as the README's status table says).
/// Either names `limit` in `"field"`.
pub(super) fn limit_param(v: &str, max: usize) -> Result<usize, ApiError> {
    let range = || {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("limit must be between 1 and {max}, got {v}"),
        )
    };
    let res = match v.parse::<i64>() {
        Ok(n) if n >= 1 && n as u64 <= max as u64 => Ok(n as usize),
        Ok(_) => Err(range()),
        Err(e) if matches!(e.kind(), IntErrorKind::PosOverflow | IntErrorKind::NegOverflow) => {
            Err(range())
        }
        Err(_) => Err(ApiError::bad_request(format!("limit must be an integer, got \"{v}\""))),
    };
    res.map_err(|e| e.with_field("limit"))
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), field: None, allow: None, close: false }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 400 about one input `field` of `endpoint`:
    /// `{endpoint}: field "{field}": {reason}`, with `"field"` in the body.
    pub(super) fn bad_field(endpoint: &str, field: &str, reason: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("{endpoint}: field \"{field}\": {reason}")).with_field(field)
    }

    /// The same error, naming `field` in its body.
    pub(super) fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub(super) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }

    pub(super) fn unknown_job(id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("unknown job \"{id}\""))
    }

    /// 405 naming the allowed methods, which also go into `Allow`.
    pub(super) fn method_not_allowed(allow: &'static str) -> Self {
        ApiError {
            allow: Some(allow),
            ..Self::new(StatusCode::METHOD_NOT_ALLOWED, format!("method not allowed; use {allow}"))
        }
    }

    /// 413; the connection is closed after it (what is left of the body
    /// is not read).
    pub(super) fn too_large(message: impl Into<String>) -> Self {
        ApiError { close: true, ..Self::new(StatusCode::PAYLOAD_TOO_LARGE, message) }
    }

    /// The engine's error as an answer: 404 unknown job, 503 scheduler not
    /// running, else 422.
    pub(super) fn scheduler(e: mscribe_scheduler::Error) -> Self {
        match e {
            mscribe_scheduler::Error::UnknownJob(id) => Self::unknown_job(&id),
            mscribe_scheduler::Error::NotStarted | mscribe_scheduler::Error::Stopped => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            other => Self::new(StatusCode::UNPROCESSABLE_ENTITY, other.to_string()),
        }
    }

    pub(super) fn into_response(self) -> Response {
        let mut r = match self.field {
            None => error_response(self.status, self.message),
            Some(field) => {
                json_response(self.status, &json!({ "error": self.message, "field": field }))
            }
        };
        if let Some(allow) = self.allow {
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if self.close {
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

/// Renders a rejection as JSON. The routes reject nothing themselves
/// (one filter takes every request), so this is a safety net.
pub(super) async fn recover(err: Rejection) -> Result<Response, Infallible> {
    let e = if err.is_not_found() {
        ApiError::not_found()
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else if let Some(e) = err.find::<warp::reject::InvalidHeader>() {
        ApiError::bad_request(e.to_string())
    } else if let Some(e) = err.find::<warp::reject::PayloadTooLarge>() {
        ApiError::too_large(e.to_string())
    } else {
        // Debug, not above: any anonymous client can send one.
        tracing::debug!(rejection = ?err, "unhandled rejection");
        ApiError::bad_request("bad request")
    };
    Ok(e.into_response())
}
