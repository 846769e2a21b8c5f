//! Checking a configuration's values beyond their types: what serde accepts
//! but the server cannot use.
//!
//! A database URL it cannot open, an empty directory or token, a log filter
//! that does not parse (or names no level where it means one), a `lease` under 1 s, out-of-range health settings,
//! a `[telemetry]` endpoint that is no HTTP URL or a ratio out of 0..=1;
//! for every job, built-in or of your own, a schedule or time zone that
//! does not parse, a zero timeout, attempt count or `max_concurrent`, an
//! invalid retry policy, `run_all` without runs
//! ([`CommonSettings::check`](super::CommonSettings::check)); then each
//! job's own options ([`JobOptions::check`](super::JobOptions::check)). An error names the key
//! and, through `origin`, where its value came from.

use super::{Config, ConfigError, check_env_name, is_postgres_url, is_server_variable};
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
        if let Err(e) = crate::logging::parse_filter(&self.log_level) {
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
        for (key, d) in [("claim_standby", self.claim_standby), ("claim_ahead", self.claim_ahead)] {
            if d >= self.lease {
                return Err(bad(
                    key,
                    format!(
                        "must be less than lease ({}), got \"{}\"",
                        humantime::format_duration(self.lease),
                        humantime::format_duration(d)
                    ),
                ));
            }
        }
        if self.ui.session_ttl < std::time::Duration::from_secs(60) {
            return Err(bad(
                "ui.session_ttl",
                format!(
                    "must be at least 1m, got \"{}\"",
                    humantime::format_duration(self.ui.session_ttl)
                ),
            ));
        }
        for name in &self.api.allow_env {
            check_env_name(name).map_err(|e| bad("api.allow_env", e))?;
            if is_server_variable(name) {
                return Err(bad(
                    "api.allow_env",
                    format!(
                        "{name} is one of the server's own settings (MSCRIBE_*), never readable by a job defined at run time"
                    ),
                ));
            }
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
        if let Err((k, reason)) = self.telemetry.check() {
            return Err(bad(&format!("telemetry.{k}"), reason));
        }
        for job in self.jobs.all() {
            if let Err((k, reason)) = job.common.check() {
                return Err(bad(&format!("jobs.{}.{k}", job.id), reason));
            }
        }
        // Each job's own options, after every job's scheduling settings.
        for job in JOBS {
            if let Err((k, reason)) = job.check(&self.jobs) {
                return Err(bad(&format!("jobs.{}.{k}", job.id), reason));
            }
        }
        // The jobs of your own check themselves (as they would from the
        // API): their schedule is required, their options are checked.
        for (id, def) in &self.jobs.user {
            if let Err(e) = def.check() {
                let key = if e.key.is_empty() {
                    format!("jobs.{id}")
                } else {
                    format!("jobs.{id}.{}", e.key)
                };
                return Err(bad(&key, e.reason));
            }
        }
        // A job an alert names is one of the configuration (built-in or of
        // your own); jobs defined through the API cannot be known here.
        let known_job = |id: &str| self.jobs.get(id).is_some();
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
