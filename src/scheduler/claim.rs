//! Claims: a fire of a claimed job waits for its claim in the store, sent
//! in one batch once the lock is released, and is decided by the instance
//! that wins it (see `SchedulerBuilder::claim_fires`).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use super::registry::{Fire, Slot, Spec};
use super::{JobScheduler, Phase, State};
use crate::recorder::error_chain;
use crate::store::FireClaim;

/// A fire of a claimed job that waits for its claim, and what this
/// instance does with it once the claim is won.
pub(super) struct PendingClaim {
    spec: Arc<Spec>,
    slot: Slot,
    fire: Fire,
    then: OnClaim,
}

pub(super) enum OnClaim {
    /// Through the overlap policy, as any fire ([`JobScheduler::dispatch`]).
    Dispatch,
    /// A further catch-up fire of `RunAll`: behind the job's runs.
    Backlog,
    /// Recorded `skipped` for this reason (a misfire).
    Skip(String),
}

impl State {
    /// Holds `fire` of the job in `slot` for a claim, sent once the lock is
    /// released.
    pub(super) fn claim(&mut self, spec: &Arc<Spec>, slot: Slot, fire: Fire, then: OnClaim) {
        self.claims.push(PendingClaim { spec: spec.clone(), slot, fire, then });
    }
}

impl JobScheduler {
    /// The claims decided under the lock; one background task (counted, so
    /// `stop` waits for it) will send them.
    pub(super) fn take_claims(st: &mut State) -> Vec<PendingClaim> {
        let claims = std::mem::take(&mut st.claims);
        if !claims.is_empty() {
            st.background += 1;
        }
        claims
    }

    /// Claims fires in the store, in one batch on a task of their own; then,
    /// under the lock, does with each fire won what was decided for it (see
    /// [`SchedulerBuilder::claim_fires`](super::SchedulerBuilder::claim_fires))
    /// and launches the runs that started. A fire another instance won is
    /// left to it, with no row. When the claim fails, each fire is recorded
    /// `skipped` with the error.
    pub(super) fn send_claims(&self, claims: Vec<PendingClaim>) {
        if claims.is_empty() {
            return;
        }
        let this = self.clone();
        self.inner.spawner.spawn(Box::pin(async move {
            let inner = &this.inner;
            let fires: Vec<FireClaim> = claims
                .iter()
                .map(|c| FireClaim { job_id: c.spec.id.clone(), scheduled_at: c.fire.nominal })
                .collect();
            let claim = inner.store.claim_fires(&inner.instance_id, &fires, inner.clock.now());
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
            for (i, c) in claims.into_iter().enumerate() {
                // The slot holds another job once this one was unregistered.
                if !st.jobs.get(c.slot).is_some_and(|j| Arc::ptr_eq(&j.spec, &c.spec)) {
                    continue;
                }
                let key = &c.spec.id;
                let at = c.fire.nominal;
                let fire = c.fire;
                match (&won, c.then) {
                    (Err(why), OnClaim::Skip(reason)) => {
                        this.record_skip(&mut st, key, fire, now, &format!("{reason} ({why})"))
                    }
                    (Err(why), _) => {
                        tracing::warn!(job_id = &**key, scheduled_at = %at, error = why, "claim failed; fire not run");
                        let reason = format!("claim failed, not run: {why}");
                        this.record_skip(&mut st, key, fire, now, &reason);
                    }
                    (Ok(won), _) if !won[i] => {
                        tracing::debug!(job_id = &**key, scheduled_at = %at, "fire claimed by another instance; not run here");
                    }
                    (Ok(_), OnClaim::Skip(reason)) => {
                        this.record_skip(&mut st, key, fire, now, &reason)
                    }
                    (Ok(_), _) if st.phase != Phase::Running => {
                        this.record_skip(&mut st, key, fire, now, "scheduler stopping");
                    }
                    (Ok(_), then) => {
                        let fire = Fire { claimed: true, ..c.fire };
                        let job = st.jobs.get_mut(c.slot).expect("checked above");
                        let idle = job.running.is_empty() && job.backlog.is_empty();
                        match then {
                            OnClaim::Backlog if !idle => job.backlog.push_back(fire),
                            _ => {
                                this.dispatch(&mut st, c.slot, fire, now);
                            }
                        }
                    }
                }
            }
            st.background -= 1;
            let mut launches = std::mem::take(&mut st.launches);
            drop(st);
            this.launch_batch(&mut launches, &mut Vec::new(), now);
            inner.idle.notify(usize::MAX);
        }));
    }
}
