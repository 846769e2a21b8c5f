//! The execution cases checked against a model: random events, and
//! attempts as the engine records them, replayed on the store and on the
//! engine's `MemoryStore` (the reference), every read compared.

use std::time::Duration;

use mscribe_scheduler::{
    ErrorKind, ExecutionEvent, ExecutionRecord, ExecutionStatus, ExecutionStore, HistoryQuery,
    MemoryStore, PrunePolicy,
};

use crate::common::*;
use crate::executions::{by_key, q};

async fn all_of(s: &dyn ExecutionStore, jobs: &[&str]) -> Vec<ExecutionRecord> {
    let mut out = Vec::new();
    for j in jobs {
        out.extend(s.history(&q(j)).await.unwrap());
    }
    out
}

/// Attempts as the engine records them (a start, then usually its end with
/// the same fields), cut into random writes, some written twice: a start
/// and its end in one write (which the SQL stores write as one row) leave
/// what they leave apart.
pub(crate) async fn paired_starts_and_ends_match_the_memory_store(s: &dyn ExecutionStore) {
    paired_writes(s, 0xba7c, 300, 40, false).await;
}

/// As [`paired_starts_and_ends_match_the_memory_store`], in writes of up to
/// 1,200 events (large enough for a store to split them), with some starts
/// lost (their end comes alone, after the same attempt's events in other
/// writes).
pub(crate) async fn large_paired_writes_match_the_memory_store(s: &dyn ExecutionStore) {
    paired_writes(s, 0x1a76e, 3_000, 1_200, true).await;
}

/// `attempts` attempts of two jobs, written in random cuts of up to
/// `max_write` events, a sixth of the writes twice; with `lose_starts`,
/// one start in ten is never written.
async fn paired_writes(
    s: &dyn ExecutionStore,
    seed: u64,
    attempts: u128,
    max_write: usize,
    lose_starts: bool,
) {
    let model = MemoryStore::unbounded();
    let mut rng = fastrand::Rng::with_seed(seed);
    let finals = &ExecutionStatus::ALL[1..];
    let (mut events, mut later) = (Vec::new(), Vec::new());
    for exec in 0..attempts {
        let job = ["a", "b"][rng.usize(..2)];
        let at = exec as i64 * 10;
        if !(lose_starts && rng.u8(0..10) == 0) {
            events.push(start(job, exec, 1, at, "i1"));
        }
        if rng.u8(0..5) != 0 {
            // An end follows its start at once or after up to 3 other starts.
            let st = finals[rng.usize(..finals.len())];
            let e = end_with(job, exec, 1, at, "i1", st, rng.i64(0..50));
            later.push((exec + rng.u128(0..4), ExecutionEvent::Finished(e)));
        }
        let (due, wait): (Vec<_>, Vec<_>) = later.into_iter().partition(|(d, _)| *d <= exec);
        events.extend(due.into_iter().map(|(_, e)| e));
        later = wait;
    }
    events.extend(later.into_iter().map(|(_, e)| e));
    let mut rest = &events[..];
    while !rest.is_empty() {
        let n = rng.usize(1..=rest.len().min(max_write));
        let (batch, tail) = rest.split_at(n);
        for st in [s, &model as &dyn ExecutionStore] {
            st.write(batch).await.unwrap();
            if rng.u8(0..6) == 0 {
                st.write(batch).await.unwrap(); // a retry after an unknown outcome
            }
        }
        rest = tail;
    }
    for j in ["a", "b"] {
        let hq = HistoryQuery::new(j, 10_000);
        assert_eq!(s.history(&hq).await.unwrap(), model.history(&hq).await.unwrap(), "job {j}");
    }
}

/// A large write that failed after some of its rows were written (as when
/// a store writes a batch in parts that commit apart), then retried whole,
/// leaves what the write alone leaves. Each attempt's start is in an
/// earlier write, so the retried ends update rows.
pub(crate) async fn a_partly_written_write_retried_matches_the_memory_store(
    s: &dyn ExecutionStore,
) {
    let model = MemoryStore::unbounded();
    let mut rng = fastrand::Rng::with_seed(0x9a27);
    let finals = &ExecutionStatus::ALL[1..];
    let starts: Vec<ExecutionEvent> =
        (0..600u128).map(|e| start("p", e, 1, e as i64, "i1")).collect();
    let mut batch: Vec<ExecutionEvent> = (0..600u128)
        .map(|e| {
            let st = finals[rng.usize(..finals.len())];
            ExecutionEvent::Finished(end_with("p", e, 1, e as i64, "i1", st, rng.i64(0..50)))
        })
        .collect();
    batch.extend((600..1200u128).flat_map(|e| {
        let st = finals[rng.usize(..finals.len())];
        let end = end_with("p", e, 1, e as i64, "i1", st, 7);
        [start("p", e, 1, e as i64, "i1"), ExecutionEvent::Finished(end)]
    }));
    for st in [s, &model as &dyn ExecutionStore] {
        st.write(&starts).await.unwrap();
    }
    // The part that got in: a random half of the batch, in batch order.
    let part: Vec<ExecutionEvent> = batch.iter().filter(|_| rng.bool()).cloned().collect();
    s.write(&part).await.unwrap();
    s.write(&batch).await.unwrap();
    model.write(&batch).await.unwrap();
    let hq = HistoryQuery::new("p", 10_000);
    assert_eq!(by_key(s.history(&hq).await.unwrap()), by_key(model.history(&hq).await.unwrap()));
}

/// Random batches of random events, checked against the memory store.
pub(crate) async fn matches_the_memory_store(s: &dyn ExecutionStore) {
    // Unbounded: the model keeps every row, as a database does.
    let model = MemoryStore::unbounded();
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let jobs = ["a", "b", "c", "d"];
    let instances = ["i1", "i2", "i3"];
    let finals = &ExecutionStatus::ALL[1..];
    let mut pending = Vec::new();
    for _ in 0..600 {
        let j = rng.usize(..jobs.len());
        let job = jobs[j];
        // An execution id belongs to one job (the store contract, as the
        // scheduler draws them): each job's runs are 15 of the 60 ids.
        let exec = rng.u128(0..15) * jobs.len() as u128 + j as u128;
        let attempt = rng.u32(0..3);
        let at = rng.i64(0..100_000);
        let inst = instances[rng.usize(..instances.len())];
        let ev = match rng.u8(0..10) {
            0..=4 => start(job, exec, attempt, at, inst),
            5..=7 => {
                let st = finals[rng.usize(..finals.len())];
                let mut e = end_with(job, exec, attempt, at, inst, st, rng.i64(0..5000));
                e.error_kind =
                    [None, Some(ErrorKind::Transient), Some(ErrorKind::Permanent)][rng.usize(..3)];
                ExecutionEvent::Finished(e)
            }
            _ => skip(job, exec, at, inst),
        };
        pending.push(ev);
        if rng.u8(0..8) == 0 {
            model.write(&pending).await.unwrap();
            s.write(&pending).await.unwrap();
            pending.clear();
        }
    }
    model.write(&pending).await.unwrap();
    s.write(&pending).await.unwrap();
    for j in jobs {
        assert_eq!(s.history(&q(j)).await.unwrap(), model.history(&q(j)).await.unwrap(), "job {j}");
        for st in ExecutionStatus::ALL {
            let hq = HistoryQuery::new(j, 7).with_status(st);
            assert_eq!(s.history(&hq).await.unwrap(), model.history(&hq).await.unwrap());
        }
    }
    let ids: Vec<String> = jobs.iter().map(|j| (*j).to_owned()).collect();
    assert_eq!(s.last_fires(&ids).await.unwrap(), model.last_fires(&ids).await.unwrap());
    let scheduled = model.last_scheduled_fires(&ids).await.unwrap();
    assert_eq!(s.last_scheduled_fires(&ids).await.unwrap(), scheduled);

    for st in [s, &model as &dyn ExecutionStore] {
        st.heartbeat("i2", t(90_000)).await.unwrap();
        st.heartbeat("i3", t(10_000)).await.unwrap();
    }
    let a = by_key(s.mark_abandoned("i1", t(100_000), Duration::from_secs(30)).await.unwrap());
    let b = by_key(model.mark_abandoned("i1", t(100_000), Duration::from_secs(30)).await.unwrap());
    assert_eq!(a, b);
    assert!(!a.is_empty());

    let p = PrunePolicy { older_than: t(60_000), failures_older_than: Some(t(30_000)) };
    assert_eq!(s.prune(p).await.unwrap(), model.prune(p).await.unwrap());
    assert_eq!(by_key(all_of(s, &jobs).await), by_key(all_of(&model, &jobs).await));
}
