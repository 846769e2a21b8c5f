//! What the scheduler reports: a job's listing, a trigger's outcome, a
//! stop's report, the lifecycle phase, and the [`Observer`] of its records.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::JobScheduler;
use super::registry::Job;
use crate::policy::OverlapPolicy;
use crate::schedule::Schedule;
use crate::store::{ExecutionEvent, ExecutionId, ExecutionStatus};

/// A snapshot of one job for listings (`jobs()`, the API, the CLI).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobInfo {
    /// The job's id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// The schedule as text (round-trips through [`Schedule::parse`]);
    /// `None` for a trigger-only job.
    pub schedule: Option<String>,
    /// The next nominal fire, if any (none when paused, trigger-only or a
    /// spent one-shot).
    pub next_run: Option<DateTime<Utc>>,
    /// The latest `scheduled_at` among the job's fires that ran or were
    /// recorded `skipped`, manual triggers included: the newest
    /// `scheduled_at` of its rows in the store (docs/SEMANTICS.md §6).
    pub last_run: Option<DateTime<Utc>>,
    /// The final status of the last run that ended in this process.
    pub last_status: Option<ExecutionStatus>,
    /// Whether the job is paused.
    pub paused: bool,
    /// How many runs are in progress (retries included).
    pub running: usize,
    /// How many fires wait for the running one to end.
    pub queued: usize,
    /// The overlap policy.
    pub overlap: OverlapPolicy,
    /// The per-attempt timeout.
    pub timeout: Option<Duration>,
    /// The retry policy's attempts.
    pub max_attempts: u32,
}

/// What a manual [`trigger`](JobScheduler::trigger) did, per the overlap policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TriggerOutcome {
    /// A run started.
    Started {
        /// Its execution id.
        execution_id: ExecutionId,
    },
    /// The run waits for the current one (`Queue`, or a catch-up backlog).
    Queued {
        /// The id it will run under; [`JobScheduler::cancel`] takes it.
        execution_id: ExecutionId,
    },
    /// The trigger was recorded as `skipped` (`Skip` with a run in progress).
    Skipped,
    /// The trigger of a job whose fires are claimed
    /// ([`SchedulerBuilder::claim_fires`](crate::SchedulerBuilder::claim_fires))
    /// waits for its claim in the store. Once the claim is won, the overlap
    /// policy decides as for [`Started`](Self::Started),
    /// [`Queued`](Self::Queued) or [`Skipped`](Self::Skipped), under this
    /// execution id; the claim's lease makes the trigger run again on
    /// another instance if this one dies before the run ends.
    Pending {
        /// The id its run or skip is recorded under.
        execution_id: ExecutionId,
    },
}

/// What [`stop`](JobScheduler::stop) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct StopReport {
    /// Runs that ended within the grace after being asked to stop.
    pub finished_in_grace: usize,
    /// Runs dropped at the end of the grace (recorded `cancelled`).
    pub dropped: usize,
    /// Records that could not be written before the flush deadline.
    pub unwritten: usize,
}

/// The scheduler's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Built; jobs may be registered; nothing fires.
    Created,
    /// Firing.
    Running,
    /// `stop()` is in progress.
    Stopping,
    /// Stopped; it cannot start again.
    Stopped,
}

/// Sees every record as the scheduler makes it, before the store buffer:
/// the hook for metrics and alerts. It runs inline on the scheduler's hot
/// path, so it must be quick and must not block.
pub trait Observer: Send + Sync + fmt::Debug + 'static {
    /// Called once per event, in order per job.
    fn on_event(&self, event: &ExecutionEvent);
}

impl JobScheduler {
    pub(super) fn info(job: &Job) -> JobInfo {
        JobInfo {
            id: job.spec.id.to_string(),
            name: job.name.to_string(),
            schedule: job.schedule.as_ref().map(Schedule::to_string),
            next_run: job.next_nominal,
            last_run: job.last_run(),
            last_status: job.last_status,
            paused: job.paused,
            running: job.running.len(),
            queued: job.backlog.len(),
            overlap: job.overlap,
            timeout: job.spec.timeout,
            max_attempts: job.spec.retry.max_attempts,
        }
    }
}
