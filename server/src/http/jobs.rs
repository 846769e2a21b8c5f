//! The jobs API (bearer token): list and show jobs, page through a job's
//! history, trigger, pause (with a note) and resume.

use std::time::Duration;

use bytes::Bytes;
use mscribe_scheduler::{ExecutionRecord, ExecutionStatus, HistoryQuery, JobInfo, TriggerOutcome};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::reply::Response;

use super::body::parse_json;
use super::control::control_error;
use super::cursor::{self, Cursor};
use super::reply::{ApiError, json_response, limit_param, query_params};
use super::{DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT, ServerState};
use mscribe_storage::MAX_NOTE_CHARS;
use mscribe_storage::{PauseState, Source};

/// One job as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// The id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// The schedule; `null` for a trigger-only job.
    pub schedule: Option<String>,
    /// The next nominal fire.
    pub next_run: Option<chrono::DateTime<chrono::Utc>>,
    /// The latest `scheduled_at` among the job's fires that ran or were
    /// skipped, triggers included (docs/SEMANTICS.md §6).
    pub last_run: Option<chrono::DateTime<chrono::Utc>>,
    /// The last final status: of this process, else the latest stored row.
    pub last_status: Option<ExecutionStatus>,
    /// Whether paused.
    pub paused: bool,
    /// Runs in progress.
    pub running: usize,
    /// Fires waiting.
    pub queued: usize,
    /// The overlap policy.
    pub overlap: mscribe_scheduler::OverlapPolicy,
    /// The per-attempt timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Attempts per run.
    pub max_attempts: u32,
    /// The latest stored row.
    pub last_execution: Option<ExecutionRecord>,
    /// The cluster's pause of the job (note, source, instance, time), while
    /// it is paused through the API or the command line.
    pub pause: Option<PauseState>,
}

/// How long one request to the jobs views may wait on the store in all.
/// Past it, or once a read fails, the rest is answered from memory: a
/// database outage never holds `GET /jobs` for longer.
const STORE_READ_BUDGET: Duration = Duration::from_secs(2);

/// The store reads of one request, under one deadline
/// ([`STORE_READ_BUDGET`]); after a failed or late read none is tried.
struct Reads {
    deadline: tokio::time::Instant,
    down: bool,
}

impl Reads {
    fn new() -> Self {
        Reads { deadline: tokio::time::Instant::now() + STORE_READ_BUDGET, down: false }
    }

    /// The read's answer, or `None` when it fails, runs past the deadline
    /// or an earlier one did.
    async fn read<T, E: std::fmt::Display>(
        &mut self,
        what: &str,
        read: impl std::future::Future<Output = Result<T, E>>,
    ) -> Option<T> {
        if self.down {
            return None;
        }
        let error = match tokio::time::timeout_at(self.deadline, read).await {
            Ok(Ok(v)) => return Some(v),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {}s", STORE_READ_BUDGET.as_secs()),
        };
        self.down = true;
        tracing::debug!(read = what, error = %error, "jobs view: the store did not answer; the rest from memory");
        None
    }
}

async fn job_view(
    state: &ServerState,
    info: JobInfo,
    pauses: &[PauseState],
    reads: &mut Reads,
) -> JobView {
    let store = state.scheduler.store();
    let last = reads
        .read("history", store.history(&HistoryQuery::new(info.id.clone(), 1)))
        .await
        .and_then(|mut v| v.pop());
    // The newest `scheduled_at` of the job's rows, whoever wrote them (another
    // instance, `mscribe run`), or this process's own if not stored yet.
    let stored = reads.read("last_fire", store.last_fire(&info.id)).await.flatten();
    let last_run = stored.max(info.last_run);
    let pause = pauses.iter().find(|p| p.job_id == info.id && p.paused).cloned();
    JobView {
        pause,
        last_status: info.last_status.or_else(|| last.as_ref().map(|r| r.status)),
        last_run,
        id: info.id,
        name: info.name,
        schedule: info.schedule,
        next_run: info.next_run,
        paused: info.paused,
        running: info.running,
        queued: info.queued,
        overlap: info.overlap,
        timeout_ms: info.timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        max_attempts: info.max_attempts,
        last_execution: last,
    }
}

/// The jobs paused in the cluster (none without a control plane, or when
/// the store does not answer: the view shows the local scheduler then).
async fn pauses(state: &ServerState, reads: &mut Reads) -> Vec<PauseState> {
    match &state.control {
        Some(c) => reads.read("pauses", c.states()).await.unwrap_or_default(),
        None => Vec::new(),
    }
}

/// The job `id` as shown, or 404.
async fn known(state: &ServerState, id: &str) -> Result<JobInfo, ApiError> {
    state.scheduler.job(id).ok_or_else(|| ApiError::unknown_job(id))
}

/// `GET /jobs`.
pub(super) async fn list(state: &ServerState) -> Response {
    let mut reads = Reads::new();
    let pauses = pauses(state, &mut reads).await;
    let mut jobs = Vec::new();
    for info in state.scheduler.jobs() {
        jobs.push(job_view(state, info, &pauses, &mut reads).await);
    }
    json_response(StatusCode::OK, &json!({ "jobs": jobs }))
}

/// `GET /jobs/{id}`.
pub(super) async fn show(state: &ServerState, id: &str) -> Result<Response, ApiError> {
    let info = known(state, id).await?;
    let mut reads = Reads::new();
    let pauses = pauses(state, &mut reads).await;
    Ok(json_response(StatusCode::OK, &job_view(state, info, &pauses, &mut reads).await))
}

/// The query of the history route.
#[derive(Debug, PartialEq)]
pub(super) struct HistoryParams {
    pub(super) limit: usize,
    pub(super) status: Option<ExecutionStatus>,
    pub(super) cursor: Option<Cursor>,
}

/// Parses `limit`, `status` and `cursor`; anything else, or one of them
/// twice, is a 400 naming it. Every error names its parameter in
/// `"field"`.
pub(super) fn parse_history_query(raw: &str) -> Result<HistoryParams, ApiError> {
    let map = query_params(raw, &["limit", "status", "cursor"])?;
    let limit = match map.get("limit") {
        None => DEFAULT_HISTORY_LIMIT,
        Some(v) => limit_param(v, MAX_HISTORY_LIMIT)?,
    };
    let status = match map.get("status") {
        None => None,
        Some(s) => Some(s.parse::<ExecutionStatus>().map_err(|e| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).with_field("status")
        })?),
    };
    let cursor = map
        .get("cursor")
        .map(|c| Cursor::decode(c).map_err(|e| e.with_field("cursor")))
        .transpose()?;
    Ok(HistoryParams { limit, status, cursor })
}

/// `GET /jobs/{id}/executions?limit=&status=&cursor=`: a page, newest
/// first, with `next_cursor` (`null` on the last page); 404 for a job
/// neither registered nor recorded.
pub(super) async fn executions(
    state: &ServerState,
    id: &str,
    query: &str,
) -> Result<Response, ApiError> {
    let store = state.scheduler.store();
    // A job no longer registered (deleted, or gone from the configuration)
    // keeps its history, which is read as long as it has a row.
    if state.scheduler.job(id).is_none()
        && cursor::page(&**store, id, 1, None, None).await?.0.is_empty()
    {
        return Err(ApiError::unknown_job(id));
    }
    let p = parse_history_query(query)?;
    let (rows, next) = cursor::page(&**store, id, p.limit, p.status, p.cursor).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "job_id": id,
            "executions": rows,
            "next_cursor": next.map(|c| c.encode()),
        }),
    ))
}

/// `POST /jobs/{id}/trigger`: 202 started or queued (here) or requested
/// (another instance runs the job and takes it), 200 skipped.
pub(super) async fn trigger(state: &ServerState, id: &str) -> Result<Response, ApiError> {
    if let Some(plane) = &state.control {
        let endpoint = format!("POST /jobs/{id}/trigger");
        let receipt =
            plane.trigger(id, None, Source::Api).await.map_err(|e| control_error(&endpoint, e))?;
        let (code, mut body) = match &receipt.outcome {
            Some(outcome) => outcome_body(outcome),
            None => (StatusCode::ACCEPTED, json!({ "outcome": "requested" })),
        };
        body["job_id"] = json!(id);
        body["trigger_id"] = json!(receipt.trigger_id);
        body["taken_by"] = json!(receipt.taken_by);
        tracing::info!(job_id = %id, outcome = body["outcome"].as_str().unwrap_or_default(), "triggered through the API");
        return Ok(json_response(code, &body));
    }
    known(state, id).await?;
    let outcome = state.scheduler.trigger(id).map_err(ApiError::scheduler)?;
    let (code, mut body) = outcome_body(&outcome);
    body["job_id"] = json!(id);
    tracing::info!(job_id = %id, outcome = body["outcome"].as_str().unwrap_or_default(), "triggered through the API");
    Ok(json_response(code, &body))
}

/// A trigger's status and body: 202 started, queued or pending (waiting for
/// its claim), 200 skipped.
fn outcome_body(outcome: &TriggerOutcome) -> (StatusCode, Value) {
    let code = match outcome {
        TriggerOutcome::Started { .. }
        | TriggerOutcome::Queued { .. }
        | TriggerOutcome::Pending { .. } => StatusCode::ACCEPTED,
        TriggerOutcome::Skipped => StatusCode::OK,
    };
    (code, serde_json::to_value(outcome).unwrap_or(Value::Null))
}

/// The body of `POST /jobs/{id}/pause` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PauseBody {
    /// Why the job is paused: 1 to [`MAX_NOTE_CHARS`] characters.
    #[serde(default)]
    pub(super) note: Option<String>,
}

/// Parses and checks a pause body: empty means no note.
pub(super) fn parse_pause_body(body: &Bytes, endpoint: &str) -> Result<PauseBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(PauseBody::default());
    }
    let b: PauseBody = parse_json(body, endpoint)?;
    if let Some(note) = &b.note {
        if note.trim().is_empty() {
            return Err(ApiError::bad_request(format!(
                "{endpoint}: field \"note\" is empty; leave it out or say why the job is paused"
            )));
        }
        let n = note.chars().count();
        if n > MAX_NOTE_CHARS {
            return Err(ApiError::bad_request(format!(
                "{endpoint}: field \"note\" has {n} characters, over the limit of {MAX_NOTE_CHARS}"
            )));
        }
    }
    Ok(b)
}

/// `POST /jobs/{id}/pause` (body `{"note": ...}` optional) and
/// `POST /jobs/{id}/resume`: 200 with the job.
pub(super) async fn pause_or_resume(
    state: &ServerState,
    id: &str,
    pause: Option<PauseBody>,
) -> Result<Response, ApiError> {
    if let Some(plane) = &state.control {
        let (endpoint, res) = match pause {
            Some(b) => {
                (format!("POST /jobs/{id}/pause"), plane.pause(id, b.note, Source::Api).await)
            }
            None => (format!("POST /jobs/{id}/resume"), plane.resume(id, None, Source::Api).await),
        };
        let st = res.map_err(|e| control_error(&endpoint, e))?;
        tracing::info!(job_id = %id, paused = st.paused, note = st.note.as_deref().unwrap_or(""), "paused or resumed through the API");
        // A job that only other instances run has no local view: the state.
        return match state.scheduler.job(id) {
            Some(info) => {
                let pauses = if st.paused { vec![st] } else { Vec::new() };
                Ok(json_response(
                    StatusCode::OK,
                    &job_view(state, info, &pauses, &mut Reads::new()).await,
                ))
            }
            None => Ok(json_response(StatusCode::OK, &st)),
        };
    }
    known(state, id).await?;
    match &pause {
        Some(b) => {
            state.scheduler.pause(id).map_err(ApiError::scheduler)?;
            tracing::info!(job_id = %id, note = b.note.as_deref().unwrap_or(""), "paused through the API");
        }
        None => {
            state.scheduler.resume(id).map_err(ApiError::scheduler)?;
            tracing::info!(job_id = %id, "resumed through the API");
        }
    }
    show(state, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_query_is_strict() {
        let p = parse_history_query("").unwrap();
        assert_eq!((p.limit, p.status, p.cursor), (DEFAULT_HISTORY_LIMIT, None, None));
        let e = parse_history_query("limit=1&limit=2").unwrap_err();
        assert_eq!(e.message, "query parameter \"limit\" given twice");
        let e = parse_history_query("cursor=zz").unwrap_err();
        assert!(e.message.starts_with("invalid cursor \"zz\""), "{e:?}");
        // Past what an integer type holds is out of the range, not "not an
        // integer".
        for big in ["9223372036854775808", "18446744073709551616", "-9223372036854775809"] {
            let e = parse_history_query(&format!("limit={big}")).unwrap_err();
            assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY, "{big}");
            assert_eq!(e.message, format!("limit must be between 1 and 1000, got {big}"));
        }
    }

    /// Every error of the history query names its parameter in `"field"`.
    #[test]
    fn history_query_errors_name_the_parameter() {
        for (raw, status, field) in [
            ("limit=0", StatusCode::UNPROCESSABLE_ENTITY, "limit"),
            ("limit=1001", StatusCode::UNPROCESSABLE_ENTITY, "limit"),
            ("limit=abc", StatusCode::BAD_REQUEST, "limit"),
            ("status=bogus", StatusCode::UNPROCESSABLE_ENTITY, "status"),
            ("cursor=zz", StatusCode::BAD_REQUEST, "cursor"),
            ("page=2", StatusCode::BAD_REQUEST, "page"),
            ("limit=1&limit=2", StatusCode::BAD_REQUEST, "limit"),
        ] {
            let e = parse_history_query(raw).unwrap_err();
            assert_eq!((e.status, e.field.as_deref()), (status, Some(field)), "{raw}: {e:?}");
        }
    }

    #[test]
    fn pause_bodies() {
        let ep = "POST /jobs/a/pause";
        assert!(parse_pause_body(&Bytes::new(), ep).unwrap().note.is_none());
        assert!(parse_pause_body(&Bytes::from_static(b"{}"), ep).unwrap().note.is_none());
        assert_eq!(
            parse_pause_body(&Bytes::from_static(br#"{"note":"disk full"}"#), ep)
                .unwrap()
                .note
                .as_deref(),
            Some("disk full")
        );
        let e = parse_pause_body(&Bytes::from_static(br#"{"note":"  "}"#), ep).unwrap_err();
        assert!(e.message.contains("field \"note\" is empty"), "{e:?}");
        let long = format!(r#"{{"note":"{}"}}"#, "é".repeat(1001));
        let e = parse_pause_body(&Bytes::from(long), ep).unwrap_err();
        assert!(e.message.contains("1001 characters, over the limit of 1000"), "{e:?}");
        assert!(
            parse_pause_body(&Bytes::from(format!(r#"{{"note":"{}"}}"#, "é".repeat(1000))), ep)
                .is_ok()
        );
    }
}
