//! `GET /openapi.json`: the OpenAPI 3.1 document of the JSON API, made
//! from the code by `utoipa` (`paths.rs`: the operations; `schemas.rs`:
//! what they take and answer) once per process.
//!
//! Every route of the router is in it, `HEAD` included where the router
//! answers it (the probes); the `server/tests/openapi.rs` tests compare it
//! with [`api_routes`](super::api_routes) both ways, validate it against
//! the official OpenAPI 3.1 schema, its examples against their schemas,
//! and real answers of the routes against their schemas.

mod paths;
mod schemas;

use std::sync::OnceLock;

use serde_json::Value;
use utoipa::openapi::Required;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use warp::http::StatusCode;
use warp::reply::Response;

use super::reply::json_response;

/// What the document says of errors and auth, before the operations.
const DESCRIPTION: &str = "The JSON API of mscribe, the job scheduler.\n\n\
Every answer is JSON (but `/metrics`, OpenMetrics text), errors included: \
`{\"error\": \"...\"}`, with `\"field\"` naming the body field or query \
parameter at fault. Besides each operation's statuses, any route may answer \
400 (a body or query string where it takes none, a header it cannot read), \
404 (an unknown path: paths are matched exactly), 405 (another method; \
`Allow` lists the route's), 413 (a body over `max_body_bytes`), 414 (a path \
and query over 8 KiB) and 431 (headers too large).\n\n\
The routes tagged `jobs`, `control`, `fires` and `alerts` need the admin \
token as `Authorization: Bearer <token>` (401 without it); `/health-check` \
takes it to show each probe's message.";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mscribe",
        description = DESCRIPTION,
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    paths(
        paths::health_check, paths::health_check_head, paths::livez, paths::livez_head,
        paths::readyz, paths::readyz_head, paths::metrics, paths::openapi,
        paths::list_jobs, paths::get_job, paths::define_job, paths::delete_job,
        paths::list_executions, paths::trigger_job, paths::pause_job, paths::resume_job,
        paths::upcoming_fires, paths::backfill_job, paths::cancel_execution,
        paths::audit_log, paths::alert_deliveries,
    ),
    modifiers(&Finish),
    tags(
        (name = "probes", description = "Health, liveness, readiness and metrics: no token"),
        (name = "jobs", description = "The jobs and their history"),
        (name = "control", description = "Trigger, pause, resume, cancel, and the audit log"),
        (name = "fires", description = "Fires ahead (upcoming) and behind (backfill)"),
        (name = "alerts", description = "The alert deliveries"),
        (name = "meta", description = "This document"),
    ),
)]
struct ApiDoc;

/// What the attributes cannot say: the `bearer` security scheme the
/// operations name, and the pause's body being optional.
struct Finish;

impl Modify for Finish {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        if let Some(body) = doc
            .paths
            .paths
            .get_mut("/jobs/{id}/pause")
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.request_body.as_mut())
        {
            body.required = Some(Required::False);
        }
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The admin token (`[api] admin_token`)"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI 3.1 document of the JSON API, as `GET /openapi.json`
/// answers it: every route and method, their parameters, bodies, statuses,
/// examples, the error shape and the bearer token.
pub fn openapi_document() -> Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        serde_json::to_value(&doc).unwrap_or(Value::Null)
    })
    .clone()
}

/// `GET /openapi.json`.
pub(super) fn serve() -> Response {
    json_response(StatusCode::OK, &openapi_document())
}
