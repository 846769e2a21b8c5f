//! Execution records and the [`ExecutionStore`] trait that keeps them.
//!
//! One row per attempt. The scheduler writes [`ExecutionEvent`]s in order
//! (an attempt's `Started` always before its `Finished`) through a bounded
//! buffer, so a slow or failing store never blocks a job. Writes must be
//! idempotent: the same event may be written twice after a failure whose
//! outcome was unknown (`Started` is keyed by `(execution_id, attempt)`).
//!
//! An execution id belongs to one job: the scheduler draws its ids from one
//! counter per instance, under the instance's own high bits, so no two runs
//! share one, of one job or of two. Events that give one id to two jobs
//! are outside the contract, and stores differ on them: the SQL stores
//! merge them into one row by `(execution_id, attempt)`, while
//! [`MemoryStore`] finds a row through its job, except a running row, which
//! it finds by its key alone: it may keep a row for each job, or end one
//! job's running row with the other's end.
//!
//! Attempt numbers go up to `i32::MAX` (the SQL stores' column). An event
//! with a larger one is rejected ([`StoreError::Rejected`], naming it) by
//! every store here and in `mscribe-storage`, and the batch's other events
//! are written.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

mod error;
mod leases;
mod memory;
mod record;
mod shared;

pub use error::{BoxError, StoreError, StoreResult};
pub use memory::{MemoryStore, abandoned_for_retake};
pub(crate) use record::duration_ms;
pub use record::{
    AttemptEnd, AttemptStart, ClaimOutcome, ExecutionEvent, ExecutionId, ExecutionRecord,
    ExecutionStatus, ExpiredLease, FireClaim, FireKind, FireLease, HistoryPosition, HistoryQuery,
    InstanceHeartbeat, Metrics, ParseExecutionIdError, ParseStatusError, PrunePolicy, RetakenFire,
    SkippedFire,
};

/// Where execution records live.
///
/// `Finished` events carry the whole row, so a store upserts them by
/// `(execution_id, attempt)`; `Started` and `Skipped` insert and ignore a
/// conflict. Methods take `&self`: implementations synchronise inside, so a store is
/// shared as `Arc<dyn ExecutionStore>` with no outer lock.
#[async_trait]
pub trait ExecutionStore: Send + Sync + fmt::Debug + 'static {
    /// Writes events in order, as one batch where the backend allows.
    /// Must be idempotent per event (see the module docs).
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()>;

    /// The latest rows of a job, newest first: `started_at` descending,
    /// then attempt, then execution id (the [`HistoryPosition`] order), at
    /// most `query.limit`, only those of `query.status` if set, and only
    /// those strictly older than `query.before` if set (one page after
    /// another, see [`HistoryQuery`]).
    async fn history(&self, query: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>>;

    /// The latest nominal fire time recorded for a job (run or skipped),
    /// whatever made the fire: its schedule, a trigger or a backfill. What
    /// a job's "last run" shows; misfire planning reads
    /// [`last_scheduled_fires`](Self::last_scheduled_fires) instead.
    async fn last_fire(&self, job_id: &str) -> StoreResult<Option<DateTime<Utc>>>;

    /// [`last_fire`](Self::last_fire) of many jobs at once; jobs with no
    /// record are absent. Backends should override it with one query.
    async fn last_fires(
        &self,
        job_ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, DateTime<Utc>>> {
        let mut out = std::collections::HashMap::new();
        for id in job_ids {
            if let Some(t) = self.last_fire(id).await? {
                out.insert(id.clone(), t);
            }
        }
        Ok(out)
    }

    /// The latest nominal time of a fire of each job's schedule that ran or
    /// was skipped ([`FireKind::Schedule`] rows): where misfire planning
    /// starts at `start()`, for every registered job. Rows of triggers and
    /// backfills do not count, as they say nothing of the schedule's fires
    /// (a backfill of old fires is not a fire missed since). Jobs with no
    /// such row are absent. The default reads each job's latest 100,000
    /// rows through [`history`](Self::history); backends override it with
    /// one query.
    async fn last_scheduled_fires(
        &self,
        job_ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, DateTime<Utc>>> {
        let mut out = std::collections::HashMap::new();
        for id in job_ids {
            let rows = self.history(&HistoryQuery::new(id.as_str(), 100_000)).await?;
            let last = rows.iter().filter(|r| r.kind == FireKind::Schedule).map(|r| r.scheduled_at);
            if let Some(t) = last.max() {
                out.insert(id.clone(), t);
            }
        }
        Ok(out)
    }

    /// Records that `instance_id` is alive at `now` (upsert of one row per
    /// instance). The scheduler calls it at start and then periodically.
    async fn heartbeat(&self, instance_id: &str, now: DateTime<Utc>) -> StoreResult<()>;

    /// Every attempt of run `execution_id` of job `job_id`, the first
    /// attempt first. A store that cannot look a run up answers none (the
    /// default); its callers then read the job's history.
    async fn attempts(
        &self,
        job_id: &str,
        execution_id: ExecutionId,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let _ = (job_id, execution_id);
        Ok(Vec::new())
    }

    /// The instances whose last heartbeat is at or after `since`, the
    /// latest heartbeat first (ties by instance id). A store that keeps no
    /// heartbeats answers none (the default).
    async fn instances(&self, since: DateTime<Utc>) -> StoreResult<Vec<InstanceHeartbeat>> {
        let _ = since;
        Ok(Vec::new())
    }

    /// Marks as `abandoned` every `running` row of an instance other than
    /// `own_instance` whose last heartbeat is older than `now - stale_after`
    /// (or that never sent one), completing it at `now` with an error naming
    /// the instance. Returns the rows changed, as they are afterwards.
    async fn mark_abandoned(
        &self,
        own_instance: &str,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> StoreResult<Vec<ExecutionRecord>>;

    /// Marks as `abandoned` every `running` row of instance `instance_id`,
    /// completing it at `now` as [`mark_abandoned`](Self::mark_abandoned)
    /// does. A scheduler calls it at its start, before it runs anything:
    /// such a row was left by an earlier process under the same id (an
    /// application that names its instance after its host), whose fresh
    /// heartbeat the sweep of other instances cannot tell from this one's.
    /// The default changes nothing: a store must override it for a restart
    /// under a fixed id to recover its runs.
    async fn abandon_own(
        &self,
        instance_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let _ = (instance_id, now);
        Ok(Vec::new())
    }

    /// Deletes finished rows per the policy; returns how many.
    ///
    /// It also forgets the claims of fires due before `older_than`, and
    /// every instance whose last heartbeat is older than `older_than` and
    /// that has no `running` row: one heartbeat row per process start would
    /// otherwise pile up for ever. Forgetting changes no
    /// answer of [`mark_abandoned`](Self::mark_abandoned), which treats an
    /// instance without a heartbeat as stale.
    async fn prune(&self, policy: PrunePolicy) -> StoreResult<u64>;

    /// Whether [`claim_fires`](Self::claim_fires) works: the store can be
    /// shared by several instances that each run a fire once between them
    /// ([`SchedulerBuilder::claim_fires`](crate::SchedulerBuilder::claim_fires)).
    fn supports_claims(&self) -> bool {
        false
    }

    /// Claims each fire for `instance_id`, at `now`, with a lease until
    /// `now + lease`, and answers fire by fire, in order. A fire is taken
    /// once: a later claim of the same `(job_id, scheduled_at)`, by any
    /// instance (this one included), gets [`ClaimOutcome::Taken`]. A claim
    /// with [`FireClaim::max_running`] gets [`ClaimOutcome::Busy`] when that
    /// many fires of the job hold live leases (not ended, not expired); the
    /// fire is then the claimer's to record as skipped. The batch is one
    /// transaction where the backend allows.
    ///
    /// A won fire's lease lasts until the claimer writes the event that ends
    /// it (an [`AttemptEnd`] with `ends_run`, or a [`SkippedFire`], carrying
    /// the fence), or until it expires. Events that carry a fence which is
    /// not the fire's current one are refused: [`write`](Self::write)
    /// writes the others and answers [`StoreError::Fenced`].
    ///
    /// Claims older than a prune's `older_than` are forgotten by
    /// [`prune`](Self::prune). The default refuses: a store must override
    /// this, [`supports_claims`](Self::supports_claims) and the lease methods.
    async fn claim_fires(
        &self,
        instance_id: &str,
        fires: &[FireClaim],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimOutcome>> {
        let _ = (instance_id, fires, now, lease);
        Err(StoreError::Rejected {
            message: format!("{self:?} cannot claim fires for several instances"),
            source: None,
        })
    }

    /// Extends to `now + lease` each lease `instance_id` holds, and answers
    /// in order whether it still held it. `false` means the fire ended or
    /// another instance took it over (its fence changed): the run must stop.
    async fn renew_leases(
        &self,
        instance_id: &str,
        leases: &[FireLease],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Vec<bool>> {
        let _ = (instance_id, leases, now, lease);
        Err(StoreError::Rejected { message: format!("{self:?} cannot lease fires"), source: None })
    }

    /// Up to `limit` fires whose lease expired before `now` without the
    /// fire ending, oldest first.
    async fn expired_leases(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<ExpiredLease>> {
        let _ = (now, limit);
        Ok(Vec::new())
    }

    /// Takes over `expired` for `instance_id`, in one transaction, if it is
    /// still expired with the same fence: the fence goes up by one, the
    /// lease runs to `now + lease`, the fire's rows move to
    /// `new_execution_id`, and its `running` rows become `abandoned` with an
    /// error naming both instances. With `rerun` false the fire ends there
    /// when it had rows (the `abandoned` row is its last); without rows the
    /// caller records it skipped with the new fence. `None`: another
    /// instance took it first, or it ended.
    async fn retake_fire(
        &self,
        instance_id: &str,
        expired: &ExpiredLease,
        new_execution_id: ExecutionId,
        now: DateTime<Utc>,
        lease: Duration,
        rerun: bool,
    ) -> StoreResult<Option<RetakenFire>> {
        let _ = (instance_id, expired, new_execution_id, now, lease, rerun);
        Err(StoreError::Rejected { message: format!("{self:?} cannot lease fires"), source: None })
    }

    /// The nominal times in `[from, to]` at which the job has a row in a
    /// final status (run or skipped), ascending: what a backfill does not
    /// run again unless forced. The default reads the job's latest 100,000
    /// rows through [`history`](Self::history); backends override it with
    /// one indexed query.
    async fn recorded_fires(
        &self,
        job_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        let rows = self.history(&HistoryQuery::new(job_id, 100_000)).await?;
        let mut out: Vec<DateTime<Utc>> = rows
            .iter()
            .filter(|r| r.status.is_final() && r.scheduled_at >= from && r.scheduled_at <= to)
            .map(|r| r.scheduled_at)
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Records an attempt start (one-event `write`).
    async fn record_start(&self, start: AttemptStart) -> StoreResult<()> {
        self.write(&[ExecutionEvent::Started(start)]).await
    }

    /// Records an attempt end (one-event `write`).
    async fn record_end(&self, end: AttemptEnd) -> StoreResult<()> {
        self.write(&[ExecutionEvent::Finished(end)]).await
    }
}
