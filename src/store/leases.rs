//! The fire leases of the in-memory store: claims with an owner, an expiry
//! and a fencing token, the reference for what a shared store must do (see
//! [`ExecutionStore::claim_fires`](super::ExecutionStore::claim_fires)).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
    ClaimOutcome, ExecutionEvent, ExecutionId, ExpiredLease, FireClaim, FireKind, FireLease,
};
use crate::clock::after;

/// One claimed fire.
#[derive(Debug, Clone)]
struct Claim {
    owner: String,
    execution_id: ExecutionId,
    fence: u64,
    expires_at: DateTime<Utc>,
    /// Its final event was written (or it was let go): no lease any more.
    ended: bool,
    kind: FireKind,
}

/// Every claim, by job and nominal time.
#[derive(Debug, Default)]
pub(super) struct Leases {
    claims: HashMap<Arc<str>, BTreeMap<DateTime<Utc>, Claim>>,
}

impl Leases {
    /// Claims `fires` (see the trait's contract), in order.
    pub(super) fn claim(
        &mut self,
        instance: &str,
        fires: &[FireClaim],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Vec<ClaimOutcome> {
        let expires_at = after(now, lease);
        fires
            .iter()
            .map(|f| {
                let job = self.claims.entry(f.job_id.clone()).or_default();
                if job.contains_key(&f.scheduled_at) {
                    return ClaimOutcome::Taken;
                }
                let running = f
                    .max_running
                    .map(|_| job.values().filter(|c| !c.ended && c.expires_at > now).count());
                let running = running.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
                let busy = f.max_running.is_some_and(|max| running >= max);
                job.insert(
                    f.scheduled_at,
                    Claim {
                        owner: instance.to_owned(),
                        execution_id: f.execution_id,
                        fence: 1,
                        expires_at,
                        ended: busy,
                        kind: f.kind,
                    },
                );
                if busy {
                    ClaimOutcome::Busy { fence: 1, running }
                } else {
                    ClaimOutcome::Won { fence: 1 }
                }
            })
            .collect()
    }

    /// Renews `leases` held by `instance`; whether each was still held.
    pub(super) fn renew(
        &mut self,
        instance: &str,
        leases: &[FireLease],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Vec<bool> {
        leases
            .iter()
            .map(|l| match self.get_mut(&l.job_id, l.scheduled_at) {
                Some(c) if c.fence == l.fence && c.owner == instance && !c.ended => {
                    c.expires_at = c.expires_at.max(after(now, lease));
                    true
                }
                _ => false,
            })
            .collect()
    }

    /// Up to `limit` expired leases of fires not ended, oldest first.
    pub(super) fn expired(&self, now: DateTime<Utc>, limit: usize) -> Vec<ExpiredLease> {
        let mut out: Vec<ExpiredLease> = self
            .claims
            .iter()
            .flat_map(|(job, fires)| {
                fires.iter().filter(|(_, c)| !c.ended && c.expires_at <= now).map(|(at, c)| {
                    ExpiredLease {
                        job_id: job.to_string(),
                        scheduled_at: *at,
                        execution_id: c.execution_id,
                        fence: c.fence,
                        owner: c.owner.clone(),
                        expired_at: c.expires_at,
                        kind: c.kind,
                    }
                })
            })
            .collect();
        out.sort_by(|a, b| (a.expired_at, &a.job_id).cmp(&(b.expired_at, &b.job_id)));
        out.truncate(limit);
        out
    }

    /// Takes `e` over if it is still expired with its fence: the new fence,
    /// or `None`. The caller moves the fire's rows.
    pub(super) fn retake(
        &mut self,
        instance: &str,
        e: &ExpiredLease,
        new_id: ExecutionId,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Option<u64> {
        let c = self.get_mut(&e.job_id, e.scheduled_at)?;
        if c.ended || c.fence != e.fence || c.expires_at > now {
            return None;
        }
        c.fence += 1;
        c.owner = instance.to_owned();
        c.execution_id = new_id;
        c.expires_at = after(now, lease);
        Some(c.fence)
    }

    /// Ends the lease of a fire (no more events are expected for it).
    pub(super) fn end(&mut self, job_id: &str, at: DateTime<Utc>) {
        if let Some(c) = self.get_mut(job_id, at) {
            c.ended = true;
        }
    }

    /// Whether `ev` may be written: it carries no fence, or its fire's
    /// current one. An event that ends its fire ends the lease.
    #[inline]
    pub(super) fn admit(&mut self, ev: &ExecutionEvent) -> bool {
        // Most events carry no fence: decided here, without a call.
        let fence = match ev {
            ExecutionEvent::Started(s) => s.fence,
            ExecutionEvent::Finished(e) => e.fence,
            ExecutionEvent::Skipped(s) => s.fence,
        };
        fence.is_none() || self.admit_fenced(ev)
    }

    /// [`admit`](Self::admit) of an event with a fence.
    fn admit_fenced(&mut self, ev: &ExecutionEvent) -> bool {
        let (job, at, fence, ends) = match ev {
            ExecutionEvent::Started(s) => (&s.job_id, s.scheduled_at, s.fence, false),
            ExecutionEvent::Finished(e) => (&e.job_id, e.scheduled_at, e.fence, e.ends_run),
            ExecutionEvent::Skipped(s) => (&s.job_id, s.scheduled_at, s.fence, true),
        };
        let Some(fence) = fence else { return true };
        match self.get_mut(job, at) {
            Some(c) if c.fence == fence => {
                c.ended |= ends;
                true
            }
            _ => false,
        }
    }

    /// Forgets the claims of fires due before `before`.
    pub(super) fn prune(&mut self, before: DateTime<Utc>) {
        for fires in self.claims.values_mut() {
            *fires = fires.split_off(&before);
        }
        self.claims.retain(|_, fires| !fires.is_empty());
    }

    fn get_mut(&mut self, job: &str, at: DateTime<Utc>) -> Option<&mut Claim> {
        self.claims.get_mut(job)?.get_mut(&at)
    }
}
