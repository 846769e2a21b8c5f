//! Reloading the configuration while the server runs (SIGHUP): the file is
//! checked as `serve` checks it, then the jobs and alerts it defines are
//! applied; every other setting takes effect at the next restart.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use mscribe_scheduler::{JobScheduler, Phase};
use serde::Serialize;

use crate::alerts::{self, AlertService};
use crate::config::{Config, ConfigError};
use crate::control::{ControlPlane, ops_definitions};
use crate::ops::OpsContext;

/// What a reload changed, and what it left for a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReloadReport {
    /// Jobs the new configuration adds, now registered.
    pub added: Vec<String>,
    /// Jobs it no longer has, now unregistered (a run in progress is
    /// stopped and recorded `cancelled`; the history stays).
    pub removed: Vec<String>,
    /// Jobs whose section changed, registered again with it (a run in
    /// progress is stopped and recorded `cancelled`).
    pub changed: Vec<String>,
    /// Jobs left as they were.
    pub unchanged: usize,
    /// Whether the `[alerts.<name>]` blocks, or the alert keys of a job in
    /// both configurations, changed (a job whose section changed only in
    /// its alert keys is unchanged: not registered again, its run goes on).
    pub alerts_changed: bool,
    /// Jobs that could not be registered, with the scheduler's error.
    pub failed: Vec<(String, String)>,
    /// Settings that differ from the running ones and take effect only at
    /// the next restart (`listen`, `database_url`, `[health]`, ...).
    pub needs_restart: Vec<&'static str>,
}

impl ReloadReport {
    /// Whether anything was applied.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && !self.alerts_changed
            && self.failed.is_empty()
    }
}

/// `2 added (a, b)`, or nothing for an empty list.
fn part(out: &mut Vec<String>, what: &str, ids: &[String]) {
    if !ids.is_empty() {
        out.push(format!("{} {what} ({})", ids.len(), ids.join(", ")));
    }
}

impl fmt::Display for ReloadReport {
    /// One line: `jobs: 1 added (x), 1 changed (y); 7 unchanged; alerts
    /// changed; needs a restart: listen`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut jobs = Vec::new();
        part(&mut jobs, "added", &self.added);
        part(&mut jobs, "changed", &self.changed);
        part(&mut jobs, "removed", &self.removed);
        let failed: Vec<String> = self.failed.iter().map(|(id, _)| id.clone()).collect();
        part(&mut jobs, "failed", &failed);
        if jobs.is_empty() {
            write!(f, "jobs: no change, {} unchanged", self.unchanged)?;
        } else {
            write!(f, "jobs: {}; {} unchanged", jobs.join(", "), self.unchanged)?;
        }
        if self.alerts_changed {
            write!(f, "; alerts changed")?;
        }
        if !self.needs_restart.is_empty() {
            write!(f, "; not applied until a restart: {}", self.needs_restart.join(", "))?;
        }
        Ok(())
    }
}

/// The names of the settings that differ between `old` and `new` and
/// that only a restart applies: everything but `[jobs.*]` and `[alerts.*]`.
/// The pattern names every field, so that a new setting does not compile
/// until it is sorted here.
fn restart_settings(old: &Config, new: &Config) -> Vec<&'static str> {
    let Config {
        listen,
        database_url,
        admin_token,
        data_dir,
        log_dir,
        backup_dir,
        shutdown_grace,
        max_body_bytes,
        log_level,
        log_format,
        log_to_file,
        claim_fires,
        lease,
        claim_standby,
        claim_ahead,
        health,
        api,
        ui,
        telemetry,
        jobs: _,
        alerts: _,
        source: _,
        unknown_env: _,
    } = old;
    let mut out = Vec::new();
    macro_rules! check {
        ($($field:ident => $name:literal),* $(,)?) => {
            $(if *$field != new.$field { out.push($name); })*
        };
    }
    check!(
        listen => "listen",
        database_url => "database_url",
        admin_token => "admin_token",
        data_dir => "data_dir",
        log_dir => "log_dir",
        backup_dir => "backup_dir",
        shutdown_grace => "shutdown_grace",
        max_body_bytes => "max_body_bytes",
        log_level => "log_level",
        log_format => "log_format",
        log_to_file => "log_to_file",
        claim_fires => "claim_fires",
        lease => "lease",
        claim_standby => "claim_standby",
        claim_ahead => "claim_ahead",
        health => "[health]",
        api => "[api]",
        ui => "[ui]",
        telemetry => "[telemetry]",
    );
    out
}

/// Whether a job of both `old` and `new` has other alert keys in `new`.
fn alert_keys_changed(old: &Config, new: &Config) -> bool {
    let before = alerts::job_alerting(old);
    alerts::job_alerting(new).iter().any(|(id, keys)| before.get(id).is_some_and(|was| was != keys))
}

/// How the jobs of `new` differ from those of `old`: (added, removed,
/// changed, unchanged), each in the order [`JobsConfig::all`] lists them;
/// a job whose section differs only in its alert keys is unchanged.
///
/// [`JobsConfig::all`]: crate::config::JobsConfig::all
fn job_changes(old: &Config, new: &Config) -> (Vec<String>, Vec<String>, Vec<String>, usize) {
    let (mut added, mut changed, mut unchanged) = (Vec::new(), Vec::new(), 0);
    // Compared without their alert keys, which are in force for the next
    // record without registering the job again (its run goes on).
    let (old_jobs, new_jobs) = (old.jobs.without_alert_keys(), new.jobs.without_alert_keys());
    for id in new.jobs.ids() {
        if old.jobs.get(&id).is_none() {
            added.push(id);
        } else if old_jobs.same_job(&new_jobs, &id) {
            unchanged += 1;
        } else {
            changed.push(id);
        }
    }
    let removed = old.jobs.ids().into_iter().filter(|id| new.jobs.get(id).is_none()).collect();
    (added, removed, changed, unchanged)
}

/// Applies reloaded configurations to a running server: see
/// [`reload`](Self::reload). Cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    inner: Arc<Inner>,
}

struct Inner {
    /// The configuration in force: the start's, with the jobs and alerts of
    /// the last reload.
    current: Mutex<Arc<Config>>,
    /// What the jobs are built with (its `config` replaced at each reload).
    ctx: OpsContext,
    scheduler: JobScheduler,
    control: ControlPlane,
    alerts: AlertService,
    /// One reload at a time.
    busy: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Reloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloader").field("source", &self.config().source).finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader over the parts of a built server; `ctx.config` is the
    /// configuration in force.
    pub(crate) fn new(
        ctx: OpsContext,
        scheduler: JobScheduler,
        control: ControlPlane,
        alerts: AlertService,
    ) -> Self {
        Reloader {
            inner: Arc::new(Inner {
                current: Mutex::new(ctx.config.clone()),
                ctx,
                scheduler,
                control,
                alerts,
                busy: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.inner.current.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Reads the configuration again, from the file the server started with
    /// (or, if it started without one, from `$MSCRIBE_CONFIG` or
    /// `./mscribe.toml`) and the environment, checked as `serve` checks it,
    /// and [`apply`](Self::apply)s it. An invalid file changes nothing: the
    /// error is returned, naming the file, the key and the reason.
    pub async fn reload(&self) -> Result<ReloadReport, ConfigError> {
        let source = self.config().source.clone();
        let new = Config::load(source.as_deref())?;
        Ok(self.apply(new).await)
    }

    /// [`reload`](Self::reload), logged: the summary at INFO (one line, or
    /// one JSON object), each setting left for a restart at WARN, an error
    /// at ERROR with the running configuration kept.
    pub async fn reload_logged(&self) {
        if self.inner.scheduler.phase() != Phase::Running {
            tracing::warn!("configuration not reloaded: the server is not running");
            return;
        }
        match self.reload().await {
            Ok(report) => {
                for (id, error) in &report.failed {
                    tracing::error!(job_id = %id, error = %error, "reload: could not register the job");
                }
                if !report.needs_restart.is_empty() {
                    tracing::warn!(
                        settings = %report.needs_restart.join(", "),
                        "reload: these settings changed and take effect at the next restart"
                    );
                }
                tracing::info!(
                    added = report.added.len(),
                    changed = report.changed.len(),
                    removed = report.removed.len(),
                    unchanged = report.unchanged,
                    alerts_changed = report.alerts_changed,
                    "configuration reloaded: {report}"
                );
            }
            Err(e) => tracing::error!(
                error = %e,
                "configuration not reloaded; the running configuration stays"
            ),
        }
    }

    /// Applies the jobs and alerts of `new`, a checked configuration: jobs
    /// it adds are registered, jobs it removes unregistered, jobs whose
    /// section changed registered again; the cluster's stored state
    /// (definitions, pauses) then applies to them as at a start. The other
    /// settings stay as they are and are listed in
    /// [`needs_restart`](ReloadReport::needs_restart).
    pub async fn apply(&self, new: Config) -> ReloadReport {
        let _one = self.inner.busy.lock().await;
        let old = self.config();
        let (added, removed, changed, unchanged) = job_changes(&old, &new);
        let mut report = ReloadReport {
            alerts_changed: old.alerts != new.alerts || alert_keys_changed(&old, &new),
            needs_restart: restart_settings(&old, &new),
            unchanged,
            ..ReloadReport::default()
        };
        // The running settings, with the new jobs and alerts.
        let mut next = (*old).clone();
        next.jobs = new.jobs;
        next.alerts = new.alerts;
        next.unknown_env = new.unknown_env;
        let next = Arc::new(next);
        let ctx = OpsContext { config: next.clone(), ..self.inner.ctx.clone() };
        let (scheduler, control) = (&self.inner.scheduler, &self.inner.control);
        for id in removed.iter().chain(&changed) {
            let _ = scheduler.unregister(id);
            control.forget_configured(id, changed.contains(id));
        }
        for id in &added {
            control.forget_configured(id, true);
        }
        for id in added.iter().chain(&changed) {
            let Some(job) = next.jobs.get(id) else { continue };
            let Some(cfg) = job.kind.job_config(&ctx, id) else { continue };
            match scheduler.register(cfg) {
                Ok(()) if added.contains(id) => report.added.push(id.clone()),
                Ok(()) => report.changed.push(id.clone()),
                Err(e) => report.failed.push((id.clone(), e.to_string())),
            }
        }
        report.removed = removed;
        let wanted = alerts::wanted(&next) || control.defined_pause_after_failures();
        self.inner.alerts.reconfigure(next.alerts.clone(), alerts::job_alerting(&next));
        self.inner.alerts.set_observing(wanted);
        if wanted {
            self.inner.alerts.spawn();
        }
        *self.inner.current.lock().unwrap_or_else(PoisonError::into_inner) = next.clone();
        if !report.is_empty() {
            // The definitions, and the stored pauses of the jobs new here.
            if let Err(e) = control.prepare(ops_definitions(&next)).await {
                tracing::warn!(error = %e, "reload: could not apply the cluster's state to the reloaded jobs; the next round does");
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        Config::from_toml_str(text, "test.toml", |_| None).unwrap()
    }

    #[test]
    fn jobs_are_compared_by_their_whole_section() {
        let old = cfg(r#"
[jobs.ping]
kind = "http"
schedule = "@every 1m"
url = "http://127.0.0.1:9/a"
headers = { Authorization = "Bearer one" }

[jobs.gone]
kind = "http"
schedule = "@every 1m"
url = "http://127.0.0.1:9/b"
"#);
        let new = cfg(r#"
[jobs.ping]
kind = "http"
schedule = "@every 1m"
url = "http://127.0.0.1:9/a"
headers = { Authorization = "Bearer two" }

[jobs.new]
kind = "http"
schedule = "@every 1m"
url = "http://127.0.0.1:9/c"

[jobs.database-backup]
keep = 3
"#);
        let (added, removed, changed, unchanged) = job_changes(&old, &new);
        assert_eq!(added, ["new"]);
        assert_eq!(removed, ["gone"]);
        // A secret header counts, though it is never shown.
        assert_eq!(changed, ["database-backup", "ping"]);
        assert_eq!(unchanged, 6);
        assert!(restart_settings(&old, &new).is_empty());
    }

    #[test]
    fn other_settings_are_listed_for_a_restart() {
        let old = cfg("");
        let new = cfg("listen = \"127.0.0.1:9999\"\n[health]\nttl = \"5s\"\n");
        assert_eq!(restart_settings(&old, &new), ["listen", "[health]"]);
    }

    #[test]
    fn the_summary_is_one_readable_line() {
        let r = ReloadReport {
            added: vec!["a".into(), "b".into()],
            changed: vec!["c".into()],
            unchanged: 7,
            alerts_changed: true,
            needs_restart: vec!["listen"],
            ..ReloadReport::default()
        };
        assert_eq!(
            r.to_string(),
            "jobs: 2 added (a, b), 1 changed (c); 7 unchanged; alerts changed; not applied until a restart: listen"
        );
        assert_eq!(
            ReloadReport { unchanged: 7, ..ReloadReport::default() }.to_string(),
            "jobs: no change, 7 unchanged"
        );
    }
}
