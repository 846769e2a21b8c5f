//! An [`ExecutionStore`] that keeps nothing: the peers keep no history, so
//! the real-clock comparison measures the engine with writes discarded (and
//! once more with the [`MemoryStore`](mscribe_scheduler::MemoryStore)).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mscribe_scheduler::StoreResult;
use mscribe_scheduler::{
    ExecutionEvent, ExecutionRecord, ExecutionStore, HistoryQuery, PrunePolicy,
};

/// Discards every write, counting the events by kind.
#[derive(Debug, Default)]
pub struct NullStore {
    started: AtomicU64,
    finished: AtomicU64,
    first_finished: AtomicU64,
    skipped: AtomicU64,
}

/// What a [`NullStore`] was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NullCounts {
    /// `Started` events. An attempt that ends on its first poll on the
    /// scheduler's driver reaches the store as its `Finished` event only.
    pub started: u64,
    /// `Finished` events (attempts that ended).
    pub finished: u64,
    /// `Finished` events of first attempts (runs that got an attempt).
    pub first_finished: u64,
    /// `Skipped` events.
    pub skipped: u64,
}

impl NullStore {
    /// A store that discards.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events written so far.
    pub fn counts(&self) -> NullCounts {
        NullCounts {
            started: self.started.load(Ordering::Relaxed),
            finished: self.finished.load(Ordering::Relaxed),
            first_finished: self.first_finished.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
        }
    }
}

#[async_trait]
impl ExecutionStore for NullStore {
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()> {
        let (mut st, mut first, mut fin, mut sk) = (0, 0, 0, 0);
        for e in events {
            match e {
                ExecutionEvent::Started(_) => st += 1,
                ExecutionEvent::Finished(e) => {
                    fin += 1;
                    if e.attempt == 1 {
                        first += 1;
                    }
                }
                ExecutionEvent::Skipped(_) => sk += 1,
            }
        }
        self.started.fetch_add(st, Ordering::Relaxed);
        self.finished.fetch_add(fin, Ordering::Relaxed);
        self.first_finished.fetch_add(first, Ordering::Relaxed);
        self.skipped.fetch_add(sk, Ordering::Relaxed);
        Ok(())
    }

    async fn history(&self, _query: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        Ok(Vec::new())
    }

    async fn last_fire(&self, _job_id: &str) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(None)
    }

    async fn last_fires(&self, _job_ids: &[String]) -> StoreResult<HashMap<String, DateTime<Utc>>> {
        Ok(HashMap::new())
    }

    async fn last_scheduled_fires(
        &self,
        _job_ids: &[String],
    ) -> StoreResult<HashMap<String, DateTime<Utc>>> {
        Ok(HashMap::new())
    }

    async fn heartbeat(&self, _instance_id: &str, _now: DateTime<Utc>) -> StoreResult<()> {
        Ok(())
    }

    async fn mark_abandoned(
        &self,
        _own_instance: &str,
        _now: DateTime<Utc>,
        _stale_after: Duration,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        Ok(Vec::new())
    }

    async fn prune(&self, _policy: PrunePolicy) -> StoreResult<u64> {
        Ok(0)
    }
}
