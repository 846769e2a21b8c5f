//! Leases on claimed fires: the loop that renews this instance's leases
//! while their runs go on (a run whose lease another instance took over is
//! stopped), and takes over the fires whose owner stopped renewing theirs.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::{Either, select};

use super::registry::{Fire, Slot};
use super::{JobScheduler, Phase};
use crate::cancel::CancelReason;
use crate::clock::{after, before, checked_after};
use crate::guard;
use crate::logfmt::Rfc3339;
use crate::policy::MisfireMode;
use crate::recorder::error_chain;
use crate::store::{ExpiredLease, FireKind, FireLease};

/// A lease this instance holds, by the fire's job and nominal time.
#[derive(Debug, Clone, Copy)]
pub(super) struct Held {
    pub(super) fence: u64,
    pub(super) slot: Slot,
    /// The run's execution id counter.
    pub(super) seq: u64,
    /// When the lease runs out unless renewed, by this instance's clock.
    pub(super) expires: DateTime<Utc>,
}

/// How many expired leases one round looks at.
const RETAKE_BATCH: usize = 64;

impl JobScheduler {
    /// Every third of the lease: renews the leases held, then takes over
    /// expired ones. Runs while the scheduler runs, with claims on.
    pub(super) async fn lease_loop(self) {
        let inner = &self.inner;
        let shutdown = inner.lock().shutdown.clone();
        let mut stop = std::pin::pin!(shutdown.cancelled());
        let period = (inner.settings.lease / 3).max(Duration::from_millis(1));
        loop {
            let sleep = match checked_after(inner.clock.now(), period) {
                Some(wake) => inner.clock.sleep_until(wake),
                None => crate::guard::GuardedSleep::never(),
            };
            if let Either::Right(_) = select(sleep, stop.as_mut()).await {
                break;
            }
            self.renew(period).await;
            self.retake().await;
            self.reclaim();
        }
        self.inner.lock().background -= 1;
        self.inner.idle.notify(usize::MAX);
    }

    /// Claims again the fires whose claim failed.
    fn reclaim(&self) {
        let mut st = self.inner.lock();
        if st.claim_retry.is_empty() || st.phase != Phase::Running {
            return;
        }
        let retry = std::mem::take(&mut st.claim_retry);
        st.claims.extend(retry);
        self.release(st);
    }

    /// Renews every lease held; stops the runs whose lease was lost, or
    /// will run out before the next renewal, `period` from now.
    async fn renew(&self, period: Duration) {
        let inner = &self.inner;
        let held: Vec<(FireLease, Held)> = inner
            .lock()
            .leases
            .iter()
            .map(|((job, at), h)| {
                (FireLease { job_id: job.clone(), scheduled_at: *at, fence: h.fence }, *h)
            })
            .collect();
        if held.is_empty() {
            return;
        }
        let leases: Vec<FireLease> = held.iter().map(|(l, _)| l.clone()).collect();
        let now = inner.clock.now();
        let renew =
            inner.store.renew_leases(&inner.instance_id, &leases, now, inner.settings.lease);
        let mut renewed = true;
        let kept = match guard::store_call("renew_leases", renew).await {
            Ok(kept) if kept.len() == leases.len() => kept,
            Ok(kept) => {
                tracing::warn!(
                    answers = kept.len(),
                    leases = leases.len(),
                    "the store answered a lease renewal for another number of leases"
                );
                return;
            }
            Err(e) => {
                // Past its expiry another instance may take a fire over and
                // this one's writes are refused: its run stops here first,
                // at the last renewal that comes before the expiry.
                tracing::warn!(error = %error_chain(&e), leases = leases.len(), "lease renewal failed");
                renewed = false;
                let next_round = after(now, period);
                held.iter().map(|(l, h)| h.expires > next_round || l.fence == 0).collect()
            }
        };
        let renewed_until = after(now, inner.settings.lease);
        let mut st = inner.lock();
        for ((lease, h), kept) in held.into_iter().zip(kept) {
            let key = (lease.job_id.clone(), lease.scheduled_at);
            if kept {
                // Kept through a failed renewal: its expiry stands.
                if renewed && let Some(h) = st.leases.get_mut(&key).filter(|x| x.fence == h.fence) {
                    h.expires = h.expires.max(renewed_until);
                }
                continue;
            }
            if st.leases.get(&key).is_none_or(|h| h.fence != lease.fence) {
                continue;
            }
            st.leases.remove(&key);
            let Some(job) = st.jobs.get_mut(h.slot).filter(|j| j.spec.id == lease.job_id) else {
                continue;
            };
            tracing::warn!(job_id = %lease.job_id, scheduled_at = %Rfc3339(lease.scheduled_at), fence = lease.fence, "lost the fire's lease (taken over, or expired while the store was unreachable); stopping its run here");
            // Its run (or its place in the queue) is another instance's now.
            job.backlog.retain(|f| f.seq != h.seq);
            if let Some(run) = job.running.iter().find(|r| r.seq == h.seq) {
                run.cancel.cancel_for(CancelReason::LeaseLost);
                run.cancel.kill();
            }
        }
    }

    /// Takes over the fires of this instance's jobs whose lease expired: a
    /// trigger, or a scheduled fire still within its misfire policy, runs
    /// again, with the next attempt; one past it ends with its `abandoned` row (or, without
    /// rows, a `skipped` one).
    async fn retake(&self) {
        let inner = &self.inner;
        let now = inner.clock.now();
        let expired = inner.store.expired_leases(now, RETAKE_BATCH);
        let expired = match guard::store_call("expired_leases", expired).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "could not read expired leases");
                return;
            }
        };
        for e in expired {
            let (new_id, rerun) = {
                let mut st = inner.lock();
                if st.phase != Phase::Running {
                    return;
                }
                let Some(job) = st.jobs.by_id(&e.job_id) else { continue };
                // A trigger was asked for by someone: it runs again, as
                // triggers do, paused or not.
                let manual = e.kind != FireKind::Schedule;
                if !job.claimed || (job.paused && !manual) {
                    continue;
                }
                let rerun = match job.misfire.mode {
                    _ if manual => true,
                    MisfireMode::Skip => false,
                    // Only while it is still the job's latest fire.
                    MisfireMode::RunOnce => job.last_fire.is_none_or(|l| l <= e.scheduled_at),
                    MisfireMode::RunAll { window, .. } => e.scheduled_at >= before(now, window),
                };
                (st.new_exec_id(inner.instance_bits), rerun)
            };
            let lease = inner.settings.lease;
            let take = inner.store.retake_fire(&inner.instance_id, &e, new_id, now, lease, rerun);
            let taken = match guard::store_call("retake_fire", take).await {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(job_id = %e.job_id, scheduled_at = %Rfc3339(e.scheduled_at), error = %error_chain(&err), "could not take over an expired lease");
                    continue;
                }
            };
            self.taken_over(&e, new_id.0 as u64, taken, rerun, now);
        }
    }

    /// Does with a fire this instance took over what [`retake`](Self::retake)
    /// decided.
    fn taken_over(
        &self,
        e: &ExpiredLease,
        seq: u64,
        taken: crate::store::RetakenFire,
        rerun: bool,
        now: DateTime<Utc>,
    ) {
        let mut st = self.inner.lock();
        let Some(slot) = st.jobs.slot(&e.job_id) else { return };
        let key: Arc<str> = st.jobs.get(slot).expect("indexed").spec.id.clone();
        let fire = Fire {
            claimed: true,
            first_attempt: taken.next_attempt,
            seq,
            fence: taken.fence,
            ..Fire::new(e.scheduled_at, e.kind)
        };
        tracing::warn!(job_id = %e.job_id, scheduled_at = %Rfc3339(e.scheduled_at), owner = %e.owner, fence = taken.fence, rerun, "took over a fire whose owner stopped renewing its lease");
        if rerun && st.phase == Phase::Running {
            let expires = after(now, self.inner.settings.lease);
            let held = Held { fence: taken.fence, slot, seq, expires };
            st.leases.insert((key, e.scheduled_at), held);
            self.dispatch(&mut st, slot, fire, now);
        } else if !taken.had_rows {
            let reason = format!(
                "instance {} claimed the fire and stopped renewing its lease before the run started; past the misfire policy, not run",
                e.owner
            );
            self.record_skip(&mut st, &key, fire, now, &reason);
        }
        self.release(st);
    }
}
