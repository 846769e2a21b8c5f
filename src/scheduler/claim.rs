//! Claims: a fire of a claimed job waits for its claim in the store, sent
//! in one batch once the lock is released, and is decided by the instance
//! that wins it, which then holds the fire's lease (see
//! `SchedulerBuilder::claim_fires`, `lease`, and `affinity` for when each
//! claim is sent).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::FutureExt;

use super::lease::Held;
use super::registry::{Fire, Slot, Spec, exec_id};
use super::{JobScheduler, Phase, State};
use crate::clock::after;
use crate::logfmt::Rfc3339;
use crate::recorder::error_chain;
use crate::store::{ClaimOutcome, FireClaim, FireKind};

/// A fire of a claimed job that waits for its claim, and what this
/// instance does with it once the claim is won.
pub(super) struct PendingClaim {
    spec: Arc<Spec>,
    slot: Slot,
    fire: Fire,
    then: OnClaim,
    /// Its instant is fixed: a trigger at an instant the caller chose, or a
    /// claim sent again after a failure (which may have been written). A
    /// trigger whose instant is not fixed moves to the next millisecond
    /// when another trigger of its job has it.
    fixed: bool,
    /// This instance won the job's last standby claim: its preferred
    /// instance let the fire go, so this one claims at once until it loses
    /// a claim of the job (see `affinity`).
    took_over: bool,
    /// Sent after the standby delay, not at once.
    standby: bool,
}

/// What [`JobScheduler::take_claims`] took under the lock, for
/// [`JobScheduler::send_claims`] once it is released.
pub(super) struct Outgoing {
    claims: Vec<PendingClaim>,
    /// The standby claims wait and no task sends them yet.
    standby: bool,
}

impl Outgoing {
    /// Nothing to send.
    pub(super) fn is_empty(&self) -> bool {
        self.claims.is_empty() && !self.standby
    }
}

pub(super) enum OnClaim {
    /// Through the overlap policy, as any fire ([`JobScheduler::dispatch`]).
    Dispatch,
    /// As `Dispatch`, at this instant: a fire claimed ahead (`ahead`) that
    /// is won earlier waits for it, leased.
    Hold(DateTime<Utc>),
    /// A further catch-up fire of `RunAll`: behind the job's runs.
    Backlog,
    /// Recorded `skipped` for this reason (a misfire).
    Skip(String),
}

/// How far a trigger moves when another trigger of its job claimed its
/// instant: the stores keep instants to the microsecond, the engine's
/// triggers to the millisecond.
pub(super) const MANUAL_STEP: std::time::Duration = std::time::Duration::from_millis(1);

/// How many failed claims wait for the store at most (a day of a job every
/// second); past that a fire is logged and left without a row.
const CLAIM_RETRY_CAP: usize = 100_000;

impl State {
    /// Holds `fire` of the job in `slot` for a claim, sent once the lock is
    /// released, or after the standby delay when another live instance is
    /// preferred for the job (`affinity`).
    /// The fire gets its execution id now (its counter is returned): the
    /// claim records it, so that an instance that takes the fire over
    /// continues the same run.
    pub(super) fn claim(
        &mut self,
        spec: &Arc<Spec>,
        slot: Slot,
        mut fire: Fire,
        then: OnClaim,
        now: DateTime<Utc>,
    ) -> u64 {
        if fire.seq == 0 {
            self.next_exec += 1;
            fire.seq = self.next_exec;
        }
        let took_over = self.jobs.get(slot).is_some_and(|j| j.took_over);
        let at_once = took_over
            || fire.kind != FireKind::Schedule
            || self.peers.as_ref().is_none_or(|p| p.prefers_me(&spec.id));
        let claim = PendingClaim {
            spec: spec.clone(),
            slot,
            fire,
            then,
            fixed: false,
            took_over,
            standby: !at_once,
        };
        if at_once {
            self.claims.push(claim);
        } else {
            self.standby.push_back((now, claim));
        }
        fire.seq
    }

    /// Holds a trigger for its claim, as [`claim`](Self::claim) does; its
    /// instant is `fixed` when the caller chose it.
    pub(super) fn claim_trigger(
        &mut self,
        spec: &Arc<Spec>,
        slot: Slot,
        fire: Fire,
        fixed: bool,
    ) -> u64 {
        let seq = self.claim(spec, slot, fire, OnClaim::Dispatch, fire.nominal);
        if let Some(c) = self.claims.last_mut() {
            c.fixed = fixed;
        }
        seq
    }
}

impl JobScheduler {
    /// The claims decided under the lock, and whether the standby claims
    /// need their task; the background tasks that will send them are
    /// counted here, so `stop` waits for them.
    pub(super) fn take_claims(st: &mut State) -> Outgoing {
        let claims = std::mem::take(&mut st.claims);
        if !claims.is_empty() {
            st.background += 1;
        }
        let standby = !st.standby.is_empty() && !st.standby_sending;
        if standby {
            st.standby_sending = true;
            st.background += 1;
        }
        Outgoing { claims, standby }
    }

    /// Sends what [`take_claims`](Self::take_claims) took.
    pub(super) fn send_claims(&self, out: Outgoing) {
        if out.standby {
            let this = self.clone();
            self.inner.spawner.spawn(Box::pin(async move { this.standby_loop().await }));
        }
        if !out.claims.is_empty() {
            self.claim_batch(out.claims);
        }
    }

    /// Claims fires in the store, in one batch on a task of their own; then,
    /// under the lock, does with each fire won what was decided for it (see
    /// [`SchedulerBuilder::claim_fires`](super::SchedulerBuilder::claim_fires))
    /// and launches the runs that started. A fire another instance won is
    /// left to it, with no row. When the claim fails, each fire waits in
    /// `claim_retry`: the lease loop claims it again, to be recorded
    /// `skipped` with the error by whichever instance wins it then. The
    /// caller counted the task in `background`.
    pub(super) fn claim_batch(&self, claims: Vec<PendingClaim>) {
        let this = self.clone();
        self.inner.spawner.spawn(Box::pin(async move {
            let inner = &this.inner;
            let fires: Vec<FireClaim> = claims
                .iter()
                .map(|c| FireClaim {
                    job_id: c.spec.id.clone(),
                    scheduled_at: c.fire.nominal,
                    execution_id: exec_id(inner.instance_bits, c.fire.seq),
                    max_running: c.spec.cluster_limit,
                    kind: c.fire.kind,
                })
                .collect();
            let lease = inner.settings.lease;
            let claimed_at = inner.clock.now();
            let batch = {
                let mut st = inner.lock();
                st.claim_batches += 1;
                let batch = st.claim_batches;
                st.claiming.push((batch, claimed_at));
                batch
            };
            let claim = inner.store.claim_fires(&inner.instance_id, &fires, claimed_at, lease);
            // A store that panics fails the claim; the batch is still settled.
            let won = match AssertUnwindSafe(claim).catch_unwind().await {
                Ok(Ok(won)) if won.len() == claims.len() => Ok(won),
                Ok(Ok(won)) => Err(format!(
                    "the store answered {} claims for {} fires",
                    won.len(),
                    claims.len()
                )),
                Ok(Err(e)) => Err(error_chain(&e)),
                Err(_) => Err("the store panicked".to_owned()),
            };
            let now = inner.clock.now();
            let mut st = inner.lock();
            st.claiming.retain(|c| c.0 != batch);
            st.claim_error = won.as_ref().err().cloned();
            for (i, c) in claims.into_iter().enumerate() {
                // The slot holds another job once this one was unregistered.
                if !st.jobs.get(c.slot).is_some_and(|j| Arc::ptr_eq(&j.spec, &c.spec)) {
                    continue;
                }
                let key = &c.spec.id;
                let at = c.fire.nominal;
                let fire = c.fire;
                let outcome = match &won {
                    Ok(won) => Ok(won[i]),
                    Err(why) => Err(why),
                };
                if let (Ok(o), Some(job)) = (outcome, st.jobs.get_mut(c.slot)) {
                    let taken = matches!(o, ClaimOutcome::Taken);
                    if c.standby && !taken && !job.took_over {
                        tracing::debug!(job_id = %&**key, scheduled_at = %Rfc3339(at), "standby claim won: the preferred instance let the fire go; claiming this job at once");
                        job.took_over = true;
                    } else if c.took_over && !c.standby && taken {
                        job.took_over = false;
                    }
                }
                match (outcome, c.then) {
                    // Another instance may have won it: this one claims it again
                    // later, to record the skip only if nobody did.
                    (Err(why), then) => {
                        tracing::warn!(job_id = %&**key, scheduled_at = %Rfc3339(at), error = why, "claim failed; fire not run here");
                        let then = match then {
                            // A trigger is still wanted once the store answers.
                            OnClaim::Dispatch if fire.kind == FireKind::Manual => then,
                            OnClaim::Skip(reason) => OnClaim::Skip(format!("{reason} ({why})")),
                            _ => OnClaim::Skip(format!("claim failed, not run: {why}")),
                        };
                        let retry = PendingClaim {
                            spec: c.spec.clone(),
                            slot: c.slot,
                            fire,
                            then,
                            fixed: true,
                            took_over: c.took_over,
                            standby: false,
                        };
                        if st.claim_retry.len() < CLAIM_RETRY_CAP {
                            st.claim_retry.push(retry);
                        } else {
                            tracing::error!(job_id = %&**key, scheduled_at = %Rfc3339(at), "too many failed claims waiting; this fire is left unrecorded");
                        }
                    }
                    // Another trigger of the job took this instant (two
                    // instances in one millisecond): this one moves to the
                    // next. Not after a failed claim, which may have been
                    // this one's, written: its lease runs it.
                    (Ok(ClaimOutcome::Taken), then)
                        if fire.kind == FireKind::Manual && !c.fixed =>
                    {
                        let nominal = after(at, MANUAL_STEP);
                        tracing::debug!(job_id = %&**key, scheduled_at = %Rfc3339(at), next = %Rfc3339(nominal), "trigger instant taken; claiming the next");
                        let fire = Fire { nominal, ..fire };
                        if let Some(job) = st.jobs.get_mut(c.slot) {
                            job.decided(nominal, true);
                        }
                        st.claims.push(PendingClaim {
                            spec: c.spec.clone(),
                            slot: c.slot,
                            fire,
                            then,
                            fixed: false,
                            took_over: c.took_over,
                            standby: false,
                        });
                    }
                    (Ok(ClaimOutcome::Taken), _) => {
                        tracing::debug!(job_id = %&**key, scheduled_at = %Rfc3339(at), "fire claimed by another instance; not run here");
                    }
                    (Ok(ClaimOutcome::Busy { fence, running }), then) => {
                        let fire = Fire { claimed: true, fence, ..fire };
                        let reason = match then {
                            OnClaim::Skip(reason) => reason,
                            _ => format!(
                                "{running} run(s) of the job hold live leases across the cluster (limit {})",
                                c.spec.cluster_limit.unwrap_or(0)
                            ),
                        };
                        this.record_skip(&mut st, key, fire, now, &reason);
                    }
                    (Ok(ClaimOutcome::Won { fence }), OnClaim::Skip(reason)) => {
                        let fire = Fire { claimed: true, fence, ..fire };
                        this.record_skip(&mut st, key, fire, now, &reason)
                    }
                    (Ok(ClaimOutcome::Won { fence }), _) if st.phase != Phase::Running => {
                        let fire = Fire { claimed: true, fence, ..fire };
                        this.record_skip(&mut st, key, fire, now, "scheduler stopping");
                    }
                    (Ok(ClaimOutcome::Won { fence }), then) => {
                        let fire = Fire { claimed: true, fence, ..fire };
                        let expires = after(claimed_at, lease);
                        let held = Held { fence, slot: c.slot, seq: fire.seq, expires };
                        st.leases.insert((key.clone(), at), held);
                        let job = st.jobs.get_mut(c.slot).expect("checked above");
                        let idle = job.running.is_empty() && job.backlog.is_empty();
                        match then {
                            OnClaim::Backlog if !idle => job.backlog.push_back(fire),
                            OnClaim::Hold(due) if due > now => {
                                this.hold(&mut st, due, c.spec.clone(), c.slot, fire);
                            }
                            _ => {
                                this.dispatch(&mut st, c.slot, fire, now);
                            }
                        }
                    }
                }
            }
            st.background -= 1;
            let mut launches = std::mem::take(&mut st.launches);
            let again = Self::take_claims(&mut st);
            drop(st);
            this.launch_batch(&mut launches, &mut Vec::new(), now);
            this.send_claims(again);
            inner.idle.notify(usize::MAX);
        }));
    }
}
