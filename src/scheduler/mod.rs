//! The [`JobScheduler`]: a map of jobs, a timeline of their next fires and
//! one driver task that sleeps until the earliest.
//!
//! This file holds the scheduler's shared state and its public methods; the
//! rest, one role a file, in the order a fire meets them:
//!
//! - `builder`: [`SchedulerBuilder`], its settings, and
//!   [`JobScheduler::builder`].
//! - `registry`: the jobs, a slab addressed by slot; what a run needs
//!   (`Spec`); a [`JobConfig`] checked into a `Job`.
//! - `timeline`: the planned fires, one bucket per millisecond.
//! - `plan`: a job's next fire, and what its misfire policy does with the
//!   fires it missed.
//! - `driver`: the task that pops due fires and sleeps until the next; the
//!   heartbeat loop.
//! - `claim`: fires of claimed jobs wait for their claim in the store.
//! - `ahead`: fires claimed before their instant wait for it, leased.
//! - `lease`: the leases on claimed fires, renewed while their runs go on,
//!   and the fires of dead owners taken over.
//! - `dispatch`: the overlap policy starts, queues or skips a fire; runs
//!   launch once the lock is released and are settled when they end.
//! - `run`: one run's attempts, with timeout and retry, and what each
//!   records.
//! - `backfill`: a job's fires ahead, and a backfill of a past range.
//! - `info`: what the API reports ([`JobInfo`], [`TriggerOutcome`],
//!   [`StopReport`], [`Phase`]) and the [`Observer`] hook.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use event_listener::Event;
use futures::future::{Either, select};

use crate::cancel::{CancelReason, CancellationToken};
use crate::clock::{Clock, after, checked_after, std_dur};
use crate::error::{Error, Result};
use crate::guard::{self, GuardedClock};
use crate::job::JobConfig;
use crate::recorder::{Recorder, StoreHealth, error_chain};
use crate::runtime::Spawner;
use crate::schedule::Schedule;
use crate::signal::Signal;
use crate::store::{
    AttemptEnd, ExecutionEvent, ExecutionId, ExecutionRecord, ExecutionStore, FireKind,
};

mod affinity;
mod ahead;
mod backfill;
mod builder;
mod claim;
mod dispatch;
mod driver;
mod info;
mod lease;
mod plan;
mod registry;
mod run;
mod timeline;

pub use backfill::{
    BackfillReport, BackfillRequest, BackfillRun, MAX_BACKFILL_FIRES, MAX_UPCOMING_FIRES,
    PlannedFire,
};
use builder::Settings;
pub use builder::{DEFAULT_CLAIM_AHEAD, MAX_CLAIM_AHEAD, MIN_LEASE, SchedulerBuilder};
use claim::PendingClaim;
use dispatch::Launch;
pub use info::{JobInfo, Observer, Phase, StopReport, TriggerOutcome};
use registry::{Fire, Jobs, Slot, exec_id};
use timeline::Timeline;

/// The scheduler. Cheap to clone; clones share one scheduler.
///
/// Jobs live in a slab, their next fires in a timeline ordered by due time;
/// one driver task sleeps until the earliest fire, so the cost of a fire
/// barely grows with the number of jobs and nothing scans all jobs on a tick.
#[derive(Clone)]
pub struct JobScheduler {
    inner: Arc<Inner>,
}

impl fmt::Debug for JobScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.lock();
        f.debug_struct("JobScheduler")
            .field("instance_id", &self.inner.instance_id)
            .field("phase", &st.phase)
            .field("jobs", &st.jobs.len())
            .field("live_runs", &st.live_runs)
            .finish()
    }
}

struct Inner {
    /// The user's clock behind its guard; the engine calls it through the
    /// concrete type (see [`GuardedClock`]).
    clock: Arc<GuardedClock>,
    /// The same clock as a trait object, for the API and for handlers.
    dyn_clock: Arc<dyn Clock>,
    spawner: Arc<dyn Spawner>,
    store: Arc<dyn ExecutionStore>,
    recorder: Arc<Recorder>,
    instance_id: Arc<str>,
    instance_bits: u64,
    observers: Vec<Arc<dyn Observer>>,
    settings: Settings,
    state: Mutex<State>,
    /// Wakes the driver (an earlier fire, or stop).
    wake: Signal,
    /// A run ended, or a background task exited.
    idle: Event,
}

struct State {
    phase: Phase,
    jobs: Jobs,
    timeline: Timeline,
    seq: u64,
    rng: fastrand::Rng,
    next_exec: u64,
    live_runs: usize,
    /// What the driver sleeps until; `None` while it waits with no timer.
    driver_wake: Option<DateTime<Utc>>,
    /// Ends the driver and the heartbeat loop.
    shutdown: CancellationToken,
    /// Background tasks alive (driver, heartbeat).
    background: usize,
    /// Runs started under the lock, launched once it is released.
    launches: Vec<Launch>,
    /// Fires decided under the lock that wait for their claims, sent once
    /// it is released.
    claims: Vec<PendingClaim>,
    /// Fires whose claim failed, claimed again by the lease loop so that
    /// one instance records each (see `claim`).
    claim_retry: Vec<PendingClaim>,
    /// The claim batches under way: their number and when each was sent.
    claiming: Vec<(u64, DateTime<Utc>)>,
    /// Claims left to the instance preferred for their job, with when each
    /// was decided: sent after the standby delay (`affinity`).
    standby: std::collections::VecDeque<(DateTime<Utc>, PendingClaim)>,
    /// A task sends the standby claims.
    standby_sending: bool,
    /// Fires won ahead of their instant, waiting for it (`ahead`).
    held: ahead::Held,
    /// The live instances, for claim affinity; `None` claims every fire at
    /// once.
    peers: Option<affinity::Peers>,
    /// Claim batches sent so far (numbers `claiming`).
    claim_batches: u64,
    /// The last claim's error, while claims fail.
    claim_error: Option<String>,
    /// Who waits for a run's end (a backfill), by execution id counter.
    waiters: HashMap<u64, futures::channel::oneshot::Sender<crate::store::ExecutionStatus>>,
    /// The leases this instance holds on claimed fires, renewed by the
    /// lease loop until the fire ends (see `lease`).
    leases: HashMap<(Arc<str>, DateTime<Utc>), lease::Held>,
    /// Ended runs' tokens, made new for the next runs (at most
    /// [`TOKEN_POOL`](dispatch::TOKEN_POOL)).
    tokens: Vec<CancellationToken>,
    /// One parsed cron per expression and zone, shared by the jobs that use
    /// it (less memory, and its memo answers the jobs that fire together).
    crons: HashMap<String, Schedule, rustc_hash::FxBuildHasher>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("scheduler state lock")
    }

    /// Logs runs the store marked `abandoned` and shows them to the
    /// observers as the end of their attempt (the store already holds them).
    fn abandoned(&self, rows: &[ExecutionRecord], at_start: bool) {
        for r in rows {
            if at_start {
                tracing::warn!(job_id = %r.job_id, execution_id = %r.execution_id, attempt = r.attempt, instance_id = %r.instance_id, status = "abandoned", "run left running by a dead instance marked abandoned");
            } else {
                tracing::warn!(job_id = %r.job_id, execution_id = %r.execution_id, attempt = r.attempt, instance_id = %r.instance_id, status = "abandoned", "run of a dead instance marked abandoned");
            }
            let ended = ExecutionEvent::Finished(AttemptEnd {
                job_id: r.job_id.as_str().into(),
                execution_id: r.execution_id,
                attempt: r.attempt,
                scheduled_at: r.scheduled_at,
                started_at: r.started_at,
                instance_id: r.instance_id.as_str().into(),
                status: r.status,
                completed_at: r.completed_at.unwrap_or(r.started_at),
                duration: Duration::from_millis(r.duration_ms.unwrap_or(0)),
                error: r.error.clone(),
                error_kind: r.error_kind,
                result: None,
                metrics: None,
                kind: r.kind,
                fence: r.fence,
                ends_run: true,
            });
            self.observe(&ended);
        }
    }

    /// Hands an event to the observers, then to the store buffer.
    fn record(&self, ev: ExecutionEvent) {
        self.observe(&ev);
        self.recorder.push(ev);
    }

    /// [`record`](Self::record) of the event that `make` builds: with no
    /// observer it is built in the store buffer's queue.
    #[inline]
    fn record_with(&self, make: impl FnOnce() -> ExecutionEvent) {
        if self.observers.is_empty() {
            self.recorder.push_with(make);
        } else {
            self.record(make());
        }
    }

    /// Hands an event to the observers only. An observer that panics is
    /// logged and skipped for this event; the others still see it.
    fn observe(&self, ev: &ExecutionEvent) {
        for o in &self.observers {
            guard::call("an observer", || o.on_event(ev));
        }
    }
}

impl State {
    fn new_exec_id(&mut self, instance_bits: u64) -> ExecutionId {
        self.next_exec += 1;
        exec_id(instance_bits, self.next_exec)
    }
}

impl JobScheduler {
    /// This instance's id, as written in its records.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// The scheduler's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.dyn_clock
    }

    /// The store records go to.
    pub fn store(&self) -> &Arc<dyn ExecutionStore> {
        &self.inner.store
    }

    /// The state of the buffer in front of the store, and of the claims
    /// sent to it.
    pub fn store_health(&self) -> StoreHealth {
        let mut h = self.inner.recorder.health();
        let st = self.inner.lock();
        h.unclaimed = st.claim_retry.len();
        h.claim_error.clone_from(&st.claim_error);
        h.claiming_since = st.claiming.iter().map(|c| c.1).min();
        h
    }

    /// How far the earliest pending fire is behind the clock: zero while the
    /// driver keeps up; growing when it is stalled (a health signal).
    pub fn overdue(&self) -> Duration {
        let now = self.inner.clock.now();
        let mut st = self.inner.lock();
        match (st.phase, st.timeline.next_due()) {
            (Phase::Running, Some(due)) => std_dur(due, now),
            _ => Duration::ZERO,
        }
    }

    /// The lifecycle phase.
    pub fn phase(&self) -> Phase {
        self.inner.lock().phase
    }

    /// Registers a job. Fails, quoting the bad value, on an empty id or name,
    /// a duplicate id, an invalid schedule or time zone, a zero interval or
    /// timeout, or an unusable retry, misfire or jitter setting.
    pub fn register(&self, cfg: JobConfig) -> Result<()> {
        let mut job = self.validate(cfg)?;
        let cron_key = job.schedule.as_ref().filter(|s| s.is_cron()).map(Schedule::to_string);
        let mut st = self.inner.lock();
        if matches!(st.phase, Phase::Stopping | Phase::Stopped) {
            return Err(Error::Stopped);
        }
        if st.jobs.contains(&job.spec.id) {
            return Err(Error::DuplicateJob(job.spec.id.to_string()));
        }
        tracing::debug!(job_id = %job.spec.id, schedule = job.schedule.as_ref().map(display), "job registered");
        if let (Some(key), Some(schedule)) = (cron_key, &job.schedule) {
            let shared = st.crons.entry(key).or_insert_with(|| schedule.clone()).clone();
            job.schedule = Some(shared);
        }
        let slot = st.jobs.insert(job);
        if st.phase == Phase::Running {
            // Read only here: jobs registered before the start (the usual
            // bulk) need no time. The guarded clock cannot poison the lock.
            let now = self.inner.clock.now();
            self.plan_first(&mut st, slot, None, now, "registered");
            self.release(st);
        }
        Ok(())
    }

    /// Removes a job. Its running runs are cancelled at once (recorded
    /// `cancelled`) and its waiting fires are recorded `skipped`.
    pub fn unregister(&self, id: &str) -> Result<()> {
        let now = self.inner.clock.now();
        let mut st = self.inner.lock();
        let job = st.jobs.remove(id).ok_or_else(|| Error::UnknownJob(id.to_owned()))?;
        if let Some(schedule) = job.schedule.as_ref().filter(|s| s.shared() == 2) {
            // Only the shared-cron map holds it besides this job.
            st.crons.remove(&schedule.to_string());
        }
        for run in &job.running {
            run.cancel.cancel_for(CancelReason::Unregister);
            run.cancel.kill();
        }
        for fire in &job.backlog {
            self.record_skip(&mut st, &job.spec.id, *fire, now, "job unregistered");
        }
        tracing::info!(job_id = %id, "job unregistered");
        Ok(())
    }

    /// Pauses a job: no fire comes due until [`resume`](Self::resume). A run
    /// in progress goes on.
    pub fn pause(&self, id: &str) -> Result<()> {
        let now = self.inner.clock.now();
        let mut st = self.inner.lock();
        st.seq += 1;
        let fresh = st.seq;
        let slot = st.jobs.slot(id).ok_or_else(|| Error::UnknownJob(id.to_owned()))?;
        let job = st.jobs.get_mut(slot).expect("indexed");
        if !job.paused {
            job.paused = true;
            job.cold().paused_at = Some(now);
            job.generation = fresh;
            job.next_nominal = None;
            tracing::info!(job_id = %id, "job paused");
        }
        Ok(())
    }

    /// Resumes a paused job. The fires that came due while it was paused are
    /// not run nor recorded, unless its misfire policy has `replay_paused`,
    /// in which case they are planned like fires missed while down.
    pub fn resume(&self, id: &str) -> Result<()> {
        let now = self.inner.clock.now();
        let mut st = self.inner.lock();
        let slot = st.jobs.slot(id).ok_or_else(|| Error::UnknownJob(id.to_owned()))?;
        let job = st.jobs.get_mut(slot).expect("indexed");
        if !job.paused {
            return Ok(());
        }
        job.paused = false;
        let paused_at = job.cold.as_mut().and_then(|c| c.paused_at.take());
        tracing::info!(job_id = %id, "job resumed");
        if st.phase == Phase::Running {
            let job = st.jobs.get(slot).expect("indexed");
            // The fires after the pause; an interval's on the grid of its
            // last fire.
            let replay_from = if job.misfire.replay_paused {
                job.last_fire.or(paused_at).map(|last| {
                    let from = last.max(paused_at.unwrap_or(last));
                    match (&job.schedule, job.last_fire) {
                        (Some(s), Some(l)) => s.grid_at_or_before(l, from),
                        _ => from,
                    }
                })
            } else {
                None
            };
            match replay_from {
                Some(last) => {
                    let reason = "misfire: came due while the job was paused";
                    self.catch_up(&mut st, slot, last, now, reason)
                }
                None => self.plan_next(&mut st, slot, now),
            }
            self.release(st);
        }
        Ok(())
    }

    /// Runs a job now, as a fire at the current time. It obeys the overlap
    /// policy: with a run in progress, `Skip` records the trigger as
    /// `skipped`, `Queue` queues it, `Allow` starts beside, `Replace` cancels
    /// the old run. A paused job can be triggered.
    ///
    /// A job whose fires are claimed
    /// ([`SchedulerBuilder::claim_fires`](crate::SchedulerBuilder::claim_fires))
    /// claims its trigger too, as a fire at the current millisecond (or the
    /// next one free for the job): the outcome is
    /// [`TriggerOutcome::Pending`], and the policy decides once the claim
    /// is won. The claim's lease makes another instance run the trigger
    /// again, with the same fire key, should this one die before it ends.
    pub fn trigger(&self, id: &str) -> Result<TriggerOutcome> {
        self.trigger_fire(id, None)
    }

    /// Runs a job now as the manual fire at `at`, whose fire key
    /// ([`JobContext::fire_key`](crate::JobContext::fire_key)) is the job
    /// and `at`, as [`trigger`](Self::trigger) does otherwise.
    ///
    /// It makes a trigger requested elsewhere (a queue, a control table)
    /// run once across instances: with claims, an instant already claimed,
    /// by this instance or another, is not run again (the outcome is still
    /// [`TriggerOutcome::Pending`]; the claim's owner, or the instance that
    /// takes its lease over, runs it). Without claims it runs, recorded at
    /// `at`.
    pub fn trigger_at(&self, id: &str, at: DateTime<Utc>) -> Result<TriggerOutcome> {
        self.trigger_fire(id, Some(at))
    }

    fn trigger_fire(&self, id: &str, at: Option<DateTime<Utc>>) -> Result<TriggerOutcome> {
        let now = self.inner.clock.now();
        let mut st = self.inner.lock();
        if st.phase != Phase::Running {
            return Err(match st.phase {
                Phase::Created => Error::NotStarted,
                _ => Error::Stopped,
            });
        }
        let slot = st.jobs.slot(id).ok_or_else(|| Error::UnknownJob(id.to_owned()))?;
        let job = st.jobs.get_mut(slot).expect("indexed");
        let outcome = if job.claimed {
            let nominal = at.unwrap_or_else(|| job.trigger_instant(now));
            job.decided(nominal, true);
            let spec = job.spec.clone();
            let fire = Fire::new(nominal, FireKind::Manual);
            let seq = st.claim_trigger(&spec, slot, fire, at.is_some());
            TriggerOutcome::Pending { execution_id: exec_id(self.inner.instance_bits, seq) }
        } else {
            self.dispatch(&mut st, slot, Fire::new(at.unwrap_or(now), FireKind::Manual), now)
        };
        self.release(st);
        Ok(outcome)
    }

    /// Cancels one run of this instance by its execution id.
    ///
    /// A running run is cancelled and dropped at once, as
    /// [`OverlapPolicy::Replace`](crate::OverlapPolicy::Replace) does, and
    /// its attempt is recorded `cancelled`; a run waiting out a retry backoff
    /// is recorded `cancelled` with no further attempt. A queued run (see
    /// [`TriggerOutcome::Queued`]) leaves the queue and is recorded
    /// `cancelled` without starting. Fails with [`Error::UnknownExecution`]
    /// when no run with this id is running or queued here.
    pub fn cancel(&self, execution_id: ExecutionId) -> Result<()> {
        let unknown = || Error::UnknownExecution(execution_id.to_string());
        let (bits, seq) = ((execution_id.0 >> 64) as u64, execution_id.0 as u64);
        if bits != self.inner.instance_bits || seq == 0 {
            return Err(unknown());
        }
        let now = self.inner.clock.now();
        let mut st = self.inner.lock();
        let mut queued = None;
        for (slot, job) in st.jobs.iter() {
            if let Some(run) = job.running.iter().find(|r| r.seq == seq) {
                tracing::info!(job_id = %job.spec.id, %execution_id, "run cancelled on request");
                run.cancel.cancel_for(CancelReason::Request);
                run.cancel.kill();
                return Ok(());
            }
            if let Some(i) = job.backlog.iter().position(|f| f.seq == seq) {
                queued = Some((slot, i));
                break;
            }
        }
        let (slot, i) = queued.ok_or_else(unknown)?;
        let job = st.jobs.get_mut(slot).expect("found above");
        let fire = job.backlog.remove(i).expect("found above");
        let id = job.spec.id.clone();
        if fire.fence > 0 {
            st.leases.remove(&(id.clone(), fire.nominal));
        }
        drop(st);
        let error = format!("cancelled while queued ({})", CancelReason::Request.as_str());
        self.record_unstarted(&id, execution_id, fire.first_attempt, &fire, now, error);
        Ok(())
    }

    /// A listing of every job, sorted by id.
    pub fn jobs(&self) -> Vec<JobInfo> {
        let st = self.inner.lock();
        let mut out: Vec<JobInfo> = st.jobs.iter().map(|(_, j)| Self::info(j)).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// One job's listing.
    pub fn job(&self, id: &str) -> Option<JobInfo> {
        self.inner.lock().jobs.by_id(id).map(Self::info)
    }

    /// Starts firing.
    ///
    /// It first writes this instance's heartbeat, marks as `abandoned` the
    /// runs left `running` by instances that stopped heartbeating, and reads
    /// each job's last fire from the store: fires missed since then follow
    /// the job's misfire policy. A store that fails here is logged and
    /// treated as empty; jobs fire regardless.
    pub async fn start(&self) -> Result<()> {
        let store = &self.inner.store;
        let can_claim = || guard::call("the store", || store.supports_claims()).unwrap_or(false);
        if self.inner.settings.claim && !can_claim() {
            return Err(Error::ClaimsUnsupported(format!("{:?}", self.inner.store)));
        }
        {
            let mut st = self.inner.lock();
            match st.phase {
                Phase::Created => st.phase = Phase::Running,
                Phase::Running => return Err(Error::AlreadyStarted),
                Phase::Stopping | Phase::Stopped => return Err(Error::Stopped),
            }
        }
        let inner = &self.inner;
        let now = inner.clock.now();
        let store = &inner.store;
        let beat = guard::store_call("heartbeat", store.heartbeat(&inner.instance_id, now));
        if let Err(e) = beat.await {
            tracing::warn!(error = %error_chain(&e), "could not write heartbeat at start");
        }
        self.refresh_peers(now).await;
        let stale_after = inner.settings.stale_after;
        let sweep = store.mark_abandoned(&inner.instance_id, now, stale_after);
        match guard::store_call("mark_abandoned", sweep).await {
            Ok(rows) => inner.abandoned(&rows, true),
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "could not mark abandoned runs at start")
            }
        }
        // Nothing runs here yet: a running row of this id is an earlier
        // process's, under the same name.
        let own = store.abandon_own(&inner.instance_id, now);
        match guard::store_call("abandon_own", own).await {
            Ok(rows) => inner.abandoned(&rows, true),
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "could not mark this instance's earlier runs abandoned at start")
            }
        }
        let ids: Vec<String> =
            inner.lock().jobs.iter().map(|(_, j)| j.spec.id.to_string()).collect();
        // Misfire planning starts from each job's last scheduled fire:
        // trigger and backfill rows say nothing of the schedule's fires.
        let read = store.last_scheduled_fires(&ids);
        let last = match guard::store_call("last_scheduled_fires", read).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "could not read last fires at start; missed runs are not planned");
                HashMap::new()
            }
        };
        // The newest row of any kind is the job's last run (`JobInfo::last_run`).
        let newest = match guard::store_call("last_fires", store.last_fires(&ids)).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "could not read last runs at start");
                HashMap::new()
            }
        };
        let now = inner.clock.now();
        {
            let mut st = inner.lock();
            let slots: Vec<(Slot, Option<DateTime<Utc>>)> =
                st.jobs.iter().map(|(slot, j)| (slot, last.get(&*j.spec.id).copied())).collect();
            for (slot, last) in slots {
                self.plan_first(&mut st, slot, last, now, "the scheduler started");
                if let Some(job) = st.jobs.get_mut(slot) {
                    // A trigger or backfill newer than the last scheduled
                    // fire: noted as a trigger, as it is when dispatched.
                    match newest.get(&*job.spec.id) {
                        Some(&t) if last.is_none_or(|l| l < t) => job.decided(t, true),
                        _ => {}
                    }
                }
            }
            st.background += if inner.settings.claim { 3 } else { 2 };
            self.release(st);
        }
        if inner.settings.claim {
            let this = self.clone();
            inner.spawner.spawn(Box::pin(async move { this.lease_loop().await }));
        }
        let this = self.clone();
        inner.spawner.spawn(Box::pin(async move { this.drive().await }));
        let this = self.clone();
        inner.spawner.spawn(Box::pin(async move { this.heartbeat_loop().await }));
        let rec = inner.recorder.clone();
        inner.spawner.spawn(Box::pin(rec.run(inner.store.clone(), inner.dyn_clock.clone())));
        tracing::debug!(instance_id = %inner.instance_id, jobs = ids.len(), "scheduler started");
        Ok(())
    }

    /// Stops the scheduler.
    ///
    /// It stops firing, records waiting fires as `skipped`, signals
    /// cancellation to every running handler and waits up to `grace` for
    /// them; those still running then are dropped and recorded `cancelled`.
    /// It returns once every record reached the store, or once the flush
    /// timeout passed with the store failing (then `unwritten` counts what
    /// was lost, and the error is logged).
    pub async fn stop(&self, grace: Duration) -> Result<StopReport> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let (was_running, shutdown) = {
            let mut st = inner.lock();
            match st.phase {
                Phase::Running => {}
                Phase::Created => {
                    st.phase = Phase::Stopped;
                    return Ok(StopReport::default());
                }
                Phase::Stopping | Phase::Stopped => return Err(Error::Stopped),
            }
            st.phase = Phase::Stopping;
            let st = &mut *st;
            let mut skips = Vec::new();
            for job in st.jobs.values_mut() {
                job.generation += 1;
                job.next_nominal = None;
                for fire in job.backlog.drain(..) {
                    skips.push((job.spec.id.clone(), fire));
                }
                for run in &job.running {
                    run.cancel.cancel_for(CancelReason::Stop);
                }
            }
            st.timeline.clear();
            for (id, fire) in skips {
                self.record_skip(st, &id, fire, now, "scheduler stopping");
            }
            (st.live_runs, st.shutdown.clone())
        };
        shutdown.cancel();
        inner.wake.notify();
        tracing::info!(
            running = was_running,
            grace_ms = grace.as_millis() as u64,
            "scheduler stopping"
        );
        // The fires this instance won ahead of their instant are its own to
        // run: the driver starts them at their instant (at most
        // `claim_ahead` away) before it ends. Those the grace does not
        // reach are recorded skipped.
        if !self.wait_held(checked_after(now, grace)).await {
            let mut st = inner.lock();
            self.skip_held(&mut st, inner.clock.now());
            drop(st);
            inner.wake.notify();
        }

        // A grace past the end of time waits for the runs to end.
        let all_done = self.wait_runs(checked_after(now, grace)).await;
        let mut report = StopReport::default();
        if !all_done {
            let st = inner.lock();
            for (_, job) in st.jobs.iter() {
                for run in &job.running {
                    run.cancel.kill();
                }
            }
            report.dropped = st.live_runs;
        }
        report.finished_in_grace = was_running - report.dropped;
        self.wait_runs(None).await;
        self.wait_background().await;

        let flush_deadline = after(inner.clock.now(), inner.settings.flush_timeout);
        if !inner.recorder.flush(&*inner.clock, flush_deadline).await {
            let h = inner.recorder.health();
            report.unwritten = h.buffered;
            tracing::error!(
                unwritten = h.buffered,
                error = h.last_error.as_deref().unwrap_or(""),
                "stop: store still failing at the flush deadline; records lost"
            );
        }
        inner.recorder.close();
        inner.lock().phase = Phase::Stopped;
        tracing::info!(
            finished_in_grace = report.finished_in_grace,
            dropped = report.dropped,
            unwritten = report.unwritten,
            "scheduler stopped"
        );
        Ok(report)
    }

    /// Waits until no run is live, or until `deadline`; whether none is.
    async fn wait_runs(&self, deadline: Option<DateTime<Utc>>) -> bool {
        self.wait_for(deadline, |st| st.live_runs == 0).await
    }

    /// Waits until no fire claimed ahead is held (see `ahead`), or until
    /// `deadline`; whether none is.
    async fn wait_held(&self, deadline: Option<DateTime<Utc>>) -> bool {
        self.wait_for(deadline, |st| st.held.next_due().is_none()).await
    }

    /// Waits until `done` holds of the state, looked at again at each
    /// `idle` notice, or until `deadline`; whether it holds.
    async fn wait_for(
        &self,
        deadline: Option<DateTime<Utc>>,
        done: impl Fn(&State) -> bool,
    ) -> bool {
        loop {
            let listener = self.inner.idle.listen();
            if done(&self.inner.lock()) {
                return true;
            }
            match deadline {
                Some(d) => {
                    if self.inner.clock.now() >= d {
                        return false;
                    }
                    let sleep = self.inner.clock.sleep_until(d);
                    if let Either::Right(_) = select(listener, sleep).await {
                        return done(&self.inner.lock());
                    }
                }
                None => listener.await,
            }
        }
    }

    async fn wait_background(&self) {
        loop {
            let listener = self.inner.idle.listen();
            if self.inner.lock().background == 0 {
                return;
            }
            listener.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobContext;
    use crate::runtime::LocalRuntime;
    use crate::store::{ExecutionStatus, MemoryStore};

    #[test]
    fn jobs_on_one_cron_share_its_parse_until_the_last_is_unregistered() {
        let rt = LocalRuntime::new();
        let s = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner())).seed(1).build();
        let job = |id: &str, tz: &str| {
            JobConfig::new(id, |_ctx: JobContext| async {}).schedule("*/5 * * * *").timezone(tz)
        };
        s.register(job("a", "Europe/Berlin")).unwrap();
        s.register(job("b", "Europe/Berlin")).unwrap();
        s.register(job("c", "UTC")).unwrap();
        assert_eq!(s.inner.lock().crons.len(), 2);
        s.unregister("a").unwrap();
        assert_eq!(s.inner.lock().crons.len(), 2);
        s.unregister("b").unwrap();
        assert_eq!(s.inner.lock().crons.len(), 1);
        assert_eq!(s.job("c").unwrap().schedule.as_deref(), Some("CRON_TZ=UTC */5 * * * *"));
    }

    /// Runs with or without the `tokio` feature: the engine needs no tokio.
    #[test]
    fn runs_on_the_local_runtime_without_tokio() {
        let rt = LocalRuntime::new();
        let store = Arc::new(MemoryStore::new());
        let s = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
            .store(store.clone())
            .seed(1)
            .build();
        s.register(
            JobConfig::new("t", |ctx: JobContext| async move {
                ctx.sleep(Duration::from_secs(1)).await;
            })
            .schedule(Duration::from_secs(10)),
        )
        .unwrap();
        rt.block_on(s.start()).unwrap();
        rt.advance(Duration::from_secs(100));
        let report = rt.block_on(s.stop(Duration::from_secs(5))).unwrap();
        // The fire at exactly 100 s had just started; it ends on cancellation.
        assert_eq!(report, StopReport { finished_in_grace: 1, dropped: 0, unwritten: 0 });
        let rows = store.all();
        assert_eq!(rows.len(), 10);
        assert!(rows.iter().all(|r| r.status == ExecutionStatus::Succeeded));
        assert_eq!(s.phase(), Phase::Stopped);
    }
}
