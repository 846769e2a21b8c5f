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
    /// Formats as a lowercase hyphenated UUID-shaped string (by hand: the
    /// stores write one per row).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 36];
        let mut nibble = 0;
        for (i, b) in out.iter_mut().enumerate() {
            if !matches!(i, 8 | 13 | 18 | 23) {
                *b = HEX[((self.0 >> (124 - 4 * nibble)) & 0xf) as usize];
                nibble += 1;
            }
        }
        // Only ASCII hex digits and hyphens were written.
        f.pad(std::str::from_utf8(&out).unwrap_or_default())
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
    /// What made the fire: its schedule, a trigger or a backfill.
    #[serde(default)]
    pub kind: FireKind,
    /// The fencing token of the lease this instance holds on the fire, for
    /// a fire claimed in a shared store ([`FireLease`]); `None` otherwise.
    /// A store refuses an event whose token is not the fire's current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<u64>,
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
    /// What made the fire.
    #[serde(default)]
    pub kind: FireKind,
    /// The fencing token of the fire's lease, as in [`AttemptStart::fence`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<u64>,
    /// Whether this attempt is the run's last: no retry follows. A store
    /// that leases fires ends the fire's lease with it.
    #[serde(default = "yes")]
    pub ends_run: bool,
}

fn yes() -> bool {
    true
}

#[cfg(test)]
impl AttemptEnd {
    /// A first attempt of `job_id` that succeeded at once at `at`, the
    /// run's last: the plain end that the crate's tests write.
    pub(crate) fn succeeded(
        job_id: Arc<str>,
        instance_id: Arc<str>,
        execution_id: ExecutionId,
        at: DateTime<Utc>,
    ) -> Self {
        AttemptEnd {
            job_id,
            execution_id,
            attempt: 1,
            scheduled_at: at,
            started_at: at,
            instance_id,
            status: ExecutionStatus::Succeeded,
            completed_at: at,
            duration: Duration::ZERO,
            error: None,
            error_kind: None,
            result: None,
            metrics: None,
            kind: FireKind::Schedule,
            fence: None,
            ends_run: true,
        }
    }
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
    /// What made the fire.
    #[serde(default)]
    pub kind: FireKind,
    /// The fencing token of the fire's lease, as in [`AttemptStart::fence`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<u64>,
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

    /// The nominal fire time the event is about.
    pub fn scheduled_at(&self) -> DateTime<Utc> {
        match self {
            ExecutionEvent::Started(s) => s.scheduled_at,
            ExecutionEvent::Finished(e) => e.scheduled_at,
            ExecutionEvent::Skipped(s) => s.scheduled_at,
        }
    }

    /// The run the event belongs to.
    pub fn execution_id(&self) -> ExecutionId {
        match self {
            ExecutionEvent::Started(s) => s.execution_id,
            ExecutionEvent::Finished(e) => e.execution_id,
            ExecutionEvent::Skipped(s) => s.execution_id,
        }
    }

    /// The attempt the event is about; 0 for a skipped fire.
    pub fn attempt(&self) -> u32 {
        match self {
            ExecutionEvent::Started(s) => s.attempt,
            ExecutionEvent::Finished(e) => e.attempt,
            ExecutionEvent::Skipped(_) => 0,
        }
    }

    /// The event in a few words, for an error that names it: `start of
    /// attempt 2 of execution …`, `end of …`, `skip of execution …`.
    pub fn describe(&self) -> String {
        let id = self.execution_id();
        match self {
            ExecutionEvent::Started(s) => {
                format!("start of attempt {} of execution {id}", s.attempt)
            }
            ExecutionEvent::Finished(e) => {
                format!("end of attempt {} of execution {id}", e.attempt)
            }
            ExecutionEvent::Skipped(_) => format!("skip of execution {id}"),
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
    /// What made the fire: `schedule`, `manual` or `backfill`.
    #[serde(default)]
    pub kind: FireKind,
    /// The fencing token of the fire's lease when the fire was claimed in a
    /// shared store: 1 for the instance that claimed it, one more for each
    /// instance that took it over after its owner stopped renewing the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<u64>,
}

impl ExecutionRecord {
    /// Applies an event to build or update a record (used by the memory store
    /// and by tests as the reference semantics of `write`).
    pub fn from_start(s: &AttemptStart) -> Self {
        // `String::from(&*arc)` copies; `arc.to_string()` goes through
        // `Display` and the formatter (callgrind: 686 instructions a fire).
        ExecutionRecord {
            job_id: String::from(&*s.job_id),
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
            instance_id: String::from(&*s.instance_id),
            kind: s.kind,
            fence: s.fence,
        }
    }

    /// The row a skipped fire becomes.
    pub fn from_skip(s: &SkippedFire) -> Self {
        ExecutionRecord {
            job_id: String::from(&*s.job_id),
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
            instance_id: String::from(&*s.instance_id),
            kind: s.kind,
            fence: s.fence,
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
            kind: e.kind,
            fence: e.fence,
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
///
/// The history order is `started_at` descending, then `attempt`
/// descending, then `execution_id` descending: every row has its own place
/// in it (its [`HistoryPosition`]). A page starts at the newest row, or
/// right after a position ([`before`](Self::before)), so a reader pages
/// through a job's history by passing the position of the last row of one
/// page to the query of the next: rows sharing a `started_at` are neither
/// skipped nor repeated, and rows written meanwhile (newer) do not shift the
/// pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// The job whose rows to read.
    pub job_id: String,
    /// At most this many rows.
    pub limit: usize,
    /// Only rows with this status.
    pub status: Option<ExecutionStatus>,
    /// Only rows strictly older than this position in the history order
    /// (see [`HistoryPosition`]); `None`: from the newest row.
    pub before: Option<HistoryPosition>,
}

impl HistoryQuery {
    /// The latest `limit` rows of a job, any status.
    pub fn new(job_id: impl Into<String>, limit: usize) -> Self {
        HistoryQuery { job_id: job_id.into(), limit, status: None, before: None }
    }

    /// Only rows with `status`.
    pub fn with_status(mut self, status: ExecutionStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only rows strictly older than `position` in the history order: the
    /// page after the row at `position` (which need not exist any more).
    ///
    /// ```
    /// use mscribe_scheduler::{HistoryPosition, HistoryQuery};
    /// # fn page(rows: &[mscribe_scheduler::ExecutionRecord]) -> Option<HistoryQuery> {
    /// // The query of the page after `rows`, a page of 50.
    /// let last = rows.last()?;
    /// Some(HistoryQuery::new(&last.job_id, 50).before(HistoryPosition::of(last)))
    /// # }
    /// ```
    pub fn before(mut self, position: HistoryPosition) -> Self {
        self.before = Some(position);
        self
    }

    /// Whether `record` belongs to the rows this query selects, the limit
    /// aside: its job, its status if one is asked for, and older than
    /// [`before`](Self::before) if set.
    pub fn matches(&self, record: &ExecutionRecord) -> bool {
        record.job_id == self.job_id
            && self.status.is_none_or(|s| record.status == s)
            && self.before.is_none_or(|p| HistoryPosition::of(record) < p)
    }
}

/// A row's place in the history order of [`HistoryQuery`]: its
/// `(started_at, attempt, execution_id)`, which no two rows share.
///
/// Positions compare in that order, field by field, so a smaller position
/// is an older row; history lists rows from the greatest position down.
/// [`HistoryQuery::before`] selects the rows with a smaller position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HistoryPosition {
    /// When the row's attempt started.
    pub started_at: DateTime<Utc>,
    /// The row's attempt.
    pub attempt: u32,
    /// The row's run.
    pub execution_id: ExecutionId,
}

impl HistoryPosition {
    /// The position of `record`.
    pub fn of(record: &ExecutionRecord) -> Self {
        HistoryPosition {
            started_at: record.started_at,
            attempt: record.attempt,
            execution_id: record.execution_id,
        }
    }
}

impl From<&ExecutionRecord> for HistoryPosition {
    fn from(record: &ExecutionRecord) -> Self {
        HistoryPosition::of(record)
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

/// What made a fire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FireKind {
    /// The job's schedule.
    #[default]
    Schedule,
    /// A manual trigger ([`JobScheduler::trigger`](crate::JobScheduler::trigger)).
    Manual,
    /// A backfill of a past fire ([`JobScheduler::backfill`](crate::JobScheduler::backfill)).
    Backfill,
}

impl FireKind {
    /// Every kind, in order.
    pub const ALL: [FireKind; 3] = [FireKind::Schedule, FireKind::Manual, FireKind::Backfill];

    /// The kind's name as stored: `schedule`, `manual` or `backfill`.
    pub fn as_str(self) -> &'static str {
        match self {
            FireKind::Schedule => "schedule",
            FireKind::Manual => "manual",
            FireKind::Backfill => "backfill",
        }
    }
}

impl fmt::Display for FireKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FireKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FireKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            format!("unknown fire kind \"{s}\": expected schedule, manual or backfill")
        })
    }
}

/// A scheduled fire that an instance asks to run: see
/// [`ExecutionStore::claim_fires`](super::ExecutionStore::claim_fires).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FireClaim {
    /// The job.
    pub job_id: Arc<str>,
    /// The fire's nominal time.
    pub scheduled_at: DateTime<Utc>,
    /// The id the claimer gives the fire's run (kept in the claim, so that
    /// an instance that takes the fire over continues it).
    pub execution_id: ExecutionId,
    /// At most this many fires of the job may hold live leases at once,
    /// across every instance (a job whose overlap holds across the
    /// cluster); `None`: no limit.
    pub max_running: Option<u32>,
    /// What made the fire: a scheduled fire or a manual trigger (kept in
    /// the claim, so that an instance that takes the fire over knows it).
    pub kind: FireKind,
}

/// A store's answer to one [`FireClaim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This instance holds the fire's lease, with this fencing token.
    Won {
        /// The token: 1 for a fresh claim.
        fence: u64,
    },
    /// Another instance (or an earlier claim of this one) took the fire.
    Taken,
    /// The job's limit of live leases was reached: this instance holds the
    /// fire (token `fence`) only to record it as skipped, which ends it.
    Busy {
        /// The token to record the skip with.
        fence: u64,
        /// How many fires of the job held live leases.
        running: u32,
    },
}

/// A lease this instance holds on a fire, to renew
/// ([`ExecutionStore::renew_leases`](super::ExecutionStore::renew_leases)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FireLease {
    /// The job.
    pub job_id: Arc<str>,
    /// The fire's nominal time.
    pub scheduled_at: DateTime<Utc>,
    /// The fencing token the lease was taken with.
    pub fence: u64,
}

/// A fire whose lease ran out before it ended: its owner stopped renewing
/// it ([`ExecutionStore::expired_leases`](super::ExecutionStore::expired_leases)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredLease {
    /// The job.
    pub job_id: String,
    /// The fire's nominal time.
    pub scheduled_at: DateTime<Utc>,
    /// The run's id, as its owner gave it.
    pub execution_id: ExecutionId,
    /// The lease's fencing token.
    pub fence: u64,
    /// The instance that held it.
    pub owner: String,
    /// When the lease ran out.
    pub expired_at: DateTime<Utc>,
    /// What made the fire, as claimed.
    pub kind: FireKind,
}

/// A fire this instance took over
/// ([`ExecutionStore::retake_fire`](super::ExecutionStore::retake_fire)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetakenFire {
    /// The new fencing token (the old one plus one).
    pub fence: u64,
    /// The attempt the run continues with: one more than its last recorded
    /// attempt (whose `running` row the store marked `abandoned`), or 1.
    pub next_attempt: u32,
    /// Whether the run had recorded rows (now under the new execution id).
    pub had_rows: bool,
}

/// An instance's last heartbeat, as [`ExecutionStore::instances`](super::ExecutionStore::instances)
/// reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceHeartbeat {
    /// The instance's id.
    pub instance_id: String,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// Its first heartbeat, when the store keeps it.
    pub started_at: Option<DateTime<Utc>>,
    /// The host it runs on, when the store knows it.
    pub hostname: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written formatter writes what the formatting macros did,
    /// and the text parses back.
    #[test]
    fn execution_ids_format_as_hyphenated_uuids() {
        let mut v: u128 = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;
        for bits in [0, 1, u128::MAX].into_iter().chain((0..500).map(|_| {
            v = v.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835).wrapping_add(1);
            v
        })) {
            let id = ExecutionId(bits);
            let want = format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                (bits >> 96) as u32,
                (bits >> 80) as u16,
                (bits >> 64) as u16,
                (bits >> 48) as u16,
                (bits & 0xffff_ffff_ffff) as u64
            );
            assert_eq!(id.to_string(), want);
            assert_eq!(want.parse::<ExecutionId>().unwrap(), id);
        }
        assert_eq!(format!("{:>38}", ExecutionId(0)), format!("  {}", ExecutionId(0)));
    }
}
