//! Claim affinity: which live instance claims a fire at once (rendezvous
//! hashing of the job over the instances that heartbeat into the store),
//! and the standby claims of the others, sent a moment later in case the
//! preferred instance is gone.

use chrono::{DateTime, Utc};
use futures::future::{Either, select};

use super::JobScheduler;
use super::claim::PendingClaim;
use crate::clock::{after, before};
use crate::guard;
use crate::recorder::error_chain;

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
        let since = before(now, s.heartbeat_interval.saturating_mul(3).min(s.stale_after));
        match guard::store_call("instances", inner.store.instances(since)).await {
            Ok(live) => {
                let peers = Peers::new(&inner.instance_id, live.iter().map(|i| &*i.instance_id));
                let mut st = inner.lock();
                let was = st.peers.as_ref().map_or(1, |p| p.len());
                let is = peers.as_ref().map_or(1, Peers::len);
                if was != is {
                    tracing::info!(instances = is, "claim affinity: live instances changed");
                }
                st.peers = peers;
            }
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "could not read the live instances; claim affinity unchanged")
            }
        }
    }

    /// Sends the standby claims once each has waited the standby delay,
    /// those decided within a quarter of the delay of each other in one go,
    /// in batches of [`STANDBY_BATCH`]; ends when none are left. When the
    /// scheduler stops first they are dropped: an instance that stops must
    /// not win (and skip) a fire its preferred instance is about to claim.
    /// The caller counted this task in `background`.
    pub(super) async fn standby_loop(self) {
        let inner = &self.inner;
        let shutdown = inner.lock().shutdown.clone();
        let mut stop = std::pin::pin!(shutdown.cancelled());
        let delay = inner.settings.standby;
        loop {
            let oldest = {
                let mut st = inner.lock();
                match st.standby.front() {
                    Some(&(at, _)) => at,
                    None => {
                        st.standby_sending = false;
                        break;
                    }
                }
            };
            let sleep = inner.clock.sleep_until(after(oldest, delay));
            if let Either::Right(_) = select(sleep, stop.as_mut()).await {
                let mut st = inner.lock();
                st.standby.clear();
                st.standby_sending = false;
                break;
            }
            let cut = after(before(inner.clock.now(), delay), delay / 4);
            let batches: Vec<Vec<PendingClaim>> = {
                let mut st = inner.lock();
                let n = st.standby.iter().take_while(|(at, _)| *at <= cut).count().max(1);
                let mut batches = Vec::new();
                let mut due = st.standby.drain(..n).map(|(_, c)| c).peekable();
                while due.peek().is_some() {
                    batches.push(due.by_ref().take(STANDBY_BATCH).collect());
                }
                drop(due);
                st.background += batches.len();
                batches
            };
            for b in batches {
                self.claim_batch(b);
            }
        }
        inner.lock().background -= 1;
        inner.idle.notify(usize::MAX);
    }
}

/// The most standby claims in one `claim_fires` call: most find their fire
/// taken, which costs the store an index probe each, so they go in larger
/// batches than the claims sent at once.
const STANDBY_BATCH: usize = 1024;

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
