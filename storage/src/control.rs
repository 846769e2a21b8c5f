//! The control plane's durable state, shared by every instance on one
//! database: job definitions, pause state, manual triggers, cancel requests
//! and the audit log, and [`ControlStore`], which both SQL stores implement.
//!
//! The tables come from the migrations (`0006_control.sql` for SQLite,
//! `0008_control.sql` for Postgres). What an instance does with the rows
//! (pausing its local scheduler, running the triggers it takes, cancelling
//! its own runs) is the caller's, e.g. the server's `ControlPlane`.
//!
//! Every change that other instances must see (a pause or resume, a
//! trigger, a cancel request) writes its audit row in the same transaction;
//! on Postgres it also sends `pg_notify('mscribe_control', ..)` there, so
//! that listeners (`ControlListener`, feature `postgres`) wake at once. SQLite has no notifications: instances poll, and the polling
//! queries read only paused jobs, untaken triggers and unhandled cancels.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::StoreResult;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest note a caller should accept (in characters). The stores keep
/// any note in full; checking the length is the API layer's job.
pub const MAX_NOTE_CHARS: usize = 1000;

/// At most this many audit rows per [`ControlStore::audit`] call.
pub const MAX_AUDIT_LIMIT: usize = 1000;

/// At most this many triggers per [`ControlStore::take_triggers`] call, and
/// this many requests per [`ControlStore::pending_cancels`] call.
pub const MAX_TAKE: usize = 100;

/// A trigger taken this long ago, neither claimed nor finished, is taken
/// again by the next instance that runs its job
/// ([`ControlStore::take_triggers`]).
pub const TRIGGER_RETAKE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// A trigger taken longer ago than this is never taken again (its claim may
/// have been pruned since).
pub const TRIGGER_RETAKE_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

/// The bounds of [`ControlStore::take_triggers`]'s second chance at `now`:
/// a trigger taken at or before the first and after the second may be
/// taken again.
pub(crate) fn retake_bounds(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let back = |d: std::time::Duration| {
        chrono::TimeDelta::from_std(d).ok().and_then(|d| now.checked_sub_signed(d)).unwrap_or(now)
    };
    (back(TRIGGER_RETAKE_AFTER), back(TRIGGER_RETAKE_WINDOW))
}

/// The Postgres channel every change is announced on.
pub const NOTIFY_CHANNEL: &str = "mscribe_control";

/// Where a control action or a definition came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Source {
    /// The HTTP API.
    Api,
    /// The command line, talking to the database directly.
    Cli,
    /// The configuration file or environment.
    Config,
    /// Application code (a job registered in Rust).
    Code,
    /// The scheduler itself (e.g. closing a cancel no instance handled).
    System,
    /// Text written by a newer build, kept as is.
    Other(String),
}

impl Source {
    /// The stored text: `api`, `cli`, `config`, `code`, `system`, or the
    /// text of [`Other`](Self::Other).
    pub fn as_str(&self) -> &str {
        match self {
            Source::Api => "api",
            Source::Cli => "cli",
            Source::Config => "config",
            Source::Code => "code",
            Source::System => "system",
            Source::Other(s) => s,
        }
    }
}

impl From<&str> for Source {
    fn from(s: &str) -> Self {
        match s {
            "api" => Source::Api,
            "cli" => Source::Cli,
            "config" => Source::Config,
            "code" => Source::Code,
            "system" => Source::System,
            other => Source::Other(other.to_owned()),
        }
    }
}

impl From<String> for Source {
    fn from(s: String) -> Self {
        Source::from(s.as_str())
    }
}

impl From<Source> for String {
    fn from(s: Source) -> Self {
        s.as_str().to_owned()
    }
}

impl FromStr for Source {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Source::from(s))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a row of the audit log records.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum AuditAction {
    /// A job was paused.
    Pause,
    /// A job was resumed.
    Resume,
    /// A manual trigger was requested.
    Trigger,
    /// A run's cancellation was requested.
    Cancel,
    /// A backfill was started.
    Backfill,
    /// A job was defined or redefined through the API or the CLI.
    Define,
    /// A job defined through the API or the CLI was deleted.
    Delete,
    /// Any other action, by its name.
    Other(String),
}

impl AuditAction {
    /// The stored text: `pause`, `resume`, `trigger`, `cancel`, `backfill`,
    /// `define`, `delete`, or the text of [`Other`](Self::Other).
    pub fn as_str(&self) -> &str {
        match self {
            AuditAction::Pause => "pause",
            AuditAction::Resume => "resume",
            AuditAction::Trigger => "trigger",
            AuditAction::Cancel => "cancel",
            AuditAction::Backfill => "backfill",
            AuditAction::Define => "define",
            AuditAction::Delete => "delete",
            AuditAction::Other(s) => s,
        }
    }
}

impl From<&str> for AuditAction {
    fn from(s: &str) -> Self {
        match s {
            "pause" => AuditAction::Pause,
            "resume" => AuditAction::Resume,
            "trigger" => AuditAction::Trigger,
            "cancel" => AuditAction::Cancel,
            "backfill" => AuditAction::Backfill,
            "define" => AuditAction::Define,
            "delete" => AuditAction::Delete,
            other => AuditAction::Other(other.to_owned()),
        }
    }
}

impl From<String> for AuditAction {
    fn from(s: String) -> Self {
        AuditAction::from(s.as_str())
    }
}

impl From<AuditAction> for String {
    fn from(a: AuditAction) -> Self {
        a.as_str().to_owned()
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job as an instance registered it (`job_definitions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDefinition {
    /// The job's id.
    pub job_id: String,
    /// Its display name.
    pub name: String,
    /// The schedule as text; `None` for a trigger-only job.
    pub schedule: Option<String>,
    /// The IANA zone of a cron schedule, if not UTC.
    pub timezone: Option<String>,
    /// What runs: `rust`, `ops:backup`, `command`, `http`, ...
    pub kind: String,
    /// The overlap, retry, timeout, misfire ... settings, a JSON object.
    pub policies: Value,
    /// Where the definition came from (`config`, `api`, `code`).
    pub source: Source,
    /// The instance that registered it last.
    pub registered_by: String,
    /// When it did.
    pub updated_at: DateTime<Utc>,
}

/// A pause or a resume, as [`ControlStore::set_paused`] records it.
#[derive(Debug, Clone, PartialEq)]
pub struct PauseChange {
    /// `true` to pause, `false` to resume.
    pub paused: bool,
    /// Why, kept in full.
    pub note: Option<String>,
    /// Where the change came from.
    pub source: Source,
    /// The instance that made it.
    pub instance_id: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A job's stored pause state (`job_pauses`): its last change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PauseState {
    /// The job.
    pub job_id: String,
    /// Whether it is paused.
    pub paused: bool,
    /// The note of the last change.
    pub note: Option<String>,
    /// When the job was last paused or resumed.
    pub changed_at: DateTime<Utc>,
    /// Where that change came from.
    pub source: Source,
    /// The instance that made it.
    pub instance_id: String,
    /// Grows by one with each change of this job, from 1.
    pub version: u64,
}

/// The lock that lets one backfill of a job run at a time in the cluster
/// ([`ControlStore::lock_backfill`]), as stored (`backfill_locks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackfillLock {
    /// The job.
    pub job_id: String,
    /// Who holds it: the holder's own text (the server: its instance id and
    /// a number of its own).
    pub holder: String,
    /// When it was taken.
    pub acquired_at: DateTime<Utc>,
    /// When it runs out unless renewed; after that another backfill may
    /// take it.
    pub expires_at: DateTime<Utc>,
}

/// What [`ControlStore::lock_backfill`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackfillLockOutcome {
    /// The caller holds the lock now.
    Acquired,
    /// Someone else holds it, live: this lock.
    Held(BackfillLock),
}

/// A manual trigger to record ([`ControlStore::request_trigger`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTrigger {
    /// The job to run.
    pub job_id: String,
    /// Why, kept in full.
    pub note: Option<String>,
    /// Where the request came from.
    pub source: Source,
    /// The instance that made it.
    pub instance_id: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Recorded as already taken by `instance_id` (which runs the job and
    /// will run this trigger itself): no other instance can take it.
    pub take: bool,
}

/// A manual trigger as stored (`job_triggers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerRequest {
    /// Its id, increasing.
    pub id: i64,
    /// The job to run.
    pub job_id: String,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
    /// Where the request came from.
    pub source: Source,
    /// The instance that made it.
    pub requested_by: String,
    /// Its note.
    pub note: Option<String>,
    /// The instance that took it, once taken.
    pub taken_by: Option<String>,
    /// When it was taken.
    pub taken_at: Option<DateTime<Utc>>,
    /// The run it started or queued, once finished.
    pub execution_id: Option<String>,
    /// What became of it (`started`, `queued`, `skipped`, an error), once
    /// finished.
    pub outcome: Option<String>,
    /// When it was finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A cancel request to record ([`ControlStore::request_cancel`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewCancel {
    /// The run to cancel.
    pub execution_id: String,
    /// The job it belongs to, if the caller knows (for the audit log).
    pub job_id: Option<String>,
    /// Why, kept in full.
    pub note: Option<String>,
    /// Where the request came from.
    pub source: Source,
    /// The instance that made it.
    pub instance_id: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A cancel request as stored (`execution_cancels`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelRequest {
    /// Its id, increasing.
    pub id: i64,
    /// The run to cancel.
    pub execution_id: String,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
    /// Where the request came from.
    pub source: Source,
    /// The instance that made it.
    pub requested_by: String,
    /// Its note.
    pub note: Option<String>,
    /// The instance that handled it, once handled.
    pub handled_by: Option<String>,
    /// When it was handled.
    pub handled_at: Option<DateTime<Utc>>,
    /// What became of it, once handled.
    pub outcome: Option<String>,
}

/// An audit row to write ([`ControlStore::record_audit`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When the action was taken.
    pub at: DateTime<Utc>,
    /// What it was.
    pub action: AuditAction,
    /// The job it concerns, if any.
    pub job_id: Option<String>,
    /// The run it concerns, if any.
    pub execution_id: Option<String>,
    /// The caller's note, kept in full.
    pub note: Option<String>,
    /// Where it came from.
    pub source: Source,
    /// The instance that took it.
    pub instance_id: String,
    /// Anything else, as JSON.
    pub detail: Option<Value>,
}

/// An audit row as stored (`control_audit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Its id, increasing: the cursor of [`AuditQuery::before_id`].
    pub id: i64,
    /// The row.
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// Which audit rows to read, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this job's rows.
    pub job_id: Option<String>,
    /// At most this many (capped at [`MAX_AUDIT_LIMIT`]).
    pub limit: usize,
    /// Only rows older than this id: the last id of the previous page.
    pub before_id: Option<i64>,
}

impl AuditQuery {
    /// The newest `limit` rows of every job.
    pub fn new(limit: usize) -> Self {
        AuditQuery { job_id: None, limit, before_id: None }
    }

    /// Only `job_id`'s rows.
    pub fn job(mut self, job_id: impl Into<String>) -> Self {
        self.job_id = Some(job_id.into());
        self
    }

    /// Only rows older than `id`.
    pub fn before(mut self, id: i64) -> Self {
        self.before_id = Some(id);
        self
    }

    /// The limit as stored, within `0..=MAX_AUDIT_LIMIT`.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn capped_limit(&self) -> i64 {
        self.limit.min(MAX_AUDIT_LIMIT) as i64
    }
}

/// The schedule state shared by every instance on one database. The SQL
/// stores run reads on their reader threads or pool and writes in one
/// transaction each, with the store's operation deadline.
///
/// Text a caller gives (notes, ids) is stored in full. A value a database
/// cannot hold (a time outside years 1 to 9999, a NUL character for
/// Postgres) fails the call as
/// [`StoreError::Rejected`](mscribe_scheduler::StoreError::Rejected), and
/// nothing is written.
#[async_trait]
pub trait ControlStore: Send + Sync + fmt::Debug {
    /// Inserts or replaces the definitions (keyed by job id), in one
    /// transaction; a definition made through the API or the CLI
    /// ([`put_definition`](Self::put_definition)) is kept, not replaced by
    /// one of another source (a configuration's job of the same id).
    async fn upsert_definitions(&self, defs: &[JobDefinition]) -> StoreResult<()>;

    /// Every stored definition, by job id.
    async fn definitions(&self) -> StoreResult<Vec<JobDefinition>>;

    /// Pauses or resumes `job_id`: its row in `job_pauses` takes the change
    /// (its version grows by one), and an audit row (`pause` or `resume`)
    /// is written, in one transaction. Returns the new state.
    async fn set_paused(&self, job_id: &str, change: &PauseChange) -> StoreResult<PauseState>;

    /// The jobs paused now, by job id.
    async fn pause_states(&self) -> StoreResult<Vec<PauseState>>;

    /// One job's stored state (paused or resumed), `None` if it was never
    /// paused.
    async fn pause_state(&self, job_id: &str) -> StoreResult<Option<PauseState>>;

    /// Records a manual trigger and its audit row, in one transaction;
    /// returns its id.
    async fn request_trigger(&self, req: &NewTrigger) -> StoreResult<i64>;

    /// Takes up to [`MAX_TAKE`] pending triggers of `job_ids` for
    /// `instance_id`, oldest first. Atomic: each trigger is taken by exactly
    /// one call, whatever the number of instances racing.
    ///
    /// Also taken again: a trigger taken between [`TRIGGER_RETAKE_WINDOW`]
    /// and [`TRIGGER_RETAKE_AFTER`] before `now` that is not finished, or
    /// finished as `pending` (waiting for its claim), and whose fire (its
    /// job at its `requested_at`) has no claim in `fire_claims`: its taker
    /// died before claiming it. A trigger is run as the fire at its
    /// `requested_at`, whose claim lets one instance only run it, so a
    /// trigger taken twice still runs once.
    async fn take_triggers(
        &self,
        instance_id: &str,
        job_ids: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<TriggerRequest>>;

    /// Records what a taken trigger did; returns whether the trigger exists.
    async fn finish_trigger(
        &self,
        id: i64,
        execution_id: Option<&str>,
        outcome: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// One trigger by id.
    async fn trigger_request(&self, id: i64) -> StoreResult<Option<TriggerRequest>>;

    /// Records a cancel request and its audit row, in one transaction;
    /// returns its id.
    async fn request_cancel(&self, req: &NewCancel) -> StoreResult<i64>;

    /// Up to [`MAX_TAKE`] requests not yet handled, oldest first.
    async fn pending_cancels(&self) -> StoreResult<Vec<CancelRequest>>;

    /// Marks a request handled by `instance_id` with `outcome`, unless it
    /// already was; returns whether this call marked it.
    async fn finish_cancel(
        &self,
        id: i64,
        instance_id: &str,
        outcome: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// One cancel request by id.
    async fn cancel_request(&self, id: i64) -> StoreResult<Option<CancelRequest>>;

    /// The job of run `execution_id` (a UUID) while one of its attempts is
    /// recorded `running`, else `None`: whether any instance may be running
    /// it, for a cancel made without a server.
    async fn running_job(&self, execution_id: &str) -> StoreResult<Option<String>>;

    /// Writes the definition of a job defined through the API or the CLI
    /// (its `source` is [`Source::Api`] or [`Source::Cli`]) with its audit
    /// row, in one transaction; a definition of the same id is replaced.
    async fn put_definition(&self, def: &JobDefinition, audit: &AuditEntry) -> StoreResult<()>;

    /// Deletes the definition of `job_id` if it was defined through the API
    /// or the CLI, with its stored pause state, writing `audit` in the same
    /// transaction; returns whether there was one. A definition from the
    /// configuration or from code is left alone (`false`).
    async fn delete_definition(&self, job_id: &str, audit: &AuditEntry) -> StoreResult<bool>;

    /// Takes the backfill lock of `job_id` for `holder` until `now + ttl`,
    /// if nobody holds it or its lease ran out by `now`; otherwise answers
    /// the live lock. Atomic across instances: of two callers racing, one
    /// gets it.
    async fn lock_backfill(
        &self,
        job_id: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> StoreResult<BackfillLockOutcome>;

    /// Extends the lock `holder` holds on `job_id` to `now + ttl`; `false`
    /// when it does not hold it any more (it ran out and was taken).
    async fn renew_backfill(
        &self,
        job_id: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> StoreResult<bool>;

    /// Gives back the lock `holder` holds on `job_id`; `false` when it held
    /// none.
    async fn unlock_backfill(&self, job_id: &str, holder: &str) -> StoreResult<bool>;

    /// Writes an audit row for an action recorded elsewhere (e.g. a
    /// backfill); returns its id.
    async fn record_audit(&self, entry: &AuditEntry) -> StoreResult<i64>;

    /// Audit rows, newest first (by id).
    async fn audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>>;

    /// Deletes the finished triggers and handled cancel requests from
    /// before `before` (never the newest of each, so ids keep increasing);
    /// returns how many. The audit log is kept: see
    /// [`prune_audit`](Self::prune_audit).
    async fn prune_control(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    /// Deletes the audit rows whose `at` is before `before`, except the
    /// newest row (so ids keep increasing and an [`AuditQuery::before`]
    /// cursor never meets a reused id); returns how many. The server's
    /// `history-retention` job calls it with its `keep` cutoff.
    ///
    /// The default refuses ([`StoreError::Rejected`](mscribe_scheduler::StoreError::Rejected)):
    /// a store that keeps its audit log forever says so. The SQLite and
    /// Postgres stores implement it.
    async fn prune_audit(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let _ = before;
        Err(mscribe_scheduler::StoreError::Rejected {
            message: "this control store does not prune its audit log".to_owned(),
            source: None,
        })
    }
}

/// A value the store cannot hold.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn rejected(message: String) -> mscribe_scheduler::StoreError {
    mscribe_scheduler::StoreError::Rejected { message, source: None }
}

/// A stored JSON text.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn decode_json(what: &str, text: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| mscribe_scheduler::StoreError::Corrupt {
        message: format!("{what} is not JSON ({e}): {text:.200}"),
    })
}

/// A stored version, never below 1.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn decode_version(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0).max(1)
}

/// The audit detail of a trigger, cancel or pause: `{"<key>": id}`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn id_detail(key: &str, id: i64) -> String {
    serde_json::json!({ key: id }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_actions_round_trip_as_text() {
        for s in ["api", "cli", "config", "code", "system", "later"] {
            assert_eq!(Source::from(s).as_str(), s);
            assert_eq!(AuditAction::from(s).as_str(), s);
        }
        assert_eq!(Source::from("api"), Source::Api);
        assert_eq!(Source::from("x"), Source::Other("x".into()));
        assert_eq!(AuditAction::from("backfill"), AuditAction::Backfill);
        assert_eq!(serde_json::to_string(&Source::Cli).unwrap(), "\"cli\"");
        assert_eq!(serde_json::from_str::<Source>("\"api\"").unwrap(), Source::Api);
    }

    #[test]
    fn audit_records_round_trip_as_json() {
        let r = AuditRecord {
            id: 7,
            entry: AuditEntry {
                at: DateTime::UNIX_EPOCH,
                action: AuditAction::Pause,
                job_id: Some("j".into()),
                execution_id: None,
                note: Some("n".into()),
                source: Source::Api,
                instance_id: "i1".into(),
                detail: Some(serde_json::json!({"version": 1})),
            },
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["action"], "pause");
        assert_eq!(v["source"], "api");
        assert_eq!(serde_json::from_value::<AuditRecord>(v).unwrap(), r);
    }

    #[test]
    fn audit_queries_cap_their_limit() {
        let q = AuditQuery::new(5_000).job("j").before(9);
        assert_eq!(q.capped_limit(), MAX_AUDIT_LIMIT as i64);
        assert_eq!(q.job_id.as_deref(), Some("j"));
        assert_eq!(q.before_id, Some(9));
    }
}
