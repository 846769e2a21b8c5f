//! [`MemoryStore`]: the in-memory reference store, bounded per job.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::leases::Leases;
use super::{
    AttemptEnd, ClaimOutcome, ExecutionEvent, ExecutionId, ExecutionRecord, ExecutionStatus,
    ExecutionStore, ExpiredLease, FireClaim, FireLease, HistoryPosition, HistoryQuery,
    InstanceHeartbeat, PrunePolicy, RetakenFire, StoreError, StoreResult, duration_ms,
};

/// An in-memory store: the reference implementation, and the default when
/// history need not survive the process.
///
/// It keeps the newest [`DEFAULT_ROWS_PER_JOB`](Self::DEFAULT_ROWS_PER_JOB)
/// rows of each job, so a scheduler left on its default store runs for
/// months in bounded memory: a job firing every second would otherwise add
/// some 86,000 rows a day. The oldest finished row of a job goes first; a
/// row still `running` is never dropped, so its end always finds it.
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

type FxMap<K, V> = std::collections::HashMap<K, V, rustc_hash::FxBuildHasher>;

#[derive(Debug, Default)]
struct MemoryRows {
    heartbeats: std::collections::HashMap<String, DateTime<Utc>>,
    /// Fires claimed, with their leases (see [`ExecutionStore::claim_fires`]).
    leases: Leases,
    /// The rows, each with its insertion number; a dropped row's place is
    /// reused (`free`).
    rows: Vec<Option<(u64, ExecutionRecord)>>,
    free: Vec<usize>,
    /// The next insertion number.
    next: u64,
    /// Each job's rows (places in `rows`), oldest first.
    jobs: FxMap<String, std::collections::VecDeque<usize>>,
    by_key: FxMap<(ExecutionId, u32), usize>,
    /// Rows in `running`, so the abandonment sweep does not scan history.
    running: std::collections::BTreeSet<usize>,
    /// Rows kept per job; `None` keeps every row.
    per_job: Option<usize>,
}

impl MemoryRows {
    fn get(&self, i: usize) -> Option<&ExecutionRecord> {
        self.rows.get(i).and_then(|r| r.as_ref()).map(|(_, r)| r)
    }

    fn upsert(&mut self, rec: ExecutionRecord) {
        let key = (rec.execution_id, rec.attempt);
        if self.by_key.contains_key(&key) {
            return;
        }
        let i = self.free.pop().unwrap_or(self.rows.len());
        if rec.status == ExecutionStatus::Running {
            self.running.insert(i);
        }
        self.by_key.insert(key, i);
        let job = match self.jobs.get_mut(rec.job_id.as_str()) {
            Some(job) => job,
            None => self.jobs.entry(rec.job_id.clone()).or_default(),
        };
        job.push_back(i);
        let row = Some((self.next, rec));
        self.next += 1;
        if i == self.rows.len() {
            self.rows.push(row);
        } else {
            self.rows[i] = row;
        }
        if let Some(max) = self.per_job {
            trim(job, max, &mut self.rows, &mut self.by_key, &mut self.free);
        }
    }

    fn end(&mut self, i: usize, e: &AttemptEnd) {
        let Some((_, r)) = self.rows.get_mut(i).and_then(|r| r.as_mut()) else { return };
        r.apply_end(e);
        self.running.remove(&i);
        // A running row may have held its job over the bound.
        if let (Some(max), Some(job)) = (self.per_job, self.jobs.get_mut(&*e.job_id)) {
            trim(job, max, &mut self.rows, &mut self.by_key, &mut self.free);
        }
    }

    /// The rows of one job, oldest first.
    fn of_job<'a>(&'a self, job_id: &str) -> impl Iterator<Item = &'a ExecutionRecord> + 'a {
        self.jobs.get(job_id).into_iter().flatten().filter_map(|i| self.get(*i))
    }

    /// Rebuilds the indexes from `rows`.
    fn reindex(&mut self) {
        let mut live: Vec<(u64, usize)> = Vec::new();
        self.free.clear();
        for (i, row) in self.rows.iter().enumerate() {
            match row {
                Some((n, _)) => live.push((*n, i)),
                None => self.free.push(i),
            }
        }
        live.sort_unstable();
        self.by_key.clear();
        self.running.clear();
        self.jobs.clear();
        for (_, i) in live {
            let Some((_, r)) = &self.rows[i] else { continue };
            self.by_key.insert((r.execution_id, r.attempt), i);
            if r.status == ExecutionStatus::Running {
                self.running.insert(i);
            }
            match self.jobs.get_mut(r.job_id.as_str()) {
                Some(job) => job.push_back(i),
                None => {
                    self.jobs.insert(r.job_id.clone(), [i].into());
                }
            }
        }
    }
}

/// Drops a job's oldest finished rows while it has more than `max`, freeing
/// their places. Running rows stay: a job running more runs at once than
/// the bound keeps them all until they end.
fn trim(
    job: &mut std::collections::VecDeque<usize>,
    max: usize,
    rows: &mut [Option<(u64, ExecutionRecord)>],
    by_key: &mut FxMap<(ExecutionId, u32), usize>,
    free: &mut Vec<usize>,
) {
    while job.len() > max {
        let finished = |i: &usize| rows[*i].as_ref().is_some_and(|(_, r)| r.status.is_final());
        let Some(at) = job.iter().position(finished) else { return };
        let i = job.remove(at).expect("position is in range");
        if let Some((_, r)) = rows[i].take() {
            by_key.remove(&(r.execution_id, r.attempt));
            free.push(i);
        }
    }
}

impl MemoryStore {
    /// How many rows of each job [`new`](Self::new) keeps: a run a minute
    /// for the last 16 hours, and at about 300 bytes a row, some 300 kB a
    /// job.
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
        MemoryStore { rows: Mutex::new(MemoryRows { per_job, ..MemoryRows::default() }) }
    }

    /// The bound per job; `None` when unbounded.
    pub fn rows_per_job(&self) -> Option<usize> {
        self.rows.lock().expect("memory store lock").per_job
    }

    /// Every row kept, in insertion order (for tests and inspection).
    pub fn all(&self) -> Vec<ExecutionRecord> {
        let g = self.rows.lock().expect("memory store lock");
        let mut rows: Vec<&(u64, ExecutionRecord)> = g.rows.iter().flatten().collect();
        rows.sort_unstable_by_key(|(n, _)| *n);
        rows.into_iter().map(|(_, r)| r.clone()).collect()
    }

    /// The number of rows kept.
    pub fn len(&self) -> usize {
        let g = self.rows.lock().expect("memory store lock");
        g.rows.len() - g.free.len()
    }

    /// Whether the store holds no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl ExecutionStore for MemoryStore {
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()> {
        let mut g = self.rows.lock().expect("memory store lock");
        let mut refused = Vec::new();
        for ev in events {
            if !g.leases.admit(ev) {
                refused.push(format!("{} at {}", ev.job_id(), ev.scheduled_at()));
                continue;
            }
            match ev {
                ExecutionEvent::Started(s) => g.upsert(ExecutionRecord::from_start(s)),
                ExecutionEvent::Skipped(s) => g.upsert(ExecutionRecord::from_skip(s)),
                ExecutionEvent::Finished(e) => match g.by_key.get(&(e.execution_id, e.attempt)) {
                    Some(&i) => g.end(i, e),
                    None => g.upsert(ExecutionRecord::from_end(e)),
                },
            }
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Fenced { refused: refused.len() as u64, message: refused.join(", ") })
        }
    }

    async fn history(&self, q: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        let g = self.rows.lock().expect("memory store lock");
        let mut out: Vec<ExecutionRecord> =
            g.of_job(&q.job_id).filter(|r| q.matches(r)).cloned().collect();
        out.sort_by_key(|r| std::cmp::Reverse(HistoryPosition::of(r)));
        out.truncate(q.limit);
        Ok(out)
    }

    async fn last_fire(&self, job_id: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let g = self.rows.lock().expect("memory store lock");
        Ok(g.of_job(job_id).map(|r| r.scheduled_at).max())
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
        let mut out: Vec<ExecutionRecord> =
            g.of_job(job_id).filter(|r| r.execution_id == execution_id).cloned().collect();
        out.sort_by_key(|r| r.attempt);
        Ok(out)
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
        let g = &mut *g;
        let mut changed = Vec::new();
        let running: Vec<usize> = g.running.iter().copied().collect();
        for i in running {
            let Some((_, r)) = g.rows.get_mut(i).and_then(|r| r.as_mut()) else { continue };
            let alive = r.instance_id == own_instance
                || g.heartbeats.get(&r.instance_id).is_some_and(|hb| *hb >= cutoff);
            if !alive {
                r.status = ExecutionStatus::Abandoned;
                r.completed_at = Some(now);
                r.duration_ms =
                    Some(duration_ms((now - r.started_at).to_std().unwrap_or_default()));
                r.error = Some(format!("instance {} stopped while the attempt ran", r.instance_id));
                changed.push(r.clone());
                g.running.remove(&i);
            }
        }
        Ok(changed)
    }

    async fn prune(&self, p: PrunePolicy) -> StoreResult<u64> {
        let mut g = self.rows.lock().expect("memory store lock");
        let pruned = |r: &ExecutionRecord| {
            let cutoff = match p.failures_older_than {
                Some(f) if r.status.is_failure() => f,
                _ => p.older_than,
            };
            r.status.is_final() && r.started_at < cutoff
        };
        let mut removed = 0;
        for row in &mut g.rows {
            if row.as_ref().is_some_and(|(_, r)| pruned(r)) {
                *row = None;
                removed += 1;
            }
        }
        g.reindex();
        let g = &mut *g;
        let running: std::collections::HashSet<&str> = g
            .running
            .iter()
            .filter_map(|i| g.rows[*i].as_ref())
            .map(|(_, r)| r.instance_id.as_str())
            .collect();
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
        let old: Vec<(u32, usize)> = g
            .by_key
            .iter()
            .filter(|((id, _), _)| *id == expired.execution_id)
            .map(|((_, attempt), i)| (*attempt, *i))
            .collect();
        let mut last = 0;
        for (attempt, i) in &old {
            last = last.max(*attempt);
            g.by_key.remove(&(expired.execution_id, *attempt));
            g.by_key.insert((new_execution_id, *attempt), *i);
            let Some((_, r)) = g.rows.get_mut(*i).and_then(|r| r.as_mut()) else { continue };
            r.execution_id = new_execution_id;
            if r.status == ExecutionStatus::Running {
                r.status = ExecutionStatus::Abandoned;
                r.completed_at = Some(now);
                r.duration_ms =
                    Some(duration_ms((now - r.started_at).to_std().unwrap_or_default()));
                r.error = Some(abandoned_for_retake(&expired.owner, instance_id, fence, rerun));
                g.running.remove(i);
            }
        }
        let had_rows = !old.is_empty();
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
            .of_job(job_id)
            .filter(|r| r.status.is_final() && r.scheduled_at >= from && r.scheduled_at <= to)
            .map(|r| r.scheduled_at)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::AttemptStart;

    #[test]
    fn prune_forgets_instances_long_silent_without_a_running_row() {
        let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let store = MemoryStore::new();
        futures::executor::block_on(async {
            store.heartbeat("gone", t(0)).await.unwrap();
            store.heartbeat("busy", t(0)).await.unwrap();
            store.heartbeat("fresh", t(1000)).await.unwrap();
            let start = AttemptStart {
                job_id: Arc::from("j"),
                execution_id: ExecutionId(1),
                attempt: 1,
                scheduled_at: t(0),
                started_at: t(0),
                instance_id: Arc::from("busy"),
                kind: crate::store::FireKind::Schedule,
                fence: None,
            };
            store.write(&[ExecutionEvent::Started(start)]).await.unwrap();
            let policy = PrunePolicy { older_than: t(500), failures_older_than: None };
            store.prune(policy).await.unwrap();
        });
        let g = store.rows.lock().unwrap();
        let mut left: Vec<&str> = g.heartbeats.keys().map(String::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["busy", "fresh"]);
    }
}
