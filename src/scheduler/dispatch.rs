//! Dispatch: the overlap policy starts, queues or skips a fire; runs started
//! under the lock launch once it is released (a handler's first poll on the
//! driver when it may), and ended runs are settled.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::Future;

use super::claim::OnClaim;
use super::driver::DISPATCH_CHUNK;
use super::registry::{Fire, RunHandle, Slot, Spec, exec_id};
use super::run::{Outcome, Resume};
use super::{JobScheduler, Phase, State, TriggerOutcome};
use crate::cancel::{CancelReason, CancellationToken};
use crate::logfmt::Rfc3339;
use crate::policy::OverlapPolicy;
use crate::store::{ExecutionEvent, ExecutionId, ExecutionStatus, SkippedFire};
use crate::trace;

impl JobScheduler {
    /// Starts, queues or skips a fire per the overlap policy.
    ///
    /// The outcome tells a manual trigger what happened; scheduled fires
    /// ignore it.
    pub(super) fn dispatch(
        &self,
        st: &mut State,
        slot: Slot,
        mut fire: Fire,
        now: DateTime<Utc>,
    ) -> TriggerOutcome {
        let Some(job) = st.jobs.get_mut(slot) else { return TriggerOutcome::Skipped };
        job.decided(fire.nominal, !fire.is_scheduled());
        if job.claimed && fire.is_scheduled() && !fire.claimed {
            // The overlap policy is applied by the instance that wins it.
            // (Triggers are claimed before: nobody reads this outcome.)
            let spec = job.spec.clone();
            st.claim(&spec, slot, fire, OnClaim::Dispatch, now);
            return TriggerOutcome::Skipped;
        }
        if job.running.is_empty() {
            return self.start_run(st, slot, fire);
        }
        if let Some(max) = job.spec.max_concurrent
            && job.running.len() >= max as usize
            && job.overlap == OverlapPolicy::Allow
        {
            let key = job.spec.id.clone();
            let reason = format!("max_concurrent {max}: {max} run(s) of the job already running");
            self.record_skip(st, &key, fire, now, &reason);
            return TriggerOutcome::Skipped;
        }
        match job.overlap {
            OverlapPolicy::Allow => self.start_run(st, slot, fire),
            OverlapPolicy::Replace => {
                for run in &job.running {
                    tracing::info!(job_id = %job.spec.id, execution_id = %run.id(self.inner.instance_bits), "replacing the running run");
                    run.cancel.cancel_for(CancelReason::Replace);
                    run.cancel.kill();
                }
                self.start_run(st, slot, fire)
            }
            OverlapPolicy::Queue if job.backlog.is_empty() => {
                // A claimed fire has its id already: the claim records it.
                if fire.seq == 0 {
                    st.next_exec += 1;
                    fire.seq = st.next_exec;
                }
                let job = st.jobs.get_mut(slot).expect("checked above");
                job.backlog.push_back(fire);
                tracing::info!(job_id = %job.spec.id, scheduled_at = %Rfc3339(fire.nominal), "fire queued behind the running run");
                TriggerOutcome::Queued { execution_id: exec_id(self.inner.instance_bits, fire.seq) }
            }
            OverlapPolicy::Queue | OverlapPolicy::Skip => {
                let reason = match job.overlap {
                    OverlapPolicy::Queue => "overlap policy queue: a fire is already queued",
                    _ => "overlap policy skip: the previous run is still running",
                };
                let key = job.spec.id.clone();
                self.record_skip(st, &key, fire, now, reason);
                TriggerOutcome::Skipped
            }
        }
    }

    /// Records `fire` of job `key` as `skipped` for `reason`, under the
    /// fire's execution id if it has one already (a queued fire).
    pub(super) fn record_skip(
        &self,
        st: &mut State,
        key: &Arc<str>,
        fire: Fire,
        now: DateTime<Utc>,
        reason: &str,
    ) {
        let execution_id = match fire.seq {
            0 => st.new_exec_id(self.inner.instance_bits),
            seq => exec_id(self.inner.instance_bits, seq),
        };
        // The job's `last_run` has this fire already: it was noted when it
        // was decided (`Job::decided`, or the newest of a catch-up).
        let nominal = fire.nominal;
        tracing::info!(job_id = %&**key, %execution_id, scheduled_at = %Rfc3339(nominal), status = "skipped", reason, "fire skipped");
        self.inner.record(ExecutionEvent::Skipped(SkippedFire {
            job_id: key.clone(),
            execution_id,
            scheduled_at: nominal,
            decided_at: now,
            reason: reason.to_owned(),
            instance_id: self.inner.instance_id.clone(),
            kind: fire.kind,
            fence: fire.fence(),
        }));
        if fire.fence > 0 {
            st.leases.remove(&(key.clone(), nominal));
        }
    }

    /// Marks a run as started and queues its launch; whoever holds the lock
    /// launches it after releasing it ([`release`](Self::release), or the
    /// driver's batches), so no handler runs under the lock.
    pub(super) fn start_run(&self, st: &mut State, slot: Slot, fire: Fire) -> TriggerOutcome {
        let id = match fire.seq {
            0 => st.new_exec_id(self.inner.instance_bits),
            seq => exec_id(self.inner.instance_bits, seq),
        };
        let seed = st.rng.u64(..);
        let cancel = st.tokens.pop().unwrap_or_default();
        let Some(job) = st.jobs.get_mut(slot) else { return TriggerOutcome::Skipped };
        job.running.push(RunHandle::new(id, cancel.clone()));
        let spec = job.spec.clone();
        st.live_runs += 1;
        st.launches.push(Launch { spec, slot, id, fire, cancel, seed, span: None });
        TriggerOutcome::Started { execution_id: id }
    }

    /// Releases the lock, then sends the claims decided under it and spawns
    /// the runs started under it.
    pub(super) fn release(&self, mut st: MutexGuard<'_, State>) {
        let claims = Self::take_claims(&mut st);
        if claims.is_empty() && st.launches.is_empty() {
            return;
        }
        let launches = std::mem::take(&mut st.launches);
        drop(st);
        self.send_claims(claims);
        for l in launches {
            self.spawn_run(l, Resume::Fresh);
        }
    }
    /// Runs `l` as its own task, from `resume` (a fresh run opens its
    /// span here; a resumed one has it).
    fn spawn_run(&self, mut l: Launch, resume: Resume) {
        if let Resume::Fresh = resume {
            l.span = l.run_span();
        }
        let this = self.clone();
        self.inner.spawner.spawn(Box::pin(async move {
            let status = this.run(&l, resume).await;
            // The run's own handle goes first, so the token can be reused;
            // its span closes before the run is settled.
            let Launch { spec, slot, id, fire, cancel, span, seed: _ } = l;
            drop(cancel);
            trace::end_span(span, status);
            let leased = (fire.fence > 0).then_some(fire.nominal);
            this.runs_ended(std::iter::once((spec, slot, id, status, leased)));
        }));
    }

    /// Launches runs from the driver: each handler's first poll happens
    /// here, and a run that ends on it costs no task. The rest are spawned.
    /// Ended runs are settled under one hold of the lock. `last` is the
    /// driver's latest clock reading, the fallback of a panicking clock.
    pub(super) fn launch_batch(
        &self,
        launches: &mut Vec<Launch>,
        ended: &mut Vec<Ended>,
        last: DateTime<Utc>,
    ) {
        if launches.is_empty() {
            return;
        }
        let clock = &self.inner.clock;
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
        // One clock read per run: a run's end is the next one's start. A
        // panicking read gives the one before it.
        let mut now = clock.now_or(last);
        // Whether the runs get spans, asked once for the batch.
        let traced = trace::wanted();
        for mut l in launches.drain(..) {
            if !self.inner.settings.inline || !l.spec.inline.load(Ordering::Relaxed) {
                self.spawn_run(l, Resume::Fresh);
                continue;
            }
            if traced {
                l.span = l.run_span();
            }
            let first = l.fire.first_attempt;
            let mut flight = self.begin_attempt(&l, first, now, true);
            let outcome = if l.cancel.is_killed() {
                Outcome::Killed
            } else {
                match Pin::new(&mut flight.work).poll(&mut cx) {
                    Poll::Ready(res) => Outcome::Done(res),
                    Poll::Pending => {
                        // It waits on something: this run and the job's later
                        // ones go to the spawner. The task polls it again with
                        // its own waker, as a spawned future is always polled.
                        l.spec.inline.store(false, Ordering::Relaxed);
                        if std::mem::take(&mut flight.start_unwritten) {
                            let start = self.start_event(&l, first, flight.started_at);
                            self.inner.recorder.push(start);
                        }
                        self.spawn_run(l, Resume::InFlight(Box::new(flight)));
                        now = clock.now_or(now);
                        continue;
                    }
                }
            };
            now = clock.now_or(now);
            let end = self.end_attempt(&l, first, flight, outcome, now);
            if end.duration > INLINE_LIMIT {
                l.spec.inline.store(false, Ordering::Relaxed);
            }
            if end.retry {
                self.spawn_run(l, Resume::Backoff(end.at));
            } else {
                trace::end_span(l.span, end.status);
                let leased = (l.fire.fence > 0).then_some(l.fire.nominal);
                ended.push((l.spec, l.slot, l.id, end.status, leased));
            }
        }
        self.runs_ended(ended.drain(..));
    }

    /// Settles ended runs: frees their jobs for the next fire and starts
    /// what the overlap policy queued behind them.
    fn runs_ended(&self, ended: impl ExactSizeIterator<Item = Ended>) {
        if ended.len() == 0 {
            return;
        }
        let mut st = self.inner.lock();
        for (spec, slot, id, status, leased) in ended {
            st.live_runs -= 1;
            if let Some(at) = leased {
                st.leases.remove(&(spec.id.clone(), at));
            }
            if !st.waiters.is_empty()
                && let Some(tx) = st.waiters.remove(&(id.0 as u64))
            {
                let _ = tx.send(status);
            }
            let mut next = None;
            let mut handle = None;
            // The slot holds another job once this one was unregistered.
            if let Some(job) = st.jobs.get_mut(slot).filter(|j| Arc::ptr_eq(&j.spec, &spec)) {
                if let Some(i) = job.running.iter().position(|r| r.is(id)) {
                    handle = Some(job.running.remove(i));
                }
                job.last_status = Some(status);
                if job.running.is_empty() {
                    next = job.backlog.pop_front();
                }
            }
            // A queued fire whose lease ran out while it waited (its store
            // unreachable) may be another instance's now: not started here.
            while let Some(fire) = next.filter(|f| f.fence > 0) {
                let key = (spec.id.clone(), fire.nominal);
                let now = self.inner.clock.now();
                if st.leases.get(&key).is_some_and(|h| h.fence == fire.fence && h.expires > now) {
                    break;
                }
                tracing::warn!(job_id = %spec.id, scheduled_at = %Rfc3339(fire.nominal), fence = fire.fence, "a queued fire's lease ran out before it could start; left to the instance that takes it over");
                st.leases.remove(&key);
                next = st.jobs.get_mut(slot).and_then(|j| j.backlog.pop_front());
            }
            if let Some(h) = handle.filter(|_| st.tokens.len() < TOKEN_POOL) {
                st.tokens.extend(h.cancel.recycle());
            }
            if let Some(fire) = next {
                if st.phase == Phase::Running {
                    self.start_run(&mut st, slot, fire);
                } else {
                    let now = self.inner.clock.now();
                    self.record_skip(&mut st, &spec.id, fire, now, "scheduler stopping");
                }
            }
        }
        self.release(st);
        self.inner.idle.notify(usize::MAX);
    }
}

/// A run started under the lock, to launch once it is released.
pub(super) struct Launch {
    pub(super) spec: Arc<Spec>,
    pub(super) slot: Slot,
    pub(super) id: ExecutionId,
    pub(super) fire: Fire,
    pub(super) cancel: CancellationToken,
    pub(super) seed: u64,
    /// The run's span ([`trace::run_span`]), opened when it is launched;
    /// `None` before, and when no layer wants it.
    pub(super) span: Option<Box<tracing::Span>>,
}

impl Launch {
    /// The span of this run.
    #[inline(always)]
    fn run_span(&self) -> Option<Box<tracing::Span>> {
        trace::run_span(&self.spec.id, self.id, self.fire.nominal, self.fire.kind)
    }
}

/// A run that ended, with its final status and, when it held a lease, its
/// fire's nominal time, to settle under the lock.
type Ended = (Arc<Spec>, Slot, ExecutionId, ExecutionStatus, Option<DateTime<Utc>>);

/// How long a handler's first poll may take on the driver before its job's
/// runs go to the spawner instead.
pub(super) const INLINE_LIMIT: Duration = Duration::from_millis(1);

/// How many ended runs' tokens are kept for reuse: enough for the runs of
/// two dispatch chunks.
pub(super) const TOKEN_POOL: usize = 2 * DISPATCH_CHUNK;
