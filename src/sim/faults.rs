//! Injected faults: a handler that fails, panics, hangs or runs long, and a
//! store wrapper that fails or stalls, each drawn from the seed.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::{Clock, after};
use crate::job::{JobContext, JobHandler, JobResult};
use crate::store::{
    ClaimOutcome, ExecutionEvent, ExecutionId, ExecutionRecord, ExecutionStore, ExpiredLease,
    FireClaim, FireLease, HistoryQuery, InstanceHeartbeat, PrunePolicy, RetakenFire, StoreError,
    StoreResult,
};

/// Installs (once per process) a panic hook that stays silent for the
/// panics the faulty handler injects and defers to the previous hook for
/// every other panic. Without it each injected panic prints (and, with
/// `RUST_BACKTRACE` set, symbolises) a backtrace, which dominates the run.
pub fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&INJECTED_PANIC) {
                previous(info);
            }
        }));
    });
}

const INJECTED_PANIC: &str = "injected panic";

/// What the faulty handler does, as probabilities per attempt (the rest
/// succeed). Run times are drawn uniformly up to the given maximum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Return an error.
    pub fail: f64,
    /// Panic.
    pub panic: f64,
    /// Never return (ignore cancellation).
    pub hang: f64,
    /// Run up to `long_run` (cooperatively: returns early when cancelled).
    pub long: f64,
    /// The longest "long" run.
    pub long_run: Duration,
    /// The longest normal run.
    pub normal_run: Duration,
}

impl Default for Faults {
    /// No faults; runs take up to 1 s.
    fn default() -> Self {
        Faults {
            fail: 0.0,
            panic: 0.0,
            hang: 0.0,
            long: 0.0,
            long_run: Duration::from_secs(600),
            normal_run: Duration::from_secs(1),
        }
    }
}

impl Faults {
    /// 5% failures, 1% panics, 1% hangs, 3% long runs (up to 10 min).
    pub fn chaotic() -> Self {
        Faults { fail: 0.05, panic: 0.01, hang: 0.01, long: 0.03, ..Faults::default() }
    }
}

/// What the store wrapper does, as probabilities per write.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StoreFaults {
    /// Fail the write as unavailable.
    pub error: f64,
    /// Stall the write for `stall_for` before doing it.
    pub stall: f64,
    /// How long a stall lasts.
    pub stall_for: Duration,
}

/// A store wrapper that fails or stalls writes, drawn from a seeded RNG.
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    faults: Mutex<StoreFaults>,
    rng: Mutex<fastrand::Rng>,
    clock: Arc<dyn Clock>,
    injected: Mutex<(u64, u64)>,
}

impl<S: ExecutionStore> FaultyStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, faults: StoreFaults, seed: u64, clock: Arc<dyn Clock>) -> Self {
        FaultyStore {
            inner,
            faults: Mutex::new(faults),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            clock,
            injected: Mutex::new((0, 0)),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Changes the faults (e.g. to end an outage).
    pub fn set_faults(&self, f: StoreFaults) {
        *self.faults.lock().expect("faults lock") = f;
    }

    /// How many errors and stalls were injected.
    pub fn injected(&self) -> (u64, u64) {
        *self.injected.lock().expect("injected lock")
    }

    /// Draws this call's fault: an error, a stall, or nothing.
    async fn fault(&self) -> StoreResult<()> {
        let f = *self.faults.lock().expect("faults lock");
        let (err, stall) = {
            let mut rng = self.rng.lock().expect("rng lock");
            (rng.f64() < f.error, rng.f64() < f.stall)
        };
        if err {
            self.injected.lock().expect("injected lock").0 += 1;
            return Err(StoreError::Unavailable {
                message: "injected fault: store unavailable".to_owned(),
                source: None,
            });
        }
        if stall {
            self.injected.lock().expect("injected lock").1 += 1;
            self.clock.sleep_until(after(self.clock.now(), f.stall_for)).await;
        }
        Ok(())
    }
}

#[async_trait]
impl<S: ExecutionStore> ExecutionStore for FaultyStore<S> {
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()> {
        self.fault().await?;
        self.inner.write(events).await
    }

    async fn history(&self, q: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        self.inner.history(q).await
    }

    async fn last_fire(&self, job_id: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.inner.last_fire(job_id).await
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

    async fn attempts(
        &self,
        job_id: &str,
        execution_id: ExecutionId,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        self.inner.attempts(job_id, execution_id).await
    }

    async fn instances(&self, since: DateTime<Utc>) -> StoreResult<Vec<InstanceHeartbeat>> {
        self.inner.instances(since).await
    }

    async fn mark_abandoned(
        &self,
        own: &str,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        self.inner.mark_abandoned(own, now, stale_after).await
    }

    async fn abandon_own(&self, id: &str, now: DateTime<Utc>) -> StoreResult<Vec<ExecutionRecord>> {
        self.inner.abandon_own(id, now).await
    }

    async fn prune(&self, p: PrunePolicy) -> StoreResult<u64> {
        self.inner.prune(p).await
    }

    fn supports_claims(&self) -> bool {
        self.inner.supports_claims()
    }

    /// Fails or stalls like [`write`](ExecutionStore::write).
    async fn claim_fires(
        &self,
        instance_id: &str,
        fires: &[FireClaim],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimOutcome>> {
        self.fault().await?;
        self.inner.claim_fires(instance_id, fires, now, lease).await
    }

    /// Fails or stalls like [`write`](ExecutionStore::write).
    async fn renew_leases(
        &self,
        instance_id: &str,
        leases: &[FireLease],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Vec<bool>> {
        self.fault().await?;
        self.inner.renew_leases(instance_id, leases, now, lease).await
    }

    async fn expired_leases(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<ExpiredLease>> {
        self.fault().await?;
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
        self.fault().await?;
        self.inner.retake_fire(instance_id, expired, new_execution_id, now, lease, rerun).await
    }

    async fn recorded_fires(
        &self,
        job_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        self.inner.recorded_fires(job_id, from, to).await
    }
}

pub(super) struct FaultyHandler {
    pub(super) seed: u64,
    pub(super) faults: Faults,
}

#[async_trait]
impl JobHandler for FaultyHandler {
    async fn run(&self, ctx: JobContext) -> JobResult {
        let mut h = std::hash::DefaultHasher::new();
        (self.seed, &*ctx.job_id, ctx.scheduled_at, ctx.attempt).hash(&mut h);
        let mut rng = fastrand::Rng::with_seed(h.finish());
        let f = &self.faults;
        let roll = rng.f64();
        let pick = |max: Duration, rng: &mut fastrand::Rng| {
            Duration::from_millis(rng.u64(0..=u64::try_from(max.as_millis()).unwrap_or(0)))
        };
        if roll < f.fail {
            ctx.sleep(pick(f.normal_run, &mut rng)).await;
            JobResult::failed("injected failure")
        } else if roll < f.fail + f.panic {
            std::panic::panic_any(INJECTED_PANIC)
        } else if roll < f.fail + f.panic + f.hang {
            // Ignores cancellation: only a timeout or the end of a stop grace ends it.
            futures::future::pending::<JobResult>().await
        } else if roll < f.fail + f.panic + f.hang + f.long {
            let d = pick(f.long_run, &mut rng);
            if ctx.sleep(d).await { JobResult::ok() } else { JobResult::failed("cancelled") }
        } else {
            ctx.sleep(pick(f.normal_run, &mut rng)).await;
            JobResult::ok()
        }
    }
}
