//! The dashboard's paths: the login and logout, the assets, the pages, and
//! the forms (each checked against the session's CSRF token, 403 without
//! it), which act through the API's handlers and come back to a page.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::Stream;
use maud::{Markup, html};
use serde_json::{Value, json};
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use super::assets::asset;
use super::jobs::{Ctx, JobQuery, job_page, jobs_page};
use super::layout::{enc, html_response, page, redirect};
use super::lists::{alerts_page, audit_page, health_page};
use super::run::run_page;
use super::session::{Flash, csrf_ok, login_csrf_ok};
use super::{UiState, params};
use crate::http::internal::{path_segments, read_body};

/// Answers one request to a dashboard path.
pub(crate) async fn handle<S, B>(
    ui: &Arc<UiState>,
    method: Method,
    path: &str,
    query: String,
    headers: HeaderMap,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let body = match read_body(&headers, body, ui.api.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return message(e.status, "Request refused", &e.message),
    };
    if path == "/" || path == "/ui" {
        return match method {
            Method::GET | Method::HEAD => redirect("/ui/", None),
            _ => method_not_allowed(PAGE),
        };
    }
    let Some(segs) = path.strip_prefix("/ui").and_then(path_segments) else {
        return not_found();
    };
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match allowed(&segs) {
        Some(allow) if !allow.split(", ").any(|m| m == method.as_str()) => {
            return method_not_allowed(allow);
        }
        Some(_) => {}
        None => return not_found(),
    }
    let is_post = method == Method::POST;
    match (segs.as_slice(), is_post) {
        (["assets", name], false) => return asset(name).unwrap_or_else(not_found),
        (["login"], false) => return login_page(ui, None, StatusCode::OK),
        (["login"], true) => return login(ui, &headers, &body),
        _ => {}
    }
    let Some((sid, session)) = ui.sessions.get(&headers) else {
        return if is_post {
            message(StatusCode::FORBIDDEN, "Not logged in", "log in again, then retry")
        } else {
            redirect("/ui/login", None)
        };
    };
    let form = params(std::str::from_utf8(&body).unwrap_or(""));
    if is_post && !csrf_ok(&session, form.get("csrf").map(String::as_str)) {
        return message(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "the form's CSRF token is missing or wrong: reload the page and try again",
        );
    }
    if is_post {
        return act(ui, &sid, &segs, &form).await;
    }
    let cx =
        Ctx { ui, csrf: session.csrf.clone(), flash: ui.sessions.take_flash(&sid), now: ui.now() };
    let q = params(&query);
    // The script's refresh of the live parts (which a backfill's preview is
    // not: it is not planned again).
    let refresh = headers.contains_key("x-mscribe-refresh");
    let before = q.get("before").and_then(|b| b.parse::<i64>().ok());
    let (title, current, content): (String, &str, Markup) = match segs.as_slice() {
        [""] => ("Jobs".to_owned(), "/ui/", jobs_page(&cx).await),
        ["jobs", id] => {
            let jq = JobQuery {
                status: q.get("status").filter(|s| !s.is_empty()).cloned(),
                cursor: q.get("cursor").filter(|s| !s.is_empty()).cloned(),
                backfill: match (q.get("from"), q.get("to")) {
                    (Some(f), Some(t)) if !refresh => {
                        Some((f.trim().to_owned(), t.trim().to_owned()))
                    }
                    _ => None,
                },
            };
            match job_page(&cx, id, &jq).await {
                Some(c) => (format!("Job {id}"), "/ui/", c),
                None => return not_found(),
            }
        }
        ["jobs", id, "runs", ex] => match run_page(&cx, id, ex).await {
            Some(c) => (format!("Run {ex}"), "/ui/", c),
            None => return not_found(),
        },
        ["audit"] => ("Audit".to_owned(), "/ui/audit", audit_page(&cx, before).await),
        ["alerts"] => ("Alerts".to_owned(), "/ui/alerts", alerts_page(&cx, before).await),
        ["health"] => ("Health".to_owned(), "/ui/health", health_page(&cx).await),
        _ => return not_found(),
    };
    html_response(StatusCode::OK, page(&title, current, Some(&session.csrf), content))
}

/// What `Allow` lists for a page (and for `/` and `/ui`, which redirect).
const PAGE: &str = "GET, HEAD";

/// What `Allow` lists for a form's action.
const ACTION: &str = "POST";

/// The methods a path under `/ui` answers (its segments after `/ui`), as
/// `Allow` lists them; `None` for a path the dashboard has not.
fn allowed(segs: &[&str]) -> Option<&'static str> {
    Some(match segs {
        [""] | ["audit" | "alerts" | "health"] | ["assets", _] => PAGE,
        ["jobs", _] | ["jobs", _, "runs", _] => PAGE,
        ["login"] => "GET, HEAD, POST",
        ["logout"] | ["jobs", _, "runs", _, "cancel"] => ACTION,
        ["jobs", _, "trigger" | "pause" | "resume" | "backfill" | "delete"] => ACTION,
        _ => return None,
    })
}

/// A form's action; back to the page it came from with its outcome.
async fn act(ui: &UiState, sid: &str, segs: &[&str], form: &HashMap<String, String>) -> Response {
    let job_page = |id: &str| format!("/ui/jobs/{}", enc(id));
    let (back, res) = match segs {
        ["logout"] => {
            ui.sessions.remove(sid);
            return redirect("/ui/login", Some(&ui.sessions.clear_cookie()));
        }
        ["jobs", id, "trigger"] => {
            let r = ui.send(Method::POST, &format!("/jobs/{}/trigger", enc(id)), None).await;
            (job_page(id), r.map(|(_, v)| format!("Triggered {id}: {}", outcome(&v))))
        }
        ["jobs", id, "pause"] => {
            let note = form.get("note").map(|n| n.trim()).unwrap_or("");
            if note.is_empty() {
                ui.sessions.set_flash(sid, Flash::Error("A pause needs a note: say why.".into()));
                return redirect(&job_page(id), None);
            }
            let body = json!({ "note": note });
            let r = ui.send(Method::POST, &format!("/jobs/{}/pause", enc(id)), Some(&body)).await;
            (job_page(id), r.map(|_| format!("Paused {id}.")))
        }
        ["jobs", id, "resume"] => {
            let r = ui.send(Method::POST, &format!("/jobs/{}/resume", enc(id)), None).await;
            (job_page(id), r.map(|_| format!("Resumed {id}.")))
        }
        ["jobs", id, "backfill"] => {
            let body = json!({
                "from": form.get("from").map_or("", String::as_str),
                "to": form.get("to").map_or("", String::as_str),
                "force": form.get("force").is_some_and(|f| f == "true"),
            });
            let r =
                ui.send(Method::POST, &format!("/jobs/{}/backfill", enc(id)), Some(&body)).await;
            let text = |v: &Value| {
                format!(
                    "Backfill of {id}: {} of {} fires to run ({}).",
                    v["to_run"],
                    v["fires"].as_array().map_or(0, Vec::len),
                    v["state"].as_str().unwrap_or("")
                )
            };
            (job_page(id), r.map(|(_, v)| text(&v)))
        }
        ["jobs", id, "delete"] => {
            let r = ui.send(Method::DELETE, &format!("/jobs/{}", enc(id)), None).await;
            match r {
                Ok(_) => {
                    ui.sessions.set_flash(sid, Flash::Ok(format!("Deleted job {id}.")));
                    return redirect("/ui/", None);
                }
                Err(e) => (job_page(id), Err(e)),
            }
        }
        ["jobs", id, "runs", ex, "cancel"] => {
            let r = ui.send(Method::POST, &format!("/executions/{}/cancel", enc(ex)), None).await;
            let back = format!("/ui/jobs/{}/runs/{}", enc(id), enc(ex));
            (
                back,
                r.map(|(code, _)| {
                    if code == StatusCode::OK {
                        "Cancelled.".to_owned()
                    } else {
                        "Cancel requested.".to_owned()
                    }
                }),
            )
        }
        _ => return not_found(),
    };
    let flash = match res {
        Ok(m) => Flash::Ok(m),
        Err(e) => Flash::Error(e.message),
    };
    ui.sessions.set_flash(sid, flash);
    redirect(&back, None)
}

/// A trigger's outcome in words.
fn outcome(v: &Value) -> String {
    let o = v["outcome"].as_str().unwrap_or("done");
    match v["execution_id"].as_str() {
        Some(x) => format!("{o} (run {x})"),
        None => o.to_owned(),
    }
}

/// The login: the form's CSRF token must be its cookie's (403), then the
/// admin token opens a session; a wrong one is a 401 with the form again.
/// A wrong token is logged at DEBUG only: anyone can send one.
fn login(ui: &UiState, headers: &HeaderMap, body: &Bytes) -> Response {
    let form = params(std::str::from_utf8(body).unwrap_or(""));
    if !login_csrf_ok(headers, form.get("csrf").map(String::as_str)) {
        return message(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "the login form's CSRF token is missing or wrong: reload the login page and try again",
        );
    }
    let given = form.get("token").map(|t| t.trim()).unwrap_or("");
    if given.is_empty() || !crate::token::tokens_match(given, ui.api.admin_token.expose()) {
        tracing::debug!("dashboard: a login with a wrong token");
        return login_page(ui, Some("That is not the admin token."), StatusCode::UNAUTHORIZED);
    }
    match ui.sessions.create() {
        Some((_, cookie)) => redirect("/ui/", Some(&cookie)),
        None => {
            message(StatusCode::SERVICE_UNAVAILABLE, "No session", "no randomness for a session id")
        }
    }
}

/// The login page, with an error if any, and a fresh CSRF token in its
/// form and in a cookie.
fn login_page(ui: &UiState, error: Option<&str>, status: StatusCode) -> Response {
    let Some((csrf, cookie)) = ui.sessions.login_token() else {
        return message(StatusCode::SERVICE_UNAVAILABLE, "No login", "no randomness for a token");
    };
    let content = html! {
        div.login {
            h1 { "Log in" }
            @if let Some(e) = error { div.flash.error role="alert" #login-error { (e) } }
            form method="post" action="/ui/login" {
                input type="hidden" name="csrf" value=(csrf);
                // For password managers and accessibility: the token has no user.
                input type="text" name="username" value="admin" autocomplete="username" hidden;
                label for="token" { "Admin token" }
                input #token type="password" name="token" required autocomplete="current-password";
                p.muted.small { "The server's admin_token; by default the file data_dir/admin_token." }
                button.primary #login type="submit" { "Log in" }
            }
        }
    };
    let mut r = html_response(status, page("Log in", "", None, content));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// A page with a title and a message, at `status`.
fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let content =
        html! { h1 { (title) } p #message { (text) } p { a href="/ui/" { "Back to the jobs" } } };
    html_response(status, page(title, "", None, content))
}

/// A 405 page with `Allow: allow` (the path's methods, as the API's 405s
/// have them).
fn method_not_allowed(allow: &'static str) -> Response {
    let mut r =
        message(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed", &format!("use {allow}"));
    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not found", "there is no such page, job or run")
}
