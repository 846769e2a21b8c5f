//! The background tasks: the driver, which pops due fires off the timeline
//! in chunks and sleeps until the next, and the heartbeat loop.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::{Either, select};

use super::claim::OnClaim;
use super::registry::Fire;
use super::timeline::Entry;
use super::{JobScheduler, Phase, State};
use crate::clock::{after, checked_after, std_dur};
use crate::guard::{self, GuardedSleep};
use crate::logfmt::Rfc3339;
use crate::recorder::error_chain;

impl JobScheduler {
    /// The driver: pops due fires, dispatches them, sleeps until the next.
    pub(super) async fn drive(self) {
        let inner = &self.inner;
        let shutdown = inner.lock().shutdown.clone();
        let mut launches = Vec::new();
        let mut ended = Vec::new();
        // Since when, and for how many chunks, the driver has dispatched
        // without yielding.
        let mut busy: Option<(DateTime<Utc>, u32)> = None;
        loop {
            inner.wake.arm();
            let now = inner.clock.now();
            let (next_wake, more_due, claims) = {
                let mut st = inner.lock();
                // A stopping scheduler still starts the fires it won ahead.
                if st.phase != Phase::Running && st.held.next_due().is_none() {
                    break;
                }
                // While popping, fires planned at or after `now` need no wake-up.
                st.driver_wake = Some(now);
                let mut budget = DISPATCH_CHUNK;
                while budget > 0 {
                    let Some((due, entry)) = st.timeline.pop_due(now) else { break };
                    self.fire_entry(&mut st, due, entry, now);
                    budget -= 1;
                }
                while budget > 0 {
                    let Some(h) = st.held.pop_due(now) else { break };
                    self.release_held(&mut st, h, now);
                    budget -= 1;
                    if st.held.next_due().is_none() {
                        // `stop` may wait for the last held fire.
                        inner.idle.notify(usize::MAX);
                    }
                }
                let next = match (st.timeline.next_due(), st.held.next_due()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                st.driver_wake = next;
                std::mem::swap(&mut launches, &mut st.launches);
                let claims = Self::take_claims(&mut st);
                (next, next.is_some_and(|t| t <= now), claims)
            };
            // The chunk's claims go out and its runs start here, outside
            // the lock.
            self.send_claims(claims);
            self.launch_batch(&mut launches, &mut ended, now);
            if more_due {
                // A burst: yield now and then, so other tasks (and the runs
                // handed to the spawner) get their turn. A yield costs a
                // trip through the runtime's queue, which may wake another
                // worker: not after every chunk.
                let (since, chunks) = busy.get_or_insert((now, 0));
                *chunks += 1;
                if *chunks >= YIELD_CHUNKS
                    || std_dur(*since, inner.clock.now_or(now)) >= YIELD_AFTER
                {
                    busy = None;
                    yield_now().await;
                }
                continue;
            }
            busy = None;
            match next_wake {
                Some(t) => {
                    let sleep = inner.clock.sleep_until(t);
                    select(inner.wake.wait(), sleep).await;
                }
                None => {
                    select(inner.wake.wait(), Box::pin(shutdown.cancelled())).await;
                }
            }
        }
        self.background_done();
    }

    fn fire_entry(&self, st: &mut State, due: DateTime<Utc>, entry: Entry, now: DateTime<Utc>) {
        let slot = entry.slot;
        let Some(job) = st.jobs.get_mut(slot) else { return };
        if job.generation != entry.seq {
            return;
        }
        let Some(nominal) = job.next_nominal else { return };
        if job.claimed_ahead {
            // The instant of a fire claimed ahead: its claim decides it
            // (`ahead`); the job's next fire is planned now.
            job.decided(nominal, false);
            return self.plan(st, slot, nominal, true);
        }
        // A fire claimed ahead leaves the timeline early; its lateness
        // counts from its instant.
        let ahead = self.ahead_of(job);
        let due = if ahead.is_zero() { due } else { after(due, ahead) };
        let lateness = std_dur(due, now);
        if lateness > job.misfire.grace {
            tracing::warn!(job_id = %job.spec.id, scheduled_at = %Rfc3339(nominal), lateness_ms = lateness.as_millis(), "fire missed its grace; applying the misfire policy");
            let before = job.schedule.as_ref().map_or(nominal, |s| s.before_fire(nominal));
            self.catch_up(st, slot, before, now, "misfire: missed while down or stalled");
        } else if ahead.is_zero() {
            self.dispatch(st, slot, Fire::scheduled(nominal), now);
            self.plan(st, slot, nominal, true);
        } else {
            // Claimed now; the fire won waits for its instant, when the job
            // is back on the timeline (`next_nominal` stays this fire's).
            job.claimed_ahead = true;
            let spec = job.spec.clone();
            st.timeline.push(due, entry.seq, slot);
            st.claim(&spec, slot, Fire::scheduled(nominal), OnClaim::Hold(due), now);
        }
    }

    pub(super) async fn heartbeat_loop(self) {
        let inner = &self.inner;
        let shutdown = inner.lock().shutdown.clone();
        // One wait for the shutdown across the rounds: it listens once, not
        // once per heartbeat.
        let mut stop = std::pin::pin!(shutdown.cancelled());
        loop {
            // At the end of the calendar no beat comes due: wait for the stop.
            let sleep = match checked_after(inner.clock.now(), inner.settings.heartbeat_interval) {
                Some(wake) => inner.clock.sleep_until(wake),
                None => GuardedSleep::never(),
            };
            if let Either::Right(_) = select(sleep, stop.as_mut()).await {
                break;
            }
            let now = inner.clock.now();
            let beat = inner.store.heartbeat(&inner.instance_id, now);
            if let Err(e) = guard::store_call("heartbeat", beat).await {
                tracing::warn!(error = %error_chain(&e), "heartbeat failed");
                continue;
            }
            self.refresh_peers(now).await;
            let sweep =
                inner.store.mark_abandoned(&inner.instance_id, now, inner.settings.stale_after);
            match guard::store_call("mark_abandoned", sweep).await {
                Ok(rows) => inner.abandoned(&rows, false),
                Err(e) => tracing::warn!(error = %error_chain(&e), "abandoned-run sweep failed"),
            }
        }
        self.background_done();
    }

    fn background_done(&self) {
        self.inner.lock().background -= 1;
        self.inner.idle.notify(usize::MAX);
    }
}

/// How many due fires the driver dispatches under one hold of the lock.
pub(super) const DISPATCH_CHUNK: usize = 256;

/// How long the driver dispatches a burst before it yields to the runtime.
const YIELD_AFTER: Duration = Duration::from_micros(500);

/// How many chunks the driver dispatches at most before it yields, however
/// little time they took (a virtual clock stands still meanwhile).
const YIELD_CHUNKS: u32 = 8;

/// Returns `Pending` once after waking itself: the task goes back to its
/// executor's queue, behind the tasks already there.
async fn yield_now() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}
