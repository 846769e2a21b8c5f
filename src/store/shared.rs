//! A store shared behind an `Arc` is a store: every call goes to the one
//! inside (so a wrapper such as `sim::FaultyStore` can hold a store that
//! other schedulers use directly).
//!
//! The methods stay `async fn`s, although each then boxes a second future
//! around the inner store's. The scheduler holds its store as an
//! `Arc<dyn ExecutionStore>`, so its calls come here, and the inner method
//! is called only in the first poll, inside the scheduler's guard: a store
//! whose method panics before it returns its future (one not written as an
//! `async fn`) fails that call and does not take down the caller
//! (`a_store_that_panics_leaves_the_scheduler_running_and_counts_the_failure`).
//! Forwarding the inner future itself, with the guard moved to the call,
//! saved 0.9% of a simulated fire's instructions but was no faster on the
//! wall clock (docs/BENCHMARKS.md, "Engine changes").

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    ClaimOutcome, ExecutionEvent, ExecutionId, ExecutionRecord, ExecutionStore, ExpiredLease,
    FireClaim, FireLease, HistoryQuery, InstanceHeartbeat, PrunePolicy, RetakenFire, StoreResult,
};

#[async_trait]
impl<S: ExecutionStore + ?Sized> ExecutionStore for Arc<S> {
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()> {
        (**self).write(events).await
    }

    async fn history(&self, query: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        (**self).history(query).await
    }

    async fn last_fire(&self, job_id: &str) -> StoreResult<Option<DateTime<Utc>>> {
        (**self).last_fire(job_id).await
    }

    async fn last_fires(&self, job_ids: &[String]) -> StoreResult<HashMap<String, DateTime<Utc>>> {
        (**self).last_fires(job_ids).await
    }

    async fn last_scheduled_fires(
        &self,
        job_ids: &[String],
    ) -> StoreResult<HashMap<String, DateTime<Utc>>> {
        (**self).last_scheduled_fires(job_ids).await
    }

    async fn heartbeat(&self, instance_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        (**self).heartbeat(instance_id, now).await
    }

    async fn attempts(
        &self,
        job_id: &str,
        execution_id: ExecutionId,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        (**self).attempts(job_id, execution_id).await
    }

    async fn instances(&self, since: DateTime<Utc>) -> StoreResult<Vec<InstanceHeartbeat>> {
        (**self).instances(since).await
    }

    async fn mark_abandoned(
        &self,
        own_instance: &str,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        (**self).mark_abandoned(own_instance, now, stale_after).await
    }

    async fn abandon_own(
        &self,
        instance_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        (**self).abandon_own(instance_id, now).await
    }

    async fn prune(&self, policy: PrunePolicy) -> StoreResult<u64> {
        (**self).prune(policy).await
    }

    fn supports_claims(&self) -> bool {
        (**self).supports_claims()
    }

    async fn claim_fires(
        &self,
        instance_id: &str,
        fires: &[FireClaim],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimOutcome>> {
        (**self).claim_fires(instance_id, fires, now, lease).await
    }

    async fn renew_leases(
        &self,
        instance_id: &str,
        leases: &[FireLease],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Vec<bool>> {
        (**self).renew_leases(instance_id, leases, now, lease).await
    }

    async fn expired_leases(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<ExpiredLease>> {
        (**self).expired_leases(now, limit).await
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
        (**self).retake_fire(instance_id, expired, new_execution_id, now, lease, rerun).await
    }

    async fn recorded_fires(
        &self,
        job_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        (**self).recorded_fires(job_id, from, to).await
    }
}
