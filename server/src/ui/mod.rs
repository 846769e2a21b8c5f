//! The web dashboard at `/ui` (`GET /` redirects there): server-rendered
//! HTML (maud) with a little plain JavaScript, every asset in the binary.
//! A login with the admin token opens a session (see `session.rs`); pages
//! read through the same handlers as the JSON API
//! (`http::internal`), and forms act through them too.
//!
//! Files: `session.rs` (sessions, cookie, CSRF), `layout.rs` (the frame,
//! security headers, shared pieces), `assets.rs` (the embedded stylesheet
//! and script), `describe.rs` (schedules in words), `jobs.rs` (the jobs
//! and job pages), `run.rs` (the run page), `lists.rs` (audit, alerts,
//! health), `routes.rs` (the paths, the forms, the login).

mod assets;
mod describe;
mod jobs;
mod layout;
mod lists;
mod routes;
mod run;
mod session;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use mscribe_storage::JobDefinition;
use serde_json::Value;
use warp::http::{Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::config::UiConfig;
use crate::http::ServerState;
use crate::http::internal::{self, CallError};
use session::Sessions;

/// What the dashboard needs: the API's state and the sessions.
#[derive(Debug)]
pub(crate) struct UiState {
    api: Arc<ServerState>,
    sessions: Sessions,
}

impl UiState {
    /// `GET path?query` of the API: its JSON, or its error.
    async fn get(&self, path: &str, query: &str) -> Result<Value, CallError> {
        internal::call(&self.api, Method::GET, path, query, None).await.map(|(_, v)| v)
    }

    /// `method path` of the API with a JSON body: its status and JSON, or
    /// its error.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), CallError> {
        internal::call(&self.api, method, path, "", body).await
    }

    /// The time now, on the control plane's clock when there is one.
    fn now(&self) -> DateTime<Utc> {
        self.api.control.as_ref().map_or_else(Utc::now, |c| c.now())
    }

    /// The stored job definitions, by id (none when the store does not
    /// answer: the pages then show less about each job).
    async fn definitions(&self) -> HashMap<String, JobDefinition> {
        let Some(c) = &self.api.control else { return HashMap::new() };
        match c.definitions().await {
            Ok(defs) => defs.into_iter().map(|d| (d.job_id.clone(), d)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "dashboard: could not read the job definitions");
                HashMap::new()
            }
        }
    }
}

/// What a job's definition kind is called on the pages: built-in,
/// command, http or code.
fn kind_label(def: Option<&JobDefinition>) -> &'static str {
    match def.map(|d| d.kind.as_str()) {
        Some(k) if k.starts_with("ops:") => "built-in",
        Some("command") => "command",
        Some("http") => "http",
        Some(_) => "code",
        None => "unknown",
    }
}

/// A query string as a map (the first of a key repeated wins; a bad
/// string is empty).
fn params(query: &str) -> HashMap<String, String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let mut map = HashMap::new();
    for (k, v) in pairs {
        map.entry(k).or_insert(v);
    }
    map
}

/// Whether `path` is the dashboard's: `/`, `/ui` and what is under `/ui/`.
fn is_ui_path(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

/// The dashboard's routes when `config.enabled`: answers its paths and
/// rejects every other (and every path when disabled), so that the API's
/// routes answer them.
fn dashboard(
    api: Arc<ServerState>,
    config: &UiConfig,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    let enabled = config.enabled;
    let state = Arc::new(UiState {
        api,
        sessions: Sessions::new(config.session_ttl, config.secure_cookie),
    });
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::path::full()
        .and_then(move |p: warp::path::FullPath| async move {
            if enabled && is_ui_path(p.as_str()) {
                Ok(p)
            } else {
                Err(warp::reject::not_found())
            }
        })
        .and(warp::method())
        .and(raw_query)
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and(warp::any().map(move || state.clone()))
        .then(|path: warp::path::FullPath, method, query, headers, body, state: Arc<UiState>| async move {
            routes::handle(&state, method, path.as_str(), query, headers, body).await
        })
}

/// The API's routes with the dashboard's in front of them (when
/// `config.enabled`): what `mscribe serve` serves.
pub fn with_api(
    api: Arc<ServerState>,
    config: UiConfig,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    dashboard(api.clone(), &config).or(crate::http::routes(api)).unify()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_s_paths() {
        for p in ["/", "/ui", "/ui/", "/ui/jobs/a", "/ui/assets/app.js"] {
            assert!(is_ui_path(p), "{p}");
        }
        for p in ["/uix", "/jobs", "/health-check", "//ui", ""] {
            assert!(!is_ui_path(p), "{p}");
        }
    }
}
