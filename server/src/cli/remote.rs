//! The commands with `--url` (or `MSCRIBE_URL`): they ask a running server
//! through its HTTP API, with the admin token from `MSCRIBE_TOKEN`, else the
//! config's `admin_token`, else the token file (`data_dir/admin_token`).
//! An error of the server is printed with its JSON message: a 4xx exits 2
//! (the request was wrong), a 5xx or no answer exits 1.

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use mscribe_scheduler::ExecutionRecord;
use serde_json::{Value, json};

use super::local::{check_note, print_history};
use super::{AUDIT_HEADERS, AuditArgs, Cli, CliResult, Failure, HistoryArgs, load, out, table, ts};
use crate::http_client::{Url, parse_http_url, request_with_body};

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A server and the token to show it.
#[derive(Debug)]
pub(super) struct Server {
    base: Url,
    token: String,
}

impl Server {
    pub(super) fn new(cli: &Cli, url: &str) -> Result<Server, Failure> {
        let base = parse_http_url(url).map_err(|e| Failure::Usage(format!("--url: {e}")))?;
        if base.query().is_some() || base.fragment().is_some() {
            let shown = crate::config::redact_url(url);
            return Err(Failure::Usage(format!("--url \"{shown}\": leave out the query string")));
        }
        let token = match std::env::var("MSCRIBE_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
            Some(t) => t.trim().to_owned(),
            None => {
                let cfg = load(cli)?;
                match &cfg.admin_token {
                    Some(t) => t.expose().to_owned(),
                    None => {
                        let path = cfg.token_file();
                        let text = std::fs::read_to_string(&path).map_err(|e| {
                            Failure::Usage(format!(
                                "no admin token for {url}: set MSCRIBE_TOKEN, or admin_token in \
                                 the config, or make the token file {} readable ({e})",
                                path.display()
                            ))
                        })?;
                        let t = text.trim().to_owned();
                        if t.is_empty() {
                            return Err(Failure::Usage(format!(
                                "the token file {} is empty",
                                path.display()
                            )));
                        }
                        t
                    }
                }
            }
        };
        Ok(Server { base, token })
    }

    /// `path` (already encoded, with its query) under the base URL's path.
    fn url(&self, path: &str) -> Result<Url, Failure> {
        let text = format!("{}{path}", self.base.as_str().trim_end_matches('/'));
        Url::parse(&text).map_err(|e| Failure::Usage(format!("--url: \"{text}\": {e}")))
    }

    /// One request; the answer's JSON on a 2xx, else the failure naming
    /// the server's message.
    pub(super) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let url = self.url(path)?;
        let auth = format!("Bearer {}", self.token);
        let mut headers = vec![("authorization", auth.as_str()), ("accept", "application/json")];
        let body = body.map(|b| Bytes::from(b.to_string()));
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let resp = request_with_body(method, &url, &headers, body, TIMEOUT)
            .await
            .map_err(|e| Failure::Io(format!("{method} {url}: {e}")))?;
        let parsed: Option<Value> = serde_json::from_slice(&resp.body).ok();
        if (200..300).contains(&resp.status) {
            return parsed.ok_or_else(|| {
                Failure::Io(format!(
                    "{method} {url}: answered {} with a body that is not JSON",
                    resp.status
                ))
            });
        }
        let message = match parsed.as_ref().and_then(|v| v["error"].as_str()) {
            Some(m) => m.to_owned(),
            None => format!("(no JSON error) {}", String::from_utf8_lossy(&resp.body).trim()),
        };
        let text = format!("{method} {url}: {} {message}", resp.status);
        Err(if (400..500).contains(&resp.status) {
            Failure::Usage(text)
        } else {
            Failure::Io(text)
        })
    }
}

/// Percent-encodes a path segment (a job or execution id).
pub(super) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(super) fn print_json(v: &Value) {
    out!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub(super) async fn jobs(cli: &Cli, url: &str, as_json: bool) -> CliResult {
    let s = Server::new(cli, url)?;
    let v = s.call("GET", "/jobs", None).await?;
    if as_json {
        print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let time = |x: &Value| {
        x.as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let rows: Vec<Vec<String>> = v["jobs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|j| {
            vec![
                j["id"].as_str().unwrap_or("?").to_owned(),
                j["schedule"].as_str().unwrap_or(super::TRIGGER_ONLY).to_owned(),
                if j["paused"] == true { "paused".to_owned() } else { ts(time(&j["next_run"])) },
                ts(time(&j["last_run"])),
                j["last_status"].as_str().unwrap_or("-").to_owned(),
            ]
        })
        .collect();
    out!("{}", table(&["JOB", "SCHEDULE", "NEXT RUN", "LAST RUN", "LAST STATUS"], &rows));
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn history(cli: &Cli, url: &str, q: &HistoryArgs<'_>) -> CliResult {
    let s = Server::new(cli, url)?;
    let mut query = vec![("limit", q.limit.to_string())];
    if let Some(st) = q.status {
        query.push(("status", st.to_string()));
    }
    if let Some(c) = q.cursor {
        query.push(("cursor", c.to_owned()));
    }
    let qs = serde_urlencoded::to_string(&query).unwrap_or_default();
    let v = s.call("GET", &format!("/jobs/{}/executions?{qs}", segment(q.job)), None).await?;
    let rows: Vec<ExecutionRecord> = serde_json::from_value(v["executions"].clone())
        .map_err(|e| Failure::Io(format!("{url}: unexpected history answer: {e}")))?;
    let next = v["next_cursor"].as_str().map(str::to_owned);
    print_history(q, &rows, next);
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn trigger(cli: &Cli, url: &str, job: &str) -> CliResult {
    let s = Server::new(cli, url)?;
    print_json(&s.call("POST", &format!("/jobs/{}/trigger", segment(job)), None).await?);
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn pause(cli: &Cli, url: &str, job: &str, note: Option<&str>) -> CliResult {
    check_note(note)?;
    let s = Server::new(cli, url)?;
    let body = note.map(|n| json!({ "note": n }));
    print_json(&s.call("POST", &format!("/jobs/{}/pause", segment(job)), body).await?);
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn resume(cli: &Cli, url: &str, job: &str) -> CliResult {
    let s = Server::new(cli, url)?;
    print_json(&s.call("POST", &format!("/jobs/{}/resume", segment(job)), None).await?);
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn cancel(cli: &Cli, url: &str, execution_id: &str) -> CliResult {
    let s = Server::new(cli, url)?;
    let path = format!("/executions/{}/cancel", segment(execution_id));
    print_json(&s.call("POST", &path, None).await?);
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn audit(cli: &Cli, url: &str, q: &AuditArgs<'_>) -> CliResult {
    let s = Server::new(cli, url)?;
    let mut query = vec![("limit", q.limit.to_string())];
    if let Some(j) = q.job {
        query.push(("job", j.to_owned()));
    }
    if let Some(b) = q.before {
        query.push(("before", b.to_string()));
    }
    let qs = serde_urlencoded::to_string(&query).unwrap_or_default();
    let v = s.call("GET", &format!("/audit?{qs}"), None).await?;
    if q.json {
        print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let rows = v["entries"].as_array().map(Vec::as_slice).unwrap_or_default();
    if rows.is_empty() {
        out!("no audit entries");
        return Ok(ExitCode::SUCCESS);
    }
    let text = |x: &Value| match x {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let target = if r["job_id"].is_null() { &r["execution_id"] } else { &r["job_id"] };
            vec![
                text(&r["id"]),
                text(&r["at"]),
                text(&r["action"]),
                text(target),
                text(&r["source"]),
                text(&r["instance_id"]),
                r["note"].as_str().unwrap_or_default().to_owned(),
            ]
        })
        .collect();
    out!("{}", table(&AUDIT_HEADERS, &cells));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("database-backup"), "database-backup");
        assert_eq!(segment("a b/c%"), "a%20b%2Fc%25");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
