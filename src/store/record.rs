//! What a store keeps and is asked: the events the scheduler writes, the
//! rows they become, their status and id, and the queries, prune policy and
//! fire claims of [`ExecutionStore`](super::ExecutionStore).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::failure::ErrorKind;

/// The status of one attempt, or of a fire that did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// The attempt has started and not ended.
    Running,
    /// The handler returned success.
    Succeeded,
    /// The handler returned an error, a failed result, or panicked; a retry may follow.
    Failed,
    /// The attempt ran past its timeout; a retry may follow.
    TimedOut,
    /// The run was cancelled (stop, replace, unregister); no retry follows.
    Cancelled,
    /// The last allowed attempt failed or timed out.
    RetriesExhausted,
    /// The process running the attempt died; found at a later start.
    Abandoned,
    /// The fire was not run, by the overlap or misfire policy or while paused.
    Skipped,
}

impl ExecutionStatus {
    /// Every status, in declaration order.
    pub const ALL: [ExecutionStatus; 8] = [
        ExecutionStatus::Running,
        ExecutionStatus::Succeeded,
        ExecutionStatus::Failed,
        ExecutionStatus::TimedOut,
        ExecutionStatus::Cancelled,
        ExecutionStatus::RetriesExhausted,
        ExecutionStatus::Abandoned,
        ExecutionStatus::Skipped,
    ];

    /// The snake_case name used in storage, logs and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "running",
            ExecutionStatus::Succeeded => "succeeded",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::TimedOut => "timed_out",
            ExecutionStatus::Cancelled => "cancelled",
            ExecutionStatus::RetriesExhausted => "retries_exhausted",
            ExecutionStatus::Abandoned => "abandoned",
            ExecutionStatus::Skipped => "skipped",
        }
    }

    /// Whether the status ends a record (everything but `Running`).
    pub fn is_final(self) -> bool {
        self != ExecutionStatus::Running
    }

    /// Whether the status counts as a failure for retention and alerting.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Failed
                | ExecutionStatus::TimedOut
                | ExecutionStatus::RetriesExhausted
                | ExecutionStatus::Abandoned
        )
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an [`ExecutionStatus`] from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown execution status \"{0}\": expected one of running, succeeded, failed, timed_out, cancelled, retries_exhausted, abandoned, skipped"
)]
pub struct ParseStatusError(pub String);

impl FromStr for ExecutionStatus {
    type Err = ParseStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ExecutionStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| ParseStatusError(s.to_owned()))
    }
}

/// The identity of one run of a job (all of its attempts share it): 128
/// bits, written as a UUID-shaped string. The scheduler makes them (its
/// instance's bits, then a counter); a store keeps them as text or bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionId(pub(crate) u128);

impl ExecutionId {
    /// The id with these 128 bits.
    pub const fn from_u128(bits: u128) -> Self {
        ExecutionId(bits)
    }

    /// Its 128 bits.
    pub const fn as_u128(self) -> u128 {
        self.0
    }
}

impl fmt::Display for ExecutionId {
    /// Formats as a lowercase hyphenated UUID-shaped string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (v >> 96) as u32,
            (v >> 80) as u16,
            (v >> 64) as u16,
            (v >> 48) as u16,
            (v & 0xffff_ffff_ffff) as u64
        )
    }
}

/// The error of parsing an [`ExecutionId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid execution id \"{0}\": expected 32 hex digits, hyphens allowed")]
pub struct ParseExecutionIdError(pub String);

impl FromStr for ExecutionId {
    type Err = ParseExecutionIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 {
            return Err(ParseExecutionIdError(s.to_owned()));
        }
        u128::from_str_radix(&hex, 16)
            .map(ExecutionId)
            .map_err(|_| ParseExecutionIdError(s.to_owned()))
    }
}

impl Serialize for ExecutionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ExecutionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Numeric metrics a handler reports, by name.
pub type Metrics = BTreeMap<String, f64>;

/// An attempt has started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptStart {
    /// The job's id.
    pub job_id: Arc<str>,
    /// The run this attempt belongs to.
    pub execution_id: ExecutionId,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The nominal fire time this run serves (what misfire planning reads back).
    pub scheduled_at: DateTime<Utc>,
    /// When the attempt started.
    pub started_at: DateTime<Utc>,
    /// The scheduler instance running it (for abandonment detection).
    pub instance_id: Arc<str>,
}

/// An attempt has ended.
///
/// It repeats the start's fields so that it is self-contained: a store
/// upserts it, and the row is complete even if the `Started` event was lost
/// (dropped from a full buffer during an outage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptEnd {
    /// The job's id.
    pub job_id: Arc<str>,
    /// The run this attempt belongs to.
    pub execution_id: ExecutionId,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The nominal fire time this run serves.
    pub scheduled_at: DateTime<Utc>,
    /// When the attempt started.
    pub started_at: DateTime<Utc>,
    /// The scheduler instance that ran it.
    pub instance_id: Arc<str>,
    /// The final status (never `Running`).
    pub status: ExecutionStatus,
    /// When the attempt ended.
    pub completed_at: DateTime<Utc>,
    /// How long the attempt ran.
    pub duration: Duration,
    /// The error, for every status but `Succeeded`.
    pub error: Option<String>,
    /// Whether the handler's error was transient or permanent; `None` when
    /// the handler returned no error (success, timeout, cancellation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    /// The handler's result data.
    pub result: Option<serde_json::Value>,
    /// The handler's metrics.
    pub metrics: Option<Metrics>,
}

/// A fire that was not run; stored as one row with status `skipped`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedFire {
    /// The job's id.
    pub job_id: Arc<str>,
    /// A fresh id for the row.
    pub execution_id: ExecutionId,
    /// The nominal fire time that was not run.
    pub scheduled_at: DateTime<Utc>,
    /// When the decision was made.
    pub decided_at: DateTime<Utc>,
    /// Why, e.g. `overlap policy skip: previous run still running`.
    pub reason: String,
    /// The scheduler instance that decided.
    pub instance_id: Arc<str>,
}

/// One thing the scheduler writes to the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ExecutionEvent {
    /// An attempt started: insert a `running` row.
    Started(AttemptStart),
    /// An attempt ended: complete its row.
    Finished(AttemptEnd),
    /// A fire was skipped: insert a `skipped` row.
    Skipped(SkippedFire),
}

impl ExecutionEvent {
    /// The job the event belongs to.
    pub fn job_id(&self) -> &str {
        match self {
            ExecutionEvent::Started(s) => &s.job_id,
            ExecutionEvent::Finished(e) => &e.job_id,
            ExecutionEvent::Skipped(s) => &s.job_id,
        }
    }
}

/// One stored row: an attempt, or a skipped fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// The job's id.
    pub job_id: String,
    /// The run's id.
    pub execution_id: ExecutionId,
    /// The attempt number (0 for a skipped fire).
    pub attempt: u32,
    /// The current status.
    pub status: ExecutionStatus,
    /// The nominal fire time.
    pub scheduled_at: DateTime<Utc>,
    /// When the attempt started (or the skip was decided).
    pub started_at: DateTime<Utc>,
    /// When it ended; `None` while running.
    pub completed_at: Option<DateTime<Utc>>,
    /// How long it ran, in milliseconds.
    pub duration_ms: Option<u64>,
    /// The error or skip reason.
    pub error: Option<String>,
    /// Whether the handler's error was transient or permanent (see
    /// [`AttemptEnd::error_kind`]).
    #[serde(default)]
    pub error_kind: Option<ErrorKind>,
    /// The handler's result data.
    pub result: Option<serde_json::Value>,
    /// The handler's metrics.
    pub metrics: Option<Metrics>,
    /// The instance that ran it.
    pub instance_id: String,
}

impl ExecutionRecord {
    /// Applies an event to build or update a record (used by the memory store
    /// and by tests as the reference semantics of `write`).
    pub fn from_start(s: &AttemptStart) -> Self {
        ExecutionRecord {
            job_id: s.job_id.to_string(),
            execution_id: s.execution_id,
            attempt: s.attempt,
            status: ExecutionStatus::Running,
            scheduled_at: s.scheduled_at,
            started_at: s.started_at,
            completed_at: None,
            duration_ms: None,
            error: None,
            error_kind: None,
            result: None,
            metrics: None,
            instance_id: s.instance_id.to_string(),
        }
    }

    /// The row a skipped fire becomes.
    pub fn from_skip(s: &SkippedFire) -> Self {
        ExecutionRecord {
            job_id: s.job_id.to_string(),
            execution_id: s.execution_id,
            attempt: 0,
            status: ExecutionStatus::Skipped,
            scheduled_at: s.scheduled_at,
            started_at: s.decided_at,
            completed_at: Some(s.decided_at),
            duration_ms: Some(0),
            error: Some(s.reason.clone()),
            error_kind: None,
            result: None,
            metrics: None,
            instance_id: s.instance_id.to_string(),
        }
    }

    /// The complete row of an end event whose start was never stored.
    pub fn from_end(e: &AttemptEnd) -> Self {
        let mut rec = ExecutionRecord::from_start(&AttemptStart {
            job_id: e.job_id.clone(),
            execution_id: e.execution_id,
            attempt: e.attempt,
            scheduled_at: e.scheduled_at,
            started_at: e.started_at,
            instance_id: e.instance_id.clone(),
        });
        rec.apply_end(e);
        rec
    }

    /// Completes the record with an end event.
    pub fn apply_end(&mut self, e: &AttemptEnd) {
        self.status = e.status;
        self.completed_at = Some(e.completed_at);
        self.duration_ms = Some(duration_ms(e.duration));
        self.error = e.error.clone();
        self.error_kind = e.error_kind;
        self.result = e.result.clone();
        self.metrics = e.metrics.clone();
    }
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A history query: newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// The job whose rows to read.
    pub job_id: String,
    /// At most this many rows.
    pub limit: usize,
    /// Only rows with this status.
    pub status: Option<ExecutionStatus>,
}

impl HistoryQuery {
    /// The latest `limit` rows of a job, any status.
    pub fn new(job_id: impl Into<String>, limit: usize) -> Self {
        HistoryQuery { job_id: job_id.into(), limit, status: None }
    }

    /// Only rows with `status`.
    pub fn with_status(mut self, status: ExecutionStatus) -> Self {
        self.status = Some(status);
        self
    }
}

/// What [`ExecutionStore::prune`](super::ExecutionStore::prune) removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunePolicy {
    /// Remove finished rows that started before this time.
    pub older_than: DateTime<Utc>,
    /// Keep failure rows (see [`ExecutionStatus::is_failure`]) until this
    /// earlier time instead; `None` treats them like the rest.
    pub failures_older_than: Option<DateTime<Utc>>,
}

/// A scheduled fire that an instance asks to run: see
/// [`ExecutionStore::claim_fires`](super::ExecutionStore::claim_fires).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FireClaim {
    /// The job.
    pub job_id: Arc<str>,
    /// The fire's nominal time.
    pub scheduled_at: DateTime<Utc>,
}
