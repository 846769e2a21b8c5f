//! Checking a configuration's values beyond their types: what serde accepts
//! but the server cannot use.
//!
//! A database URL it cannot open, an empty directory or token, a log filter
//! that does not parse, a `lease` under 1 s, out-of-range health settings;
//! for every job (from the table of jobs) a schedule or time zone that does
//! not parse, a zero timeout, attempt count or `max_concurrent`, an invalid
//! retry policy, `run_all` without runs; then each job's own options
//! ([`JobOptions::check`](super::JobOptions::check)). An error names the key
//! and, through `origin`, where its value came from.

use mscribe_scheduler::Schedule;

use super::{Config, ConfigError, MisfireModeName, is_postgres_url};
use crate::ops::JOBS;

impl Config {
    /// Checks the values; `origin` names where the value of a dotted key
    /// came from.
    pub(super) fn validate(&self, origin: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::Invalid {
            origin: origin(key),
            key: key.to_owned(),
            reason,
        };
        if is_postgres_url(&self.database_url) {
            if self.database_url.split("://").nth(1).is_none_or(str::is_empty) {
                return Err(bad("database_url", "a postgres URL needs a host".to_owned()));
            }
        } else if let Err(e) = mscribe_storage::SqliteOptions::from_url(&self.database_url) {
            return Err(bad(
                "database_url",
                format!("{e}; expected sqlite://PATH, sqlite::memory: or postgres://USER@HOST/DB"),
            ));
        }
        if let Some(t) = &self.admin_token
            && t.expose().trim().is_empty()
        {
            return Err(bad(
                "admin_token",
                "must not be empty (leave it unset to generate one)".to_owned(),
            ));
        }
        for (key, p) in [
            ("data_dir", &self.data_dir),
            ("log_dir", &self.log_dir),
            ("backup_dir", &self.backup_dir),
        ] {
            if p.as_os_str().is_empty() {
                return Err(bad(key, "must not be empty".to_owned()));
            }
        }
        if let Err(e) = self.log_level.parse::<tracing_subscriber::filter::Targets>() {
            return Err(bad(
                "log_level",
                format!("invalid log filter \"{}\": {e}", self.log_level),
            ));
        }
        if self.lease < super::MIN_LEASE {
            return Err(bad(
                "lease",
                format!(
                    "must be at least {}, got \"{}\"",
                    humantime::format_duration(super::MIN_LEASE),
                    humantime::format_duration(self.lease)
                ),
            ));
        }
        let h = &self.health;
        if h.probe_timeout.is_zero() {
            return Err(bad("health.probe_timeout", "must be greater than zero".to_owned()));
        }
        if !(0.0..=100.0).contains(&h.min_free_percent) || h.min_free_percent.is_nan() {
            return Err(bad(
                "health.min_free_percent",
                format!("must be between 0 and 100, got {}", h.min_free_percent),
            ));
        }
        if let Some(url) = &h.auth_url
            && let Err(reason) = crate::http_client::parse_http_url(url)
        {
            return Err(bad("health.auth_url", reason));
        }
        for job in JOBS {
            let c = job.common(&self.jobs);
            let key = |k: &str| format!("jobs.{}.{k}", job.id);
            if let Err(e) = Schedule::parse(c.schedule) {
                return Err(bad(&key("schedule"), e.to_string()));
            }
            if let Err(e) = c.parsed_schedule() {
                return Err(bad(&key("timezone"), e.to_string()));
            }
            if c.timeout.is_zero() {
                return Err(bad(&key("timeout"), "must be greater than zero".to_owned()));
            }
            if c.max_concurrent == Some(0) {
                return Err(bad(&key("max_concurrent"), "must be at least 1, got 0".to_owned()));
            }
            if c.retry.attempts == 0 {
                return Err(bad(
                    &key("retry.attempts"),
                    "must be at least 1 (1 means no retry)".to_owned(),
                ));
            }
            if let Err(e) = c.retry.policy().validate() {
                return Err(bad(&key("retry"), e));
            }
            if c.misfire.mode == MisfireModeName::RunAll && c.misfire.max_runs == 0 {
                return Err(bad(
                    &key("misfire.max_runs"),
                    "must be at least 1 for run_all".to_owned(),
                ));
            }
        }
        // Each job's own options, after every job's scheduling settings.
        for job in JOBS {
            if let Err((k, reason)) = job.check(&self.jobs) {
                return Err(bad(&format!("jobs.{}.{k}", job.id), reason));
            }
        }
        let known_job = |id: &str| JOBS.iter().any(|j| j.id == id);
        for (name, alert) in &self.alerts {
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(bad(
                    &format!("alerts.{name}"),
                    format!(
                        "alert name \"{name}\" must be letters, digits, '-' or '_' (it keys the outbox)"
                    ),
                ));
            }
            if let Err((k, reason)) = alert.check(&known_job) {
                return Err(bad(&format!("alerts.{name}.{k}"), reason));
            }
        }
        Ok(())
    }
}
