//! The Run page: every attempt of one run with its status, times,
//! duration, error, result and metrics (pretty-printed JSON), the captured
//! output of command and HTTP jobs, the fire, instance and trigger kind;
//! a Cancel button while it runs.

use maud::{Markup, html};
use mscribe_scheduler::ExecutionId;
use serde_json::Value;

use super::jobs::{Ctx, api_error, text, time_of};
use super::layout::{badge, csrf_field, enc, flash, pretty, when};

/// How many history rows the page reads at most to find a run's attempts.
const MAX_SCAN_ROWS: usize = 10_000;

/// The rows of run `execution` of job `id`, oldest attempt first, as the
/// API shows rows: from the store's index ([`ExecutionStore::attempts`]),
/// or, for a store that cannot look a run up, from the job's history.
/// `None` for an unknown job or a malformed id.
///
/// [`ExecutionStore::attempts`]: mscribe_scheduler::ExecutionStore::attempts
async fn attempts(
    cx: &Ctx<'_>,
    id: &str,
    execution: &str,
) -> Option<Result<Vec<Value>, crate::http::internal::CallError>> {
    cx.ui.api.scheduler.job(id)?;
    let execution_id: ExecutionId = execution.parse().ok()?;
    match cx.ui.api.scheduler.store().attempts(id, execution_id).await {
        Ok(rows) if !rows.is_empty() => {
            Some(Ok(rows.iter().filter_map(|r| serde_json::to_value(r).ok()).collect()))
        }
        Ok(_) => Some(scan(cx, id, execution).await),
        Err(e) => Some(Err(crate::http::internal::CallError {
            status: warp::http::StatusCode::SERVICE_UNAVAILABLE,
            message: e.to_string(),
            body: Value::Null,
        })),
    }
}

/// The rows of run `execution` of job `id`, oldest attempt first: read from
/// the job's history, newest first, page by page (at most
/// [`MAX_SCAN_ROWS`] rows), until past the run's rows.
async fn scan(
    cx: &Ctx<'_>,
    id: &str,
    execution: &str,
) -> Result<Vec<Value>, crate::http::internal::CallError> {
    let path = format!("/jobs/{}/executions", enc(id));
    let mut found: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut read = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("limit=1000&cursor={}", enc(c)),
            None => "limit=1000".to_owned(),
        };
        let page = cx.ui.get(&path, &query).await?;
        let rows = page["executions"].as_array().cloned().unwrap_or_default();
        read += rows.len();
        let before = found.len();
        found.extend(rows.iter().filter(|r| text(&r["execution_id"]) == execution).cloned());
        let past = found.len() > before
            && rows.last().is_some_and(|r| text(&r["execution_id"]) != execution);
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if past || cursor.is_none() || read >= MAX_SCAN_ROWS {
            break;
        }
    }
    found.sort_by_key(|r| r["attempt"].as_u64());
    Ok(found)
}

/// One attempt.
fn attempt(cx: &Ctx<'_>, r: &Value) -> Markup {
    let result = &r["result"];
    let outputs: Vec<(&str, &str)> = ["stdout", "stderr", "body"]
        .into_iter()
        .filter_map(|k| result[k].as_str().map(|v| (k, v)))
        .collect();
    html! {
        div.attempt data-attempt=(r["attempt"]) {
            h2 { "Attempt " (r["attempt"]) " " (badge(text(&r["status"]))) }
            dl.facts {
                dt { "Started" } dd { (when(time_of(&r["started_at"]), cx.now)) }
                dt { "Ended" } dd { (when(time_of(&r["completed_at"]), cx.now)) }
                dt { "Duration" } dd {
                    @match r["duration_ms"].as_u64() { Some(ms) => { (ms) " ms" }, None => span.muted { "running" } }
                }
                dt { "Instance" } dd { code { (text(&r["instance_id"])) } }
                @if let Some(f) = r["fence"].as_u64() { dt { "Lease fence" } dd { (f) } }
                @if let Some(e) = r["error"].as_str() {
                    dt { "Error" } dd {
                        pre.error { (e) }
                        @if let Some(k) = r["error_kind"].as_str() { span.muted.small { (k) } }
                    }
                }
            }
            @for (name, out) in &outputs {
                h3 { "Captured " (name) }
                pre data-output=(name) { (out) }
            }
            @if !result.is_null() { h3 { "Result" } (pretty(result)) }
            @if !r["metrics"].is_null() { h3 { "Metrics" } (pretty(&r["metrics"])) }
        }
    }
}

/// The Run page of run `execution` of job `id`; `None` when the job has no
/// such run.
pub(crate) async fn run_page(cx: &Ctx<'_>, id: &str, execution: &str) -> Option<Markup> {
    let rows = match attempts(cx, id, execution).await? {
        Ok(r) => r,
        Err(e) if e.status == warp::http::StatusCode::NOT_FOUND => return None,
        Err(e) => return Some(api_error("the run could not be read", &e)),
    };
    let first = rows.first()?;
    let running = rows.iter().any(|r| text(&r["status"]) == "running");
    let last = rows.last().unwrap_or(first);
    Some(html! {
        h1 { "Run " code { (execution) } }
        (flash(cx.flash.as_ref()))
        section #run data-live {
            dl.facts {
                dt { "Job" } dd { a href=(format!("/ui/jobs/{}", enc(id))) { code { (id) } } }
                dt { "Status" } dd #run-status data-status=(text(&last["status"])) { (badge(text(&last["status"]))) }
                dt { "Fire key" } dd { code { (id) " @ " (text(&first["scheduled_at"])) } }
                dt { "Trigger" } dd { (text(&first["kind"])) }
                dt { "Attempts" } dd { (rows.len()) }
            }
            @if running {
                div.actions {
                    form method="post" action=(format!("/ui/jobs/{}/runs/{}/cancel", enc(id), enc(execution)))
                        data-confirm="Cancel this run?" {
                        (csrf_field(&cx.csrf))
                        button.danger #cancel type="submit" { "Cancel run" }
                    }
                }
            }
            @for r in &rows { (attempt(cx, r)) }
        }
    })
}
