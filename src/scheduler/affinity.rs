//! Claim affinity: which live instance claims a fire at once (rendezvous
//! hashing of the job over the instances that heartbeat into the store),
//! and the standby claims of the others, sent a moment later in case the
//! preferred instance is gone.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::JobScheduler;
use super::claim::PendingClaim;
use crate::clock::after;
use crate::guard;
use crate::recorder::error_chain;
use crate::store::FireKind;

/// The instances alive in the store's heartbeats, as this instance last
/// read them, and its own place among them.
#[derive(Debug)]
pub(super) struct Peers {
    /// The hash of each live instance's id ([`id_hash`]), this one's included.
    ids: Vec<u64>,
    /// This instance's entry in `ids`.
    own: usize,
}

impl Peers {
    /// The peers from the ids of the live instances, or `None` when this
    /// instance is not among them (its heartbeat failed) or is alone: then
    /// it claims every fire at once, as without affinity.
    pub(super) fn new<'a>(own: &str, live: impl IntoIterator<Item = &'a str>) -> Option<Peers> {
        let mut ids: Vec<u64> = live.into_iter().map(id_hash).collect();
        ids.sort_unstable();
        ids.dedup();
        let own = ids.binary_search(&id_hash(own)).ok()?;
        (ids.len() > 1).then_some(Peers { ids, own })
    }

    /// Whether this instance is the one that claims `job` at once: the live
    /// instance with the highest score for it. An instance that joins or
    /// leaves moves only the jobs it wins or won.
    pub(super) fn prefers_me(&self, job: &str) -> bool {
        let job = id_hash(job);
        let best = self.ids.iter().enumerate().max_by_key(|&(_, &id)| (score(job, id), id));
        best.is_some_and(|(i, _)| i == self.own)
    }

    /// How many instances are live.
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }
}

/// A hash of an id that every process computes alike (FNV-1a, 64 bits):
/// the instances must agree on who prefers which job.
fn id_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The rendezvous score of a job on an instance (splitmix64's finalizer).
fn score(job: u64, instance: u64) -> u64 {
    let mut z = job ^ instance.rotate_left(32);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl JobScheduler {
    /// Reads the live instances from the store's heartbeats, for claim
    /// affinity: those heard from within three heartbeats (at most
    /// `stale_after`). A failed read keeps the view it had.
    pub(super) async fn refresh_peers(&self, now: DateTime<Utc>) {
        let inner = &self.inner;
        let s = &inner.settings;
        if !s.claim || s.standby.is_zero() {
            return;
        }
        let window = (s.heartbeat_interval * 3).min(s.stale_after);
        let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::TimeDelta::MAX);
        match guard::store_call("instances", inner.store.instances(since)).await {
            Ok(live) => {
                let peers = Peers::new(&inner.instance_id, live.iter().map(|i| &*i.instance_id));
                let mut st = inner.lock();
                let was = st.peers.as_ref().map_or(1, |p| p.len());
                let is = peers.as_ref().map_or(1, Peers::len);
                if was != is {
                    tracing::info!(instances = is, "claim affinity: live instances changed");
                }
                st.peers = peers.map(Arc::new);
            }
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "could not read the live instances; claim affinity unchanged")
            }
        }
    }

    /// Splits a batch of claims: those this instance sends at once (its
    /// preferred jobs, fires it took over last time, triggers, claims sent
    /// again) and those it leaves to another live instance for the
    /// standby delay. Without peers every claim goes at once.
    pub(super) fn split_claims(
        &self,
        claims: Vec<PendingClaim>,
    ) -> (Vec<PendingClaim>, Vec<PendingClaim>) {
        let Some(peers) = self.inner.lock().peers.clone() else {
            return (claims, Vec::new());
        };
        claims.into_iter().partition(|c| {
            c.fixed
                || c.took_over
                || c.fire.kind != FireKind::Schedule
                || peers.prefers_me(&c.spec.id)
        })
    }

    /// Sends `claims` once the standby delay has passed, unless the
    /// scheduler stops first: then they are dropped, since an instance
    /// that stops must not win (and skip) a fire its preferred instance
    /// is about to claim. The caller counted this task in `background`.
    pub(super) fn send_standby(&self, mut claims: Vec<PendingClaim>) {
        let this = self.clone();
        self.inner.spawner.spawn(Box::pin(async move {
            let inner = &this.inner;
            let shutdown = inner.lock().shutdown.clone();
            let wake = after(inner.clock.now(), inner.settings.standby);
            let sleep = inner.clock.sleep_until(wake);
            let stop = std::pin::pin!(shutdown.cancelled());
            if let futures::future::Either::Left(_) = futures::future::select(sleep, stop).await {
                for c in &mut claims {
                    c.standby = true;
                }
                this.claim_batch(claims);
            } else {
                let mut st = inner.lock();
                st.background -= 1;
                drop(st);
                inner.idle.notify(usize::MAX);
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each job is preferred by exactly one of the live instances, the
    /// jobs spread about evenly, and an instance that leaves moves only its
    /// own jobs.
    #[test]
    fn each_job_has_one_preferred_instance_and_a_leaver_moves_only_its_own() {
        let all = ["a", "b", "c"];
        let views: Vec<Peers> =
            all.iter().map(|me| Peers::new(me, all.iter().copied()).unwrap()).collect();
        let two: Vec<Peers> =
            ["a", "b"].iter().map(|me| Peers::new(me, ["a", "b"]).unwrap()).collect();
        let mut counts = [0usize; 3];
        for j in 0..3000 {
            let job = format!("job-{j}");
            let owners: Vec<usize> = (0..3).filter(|&i| views[i].prefers_me(&job)).collect();
            assert_eq!(owners.len(), 1, "{job}: {owners:?}");
            counts[owners[0]] += 1;
            if owners[0] < 2 {
                assert!(two[owners[0]].prefers_me(&job), "{job} moved off a live instance");
            }
        }
        assert!(counts.iter().all(|&n| (850..1150).contains(&n)), "{counts:?}");
    }

    /// An instance missing from the live list, or alone in it, claims
    /// everything at once.
    #[test]
    fn no_peers_when_absent_or_alone() {
        assert!(Peers::new("a", ["b", "c"]).is_none());
        assert!(Peers::new("a", ["a"]).is_none());
        assert!(Peers::new("a", ["a", "a", "b"]).is_some_and(|p| p.len() == 2));
    }
}
