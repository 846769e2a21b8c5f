//! The engine's error type.

use std::time::Duration;

use crate::store::StoreError;

/// A `Result` whose error defaults to the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the engine can refuse or fail at.
///
/// Messages are lowercase, carry no final period and quote the value that was
/// refused, so a user can find it in their own configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// One field of a cron expression is out of range or malformed.
    #[error("invalid {field} field \"{value}\" in \"{expr}\": {reason}")]
    InvalidCronField {
        /// The field's name: `second`, `minute`, `hour`, `day-of-month`, `month` or `day-of-week`.
        field: &'static str,
        /// The field's text as given.
        value: String,
        /// The whole expression as given.
        expr: String,
        /// What is wrong, e.g. `expected 0-59`.
        reason: String,
    },
    /// A cron expression that cannot be read at all (wrong field count, unknown macro).
    #[error("invalid cron expression \"{expr}\": {reason}")]
    InvalidCron {
        /// The expression as given.
        expr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A schedule string that is neither cron, a macro, an interval nor a time.
    #[error("invalid schedule \"{input}\": {reason}")]
    InvalidSchedule {
        /// The schedule as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A job whose field could not be used: names the job and the field,
    /// with the field's own error (such as [`Error::InvalidCronField`]) as
    /// the source.
    #[error("invalid {field} for job \"{job}\": {source}")]
    InvalidJob {
        /// The job's id.
        job: String,
        /// The field: `schedule` or `timezone`.
        field: &'static str,
        /// What is wrong with it.
        #[source]
        source: Box<Error>,
    },
    /// An IANA time zone name that chrono-tz does not know.
    #[error("unknown time zone \"{0}\"")]
    UnknownTimeZone(String),
    /// An interval of zero length, which would fire forever at one instant.
    #[error("interval must be greater than zero, got \"{0}\"")]
    ZeroInterval(String),
    /// A job id that is already registered.
    #[error("duplicate job id \"{0}\"")]
    DuplicateJob(String),
    /// A job id that is empty or only white space.
    #[error("job id must not be empty (job name \"{0}\")")]
    EmptyId(String),
    /// A job name that is empty or only white space.
    #[error("job name must not be empty (job id \"{0}\")")]
    EmptyName(String),
    /// A per-attempt timeout of zero.
    #[error("timeout must be greater than zero for job \"{job}\", got {timeout:?}")]
    ZeroTimeout {
        /// The job's id.
        job: String,
        /// The timeout as given.
        timeout: Duration,
    },
    /// A retry policy that cannot work (no attempts, a multiplier below one, ...).
    #[error("invalid retry policy for job \"{job}\": {reason}")]
    InvalidRetry {
        /// The job's id.
        job: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A misfire policy or a jitter whose numbers cannot work.
    #[error("invalid {policy} policy for job \"{job}\": {reason}")]
    InvalidPolicy {
        /// Which policy: `misfire` or `jitter`.
        policy: &'static str,
        /// The job's id.
        job: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A job id that is not registered.
    #[error("unknown job \"{0}\"")]
    UnknownJob(String),
    /// An execution id that is neither running nor queued on this instance
    /// (it ended, or another instance runs it).
    #[error("unknown execution \"{0}\": no run with this id is running or queued here")]
    UnknownExecution(String),
    /// A backfill request that cannot be planned: `from` after `to`, a
    /// range over [`MAX_BACKFILL_FIRES`](crate::MAX_BACKFILL_FIRES) fires,
    /// a job with no schedule. `field` names the bad input.
    #[error("invalid backfill of job \"{job}\": {field}: {reason}")]
    InvalidBackfill {
        /// The job.
        job: String,
        /// Which input: `from`, `to`, `range`, `schedule`, `concurrency`.
        field: &'static str,
        /// What is wrong, with the value.
        reason: String,
    },
    /// `start()` on a scheduler that is already running.
    #[error("scheduler is already started")]
    AlreadyStarted,
    /// An operation that needs a started scheduler (e.g. `trigger`) before `start()`.
    #[error("scheduler is not started")]
    NotStarted,
    /// An operation on a scheduler that was stopped.
    #[error("scheduler is stopped")]
    Stopped,
    /// [`SchedulerBuilder::claim_fires`](crate::SchedulerBuilder::claim_fires)
    /// with a store that cannot claim fires (its `Debug` form is named).
    #[error(
        "claim_fires needs a store that can claim fires for several instances (MemoryStore, SqliteStore, PostgresStore); {0} cannot"
    )]
    ClaimsUnsupported(String),
    /// The execution store failed.
    #[error("execution store failed")]
    Store(#[from] StoreError),
}
