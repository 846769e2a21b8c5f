//! [`MemoryStore`]: the in-memory reference store, bounded per job.

mod keys;
mod rows;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use self::rows::{Row, Rows};
use super::leases::Leases;
use super::{
    ClaimOutcome, ExecutionEvent, ExecutionId, ExecutionRecord, ExecutionStore, ExpiredLease,
    FireClaim, FireKind, FireLease, HistoryQuery, InstanceHeartbeat, PrunePolicy, RetakenFire,
    StoreError, StoreResult,
};

/// An in-memory store: the reference implementation, and the default when
/// history need not survive the process.
///
/// It keeps the newest [`DEFAULT_ROWS_PER_JOB`](Self::DEFAULT_ROWS_PER_JOB)
/// rows of each job, so a scheduler left on its default store runs for
/// months in bounded memory: a job firing every second would otherwise add
/// some 86,000 rows a day. The oldest finished row of a job goes first; a
/// row still `running` is never dropped, so its end always finds it. A
/// dropped row is forgotten: an event of it written again (a write retried
/// after an unknown outcome, once the job has since written a bound's worth
/// of rows) makes a new row, and a start's new row stays `running` while
/// its instance lives. A scheduler retries a failed batch before it writes
/// any later event, so only another writer of the job's rows (another
/// instance on this store) can push the row out in between.
/// [`with_rows_per_job`](Self::with_rows_per_job) sets another bound and
/// [`unbounded`](Self::unbounded) keeps everything (for tests that check a
/// whole history).
///
/// ```
/// use std::num::NonZeroUsize;
/// use mscribe_scheduler::MemoryStore;
///
/// let store = MemoryStore::with_rows_per_job(NonZeroUsize::new(100).unwrap());
/// assert_eq!(store.rows_per_job(), Some(100));
/// assert_eq!(MemoryStore::new().rows_per_job(), Some(MemoryStore::DEFAULT_ROWS_PER_JOB));
/// assert_eq!(MemoryStore::unbounded().rows_per_job(), None);
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    rows: Mutex<MemoryRows>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// The store's state, behind its lock.
#[derive(Debug)]
struct MemoryRows {
    heartbeats: std::collections::HashMap<String, DateTime<Utc>>,
    /// Fires claimed, with their leases (see [`ExecutionStore::claim_fires`]).
    leases: Leases,
    /// The rows and their indexes.
    rows: Rows,
}

impl MemoryStore {
    /// How many rows of each job [`new`](Self::new) keeps: a run a minute
    /// for the last 16 hours, and at about 106 bytes a row (a successful
    /// attempt; an error, result or metrics adds its own size), some
    /// 106 kB a job.
    pub const DEFAULT_ROWS_PER_JOB: usize = 1_000;

    /// An empty store keeping the newest
    /// [`DEFAULT_ROWS_PER_JOB`](Self::DEFAULT_ROWS_PER_JOB) rows of each job.
    pub fn new() -> Self {
        Self::bounded(Some(Self::DEFAULT_ROWS_PER_JOB))
    }

    /// An empty store keeping the newest `rows` rows of each job, and every
    /// row still running.
    pub fn with_rows_per_job(rows: std::num::NonZeroUsize) -> Self {
        Self::bounded(Some(rows.get()))
    }

    /// An empty store that keeps every row until [`prune`](ExecutionStore::prune)
    /// removes it: memory grows with every fire.
    pub fn unbounded() -> Self {
        Self::bounded(None)
    }

    fn bounded(per_job: Option<usize>) -> Self {
        MemoryStore {
            rows: Mutex::new(MemoryRows {
                heartbeats: Default::default(),
                leases: Leases::default(),
                rows: Rows::new(per_job),
            }),
        }
    }

    /// The bound per job; `None` when unbounded.
    pub fn rows_per_job(&self) -> Option<usize> {
        self.rows.lock().expect("memory store lock").rows.per_job()
    }

    /// Every row kept, in insertion order (for tests and inspection).
    pub fn all(&self) -> Vec<ExecutionRecord> {
        self.rows.lock().expect("memory store lock").rows.all()
    }

    /// The number of rows kept.
    pub fn len(&self) -> usize {
        self.rows.lock().expect("memory store lock").rows.len()
    }

    /// Whether the store holds no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The largest attempt number a row may hold, as in the SQL stores' 32-bit
/// column: a run taken over continues at one more than its last attempt.
const LARGEST_ATTEMPT: u32 = i32::MAX as u32;

#[async_trait]
impl ExecutionStore for MemoryStore {
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()> {
        let mut g = self.rows.lock().expect("memory store lock");
        let mut refused = Vec::new();
        let mut bad = Vec::new();
        for (i, ev) in events.iter().enumerate() {
            // The SQL stores' limit: a run's next attempt (`retake_fire`)
            // is one more than its last, which then cannot overflow.
            let attempt = ev.attempt();
            if attempt > LARGEST_ATTEMPT {
                bad.push(format!(
                    "event {i} ({}): attempt {attempt} exceeds the largest storable {LARGEST_ATTEMPT}",
                    ev.describe()
                ));
                continue;
            }
            if !g.leases.admit(ev) {
                refused.push(format!("{} at {}", ev.job_id(), ev.scheduled_at()));
                continue;
            }
            match ev {
                ExecutionEvent::Started(s) => g.rows.start(s),
                ExecutionEvent::Skipped(s) => g.rows.skip(s),
                ExecutionEvent::Finished(e) => g.rows.end(e),
            }
        }
        StoreError::write_outcome(events.len(), bad, refused)
    }

    async fn history(&self, q: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        let g = self.rows.lock().expect("memory store lock");
        // `HistoryQuery::matches` on the compact rows: a row of the job, of
        // the status asked for, older than `before`.
        let mut rows: Vec<&Row> = g
            .rows
            .of_job(&q.job_id)
            .filter(|r| q.status.is_none_or(|s| r.status() == s))
            .filter(|r| q.before.is_none_or(|p| r.position() < p))
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.position()));
        rows.truncate(q.limit);
        Ok(rows.into_iter().map(|r| g.rows.record(r)).collect())
    }

    async fn last_fire(&self, job_id: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let g = self.rows.lock().expect("memory store lock");
        Ok(g.rows.of_job(job_id).map(Row::scheduled_at).max())
    }

    async fn last_scheduled_fires(
        &self,
        job_ids: &[String],
    ) -> StoreResult<HashMap<String, DateTime<Utc>>> {
        let g = self.rows.lock().expect("memory store lock");
        let last = |job: &str| {
            let rows = g.rows.of_job(job).filter(|r| r.kind() == FireKind::Schedule);
            rows.map(Row::scheduled_at).max()
        };
        Ok(job_ids.iter().filter_map(|id| Some((id.clone(), last(id)?))).collect())
    }

    async fn heartbeat(&self, instance_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let mut g = self.rows.lock().expect("memory store lock");
        g.heartbeats.insert(instance_id.to_owned(), now);
        Ok(())
    }

    async fn attempts(
        &self,
        job_id: &str,
        execution_id: ExecutionId,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let g = self.rows.lock().expect("memory store lock");
        let mut rows: Vec<&Row> =
            g.rows.of_job(job_id).filter(|r| r.of_run(execution_id)).collect();
        rows.sort_by_key(|r| r.attempt());
        Ok(rows.into_iter().map(|r| g.rows.record(r)).collect())
    }

    async fn instances(&self, since: DateTime<Utc>) -> StoreResult<Vec<InstanceHeartbeat>> {
        let g = self.rows.lock().expect("memory store lock");
        let mut out: Vec<InstanceHeartbeat> = g
            .heartbeats
            .iter()
            .filter(|(_, at)| **at >= since)
            .map(|(id, at)| InstanceHeartbeat {
                instance_id: id.clone(),
                heartbeat_at: *at,
                started_at: None,
                hostname: None,
            })
            .collect();
        out.sort_by(|a, b| {
            b.heartbeat_at.cmp(&a.heartbeat_at).then_with(|| a.instance_id.cmp(&b.instance_id))
        });
        Ok(out)
    }

    async fn mark_abandoned(
        &self,
        own_instance: &str,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let mut g = self.rows.lock().expect("memory store lock");
        let cutoff = chrono::Duration::from_std(stale_after)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let MemoryRows { heartbeats, rows, .. } = &mut *g;
        let alive = |instance: &str| {
            instance == own_instance || heartbeats.get(instance).is_some_and(|hb| *hb >= cutoff)
        };
        let error = |instance: &str| format!("instance {instance} stopped while the attempt ran");
        Ok(rows.abandon(now, alive, error))
    }

    async fn abandon_own(
        &self,
        instance_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let mut g = self.rows.lock().expect("memory store lock");
        let error = |instance: &str| format!("instance {instance} stopped while the attempt ran");
        Ok(g.rows.abandon(now, |instance| instance != instance_id, error))
    }

    async fn prune(&self, p: PrunePolicy) -> StoreResult<u64> {
        let mut g = self.rows.lock().expect("memory store lock");
        let pruned = |r: &Row| {
            let cutoff = match p.failures_older_than {
                Some(f) if r.status().is_failure() => f,
                _ => p.older_than,
            };
            r.status().is_final() && r.started_at() < cutoff
        };
        let removed = g.rows.prune(pruned);
        let g = &mut *g;
        let running: std::collections::HashSet<&str> = g.rows.running_instances().collect();
        g.heartbeats.retain(|id, at| *at >= p.older_than || running.contains(id.as_str()));
        g.leases.prune(p.older_than);
        Ok(removed)
    }

    fn supports_claims(&self) -> bool {
        true
    }

    async fn claim_fires(
        &self,
        instance_id: &str,
        fires: &[FireClaim],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimOutcome>> {
        let mut g = self.rows.lock().expect("memory store lock");
        Ok(g.leases.claim(instance_id, fires, now, lease))
    }

    async fn renew_leases(
        &self,
        instance_id: &str,
        leases: &[FireLease],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Vec<bool>> {
        let mut g = self.rows.lock().expect("memory store lock");
        Ok(g.leases.renew(instance_id, leases, now, lease))
    }

    async fn expired_leases(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<ExpiredLease>> {
        let g = self.rows.lock().expect("memory store lock");
        Ok(g.leases.expired(now, limit))
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
        let mut g = self.rows.lock().expect("memory store lock");
        let g = &mut *g;
        let Some(fence) = g.leases.retake(instance_id, expired, new_execution_id, now, lease)
        else {
            return Ok(None);
        };
        // The run's rows move to the new id; a `running` one is abandoned.
        let error = || abandoned_for_retake(&expired.owner, instance_id, fence, rerun);
        let (last, had_rows) = g.rows.retake(expired.execution_id, new_execution_id, now, error);
        if !rerun && had_rows {
            g.leases.end(&expired.job_id, expired.scheduled_at);
        }
        Ok(Some(RetakenFire { fence, next_attempt: last + 1, had_rows }))
    }

    async fn recorded_fires(
        &self,
        job_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        let g = self.rows.lock().expect("memory store lock");
        let mut out: Vec<DateTime<Utc>> = g
            .rows
            .of_job(job_id)
            .filter(|r| r.status().is_final())
            .map(Row::scheduled_at)
            .filter(|at| *at >= from && *at <= to)
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

/// The error of an attempt whose instance stopped renewing the fire's
/// lease, as every store words it: who owned it, who took it over, and
/// whether the fire runs again (`rerun`) or ends with this row.
pub fn abandoned_for_retake(owner: &str, taker: &str, fence: u64, rerun: bool) -> String {
    let then = if rerun {
        "the fire runs again as the next attempt"
    } else {
        "the fire is not run again: its misfire policy does not allow it (a later fire ran, \
         or it is past the window), and this row is its final record"
    };
    format!(
        "instance {owner} stopped renewing the fire's lease while the attempt ran; \
         instance {taker} took the fire over (fence {fence}); {then}"
    )
}
