//! Planning: a job's next fire on the timeline, and what its misfire policy
//! decides for the fires it missed (skip, run once, run all).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::claim::OnClaim;
use super::registry::{Fire, NO_JITTER, Slot};
use super::{JobScheduler, State};
use crate::clock::std_dur;
use crate::logfmt::Rfc3339;
use crate::schedule::Schedule;

impl JobScheduler {
    /// Plans a job's first fire at start or registration: fires missed
    /// since `last` (the store's last fire) follow the misfire policy; with
    /// no last fire, a one-shot whose instant has passed is a missed fire
    /// too (`since` says since what, in its skip reason).
    pub(super) fn plan_first(
        &self,
        st: &mut State,
        slot: Slot,
        last: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        since: &str,
    ) {
        let Some(job) = st.jobs.get_mut(slot) else { return };
        if let Some(l) = last {
            job.last_fire = Some(l);
            return self.catch_up(st, slot, l, now, "misfire: missed while down or stalled");
        }
        match job.schedule.as_ref().and_then(Schedule::once_at) {
            Some(at) if at <= now => {
                let reason = format!("misfire: its one-shot time passed before {since}");
                self.catch_up(
                    st,
                    slot,
                    crate::clock::before(at, Duration::from_nanos(1)),
                    now,
                    &reason,
                )
            }
            _ => self.plan_next(st, slot, now),
        }
    }

    /// Plans the job's next fire strictly after `after`.
    pub(super) fn plan_next(&self, st: &mut State, slot: Slot, after: DateTime<Utc>) {
        self.plan(st, slot, after, false);
    }

    /// Plans the job's next fire after `after`, the job's last fire when
    /// `after_fire` (a cheaper step for intervals). Never at or before the
    /// last fire decided, whatever the clock did since (a backward jump).
    pub(super) fn plan(&self, st: &mut State, slot: Slot, after: DateTime<Utc>, after_fire: bool) {
        // Generations come from the global sequence, so an entry of an
        // unregistered job never matches a new job registered under its id.
        st.seq += 1;
        let fresh = st.seq;
        let Some(job) = st.jobs.get_mut(slot) else { return };
        job.generation = fresh;
        job.next_nominal = None;
        job.claimed_ahead = false;
        if job.paused {
            return;
        }
        let Some(schedule) = &job.schedule else { return };
        let next = match job.last_fire {
            // Each later fire of a schedule is a fire after its last one.
            Some(last) if last > after => schedule.next_after_fire(last),
            _ if after_fire => schedule.next_after_fire(after),
            // An interval keeps the grid of its last fire.
            Some(last) => schedule.next_after_since(last, after),
            None => schedule.next_after(after),
        };
        let Some(nominal) = next else {
            tracing::debug!(job_id = %job.spec.id, "no further fire");
            return;
        };
        let mut due = nominal;
        if job.jitter_ms != NO_JITTER {
            let max = job.jitter_ms;
            let room = schedule
                .next_after_fire(nominal)
                .map(|n| std_dur(nominal, n).saturating_sub(Duration::from_millis(1)))
                .map_or(max, |room| u64::try_from(room.as_millis()).unwrap_or(u64::MAX));
            let bound = max.min(room);
            let delay = Duration::from_millis(st.rng.u64(0..=bound));
            due = crate::clock::after(nominal, delay);
        }
        job.next_nominal = Some(nominal);
        tracing::debug!(job_id = %job.spec.id, next_run = %Rfc3339(nominal), due = %Rfc3339(due), "next run planned");
        // A fire claimed ahead leaves the timeline that much earlier (`ahead`).
        let ahead = self.ahead_of(job);
        if !ahead.is_zero() {
            due = crate::clock::before(due, ahead);
        }
        st.timeline.push(due, fresh, slot);
        if st.driver_wake.is_none_or(|w| due < w) {
            st.driver_wake = Some(due);
            self.inner.wake.notify();
        }
    }

    /// Applies the misfire policy to the fires after `last` up to `now`,
    /// then plans the next fire. A missed fire skipped is recorded with
    /// `reason`.
    pub(super) fn catch_up(
        &self,
        st: &mut State,
        slot: Slot,
        last: DateTime<Utc>,
        now: DateTime<Utc>,
        reason: &str,
    ) {
        let Some(job) = st.jobs.get_mut(slot) else { return };
        if job.paused {
            return;
        }
        let Some(schedule) = &job.schedule else { return };
        let key = &job.spec.id.clone();
        let claimed = job.claimed.then(|| job.spec.clone());
        let plan = job.misfire.plan(schedule, last, now);
        // Every missed fire is decided here, run or skipped: none is planned again.
        let newest = [plan.skip.last(), plan.run.last(), plan.first_unlisted.as_ref()];
        let newest = newest.into_iter().flatten().max().copied();
        if newest.is_some() {
            job.last_fire = job.last_fire.max(newest);
        }
        // A claimed job's missed fires are claimed too: one instance records
        // each skip and runs each catch-up fire.
        let skip = |this: &Self, st: &mut State, at: DateTime<Utc>, reason: String| match &claimed {
            Some(spec) => {
                st.claim(spec, slot, Fire::scheduled(at), OnClaim::Skip(reason), now);
            }
            None => this.record_skip(st, key, Fire::scheduled(at), now, &reason),
        };
        if plan.skipped_unlisted > 0 {
            let first = plan.first_unlisted.expect("set with a count");
            tracing::warn!(job_id = %key, count = plan.skipped_unlisted, first = %first, "missed fires skipped, too many to list");
            let reason = format!(
                "{reason}: {} missed fires from {first} skipped (too many to list one by one)",
                plan.skipped_unlisted
            );
            skip(self, st, first, reason);
        }
        for t in &plan.skip {
            skip(self, st, *t, reason.to_owned());
        }
        // The first missed fire goes through the overlap policy; further
        // catch-up fires (RunAll) wait in the backlog and run one after another.
        for (i, t) in plan.run.iter().enumerate() {
            tracing::info!(job_id = %key, scheduled_at = %Rfc3339(*t), "running a missed fire");
            let fire = Fire::scheduled(*t);
            if i == 0 {
                self.dispatch(st, slot, fire, now);
            } else if let Some(job) = st.jobs.get_mut(slot) {
                // `last_fire` is past `t` already (the newest above).
                match &claimed {
                    Some(spec) => {
                        st.claim(spec, slot, fire, OnClaim::Backlog, now);
                    }
                    None => job.backlog.push_back(fire),
                }
            }
        }
        // Fires within the grace are late, not missed: the first is planned
        // (due now), and the driver fires it and each next one as any late
        // fire, through the overlap policy (a job that skips overlaps builds
        // no queue of them).
        if plan.on_time.is_empty() {
            self.plan_next(st, slot, now.max(last));
        } else {
            self.plan(st, slot, newest.unwrap_or(last), false);
        }
    }
}
