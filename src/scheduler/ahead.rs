//! Claims ahead of the fire: a claimed job's scheduled fire is claimed
//! `claim_ahead` before it is due, and a fire won early waits here, leased,
//! until its instant (see `SchedulerBuilder::claim_ahead`).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::registry::{Fire, Job, Slot, Spec};
use super::{JobScheduler, Phase, State, TriggerOutcome};
use crate::cancel::CancelReason;
use crate::logfmt::Rfc3339;

/// A fire won before it is due, waiting for its instant.
pub(super) struct HeldFire {
    /// When it is due (its nominal time, plus its jitter).
    pub(super) due: DateTime<Utc>,
    /// Arrival order, so that fires due together keep it.
    order: u64,
    pub(super) spec: Arc<Spec>,
    pub(super) slot: Slot,
    pub(super) fire: Fire,
}

impl PartialEq for HeldFire {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for HeldFire {}
impl PartialOrd for HeldFire {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeldFire {
    /// Reversed: the heap's top is the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.order).cmp(&(self.due, self.order))
    }
}

/// The fires won ahead of their instant, earliest first.
#[derive(Default)]
pub(super) struct Held {
    heap: BinaryHeap<HeldFire>,
    order: u64,
}

impl Held {
    /// Holds `fire` until `due`.
    pub(super) fn push(&mut self, due: DateTime<Utc>, spec: Arc<Spec>, slot: Slot, fire: Fire) {
        self.order += 1;
        self.heap.push(HeldFire { due, order: self.order, spec, slot, fire });
    }

    /// The earliest held fire's instant.
    pub(super) fn next_due(&self) -> Option<DateTime<Utc>> {
        self.heap.peek().map(|h| h.due)
    }

    /// Every held fire, in no order.
    pub(super) fn drain(&mut self) -> impl Iterator<Item = HeldFire> + '_ {
        self.heap.drain()
    }

    /// The earliest held fire, when it is due by `now`.
    pub(super) fn pop_due(&mut self, now: DateTime<Utc>) -> Option<HeldFire> {
        if self.heap.peek()?.due <= now { self.heap.pop() } else { None }
    }
}

impl JobScheduler {
    /// How long before its instant a fire of `job` is claimed: the
    /// `claim_ahead` setting for a claimed job, zero for the others and for
    /// a job with a cluster limit, whose claim counts the runs live at its
    /// instant, not earlier.
    pub(super) fn ahead_of(&self, job: &Job) -> Duration {
        if job.claimed && job.spec.cluster_limit.is_none() {
            self.inner.settings.ahead
        } else {
            Duration::ZERO
        }
    }

    /// Holds a fire won before `due`, and wakes the driver when it is the
    /// earliest thing it waits for.
    pub(super) fn hold(
        &self,
        st: &mut State,
        due: DateTime<Utc>,
        spec: Arc<Spec>,
        slot: Slot,
        fire: Fire,
    ) {
        st.held.push(due, spec, slot, fire);
        if st.driver_wake.is_none_or(|w| due < w) {
            st.driver_wake = Some(due);
            self.inner.wake.notify();
        }
    }

    /// A held fire has come due: it goes through the overlap policy, as a
    /// fire won at its instant (a stopping scheduler's run is told to stop
    /// at once), under the job's definition of now. It is recorded
    /// `skipped` when its job was removed (and not registered again) or
    /// paused meanwhile, and dropped when its lease was lost (another
    /// instance's now).
    pub(super) fn release_held(&self, st: &mut State, h: HeldFire, now: DateTime<Utc>) {
        let key = &h.spec.id;
        let at = h.fire.nominal;
        let leased = st.leases.get(&(key.clone(), at)).is_some_and(|l| l.fence == h.fire.fence);
        if !leased {
            tracing::warn!(job_id = %&**key, scheduled_at = %Rfc3339(at), fence = h.fire.fence, "a fire claimed ahead lost its lease before its instant; left to the instance that takes it over");
            return;
        }
        // A job registered again under its id (an update) runs the fire
        // under its new definition: the claim and its lease are this
        // instance's, and the new registration's own claim of the instant
        // finds it taken.
        let slot = match st.jobs.get(h.slot).filter(|j| Arc::ptr_eq(&j.spec, &h.spec)) {
            Some(_) => Some(h.slot),
            None => st.jobs.slot(key),
        };
        let reason = match slot.and_then(|s| st.jobs.get(s).map(|j| (s, j))) {
            None => "job unregistered",
            Some((_, job)) if job.paused => "job paused after its fire was claimed",
            Some((slot, _)) => {
                let out = self.dispatch(st, slot, h.fire, now);
                // Started by a stopping scheduler: the stop applies to it as
                // to the runs that were going on.
                if st.phase != Phase::Running
                    && let TriggerOutcome::Started { execution_id } = out
                    && let Some(job) = st.jobs.get(slot)
                    && let Some(run) = job.running.iter().find(|r| r.is(execution_id))
                {
                    run.cancel.cancel_for(CancelReason::Stop);
                }
                return;
            }
        };
        self.record_skip(st, key, h.fire, now, reason);
    }

    /// Records the fires still held at the end of a stop's grace `skipped`.
    pub(super) fn skip_held(&self, st: &mut State, now: DateTime<Utc>) {
        let held: Vec<HeldFire> = st.held.drain().collect();
        for h in held {
            self.record_skip(st, &h.spec.id, h.fire, now, "scheduler stopping");
        }
    }
}
