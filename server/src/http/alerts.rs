//! `GET /alerts`: the alert deliveries of the outbox, newest first, with
//! paging; what each alert was, where its delivery stands, and its last
//! attempt's status or error.

use mscribe_storage::{AlertDelivery, AlertQuery, MAX_ALERT_LIMIT};
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::reply::Response;

use super::ServerState;
use super::reply::{ApiError, json_response, limit_param, query_params};

/// The default `limit` of `GET /alerts`.
const DEFAULT_ALERTS_LIMIT: usize = 50;

/// The query of `GET /alerts`: `limit`, `before`, `alert`, `job`; every
/// error names its parameter in `"field"`.
fn parse_query(raw: &str) -> Result<AlertQuery, ApiError> {
    let map = query_params(raw, &["limit", "before", "alert", "job"])?;
    let mut q = AlertQuery::new(DEFAULT_ALERTS_LIMIT);
    if let Some(v) = map.get("limit") {
        q.limit = limit_param(v, MAX_ALERT_LIMIT)?;
    }
    if let Some(b) = map.get("before") {
        let id: i64 = b.parse().map_err(|_| {
            ApiError::bad_request(format!("before must be a delivery id (an integer), got \"{b}\""))
                .with_field("before")
        })?;
        q.before_id = Some(id);
    }
    for (key, slot) in [("alert", &mut q.alert), ("job", &mut q.job_id)] {
        if let Some(v) = map.get(key) {
            if v.is_empty() {
                let e = ApiError::bad_request(format!("{key} must not be empty"));
                return Err(e.with_field(key));
            }
            *slot = Some(v.clone());
        }
    }
    Ok(q)
}

/// One row as the API shows it: the row, and its `state`.
fn view(d: &AlertDelivery) -> Value {
    let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("state".to_owned(), json!(d.state()));
    }
    v
}

/// `GET /alerts?limit=&before=&alert=&job=`: deliveries newest first, and
/// `next_before` (the last id, when the page is full) for the next page.
pub(super) async fn list(state: &ServerState, query: &str) -> Result<Response, ApiError> {
    let q = parse_query(query)?;
    let Some(store) = &state.alerts else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "the alert deliveries need the alert outbox, which this server has not",
        ));
    };
    let rows = store.alert_deliveries(&q).await.map_err(|e| {
        let status = if e.is_transient() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        ApiError::new(status, format!("GET /alerts: {e}"))
    })?;
    let next = if rows.len() == q.limit { rows.last().map(|r| r.id) } else { None };
    let deliveries: Vec<Value> = rows.iter().map(view).collect();
    Ok(json_response(StatusCode::OK, &json!({ "deliveries": deliveries, "next_before": next })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `limit` out of its range is a 422, as on the other routes; one
    /// that is not an integer stays a 400.
    #[test]
    fn alert_limit_out_of_range_is_a_422() {
        for (raw, status) in [
            ("limit=0", StatusCode::UNPROCESSABLE_ENTITY),
            ("limit=1001", StatusCode::UNPROCESSABLE_ENTITY),
            ("limit=-1", StatusCode::UNPROCESSABLE_ENTITY),
            ("limit=99999999999999999999", StatusCode::UNPROCESSABLE_ENTITY),
            ("limit=abc", StatusCode::BAD_REQUEST),
        ] {
            let e = parse_query(raw).unwrap_err();
            assert_eq!((e.status, e.field.as_deref()), (status, Some("limit")), "{raw}: {e:?}");
        }
    }

    /// Every error of the alerts query names its parameter in `"field"`.
    #[test]
    fn alert_query_errors_name_the_parameter() {
        for (raw, field) in [
            ("limit=abc", "limit"),
            ("before=x", "before"),
            ("alert=", "alert"),
            ("job=", "job"),
            ("colour=red", "colour"),
            ("before=1&before=2", "before"),
        ] {
            let e = parse_query(raw).unwrap_err();
            assert_eq!(
                (e.status, e.field.as_deref()),
                (StatusCode::BAD_REQUEST, Some(field)),
                "{raw}: {e:?}"
            );
        }
    }

    #[test]
    fn alert_queries_are_strict() {
        let q = parse_query("limit=5&before=9&alert=ops&job=a").unwrap();
        assert_eq!(
            (q.limit, q.before_id, q.alert.as_deref(), q.job_id.as_deref()),
            (5, Some(9), Some("ops"), Some("a"))
        );
        assert_eq!(parse_query("").unwrap().limit, DEFAULT_ALERTS_LIMIT);
        for (raw, msg) in [
            ("x=1", "unknown query parameter \"x\"; expected limit, before, alert or job"),
            ("limit=abc", "limit must be an integer, got \"abc\""),
            ("limit=0", "limit must be between 1 and 1000, got 0"),
            ("limit=1001", "limit must be between 1 and 1000, got 1001"),
            (
                "limit=99999999999999999999",
                "limit must be between 1 and 1000, got 99999999999999999999",
            ),
            ("before=x", "before must be a delivery id (an integer), got \"x\""),
            ("job=", "job must not be empty"),
            ("alert=", "alert must not be empty"),
            ("limit=1&limit=2", "query parameter \"limit\" given twice"),
        ] {
            assert_eq!(parse_query(raw).unwrap_err().message, msg, "{raw}");
        }
    }
}
