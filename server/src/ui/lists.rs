//! The Audit and Alerts pages (newest first, paged by id), and the Health
//! page (the health check's report with each probe's details, and the
//! instances with a recent heartbeat).

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde_json::Value;

use super::jobs::{Ctx, api_error, run_href, text, time_of};
use super::layout::{badge, enc, flash, pretty, when};

/// Rows per page of the Audit and Alerts pages.
const PAGE: usize = 50;

/// How recent a heartbeat the Health page lists.
const RECENT: std::time::Duration = std::time::Duration::from_secs(600);

/// The query of a page of a list: `before` when given.
fn page_query(before: Option<i64>) -> String {
    match before {
        Some(b) => format!("limit={PAGE}&before={b}"),
        None => format!("limit={PAGE}"),
    }
}

/// The Audit page, from row `before` on.
pub(crate) async fn audit_page(cx: &Ctx<'_>, before: Option<i64>) -> Markup {
    let res = cx.ui.get("/audit", &page_query(before)).await;
    html! {
        h1 { "Audit" }
        (flash(cx.flash.as_ref()))
        @match res {
            Err(e) => (api_error("the audit log could not be read", &e)),
            Ok(v) => {
                @let rows = v["entries"].as_array().cloned().unwrap_or_default();
                section #audit data-live {
                    @if rows.is_empty() { p.muted { "No entries." } }
                    @else {
                        table { thead { tr { th { "#" } th { "When" } th { "Action" } th { "Job" }
                            th { "Run" } th { "Note" } th { "By" } } }
                        tbody { @for r in &rows { tr {
                            td { (r["id"]) }
                            td { (when(time_of(&r["at"]), cx.now)) }
                            td { (text(&r["action"])) }
                            td { @if let Some(j) = r["job_id"].as_str() {
                                a href=(format!("/ui/jobs/{}", enc(j))) { code { (j) } } } }
                            td { @if let (Some(j), Some(x)) = (r["job_id"].as_str(), r["execution_id"].as_str()) {
                                a href=(run_href(j, x)) { code { (x.get(..8).unwrap_or(x)) } } } }
                            td.note { (text(&r["note"])) }
                            td.small { (text(&r["source"])) " · " (text(&r["instance_id"])) }
                        } } }
                        }
                    }
                }
                (pager("/ui/audit", before, v["next_before"].as_i64()))
            }
        }
    }
}

/// The links to the first and the next page.
fn pager(path: &str, before: Option<i64>, next: Option<i64>) -> Markup {
    html! {
        div.pager {
            @if before.is_some() { a href=(path) { "Newest" } }
            @if let Some(n) = next { a href=(format!("{path}?before={n}")) rel="next" { "Older" } }
        }
    }
}

/// Alert deliveries as a table.
pub(crate) fn alerts_table(rows: &[Value], now: DateTime<Utc>) -> Markup {
    html! {
        @if rows.is_empty() { p.muted { "No alerts." } }
        @else {
            table { thead { tr { th { "#" } th { "Created" } th { "Alert" } th { "Event" } th { "Job" }
                th { "State" } th { "Attempts" } th { "Last error" } } }
            tbody { @for d in rows { tr {
                td { (d["id"]) }
                td { (when(time_of(&d["created_at"]), now)) }
                td { (text(&d["alert"])) }
                td { (text(&d["event"])) }
                td { @if let Some(j) = d["job_id"].as_str() {
                    a href=(format!("/ui/jobs/{}", enc(j))) { code { (j) } } } }
                td { (badge(text(&d["state"]))) }
                td { (d["attempts"]) @if let Some(s) = d["last_status"].as_u64() { " (HTTP " (s) ")" } }
                td.small { (text(&d["last_error"])) }
            } } }
            }
        }
    }
}

/// The Alerts page, from delivery `before` on.
pub(crate) async fn alerts_page(cx: &Ctx<'_>, before: Option<i64>) -> Markup {
    let res = cx.ui.get("/alerts", &page_query(before)).await;
    html! {
        h1 { "Alerts" }
        (flash(cx.flash.as_ref()))
        @match res {
            Err(e) => (api_error("the alert deliveries could not be read", &e)),
            Ok(v) => {
                section #alerts data-live {
                    (alerts_table(v["deliveries"].as_array().map_or(&[][..], Vec::as_slice), cx.now))
                }
                (pager("/ui/alerts", before, v["next_before"].as_i64()))
            }
        }
    }
}

/// The Health page.
pub(crate) async fn health_page(cx: &Ctx<'_>) -> Markup {
    // 503 (degraded or unhealthy) has the same report.
    let report = match cx.ui.get("/health-check", "").await {
        Ok(v) => v,
        Err(e) => e.body,
    };
    let here = cx.ui.api.scheduler.instance_id().to_owned();
    let since = cx.now - chrono::Duration::from_std(RECENT).unwrap_or_default();
    let instances = cx.ui.api.scheduler.store().instances(since).await;
    let checks = report["checks"].as_object().cloned().unwrap_or_default();
    html! {
        h1 { "Health" }
        (flash(cx.flash.as_ref()))
        section #health data-live {
            p { "Overall: " (badge(text(&report["status"]))) " · checked "
                (when(time_of(&report["timestamp"]), cx.now)) " · version " (text(&report["version"])) }
            table #probes { thead { tr { th { "Probe" } th { "Status" } th { "Latency" } th { "Details" } } }
            tbody { @for (name, c) in &checks { tr data-probe=(name) {
                td { code { (name) } }
                td { (badge(text(&c["status"]))) }
                td { (c["latency_ms"]) " ms" }
                td.small { (text(&c["message"])) }
            } } } }
            h2 { "Instances seen recently" }
            p.muted.small { "Those with a heartbeat in the last " (humantime::format_duration(RECENT)) "." }
            @match &instances {
                Err(e) => (api_error("the instances could not be read", e)),
                Ok(list) => {
                    table #instances { thead { tr { th { "Instance" } th { "Host" } th { "Started" } th { "Last heartbeat" } } }
                    tbody { @for i in list { tr data-instance=(i.instance_id) {
                        td { code { (i.instance_id) } @if i.instance_id == here { " " span.badge { "this instance" } } }
                        td { (i.hostname.as_deref().unwrap_or("")) }
                        td { (when(i.started_at, cx.now)) }
                        td { (when(Some(i.heartbeat_at), cx.now)) }
                    } } } }
                    @if list.is_empty() { p.muted { "None: this store keeps no heartbeats. This instance is " code { (here) } "." } }
                }
            }
            details { summary { "The report as JSON" } (pretty(&report)) }
        }
    }
}
