//! The conformance cases of execution records, for every store: writes
//! and their idempotence, attempt ends and error kinds, history reads
//! (order, limits, status filters, paging), last fires (of any kind, and
//! of the schedule alone), abandoned runs, pruning, verbatim text and
//! JSON, big batches, concurrent writers and claims. The cases checked
//! against the engine's `MemoryStore` are in `model.rs`.

use std::collections::HashMap;
use std::time::Duration;

use mscribe_scheduler::{
    AttemptEnd, ErrorKind, ExecutionEvent, ExecutionRecord, ExecutionStatus, ExecutionStore,
    FireClaim, FireKind, HistoryPosition, HistoryQuery, PrunePolicy,
};

use crate::common::*;

pub(crate) fn q(job: &str) -> HistoryQuery {
    HistoryQuery::new(job, 1000)
}

pub(crate) fn by_key(mut v: Vec<ExecutionRecord>) -> Vec<ExecutionRecord> {
    v.sort_by_key(|r| (r.execution_id, r.attempt));
    v
}

pub(crate) async fn empty_store_reads_nothing(s: &dyn ExecutionStore) {
    assert!(s.history(&q("nope")).await.unwrap().is_empty());
    assert_eq!(s.last_fire("nope").await.unwrap(), None);
    assert!(s.last_fires(&["nope".to_owned()]).await.unwrap().is_empty());
    assert!(s.mark_abandoned("me", t(0), Duration::from_secs(60)).await.unwrap().is_empty());
    assert_eq!(
        s.prune(PrunePolicy { older_than: t(1_000_000), failures_older_than: None }).await.unwrap(),
        0
    );
    s.write(&[]).await.unwrap();
}

pub(crate) async fn start_then_finish_round_trips(s: &dyn ExecutionStore) {
    let st = start("backup", 1, 1, 1000, "i1");
    s.write(std::slice::from_ref(&st)).await.unwrap();
    let ExecutionEvent::Started(a) = &st else { unreachable!() };
    assert_eq!(s.history(&q("backup")).await.unwrap(), vec![ExecutionRecord::from_start(a)]);

    let e = end_with("backup", 1, 1, 1000, "i1", ExecutionStatus::Failed, 1234);
    s.record_end(e.clone()).await.unwrap();
    let mut want = ExecutionRecord::from_start(a);
    want.apply_end(&e);
    let got = s.history(&q("backup")).await.unwrap();
    assert_eq!(got, vec![want.clone()]);
    assert_eq!(got[0].status, ExecutionStatus::Failed);
    assert_eq!(got[0].duration_ms, Some(1234));
    assert_eq!(got[0].completed_at, Some(t(1000 + 1234)));
    assert_eq!(got[0].error.as_deref(), Some("failed at attempt 1"));
    assert_eq!(got[0].metrics.as_ref().unwrap()["rows"], 12.5);
}

pub(crate) async fn writes_are_idempotent(s: &dyn ExecutionStore) {
    let batch = vec![
        start("j", 1, 1, 100, "i1"),
        start("j", 1, 1, 100, "i1"),
        skip("j", 2, 200, "i1"),
        end("j", 1, 1, 100, ExecutionStatus::Succeeded),
        skip("j", 2, 200, "i1"),
    ];
    s.write(&batch).await.unwrap();
    let once = s.history(&q("j")).await.unwrap();
    assert_eq!(once.len(), 2);
    // The whole batch again, as the engine does after an unknown outcome.
    s.write(&batch).await.unwrap();
    s.write(&batch[3..4]).await.unwrap();
    assert_eq!(s.history(&q("j")).await.unwrap(), once);
}

pub(crate) async fn start_after_finish_keeps_the_end(s: &dyn ExecutionStore) {
    s.write(&[start("j", 1, 1, 100, "i1"), end("j", 1, 1, 100, ExecutionStatus::TimedOut)])
        .await
        .unwrap();
    s.write(&[start("j", 1, 1, 100, "i1")]).await.unwrap();
    let got = s.history(&q("j")).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, ExecutionStatus::TimedOut);
}

pub(crate) async fn finish_without_start_stores_the_whole_row(s: &dyn ExecutionStore) {
    let e = end_with("j", 9, 2, 500, "i7", ExecutionStatus::Cancelled, 40);
    s.record_end(e.clone()).await.unwrap();
    assert_eq!(s.history(&q("j")).await.unwrap(), vec![ExecutionRecord::from_end(&e)]);
    // A later start of the same attempt changes nothing.
    s.write(&[start("j", 9, 2, 999, "other")]).await.unwrap();
    assert_eq!(s.history(&q("j")).await.unwrap(), vec![ExecutionRecord::from_end(&e)]);
}

pub(crate) async fn last_end_wins(s: &dyn ExecutionStore) {
    s.write(&[
        start("j", 1, 1, 100, "i1"),
        end("j", 1, 1, 100, ExecutionStatus::Failed),
        end("j", 1, 1, 100, ExecutionStatus::Succeeded),
    ])
    .await
    .unwrap();
    let got = s.history(&q("j")).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, ExecutionStatus::Succeeded);
    assert_eq!(got[0].error, None);
}

/// `end_with` carrying an error kind.
fn end_kind(
    exec: u128,
    attempt: u32,
    at: i64,
    status: ExecutionStatus,
    kind: Option<ErrorKind>,
) -> AttemptEnd {
    AttemptEnd { error_kind: kind, ..end_with("j", exec, attempt, at, "i1", status, 30) }
}

fn kinds(rows: &[ExecutionRecord]) -> Vec<(u32, Option<ErrorKind>)> {
    let mut v: Vec<_> = rows.iter().map(|r| (r.attempt, r.error_kind)).collect();
    v.sort_by_key(|(a, _)| *a);
    v
}

pub(crate) async fn error_kind_round_trips(s: &dyn ExecutionStore) {
    let ends = [
        end_kind(1, 1, 100, ExecutionStatus::Failed, Some(ErrorKind::Permanent)),
        end_kind(1, 2, 200, ExecutionStatus::Failed, Some(ErrorKind::Transient)),
        end_kind(1, 3, 300, ExecutionStatus::RetriesExhausted, Some(ErrorKind::Transient)),
        end_kind(1, 4, 400, ExecutionStatus::Succeeded, None),
    ];
    // The first alone, the others in one batch with a start and a skip.
    s.record_end(ends[0].clone()).await.unwrap();
    let mut batch: Vec<_> = ends[1..].iter().cloned().map(ExecutionEvent::Finished).collect();
    batch.push(start("j", 2, 1, 500, "i1"));
    batch.push(skip("j", 3, 600, "i1"));
    s.write(&batch).await.unwrap();

    let got = s.history(&q("j")).await.unwrap();
    let want: Vec<ExecutionRecord> = ends.iter().rev().map(ExecutionRecord::from_end).collect();
    assert_eq!(got[2..], want[..]);
    assert_eq!(
        kinds(&got[2..]),
        [
            (1, Some(ErrorKind::Permanent)),
            (2, Some(ErrorKind::Transient)),
            (3, Some(ErrorKind::Transient)),
            (4, None),
        ]
    );
    // The running row and the skipped fire carry no kind.
    assert_eq!(got[0].status, ExecutionStatus::Skipped);
    assert_eq!(got[1].status, ExecutionStatus::Running);
    assert_eq!((got[0].error_kind, got[1].error_kind), (None, None));
    // Filtered reads decode it too.
    let failed = s.history(&q("j").with_status(ExecutionStatus::Failed)).await.unwrap();
    assert_eq!(kinds(&failed), [(1, Some(ErrorKind::Permanent)), (2, Some(ErrorKind::Transient))]);
}

pub(crate) async fn an_end_over_a_started_row_sets_its_error_kind(s: &dyn ExecutionStore) {
    // Start stored first, end in a later write.
    s.write(&[start("j", 1, 1, 100, "i1")]).await.unwrap();
    assert_eq!(s.history(&q("j")).await.unwrap()[0].error_kind, None);
    let permanent = end_kind(1, 1, 100, ExecutionStatus::Failed, Some(ErrorKind::Permanent));
    s.record_end(permanent.clone()).await.unwrap();
    assert_eq!(s.history(&q("j")).await.unwrap(), vec![ExecutionRecord::from_end(&permanent)]);

    // Start and end in one batch.
    let transient = end_kind(2, 1, 200, ExecutionStatus::Failed, Some(ErrorKind::Transient));
    s.write(&[start("j", 2, 1, 200, "i1"), ExecutionEvent::Finished(transient)]).await.unwrap();

    // Two ends of one attempt in one batch: the last one's kind.
    s.write(&[
        start("j", 3, 1, 300, "i1"),
        ExecutionEvent::Finished(end_kind(3, 1, 300, ExecutionStatus::Failed, None)),
        ExecutionEvent::Finished(end_kind(
            3,
            1,
            300,
            ExecutionStatus::Failed,
            Some(ErrorKind::Permanent),
        )),
    ])
    .await
    .unwrap();
    let by_exec = |rows: Vec<ExecutionRecord>| {
        by_key(rows).into_iter().map(|r| (r.execution_id, r.error_kind)).collect::<Vec<_>>()
    };
    let mut want = vec![
        (eid(1), Some(ErrorKind::Permanent)),
        (eid(2), Some(ErrorKind::Transient)),
        (eid(3), Some(ErrorKind::Permanent)),
    ];
    want.sort_by_key(|(id, _)| *id);
    assert_eq!(by_exec(s.history(&q("j")).await.unwrap()), want);

    // A later end without a kind clears it (the end fields are replaced
    // whole), and a repeated start changes nothing.
    let success = end_kind(1, 1, 100, ExecutionStatus::Succeeded, None);
    s.write(&[ExecutionEvent::Finished(success.clone()), start("j", 1, 1, 100, "i1")])
        .await
        .unwrap();
    let got = s.history(&q("j").with_status(ExecutionStatus::Succeeded)).await.unwrap();
    assert_eq!(got, vec![ExecutionRecord::from_end(&success)]);
    assert_eq!(got[0].error_kind, None);
}

pub(crate) async fn history_is_newest_first_with_limit(s: &dyn ExecutionStore) {
    let mut events = Vec::new();
    for i in 0..10u128 {
        events.push(start("j", i, 1, (i as i64) * 1000, "i1"));
    }
    // Same start time: the higher attempt first.
    events.push(start("j", 100, 1, 20_000, "i1"));
    events.push(start("j", 100, 2, 20_000, "i1"));
    events.push(start("other", 50, 1, 99_000, "i1"));
    s.write(&events).await.unwrap();

    let got = s.history(&HistoryQuery::new("j", 4)).await.unwrap();
    let keys: Vec<(u32, i64)> = got
        .iter()
        .map(|r| (r.attempt, r.started_at.timestamp_millis() - t(0).timestamp_millis()))
        .collect();
    assert_eq!(keys, vec![(2, 20_000), (1, 20_000), (1, 9000), (1, 8000)]);
    assert_eq!(s.history(&HistoryQuery::new("j", 0)).await.unwrap(), vec![]);
    assert_eq!(s.history(&q("j")).await.unwrap().len(), 12);
    assert_eq!(s.history(&HistoryQuery::new("j", usize::MAX)).await.unwrap().len(), 12);
}

pub(crate) async fn history_ties_break_on_execution_id(s: &dyn ExecutionStore) {
    let mut events: Vec<ExecutionEvent> =
        (1..=20u128).map(|i| start("j", i, 1, 500, "i1")).collect();
    fastrand::Rng::with_seed(3).shuffle(&mut events);
    s.write(&events).await.unwrap();
    let got = s.history(&q("j")).await.unwrap();
    let ids: Vec<_> = got.iter().map(|r| r.execution_id).collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted);
}

/// Every page of `query` (whose `before` is where the first starts),
/// each read with the position of the last row of the one before.
async fn pages(s: &dyn ExecutionStore, query: HistoryQuery) -> Vec<Vec<ExecutionRecord>> {
    let mut out: Vec<Vec<ExecutionRecord>> = Vec::new();
    let mut q = query;
    loop {
        let page = s.history(&q).await.unwrap();
        assert!(page.len() <= q.limit);
        let Some(last) = page.last() else { break };
        q = q.clone().before(HistoryPosition::of(last));
        out.push(page);
    }
    out
}

/// Groups of rows that share a `started_at` (attempts and runs of the
/// same instant), paged with every page size: the pages, put together,
/// are the history, each row once and in order, the page boundaries
/// falling inside the groups. A position is a place in the order, not a
/// row: one of another job's row, or one between two rows, pages as
/// well; rows written after a page was read (newer) do not shift the
/// next.
pub(crate) async fn history_pages_across_equal_start_times(s: &dyn ExecutionStore) {
    let mut events = Vec::new();
    let mut n = 0u128;
    for (at, runs, attempts) in [(500, 4, 1), (400, 3, 3), (300, 1, 1), (200, 5, 2)] {
        for _ in 0..runs {
            n += 1;
            for a in 1..=attempts {
                events.push(start("j", n, a, at, "i1"));
            }
        }
        events.push(start("other", 1000 + n, 1, at, "i1"));
    }
    events.push(skip("j", 2000, 300, "i1"));
    fastrand::Rng::with_seed(11).shuffle(&mut events);
    s.write(&events).await.unwrap();
    let all = s.history(&q("j")).await.unwrap();
    assert_eq!(all.len(), 4 + 9 + 2 + 10);
    let positions: Vec<HistoryPosition> = all.iter().map(HistoryPosition::of).collect();
    assert!(positions.windows(2).all(|w| w[0] > w[1]), "newest first, no two alike");

    for limit in 1..=all.len() + 1 {
        let got = pages(s, HistoryQuery::new("j", limit)).await;
        assert_eq!(got.len(), all.len().div_ceil(limit), "limit {limit}");
        assert_eq!(got.concat(), all, "limit {limit}");
    }
    // Every row's position: exactly the rows after it.
    for (i, p) in positions.iter().enumerate() {
        let after = s.history(&HistoryQuery::new("j", 1000).before(*p)).await.unwrap();
        assert_eq!(after, all[i + 1..], "after row {i}");
        let two = s.history(&HistoryQuery::new("j", 2).before(*p)).await.unwrap();
        assert_eq!(two, all[i + 1..(i + 3).min(all.len())], "two after row {i}");
    }
    // A position of another job's row, between this job's rows.
    let other = s.history(&q("other")).await.unwrap();
    let p = HistoryPosition::of(&other[1]);
    let after = s.history(&q("j").before(p)).await.unwrap();
    let want: Vec<_> = all.iter().filter(|r| HistoryPosition::of(r) < p).cloned().collect();
    assert_eq!(after, want);
    assert!(!want.is_empty() && want.len() < all.len());
    // Between two rows of one instant: a finer time, a higher attempt.
    let at_400 = |r: &&ExecutionRecord| r.started_at == t(400);
    let p =
        HistoryPosition { started_at: t(400) + chrono::Duration::nanoseconds(1), ..positions[0] };
    let got = s.history(&q("j").before(p)).await.unwrap();
    assert_eq!(got, all[4..], "every row of t(400) and older");
    assert_eq!(got.iter().filter(at_400).count(), 9);
    let p = HistoryPosition { started_at: t(400), attempt: u32::MAX, ..positions[0] };
    assert_eq!(s.history(&q("j").before(p)).await.unwrap(), all[4..]);
    let p = HistoryPosition { started_at: t(400), attempt: 2, ..positions[4] };
    let got = s.history(&q("j").before(p)).await.unwrap();
    let want: Vec<_> = all.iter().filter(|r| HistoryPosition::of(r) < p).cloned().collect();
    assert_eq!(got, want);
    assert!(got[0].started_at == t(400) && got[0].attempt <= 2);
    // The ends of time.
    let first = positions[0];
    let max = HistoryPosition { started_at: chrono::DateTime::<chrono::Utc>::MAX_UTC, ..first };
    assert_eq!(s.history(&q("j").before(max)).await.unwrap(), all);
    let min = HistoryPosition { started_at: chrono::DateTime::<chrono::Utc>::MIN_UTC, ..first };
    assert!(s.history(&q("j").before(min)).await.unwrap().is_empty());
    // Past the last row: nothing.
    let last = *positions.last().unwrap();
    assert!(s.history(&q("j").before(last)).await.unwrap().is_empty());

    // A page read, then newer rows and a row of the same instant as the
    // page's last but before it in the order: the next page is where it
    // was.
    let page = s.history(&HistoryQuery::new("j", 6)).await.unwrap();
    let p = HistoryPosition::of(page.last().unwrap());
    let same_ms = (p.started_at - t(0)).num_milliseconds();
    s.write(&[start("j", 3000, 1, 900, "i1"), start("j", 3001, 9, same_ms, "i1")]).await.unwrap();
    let next = s.history(&HistoryQuery::new("j", 6).before(p)).await.unwrap();
    assert_eq!(next, all[6..12]);
}

/// Paging with a status filter: only that status's rows, across equal
/// start times, each once; a position taken from a row of another
/// status pages as well.
pub(crate) async fn history_pages_with_a_status_filter(s: &dyn ExecutionStore) {
    let statuses = [
        ExecutionStatus::Failed,
        ExecutionStatus::Succeeded,
        ExecutionStatus::TimedOut,
        ExecutionStatus::Failed,
    ];
    let mut events = Vec::new();
    let mut n = 0u128;
    for at in [100, 200, 200, 200, 300, 300, 400, 500, 500, 500, 500] {
        n += 1;
        for a in 1..=2u32 {
            let st = statuses[(n as usize + a as usize) % statuses.len()];
            events.push(start("j", n, a, at, "i1"));
            events.push(end("j", n, a, at, st));
        }
    }
    events.push(start("j", 99, 1, 500, "i1"));
    s.write(&events).await.unwrap();
    let all = s.history(&q("j")).await.unwrap();
    for status in [ExecutionStatus::Failed, ExecutionStatus::Succeeded, ExecutionStatus::Running] {
        let want: Vec<_> = all.iter().filter(|r| r.status == status).cloned().collect();
        assert_eq!(s.history(&q("j").with_status(status)).await.unwrap(), want);
        for limit in [1, 2, 3, 5] {
            let got = pages(s, HistoryQuery::new("j", limit).with_status(status)).await;
            assert_eq!(got.concat(), want, "{status}, limit {limit}");
            assert!(got.iter().all(|p| !p.is_empty() && p.len() <= limit));
        }
        // From each row of any status: the rows of `status` after it.
        for (i, r) in all.iter().enumerate() {
            let p = HistoryPosition::of(r);
            let got = s.history(&HistoryQuery::new("j", 3).with_status(status).before(p)).await;
            let after: Vec<_> =
                all[i + 1..].iter().filter(|r| r.status == status).take(3).cloned().collect();
            assert_eq!(got.unwrap(), after, "{status} after row {i}");
        }
    }
    assert!(all.iter().filter(|r| r.status == ExecutionStatus::Failed).count() > 5);
}

pub(crate) async fn history_filters_by_status(s: &dyn ExecutionStore) {
    s.write(&[
        start("j", 1, 1, 100, "i1"),
        end("j", 1, 1, 100, ExecutionStatus::Failed),
        start("j", 1, 2, 400, "i1"),
        end("j", 1, 2, 400, ExecutionStatus::Succeeded),
        start("j", 2, 1, 900, "i1"),
        skip("j", 3, 1000, "i1"),
    ])
    .await
    .unwrap();
    for (status, n) in [
        (ExecutionStatus::Failed, 1),
        (ExecutionStatus::Succeeded, 1),
        (ExecutionStatus::Running, 1),
        (ExecutionStatus::Skipped, 1),
        (ExecutionStatus::Abandoned, 0),
    ] {
        let got = s.history(&q("j").with_status(status)).await.unwrap();
        assert_eq!(got.len(), n, "{status}");
        assert!(got.iter().all(|r| r.status == status));
    }
}

pub(crate) async fn job_ids_match_exactly(s: &dyn ExecutionStore) {
    let ids = ["a%", "a_", "ab", "A", "a", "a ", "a'b", "é"];
    let events: Vec<_> =
        ids.iter().enumerate().map(|(i, j)| start(j, i as u128, 1, 100, "i1")).collect();
    s.write(&events).await.unwrap();
    for j in ids {
        let got = s.history(&q(j)).await.unwrap();
        assert_eq!(got.len(), 1, "{j:?}");
        assert_eq!(got[0].job_id, j);
    }
}

pub(crate) async fn every_status_round_trips(s: &dyn ExecutionStore) {
    for (i, status) in ExecutionStatus::ALL.into_iter().enumerate() {
        let e = end_with("j", i as u128, 1, 100 * i as i64, "i1", status, 5);
        s.record_end(e).await.unwrap();
    }
    let got = s.history(&q("j")).await.unwrap();
    let mut statuses: Vec<_> = got.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(statuses, ExecutionStatus::ALL.to_vec());
}

pub(crate) async fn skipped_fires_are_rows(s: &dyn ExecutionStore) {
    let ev = skip("j", 4, 700, "i3");
    s.write(std::slice::from_ref(&ev)).await.unwrap();
    let ExecutionEvent::Skipped(sk) = &ev else { unreachable!() };
    assert_eq!(s.history(&q("j")).await.unwrap(), vec![ExecutionRecord::from_skip(sk)]);
    assert_eq!(s.last_fire("j").await.unwrap(), Some(t(695)));
}

pub(crate) async fn last_fire_is_the_latest_nominal_time(s: &dyn ExecutionStore) {
    s.write(&[
        start("a", 1, 1, 5000, "i1"),
        start("a", 2, 1, 3000, "i1"),
        skip("a", 3, 9000, "i1"),
        start("b", 4, 1, 100, "i1"),
    ])
    .await
    .unwrap();
    assert_eq!(s.last_fire("a").await.unwrap(), Some(t(8995)));
    assert_eq!(s.last_fire("b").await.unwrap(), Some(t(95)));
    assert_eq!(s.last_fire("c").await.unwrap(), None);
    let many = s.last_fires(&["a".into(), "b".into(), "c".into()]).await.unwrap();
    assert_eq!(many, HashMap::from([("a".to_owned(), t(8995)), ("b".to_owned(), t(95))]));
    assert!(s.last_fires(&[]).await.unwrap().is_empty());
}

/// `ev` as a fire of `kind`.
fn of_kind(mut ev: ExecutionEvent, kind: FireKind) -> ExecutionEvent {
    match &mut ev {
        ExecutionEvent::Started(s) => s.kind = kind,
        ExecutionEvent::Skipped(s) => s.kind = kind,
        ExecutionEvent::Finished(e) => e.kind = kind,
    }
    ev
}

pub(crate) async fn backfill_and_trigger_rows_do_not_move_the_last_scheduled_fire(
    s: &dyn ExecutionStore,
) {
    let (backfill, manual) = (FireKind::Backfill, FireKind::Manual);
    s.write(&[
        // a: scheduled fires (a skipped one the newest), then newer rows
        // of a backfill and a trigger, started and ended.
        start("a", 1, 1, 1000, "i1"),
        skip("a", 2, 2000, "i1"),
        of_kind(start("a", 3, 1, 9000, "i1"), backfill),
        of_kind(end("a", 3, 1, 9000, ExecutionStatus::Succeeded), backfill),
        of_kind(end("a", 4, 1, 7000, ExecutionStatus::Failed), manual),
        // b: a backfill and a trigger only.
        of_kind(skip("b", 5, 500, "i1"), backfill),
        of_kind(start("b", 6, 1, 600, "i1"), manual),
        // c: a backfill older than its scheduled fire.
        of_kind(start("c", 7, 1, 100, "i1"), backfill),
        start("c", 8, 1, 3000, "i1"),
    ])
    .await
    .unwrap();
    let ids: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    assert_eq!(
        s.last_scheduled_fires(&ids).await.unwrap(),
        HashMap::from([("a".to_owned(), t(1995)), ("c".to_owned(), t(2995))])
    );
    assert!(s.last_scheduled_fires(&[]).await.unwrap().is_empty());
    // The last fire of any kind is still what a job's last run shows.
    assert_eq!(s.last_fire("a").await.unwrap(), Some(t(8995)));
    assert_eq!(
        s.last_fires(&ids).await.unwrap(),
        HashMap::from([
            ("a".to_owned(), t(8995)),
            ("b".to_owned(), t(595)),
            ("c".to_owned(), t(2995)),
        ])
    );
}

pub(crate) async fn abandoned_runs_of_dead_instances(s: &dyn ExecutionStore) {
    let stale = Duration::from_secs(30);
    s.write(&[
        start("j", 1, 1, 1000, "me"),    // own instance: kept
        start("j", 2, 1, 1000, "alive"), // fresh heartbeat: kept
        start("j", 3, 1, 1000, "dead"),  // stale heartbeat: abandoned
        start("j", 4, 1, 2000, "never"), // no heartbeat at all: abandoned
        start("j", 5, 1, 1000, "dead"),
        end("j", 5, 1, 1000, ExecutionStatus::Succeeded), // finished: kept
        start("j", 6, 1, 1000, "edge"),                   // heartbeat exactly at the cutoff: kept
    ])
    .await
    .unwrap();
    let now = t(100_000);
    s.heartbeat("dead", t(10_000)).await.unwrap();
    s.heartbeat("alive", t(1_000)).await.unwrap();
    s.heartbeat("alive", t(95_000)).await.unwrap(); // a later beat replaces the first
    s.heartbeat("edge", t(70_000)).await.unwrap();
    s.heartbeat("me", t(0)).await.unwrap();

    let changed = by_key(s.mark_abandoned("me", now, stale).await.unwrap());
    assert_eq!(changed.len(), 2, "{changed:#?}");
    let mut want = Vec::new();
    for (exec, inst, started) in [(3u128, "dead", 1000), (4, "never", 2000)] {
        let ExecutionEvent::Started(a) = start("j", exec, 1, started, inst) else { unreachable!() };
        let mut r = ExecutionRecord::from_start(&a);
        r.status = ExecutionStatus::Abandoned;
        r.completed_at = Some(now);
        r.duration_ms = Some((100_000 - started) as u64);
        r.error = Some(format!("instance {inst} stopped while the attempt ran"));
        want.push(r);
    }
    assert_eq!(changed, by_key(want));
    // What it returned is what is stored.
    let stored: Vec<_> =
        by_key(s.history(&q("j").with_status(ExecutionStatus::Abandoned)).await.unwrap());
    assert_eq!(stored, changed);
    assert_eq!(s.history(&q("j").with_status(ExecutionStatus::Running)).await.unwrap().len(), 3);
    // A second sweep finds nothing.
    assert!(s.mark_abandoned("me", now, stale).await.unwrap().is_empty());
    // A late end of an abandoned attempt still lands (last write wins).
    s.write(&[end("j", 3, 1, 1000, ExecutionStatus::Succeeded)]).await.unwrap();
    let r = s.history(&q("j").with_status(ExecutionStatus::Succeeded)).await.unwrap();
    assert_eq!(r.len(), 2);
}

pub(crate) async fn abandon_own_takes_every_running_row_of_the_instance(s: &dyn ExecutionStore) {
    s.write(&[
        start("j", 1, 1, 1000, "me"),    // running, this id: abandoned
        start("k", 2, 1, 3000, "me"),    // another job: abandoned
        start("j", 3, 1, 1000, "other"), // another instance: kept
        start("j", 4, 1, 1000, "me"),
        end("j", 4, 1, 1000, ExecutionStatus::Succeeded), // finished: kept
    ])
    .await
    .unwrap();
    // Its heartbeat is fresh: it makes no difference.
    s.heartbeat("me", t(9_000)).await.unwrap();
    let now = t(10_000);
    let changed = by_key(s.abandon_own("me", now).await.unwrap());
    assert_eq!(changed.len(), 2, "{changed:#?}");
    for r in &changed {
        assert_eq!(r.status, ExecutionStatus::Abandoned);
        assert_eq!(r.completed_at, Some(now));
        assert_eq!(r.error.as_deref(), Some("instance me stopped while the attempt ran"));
    }
    let j = changed.iter().find(|r| r.job_id == "j").unwrap();
    assert_eq!(j.duration_ms, Some(9_000));
    let running = s.history(&q("j").with_status(ExecutionStatus::Running)).await.unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].instance_id, "other");
    assert!(s.abandon_own("me", now).await.unwrap().is_empty());
}

pub(crate) async fn abandoned_with_huge_staleness_only_takes_silent_instances(
    s: &dyn ExecutionStore,
) {
    s.write(&[start("j", 1, 1, 1000, "old"), start("j", 2, 1, 1000, "silent")]).await.unwrap();
    s.heartbeat("old", t(0)).await.unwrap();
    let century = Duration::from_secs(100 * 365 * 86_400);
    let changed = s.mark_abandoned("me", t(5000), century).await.unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].instance_id, "silent");
    // An attempt that "started" after now gets a zero duration.
    s.write(&[start("k", 3, 1, 9000, "silent")]).await.unwrap();
    let changed = s.mark_abandoned("me", t(5000), Duration::ZERO).await.unwrap();
    assert_eq!(changed.len(), 2, "{changed:#?}");
    let k = changed.iter().find(|r| r.job_id == "k").unwrap();
    assert_eq!(k.duration_ms, Some(0));
}

pub(crate) async fn attempts_of_one_run_first_first(s: &dyn ExecutionStore) {
    assert!(s.attempts("j", eid(1)).await.unwrap().is_empty());
    s.write(&[
        start("j", 1, 2, 3000, "i2"),
        start("j", 1, 1, 1000, "i1"),
        end("j", 1, 1, 2000, ExecutionStatus::Failed),
        start("j", 2, 1, 5000, "i1"),
        start("k", 3, 1, 1000, "i1"),
    ])
    .await
    .unwrap();
    let rows = s.attempts("j", eid(1)).await.unwrap();
    let got: Vec<(u32, ExecutionStatus, &str)> =
        rows.iter().map(|r| (r.attempt, r.status, r.instance_id.as_str())).collect();
    assert_eq!(got, [(1, ExecutionStatus::Failed, "i1"), (2, ExecutionStatus::Running, "i2")]);
    assert!(rows.iter().all(|r| r.job_id == "j" && r.execution_id == eid(1)));
    // Another job's run, or a run of another job, is not this one.
    assert!(s.attempts("k", eid(1)).await.unwrap().is_empty());
    assert_eq!(s.attempts("k", eid(3)).await.unwrap().len(), 1);
}

pub(crate) async fn instances_are_those_with_a_recent_heartbeat(s: &dyn ExecutionStore) {
    assert!(s.instances(t(0)).await.unwrap().is_empty());
    s.heartbeat("b", t(1_000)).await.unwrap();
    s.heartbeat("old", t(500)).await.unwrap();
    s.heartbeat("a", t(2_000)).await.unwrap();
    s.heartbeat("b", t(2_000)).await.unwrap(); // a later beat replaces the first
    let seen = s.instances(t(1_000)).await.unwrap();
    let ids: Vec<(&str, chrono::DateTime<chrono::Utc>)> =
        seen.iter().map(|i| (i.instance_id.as_str(), i.heartbeat_at)).collect();
    // The latest first, ties by id; `old` is before the bound.
    assert_eq!(ids, [("a", t(2_000)), ("b", t(2_000))]);
    // The SQL stores keep the first beat as the start; the reference none.
    let b = &seen[1];
    assert!(b.started_at.is_none_or(|s| s == t(1_000)), "{b:?}");
    assert_eq!(s.instances(t(500)).await.unwrap().len(), 3);
    assert!(s.instances(t(2_001)).await.unwrap().is_empty());
}

pub(crate) async fn prune_keeps_running_rows_and_failures_longer(s: &dyn ExecutionStore) {
    s.write(&[
        start("j", 1, 1, 1000, "i1"),
        end("j", 1, 1, 1000, ExecutionStatus::Succeeded), // old success: pruned
        start("j", 2, 1, 1000, "i1"),
        end("j", 2, 1, 1000, ExecutionStatus::Failed), // old failure, within failure retention: kept
        start("j", 3, 1, 100, "i1"),
        end("j", 3, 1, 100, ExecutionStatus::RetriesExhausted), // older than failure retention: pruned
        start("j", 4, 1, 500, "i1"),                            // running: kept however old
        skip("j", 5, 1000, "i1"),                               // old skip: pruned
        start("j", 6, 1, 5000, "i1"),
        end("j", 6, 1, 5000, ExecutionStatus::Cancelled), // exactly at the cutoff: kept
        start("j", 7, 1, 9000, "i1"),
        end("j", 7, 1, 9000, ExecutionStatus::Succeeded), // recent: kept
    ])
    .await
    .unwrap();
    let n = s
        .prune(PrunePolicy { older_than: t(5000), failures_older_than: Some(t(500)) })
        .await
        .unwrap();
    assert_eq!(n, 3);
    let mut left: Vec<_> =
        s.history(&q("j")).await.unwrap().iter().map(|r| r.execution_id).collect();
    left.sort();
    let mut want = vec![eid(2), eid(4), eid(6), eid(7)];
    want.sort();
    assert_eq!(left, want);

    // Without a failure policy, failures go like the rest.
    let n = s.prune(PrunePolicy { older_than: t(5000), failures_older_than: None }).await.unwrap();
    assert_eq!(n, 1);
    // Extreme cutoffs are accepted.
    let n = s
        .prune(PrunePolicy {
            older_than: chrono::DateTime::<chrono::Utc>::MAX_UTC,
            failures_older_than: Some(chrono::DateTime::<chrono::Utc>::MIN_UTC),
        })
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(s.history(&q("j")).await.unwrap().len(), 1);
}

pub(crate) async fn text_and_json_are_stored_verbatim(s: &dyn ExecutionStore) {
    let nasty = "it's \"quoted\"; DROP TABLE scheduled_job_executions; -- \\ \n\t日本語 🦀 %_";
    let ExecutionEvent::Finished(mut e) = end("job ' \" ; --", 1, 1, 100, ExecutionStatus::Failed)
    else {
        unreachable!()
    };
    e.error = Some(nasty.to_owned());
    e.instance_id = format!("host-{nasty}").into();
    e.result = Some(serde_json::json!({
        "nested": {"list": [1, 2.5, -3, null, true, "x"], "empty": {}},
        "big": u64::MAX,
        "neg": i64::MIN,
        "text": nasty,
        "float": 0.1,
    }));
    e.metrics = Some(
        [("p95 ms".to_owned(), 0.001), ("count".to_owned(), 1e12), ("neg".to_owned(), -2.0)].into(),
    );
    s.record_end(e.clone()).await.unwrap();
    assert_eq!(s.history(&q("job ' \" ; --")).await.unwrap(), vec![ExecutionRecord::from_end(&e)]);

    // Null-ish values.
    let ExecutionEvent::Finished(mut e2) = end("k", 2, 1, 100, ExecutionStatus::Succeeded) else {
        unreachable!()
    };
    e2.error = Some(String::new());
    e2.result = Some(serde_json::Value::Null);
    e2.metrics = Some(Default::default());
    s.record_end(e2.clone()).await.unwrap();
    let got = s.history(&q("k")).await.unwrap();
    assert_eq!(got[0].error.as_deref(), Some(""));
    assert_eq!(got[0].metrics, Some(Default::default()));
    // JSON null may read back as SQL NULL: both mean "no data".
    assert!(matches!(got[0].result, None | Some(serde_json::Value::Null)));
}

pub(crate) async fn big_batches(s: &dyn ExecutionStore) {
    let mut events = Vec::new();
    for i in 0..2500u128 {
        events.push(start("bulk", i, 1, i as i64, "i1"));
        if i % 2 == 0 {
            events.push(end("bulk", i, 1, i as i64, ExecutionStatus::Succeeded));
        }
    }
    s.write(&events).await.unwrap();
    let got = s.history(&HistoryQuery::new("bulk", 10_000)).await.unwrap();
    assert_eq!(got.len(), 2500);
    assert_eq!(got.iter().filter(|r| r.status == ExecutionStatus::Succeeded).count(), 1250);
}

pub(crate) async fn concurrent_writers(s: std::sync::Arc<dyn ExecutionStore>) {
    let mut tasks = Vec::new();
    for w in 0..16u128 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25u128 {
                let id = w * 1000 + i;
                s.write(&[start("c", id, 1, id as i64, "i1")]).await.unwrap();
                s.write(&[end("c", id, 1, id as i64, ExecutionStatus::Succeeded)]).await.unwrap();
                let _ = s.history(&HistoryQuery::new("c", 5)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let got = s.history(&q("c")).await.unwrap();
    assert_eq!(got.len(), 400);
    assert!(got.iter().all(|r| r.status == ExecutionStatus::Succeeded));
}

/// Each fire is taken once, by the first claim; within a batch, by its
/// first listing. Prune forgets the claims of fires before its cutoff.
pub(crate) async fn claims_take_each_fire_once(s: &dyn ExecutionStore) {
    assert!(s.supports_claims());
    let now = t(10_000);
    let claim = |who: &'static str, fires: Vec<FireClaim>| async move {
        won(&s.claim_fires(who, &fires, now, LEASE).await.unwrap())
    };
    let first = vec![fire("a", 1000), fire("b", 1000), fire("a", 2000), fire("a", 1000)];
    assert_eq!(claim("i1", first).await, [true, true, true, false]);
    let again = vec![fire("a", 1000), fire("a", 3000), fire("b", 2000)];
    assert_eq!(claim("i2", again).await, [false, true, true]);
    assert_eq!(claim("i1", vec![fire("a", 3000)]).await, [false]);
    assert!(claim("i1", vec![]).await.is_empty());
    s.prune(PrunePolicy { older_than: t(2000), failures_older_than: None }).await.unwrap();
    let after = vec![fire("a", 1000), fire("b", 1000), fire("a", 2000)];
    assert_eq!(claim("i2", after).await, [true, true, false]);
}

/// Many tasks claim the same fires at once: each fire is won once.
pub(crate) async fn concurrent_claims(s: std::sync::Arc<dyn ExecutionStore>) {
    claims_race(s.clone(), s).await;
}
