//! `PUT /jobs/{id}` and `DELETE /jobs/{id}`: jobs of your own defined
//! through the API, for the whole cluster (see `control/jobs.rs`).

use mscribe_storage::Source;
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::reply::Response;

use super::ServerState;
use super::body::parse_json;
use super::control::{control_error, plane};
use super::reply::{ApiError, json_response};
use crate::control::ControlError;

/// `PUT /jobs/{id}`: the body is the job's definition as a JSON object, the
/// keys of a `[jobs.<id>]` section (`kind` included). 201 with the receipt
/// for a new job, 200 for a redefined one; 400 naming the field, 403 for a
/// `command` job the configuration does not allow, 409 for a job of the
/// configuration. Nothing is stored when refused.
pub(super) async fn define(
    state: &ServerState,
    id: &str,
    body: &[u8],
    endpoint: &str,
) -> Result<Response, ApiError> {
    let plane = plane(state, "defining a job")?;
    let value: Value = parse_json(body, endpoint)?;
    let receipt = plane.define_job(id, value, Source::Api).await.map_err(|e| match e {
        ControlError::InvalidDefinition { ref key, .. } if !key.is_empty() => {
            ApiError::bad_request(format!("{endpoint}: {e}")).with_field(key.clone())
        }
        ControlError::InvalidDefinition { .. } => ApiError::bad_request(format!("{endpoint}: {e}")),
        other => control_error(endpoint, other),
    })?;
    tracing::info!(job_id = %id, kind = %receipt.kind, created = receipt.created, "job defined through the API");
    let code = if receipt.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(json_response(code, &receipt))
}

/// `DELETE /jobs/{id}`: 200 once the job, defined through the API or the
/// CLI, is gone from the cluster (its history stays); 404 for no such job,
/// 409 for a job of the configuration.
pub(super) async fn delete(
    state: &ServerState,
    id: &str,
    endpoint: &str,
) -> Result<Response, ApiError> {
    let plane = plane(state, "deleting a job")?;
    plane.delete_job(id, Source::Api).await.map_err(|e| control_error(endpoint, e))?;
    tracing::info!(job_id = %id, "job deleted through the API");
    Ok(json_response(StatusCode::OK, &json!({ "job_id": id, "deleted": true })))
}
