//! A job's fires ahead and behind: `GET /jobs/{id}/upcoming?n=N` (the next
//! fires with their daylight-saving notes) and `POST /jobs/{id}/backfill`
//! (a dry run's plan, 200; a run accepted with 202 and carried out in the
//! background on this instance, audited when it starts and when it ends).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use mscribe_scheduler::{BackfillReport, BackfillRequest, JobScheduler, MAX_UPCOMING_FIRES, Phase};
use mscribe_storage::{AuditAction, AuditEntry, Source};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::reply::Response;

use super::ServerState;
use super::body::parse_json;
use super::control::control_error;
use super::reply::{ApiError, json_response, query_params};
use crate::control::{BackfillGuard, BackfillLocking, ControlPlane};

/// The default `n` of `GET /jobs/{id}/upcoming`.
pub(crate) const DEFAULT_UPCOMING: usize = 10;

/// The default `concurrency` of a backfill: the engine's.
pub(crate) const DEFAULT_BACKFILL_CONCURRENCY: usize = 4;

/// The largest `concurrency` of a backfill: the engine's.
pub(crate) const MAX_BACKFILL_CONCURRENCY: usize = 64;

/// One fire ahead, as `upcoming` lists it.
#[derive(Debug, Serialize)]
struct UpcomingFire<'a> {
    scheduled_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    local: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst_note: Option<&'a str>,
}

/// Parses the query of `upcoming`: `n` only, once, 1 to
/// [`MAX_UPCOMING_FIRES`]; a 400 naming the parameter otherwise.
pub(super) fn parse_upcoming_query(raw: &str) -> Result<usize, ApiError> {
    let map = query_params(raw, &["n"])?;
    let Some(v) = map.get("n") else { return Ok(DEFAULT_UPCOMING) };
    match v.trim().parse::<i64>() {
        Ok(k) if (1..=MAX_UPCOMING_FIRES as i64).contains(&k) => Ok(k as usize),
        _ => Err(ApiError::bad_request(format!(
            "n must be an integer from 1 to {MAX_UPCOMING_FIRES}, got \"{v}\""
        ))
        .with_field("n")),
    }
}

/// `GET /jobs/{id}/upcoming?n=N`: the job's next `n` fires (default
/// [`DEFAULT_UPCOMING`]), each with its local time and a note where the
/// zone's offset changes; none for a trigger-only job. `paused` says
/// whether they would fire now.
pub(super) async fn upcoming(
    state: &ServerState,
    id: &str,
    query: &str,
) -> Result<Response, ApiError> {
    let info = state.scheduler.job(id).ok_or_else(|| ApiError::unknown_job(id))?;
    let n = parse_upcoming_query(query)?;
    let fires = state.scheduler.upcoming(id, n).map_err(ApiError::scheduler)?;
    let fires: Vec<UpcomingFire<'_>> = fires
        .iter()
        .map(|f| UpcomingFire {
            scheduled_at: f.scheduled_at,
            local: f.local.as_deref(),
            dst_note: f.dst_note.as_deref(),
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "job_id": id,
            "schedule": info.schedule,
            "paused": info.paused,
            "fires": fires,
        }),
    ))
}

/// The body of `POST /jobs/{id}/backfill`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackfillBody {
    /// The first instant (RFC 3339), included.
    from: String,
    /// The last instant (RFC 3339), included; not in the future.
    to: String,
    /// Only plan.
    #[serde(default)]
    dry_run: bool,
    /// Run fires already recorded too.
    #[serde(default)]
    force: bool,
    /// Runs at once.
    #[serde(default)]
    concurrency: Option<i64>,
}

/// An RFC 3339 time of the body, or a 400 naming its field.
fn parse_time(endpoint: &str, field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text.trim()).map(|t| t.with_timezone(&Utc)).map_err(|e| {
        ApiError::bad_field(
            endpoint,
            field,
            format!("\"{text}\" is not an RFC 3339 time such as 2026-03-01T02:00:00Z ({e})"),
        )
    })
}

/// Parses a backfill body strictly: `from` and `to` required (RFC 3339),
/// `dry_run` and `force` booleans, `concurrency` 1 to
/// [`MAX_BACKFILL_CONCURRENCY`] (default [`DEFAULT_BACKFILL_CONCURRENCY`]);
/// anything else is a 400 naming the field. The range itself (order, the
/// future, the cap) is the engine's to check.
pub(super) fn parse_backfill_body(
    body: &[u8],
    endpoint: &str,
) -> Result<BackfillRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(format!(
            "{endpoint}: a JSON body is needed: {{\"from\": RFC 3339, \"to\": RFC 3339, \
             \"dry_run\": bool, \"force\": bool, \"concurrency\": n}}"
        )));
    }
    let b: BackfillBody = parse_json(body, endpoint)?;
    let from = parse_time(endpoint, "from", &b.from)?;
    let to = parse_time(endpoint, "to", &b.to)?;
    let concurrency = match b.concurrency {
        None => DEFAULT_BACKFILL_CONCURRENCY,
        Some(n) if (1..=MAX_BACKFILL_CONCURRENCY as i64).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::bad_field(
                endpoint,
                "concurrency",
                format!("must be 1 to {MAX_BACKFILL_CONCURRENCY}, got {n}"),
            ));
        }
    };
    Ok(BackfillRequest { from, to, dry_run: b.dry_run, force: b.force, concurrency })
}

/// The engine's refusal of a backfill as an answer: 400 naming the field
/// (`from`, `to`, `range`, `schedule`, `concurrency`), 404 an unknown job,
/// 503 a scheduler not running or a store that failed.
fn backfill_error(endpoint: &str, e: mscribe_scheduler::Error) -> ApiError {
    match e {
        mscribe_scheduler::Error::InvalidBackfill { field, reason, .. } => {
            ApiError::bad_field(endpoint, field, reason)
        }
        mscribe_scheduler::Error::Store(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{endpoint}: the execution store failed: {e}"),
        ),
        other => ApiError::scheduler(other),
    }
}

/// The backfills running in this process, by scheduler instance and job:
/// one at a time per job, so that two requests never run a fire twice.
static RUNNING: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());

/// A job's place in [`RUNNING`], given back when dropped (the backfill
/// ended, failed or panicked).
#[derive(Debug)]
struct Slot((String, String));

impl Slot {
    fn take(scheduler: &JobScheduler, job: &str) -> Option<Slot> {
        let key = (scheduler.instance_id().to_owned(), job.to_owned());
        let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        // Not `then_some(Slot(..))`: a slot made and dropped here would
        // lock again (a deadlock) and give back the other backfill's place.
        if running.insert(key.clone()) { Some(Slot(key)) } else { None }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        RUNNING.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.0);
    }
}

/// `from → to` as an audit note shows it.
fn range_text(req: &BackfillRequest) -> String {
    format!("{} to {}", req.from.to_rfc3339(), req.to.to_rfc3339())
}

/// What the audit rows of a backfill carry: the request and its plan.
fn plan_detail(req: &BackfillRequest, plan: &BackfillReport, phase: &str) -> Value {
    json!({
        "phase": phase,
        "from": req.from,
        "to": req.to,
        "force": req.force,
        "concurrency": req.concurrency,
        "fires": plan.fires.len(),
        "already_recorded": plan.already_recorded,
        "to_run": plan.to_run,
    })
}

/// Writes one audit row of a backfill of `job` (source `api`).
async fn audit(
    plane: &ControlPlane,
    job: &str,
    note: String,
    detail: Value,
) -> Result<i64, crate::control::ControlError> {
    plane
        .record_audit(&AuditEntry {
            at: plane.now(),
            action: AuditAction::Backfill,
            job_id: Some(job.to_owned()),
            execution_id: None,
            note: Some(note),
            source: Source::Api,
            instance_id: plane.instance_id().to_owned(),
            detail: Some(detail),
        })
        .await
}

/// `POST /jobs/{id}/backfill`. A dry run answers 200 with the plan (every
/// fire with `local`, `dst_note`, `recorded`; `already_recorded`,
/// `to_run`). A run with nothing to run answers 200 too (audited once). A
/// run answers 202 with the plan, `state: "running"` and the `audit_id` of
/// its first audit row, and goes on in the background on this instance;
/// its end is a second audit row with the runs' statuses. 409 while a
/// backfill of the job runs here, or on another instance (the cluster's
/// backfill lock, see [`ControlPlane::lock_backfill`]).
pub(super) async fn backfill(
    state: &ServerState,
    id: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let endpoint = format!("POST /jobs/{id}/backfill");
    state.scheduler.job(id).ok_or_else(|| ApiError::unknown_job(id))?;
    let req = parse_backfill_body(body, &endpoint)?;
    let dry = BackfillRequest { dry_run: true, ..req.clone() };
    let mut plan =
        state.scheduler.backfill(id, &dry).await.map_err(|e| backfill_error(&endpoint, e))?;
    if req.dry_run {
        return Ok(json_response(StatusCode::OK, &plan));
    }
    plan.dry_run = false;
    if state.scheduler.phase() != Phase::Running {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{endpoint}: the scheduler is not running; nothing was run"),
        ));
    }
    if plan.to_run == 0 {
        if let Some(plane) = &state.control {
            let note = format!(
                "backfill of {}: nothing to run ({} fires, all recorded)",
                range_text(&req),
                plan.fires.len()
            );
            audit(plane, id, note, plan_detail(&req, &plan, "nothing_to_run"))
                .await
                .map_err(|e| control_error(&endpoint, e))?;
        }
        let mut body = serde_json::to_value(&plan).unwrap_or(Value::Null);
        body["state"] = json!("nothing_to_run");
        return Ok(json_response(StatusCode::OK, &body));
    }
    let Some(slot) = Slot::take(&state.scheduler, id) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "{endpoint}: a backfill of job \"{id}\" is running on this instance; wait for \
                 it to end (its audit rows: GET /audit?job={id})"
            ),
        ));
    };
    let lock = match &state.control {
        Some(plane) => {
            match plane.lock_backfill(id).await.map_err(|e| control_error(&endpoint, e))? {
                BackfillLocking::Locked(guard) => Some(guard),
                BackfillLocking::Busy(lock) => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        format!(
                            "{endpoint}: a backfill of job \"{id}\" is running on another instance \
                         (lock holder {}, since {}; the lock runs out at {} unless renewed); wait \
                         for it to end (its audit rows: GET /audit?job={id})",
                            lock.holder,
                            lock.acquired_at.to_rfc3339(),
                            lock.expires_at.to_rfc3339()
                        ),
                    ));
                }
            }
        }
        None => None,
    };
    let audit_id = match &state.control {
        Some(plane) => {
            let note = format!(
                "backfill of {} started: {} of {} fires to run ({} already recorded{})",
                range_text(&req),
                plan.to_run,
                plan.fires.len(),
                plan.already_recorded,
                if req.force { ", forced" } else { "" }
            );
            Some(
                audit(plane, id, note, plan_detail(&req, &plan, "started"))
                    .await
                    .map_err(|e| control_error(&endpoint, e))?,
            )
        }
        None => None,
    };
    tracing::info!(job_id = %id, from = %req.from.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true), to = %req.to.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true), to_run = plan.to_run, "backfill accepted through the API");
    tokio::spawn(run_backfill(
        state.scheduler.clone(),
        state.control.clone(),
        id.to_owned(),
        req,
        audit_id,
        (slot, lock),
    ));
    let mut body = serde_json::to_value(&plan).unwrap_or(Value::Null);
    body["state"] = json!("running");
    body["audit_id"] = json!(audit_id);
    body["instance_id"] = json!(state.scheduler.instance_id());
    Ok(json_response(StatusCode::ACCEPTED, &body))
}

/// Runs an accepted backfill to its end, then writes its second audit row:
/// how many runs ended in each status, or why it stopped.
async fn run_backfill(
    scheduler: JobScheduler,
    plane: Option<ControlPlane>,
    job: String,
    req: BackfillRequest,
    started: Option<i64>,
    (slot, lock): (Slot, Option<BackfillGuard>),
) {
    // A backfill that lost its cluster lock stops before its next fire:
    // another backfill may run the same fires.
    let result: Result<BackfillReport, String> = match &lock {
        Some(guard) => tokio::select! {
            r = scheduler.backfill(&job, &req) => r.map_err(|e| e.to_string()),
            () = guard.lost() => Err(format!(
                "lost the cluster's backfill lock ({}); stopped before running every fire",
                guard.holder()
            )),
        },
        None => scheduler.backfill(&job, &req).await.map_err(|e| e.to_string()),
    };
    drop(lock);
    drop(slot);
    let (note, detail) = match &result {
        Ok(report) => {
            let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
            for r in &report.runs {
                *statuses.entry(r.status.to_string()).or_default() += 1;
            }
            let counts: Vec<String> = statuses.iter().map(|(s, n)| format!("{n} {s}")).collect();
            let note = format!(
                "backfill of {} ended: {} runs{}{}",
                range_text(&req),
                report.runs.len(),
                if counts.is_empty() { "" } else { ": " },
                counts.join(", ")
            );
            let mut detail = plan_detail(&req, report, "ended");
            detail["runs"] = json!(report.runs.len());
            detail["statuses"] = json!(statuses);
            (note, detail)
        }
        Err(e) => {
            tracing::warn!(job_id = %job, error = %e, "backfill stopped");
            let note = format!("backfill of {} stopped: {e}", range_text(&req));
            let detail = json!({
                "phase": "stopped",
                "from": req.from,
                "to": req.to,
                "error": e,
            });
            (note, detail)
        }
    };
    let mut detail = detail;
    detail["started_audit_id"] = json!(started);
    if let Some(plane) = plane
        && let Err(e) = audit(&plane, &job, note, detail).await
    {
        tracing::warn!(job_id = %job, error = %e, "could not record a backfill's end in the audit log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EP: &str = "POST /jobs/j/backfill";

    #[test]
    fn backfill_bodies_are_strict_and_name_the_field() {
        let ok = parse_backfill_body(
            br#"{"from":"2026-01-01T00:00:00+01:00","to":"2026-01-02T00:00:00Z"}"#,
            EP,
        )
        .unwrap();
        assert_eq!(ok.from.to_rfc3339(), "2025-12-31T23:00:00+00:00");
        assert_eq!((ok.dry_run, ok.force, ok.concurrency), (false, false, 4));
        let cases: [(&[u8], Option<&str>, &str); 9] = [
            (b"", None, "a JSON body is needed"),
            (br#"{"to":"2026-01-02T00:00:00Z"}"#, Some("from"), "missing field `from`"),
            (
                br#"{"from":"yesterday","to":"2026-01-02T00:00:00Z"}"#,
                Some("from"),
                "\"yesterday\" is not an RFC 3339 time",
            ),
            (
                br#"{"from":"2026-01-01T00:00:00Z","to":"2026-01-02"}"#,
                Some("to"),
                "field \"to\": \"2026-01-02\" is not an RFC 3339 time",
            ),
            (
                br#"{"from":"2026-01-01T00:00:00Z","to":"2026-01-02T00:00:00Z","concurrency":0}"#,
                Some("concurrency"),
                "must be 1 to 64, got 0",
            ),
            (
                br#"{"from":"2026-01-01T00:00:00Z","to":"2026-01-02T00:00:00Z","concurrency":65}"#,
                Some("concurrency"),
                "must be 1 to 64, got 65",
            ),
            (
                br#"{"from":"2026-01-01T00:00:00Z","to":"2026-01-02T00:00:00Z","concurrency":"2"}"#,
                Some("concurrency"),
                "invalid type",
            ),
            (
                br#"{"from":"2026-01-01T00:00:00Z","to":"2026-01-02T00:00:00Z","dryrun":true}"#,
                Some("dryrun"),
                "unknown field `dryrun`",
            ),
            (br#"{"from":1,"to":"2026-01-02T00:00:00Z"}"#, Some("from"), "invalid type: integer"),
        ];
        for (body, field, msg) in cases {
            let e = parse_backfill_body(body, EP).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.field.as_deref(), field, "{e:?}");
            assert!(e.message.contains(msg), "{msg}: {e:?}");
            assert!(e.message.starts_with(EP), "{e:?}");
        }
    }

    #[test]
    fn upcoming_queries_are_strict() {
        assert_eq!(parse_upcoming_query("").unwrap(), DEFAULT_UPCOMING);
        assert_eq!(parse_upcoming_query("n=1000").unwrap(), 1000);
        for (raw, field) in [
            ("n=0", "n"),
            ("n=1001", "n"),
            ("n=x", "n"),
            ("n=-1", "n"),
            ("n=1&n=2", "n"),
            ("limit=3", "limit"),
        ] {
            let e = parse_upcoming_query(raw).unwrap_err();
            assert_eq!((e.status, e.field.as_deref()), (StatusCode::BAD_REQUEST, Some(field)));
        }
        assert_eq!(
            parse_upcoming_query("n=0").unwrap_err().message,
            "n must be an integer from 1 to 1000, got \"0\""
        );
    }

    #[test]
    fn one_backfill_per_job_and_scheduler_at_a_time() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _in = rt.enter();
        let s = JobScheduler::new();
        let a = Slot::take(&s, "a").unwrap();
        assert!(Slot::take(&s, "a").is_none());
        let b = Slot::take(&s, "b").unwrap();
        drop(a);
        assert!(Slot::take(&s, "a").is_some());
        drop(b);
    }
}
