//! The control plane: pause, resume, trigger and cancel for the whole
//! cluster, kept in the database ([`ControlStore`]) and applied by every
//! instance to its local [`JobScheduler`].
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | [`ControlPlane`], its settings, errors and receipts; the API the HTTP layer and the CLI call |
//! | `sync.rs` | the sync loop: one round applies the stored pauses, runs the triggers this instance takes, handles cancels; the Postgres listener that wakes it |
//! | `defs.rs` | the job definitions the plane stores at start |
//! | `jobs.rs` | jobs defined through the API or the CLI: checked, stored, registered on every instance |
//! | `backfill.rs` | the backfill lock: one backfill of a job at a time in the cluster |
//!
//! A change made through any instance is written first, with its audit row,
//! in one transaction, then applied locally at once; the other instances
//! apply it at their next round: on Postgres within milliseconds (woken by
//! `NOTIFY`, with a 1 s poll as a fallback), on SQLite within the 250 ms
//! poll. Stored pauses survive restarts: [`ControlPlane::prepare`] applies
//! them before the scheduler starts. A job that this instance registered
//! paused (`enabled = false` in its configuration) stays paused whatever the
//! store says: the configuration wins.

mod backfill;
mod defs;
mod jobs;
mod sync;

pub use backfill::{BACKFILL_LOCK_TTL, BackfillGuard, BackfillLocking};
pub use jobs::{
    DEFINITION_KEY, DefineReceipt, definition_row, deletion_audit, is_defined_here, runs_here,
    stored_definition,
};

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mscribe_scheduler::{ExecutionId, JobScheduler, StoreError, TriggerOutcome};
use mscribe_storage::{
    AuditEntry, AuditQuery, AuditRecord, ControlStore, JobDefinition, MAX_NOTE_CHARS, NewCancel,
    NewTrigger, PauseChange, PauseState, PostgresStore, Source,
};
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::db::Database;

pub use defs::ops_definitions;
pub use sync::SyncReport;

/// The outcome of a cancel request handled by the instance that ran it.
pub const CANCELLED: &str = "cancelled";
/// The outcome of a cancel request that no instance handled in time.
pub const NOT_RUNNING: &str = "no instance runs this execution";

/// An instance whose heartbeat is this recent may run a cancelled run:
/// three of the scheduler's heartbeats (one each 10 s by default).
const LIVE_WITHIN: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// How the plane polls and waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlSettings {
    /// The time between two rounds of the sync loop when nothing wakes it.
    pub poll: Duration,
    /// How long [`ControlPlane::cancel`] waits for an instance to handle
    /// the request.
    pub cancel_wait: Duration,
    /// A cancel request no instance handled for this long is closed as
    /// [`NOT_RUNNING`].
    pub cancel_expiry: Duration,
    /// Triggers and cancel requests are kept this long (then pruned).
    pub keep_requests: Duration,
    /// The time between two prunes.
    pub prune_every: Duration,
}

impl ControlSettings {
    /// For SQLite: a poll every 250 ms (no notifications).
    pub fn sqlite() -> Self {
        ControlSettings {
            poll: Duration::from_millis(250),
            cancel_wait: Duration::from_secs(2),
            cancel_expiry: Duration::from_secs(10),
            keep_requests: Duration::from_secs(7 * 86_400),
            prune_every: Duration::from_secs(3600),
        }
    }

    /// For Postgres: woken by `NOTIFY`, and a poll every second as a
    /// fallback.
    pub fn postgres() -> Self {
        ControlSettings { poll: Duration::from_secs(1), ..Self::sqlite() }
    }
}

/// Why a control action was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// No instance registered this job.
    #[error("unknown job \"{0}\"")]
    UnknownJob(String),
    /// The note is empty or blank.
    #[error("note is empty")]
    NoteEmpty,
    /// The note is longer than [`MAX_NOTE_CHARS`].
    #[error("note is {chars} characters long; at most {max} are allowed")]
    NoteTooLong {
        /// Its length in characters.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// The note holds a NUL character.
    #[error("note contains a NUL character")]
    NoteNul,
    /// The job is disabled in this instance's configuration, which wins
    /// over a resume.
    #[error(
        "job \"{0}\" is disabled in this instance's configuration (enabled = false); \
         enable it there to resume it"
    )]
    DisabledInConfig(String),
    /// The job's definition (through the API or the CLI) disables it, which
    /// wins over a resume.
    #[error(
        "job \"{0}\" is disabled by its definition (enabled = false); \
         define it again with enabled = true to resume it"
    )]
    DisabledInDefinition(String),
    /// The database failed or could not be reached.
    #[error("control store: {0}")]
    Store(#[source] StoreError),
    /// The local scheduler refused (not started, or stopping).
    #[error("scheduler: {0}")]
    Scheduler(#[source] mscribe_scheduler::Error),
    /// A job definition failed its checks: the key (relative to the job,
    /// empty for the whole definition) and why.
    #[error("{}{reason}", if key.is_empty() { String::new() } else { format!("field \"{key}\": ") })]
    InvalidDefinition {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A `command` job through the API, which the configuration does not
    /// allow.
    #[error(
        "jobs of kind \"command\" run programs on the server and are refused through the API \
         unless the configuration allows them ([api] allow_command_jobs = true)"
    )]
    CommandJobsRefused,
    /// The job is defined by this instance's configuration or code: it is
    /// changed there, not through the API.
    #[error(
        "job \"{0}\" is defined in this instance's configuration (or in code); change it there, \
         or give the job of your own another id"
    )]
    ConfiguredJob(String),
}

impl ControlError {
    /// The HTTP status for this error: 404 for an unknown job, 400 for a
    /// bad note or definition, 403 for a command job the configuration does
    /// not allow, 409 for a job disabled or defined in the configuration,
    /// 503 when the
    /// database or the scheduler is unavailable, 500 for any other store
    /// failure.
    pub fn http_status(&self) -> u16 {
        match self {
            ControlError::UnknownJob(_) => 404,
            ControlError::NoteEmpty | ControlError::NoteTooLong { .. } | ControlError::NoteNul => {
                400
            }
            ControlError::DisabledInConfig(_)
            | ControlError::DisabledInDefinition(_)
            | ControlError::ConfiguredJob(_) => 409,
            ControlError::InvalidDefinition { .. } => 400,
            ControlError::CommandJobsRefused => 403,
            ControlError::Store(e) if e.is_transient() => 503,
            ControlError::Store(_) => 500,
            ControlError::Scheduler(_) => 503,
        }
    }

    /// The input field the error is about: `job` or `note`.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ControlError::UnknownJob(_)
            | ControlError::DisabledInConfig(_)
            | ControlError::DisabledInDefinition(_)
            | ControlError::ConfiguredJob(_) => Some("job"),
            ControlError::InvalidDefinition { .. } | ControlError::CommandJobsRefused => None,
            ControlError::NoteEmpty | ControlError::NoteTooLong { .. } | ControlError::NoteNul => {
                Some("note")
            }
            ControlError::Store(_) | ControlError::Scheduler(_) => None,
        }
    }
}

/// The scheduler's unknown job is the control plane's (404): a job deleted
/// between the definition's check and the call. Any other scheduler error
/// means it cannot act now (503).
impl From<mscribe_scheduler::Error> for ControlError {
    fn from(e: mscribe_scheduler::Error) -> Self {
        match e {
            mscribe_scheduler::Error::UnknownJob(id) => ControlError::UnknownJob(id),
            e => ControlError::Scheduler(e),
        }
    }
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        ControlError::Store(e)
    }
}

/// Checks a note: not blank, at most [`MAX_NOTE_CHARS`] characters, no
/// NUL. A valid note is kept as given.
pub fn check_note(note: Option<&str>) -> Result<(), ControlError> {
    let Some(n) = note else { return Ok(()) };
    if n.trim().is_empty() {
        return Err(ControlError::NoteEmpty);
    }
    let chars = n.chars().count();
    if chars > MAX_NOTE_CHARS {
        return Err(ControlError::NoteTooLong { chars, max: MAX_NOTE_CHARS });
    }
    if n.contains('\0') {
        return Err(ControlError::NoteNul);
    }
    Ok(())
}

/// What [`ControlPlane::trigger`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerReceipt {
    /// The stored trigger (`job_triggers.id`).
    pub trigger_id: i64,
    /// The job.
    pub job_id: String,
    /// The instance that runs it: this one when it runs the job; `None`
    /// when another instance will take it (within a second).
    pub taken_by: Option<String>,
    /// What the local run did (`started` or `queued` with its execution
    /// id, or `skipped`), when it ran here.
    pub outcome: Option<TriggerOutcome>,
}

/// What [`ControlPlane::cancel`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CancelReceipt {
    /// The stored request (`execution_cancels.id`).
    pub cancel_id: i64,
    /// The run.
    pub execution_id: String,
    /// The instance that handled it; `None` when none did within the wait
    /// (the request stays pending, and is closed as [`NOT_RUNNING`] if no
    /// instance handles it within the expiry).
    pub handled_by: Option<String>,
    /// [`CANCELLED`] or [`NOT_RUNNING`], once handled.
    pub outcome: Option<String>,
}

/// The cluster-wide control of one instance's scheduler. Cheap to clone;
/// clones share one plane.
///
/// Build it over the scheduler with its jobs registered ([`new`](Self::new),
/// [`for_database`](Self::for_database)); then [`prepare`](Self::prepare)
/// before the scheduler starts, [`spawn`](Self::spawn) the sync loop once
/// it runs, and [`stop`](Self::stop) it before the scheduler stops.
#[derive(Clone)]
pub struct ControlPlane {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn ControlStore>,
    pub(crate) scheduler: JobScheduler,
    pub(crate) settings: ControlSettings,
    /// The store to listen on (Postgres).
    pub(crate) listen: std::sync::OnceLock<PostgresStore>,
    pub(crate) local: Mutex<Local>,
    /// Held while a pause state is read and applied (a round, an API
    /// pause or resume), so that a round never undoes a newer change.
    pub(crate) apply: tokio::sync::Mutex<()>,
    /// Wakes the sync loop (a notification, a local request).
    pub(crate) wake: Notify,
    /// Whether jobs of kind `command` may be defined through the API.
    pub(crate) allow_command_jobs: std::sync::atomic::AtomicBool,
    /// `[api] allow_env`: the variables stored definitions may read.
    pub(crate) allow_env: Mutex<Vec<String>>,
    pub(crate) stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Told, after the definitions applied here changed, whether one of
    /// them pauses its job after failures (the alert loops must run).
    pub(crate) on_definitions: std::sync::OnceLock<Box<dyn Fn(bool) + Send + Sync>>,
}

/// What the plane did to the local scheduler.
#[derive(Debug, Default)]
pub(crate) struct Local {
    /// Jobs seen so far.
    pub(crate) known: HashSet<String>,
    /// Jobs registered paused (the configuration's `enabled = false`): the
    /// plane never resumes them.
    pub(crate) pinned: HashSet<String>,
    /// Jobs the plane paused because the store says so.
    pub(crate) applied: HashSet<String>,
    /// Cancel requests this instance carried out but could not yet record.
    pub(crate) cancelled: HashSet<i64>,
    /// When the last prune ran.
    pub(crate) last_prune: Option<std::time::Instant>,
    /// Whether the last round failed (to log the change only).
    pub(crate) failing: bool,
    /// The instant of the last trigger requested here: each is later, so
    /// that two triggers never share a fire key.
    pub(crate) last_trigger_at: Option<DateTime<Utc>>,
    /// The jobs registered here from definitions made through the API or
    /// the CLI, with the `updated_at` of the definition applied.
    pub(crate) defined: std::collections::HashMap<String, DateTime<Utc>>,
    /// Definitions left out here (logged once): this instance's
    /// configuration has a job of their id, or they are command jobs it
    /// does not allow.
    pub(crate) shadowed: HashSet<String>,
    /// The alert keys of the jobs in `defined`.
    pub(crate) alerting: std::collections::HashMap<String, crate::config::JobAlerting>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("instance_id", &self.inner.scheduler.instance_id())
            .field("settings", &self.inner.settings)
            .field("listens", &self.inner.listen.get().is_some())
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// A plane over `store` for `scheduler`, polling per `settings`. The
    /// jobs registered paused now (and those registered paused later) are
    /// the configuration's: they stay paused.
    pub fn new(
        store: Arc<dyn ControlStore>,
        scheduler: JobScheduler,
        settings: ControlSettings,
    ) -> Self {
        let plane = ControlPlane {
            inner: Arc::new(Inner {
                store,
                scheduler,
                settings,
                listen: std::sync::OnceLock::new(),
                local: Mutex::new(Local::default()),
                apply: tokio::sync::Mutex::new(()),
                wake: Notify::new(),
                allow_command_jobs: std::sync::atomic::AtomicBool::new(false),
                allow_env: Mutex::default(),
                stop: watch::channel(false).0,
                tasks: Mutex::new(Vec::new()),
                on_definitions: std::sync::OnceLock::new(),
            }),
        };
        plane.note_jobs(&plane.inner.scheduler.jobs());
        plane
    }

    /// A plane over the server's database: SQLite polls every 250 ms,
    /// Postgres listens for `NOTIFY` and polls every second.
    pub fn for_database(db: &Database, scheduler: JobScheduler) -> Self {
        match db {
            Database::Sqlite { store, .. } => {
                Self::new(Arc::new(store.clone()), scheduler, ControlSettings::sqlite())
            }
            Database::Postgres { store, .. } => {
                Self::new(Arc::new(store.clone()), scheduler, ControlSettings::postgres())
                    .listening(store.clone())
            }
        }
    }

    /// Wakes the sync loop on the notifications of `store` (Postgres).
    /// Call before [`spawn`](Self::spawn).
    pub fn listening(self, store: PostgresStore) -> Self {
        let _ = self.inner.listen.set(store);
        self
    }

    /// This instance's id (the scheduler's).
    pub fn instance_id(&self) -> &str {
        self.inner.scheduler.instance_id()
    }

    /// The settings.
    pub fn settings(&self) -> ControlSettings {
        self.inner.settings
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ControlStore> {
        &self.inner.store
    }

    /// The time now, by the scheduler's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.scheduler.clock().now()
    }

    /// The instant of a trigger requested now: to the microsecond (as the
    /// stores keep it), after the last one requested here.
    fn trigger_instant(&self) -> DateTime<Utc> {
        use chrono::SubsecRound;
        let now = self.now().trunc_subsecs(6);
        let mut local = self.local();
        let at = match local.last_trigger_at {
            Some(last) if last >= now => last + chrono::TimeDelta::microseconds(1),
            _ => now,
        };
        local.last_trigger_at = Some(at);
        at
    }

    pub(crate) fn local(&self) -> std::sync::MutexGuard<'_, Local> {
        self.inner.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores the definitions of the jobs registered here (those given,
    /// and for any other registered job one from its listing, except the
    /// jobs registered from a stored definition, which keep it), stamped
    /// with this instance and the time, then applies the stored pause
    /// state to the local scheduler. Call before the scheduler starts, so
    /// that a job paused in the cluster does not fire here first.
    ///
    /// A failure is returned after trying both steps; the sync loop applies
    /// the pause state at its first round anyway.
    pub async fn prepare(&self, mut definitions: Vec<JobDefinition>) -> Result<(), ControlError> {
        let jobs = self.inner.scheduler.jobs();
        self.note_jobs(&jobs);
        definitions.retain(|d| jobs.iter().any(|j| j.id == d.job_id));
        // A job registered from a stored definition keeps it: a listing of
        // it would replace that definition (and so delete the job) everywhere.
        let defined: HashSet<String> = self.local().defined.keys().cloned().collect();
        for info in jobs.iter().filter(|j| !defined.contains(&j.id)) {
            if !definitions.iter().any(|d| d.job_id == info.id) {
                definitions.push(defs::code_definition(info));
            }
        }
        let now = self.now();
        for d in &mut definitions {
            d.registered_by = self.instance_id().to_owned();
            d.updated_at = now;
        }
        let stored = self.inner.store.upsert_definitions(&definitions).await;
        // The jobs defined through the API, before the pauses: theirs too.
        let defined = self.sync_definitions().await;
        let applied = self.sync_pauses(&self.inner.scheduler.jobs()).await;
        stored?;
        defined?;
        applied.map(drop)
    }

    /// Pauses `job` on every instance, with an optional note. Returns the
    /// stored state.
    pub async fn pause(
        &self,
        job: &str,
        note: Option<String>,
        source: Source,
    ) -> Result<PauseState, ControlError> {
        self.set_paused(job, true, note, source).await
    }

    /// Resumes `job` on every instance where the configuration does not
    /// disable it. Refused with [`ControlError::DisabledInConfig`] on an
    /// instance whose configuration disables it, and with
    /// [`ControlError::DisabledInDefinition`] for a job whose definition
    /// does.
    pub async fn resume(
        &self,
        job: &str,
        note: Option<String>,
        source: Source,
    ) -> Result<PauseState, ControlError> {
        let pinned = {
            let local = self.local();
            local.pinned.contains(job).then(|| local.defined.contains_key(job))
        };
        match pinned {
            Some(true) => return Err(ControlError::DisabledInDefinition(job.to_owned())),
            Some(false) => return Err(ControlError::DisabledInConfig(job.to_owned())),
            None => {}
        }
        self.set_paused(job, false, note, source).await
    }

    async fn set_paused(
        &self,
        job: &str,
        paused: bool,
        note: Option<String>,
        source: Source,
    ) -> Result<PauseState, ControlError> {
        check_note(note.as_deref())?;
        self.check_job(job).await?;
        let _applying = self.inner.apply.lock().await;
        let change = PauseChange {
            paused,
            note,
            source,
            instance_id: self.instance_id().to_owned(),
            at: self.now(),
        };
        let state = self.inner.store.set_paused(job, &change).await?;
        self.apply_one(job, paused);
        Ok(state)
    }

    /// Runs `job` once in the cluster. When this instance runs the job, the
    /// trigger is recorded as taken here and run at once (the receipt has
    /// the outcome and execution id); otherwise it is left for an instance
    /// that runs the job, which takes it within a second.
    ///
    /// The trigger runs as the manual fire at its request instant
    /// ([`JobScheduler::trigger_at`]): with claims, the fire's claim and
    /// lease make it run once even if the instance that took it dies (its
    /// lease is taken over; a trigger taken and never claimed is taken
    /// again after [`TRIGGER_RETAKE_AFTER`](mscribe_storage::TRIGGER_RETAKE_AFTER)).
    pub async fn trigger(
        &self,
        job: &str,
        note: Option<String>,
        source: Source,
    ) -> Result<TriggerReceipt, ControlError> {
        check_note(note.as_deref())?;
        let local = self.inner.scheduler.job(job).is_some();
        if !local {
            self.check_job(job).await?;
        }
        let at = self.trigger_instant();
        let req = NewTrigger {
            job_id: job.to_owned(),
            note,
            source,
            instance_id: self.instance_id().to_owned(),
            at,
            take: local,
        };
        let trigger_id = self.inner.store.request_trigger(&req).await?;
        if !local {
            return Ok(TriggerReceipt {
                trigger_id,
                job_id: job.to_owned(),
                taken_by: None,
                outcome: None,
            });
        }
        let result = self.inner.scheduler.trigger_at(job, at);
        let (exec, text) = sync::describe_trigger(&result);
        if let Err(e) =
            self.inner.store.finish_trigger(trigger_id, exec.as_deref(), &text, self.now()).await
        {
            tracing::warn!(job_id = %job, trigger_id, error = %e, "could not record a trigger's outcome");
        }
        let outcome = result.map_err(ControlError::from)?;
        Ok(TriggerReceipt {
            trigger_id,
            job_id: job.to_owned(),
            taken_by: Some(self.instance_id().to_owned()),
            outcome: Some(outcome),
        })
    }

    /// Cancels one run, wherever it runs: records the request (and its
    /// audit row), cancels it here if this instance runs it, else waits up
    /// to [`ControlSettings::cancel_wait`] for the instance that runs it.
    /// `job` names the run's job in the audit log, if the caller knows it.
    pub async fn cancel(
        &self,
        execution_id: ExecutionId,
        job: Option<&str>,
        note: Option<String>,
        source: Source,
    ) -> Result<CancelReceipt, ControlError> {
        check_note(note.as_deref())?;
        let req = NewCancel {
            execution_id: execution_id.to_string(),
            job_id: job.map(str::to_owned),
            note,
            source,
            instance_id: self.instance_id().to_owned(),
            at: self.now(),
        };
        let cancel_id = self.inner.store.request_cancel(&req).await?;
        let mut receipt = CancelReceipt {
            cancel_id,
            execution_id: req.execution_id,
            handled_by: None,
            outcome: None,
        };
        if self.inner.scheduler.cancel(execution_id).is_ok() {
            self.local().cancelled.insert(cancel_id);
            let me = self.instance_id();
            if self.inner.store.finish_cancel(cancel_id, me, CANCELLED, self.now()).await? {
                self.local().cancelled.remove(&cancel_id);
            }
            receipt.handled_by = Some(me.to_owned());
            receipt.outcome = Some(CANCELLED.to_owned());
            return Ok(receipt);
        }
        // No other instance is alive to run it: it runs nowhere.
        if self.alone().await
            && self
                .inner
                .store
                .finish_cancel(cancel_id, self.instance_id(), NOT_RUNNING, self.now())
                .await?
        {
            receipt.handled_by = Some(self.instance_id().to_owned());
            receipt.outcome = Some(NOT_RUNNING.to_owned());
            return Ok(receipt);
        }
        let deadline = crate::config::de::tokio_deadline(
            tokio::time::Instant::now(),
            self.inner.settings.cancel_wait,
        );
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Some(r) = self.inner.store.cancel_request(cancel_id).await?
                && r.handled_at.is_some()
            {
                receipt.handled_by = r.handled_by;
                receipt.outcome = r.outcome;
                return Ok(receipt);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(receipt);
            }
        }
    }

    /// Whether this instance is the only one alive: the only one whose
    /// heartbeat the execution store has from the last [`LIVE_WITHIN`]. A
    /// store that keeps no heartbeats, or does not answer, says no.
    async fn alone(&self) -> bool {
        let since = self.now() - LIVE_WITHIN;
        match self.inner.scheduler.store().instances(since).await {
            Ok(live) => {
                !live.is_empty() && live.iter().all(|i| i.instance_id == self.instance_id())
            }
            Err(_) => false,
        }
    }

    /// Audit rows, newest first.
    pub async fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, ControlError> {
        Ok(self.inner.store.audit(q).await?)
    }

    /// Writes an audit row for an action taken elsewhere (e.g. a backfill);
    /// returns its id.
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<i64, ControlError> {
        Ok(self.inner.store.record_audit(entry).await?)
    }

    /// One job's stored pause state (its last pause or resume), `None` if
    /// it was never paused through the plane.
    pub async fn job_state(&self, job: &str) -> Result<Option<PauseState>, ControlError> {
        Ok(self.inner.store.pause_state(job).await?)
    }

    /// The jobs paused in the cluster, with their notes, by job id.
    pub async fn states(&self) -> Result<Vec<PauseState>, ControlError> {
        Ok(self.inner.store.pause_states().await?)
    }

    /// Every stored job definition, by job id.
    pub async fn definitions(&self) -> Result<Vec<JobDefinition>, ControlError> {
        Ok(self.inner.store.definitions().await?)
    }

    /// Whether this instance's configuration disables `job` (it stays
    /// paused here whatever the store says).
    pub fn disabled_here(&self, job: &str) -> bool {
        self.local().pinned.contains(job)
    }

    /// A job this instance runs, or one stored by another instance.
    async fn check_job(&self, job: &str) -> Result<(), ControlError> {
        if self.inner.scheduler.job(job).is_some()
            || self.inner.store.definitions().await?.iter().any(|d| d.job_id == job)
        {
            Ok(())
        } else {
            Err(ControlError::UnknownJob(job.to_owned()))
        }
    }

    /// Starts the sync loop (and, on Postgres, the listener that wakes it)
    /// on the current tokio runtime. Once; later calls do nothing.
    pub fn spawn(&self) {
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        if !tasks.is_empty() || *self.inner.stop.borrow() {
            return;
        }
        tasks.push(tokio::spawn(sync::run(
            Arc::downgrade(&self.inner),
            self.inner.stop.subscribe(),
        )));
        if let Some(store) = self.inner.listen.get() {
            tasks.push(tokio::spawn(sync::listen(
                store.clone(),
                Arc::downgrade(&self.inner),
                self.inner.stop.subscribe(),
            )));
        }
    }

    /// Stops the sync loop and the listener, waiting up to 5 s for a round
    /// in progress to end. Does nothing when they are not running.
    pub async fn stop(&self) {
        self.inner.stop.send_replace(true);
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for mut t in tasks {
            if tokio::time::timeout(Duration::from_secs(5), &mut t).await.is_err() {
                tracing::warn!(
                    "the control plane's sync loop did not stop within 5 s; aborting it"
                );
                t.abort();
            }
        }
    }

    /// Wakes the sync loop for a round now.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_checked_by_characters() {
        assert!(check_note(None).is_ok());
        assert!(check_note(Some(&"é".repeat(MAX_NOTE_CHARS))).is_ok());
        let e = check_note(Some(&"é".repeat(MAX_NOTE_CHARS + 1))).unwrap_err();
        assert!(matches!(e, ControlError::NoteTooLong { chars: 1001, max: 1000 }), "{e}");
        assert_eq!(e.to_string(), "note is 1001 characters long; at most 1000 are allowed");
        assert!(matches!(check_note(Some(" \n\t")), Err(ControlError::NoteEmpty)));
        assert!(matches!(check_note(Some("a\0b")), Err(ControlError::NoteNul)));
        assert!(check_note(Some(" kept as given ")).is_ok());
    }

    #[test]
    fn errors_map_to_http_statuses_and_fields() {
        let unavailable = StoreError::Unavailable { message: "down".into(), source: None };
        let rejected = StoreError::Rejected { message: "bad".into(), source: None };
        let cases = [
            (ControlError::UnknownJob("j".into()), 404, Some("job")),
            (ControlError::NoteEmpty, 400, Some("note")),
            (ControlError::DisabledInConfig("j".into()), 409, Some("job")),
            (ControlError::DisabledInDefinition("j".into()), 409, Some("job")),
            (ControlError::Store(unavailable), 503, None),
            (ControlError::Store(rejected), 500, None),
            (ControlError::Scheduler(mscribe_scheduler::Error::Stopped), 503, None),
            // A job deleted between the definition's check and the trigger.
            (
                ControlError::from(mscribe_scheduler::Error::UnknownJob("j".into())),
                404,
                Some("job"),
            ),
        ];
        for (e, status, field) in cases {
            assert_eq!((e.http_status(), e.field()), (status, field), "{e}");
        }
    }
}
