//! A store shared behind an `Arc` is a store: every call goes to the one
//! inside (so a wrapper such as `sim::FaultyStore` can hold a store that
//! other schedulers use directly).
//!
//! The calls hand back the inner store's own future, without a box of
//! their own: a method called on an `Arc<dyn ExecutionStore>`, which is how
//! the scheduler holds its store, resolves to this impl, and an `async fn`
//! here would cost every store call a second allocation and poll.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use super::{
    ClaimOutcome, ExecutionEvent, ExecutionId, ExecutionRecord, ExecutionStore, ExpiredLease,
    FireClaim, FireLease, HistoryQuery, InstanceHeartbeat, PrunePolicy, RetakenFire, StoreResult,
};

/// One forwarding method: the signature `async_trait` gives the trait's
/// (`'life0` is `&self`, the listed lifetimes the arguments' borrows).
macro_rules! forward {
    ($name:ident<$($lt:lifetime),*>($($arg:ident: $ty:ty),*) -> $out:ty) => {
        fn $name<'life0, $($lt,)* 'async_trait>(
            &'life0 self,
            $($arg: $ty),*
        ) -> BoxFuture<'async_trait, StoreResult<$out>>
        where
            'life0: 'async_trait,
            $($lt: 'async_trait,)*
            Self: 'async_trait,
        {
            (**self).$name($($arg),*)
        }
    };
}

impl<S: ExecutionStore + ?Sized> ExecutionStore for Arc<S> {
    forward!(write<'life1>(events: &'life1 [ExecutionEvent]) -> ());
    forward!(history<'life1>(query: &'life1 HistoryQuery) -> Vec<ExecutionRecord>);
    forward!(last_fire<'life1>(job_id: &'life1 str) -> Option<DateTime<Utc>>);
    forward!(last_fires<'life1>(job_ids: &'life1 [String]) -> HashMap<String, DateTime<Utc>>);
    forward!(heartbeat<'life1>(instance_id: &'life1 str, now: DateTime<Utc>) -> ());
    forward!(attempts<'life1>(job_id: &'life1 str, execution_id: ExecutionId) -> Vec<ExecutionRecord>);
    forward!(instances<>(since: DateTime<Utc>) -> Vec<InstanceHeartbeat>);
    forward!(mark_abandoned<'life1>(
        own_instance: &'life1 str,
        now: DateTime<Utc>,
        stale_after: Duration
    ) -> Vec<ExecutionRecord>);
    forward!(prune<>(policy: PrunePolicy) -> u64);

    fn supports_claims(&self) -> bool {
        (**self).supports_claims()
    }

    forward!(claim_fires<'life1, 'life2>(
        instance_id: &'life1 str,
        fires: &'life2 [FireClaim],
        now: DateTime<Utc>,
        lease: Duration
    ) -> Vec<ClaimOutcome>);
    forward!(renew_leases<'life1, 'life2>(
        instance_id: &'life1 str,
        leases: &'life2 [FireLease],
        now: DateTime<Utc>,
        lease: Duration
    ) -> Vec<bool>);
    forward!(expired_leases<>(now: DateTime<Utc>, limit: usize) -> Vec<ExpiredLease>);
    forward!(retake_fire<'life1, 'life2>(
        instance_id: &'life1 str,
        expired: &'life2 ExpiredLease,
        new_execution_id: ExecutionId,
        now: DateTime<Utc>,
        lease: Duration,
        rerun: bool
    ) -> Option<RetakenFire>);
    forward!(recorded_fires<'life1>(
        job_id: &'life1 str,
        from: DateTime<Utc>,
        to: DateTime<Utc>
    ) -> Vec<DateTime<Utc>>);
}
