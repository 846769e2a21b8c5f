//! The jobs: a slab addressed by slot, each job with what a run of it needs
//! (its `Spec`) and its state; a [`JobConfig`] checked into a `Job`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chrono::{DateTime, Utc};
use smallvec::SmallVec;

use super::JobScheduler;
use super::claim::MANUAL_STEP;
use crate::cancel::CancellationToken;
use crate::clock::after;
use crate::error::{Error, Result};
use crate::job::{JobConfig, JobHandler};
use crate::policy::{MisfirePolicy, OverlapPolicy, OverlapScope};
use crate::retry::RetryPolicy;
use crate::schedule::Schedule;
use crate::store::{ExecutionId, ExecutionStatus, FireKind};

/// A job's place in [`Jobs`].
pub(super) type Slot = u32;

/// The jobs: a slab of boxed jobs that planned fires and runs point at by
/// slot, so a fire reaches its job without hashing its id, plus an index
/// from id to slot for the API. The index is FxHash (rustc-hash) with its
/// fixed key; job ids come from the application, not from an adversary, so
/// hash flooding is not a concern. The slab is walked in slot order, which
/// is the same in every run with the same registrations (simulations repeat).
/// A freed slot is reused; whatever still points at it checks that the job
/// there is its own (by generation or by `Spec`).
#[derive(Default)]
pub(super) struct Jobs {
    slots: Vec<Option<Job>>,
    free: Vec<Slot>,
    index: HashMap<Arc<str>, Slot, rustc_hash::FxBuildHasher>,
}

impl Jobs {
    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    pub(super) fn contains(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    pub(super) fn slot(&self, id: &str) -> Option<Slot> {
        self.index.get(id).copied()
    }

    pub(super) fn insert(&mut self, job: Job) -> Slot {
        let id = job.spec.id.clone();
        let job = Some(job);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = job;
                slot
            }
            None => {
                self.slots.push(job);
                Slot::try_from(self.slots.len() - 1).expect("fewer than 2^32 jobs")
            }
        };
        self.index.insert(id, slot);
        slot
    }

    pub(super) fn remove(&mut self, id: &str) -> Option<Job> {
        let slot = self.index.remove(id)?;
        self.free.push(slot);
        self.slots[slot as usize].take()
    }

    pub(super) fn get(&self, slot: Slot) -> Option<&Job> {
        self.slots.get(slot as usize)?.as_ref()
    }

    pub(super) fn get_mut(&mut self, slot: Slot) -> Option<&mut Job> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    pub(super) fn by_id(&self, id: &str) -> Option<&Job> {
        self.get(self.slot(id)?)
    }

    /// Every job with its slot, in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Slot, &Job)> {
        self.slots.iter().enumerate().filter_map(|(i, j)| Some((i as Slot, j.as_ref()?)))
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut Job> {
        self.slots.iter_mut().filter_map(|j| j.as_mut())
    }
}

/// What a run needs, shared by its attempts.
pub(super) struct Spec {
    pub(super) id: Arc<str>,
    pub(super) handler: Arc<dyn JobHandler>,
    pub(super) timeout: Option<Duration>,
    pub(super) retry: RetryPolicy,
    /// Whether the driver may run the first poll (see
    /// [`SchedulerBuilder::inline_dispatch`](super::SchedulerBuilder::inline_dispatch));
    /// cleared for good once the handler returned `Pending` there or took
    /// longer than [`INLINE_LIMIT`](super::dispatch::INLINE_LIMIT).
    pub(super) inline: AtomicBool,
    /// At most this many runs at once ([`JobConfig::max_concurrent`]).
    pub(super) max_concurrent: Option<u32>,
    /// The limit of live leases a claim of its fires carries (see
    /// [`FireClaim::max_running`](crate::FireClaim::max_running)).
    pub(super) cluster_limit: Option<u32>,
}

pub(super) struct Job {
    pub(super) spec: Arc<Spec>,
    /// Shares the id's allocation when the name is the id (the default).
    pub(super) name: Arc<str>,
    /// `None` for a trigger-only job.
    pub(super) schedule: Option<Schedule>,
    pub(super) overlap: OverlapPolicy,
    pub(super) misfire: MisfirePolicy,
    /// The start jitter's bound in whole milliseconds (what planning
    /// draws in), [`NO_JITTER`] for none: 8 bytes where an
    /// `Option<Duration>` takes 16.
    pub(super) jitter_ms: u64,
    pub(super) paused: bool,
    /// Whether its scheduled fires are claimed in the store before they are
    /// decided (see
    /// [`SchedulerBuilder::claim_fires`](super::SchedulerBuilder::claim_fires)).
    /// Here rather than in the `Spec`, which a fire otherwise reaches only to
    /// start a run.
    pub(super) claimed: bool,
    /// This instance won a standby claim of the job's last fire claimed at
    /// leisure: it claims the job's fires at once (see `affinity`).
    pub(super) took_over: bool,
    /// The fire at `next_nominal` was claimed ahead (`ahead`): its
    /// timeline entry now marks its instant, when it counts as decided.
    pub(super) claimed_ahead: bool,
    pub(super) generation: u64,
    pub(super) next_nominal: Option<DateTime<Utc>>,
    /// The latest scheduled fire decided (run, queued or skipped): no
    /// planning goes back to it or before, whatever the clock does.
    pub(super) last_fire: Option<DateTime<Utc>>,
    /// What a job needs only once paused or triggered, boxed on first
    /// use: a job's size is most of its memory (`Cold`).
    pub(super) cold: Option<Box<Cold>>,
    pub(super) last_status: Option<ExecutionStatus>,
    /// Inline for the usual one run: a separate buffer per job would be
    /// one more cold allocation touched per fire.
    pub(super) running: SmallVec<[RunHandle; 1]>,
    pub(super) backlog: VecDeque<Fire>,
}

/// A job's rarely set state (see `Job::cold`).
#[derive(Default)]
pub(super) struct Cold {
    /// When it was paused, while it is.
    pub(super) paused_at: Option<DateTime<Utc>>,
    /// The latest manual trigger dispatched. With `last_fire` it makes
    /// [`JobInfo::last_run`](super::JobInfo::last_run) (see
    /// [`Job::last_run`]), so a scheduled fire updates one field.
    pub(super) last_trigger: Option<DateTime<Utc>>,
}

impl Job {
    /// The job's `Cold` state, made on first use.
    pub(super) fn cold(&mut self) -> &mut Cold {
        self.cold.get_or_insert_with(Box::default)
    }

    /// The latest fire that ran or was recorded `skipped`, triggers
    /// included. Every scheduled fire that is skipped, queued or run was
    /// first decided, which raised `last_fire`; a trigger raises
    /// `last_trigger` when it is dispatched.
    pub(super) fn last_run(&self) -> Option<DateTime<Utc>> {
        self.last_fire.max(self.cold.as_ref().and_then(|c| c.last_trigger))
    }

    /// Notes a fire decided at `nominal` (see `last_fire` and
    /// `last_trigger`).
    #[inline]
    pub(super) fn decided(&mut self, nominal: DateTime<Utc>, manual: bool) {
        if manual {
            return self.triggered(nominal);
        }
        if self.last_fire.is_none_or(|l| l < nominal) {
            self.last_fire = Some(nominal);
        }
    }

    /// The instant a claimed trigger at `now` is claimed at: `now` to the
    /// millisecond, after the job's latest trigger, so that two triggers of
    /// one instance never share a fire key.
    pub(super) fn trigger_instant(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let ms = now.timestamp_millis();
        let now_ms = DateTime::from_timestamp_millis(ms).unwrap_or(now);
        match self.cold.as_ref().and_then(|c| c.last_trigger) {
            Some(last) if last >= now_ms => after(last, MANUAL_STEP),
            _ => now_ms,
        }
    }

    #[cold]
    fn triggered(&mut self, nominal: DateTime<Utc>) {
        let last = &mut self.cold().last_trigger;
        if last.is_none_or(|l| l < nominal) {
            *last = Some(nominal);
        }
    }
}

/// No start jitter, in [`Job::jitter_ms`].
pub(super) const NO_JITTER: u64 = u64::MAX;

/// A run in progress: its id and its token, which also carries its kill
/// switch. The id is kept as its low half, this instance's counter (the
/// high half is the instance's bits): 16 bytes instead of 32 and no 16-byte
/// alignment for every job that holds one.
pub(super) struct RunHandle {
    pub(super) seq: u64,
    pub(super) cancel: CancellationToken,
}

impl RunHandle {
    pub(super) fn new(id: ExecutionId, cancel: CancellationToken) -> Self {
        RunHandle { seq: id.0 as u64, cancel }
    }

    pub(super) fn is(&self, id: ExecutionId) -> bool {
        self.seq == id.0 as u64
    }

    pub(super) fn id(&self, instance_bits: u64) -> ExecutionId {
        exec_id(instance_bits, self.seq)
    }
}

/// Execution ids: the instance's bits, then its counter.
pub(super) fn exec_id(instance_bits: u64, seq: u64) -> ExecutionId {
    ExecutionId((u128::from(instance_bits) << 64) | u128::from(seq))
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Fire {
    pub(super) nominal: DateTime<Utc>,
    pub(super) kind: FireKind,
    /// Won by this instance's claim (see
    /// [`SchedulerBuilder::claim_fires`](super::SchedulerBuilder::claim_fires)).
    pub(super) claimed: bool,
    /// The attempt its run starts with: 1, or more for a fire taken over
    /// from an instance that died during an attempt.
    pub(super) first_attempt: u32,
    /// The execution id's counter once one is given (a queued or claimed
    /// fire has its id already); 0 before.
    pub(super) seq: u64,
    /// The fencing token of the lease this instance holds on it; 0 for none.
    pub(super) fence: u64,
}

impl Fire {
    /// A fire of `kind` at `nominal`, not claimed yet.
    pub(super) fn new(nominal: DateTime<Utc>, kind: FireKind) -> Self {
        Fire { nominal, kind, claimed: false, first_attempt: 1, seq: 0, fence: 0 }
    }

    /// A scheduled fire at `nominal`, not claimed yet.
    pub(super) fn scheduled(nominal: DateTime<Utc>) -> Self {
        Fire::new(nominal, FireKind::Schedule)
    }

    /// Whether it comes from the schedule (not a trigger or a backfill).
    pub(super) fn is_scheduled(&self) -> bool {
        self.kind == FireKind::Schedule
    }

    /// The fence its events carry.
    pub(super) fn fence(&self) -> Option<u64> {
        (self.fence > 0).then_some(self.fence)
    }
}

impl JobScheduler {
    pub(super) fn validate(&self, cfg: JobConfig) -> Result<Job> {
        // `chars().all` stops at the first letter; `trim` looks at both ends.
        if cfg.id.chars().all(char::is_whitespace) {
            return Err(Error::EmptyId(cfg.name));
        }
        if cfg.name.chars().all(char::is_whitespace) {
            return Err(Error::EmptyName(cfg.id));
        }
        let field = |field: &'static str, e: Error| Error::InvalidJob {
            job: cfg.id.clone(),
            field,
            source: Box::new(e),
        };
        let mut schedule = match &cfg.schedule {
            Some(s) => Some(s.build().map_err(|e| field("schedule", e))?),
            None => None,
        };
        if let Some(tz) = &cfg.timezone {
            // A zone given twice, differently, is a mistake: neither wins.
            if let Some(s) = &schedule
                && let Some(have) = s.timezone()
                && crate::schedule::parse_zone(tz).is_ok_and(|want| want != have)
            {
                let reason = format!(
                    "its CRON_TZ={} contradicts timezone \"{tz}\"; give the zone once",
                    have.name()
                );
                return Err(field(
                    "timezone",
                    Error::InvalidSchedule { input: s.to_string(), reason },
                ));
            }
            schedule = match schedule {
                Some(s) => Some(s.with_timezone(tz).map_err(|e| field("timezone", e))?),
                // Still checked, so that a typo is never silent.
                None => {
                    crate::schedule::parse_zone(tz).map_err(|e| field("timezone", e))?;
                    None
                }
            };
        }
        let claimed = self.inner.settings.claim && !cfg.per_instance;
        // Instances share a fire only on a common grid. An interval with no
        // phase counts from each instance's start, so a claimed one is
        // phased at the Unix epoch.
        if claimed
            && let Some(s) = &schedule
            && s.interval_start().is_none()
            && let Some(every) = s.interval_duration()
        {
            schedule = Some(
                Schedule::interval_at(DateTime::UNIX_EPOCH, every)
                    .map_err(|e| field("schedule", e))?,
            );
        }
        if let Some(j) = cfg.jitter
            && j > MAX_JITTER
        {
            return Err(Error::InvalidPolicy {
                policy: "jitter",
                job: cfg.id,
                reason: format!("jitter must be at most {MAX_JITTER:?} (365 days), got {j:?}"),
            });
        }
        if cfg.max_concurrent == Some(0) {
            return Err(Error::InvalidPolicy {
                policy: "max_concurrent",
                job: cfg.id,
                reason: "max_concurrent must be at least 1, got 0".to_owned(),
            });
        }
        let cluster_limit = match (claimed, cfg.overlap_scope, cfg.overlap) {
            (false, _, _) => None,
            (true, OverlapScope::Cluster, OverlapPolicy::Allow)
            | (true, OverlapScope::Instance, _) => cfg.max_concurrent,
            (true, OverlapScope::Cluster, _) => Some(1),
        };
        if let Some(t) = cfg.timeout
            && t.is_zero()
        {
            return Err(Error::ZeroTimeout { job: cfg.id, timeout: t });
        }
        cfg.retry
            .validate()
            .map_err(|reason| Error::InvalidRetry { job: cfg.id.clone(), reason })?;
        if let crate::policy::MisfireMode::RunAll { max_runs: 0, .. } = cfg.misfire.mode {
            return Err(Error::InvalidPolicy {
                policy: "misfire",
                job: cfg.id,
                reason: "run_all max_runs must be at least 1, got 0".to_owned(),
            });
        }
        let same_name = cfg.name == cfg.id;
        let id: Arc<str> = cfg.id.into();
        let name = if same_name { id.clone() } else { cfg.name.into() };
        Ok(Job {
            spec: Arc::new(Spec {
                id,
                handler: cfg.handler,
                timeout: cfg.timeout,
                retry: cfg.retry,
                inline: AtomicBool::new(true),
                max_concurrent: cfg.max_concurrent,
                cluster_limit,
            }),
            name,
            schedule,
            overlap: cfg.overlap,
            misfire: cfg.misfire,
            // A jitter under a millisecond stays a jitter (of 0 ms, which
            // still draws from the generator, as simulations replay).
            jitter_ms: match cfg.jitter.filter(|j| !j.is_zero()) {
                Some(j) => u64::try_from(j.as_millis()).unwrap_or(u64::MAX - 1),
                None => NO_JITTER,
            },
            paused: cfg.paused,
            claimed,
            took_over: false,
            claimed_ahead: false,
            generation: 0,
            next_nominal: None,
            last_fire: None,
            cold: None,
            last_status: None,
            running: SmallVec::new(),
            backlog: VecDeque::new(),
        })
    }
}

/// The longest start jitter a job may have.
const MAX_JITTER: Duration = Duration::from_secs(365 * 86_400);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_and_its_run_handle_stay_small() {
        // Every registered job is one slot of the slab: its size is most of
        // the memory per job (docs/BENCHMARKS.md, target 600 B at 200k).
        assert_eq!(size_of::<RunHandle>(), 16);
        assert!(size_of::<Option<Job>>() <= 224, "{} B", size_of::<Option<Job>>());
    }
}
