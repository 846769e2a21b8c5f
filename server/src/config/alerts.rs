//! The alert settings: the `[alerts.<name>]` blocks (a webhook, its format,
//! the jobs and events it covers) and the per-job keys of `[jobs.<id>]`
//! that raise alerts (`expect_success_within`, `pause_after_failures`,
//! `failures_in_a_row`, `paused_too_long`), with their checks.
//!
//! ```
//! use mscribe_server::config::{AlertEvent, AlertFormat, Config};
//!
//! let cfg = Config::from_toml_str(
//!     r#"
//! [alerts.ops]
//! url = "https://hooks.example.com/T000/B000"
//! format = "slack"
//! events = ["failure", "overdue"]
//!
//! [jobs.database-backup]
//! expect_success_within = "26h"
//! "#,
//!     "inline.toml",
//!     |_| None,
//! )?;
//! let ops = &cfg.alerts["ops"];
//! assert_eq!(ops.format, AlertFormat::Slack);
//! assert!(ops.covers_event(AlertEvent::Overdue));
//! assert!(!ops.covers_event(AlertEvent::Recovered));
//! assert!(ops.covers_job("database-backup"));
//! # Ok::<(), mscribe_server::config::ConfigError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::{Secret, de};

/// The default `failures_in_a_row` of an alert.
pub const DEFAULT_FAILURES_IN_A_ROW: u32 = 3;

/// The default `paused_too_long` of an alert.
pub const DEFAULT_PAUSED_TOO_LONG: Duration = Duration::from_secs(86_400);

/// The default `timeout` of one delivery.
pub const DEFAULT_ALERT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default `max_attempts` of one delivery.
pub const DEFAULT_ALERT_ATTEMPTS: u32 = 10;

/// What an alert is sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    /// A run ended failed after its last attempt (`failed`, `timed_out`,
    /// `retries_exhausted`).
    Failure,
    /// A job's failed runs in a row reached `failures_in_a_row`.
    FailuresInARow,
    /// The first success after failed runs.
    Recovered,
    /// A fire skipped by the misfire policy, or one that could not be
    /// claimed.
    Missed,
    /// No success within the job's `expect_success_within`.
    Overdue,
    /// A job paused for longer than `paused_too_long`.
    PausedTooLong,
    /// A job paused by its `pause_after_failures`.
    AutoPaused,
}

impl AlertEvent {
    /// Every event, in the order the docs list them.
    pub const ALL: [AlertEvent; 7] = [
        AlertEvent::Failure,
        AlertEvent::FailuresInARow,
        AlertEvent::Recovered,
        AlertEvent::Missed,
        AlertEvent::Overdue,
        AlertEvent::PausedTooLong,
        AlertEvent::AutoPaused,
    ];

    /// The name in the config and in the payload.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Failure => "failure",
            AlertEvent::FailuresInARow => "failures_in_a_row",
            AlertEvent::Recovered => "recovered",
            AlertEvent::Missed => "missed",
            AlertEvent::Overdue => "overdue",
            AlertEvent::PausedTooLong => "paused_too_long",
            AlertEvent::AutoPaused => "auto_paused",
        }
    }
}

impl fmt::Display for AlertEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body an alert sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertFormat {
    /// A JSON object with the event's fields (`json`, the default).
    #[default]
    Json,
    /// Slack-compatible `{"text": "..."}` (`slack`; Mattermost, Rocket.Chat
    /// and Teams' incoming webhooks read it too).
    Slack,
}

/// One `[alerts.<name>]` block: a webhook and what it is sent for.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// The webhook, `http://` or `https://` (`url`); a secret (never logged).
    pub url: Secret,
    /// `json` (default) or `slack` (`format`).
    #[serde(default)]
    pub format: AlertFormat,
    /// The jobs covered (`jobs`); every job when unset.
    #[serde(default)]
    pub jobs: Option<Vec<String>>,
    /// The events sent (`events`); every event when unset.
    #[serde(default)]
    pub events: Option<Vec<AlertEvent>>,
    /// Extra request headers (`headers`), e.g. an `Authorization`; values
    /// are secrets (never logged).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Failed runs in a row that raise `failures_in_a_row` (default 3; a
    /// job's own `failures_in_a_row` wins).
    #[serde(default = "default_failures")]
    pub failures_in_a_row: u32,
    /// How long a job may stay paused before `paused_too_long` (default
    /// `24h`; a job's own `paused_too_long` wins).
    #[serde(default = "default_paused", deserialize_with = "de::duration")]
    pub paused_too_long: Duration,
    /// The timeout of one delivery attempt (`timeout`, default `10s`).
    #[serde(default = "default_timeout", deserialize_with = "de::duration")]
    pub timeout: Duration,
    /// Delivery attempts before giving up (`max_attempts`, default 10; the
    /// delay doubles from 1 s to at most 10 min between them).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_failures() -> u32 {
    DEFAULT_FAILURES_IN_A_ROW
}

fn default_paused() -> Duration {
    DEFAULT_PAUSED_TOO_LONG
}

fn default_timeout() -> Duration {
    DEFAULT_ALERT_TIMEOUT
}

fn default_attempts() -> u32 {
    DEFAULT_ALERT_ATTEMPTS
}

impl AlertConfig {
    /// Whether the alert covers `job`.
    pub fn covers_job(&self, job: &str) -> bool {
        self.jobs.as_ref().is_none_or(|j| j.iter().any(|x| x == job))
    }

    /// Whether the alert sends `event`.
    pub fn covers_event(&self, event: AlertEvent) -> bool {
        self.events.as_ref().is_none_or(|e| e.contains(&event))
    }

    /// Checks the values serde accepts but a webhook cannot use: an error
    /// is `(key, reason)`, the key relative to the block. `known_job` says
    /// whether a job id exists.
    pub fn check(&self, known_job: &dyn Fn(&str) -> bool) -> Result<(), (String, String)> {
        if let Err(reason) = check_url(self.url.expose()) {
            return Err(("url".to_owned(), reason));
        }
        if let Some(jobs) = &self.jobs {
            if jobs.is_empty() {
                return Err((
                    "jobs".to_owned(),
                    "must not be empty (leave it unset for every job)".to_owned(),
                ));
            }
            if let Some(j) = jobs.iter().find(|j| !known_job(j)) {
                return Err(("jobs".to_owned(), format!("unknown job \"{j}\"")));
            }
        }
        if self.events.as_ref().is_some_and(Vec::is_empty) {
            return Err((
                "events".to_owned(),
                "must not be empty (leave it unset for every event)".to_owned(),
            ));
        }
        for (name, value) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err((
                    format!("headers.{name}"),
                    format!("\"{name}\" is not a valid HTTP header name"),
                ));
            }
            if reqwest::header::HeaderValue::from_str(value.expose()).is_err() {
                return Err((
                    format!("headers.{name}"),
                    "is not a valid HTTP header value (control characters or non-ASCII)".to_owned(),
                ));
            }
        }
        if self.failures_in_a_row == 0 {
            return Err(("failures_in_a_row".to_owned(), "must be at least 1, got 0".to_owned()));
        }
        if self.paused_too_long.is_zero() {
            return Err(("paused_too_long".to_owned(), "must be greater than zero".to_owned()));
        }
        if self.timeout.is_zero() {
            return Err(("timeout".to_owned(), "must be greater than zero".to_owned()));
        }
        if self.max_attempts == 0 {
            return Err(("max_attempts".to_owned(), "must be at least 1, got 0".to_owned()));
        }
        Ok(())
    }
}

/// Checks a webhook URL: it parses, is `http` or `https`, and has a host.
/// The reason never quotes the URL (it may hold a token).
pub fn check_url(url: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("must be an http:// or https:// URL, got scheme \"{}\"", u.scheme()));
    }
    if !crate::http_client::names_a_host(url, &u) {
        return Err("the URL has no host (write http://HOST/PATH)".to_owned());
    }
    Ok(u)
}

/// The alert keys of a `[jobs.<id>]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobAlerting {
    /// Raise `overdue` when the job has no success for this long
    /// (`expect_success_within`, e.g. `"26h"`); no check when unset.
    pub expect_success_within: Option<Duration>,
    /// Pause the job through the control plane (with a note) and send
    /// `auto_paused` after this many failed runs in a row
    /// (`pause_after_failures`); never when unset.
    pub pause_after_failures: Option<u32>,
    /// Overrides the alerts' `failures_in_a_row` for this job.
    pub failures_in_a_row: Option<u32>,
    /// Overrides the alerts' `paused_too_long` for this job.
    pub paused_too_long: Option<Duration>,
}

impl JobAlerting {
    /// The keys, as `[jobs.<id>]` has them.
    pub const KEYS: [&'static str; 4] =
        ["expect_success_within", "pause_after_failures", "failures_in_a_row", "paused_too_long"];

    /// Sets `key` (one of [`KEYS`](Self::KEYS)) from its TOML value; the
    /// error is the reason, naming the value.
    pub(crate) fn set(&mut self, key: &str, value: toml::Value) -> Result<(), String> {
        let duration = |v: toml::Value| -> Result<Duration, String> {
            let d = de::duration(v).map_err(|e| e.message().to_owned())?;
            if d.is_zero() {
                return Err("must be greater than zero".to_owned());
            }
            Ok(d)
        };
        let count = |v: &toml::Value| -> Result<u32, String> {
            match v {
                toml::Value::Integer(n) => match u32::try_from(*n) {
                    Ok(n) if n >= 1 => Ok(n),
                    _ => Err(format!("must be an integer from 1 to {}, got {n}", u32::MAX)),
                },
                other => Err(format!(
                    "expected an integer of at least 1 (failed runs), got {} {other}",
                    other.type_str()
                )),
            }
        };
        match key {
            "expect_success_within" => self.expect_success_within = Some(duration(value)?),
            "pause_after_failures" => self.pause_after_failures = Some(count(&value)?),
            "failures_in_a_row" => self.failures_in_a_row = Some(count(&value)?),
            "paused_too_long" => self.paused_too_long = Some(duration(value)?),
            other => return Err(format!("unknown alert key `{other}`")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn err(text: &str) -> String {
        Config::from_toml_str(text, "mscribe.toml", |_| None).unwrap_err().to_string()
    }

    #[test]
    fn defaults_cover_every_job_and_event() {
        let c =
            Config::from_toml_str("[alerts.a]\nurl = \"http://127.0.0.1:9/x\"\n", "x", |_| None)
                .unwrap();
        let a = &c.alerts["a"];
        assert_eq!(a.format, AlertFormat::Json);
        assert!(AlertEvent::ALL.iter().all(|e| a.covers_event(*e)));
        assert!(a.covers_job("anything"));
        assert_eq!(
            (a.failures_in_a_row, a.paused_too_long, a.timeout, a.max_attempts),
            (3, DEFAULT_PAUSED_TOO_LONG, DEFAULT_ALERT_TIMEOUT, DEFAULT_ALERT_ATTEMPTS)
        );
        assert!(!format!("{a:?}").contains("127.0.0.1"), "the URL is a secret");
    }

    #[test]
    fn bad_alerts_name_the_key() {
        let ok = "url = \"https://hooks.example.com/x\"\n";
        let cases = [
            format!("[alerts.a]\n{ok}events = [\"failure\", \"explosion\"]"),
            "[alerts.a]\nurl = \"ftp://hooks.example.com/x\"".to_owned(),
            "[alerts.a]\nurl = \"not a url\"".to_owned(),
            "[alerts.a]\nurl = \"https://\"".to_owned(),
            "[alerts.a]\nurl = \"https:///hooks/x\"".to_owned(),
            format!("[alerts.a]\n{ok}format = \"teams\""),
            format!("[alerts.a]\n{ok}jobs = [\"database-backup\", \"nightly-report\"]"),
            format!("[alerts.a]\n{ok}jobs = []"),
            format!("[alerts.a]\n{ok}events = []"),
            format!("[alerts.a]\n{ok}headers = {{ \"bad header\" = \"x\" }}"),
            format!("[alerts.a]\n{ok}headers = {{ X-Token = \"a\\nb\" }}"),
            format!("[alerts.a]\n{ok}failures_in_a_row = 0"),
            format!("[alerts.a]\n{ok}max_attempts = 0"),
            format!("[alerts.a]\n{ok}timeout = \"0s\""),
            format!("[alerts.a]\n{ok}colour = \"red\""),
            "[alerts.a]\nformat = \"slack\"".to_owned(),
            "[jobs.database-backup]\nexpect_success_within = \"soon\"".to_owned(),
            "[jobs.database-backup]\nexpect_success_within = \"0s\"".to_owned(),
            "[jobs.database-backup]\npause_after_failures = 0".to_owned(),
            "[jobs.database-backup]\nfailures_in_a_row = \"3\"".to_owned(),
        ];
        let out: Vec<String> = cases.iter().map(|c| format!("{c}\n=> {}\n", err(c))).collect();
        insta::assert_snapshot!("alert_config_errors", out.join("\n"));
    }

    #[test]
    fn job_keys_are_read() {
        let c = Config::from_toml_str(
            "[jobs.database-backup]\nexpect_success_within = \"26h\"\npause_after_failures = 5\n\
             failures_in_a_row = 2\npaused_too_long = \"3d\"\n",
            "x",
            |_| None,
        )
        .unwrap();
        let a = c.jobs.common("database-backup").unwrap().alerting.clone();
        assert_eq!(
            a,
            JobAlerting {
                expect_success_within: Some(Duration::from_secs(26 * 3600)),
                pause_after_failures: Some(5),
                failures_in_a_row: Some(2),
                paused_too_long: Some(Duration::from_secs(3 * 86_400)),
            }
        );
        assert_eq!(c.jobs.common("log-rotation").unwrap().alerting, &JobAlerting::default());
    }
}
