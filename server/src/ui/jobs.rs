//! The Jobs page (one row per job, filtered in the page) and the Job page
//! (facts, actions, next fires, backfill preview, history, alerts).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde_json::{Value, json};
use warp::http::Method;

use super::describe::describe;
use super::layout::{badge, csrf_field, enc, flash, when};
use super::session::Flash;
use super::{UiState, kind_label};

/// What every page is drawn with.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    /// The dashboard.
    pub(crate) ui: &'a UiState,
    /// The session's CSRF token.
    pub(crate) csrf: String,
    /// The last form's outcome.
    pub(crate) flash: Option<Flash>,
    /// Now.
    pub(crate) now: DateTime<Utc>,
}

/// A time field of the API's JSON.
pub(crate) fn time_of(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.to_utc())
}

/// A text field of the API's JSON ("" when absent).
pub(crate) fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// An API error shown in the page.
pub(crate) fn api_error(what: &str, e: &impl std::fmt::Display) -> Markup {
    html! { div.flash.error role="alert" { (what) ": " (e) } }
}

/// The path of a run's page.
pub(crate) fn run_href(job: &str, execution: &str) -> String {
    format!("/ui/jobs/{}/runs/{}", enc(job), enc(execution))
}

/// The statuses a job row is filtered by: paused or active, running,
/// and its last status (failed for every kind of failure).
fn states(job: &Value) -> String {
    let mut s = vec![if job["paused"].as_bool() == Some(true) { "paused" } else { "active" }];
    if job["running"].as_u64().unwrap_or(0) > 0 {
        s.push("running");
    }
    match text(&job["last_status"]) {
        "succeeded" => s.push("succeeded"),
        "failed" | "timed_out" | "retries_exhausted" | "abandoned" => s.push("failed"),
        "" => s.push("never"),
        _ => {}
    }
    s.join(" ")
}

/// Who paused a job, when, and why.
fn pause_text(pause: &Value, now: DateTime<Utc>) -> Markup {
    html! {
        span.badge.t-paused { "paused" }
        @if let Some(note) = pause["note"].as_str() {
            " " span.note data-pause-note { (note) }
        }
        div.muted.small {
            "by " (text(&pause["source"])) " on " (text(&pause["instance_id"])) ", "
            (when(time_of(&pause["changed_at"]), now))
        }
    }
}

/// The coloured marks of a job's runs, oldest first, each a link.
fn marks(job: &str, runs: &[Value]) -> Markup {
    html! {
        span.marks {
            @for r in runs.iter().rev() {
                @let status = text(&r["status"]);
                a class=(format!("mark s-{status}"))
                    href=(run_href(job, text(&r["execution_id"])))
                    title=(format!("{status}, {} (attempt {})", text(&r["scheduled_at"]), r["attempt"]))
                    aria-label=(status) {}
            }
        }
    }
}

/// The Jobs page.
pub(crate) async fn jobs_page(cx: &Ctx<'_>) -> Markup {
    let jobs = match cx.ui.get("/jobs", "").await {
        Ok(v) => v["jobs"].as_array().cloned().unwrap_or_default(),
        Err(e) => return api_error("the jobs could not be read", &e),
    };
    let defs = cx.ui.definitions().await;
    let mut runs: HashMap<String, Vec<Value>> = HashMap::new();
    for j in &jobs {
        let id = text(&j["id"]);
        let rows = cx
            .ui
            .get(&format!("/jobs/{}/executions", enc(id)), "limit=20")
            .await
            .map(|v| v["executions"].as_array().cloned().unwrap_or_default())
            .unwrap_or_default();
        runs.insert(id.to_owned(), rows);
    }
    html! {
        h1 { "Jobs" }
        (flash(cx.flash.as_ref()))
        div.filters {
            input #job-filter type="search" placeholder="Filter by id, name or kind" aria-label="Filter jobs";
            select #status-filter aria-label="Filter by status" {
                option value="" { "any status" }
                @for s in ["active", "paused", "running", "failed", "succeeded", "never"] {
                    option value=(s) { (s) }
                }
            }
            span #job-count.muted.small {}
        }
        table #jobs {
            thead { tr {
                th { "Job" } th { "Schedule" } th { "Next fire" } th { "Last 20 runs" }
                th { "State" } th { "Running / queued" } th { "Kind" }
            } }
            tbody #jobs-body data-live {
                @for j in &jobs {
                    @let id = text(&j["id"]);
                    @let def = defs.get(id);
                    @let kind = kind_label(def);
                    tr data-job=(id)
                        data-search=(format!("{id} {} {kind}", text(&j["name"])).to_lowercase())
                        data-state=(states(j)) {
                        td {
                            a href=(format!("/ui/jobs/{}", enc(id))) { code { (id) } }
                            div.small { (text(&j["name"])) }
                        }
                        td {
                            (describe(j["schedule"].as_str()))
                            @if let Some(s) = j["schedule"].as_str() { div.muted.small { code { (s) } } }
                        }
                        td { (when(time_of(&j["next_run"]), cx.now)) }
                        td { (marks(id, runs.get(id).map_or(&[][..], Vec::as_slice))) }
                        td {
                            @if j["pause"].is_object() {
                                (pause_text(&j["pause"], cx.now))
                            } @else if j["paused"].as_bool() == Some(true) {
                                span.badge.t-paused { "paused" }
                            } @else if let Some(s) = j["last_status"].as_str() {
                                (badge(s))
                            } @else {
                                span.muted { "never ran" }
                            }
                        }
                        td.nowrap { (j["running"]) " / " (j["queued"]) }
                        td.nowrap { (kind) }
                    }
                }
            }
        }
    }
}

/// The query of the Job page.
#[derive(Debug, Default)]
pub(crate) struct JobQuery {
    /// The history's status filter.
    pub(crate) status: Option<String>,
    /// The history's page.
    pub(crate) cursor: Option<String>,
    /// A backfill to preview: from and to (RFC 3339).
    pub(crate) backfill: Option<(String, String)>,
}

/// The history's query for the API.
fn history_query(q: &JobQuery) -> String {
    let mut pairs = vec![("limit", "25".to_owned())];
    if let Some(s) = &q.status {
        pairs.push(("status", s.clone()));
    }
    if let Some(c) = &q.cursor {
        pairs.push(("cursor", c.clone()));
    }
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// The Job page of `id`; `None` for an unknown job.
pub(crate) async fn job_page(cx: &Ctx<'_>, id: &str, q: &JobQuery) -> Option<Markup> {
    let base = format!("/jobs/{}", enc(id));
    let job = cx.ui.get(&base, "").await.ok()?;
    let defs = cx.ui.definitions().await;
    let def = defs.get(id);
    let upcoming = cx.ui.get(&format!("{base}/upcoming"), "n=10").await;
    let history = cx.ui.get(&format!("{base}/executions"), &history_query(q)).await;
    let alerts = cx.ui.get("/alerts", &format!("limit=10&job={}", enc(id))).await;
    let preview = match &q.backfill {
        Some((from, to)) => Some(
            cx.ui
                .send(
                    Method::POST,
                    &format!("{base}/backfill"),
                    Some(&json!({ "from": from, "to": to, "dry_run": true })),
                )
                .await,
        ),
        None => None,
    };
    let paused = job["paused"].as_bool() == Some(true);
    let from_api = def.is_some_and(|d| d.source == mscribe_storage::Source::Api);
    Some(html! {
        h1 { (text(&job["name"])) " " span.muted.small { code { (id) } } }
        (flash(cx.flash.as_ref()))
        section #job-facts data-live {
            dl.facts {
                dt { "Schedule" } dd {
                    (describe(job["schedule"].as_str()))
                    @if let Some(s) = job["schedule"].as_str() { " " span.muted.small { code { (s) } } }
                }
                dt { "Kind" } dd { (kind_label(def)) }
                dt { "Next fire" } dd { (when(time_of(&job["next_run"]), cx.now)) }
                dt { "Last fire" } dd { (when(time_of(&job["last_run"]), cx.now)) }
                dt { "State" } dd {
                    @if job["pause"].is_object() { (pause_text(&job["pause"], cx.now)) }
                    @else if paused { span.badge.t-paused { "paused" } }
                    @else { "active" }
                    @if let Some(s) = job["last_status"].as_str() { " · last run " (badge(s)) }
                }
                dt { "Running / queued" } dd { (job["running"]) " / " (job["queued"]) }
                dt { "Overlap" } dd { (text(&job["overlap"])) }
                dt { "Attempts" } dd { (job["max_attempts"]) }
                dt { "Timeout" } dd {
                    @match job["timeout_ms"].as_u64() { Some(ms) => { (ms) " ms" }, None => "none" }
                }
            }
        }
        h2 { "Actions" }
        div.actions {
            form method="post" action=(format!("/ui/jobs/{}/trigger", enc(id))) {
                (csrf_field(&cx.csrf))
                button.primary #trigger type="submit" { "Trigger now" }
            }
            @if paused {
                form method="post" action=(format!("/ui/jobs/{}/resume", enc(id))) {
                    (csrf_field(&cx.csrf))
                    button #resume type="submit" { "Resume" }
                }
            } @else {
                form method="post" action=(format!("/ui/jobs/{}/pause", enc(id))) {
                    (csrf_field(&cx.csrf))
                    input #pause-note type="text" name="note" required maxlength="1000"
                        placeholder="Why (required)" aria-label="Pause note";
                    button #pause type="submit" { "Pause" }
                }
            }
            @if from_api {
                form method="post" action=(format!("/ui/jobs/{}/delete", enc(id)))
                    data-confirm=(format!("Delete job {id} for the whole cluster?")) {
                    (csrf_field(&cx.csrf))
                    button.danger #delete type="submit" { "Delete job" }
                }
            }
        }
        h2 #backfill { "Backfill" }
        form.filters method="get" action=(format!("/ui/jobs/{}", enc(id))) {
            label { "From " input #backfill-from type="text" name="from" required
                placeholder="2026-12-01T00:00:00Z"
                value=[q.backfill.as_ref().map(|b| b.0.as_str())]; }
            label { "to " input #backfill-to type="text" name="to" required
                placeholder="2026-12-02T00:00:00Z"
                value=[q.backfill.as_ref().map(|b| b.1.as_str())]; }
            button #backfill-preview type="submit" { "Preview" }
        }
        @if let (Some(res), Some((from, to))) = (&preview, &q.backfill) {
            (backfill_preview(cx, id, from, to, res))
        }
        h2 { "Next fires" }
        @match &upcoming {
            Ok(u) => {
                @let fires = u["fires"].as_array().cloned().unwrap_or_default();
                @if fires.is_empty() { p.muted { "None: the job fires only when triggered." } }
                @else {
                    table #upcoming { thead { tr { th { "UTC" } th { "Local" } th { "Daylight saving" } } }
                    tbody { @for f in &fires { tr {
                        td { (text(&f["scheduled_at"])) }
                        td { (text(&f["local"])) }
                        td { (text(&f["dst_note"])) }
                    } } } }
                }
            }
            Err(e) => (api_error("the next fires could not be read", e)),
        }
        h2 { "History" }
        form.filters method="get" action=(format!("/ui/jobs/{}", enc(id))) {
            select name="status" aria-label="History status" {
                option value="" { "any status" }
                @for s in ["running", "succeeded", "failed", "timed_out", "cancelled", "retries_exhausted", "abandoned", "skipped"] {
                    option value=(s) selected[q.status.as_deref() == Some(s)] { (s) }
                }
            }
            button type="submit" { "Filter" }
        }
        section #job-history data-live {
            @match &history {
                Ok(h) => (history_table(cx, id, q, h)),
                Err(e) => (api_error("the history could not be read", e)),
            }
        }
        h2 { "Last alerts" }
        section #job-alerts data-live {
            @match &alerts {
                Ok(a) => (super::lists::alerts_table(a["deliveries"].as_array().map_or(&[][..], Vec::as_slice), cx.now)),
                Err(e) => p.muted { "No alerts: " (e.message) },
            }
        }
    })
}

/// A backfill's dry run: every fire, and the form that runs it.
fn backfill_preview(
    cx: &Ctx<'_>,
    id: &str,
    from: &str,
    to: &str,
    res: &Result<(warp::http::StatusCode, Value), crate::http::internal::CallError>,
) -> Markup {
    match res {
        Err(e) => api_error("the backfill cannot be planned", e),
        Ok((_, plan)) => {
            let fires = plan["fires"].as_array().cloned().unwrap_or_default();
            html! {
                div #backfill-plan {
                    p { (fires.len()) " fires between " code { (from) } " and " code { (to) } ": "
                        (plan["to_run"]) " to run, " (plan["already_recorded"]) " already recorded." }
                    ol #backfill-fires {
                        @for f in &fires {
                            li data-fire=(text(&f["scheduled_at"])) {
                                code { (text(&f["scheduled_at"])) }
                                @if let Some(l) = f["local"].as_str() { " · " (l) }
                                @if let Some(n) = f["dst_note"].as_str() { " · " em { (n) } }
                                @if f["recorded"].as_bool() == Some(true) { " · " span.muted { "recorded" } }
                            }
                        }
                    }
                    form.filters method="post" action=(format!("/ui/jobs/{}/backfill", enc(id))) {
                        (csrf_field(&cx.csrf))
                        input type="hidden" name="from" value=(from);
                        input type="hidden" name="to" value=(to);
                        label { input type="checkbox" name="force" value="true"; " also fires already recorded" }
                        button.primary #backfill-run type="submit" { "Run this backfill" }
                    }
                }
            }
        }
    }
}

/// A page of the job's history with the link to the next.
fn history_table(cx: &Ctx<'_>, id: &str, q: &JobQuery, h: &Value) -> Markup {
    let rows = h["executions"].as_array().cloned().unwrap_or_default();
    let next = h["next_cursor"].as_str().map(|c| {
        let mut pairs = vec![("cursor", c.to_owned())];
        if let Some(s) = &q.status {
            pairs.push(("status", s.clone()));
        }
        format!("/ui/jobs/{}?{}", enc(id), serde_urlencoded::to_string(pairs).unwrap_or_default())
    });
    html! {
        @if rows.is_empty() { p.muted { "No runs." } }
        @else {
            table #history {
                thead { tr { th { "Run" } th { "Status" } th { "Fire" } th { "Started" }
                    th { "Duration" } th { "Trigger" } th { "Error" } } }
                tbody {
                    @for r in &rows {
                        @let ex = text(&r["execution_id"]);
                        tr data-run=(ex) data-status=(text(&r["status"])) {
                            td { a href=(run_href(id, ex)) { code { (ex.get(..8).unwrap_or(ex)) } }
                                " #" (r["attempt"]) }
                            td { (badge(text(&r["status"]))) }
                            td { (text(&r["scheduled_at"])) }
                            td { (when(time_of(&r["started_at"]), cx.now)) }
                            td { @if let Some(ms) = r["duration_ms"].as_u64() { (ms) " ms" } }
                            td { (text(&r["kind"])) }
                            td.small { (text(&r["error"])) }
                        }
                    }
                }
            }
        }
        div.pager {
            @if q.cursor.is_some() { a href=(format!("/ui/jobs/{}", enc(id))) { "Newest" } }
            @if let Some(n) = next { a href=(n) rel="next" { "Older" } }
        }
    }
}
