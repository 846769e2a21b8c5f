//! An [`ExecutionStore`] wrapper that times the calls the claim path makes
//! (claims, writes, lease renewals), for the claims benchmark's profile:
//! round trips, batch sizes, how many claims wait at once, and how late
//! after their fires' nominal time claims leave and come back.
//!
//! With [`TimedStore::coalescing`] it also tries out a store-side change
//! without touching the engine: the claims of one instance are sent one
//! statement at a time, those that arrive meanwhile merged into the next.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::{
    AttemptEnd, AttemptStart, ClaimOutcome, ExecutionEvent, ExecutionId, ExecutionRecord,
    ExecutionStore, ExpiredLease, FireClaim, FireLease, HistoryQuery, InstanceHeartbeat,
    PrunePolicy, RetakenFire, StoreResult,
};
use serde::{Deserialize, Serialize};

use crate::measure::{HistogramSnapshot, LatencyHistogram};

/// What a [`TimedStore`] counts while [`CallStats::measuring`] is set.
#[derive(Debug, Default)]
pub struct CallStats {
    /// Count only while this is set (the measured window).
    pub measuring: AtomicBool,
    claim_calls: AtomicU64,
    claim_fires: AtomicU64,
    claim_won: AtomicU64,
    claim_errors: AtomicU64,
    claim_max_batch: AtomicU64,
    claims_in_flight: AtomicU64,
    claims_max_in_flight: AtomicU64,
    claim_rtt: LatencyHistogram,
    /// The wall clock at a claim's call minus its batch's earliest nominal time.
    claim_sent_late: LatencyHistogram,
    /// The wall clock at a claim's answer minus its batch's earliest nominal time.
    claim_answered_late: LatencyHistogram,
    write_calls: AtomicU64,
    write_events: AtomicU64,
    write_errors: AtomicU64,
    write_rtt: LatencyHistogram,
    renew_calls: AtomicU64,
    renew_leases: AtomicU64,
    renew_rtt: LatencyHistogram,
    retakes: AtomicU64,
}

/// [`CallStats`] as numbers, to send from a child process.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CallSnapshot {
    /// `claim_fires` calls (one per dispatch chunk of due fires).
    pub claim_calls: u64,
    /// Fires in those calls.
    pub claim_fires: u64,
    /// Fires won (`Won` answers).
    pub claim_won: u64,
    /// Calls that failed.
    pub claim_errors: u64,
    /// The largest batch.
    pub claim_max_batch: u64,
    /// The most claims waiting for the store at once.
    pub claims_max_in_flight: u64,
    /// Round trip of a claim call (waiting for a pooled connection included).
    pub claim_rtt: HistogramSnapshot,
    /// How late after the batch's earliest nominal time a claim was sent.
    pub claim_sent_late: HistogramSnapshot,
    /// How late after the batch's earliest nominal time its answer came.
    pub claim_answered_late: HistogramSnapshot,
    /// `write` calls (batches of records).
    pub write_calls: u64,
    /// Events in them.
    pub write_events: u64,
    /// Writes that failed.
    pub write_errors: u64,
    /// Round trip of a write.
    pub write_rtt: HistogramSnapshot,
    /// `renew_leases` calls.
    pub renew_calls: u64,
    /// Leases in them.
    pub renew_leases: u64,
    /// Round trip of a renewal.
    pub renew_rtt: HistogramSnapshot,
    /// Fires taken over from another instance (`retake_fire` answered `Some`).
    pub retakes: u64,
}

impl CallStats {
    /// The counts now.
    pub fn snapshot(&self) -> CallSnapshot {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CallSnapshot {
            claim_calls: n(&self.claim_calls),
            claim_fires: n(&self.claim_fires),
            claim_won: n(&self.claim_won),
            claim_errors: n(&self.claim_errors),
            claim_max_batch: n(&self.claim_max_batch),
            claims_max_in_flight: n(&self.claims_max_in_flight),
            claim_rtt: self.claim_rtt.snapshot(),
            claim_sent_late: self.claim_sent_late.snapshot(),
            claim_answered_late: self.claim_answered_late.snapshot(),
            write_calls: n(&self.write_calls),
            write_events: n(&self.write_events),
            write_errors: n(&self.write_errors),
            write_rtt: self.write_rtt.snapshot(),
            renew_calls: n(&self.renew_calls),
            renew_leases: n(&self.renew_leases),
            renew_rtt: self.renew_rtt.snapshot(),
            retakes: n(&self.retakes),
        }
    }

    fn on(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }
}

/// How long after `at` the wall clock reads now (zero before it).
fn since(at: DateTime<Utc>) -> Duration {
    (Utc::now() - at).to_std().unwrap_or(Duration::ZERO)
}

/// Passes every call to the store inside, timing the claim path's.
#[derive(Debug)]
pub struct TimedStore {
    inner: Arc<dyn ExecutionStore>,
    stats: Arc<CallStats>,
    /// Claims waiting for the statement in flight, when coalescing.
    pending: Option<Mutex<Pending>>,
}

/// A claim call waiting to be merged into the next statement.
type Waiter = (Vec<FireClaim>, tokio::sync::oneshot::Sender<StoreResult<Vec<ClaimOutcome>>>);

#[derive(Debug, Default)]
struct Pending {
    /// Whether a call is sending statements now.
    sending: bool,
    waiting: Vec<Waiter>,
}

impl TimedStore {
    /// Wraps `inner`, counting into `stats`.
    pub fn new(inner: Arc<dyn ExecutionStore>, stats: Arc<CallStats>) -> Self {
        TimedStore { inner, stats, pending: None }
    }

    /// Sends one claim statement at a time: calls that come while one is in
    /// flight wait, and go together in the next (the instance id, claim time
    /// and lease of the first of them stand for all).
    pub fn coalescing(mut self) -> Self {
        self.pending = Some(Mutex::new(Pending::default()));
        self
    }

    async fn claim_inner(
        &self,
        instance_id: &str,
        fires: &[FireClaim],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimOutcome>> {
        let Some(pending) = &self.pending else {
            return self.inner.claim_fires(instance_id, fires, now, lease).await;
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let send = {
            let mut p = pending.lock().expect("not poisoned");
            p.waiting.push((fires.to_vec(), tx));
            !std::mem::replace(&mut p.sending, true)
        };
        if send {
            // This call sends every statement until nobody waits.
            loop {
                let batch = {
                    let mut p = pending.lock().expect("not poisoned");
                    if p.waiting.is_empty() {
                        p.sending = false;
                        break;
                    }
                    std::mem::take(&mut p.waiting)
                };
                let all: Vec<FireClaim> =
                    batch.iter().flat_map(|(f, _)| f.iter().cloned()).collect();
                let r = self.inner.claim_fires(instance_id, &all, now, lease).await;
                let mut at = 0;
                for (f, tx) in batch {
                    let part = match &r {
                        Ok(won) => Ok(won[at..at + f.len()].to_vec()),
                        Err(e) => Err(mscribe_scheduler::StoreError::Unavailable {
                            message: e.to_string(),
                            source: None,
                        }),
                    };
                    at += f.len();
                    let _ = tx.send(part);
                }
            }
        }
        rx.await.unwrap_or_else(|_| {
            Err(mscribe_scheduler::StoreError::Unavailable {
                message: "the coalesced claim was dropped".to_owned(),
                source: None,
            })
        })
    }
}

#[async_trait]
impl ExecutionStore for TimedStore {
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()> {
        let t = Instant::now();
        let r = self.inner.write(events).await;
        let s = &self.stats;
        if s.on() {
            s.write_rtt.record(t.elapsed());
            s.write_calls.fetch_add(1, Ordering::Relaxed);
            s.write_events.fetch_add(events.len() as u64, Ordering::Relaxed);
            if r.is_err() {
                s.write_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        r
    }

    async fn history(&self, query: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        self.inner.history(query).await
    }

    async fn last_fire(&self, job_id: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.inner.last_fire(job_id).await
    }

    async fn last_fires(&self, job_ids: &[String]) -> StoreResult<HashMap<String, DateTime<Utc>>> {
        self.inner.last_fires(job_ids).await
    }

    async fn last_scheduled_fires(
        &self,
        job_ids: &[String],
    ) -> StoreResult<HashMap<String, DateTime<Utc>>> {
        self.inner.last_scheduled_fires(job_ids).await
    }

    async fn heartbeat(&self, instance_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.inner.heartbeat(instance_id, now).await
    }

    async fn instances(&self, since: DateTime<Utc>) -> StoreResult<Vec<InstanceHeartbeat>> {
        self.inner.instances(since).await
    }

    async fn mark_abandoned(
        &self,
        own_instance: &str,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        self.inner.mark_abandoned(own_instance, now, stale_after).await
    }

    async fn abandon_own(&self, id: &str, now: DateTime<Utc>) -> StoreResult<Vec<ExecutionRecord>> {
        self.inner.abandon_own(id, now).await
    }

    async fn prune(&self, policy: PrunePolicy) -> StoreResult<u64> {
        self.inner.prune(policy).await
    }

    fn supports_claims(&self) -> bool {
        self.inner.supports_claims()
    }

    async fn claim_fires(
        &self,
        instance_id: &str,
        fires: &[FireClaim],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimOutcome>> {
        let s = &self.stats;
        let earliest = fires.iter().map(|f| f.scheduled_at).min();
        let in_flight = s.claims_in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let on = s.on();
        if on {
            s.claims_max_in_flight.fetch_max(in_flight, Ordering::Relaxed);
            if let Some(at) = earliest {
                s.claim_sent_late.record(since(at));
            }
        }
        let t = Instant::now();
        let r = self.claim_inner(instance_id, fires, now, lease).await;
        let rtt = t.elapsed();
        s.claims_in_flight.fetch_sub(1, Ordering::Relaxed);
        if on {
            s.claim_rtt.record(rtt);
            if let Some(at) = earliest {
                s.claim_answered_late.record(since(at));
            }
            s.claim_calls.fetch_add(1, Ordering::Relaxed);
            s.claim_fires.fetch_add(fires.len() as u64, Ordering::Relaxed);
            s.claim_max_batch.fetch_max(fires.len() as u64, Ordering::Relaxed);
            match &r {
                Ok(won) => {
                    let n = won.iter().filter(|o| matches!(o, ClaimOutcome::Won { .. })).count();
                    s.claim_won.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(_) => {
                    s.claim_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        r
    }

    async fn renew_leases(
        &self,
        instance_id: &str,
        leases: &[FireLease],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Vec<bool>> {
        let t = Instant::now();
        let r = self.inner.renew_leases(instance_id, leases, now, lease).await;
        let s = &self.stats;
        if s.on() {
            s.renew_rtt.record(t.elapsed());
            s.renew_calls.fetch_add(1, Ordering::Relaxed);
            s.renew_leases.fetch_add(leases.len() as u64, Ordering::Relaxed);
        }
        r
    }

    async fn expired_leases(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<ExpiredLease>> {
        self.inner.expired_leases(now, limit).await
    }

    async fn retake_fire(
        &self,
        instance_id: &str,
        expired: &ExpiredLease,
        new_execution_id: ExecutionId,
        now: DateTime<Utc>,
        lease: Duration,
        rerun: bool,
    ) -> StoreResult<Option<RetakenFire>> {
        let r =
            self.inner.retake_fire(instance_id, expired, new_execution_id, now, lease, rerun).await;
        if matches!(r, Ok(Some(_))) {
            self.stats.retakes.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    async fn recorded_fires(
        &self,
        job_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        self.inner.recorded_fires(job_id, from, to).await
    }

    async fn record_start(&self, start: AttemptStart) -> StoreResult<()> {
        self.write(&[ExecutionEvent::Started(start)]).await
    }

    async fn record_end(&self, end: AttemptEnd) -> StoreResult<()> {
        self.write(&[ExecutionEvent::Finished(end)]).await
    }
}
