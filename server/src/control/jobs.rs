//! Jobs defined through the API or the CLI (`PUT /jobs/{id}`,
//! `mscribe job apply`): checked by the configuration's own code
//! ([`UserJobDef`]), stored as definitions (source `api` or `cli`, the
//! definition as given under [`DEFINITION_KEY`]), registered on every
//! instance by the sync loop and at start, and removed everywhere on delete.
//! A job of the configuration (or of code) is never replaced or deleted
//! this way.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use mscribe_storage::{AuditAction, AuditEntry, JobDefinition, Source};
use serde::Serialize;
use serde_json::{Value, json};

use super::{ControlError, ControlPlane, defs};
use crate::config::{JobAlerting, UserJobDef, check_allowed_env};
use crate::ops::defs::user_job_config;

/// The key of a stored definition's policies that holds the definition as
/// it was given (a JSON object of the job's keys).
pub const DEFINITION_KEY: &str = "definition";

/// What [`ControlPlane::define_job`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefineReceipt {
    /// The job.
    pub job_id: String,
    /// `command` or `http`.
    pub kind: String,
    /// Its schedule.
    pub schedule: String,
    /// Where the definition came from (`api` or `cli`).
    pub source: Source,
    /// Whether the job is new (`false`: it replaced the definition of the
    /// same id).
    pub created: bool,
    /// When it was stored.
    pub updated_at: DateTime<Utc>,
}

/// The stored row of job `id` defined as `def` (given as `body`) through
/// `source` by `instance` at `now`, and its audit row; `existed`: it
/// replaces an earlier definition.
pub fn definition_row(
    id: &str,
    def: &UserJobDef,
    body: Value,
    source: Source,
    instance: &str,
    now: DateTime<Utc>,
    existed: bool,
) -> (JobDefinition, AuditEntry) {
    let (common, kind) = (def.common(), def.kind());
    // To the microsecond, as the stores keep it: the sync loop compares
    // the stored `updated_at` with the one applied here.
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let mut policies = defs::policies(kind, &common);
    policies[DEFINITION_KEY] = body;
    let row = JobDefinition {
        job_id: id.to_owned(),
        name: id.to_owned(),
        schedule: Some(common.schedule.to_owned()),
        timezone: common.timezone.map(str::to_owned),
        kind: kind.id.to_owned(),
        policies,
        source: source.clone(),
        registered_by: instance.to_owned(),
        updated_at: now,
    };
    let audit = AuditEntry {
        at: now,
        action: AuditAction::Define,
        job_id: Some(id.to_owned()),
        execution_id: None,
        note: Some(format!(
            "{} {} job, schedule \"{}\"",
            if existed { "redefined as a" } else { "defined as a" },
            kind.id,
            common.schedule
        )),
        source,
        instance_id: instance.to_owned(),
        detail: Some(json!({ "kind": kind.id, "created": !existed })),
    };
    (row, audit)
}

/// The audit row of deleting job `id` through `source` by `instance`.
pub fn deletion_audit(id: &str, source: Source, instance: &str, now: DateTime<Utc>) -> AuditEntry {
    AuditEntry {
        at: now,
        action: AuditAction::Delete,
        job_id: Some(id.to_owned()),
        execution_id: None,
        note: None,
        source,
        instance_id: instance.to_owned(),
        detail: None,
    }
}

/// Whether a stored definition was made through the API or the CLI.
pub fn is_defined_here(d: &JobDefinition) -> bool {
    matches!(d.source, Source::Api | Source::Cli)
}

/// Parses the definition a stored row holds (one defined through the API
/// or the CLI, [`is_defined_here`]); the error says what is wrong with it.
pub fn stored_definition(d: &JobDefinition) -> Result<UserJobDef, String> {
    let body = d.policies.get(DEFINITION_KEY).cloned().ok_or("no definition stored")?;
    UserJobDef::from_json(&d.job_id, body).map_err(|e| e.to_string())
}

/// Whether this instance runs the stored definition `def` of job `id`: its
/// operator chooses whether it runs programs defined at run time
/// (`allow_command_jobs`), and which environment variables they may read
/// (`allow_env`), whoever stored the definition. The error says why not.
pub fn runs_here(
    id: &str,
    def: &UserJobDef,
    allow_command_jobs: bool,
    allow_env: &[String],
) -> Result<(), String> {
    if def.kind().id == "command" && !allow_command_jobs {
        return Err(format!(
            "{id} is a command job defined through the API or the CLI; this configuration does \
             not set [api] allow_command_jobs = true, so it runs no such program"
        ));
    }
    check_allowed_env(def, allow_env).map_err(|e| format!("{id}: {e}"))
}

impl ControlPlane {
    /// Lets [`define_job`](Self::define_job) accept jobs of kind `command`
    /// (`[api] allow_command_jobs`); refused by default.
    pub fn allow_command_jobs(&self, allow: bool) {
        self.inner.allow_command_jobs.store(allow, Ordering::Relaxed);
    }

    /// Checks a definition of job `id` as the API takes it (a JSON object
    /// of the keys of a `[jobs.<id>]` section, `kind` included) and returns
    /// it parsed: the configuration's checks and messages, then the
    /// API's own rules (no job of the configuration or code replaced; no
    /// `command` job unless allowed).
    pub fn check_definition(&self, id: &str, body: &Value) -> Result<UserJobDef, ControlError> {
        self.check_replaceable(id)?;
        let def = UserJobDef::from_json(id, body.clone()).map_err(|e| {
            ControlError::InvalidDefinition { key: e.key.clone(), reason: e.reason.clone() }
        })?;
        if def.kind().id == "command" && !self.inner.allow_command_jobs.load(Ordering::Relaxed) {
            return Err(ControlError::CommandJobsRefused);
        }
        check_allowed_env(&def, &self.allowed_env()).map_err(|e| {
            ControlError::InvalidDefinition { key: e.key.clone(), reason: e.reason.clone() }
        })?;
        Ok(def)
    }

    /// Sets the environment variables a job defined through the API or the
    /// CLI may read (`[api] allow_env`); none by default.
    pub fn allow_env(&self, names: Vec<String>) {
        *self.inner.allow_env.lock().expect("allow_env lock") = names;
    }

    fn allowed_env(&self) -> Vec<String> {
        self.inner.allow_env.lock().expect("allow_env lock").clone()
    }

    /// Refuses to touch a job this instance has from its configuration or
    /// code.
    fn check_replaceable(&self, id: &str) -> Result<(), ControlError> {
        let ours = self.local().defined.contains_key(id);
        if self.inner.scheduler.job(id).is_some() && !ours {
            return Err(ControlError::ConfiguredJob(id.to_owned()));
        }
        Ok(())
    }

    /// Defines job `id` for the whole cluster, or replaces its earlier
    /// definition: checked ([`check_definition`](Self::check_definition)),
    /// stored with its audit row, registered here at once and on the other
    /// instances at their next round (within 1 s). Replacing a job stops
    /// its run in progress, if any (recorded `cancelled`).
    pub async fn define_job(
        &self,
        id: &str,
        body: Value,
        source: Source,
    ) -> Result<DefineReceipt, ControlError> {
        let def = self.check_definition(id, &body)?;
        let existed = self
            .inner
            .store
            .definitions()
            .await?
            .iter()
            .any(|d| d.job_id == id && is_defined_here(d));
        let (row, audit) =
            definition_row(id, &def, body, source.clone(), self.instance_id(), self.now(), existed);
        // Under the lock of rounds, which then see the stored definition
        // applied here, or none.
        let _applying = self.inner.apply.lock().await;
        self.inner.store.put_definition(&row, &audit).await?;
        // Stored: the next round registers it here if this fails now. A
        // pause made in the cluster holds from its first instant.
        let paused = self.inner.store.pause_state(id).await?.is_some_and(|p| p.paused);
        self.apply_definition(&row, paused);
        self.definitions_changed();
        Ok(DefineReceipt {
            job_id: id.to_owned(),
            kind: row.kind,
            schedule: row.schedule.unwrap_or_default(),
            source,
            created: !existed,
            updated_at: row.updated_at,
        })
    }

    /// Deletes job `id`, defined through the API or the CLI, from the whole
    /// cluster: its definition and pause state go (audited), and every
    /// instance unregisters it (a run in progress is stopped, recorded
    /// `cancelled`). Its history stays.
    pub async fn delete_job(&self, id: &str, source: Source) -> Result<(), ControlError> {
        self.check_replaceable(id)?;
        let audit = deletion_audit(id, source, self.instance_id(), self.now());
        // Under the lock of rounds: a round that read the definition before
        // the delete would register the job again.
        let _applying = self.inner.apply.lock().await;
        if !self.inner.store.delete_definition(id, &audit).await? {
            return Err(ControlError::UnknownJob(id.to_owned()));
        }
        self.forget_definition(id);
        self.definitions_changed();
        Ok(())
    }

    /// Registers, replaces and unregisters the jobs defined through the API
    /// or the CLI so that this instance runs what the store holds; returns
    /// how many changed. A definition this instance cannot use (its id is a
    /// job of its configuration, or this build refuses it) is logged once
    /// and left out.
    pub(super) async fn sync_definitions(&self) -> Result<usize, ControlError> {
        // Held from the read, so that no definition or delete made here
        // comes between the read and what is applied.
        let _applying = self.inner.apply.lock().await;
        let stored: Vec<JobDefinition> =
            self.inner.store.definitions().await?.into_iter().filter(is_defined_here).collect();
        let mut changed = 0;
        // Read once, when a definition is new or changed here.
        let mut paused: Option<HashSet<String>> = None;
        for d in &stored {
            let known = self.local().defined.get(&d.job_id).copied();
            if known == Some(d.updated_at) {
                continue;
            }
            if paused.is_none() {
                let states = self.inner.store.pause_states().await?;
                paused = Some(states.into_iter().map(|p| p.job_id).collect());
            }
            let held = paused.as_ref().is_some_and(|p| p.contains(&d.job_id));
            if self.apply_definition(d, held) {
                changed += 1;
            }
        }
        let gone: Vec<String> = {
            let local = self.local();
            let ids: HashMap<&str, ()> = stored.iter().map(|d| (d.job_id.as_str(), ())).collect();
            local.defined.keys().filter(|id| !ids.contains_key(id.as_str())).cloned().collect()
        };
        for id in gone {
            self.forget_definition(&id);
            changed += 1;
        }
        if changed > 0 {
            self.definitions_changed();
        }
        Ok(changed)
    }

    /// Calls `f` after the definitions applied here change, with whether
    /// one of them pauses its job after failures (`pause_after_failures`,
    /// which needs the alert loops even without an alert). Set once.
    pub fn on_definitions(&self, f: impl Fn(bool) + Send + Sync + 'static) {
        let _ = self.inner.on_definitions.set(Box::new(f));
    }

    /// The alert keys of job `id`, if it is registered here from a
    /// definition made through the API or the CLI.
    pub fn defined_alerting(&self, id: &str) -> Option<JobAlerting> {
        self.local().alerting.get(id).cloned()
    }

    /// Whether a job registered here from a definition pauses itself after
    /// failures.
    pub fn defined_pause_after_failures(&self) -> bool {
        self.local().alerting.values().any(|a| a.pause_after_failures.is_some())
    }

    fn definitions_changed(&self) {
        if let Some(f) = self.inner.on_definitions.get() {
            f(self.defined_pause_after_failures());
        }
    }

    /// Registers (or re-registers) the job of a stored definition here,
    /// paused if the cluster has it `paused`; whether the scheduler now
    /// runs it. The caller holds the plane's `apply` lock.
    fn apply_definition(&self, d: &JobDefinition, paused: bool) -> bool {
        let id = d.job_id.as_str();
        let mut local = self.local();
        // Seen: not again until the definition changes.
        let ours = local.defined.insert(id.to_owned(), d.updated_at).is_some();
        if !ours && self.inner.scheduler.job(id).is_some() {
            local.defined.remove(id);
            if local.shadowed.insert(id.to_owned()) {
                tracing::warn!(job_id = %id, source = %d.source, "a job defined through the API has the id of a job of this instance's configuration; the configuration's runs here");
            }
            return false;
        }
        let def = match stored_definition(d) {
            Ok(def) => def,
            Err(e) => {
                tracing::warn!(job_id = %id, error = %e, "a stored job definition cannot be used here; not run on this instance");
                return false;
            }
        };
        let allow_commands = self.inner.allow_command_jobs.load(Ordering::Relaxed);
        if let Err(why) = runs_here(id, &def, allow_commands, &self.allowed_env()) {
            if local.shadowed.insert(id.to_owned()) {
                tracing::warn!(job_id = %id, error = %why, "a job defined through the API or the CLI is not run here");
            }
            return false;
        }
        let Some(cfg) = user_job_config(id, &def) else { return false };
        if ours {
            let _ = self.inner.scheduler.unregister(id);
        }
        // Known: its pause state is the store's, unless its definition
        // disables it (`enabled = false`), which wins over a resume as the
        // configuration's does. Registered paused when the store pauses
        // it, so that it never fires until a round would pause it again.
        local.known.insert(id.to_owned());
        local.applied.remove(id);
        let held = paused && def.common().enabled;
        if def.common().enabled {
            local.pinned.remove(id);
        } else {
            local.pinned.insert(id.to_owned());
        }
        local.alerting.remove(id);
        match self.inner.scheduler.register(if held { cfg.paused(true) } else { cfg }) {
            Ok(()) => {
                if held {
                    local.applied.insert(id.to_owned());
                }
                local.alerting.insert(id.to_owned(), def.common().alerting.clone());
                tracing::info!(job_id = %id, kind = %d.kind, source = %d.source, "job defined through the API registered");
                true
            }
            Err(e) => {
                tracing::warn!(job_id = %id, error = %e, "could not register a job defined through the API");
                false
            }
        }
    }

    /// Makes this instance treat configured job `id` as new: a reloaded
    /// configuration removed, changed or added it. What it knew of the job
    /// (seen, pinned by `enabled = false`, paused by the store) is
    /// forgotten, so that the next round applies the stored state afresh.
    /// A job of the same id defined through the API and registered here
    /// gives way (logged): the configuration's runs here, as at a start.
    pub(crate) fn forget_configured(&self, id: &str, now_configured: bool) {
        let mut local = self.local();
        local.known.remove(id);
        local.pinned.remove(id);
        local.applied.remove(id);
        if !now_configured {
            // A definition it shadowed runs here from the next round.
            local.shadowed.remove(id);
        } else if local.defined.remove(id).is_some() {
            local.alerting.remove(id);
            let _ = self.inner.scheduler.unregister(id);
            local.shadowed.insert(id.to_owned());
            tracing::warn!(
                job_id = %id,
                "the reloaded configuration has a job of the id of a job defined through the API; the configuration's runs here"
            );
        }
    }

    /// Unregisters a job this instance registered from a definition.
    fn forget_definition(&self, id: &str) {
        let mut local = self.local();
        if local.defined.remove(id).is_some() {
            local.alerting.remove(id);
            let _ = self.inner.scheduler.unregister(id);
            local.known.remove(id);
            local.applied.remove(id);
            tracing::info!(job_id = %id, "job defined through the API deleted");
        }
    }
}
