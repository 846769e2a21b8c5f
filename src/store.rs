//! Execution records and the [`ExecutionStore`] trait that keeps them.
//!
//! One row per attempt. The scheduler writes [`ExecutionEvent`]s in order
//! (an attempt's `Started` always before its `Finished`) through a bounded
//! buffer, so a slow or failing store never blocks a job. Writes must be
//! idempotent: the same event may be written twice after a failure whose
//! outcome was unknown (`Started` is keyed by `(execution_id, attempt)`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::failure::ErrorKind;

/// A `Result` whose error is a [`StoreError`].
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// A boxed error from a store's driver, kept as the cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or answered with a transient error;
    /// the same write may succeed later.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What happened, naming the backend.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The backend refused the operation; retrying the same input fails again.
    #[error("store rejected the operation: {message}")]
    Rejected {
        /// What happened, naming the bad value.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },
    /// A value read back from the backend could not be decoded.
    #[error("corrupt record in store: {message}")]
    Corrupt {
        /// What could not be decoded.
        message: String,
    },
}

impl StoreError {
    /// A transient failure with its cause.
    pub fn unavailable(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Unavailable { message: message.into(), source: Some(source.into()) }
    }

    /// A permanent failure with its cause.
    pub fn rejected(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Rejected { message: message.into(), source: Some(source.into()) }
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

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

/// The identity of one run of a job (all of its attempts share it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionId(pub u128);

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
pub fn duration_ms(d: Duration) -> u64 {
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

/// What [`ExecutionStore::prune`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunePolicy {
    /// Remove finished rows that started before this time.
    pub older_than: DateTime<Utc>,
    /// Keep failure rows (see [`ExecutionStatus::is_failure`]) until this
    /// earlier time instead; `None` treats them like the rest.
    pub failures_older_than: Option<DateTime<Utc>>,
}

/// A scheduled fire that an instance asks to run: see
/// [`ExecutionStore::claim_fires`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FireClaim {
    /// The job.
    pub job_id: Arc<str>,
    /// The fire's nominal time.
    pub scheduled_at: DateTime<Utc>,
}

/// Where execution records live.
///
/// `Finished` events carry the whole row, so a store upserts them by
/// `(execution_id, attempt)`; `Started` and `Skipped` insert and ignore a
/// conflict. Methods take `&self`: implementations synchronise inside, so a store is
/// shared as `Arc<dyn ExecutionStore>` with no outer lock.
#[async_trait]
pub trait ExecutionStore: Send + Sync + fmt::Debug + 'static {
    /// Writes events in order, as one batch where the backend allows.
    /// Must be idempotent per event (see the module docs).
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()>;

    /// The latest rows of a job, newest first (by `started_at`, then attempt).
    async fn history(&self, query: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>>;

    /// The latest nominal fire time recorded for a job (run or skipped).
    async fn last_fire(&self, job_id: &str) -> StoreResult<Option<DateTime<Utc>>>;

    /// [`last_fire`](Self::last_fire) of many jobs at once (read at `start()`
    /// for every registered job); jobs with no record are absent. Backends
    /// should override it with one query.
    async fn last_fires(
        &self,
        job_ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, DateTime<Utc>>> {
        let mut out = std::collections::HashMap::new();
        for id in job_ids {
            if let Some(t) = self.last_fire(id).await? {
                out.insert(id.clone(), t);
            }
        }
        Ok(out)
    }

    /// Records that `instance_id` is alive at `now` (upsert of one row per
    /// instance). The scheduler calls it at start and then periodically.
    async fn heartbeat(&self, instance_id: &str, now: DateTime<Utc>) -> StoreResult<()>;

    /// Marks as `abandoned` every `running` row of an instance other than
    /// `own_instance` whose last heartbeat is older than `now - stale_after`
    /// (or that never sent one), completing it at `now` with an error naming
    /// the instance. Returns the rows changed, as they are afterwards.
    async fn mark_abandoned(
        &self,
        own_instance: &str,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> StoreResult<Vec<ExecutionRecord>>;

    /// Deletes finished rows per the policy; returns how many.
    ///
    /// It also forgets the claims of fires due before `older_than`, and
    /// every instance whose last heartbeat is older than `older_than` and
    /// that has no `running` row: one heartbeat row per process start would
    /// otherwise pile up for ever. Forgetting changes no
    /// answer of [`mark_abandoned`](Self::mark_abandoned), which treats an
    /// instance without a heartbeat as stale.
    async fn prune(&self, policy: PrunePolicy) -> StoreResult<u64>;

    /// Whether [`claim_fires`](Self::claim_fires) works: the store can be
    /// shared by several instances that each run a fire once between them
    /// ([`SchedulerBuilder::claim_fires`](crate::SchedulerBuilder::claim_fires)).
    fn supports_claims(&self) -> bool {
        false
    }

    /// Claims each fire for `instance_id`, at `now`, and answers, fire by
    /// fire in order, whether this call took it. A fire is taken once: a
    /// later claim of the same `(job_id, scheduled_at)`, by any instance
    /// (this one included), gets `false`. The batch is one transaction
    /// where the backend allows.
    ///
    /// Claims older than a prune's `older_than` are forgotten by
    /// [`prune`](Self::prune). The default refuses: a store must override
    /// both this and [`supports_claims`](Self::supports_claims).
    async fn claim_fires(
        &self,
        instance_id: &str,
        fires: &[FireClaim],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<bool>> {
        let _ = (instance_id, fires, now);
        Err(StoreError::Rejected {
            message: format!("{self:?} cannot claim fires for several instances"),
            source: None,
        })
    }

    /// Records an attempt start (one-event `write`).
    async fn record_start(&self, start: AttemptStart) -> StoreResult<()> {
        self.write(&[ExecutionEvent::Started(start)]).await
    }

    /// Records an attempt end (one-event `write`).
    async fn record_end(&self, end: AttemptEnd) -> StoreResult<()> {
        self.write(&[ExecutionEvent::Finished(end)]).await
    }
}

/// An in-memory store: the reference implementation, and the default when
/// history need not survive the process.
///
/// It keeps the newest [`DEFAULT_ROWS_PER_JOB`](Self::DEFAULT_ROWS_PER_JOB)
/// rows of each job, so a scheduler left on its default store runs for
/// months in bounded memory: a job firing every second would otherwise add
/// some 86,000 rows a day. The oldest finished row of a job goes first; a
/// row still `running` is never dropped, so its end always finds it.
/// [`with_rows_per_job`](Self::with_rows_per_job) sets another bound and
/// [`unbounded`](Self::unbounded) keeps everything (for tests that check a
/// whole history).
///
/// ```
/// use std::num::NonZeroUsize;
/// use mscribe_scheduler::MemoryStore;
///
/// let store = MemoryStore::with_rows_per_job(NonZeroUsize::new(100).unwrap());
/// assert_eq!(store.rows_per_job(), Some(100));
/// assert_eq!(MemoryStore::new().rows_per_job(), Some(MemoryStore::DEFAULT_ROWS_PER_JOB));
/// assert_eq!(MemoryStore::unbounded().rows_per_job(), None);
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    rows: Mutex<MemoryRows>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

type FxMap<K, V> = std::collections::HashMap<K, V, rustc_hash::FxBuildHasher>;

#[derive(Debug, Default)]
struct MemoryRows {
    heartbeats: std::collections::HashMap<String, DateTime<Utc>>,
    /// Fires claimed (see [`ExecutionStore::claim_fires`]).
    claims: std::collections::HashSet<FireClaim>,
    /// The rows, each with its insertion number; a dropped row's place is
    /// reused (`free`).
    rows: Vec<Option<(u64, ExecutionRecord)>>,
    free: Vec<usize>,
    /// The next insertion number.
    next: u64,
    /// Each job's rows (places in `rows`), oldest first.
    jobs: FxMap<String, std::collections::VecDeque<usize>>,
    by_key: FxMap<(ExecutionId, u32), usize>,
    /// Rows in `running`, so the abandonment sweep does not scan history.
    running: std::collections::BTreeSet<usize>,
    /// Rows kept per job; `None` keeps every row.
    per_job: Option<usize>,
}

impl MemoryRows {
    fn get(&self, i: usize) -> Option<&ExecutionRecord> {
        self.rows.get(i).and_then(|r| r.as_ref()).map(|(_, r)| r)
    }

    fn upsert(&mut self, rec: ExecutionRecord) {
        let key = (rec.execution_id, rec.attempt);
        if self.by_key.contains_key(&key) {
            return;
        }
        let i = self.free.pop().unwrap_or(self.rows.len());
        if rec.status == ExecutionStatus::Running {
            self.running.insert(i);
        }
        self.by_key.insert(key, i);
        let job = match self.jobs.get_mut(rec.job_id.as_str()) {
            Some(job) => job,
            None => self.jobs.entry(rec.job_id.clone()).or_default(),
        };
        job.push_back(i);
        let row = Some((self.next, rec));
        self.next += 1;
        if i == self.rows.len() {
            self.rows.push(row);
        } else {
            self.rows[i] = row;
        }
        if let Some(max) = self.per_job {
            trim(job, max, &mut self.rows, &mut self.by_key, &mut self.free);
        }
    }

    fn end(&mut self, i: usize, e: &AttemptEnd) {
        let Some((_, r)) = self.rows.get_mut(i).and_then(|r| r.as_mut()) else { return };
        r.apply_end(e);
        self.running.remove(&i);
        // A running row may have held its job over the bound.
        if let (Some(max), Some(job)) = (self.per_job, self.jobs.get_mut(&*e.job_id)) {
            trim(job, max, &mut self.rows, &mut self.by_key, &mut self.free);
        }
    }

    /// The rows of one job, oldest first.
    fn of_job<'a>(&'a self, job_id: &str) -> impl Iterator<Item = &'a ExecutionRecord> + 'a {
        self.jobs.get(job_id).into_iter().flatten().filter_map(|i| self.get(*i))
    }

    /// Rebuilds the indexes from `rows`.
    fn reindex(&mut self) {
        let mut live: Vec<(u64, usize)> = Vec::new();
        self.free.clear();
        for (i, row) in self.rows.iter().enumerate() {
            match row {
                Some((n, _)) => live.push((*n, i)),
                None => self.free.push(i),
            }
        }
        live.sort_unstable();
        self.by_key.clear();
        self.running.clear();
        self.jobs.clear();
        for (_, i) in live {
            let Some((_, r)) = &self.rows[i] else { continue };
            self.by_key.insert((r.execution_id, r.attempt), i);
            if r.status == ExecutionStatus::Running {
                self.running.insert(i);
            }
            match self.jobs.get_mut(r.job_id.as_str()) {
                Some(job) => job.push_back(i),
                None => {
                    self.jobs.insert(r.job_id.clone(), [i].into());
                }
            }
        }
    }
}

/// Drops a job's oldest finished rows while it has more than `max`, freeing
/// their places. Running rows stay: a job running more runs at once than
/// the bound keeps them all until they end.
fn trim(
    job: &mut std::collections::VecDeque<usize>,
    max: usize,
    rows: &mut [Option<(u64, ExecutionRecord)>],
    by_key: &mut FxMap<(ExecutionId, u32), usize>,
    free: &mut Vec<usize>,
) {
    while job.len() > max {
        let finished = |i: &usize| rows[*i].as_ref().is_some_and(|(_, r)| r.status.is_final());
        let Some(at) = job.iter().position(finished) else { return };
        let i = job.remove(at).expect("position is in range");
        if let Some((_, r)) = rows[i].take() {
            by_key.remove(&(r.execution_id, r.attempt));
            free.push(i);
        }
    }
}

impl MemoryStore {
    /// How many rows of each job [`new`](Self::new) keeps: a run a minute
    /// for the last 16 hours, and at about 300 bytes a row, some 300 kB a
    /// job.
    pub const DEFAULT_ROWS_PER_JOB: usize = 1_000;

    /// An empty store keeping the newest
    /// [`DEFAULT_ROWS_PER_JOB`](Self::DEFAULT_ROWS_PER_JOB) rows of each job.
    pub fn new() -> Self {
        Self::bounded(Some(Self::DEFAULT_ROWS_PER_JOB))
    }

    /// An empty store keeping the newest `rows` rows of each job, and every
    /// row still running.
    pub fn with_rows_per_job(rows: std::num::NonZeroUsize) -> Self {
        Self::bounded(Some(rows.get()))
    }

    /// An empty store that keeps every row until [`prune`](ExecutionStore::prune)
    /// removes it: memory grows with every fire.
    pub fn unbounded() -> Self {
        Self::bounded(None)
    }

    fn bounded(per_job: Option<usize>) -> Self {
        MemoryStore { rows: Mutex::new(MemoryRows { per_job, ..MemoryRows::default() }) }
    }

    /// The bound per job; `None` when unbounded.
    pub fn rows_per_job(&self) -> Option<usize> {
        self.rows.lock().expect("memory store lock").per_job
    }

    /// Every row kept, in insertion order (for tests and inspection).
    pub fn all(&self) -> Vec<ExecutionRecord> {
        let g = self.rows.lock().expect("memory store lock");
        let mut rows: Vec<&(u64, ExecutionRecord)> = g.rows.iter().flatten().collect();
        rows.sort_unstable_by_key(|(n, _)| *n);
        rows.into_iter().map(|(_, r)| r.clone()).collect()
    }

    /// The number of rows kept.
    pub fn len(&self) -> usize {
        let g = self.rows.lock().expect("memory store lock");
        g.rows.len() - g.free.len()
    }

    /// Whether the store holds no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl ExecutionStore for MemoryStore {
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()> {
        let mut g = self.rows.lock().expect("memory store lock");
        for ev in events {
            match ev {
                ExecutionEvent::Started(s) => g.upsert(ExecutionRecord::from_start(s)),
                ExecutionEvent::Skipped(s) => g.upsert(ExecutionRecord::from_skip(s)),
                ExecutionEvent::Finished(e) => match g.by_key.get(&(e.execution_id, e.attempt)) {
                    Some(&i) => g.end(i, e),
                    None => g.upsert(ExecutionRecord::from_end(e)),
                },
            }
        }
        Ok(())
    }

    async fn history(&self, q: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        let g = self.rows.lock().expect("memory store lock");
        let mut out: Vec<ExecutionRecord> = g
            .of_job(&q.job_id)
            .filter(|r| q.status.is_none_or(|s| r.status == s))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            (b.started_at, b.attempt, b.execution_id).cmp(&(
                a.started_at,
                a.attempt,
                a.execution_id,
            ))
        });
        out.truncate(q.limit);
        Ok(out)
    }

    async fn last_fire(&self, job_id: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let g = self.rows.lock().expect("memory store lock");
        Ok(g.of_job(job_id).map(|r| r.scheduled_at).max())
    }

    async fn heartbeat(&self, instance_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let mut g = self.rows.lock().expect("memory store lock");
        g.heartbeats.insert(instance_id.to_owned(), now);
        Ok(())
    }

    async fn mark_abandoned(
        &self,
        own_instance: &str,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let mut g = self.rows.lock().expect("memory store lock");
        let cutoff = chrono::Duration::from_std(stale_after)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let g = &mut *g;
        let mut changed = Vec::new();
        let running: Vec<usize> = g.running.iter().copied().collect();
        for i in running {
            let Some((_, r)) = g.rows.get_mut(i).and_then(|r| r.as_mut()) else { continue };
            let alive = r.instance_id == own_instance
                || g.heartbeats.get(&r.instance_id).is_some_and(|hb| *hb >= cutoff);
            if !alive {
                r.status = ExecutionStatus::Abandoned;
                r.completed_at = Some(now);
                r.duration_ms =
                    Some(duration_ms((now - r.started_at).to_std().unwrap_or_default()));
                r.error = Some(format!("instance {} stopped while the attempt ran", r.instance_id));
                changed.push(r.clone());
                g.running.remove(&i);
            }
        }
        Ok(changed)
    }

    async fn prune(&self, p: PrunePolicy) -> StoreResult<u64> {
        let mut g = self.rows.lock().expect("memory store lock");
        let pruned = |r: &ExecutionRecord| {
            let cutoff = match p.failures_older_than {
                Some(f) if r.status.is_failure() => f,
                _ => p.older_than,
            };
            r.status.is_final() && r.started_at < cutoff
        };
        let mut removed = 0;
        for row in &mut g.rows {
            if row.as_ref().is_some_and(|(_, r)| pruned(r)) {
                *row = None;
                removed += 1;
            }
        }
        g.reindex();
        let g = &mut *g;
        let running: std::collections::HashSet<&str> = g
            .running
            .iter()
            .filter_map(|i| g.rows[*i].as_ref())
            .map(|(_, r)| r.instance_id.as_str())
            .collect();
        g.heartbeats.retain(|id, at| *at >= p.older_than || running.contains(id.as_str()));
        g.claims.retain(|c| c.scheduled_at >= p.older_than);
        Ok(removed)
    }

    fn supports_claims(&self) -> bool {
        true
    }

    async fn claim_fires(
        &self,
        _instance_id: &str,
        fires: &[FireClaim],
        _now: DateTime<Utc>,
    ) -> StoreResult<Vec<bool>> {
        let mut g = self.rows.lock().expect("memory store lock");
        Ok(fires.iter().map(|f| g.claims.insert(f.clone())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_forgets_instances_long_silent_without_a_running_row() {
        let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let store = MemoryStore::new();
        futures::executor::block_on(async {
            store.heartbeat("gone", t(0)).await.unwrap();
            store.heartbeat("busy", t(0)).await.unwrap();
            store.heartbeat("fresh", t(1000)).await.unwrap();
            let start = AttemptStart {
                job_id: Arc::from("j"),
                execution_id: ExecutionId(1),
                attempt: 1,
                scheduled_at: t(0),
                started_at: t(0),
                instance_id: Arc::from("busy"),
            };
            store.write(&[ExecutionEvent::Started(start)]).await.unwrap();
            let policy = PrunePolicy { older_than: t(500), failures_older_than: None };
            store.prune(policy).await.unwrap();
        });
        let g = store.rows.lock().unwrap();
        let mut left: Vec<&str> = g.heartbeats.keys().map(String::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["busy", "fresh"]);
    }
}
