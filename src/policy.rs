//! Overlap and misfire policies, with the misfire plan as a pure function.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::before;
use crate::schedule::Schedule;

/// What happens when a fire (or a manual trigger) comes due while the
/// previous run of the same job, retries included, still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverlapPolicy {
    /// Record the new fire as `skipped` (the default, as Kubernetes `Forbid`).
    #[default]
    Skip,
    /// Keep at most one fire waiting; it starts when the run ends. A further
    /// fire while one waits is recorded as `skipped`.
    Queue,
    /// Start the new run beside the old one.
    Allow,
    /// Cancel the old run (recorded `cancelled`) and start the new one.
    Replace,
}

/// Where a job's [`OverlapPolicy`] holds when several instances share a
/// store and claim fires
/// ([`SchedulerBuilder::claim_fires`](crate::SchedulerBuilder::claim_fires)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverlapScope {
    /// Among this instance's runs of the job (the default): another
    /// instance may run the job's next fire while this one still runs.
    #[default]
    Instance,
    /// Among the runs of every instance, by the fires that hold live
    /// leases: a fire that finds the job running anywhere is recorded
    /// `skipped` by the instance that claimed it, with the reason. (Across
    /// instances, `Queue` and `Replace` act as `Skip`; on the instance that
    /// runs the job they keep their meaning.)
    Cluster,
}

/// How fires missed while the process was down or stalled are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum MisfireMode {
    /// Record every missed fire as `skipped`; wait for the next one.
    Skip,
    /// Run once for the latest missed fire; record the others as `skipped`.
    RunOnce,
    /// Run the missed fires no older than `window`, at most `max_runs` of them
    /// (the latest), oldest first; record the rest as `skipped`.
    RunAll {
        /// How far back a missed fire may still run.
        #[serde(with = "serde_ms")]
        window: Duration,
        /// How many missed fires may run.
        max_runs: u32,
    },
}

/// The misfire policy: a mode and a grace period.
///
/// A fire is *missed* when it is found more than `grace` after its nominal
/// time (after a restart, or when the driver stalled); within `grace` it
/// simply runs late.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MisfirePolicy {
    /// What to do with missed fires.
    pub mode: MisfireMode,
    /// How late a fire may be and still run as a normal fire.
    #[serde(with = "serde_ms")]
    pub grace: Duration,
    /// Whether fires that came due while the job was paused are planned by
    /// this policy on `resume()` (default `false`: resuming waits for the
    /// next fire and records nothing for the paused time).
    #[serde(default)]
    pub replay_paused: bool,
}

impl Default for MisfirePolicy {
    /// `RunOnce` with a 1 s grace.
    fn default() -> Self {
        MisfirePolicy {
            mode: MisfireMode::RunOnce,
            grace: Duration::from_secs(1),
            replay_paused: false,
        }
    }
}

impl MisfirePolicy {
    /// Skip missed fires.
    pub fn skip() -> Self {
        MisfirePolicy { mode: MisfireMode::Skip, ..Default::default() }
    }

    /// Run once for the latest missed fire (the default).
    pub fn run_once() -> Self {
        MisfirePolicy::default()
    }

    /// Run missed fires within `window`, at most `max_runs`.
    pub fn run_all(window: Duration, max_runs: u32) -> Self {
        MisfirePolicy { mode: MisfireMode::RunAll { window, max_runs }, ..Default::default() }
    }

    /// Sets whether fires missed while paused are replayed on resume.
    pub fn replay_paused(mut self, replay: bool) -> Self {
        self.replay_paused = replay;
        self
    }

    /// Sets the grace period.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Plans what to do with the fires of `schedule` after `last` and up to
    /// `now`. Fires within the grace are on time; the rest follow the mode.
    /// At most [`MisfirePlan::MAX_LISTED`] missed fires are listed one by one;
    /// older ones are counted in [`MisfirePlan::skipped_unlisted`].
    pub(crate) fn plan(
        &self,
        schedule: &Schedule,
        last: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> MisfirePlan {
        let mut due = std::collections::VecDeque::new();
        let mut unlisted = 0u64;
        let mut first_unlisted = None;
        let mut t = last;
        while let Some(next) = schedule.next_after(t) {
            if next > now {
                break;
            }
            due.push_back(next);
            if due.len() > MisfirePlan::MAX_LISTED {
                let dropped = due.pop_front().expect("non-empty");
                first_unlisted.get_or_insert(dropped);
                unlisted += 1;
            }
            t = next;
        }
        let grace_start = before(now, self.grace);
        let (late, on_time): (Vec<_>, Vec<_>) = due.into_iter().partition(|t| *t < grace_start);
        let mut plan = MisfirePlan {
            run: Vec::new(),
            on_time: Vec::new(),
            skip: Vec::new(),
            skipped_unlisted: unlisted,
            first_unlisted,
        };
        match self.mode {
            MisfireMode::Skip => plan.skip = late,
            MisfireMode::RunOnce => {
                plan.skip = late;
                if on_time.is_empty()
                    && let Some(latest) = plan.skip.pop()
                {
                    plan.run.push(latest);
                }
            }
            MisfireMode::RunAll { window, max_runs } => {
                let window_start = before(now, window);
                let (in_window, old): (Vec<_>, Vec<_>) =
                    late.into_iter().partition(|t| *t >= window_start);
                plan.skip = old;
                let keep = (max_runs as usize).min(in_window.len());
                let cut = in_window.len() - keep;
                plan.skip.extend_from_slice(&in_window[..cut]);
                plan.run.extend_from_slice(&in_window[cut..]);
            }
        }
        plan.on_time = on_time;
        plan
    }
}

/// The result of [`MisfirePolicy::plan`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct MisfirePlan {
    /// Missed fires to run now, oldest first, one after another.
    pub(crate) run: Vec<DateTime<Utc>>,
    /// Fires within the grace, oldest first: each is due as on time,
    /// through the overlap policy.
    pub(crate) on_time: Vec<DateTime<Utc>>,
    /// Nominal times to record as `skipped`, oldest first.
    pub(crate) skip: Vec<DateTime<Utc>>,
    /// Missed fires older than the listed ones, skipped but not listed.
    pub(crate) skipped_unlisted: u64,
    /// The oldest of those.
    pub(crate) first_unlisted: Option<DateTime<Utc>>,
}

impl MisfirePlan {
    /// How many missed fires a plan lists one by one.
    pub(crate) const MAX_LISTED: usize = 10_000;
}

/// Serde for durations as whole milliseconds.
mod serde_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
