//! Tests of the record writer: a backlog larger than a batch is written in
//! calls of at most a batch, in order, through transient and permanent
//! store errors.

use std::sync::Mutex as StdMutex;

use async_trait::async_trait;
use chrono::TimeZone;

use super::*;
use crate::runtime::{LocalRuntime, Spawner};
use crate::store::{
    AttemptEnd, ExecutionId, ExecutionRecord, HistoryQuery, PrunePolicy, StoreResult,
};

/// A store that records each successful write call's execution ids,
/// failing the calls the test asks it to: the calls numbered in `down`
/// (from 0, every call counted) transiently, and any call holding
/// `poison` permanently.
#[derive(Default)]
struct Scripted {
    calls: StdMutex<Vec<Vec<u128>>>,
    made: StdMutex<u32>,
    down: Vec<u32>,
    poison: Option<u128>,
    /// A store that takes a second of this clock per write.
    slow: Option<Arc<dyn Clock>>,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripted").field("calls", &self.calls).finish_non_exhaustive()
    }
}

impl Scripted {
    fn written(&self) -> Vec<u128> {
        self.calls.lock().unwrap().iter().flatten().copied().collect()
    }
}

#[async_trait]
impl ExecutionStore for Scripted {
    async fn write(&self, events: &[ExecutionEvent]) -> StoreResult<()> {
        let ids: Vec<u128> = events
            .iter()
            .map(|e| match e {
                ExecutionEvent::Finished(e) => e.execution_id.0,
                other => panic!("only ends are pushed here: {other:?}"),
            })
            .collect();
        let call = {
            let mut made = self.made.lock().unwrap();
            *made += 1;
            *made - 1
        };
        if let Some(clock) = &self.slow {
            clock.sleep_until(clock.now() + chrono::Duration::seconds(1)).await;
        }
        if self.down.contains(&call) {
            return Err(StoreError::Unavailable { message: "down".into(), source: None });
        }
        if self.poison.is_some_and(|p| ids.contains(&p)) {
            return Err(StoreError::Rejected { message: "poison".into(), source: None });
        }
        self.calls.lock().unwrap().push(ids);
        Ok(())
    }

    async fn history(&self, _q: &HistoryQuery) -> StoreResult<Vec<ExecutionRecord>> {
        Ok(Vec::new())
    }

    async fn last_fire(&self, _job_id: &str) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(None)
    }

    async fn heartbeat(&self, _instance_id: &str, _now: DateTime<Utc>) -> StoreResult<()> {
        Ok(())
    }

    async fn mark_abandoned(
        &self,
        _own: &str,
        _now: DateTime<Utc>,
        _stale_after: Duration,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        Ok(Vec::new())
    }

    async fn prune(&self, _policy: PrunePolicy) -> StoreResult<u64> {
        Ok(0)
    }
}

fn end(id: u128) -> ExecutionEvent {
    let at = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
    ExecutionEvent::Finished(AttemptEnd::succeeded(
        Arc::from("j"),
        Arc::from("i"),
        ExecutionId(id),
        at,
    ))
}

/// Pushes events 1..=n before the writer runs, then runs it until the
/// buffer drains (virtual time: the retries' backoff passes at once).
fn drain(store: Arc<Scripted>, n: u128, batch: usize) -> (Arc<Recorder>, Arc<Scripted>) {
    let rt = LocalRuntime::new();
    let clock: Arc<dyn Clock> = Arc::new(rt.clock());
    let recorder = Recorder::new(1_000, batch);
    for id in 1..=n {
        recorder.push(end(id));
    }
    rt.spawner().spawn(Box::pin(recorder.clone().run(store.clone(), clock.clone())));
    let deadline = clock.now() + chrono::Duration::seconds(60);
    let flushed = rt.block_on(recorder.flush(&*clock, deadline));
    assert!(flushed, "{:?}", recorder.health());
    (recorder, store)
}

#[test]
fn a_backlog_larger_than_a_batch_is_written_in_calls_of_at_most_a_batch_in_order() {
    let (recorder, store) = drain(Arc::new(Scripted::default()), 10, 4);
    let sizes: Vec<usize> = store.calls.lock().unwrap().iter().map(Vec::len).collect();
    assert_eq!(sizes, [4, 4, 2]);
    assert_eq!(store.written(), (1..=10).collect::<Vec<_>>());
    let h = recorder.health();
    assert_eq!((h.written, h.buffered, h.failing), (10, 0, false));
}

#[test]
fn a_store_down_mid_backlog_loses_nothing_and_keeps_the_order() {
    // 1..=4 written, then two failed calls: 5..=10 go back to the queue
    // and are written after the backoff, once each.
    let store = Arc::new(Scripted { down: vec![1, 2], ..Scripted::default() });
    let (recorder, store) = drain(store, 10, 4);
    assert_eq!(store.written(), (1..=10).collect::<Vec<_>>());
    let h = recorder.health();
    assert_eq!((h.written, h.failed_writes, h.buffered, h.failing), (10, 2, 0, false));
}

#[test]
fn a_rejected_event_mid_backlog_is_isolated_and_the_rest_written_in_order() {
    // The call holding 6 is rejected: its events go one by one (6 refused,
    // logged), and the slice after it is written as before.
    let store = Arc::new(Scripted { poison: Some(6), ..Scripted::default() });
    let (recorder, store) = drain(store, 10, 4);
    assert_eq!(store.written(), [1, 2, 3, 4, 5, 7, 8, 9, 10]);
    let h = recorder.health();
    assert_eq!((h.written, h.rejected, h.buffered, h.failing), (9, 1, 0, false));
}

/// A recorder of `capacity` holding events 1..=`n`, its writer in the
/// middle of its first (slow) write.
fn writing(
    capacity: usize,
    batch: usize,
    n: u128,
) -> (LocalRuntime, Arc<dyn Clock>, Arc<Scripted>, Arc<Recorder>) {
    let rt = LocalRuntime::new();
    let clock: Arc<dyn Clock> = Arc::new(rt.clock());
    let store = Arc::new(Scripted { slow: Some(clock.clone()), ..Scripted::default() });
    let recorder = Recorder::new(capacity, batch);
    for id in 1..=n {
        recorder.push(end(id));
    }
    rt.spawner().spawn(Box::pin(recorder.clone().run(store.clone(), clock.clone())));
    rt.run_until_stalled();
    (rt, clock, store, recorder)
}

/// Runs the writer until the buffer drains.
fn flush(rt: &LocalRuntime, clock: &Arc<dyn Clock>, recorder: &Recorder) {
    let deadline = clock.now() + chrono::Duration::seconds(60);
    assert!(rt.block_on(recorder.flush(&**clock, deadline)), "{:?}", recorder.health());
}

#[test]
fn a_full_buffer_drops_its_oldest_queued_records_not_the_newest_while_the_writer_writes() {
    let (rt, clock, store, recorder) = writing(8, 2, 8);
    // The writer holds 1 and 2; 3..=8 fill the buffer.
    recorder.push(end(9));
    recorder.push(end(10));
    flush(&rt, &clock, &recorder);
    // The two oldest events still queued made room; the newest were kept.
    assert_eq!(store.written(), [1, 2, 5, 6, 7, 8, 9, 10]);
    assert_eq!(recorder.health().dropped, 2);
}

#[test]
fn a_full_buffer_with_nothing_queued_drops_the_new_record_and_counts_it() {
    // Capacity 1: the writer's slow write holds the one event, so the next
    // has no older queued event to make room and is the one dropped.
    let (rt, clock, store, recorder) = writing(1, 1, 1);
    recorder.push(end(2));
    let h = recorder.health();
    assert_eq!((h.dropped, h.dropped_since_drained, h.buffered), (1, 1, 1));
    flush(&rt, &clock, &recorder);
    assert_eq!(store.written(), [1]);
}
