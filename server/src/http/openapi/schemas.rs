//! The schemas of the OpenAPI document: mirrors of what the routes answer
//! and take, field for field, for the document only (the engine's and the
//! storage crate's types stay free of `utoipa`). Answers are closed
//! (`additionalProperties: false`), so that a test that checks real
//! answers against them fails when a route answers a field the document
//! does not know.

// Built only to be described, never made.
#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Every error: a message, and the body field or query parameter at fault
/// when there is one.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"error": "unknown job \"nightly\""}))]
pub(super) struct ErrorBody {
    /// What went wrong, naming the bad value.
    error: String,
    /// The body field or query parameter at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    field: Option<String>,
}

/// The health of a probe or of the whole.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
}

/// One probe's report.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ProbeCheck {
    /// The probe's health.
    status: HealthStatus,
    /// How long the probe took.
    latency_ms: u64,
    /// The probe's message (errors, hostnames, paths): only with the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    message: Option<String>,
}

/// The body of `/health-check`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Health {
    /// The whole's health: the worst probe's, a slow one degrading it.
    status: HealthStatus,
    /// When the probes ended (RFC 3339, milliseconds).
    timestamp: DateTime<Utc>,
    /// The server's version.
    version: String,
    /// Each probe's report, by name (`database`, `scheduler`, ...).
    checks: BTreeMap<String, ProbeCheck>,
}

/// `alive`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum Alive {
    Alive,
}

/// The body of `/livez`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Liveness {
    /// Always `alive`.
    status: Alive,
}

/// `ready` or `not_ready`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum ReadyStatus {
    Ready,
    NotReady,
}

/// The body of `/readyz`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Readiness {
    /// Whether the instance takes work.
    status: ReadyStatus,
    /// Why not (`scheduler is stopping`, `database unreachable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    reasons: Option<Vec<String>>,
}

/// The status of one attempt, or of a fire that did not run.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    RetriesExhausted,
    Abandoned,
    Skipped,
}

/// What happens when a fire comes due while the job's previous run still
/// runs.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum OverlapPolicy {
    Skip,
    Queue,
    Allow,
    Replace,
}

/// What made a fire.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum FireKind {
    Schedule,
    Manual,
    Backfill,
}

/// Whether a handler's error may pass next time.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum ErrorKind {
    Transient,
    Permanent,
}

/// One stored row of a job's history: an attempt, or a skipped fire.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ExecutionRecord {
    /// The job.
    job_id: String,
    /// The run (all of its attempts share it), UUID-shaped.
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    execution_id: String,
    /// The attempt (0 for a skipped fire).
    attempt: u32,
    /// The status.
    status: ExecutionStatus,
    /// The nominal fire time.
    scheduled_at: DateTime<Utc>,
    /// When the attempt started (or the skip was decided).
    started_at: DateTime<Utc>,
    /// When it ended; `null` while running.
    completed_at: Option<DateTime<Utc>>,
    /// How long it ran.
    duration_ms: Option<u64>,
    /// The error, or why the fire was skipped.
    error: Option<String>,
    /// Whether the handler's error was transient or permanent.
    error_kind: Option<ErrorKind>,
    /// The handler's result data.
    result: Option<Value>,
    /// The handler's metrics.
    metrics: Option<BTreeMap<String, f64>>,
    /// The instance that ran it.
    instance_id: String,
    /// What made the fire.
    kind: FireKind,
    /// The fencing token of the fire's lease, when fires are claimed in a
    /// shared store.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    fence: Option<u64>,
}

/// A job's pause in the cluster: its last change.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PauseState {
    /// The job.
    job_id: String,
    /// Whether it is paused.
    paused: bool,
    /// The note of the last change.
    note: Option<String>,
    /// When the job was last paused or resumed.
    changed_at: DateTime<Utc>,
    /// Where that change came from: `api`, `cli`, `config`, `alert`, ...
    source: String,
    /// The instance that made it.
    instance_id: String,
    /// Grows by one with each change of the job.
    version: u64,
}

/// One job as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct JobView {
    /// The id.
    id: String,
    /// The display name.
    name: String,
    /// The schedule; `null` for a trigger-only job.
    schedule: Option<String>,
    /// The next nominal fire.
    next_run: Option<DateTime<Utc>>,
    /// The latest fire that ran or was skipped, triggers included.
    last_run: Option<DateTime<Utc>>,
    /// The last final status.
    last_status: Option<ExecutionStatus>,
    /// Whether paused.
    paused: bool,
    /// Runs in progress.
    running: u64,
    /// Fires waiting.
    queued: u64,
    /// The overlap policy.
    overlap: OverlapPolicy,
    /// The per-attempt timeout.
    timeout_ms: Option<u64>,
    /// Attempts per run.
    max_attempts: u32,
    /// The latest stored row.
    last_execution: Option<ExecutionRecord>,
    /// The cluster's pause of the job, while paused through the API or the
    /// command line.
    pause: Option<PauseState>,
}

/// The body of `GET /jobs`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct JobList {
    /// Every job of this instance.
    jobs: Vec<JobView>,
}

/// A page of a job's history, newest first.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ExecutionPage {
    /// The job.
    job_id: String,
    /// The rows.
    executions: Vec<ExecutionRecord>,
    /// The `cursor` of the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// What a trigger did.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum TriggerOutcome {
    /// A run started here.
    Started,
    /// The run waits for the current one.
    Queued,
    /// Recorded as skipped (overlap `skip` with a run in progress).
    Skipped,
    /// Waits for its claim in the shared store.
    Pending,
    /// Another instance runs the job and takes the trigger.
    Requested,
}

/// The answer of `POST /jobs/{id}/trigger`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TriggerAnswer {
    /// What the trigger did.
    outcome: TriggerOutcome,
    /// The job.
    job_id: String,
    /// The run (`started`, `queued`, `pending`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    execution_id: Option<String>,
    /// The stored trigger (with the cluster's control plane).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    trigger_id: Option<i64>,
    /// The instance that runs it; `null` when another instance will take
    /// it (with the cluster's control plane).
    #[serde(skip_serializing_if = "Option::is_none")]
    taken_by: Option<String>,
}

/// The body of `POST /jobs/{id}/pause` (optional).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PauseBody {
    /// Why the job is paused.
    #[schema(min_length = 1, max_length = 1000, nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// The job after a pause or resume; the cluster's pause state for a job
/// that only other instances run.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum PausedJob {
    /// The job, as `GET /jobs/{id}` shows it.
    Job(Box<JobView>),
    /// The pause state, for a job this instance does not run.
    State(PauseState),
}

/// One fire ahead.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpcomingFire {
    /// Its nominal time.
    scheduled_at: DateTime<Utc>,
    /// The same instant in the schedule's zone, with its offset; absent
    /// for UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    local: Option<String>,
    /// Set where the zone's UTC offset changed since the fire before.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    dst_note: Option<String>,
}

/// The answer of `GET /jobs/{id}/upcoming`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Upcoming {
    /// The job.
    job_id: String,
    /// Its schedule; `null` (and no fires) for a trigger-only job.
    schedule: Option<String>,
    /// Whether paused (the fires would not run now).
    paused: bool,
    /// The next fires, oldest first.
    fires: Vec<UpcomingFire>,
}

/// The body of `POST /jobs/{id}/backfill`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BackfillBody {
    /// The first instant (RFC 3339), included.
    from: DateTime<Utc>,
    /// The last instant (RFC 3339), included; not in the future.
    to: DateTime<Utc>,
    /// Only plan.
    #[serde(default)]
    #[schema(default = false)]
    dry_run: bool,
    /// Run fires already recorded too.
    #[serde(default)]
    #[schema(default = false)]
    force: bool,
    /// Runs at once.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 64, default = 4)]
    concurrency: u32,
}

/// One fire of a backfill's range.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PlannedFire {
    /// Its nominal time.
    scheduled_at: DateTime<Utc>,
    /// The same instant in the schedule's zone; absent for UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    local: Option<String>,
    /// Set where the zone's UTC offset changed since the fire before.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    dst_note: Option<String>,
    /// Whether the job already has a final row for it.
    recorded: bool,
}

/// One backfilled fire's run.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BackfillRun {
    /// The fire's nominal time.
    scheduled_at: DateTime<Utc>,
    /// Its run.
    execution_id: String,
    /// How the run ended.
    status: ExecutionStatus,
}

/// Where an accepted backfill stands.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum BackfillState {
    /// Runs in the background on `instance_id`.
    Running,
    /// Every fire of the range is recorded already.
    NothingToRun,
}

/// A backfill's plan (a dry run), or the plan of a backfill accepted.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BackfillPlan {
    /// The job.
    job_id: String,
    /// Every fire of the range, oldest first.
    fires: Vec<PlannedFire>,
    /// Of those, how many had a final row already.
    already_recorded: u64,
    /// How many runs the request makes (or would make, dry).
    to_run: u64,
    /// Whether nothing is run.
    dry_run: bool,
    /// The runs (empty in the answer: they run afterwards).
    runs: Vec<BackfillRun>,
    /// Not in a dry run's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    state: Option<BackfillState>,
    /// The backfill's first audit row (`running`; `null` without the
    /// cluster's control plane).
    #[serde(skip_serializing_if = "Option::is_none")]
    audit_id: Option<i64>,
    /// The instance that runs it (`running`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    instance_id: Option<String>,
}

/// What a cancel did.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelReceipt {
    /// The stored request.
    cancel_id: i64,
    /// The run.
    execution_id: String,
    /// The instance that handled it; `null` while pending.
    handled_by: Option<String>,
    /// `cancelled` once handled; `null` while pending.
    outcome: Option<String>,
}

/// One row of the audit log.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditRecord {
    /// Its id, increasing: the `before` of the next page.
    id: i64,
    /// When the action was taken.
    at: DateTime<Utc>,
    /// `pause`, `resume`, `trigger`, `cancel`, `backfill`, `define`,
    /// `delete`, or another action's name.
    action: String,
    /// The job it concerns.
    job_id: Option<String>,
    /// The run it concerns.
    execution_id: Option<String>,
    /// The caller's note.
    note: Option<String>,
    /// Where it came from (`api`, `cli`, ...).
    source: String,
    /// The instance that took it.
    instance_id: String,
    /// Anything else, as JSON.
    detail: Option<Value>,
}

/// A page of the audit log, newest first.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditPage {
    /// The rows.
    entries: Vec<AuditRecord>,
    /// The `before` of the next page; `null` when this page is not full.
    next_before: Option<i64>,
}

/// Where an alert's delivery stands.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

/// One alert of the outbox and how its delivery went.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AlertDelivery {
    /// Its id, increasing: the `before` of the next page.
    id: i64,
    /// Its unique key.
    dedupe_key: String,
    /// The alert's name (`[alerts.<name>]`).
    alert: String,
    /// The event: `failure`, `failures_in_a_row`, `recovered`, ...
    event: String,
    /// The job, if any.
    job_id: Option<String>,
    /// The body sent.
    body: Value,
    /// When it was raised.
    created_at: DateTime<Utc>,
    /// Delivery attempts so far.
    attempts: u32,
    /// When the next attempt is due; `null` once delivered or given up.
    next_attempt_at: Option<DateTime<Utc>>,
    /// When the last attempt was made.
    last_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status of the last attempt, if the receiver answered.
    last_status: Option<u16>,
    /// Why the last attempt failed.
    last_error: Option<String>,
    /// When the receiver took it.
    delivered_at: Option<DateTime<Utc>>,
    /// When its attempts ran out.
    gave_up_at: Option<DateTime<Utc>>,
    /// `pending`, `delivered` or `failed` (given up).
    state: DeliveryState,
}

/// A page of alert deliveries, newest first.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AlertPage {
    /// The rows.
    deliveries: Vec<AlertDelivery>,
    /// The `before` of the next page; `null` when this page is not full.
    next_before: Option<i64>,
}

/// A job's kind.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum JobKind {
    /// A program run on the server (only where the configuration allows).
    Command,
    /// An HTTP request.
    Http,
}

/// A job's definition: the keys of a `[jobs.<id>]` section of the
/// configuration, `kind` included (see server/README.md); a key not known
/// for the kind is refused with a 400 naming it.
#[derive(Serialize, ToSchema)]
pub(super) struct JobDefinition {
    /// `command` or `http`.
    kind: JobKind,
    /// A cron expression, `@daily`, `@every 5m`, ...
    schedule: String,
}

/// What a definition did.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DefineReceipt {
    /// The job.
    job_id: String,
    /// `command` or `http`.
    kind: String,
    /// Its schedule.
    schedule: String,
    /// Where the definition came from (`api`).
    source: String,
    /// Whether the job is new (`false`: it replaced a definition).
    created: bool,
    /// When it was stored.
    updated_at: DateTime<Utc>,
}

/// The answer of `DELETE /jobs/{id}`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Deleted {
    /// The job.
    job_id: String,
    /// Always `true`.
    deleted: bool,
}
