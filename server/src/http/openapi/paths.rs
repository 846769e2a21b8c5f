//! The operations of the OpenAPI document: one `#[utoipa::path]` per
//! method and route of the router, with its parameters, statuses, bodies
//! and examples. The functions are never called; the router answers
//! (`super::super::dispatch`).

// Built only to be described, never called.
#![allow(dead_code)]

use crate::metrics::CONTENT_TYPE;

use super::schemas::{
    AlertPage, AuditPage, BackfillBody, BackfillPlan, CancelReceipt, DefineReceipt, Deleted,
    ErrorBody, ExecutionPage, ExecutionStatus, Health, JobDefinition, JobList, JobView, Liveness,
    PauseBody, PausedJob, Readiness, TriggerAnswer, Upcoming,
};

/// The health of the instance and of each probe.
///
/// With the bearer token, each probe's message too; without, or with a
/// wrong one, only the statuses. The result is cached for a short TTL.
#[utoipa::path(get, path = "/health-check", tag = "probes", operation_id = "health_check",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Healthy", body = Health, example = json!({
            "status": "healthy", "timestamp": "2026-03-10T12:30:00.000Z", "version": "0.1.0",
            "checks": {"database": {"status": "healthy", "latency_ms": 3},
                       "scheduler": {"status": "healthy", "latency_ms": 0}}})),
        (status = 503, description = "Degraded or unhealthy", body = Health, example = json!({
            "status": "unhealthy", "timestamp": "2026-03-10T12:30:00.000Z", "version": "0.1.0",
            "checks": {"database": {"status": "unhealthy", "latency_ms": 1000,
                                    "message": "db.internal:5432: timed out"}}})),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn health_check() {}

/// `GET /health-check` without its body.
#[utoipa::path(head, path = "/health-check", tag = "probes", operation_id = "health_check_head",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Healthy"),
        (status = 503, description = "Degraded or unhealthy"),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn health_check_head() {}

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/livez", tag = "probes", operation_id = "livez",
    responses(
        (status = 200, description = "Alive", body = Liveness, example = json!({"status": "alive"})),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn livez() {}

/// `GET /livez` without its body.
#[utoipa::path(head, path = "/livez", tag = "probes", operation_id = "livez_head",
    responses(
        (status = 200, description = "Alive"),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn livez_head() {}

/// Readiness: 200 when the scheduler runs and the database answers.
#[utoipa::path(get, path = "/readyz", tag = "probes", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = Readiness, example = json!({"status": "ready"})),
        (status = 503, description = "Not ready, with the reasons", body = Readiness,
         example = json!({"status": "not_ready", "reasons": ["database unreachable"]})),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn readyz() {}

/// `GET /readyz` without its body.
#[utoipa::path(head, path = "/readyz", tag = "probes", operation_id = "readyz_head",
    responses(
        (status = 200, description = "Ready"),
        (status = 503, description = "Not ready"),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn readyz_head() {}

/// The Prometheus metrics, as OpenMetrics text.
#[utoipa::path(get, path = "/metrics", tag = "probes", operation_id = "metrics",
    responses(
        (status = 200, description = "The metrics", content_type = CONTENT_TYPE, body = String,
         example = json!("# TYPE mscribe_jobs gauge\nmscribe_jobs 2\n# EOF\n")),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn metrics() {}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", operation_id = "openapi",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of the JSON API",
         body = Object),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn openapi() {}

/// Every job with its next and last run and its status.
#[utoipa::path(get, path = "/jobs", tag = "jobs", operation_id = "list_jobs",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The jobs", body = JobList, example = json!({"jobs": [{
            "id": "nightly", "name": "Nightly export", "schedule": "0 2 * * *",
            "next_run": "2026-03-11T02:00:00Z", "last_run": "2026-03-10T02:00:00Z",
            "last_status": "succeeded", "paused": false, "running": 0, "queued": 0,
            "overlap": "skip", "timeout_ms": 60000, "max_attempts": 1,
            "last_execution": {
                "job_id": "nightly", "execution_id": "00000001-0000-0000-0000-000000000007",
                "attempt": 1, "status": "succeeded", "scheduled_at": "2026-03-10T02:00:00Z",
                "started_at": "2026-03-10T02:00:00Z", "completed_at": "2026-03-10T02:00:01Z",
                "duration_ms": 1042, "error": null, "error_kind": null,
                "result": {"rows": 1200}, "metrics": null, "instance_id": "node-a",
                "kind": "schedule"},
            "pause": null}]})),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer`")),
         example = json!({"error": "missing bearer token: send Authorization: Bearer <admin token>"})),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn list_jobs() {}

/// One job and its latest execution.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs", operation_id = "get_job",
    params(("id" = String, Path, description = "The job's id (percent-encoded)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job", body = JobView, example = json!({
            "id": "adhoc", "name": "adhoc", "schedule": null, "next_run": null, "last_run": null,
            "last_status": null, "paused": true, "running": 0, "queued": 0, "overlap": "queue",
            "timeout_ms": null, "max_attempts": 3, "last_execution": null,
            "pause": {"job_id": "adhoc", "paused": true, "note": "disk full",
                      "changed_at": "2026-03-10T12:00:00Z", "source": "api",
                      "instance_id": "node-a", "version": 4}})),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 404, description = "Unknown job", body = ErrorBody,
         example = json!({"error": "unknown job \"nightly\""})),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn get_job() {}

/// Defines or redefines a job of your own, for the whole cluster.
///
/// Nothing is stored when refused. A `command` job needs the
/// configuration's `api.allow_command_jobs`.
#[utoipa::path(put, path = "/jobs/{id}", tag = "jobs", operation_id = "define_job",
    params(("id" = String, Path, description = "The job's id")),
    request_body(content = JobDefinition, description = "The job's keys",
        example = json!({"kind": "http", "schedule": "*/5 * * * *", "url": "https://example.com/ping"})),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "A new job", body = DefineReceipt, example = json!({
            "job_id": "ping", "kind": "http", "schedule": "*/5 * * * *", "source": "api",
            "created": true, "updated_at": "2026-03-10T12:30:00Z"})),
        (status = 200, description = "A job redefined", body = DefineReceipt),
        (status = 400, description = "A bad body, naming the field", body = ErrorBody,
         example = json!({"error": "PUT /jobs/ping: unknown key \"urll\"", "field": "urll"})),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 403, description = "A command job, not allowed here", body = ErrorBody),
        (status = 404, description = "No control plane on this server", body = ErrorBody),
        (status = 409, description = "A job of the configuration", body = ErrorBody),
        (status = 503, description = "The store failed", body = ErrorBody),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn define_job() {}

/// Deletes a job defined through the API or the CLI (its history stays).
#[utoipa::path(delete, path = "/jobs/{id}", tag = "jobs", operation_id = "delete_job",
    params(("id" = String, Path, description = "The job's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = Deleted,
         example = json!({"job_id": "ping", "deleted": true})),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "A job of the configuration", body = ErrorBody),
        (status = 503, description = "The store failed", body = ErrorBody),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn delete_job() {}

/// A job's history, newest first, a page at a time.
#[utoipa::path(get, path = "/jobs/{id}/executions", tag = "jobs", operation_id = "list_executions",
    params(
        ("id" = String, Path, description = "The job's id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000,
         description = "Rows per page (default 50)"),
        ("status" = Option<ExecutionStatus>, Query, description = "Only rows of this status"),
        ("cursor" = Option<String>, Query,
         description = "The `next_cursor` of the previous page, unchanged"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page", body = ExecutionPage, example = json!({
            "job_id": "nightly", "next_cursor": null, "executions": [{
                "job_id": "nightly", "execution_id": "00000001-0000-0000-0000-000000000008",
                "attempt": 0, "status": "skipped", "scheduled_at": "2026-03-10T03:00:00Z",
                "started_at": "2026-03-10T03:00:00Z", "completed_at": "2026-03-10T03:00:00Z",
                "duration_ms": 0, "error": "previous run still running (overlap: skip)",
                "error_kind": null, "result": null, "metrics": null, "instance_id": "node-a",
                "kind": "schedule", "fence": 1}]})),
        (status = 400, description = "A bad query or cursor, naming the parameter", body = ErrorBody,
         example = json!({"error": "unknown query parameter \"page\"; expected limit, status or cursor",
                          "field": "page"})),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 404, description = "Unknown job", body = ErrorBody),
        (status = 422, description = "`limit` out of range or an unknown `status`, naming it", body = ErrorBody),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn list_executions() {}

/// Runs the job once in the cluster, per its overlap policy; here when
/// this instance runs the job.
#[utoipa::path(post, path = "/jobs/{id}/trigger", tag = "control", operation_id = "trigger_job",
    params(("id" = String, Path, description = "The job's id")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Started, queued, pending or requested", body = TriggerAnswer,
         example = json!({"outcome": "started", "execution_id": "00000001-0000-0000-0000-00000000000a",
                          "job_id": "nightly", "trigger_id": 12, "taken_by": "node-a"})),
        (status = 200, description = "Skipped (overlap `skip`, a run in progress)", body = TriggerAnswer,
         example = json!({"outcome": "skipped", "job_id": "nightly"})),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 404, description = "Unknown job", body = ErrorBody),
        (status = 503, description = "The scheduler is not running, or the store failed", body = ErrorBody),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn trigger_job() {}

/// Pauses the job on every instance, with an optional note.
#[utoipa::path(post, path = "/jobs/{id}/pause", tag = "control", operation_id = "pause_job",
    params(("id" = String, Path, description = "The job's id")),
    request_body(content = PauseBody,
        description = "Optional (`required: false`); an empty body is no note",
        example = json!({"note": "disk full; resume after the cleanup"})),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job afterwards", body = PausedJob),
        (status = 400, description = "A bad body", body = ErrorBody,
         example = json!({"error": "POST /jobs/nightly/pause: field \"note\" is empty; leave it out or say why the job is paused"})),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 404, description = "Unknown job", body = ErrorBody),
        (status = 503, description = "The store failed", body = ErrorBody),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn pause_job() {}

/// Resumes the job on every instance.
#[utoipa::path(post, path = "/jobs/{id}/resume", tag = "control", operation_id = "resume_job",
    params(("id" = String, Path, description = "The job's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job afterwards", body = PausedJob),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 404, description = "Unknown job", body = ErrorBody),
        (status = 409, description = "This instance's configuration disables the job", body = ErrorBody),
        (status = 503, description = "The store failed", body = ErrorBody),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn resume_job() {}

/// The job's next fires with their local times and daylight-saving notes.
#[utoipa::path(get, path = "/jobs/{id}/upcoming", tag = "fires", operation_id = "upcoming_fires",
    params(
        ("id" = String, Path, description = "The job's id"),
        ("n" = Option<u32>, Query, minimum = 1, maximum = 1000,
         description = "How many fires (default 10)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The fires", body = Upcoming, example = json!({
            "job_id": "berlin", "schedule": "30 2 * * *", "paused": false, "fires": [
                {"scheduled_at": "2026-03-28T01:30:00Z", "local": "2026-03-28T02:30:00+01:00"},
                {"scheduled_at": "2026-03-29T01:00:00Z", "local": "2026-03-29T03:00:00+02:00",
                 "dst_note": "UTC offset +01:00 -> +02:00 (Europe/Berlin)"}]})),
        (status = 400, description = "A bad `n`, naming it", body = ErrorBody,
         example = json!({"error": "n must be an integer from 1 to 1000, got \"0\"", "field": "n"})),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 404, description = "Unknown job", body = ErrorBody),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn upcoming_fires() {}

/// Runs (or plans, dry) the job's past fires of a range.
///
/// A dry run answers 200 with the plan; so does a run with nothing to run.
/// Otherwise 202: the backfill runs in the background on this instance, and
/// its start and end are audited.
#[utoipa::path(post, path = "/jobs/{id}/backfill", tag = "fires", operation_id = "backfill_job",
    params(("id" = String, Path, description = "The job's id")),
    request_body(content = BackfillBody, example = json!({
        "from": "2026-03-10T00:00:00Z", "to": "2026-03-10T02:00:00Z", "dry_run": true})),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A dry run's plan, or nothing to run", body = BackfillPlan,
         example = json!({"job_id": "hourly", "already_recorded": 1, "to_run": 2, "dry_run": true,
            "runs": [], "fires": [
                {"scheduled_at": "2026-03-10T00:00:00Z", "recorded": true},
                {"scheduled_at": "2026-03-10T01:00:00Z", "recorded": false},
                {"scheduled_at": "2026-03-10T02:00:00Z", "recorded": false}]})),
        (status = 202, description = "Accepted; runs in the background", body = BackfillPlan,
         example = json!({"job_id": "hourly", "already_recorded": 0, "to_run": 1, "dry_run": false,
            "runs": [], "fires": [{"scheduled_at": "2026-03-10T01:00:00Z", "recorded": false}],
            "state": "running", "audit_id": 7, "instance_id": "node-a"})),
        (status = 400, description = "A bad body or range, naming the field", body = ErrorBody,
         example = json!({"error": "POST /jobs/hourly/backfill: field \"concurrency\": must be 1 to 64, got 0",
                          "field": "concurrency"})),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 404, description = "Unknown job", body = ErrorBody),
        (status = 409, description = "A backfill of the job runs already", body = ErrorBody),
        (status = 503, description = "The scheduler is not running, or the store failed", body = ErrorBody),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn backfill_job() {}

/// Cancels a run wherever it runs.
#[utoipa::path(post, path = "/executions/{id}/cancel", tag = "control", operation_id = "cancel_execution",
    params(("id" = String, Path, description = "The run's execution id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled by the instance that runs it", body = CancelReceipt,
         example = json!({"cancel_id": 3, "execution_id": "00000001-0000-0000-0000-00000000000a",
                          "handled_by": "node-a", "outcome": "cancelled"})),
        (status = 202, description = "Pending: no instance handled it yet", body = CancelReceipt,
         example = json!({"cancel_id": 4, "execution_id": "00000001-0000-0000-0000-00000000000b",
                          "handled_by": null, "outcome": null})),
        (status = 400, description = "Not an execution id", body = ErrorBody),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No instance runs it, or no control plane", body = ErrorBody),
        (status = 503, description = "The store failed", body = ErrorBody),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn cancel_execution() {}

/// The audit log of control actions, newest first.
#[utoipa::path(get, path = "/audit", tag = "control", operation_id = "audit_log",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000,
         description = "Rows per page (default 50)"),
        ("job" = Option<String>, Query, description = "Only this job's rows"),
        ("before" = Option<i64>, Query, description = "The `next_before` of the previous page"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page", body = AuditPage, example = json!({
            "next_before": null, "entries": [{
                "id": 7, "at": "2026-03-10T12:30:00Z", "action": "pause", "job_id": "nightly",
                "execution_id": null, "note": "disk full", "source": "api",
                "instance_id": "node-a", "detail": null}]})),
        (status = 400, description = "A bad query, naming the parameter", body = ErrorBody,
         example = json!({"error": "before must be an audit id (an integer), got \"abc\"", "field": "before"})),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No control plane on this server", body = ErrorBody),
        (status = 422, description = "`limit` out of range, naming it", body = ErrorBody),
        (status = 503, description = "The store failed", body = ErrorBody),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn audit_log() {}

/// The alert deliveries of the outbox, newest first.
#[utoipa::path(get, path = "/alerts", tag = "alerts", operation_id = "alert_deliveries",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000,
         description = "Rows per page (default 50)"),
        ("before" = Option<i64>, Query, description = "The `next_before` of the previous page"),
        ("alert" = Option<String>, Query, description = "Only this alert's rows"),
        ("job" = Option<String>, Query, description = "Only this job's rows"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page", body = AlertPage, example = json!({
            "next_before": null, "deliveries": [{
                "id": 2, "dedupe_key": "ops/failure/nightly/00000001-0000-0000-0000-000000000007/1",
                "alert": "ops", "event": "failure", "job_id": "nightly",
                "body": {"event": "failure", "job_id": "nightly"},
                "created_at": "2026-03-10T02:00:01Z", "attempts": 1, "next_attempt_at": null,
                "last_attempt_at": "2026-03-10T02:00:01Z", "last_status": 200, "last_error": null,
                "delivered_at": "2026-03-10T02:00:01Z", "gave_up_at": null, "state": "delivered"}]})),
        (status = 400, description = "A bad query, naming the parameter", body = ErrorBody,
         example = json!({"error": "before must be a delivery id (an integer), got \"abc\"", "field": "before"})),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No alert outbox on this server", body = ErrorBody),
        (status = 422, description = "`limit` out of range, naming it", body = ErrorBody,
         example = json!({"error": "limit must be between 1 and 1000, got 0", "field": "limit"})),
        (status = 500, description = "The store failed for good", body = ErrorBody),
        (status = 503, description = "The store failed (transient)", body = ErrorBody),
        (status = "default", description = "Any other error (405, 413, 414, 500, ...), same shape", body = ErrorBody),
    ))]
fn alert_deliveries() {}
