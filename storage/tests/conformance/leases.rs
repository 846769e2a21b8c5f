//! The conformance cases of fire leases, for every store: claims with a
//! lease, `max_running`, renewals, expired leases, take-overs, the fence
//! check of `write`, `recorded_fires`, and the fire kind and fence of rows.
//! The engine's `MemoryStore` is the reference (see its `leases.rs`);
//! `leases_match_the_memory_store` replays random operations on both.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mscribe_scheduler::{
    AttemptEnd, AttemptStart, ClaimOutcome, ExecutionEvent, ExecutionId, ExecutionRecord,
    ExecutionStatus, ExecutionStore, ExpiredLease, FireClaim, FireKind, FireLease, HistoryQuery,
    MemoryStore, PrunePolicy, RetakenFire, SkippedFire, StoreError, abandoned_for_retake,
};

use crate::common::*;

const SECS: i64 = 1000;

fn claim(job: &str, at: i64, exec: u128, max_running: Option<u32>) -> FireClaim {
    FireClaim {
        job_id: Arc::from(job),
        scheduled_at: t(at),
        execution_id: eid(exec),
        max_running,
        kind: FireKind::Schedule,
    }
}

fn lease_of(job: &str, at: i64, fence: u64) -> FireLease {
    FireLease { job_id: Arc::from(job), scheduled_at: t(at), fence }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A start of `attempt` of the run `exec` of `job`'s fire at `t(at)`,
/// started at `t(started)`, carrying `fence`.
fn fenced_start(
    job: &str,
    exec: u128,
    attempt: u32,
    at: i64,
    started: i64,
    instance: &str,
    fence: Option<u64>,
) -> AttemptStart {
    AttemptStart {
        job_id: job.into(),
        execution_id: eid(exec),
        attempt,
        scheduled_at: t(at),
        started_at: t(started),
        instance_id: instance.into(),
        kind: FireKind::Schedule,
        fence,
    }
}

/// The end of [`fenced_start`], `ran` ms later; `ends_run` says whether a
/// retry follows.
fn fenced_end(
    s: &AttemptStart,
    status: ExecutionStatus,
    ran: i64,
    ends_run: bool,
) -> ExecutionEvent {
    ExecutionEvent::Finished(AttemptEnd {
        job_id: s.job_id.clone(),
        execution_id: s.execution_id,
        attempt: s.attempt,
        scheduled_at: s.scheduled_at,
        started_at: s.started_at,
        instance_id: s.instance_id.clone(),
        status,
        completed_at: s.started_at + chrono::Duration::milliseconds(ran),
        duration: Duration::from_millis(ran as u64),
        error: (status != ExecutionStatus::Succeeded).then(|| format!("{status}")),
        error_kind: None,
        result: None,
        metrics: None,
        kind: s.kind,
        fence: s.fence,
        ends_run,
    })
}

fn fenced_skip(job: &str, exec: u128, at: i64, instance: &str, fence: Option<u64>) -> SkippedFire {
    SkippedFire {
        job_id: job.into(),
        execution_id: eid(exec),
        scheduled_at: t(at),
        decided_at: t(at),
        reason: "cluster overlap".to_owned(),
        instance_id: instance.into(),
        kind: FireKind::Schedule,
        fence,
    }
}

fn started(s: &AttemptStart) -> ExecutionEvent {
    ExecutionEvent::Started(s.clone())
}

async fn rows(s: &dyn ExecutionStore, job: &str) -> Vec<ExecutionRecord> {
    let mut rows = s.history(&HistoryQuery::new(job, 1000)).await.unwrap();
    rows.sort_by_key(|r| (r.scheduled_at, r.execution_id, r.attempt));
    rows
}

/// The keys `(job, scheduled_at)` of the leases expired at `t(now)`.
async fn expired_keys(s: &dyn ExecutionStore, now: i64) -> Vec<(String, DateTime<Utc>)> {
    let got = s.expired_leases(t(now), 100).await.unwrap();
    got.into_iter().map(|e| (e.job_id, e.scheduled_at)).collect()
}

/// A claim holds a lease with fence 1 and the claimer's execution id; the
/// fire is taken by the first claim, of any instance, or the first listing
/// within a batch. An expired lease tells what made its fire.
pub(crate) async fn claims_hold_leases_with_fence_one(s: &dyn ExecutionStore) {
    let now = 100 * SECS;
    let trigger = FireClaim { kind: FireKind::Manual, ..claim("k", 0, 2, None) };
    let got = s
        .claim_fires(
            "a",
            &[claim("j", 0, 1, None), trigger, claim("j", 0, 3, None)],
            t(now),
            secs(10),
        )
        .await
        .unwrap();
    let won = ClaimOutcome::Won { fence: 1 };
    assert_eq!(got, [won, won, ClaimOutcome::Taken]);
    let got = s.claim_fires("b", &[claim("j", 0, 4, None)], t(now), secs(10)).await.unwrap();
    assert_eq!(got, [ClaimOutcome::Taken]);
    assert!(s.expired_leases(t(now + 10 * SECS - 1), 10).await.unwrap().is_empty());
    // The lease runs out at now + 10 s exactly, and the first claim's id
    // and owner are kept.
    let expired = s.expired_leases(t(now + 10 * SECS), 10).await.unwrap();
    let want = |job: &str, exec, kind| ExpiredLease {
        job_id: job.to_owned(),
        scheduled_at: t(0),
        execution_id: eid(exec),
        fence: 1,
        owner: "a".to_owned(),
        expired_at: t(now + 10 * SECS),
        kind,
    };
    assert_eq!(expired, [want("j", 1, FireKind::Schedule), want("k", 2, FireKind::Manual)]);
    assert!(s.claim_fires("a", &[], t(now), secs(10)).await.unwrap().is_empty());
}

/// `max_running` counts the job's fires whose leases are live (not ended,
/// not expired), the batch's earlier fires included; a busy fire is the
/// claimer's to record skipped, and its claim holds no lease.
pub(crate) async fn max_running_counts_live_leases(s: &dyn ExecutionStore) {
    let lim = Some(2);
    let now = 100 * SECS;
    let got = s
        .claim_fires(
            "a",
            &[claim("j", 0, 1, lim), claim("j", 0, 9, lim), claim("j", 1, 2, lim)],
            t(now),
            secs(10),
        )
        .await
        .unwrap();
    let won = ClaimOutcome::Won { fence: 1 };
    assert_eq!(got, [won, ClaimOutcome::Taken, won]);
    // Two live leases: the next fire is busy, on any instance; another job
    // is not counted, nor a fire without a limit.
    let got = s
        .claim_fires(
            "b",
            &[claim("j", 2, 3, lim), claim("k", 2, 4, lim), claim("j", 3, 5, None)],
            t(now + SECS),
            secs(10),
        )
        .await
        .unwrap();
    assert_eq!(got, [ClaimOutcome::Busy { fence: 1, running: 2 }, won, won]);
    let got = s.claim_fires("b", &[claim("j", 4, 6, lim)], t(now + SECS), secs(10)).await.unwrap();
    assert_eq!(got, [ClaimOutcome::Busy { fence: 1, running: 3 }]);
    // The busy fire's skip (its fence) ends nothing more: it never held a lease.
    s.write(&[ExecutionEvent::Skipped(fenced_skip("j", 3, 2, "b", Some(1)))]).await.unwrap();
    // An ended lease does not count: the run of t(0) ends.
    let first = fenced_start("j", 1, 1, 0, now, "a", Some(1));
    s.write(&[started(&first), fenced_end(&first, ExecutionStatus::Succeeded, 5, true)])
        .await
        .unwrap();
    // Still 2 live (t(1) and the unlimited t(3)).
    let got = s.claim_fires("a", &[claim("j", 5, 7, lim)], t(now + 2 * SECS), secs(10)).await;
    assert_eq!(got.unwrap(), [ClaimOutcome::Busy { fence: 1, running: 2 }]);
    let got = s.claim_fires("a", &[claim("j", 6, 8, Some(3))], t(now + 2 * SECS), secs(10)).await;
    assert_eq!(got.unwrap(), [won]);
    // Expired leases do not count; nor does a lease of zero.
    let later = now + 20 * SECS;
    let got = s
        .claim_fires(
            "a",
            &[claim("j", 7, 10, Some(1)), claim("j", 8, 11, Some(1))],
            t(later),
            secs(0),
        )
        .await
        .unwrap();
    assert_eq!(got, [won, won]);
    let got = s
        .claim_fires(
            "a",
            &[claim("j", 9, 12, Some(1)), claim("j", 10, 13, Some(1))],
            t(later),
            secs(5),
        )
        .await
        .unwrap();
    assert_eq!(got, [won, ClaimOutcome::Busy { fence: 1, running: 1 }]);
    // Busy claims are ended: only the leases that ran out are expired.
    let mut keys = expired_keys(s, later + 10 * SECS).await;
    keys.sort();
    let mut want: Vec<(String, DateTime<Utc>)> =
        [1, 3, 6, 7, 8, 9].iter().map(|at| ("j".to_owned(), t(*at))).collect();
    want.push(("k".to_owned(), t(2)));
    assert_eq!(keys, want);
}

/// A renewal extends (never shortens) the leases its instance holds with
/// the same fence on fires not ended; any other answers false.
pub(crate) async fn renewals_keep_only_held_leases(s: &dyn ExecutionStore) {
    s.claim_fires("a", &[claim("j", 0, 1, None), claim("j", 1, 2, None)], t(0), secs(10))
        .await
        .unwrap();
    let kept = s
        .renew_leases(
            "a",
            &[lease_of("j", 0, 1), lease_of("j", 1, 2), lease_of("x", 0, 1), lease_of("j", 0, 1)],
            t(5 * SECS),
            secs(10),
        )
        .await
        .unwrap();
    assert_eq!(kept, [true, false, false, true]);
    assert_eq!(
        s.renew_leases("b", &[lease_of("j", 0, 1)], t(5 * SECS), secs(10)).await.unwrap(),
        [false]
    );
    // A shorter renewal keeps the later expiry.
    assert_eq!(
        s.renew_leases("a", &[lease_of("j", 0, 1)], t(6 * SECS), secs(1)).await.unwrap(),
        [true]
    );
    assert_eq!(expired_keys(s, 10 * SECS).await, [("j".to_owned(), t(1))]);
    assert_eq!(expired_keys(s, 15 * SECS).await, [("j".to_owned(), t(1)), ("j".to_owned(), t(0))]);
    // Even an expired lease is renewed while nobody took it over.
    assert_eq!(
        s.renew_leases("a", &[lease_of("j", 1, 1)], t(20 * SECS), secs(10)).await.unwrap(),
        [true]
    );
    // The fire ends: its lease is no longer held.
    let st = fenced_start("j", 1, 1, 0, SECS, "a", Some(1));
    s.write(&[fenced_end(&st, ExecutionStatus::Succeeded, 10, true)]).await.unwrap();
    assert_eq!(
        s.renew_leases("a", &[lease_of("j", 0, 1)], t(21 * SECS), secs(10)).await.unwrap(),
        [false]
    );
    assert!(s.renew_leases("a", &[], t(21 * SECS), secs(10)).await.unwrap().is_empty());
}

/// The leases that ran out without their fire ending, oldest first (then
/// by job and nominal time), at most `limit`.
pub(crate) async fn expired_leases_are_oldest_first(s: &dyn ExecutionStore) {
    s.claim_fires("a", &[claim("b", 0, 1, None), claim("a", 5, 2, None)], t(0), secs(30))
        .await
        .unwrap();
    s.claim_fires("c", &[claim("c", 0, 3, None), claim("a", 0, 4, None)], t(SECS), secs(10))
        .await
        .unwrap();
    s.claim_fires("c", &[claim("d", 0, 5, None)], t(SECS), secs(60)).await.unwrap();
    let at = |job: &str, ms| (job.to_owned(), t(ms));
    assert!(expired_keys(s, 10 * SECS).await.is_empty());
    assert_eq!(expired_keys(s, 11 * SECS).await, [at("a", 0), at("c", 0)]);
    assert_eq!(expired_keys(s, 40 * SECS).await, [at("a", 0), at("c", 0), at("a", 5), at("b", 0)]);
    let two = s.expired_leases(t(40 * SECS), 2).await.unwrap();
    assert_eq!(
        two.iter().map(|e| (e.job_id.as_str(), e.owner.as_str())).collect::<Vec<_>>(),
        [("a", "c"), ("c", "c")]
    );
    assert!(s.expired_leases(t(40 * SECS), 0).await.unwrap().is_empty());
    // An ended fire is not expired; a skip with the fence ends it.
    s.write(&[ExecutionEvent::Skipped(fenced_skip("a", 4, 0, "c", Some(1)))]).await.unwrap();
    assert_eq!(expired_keys(s, 40 * SECS).await, [at("c", 0), at("a", 5), at("b", 0)]);
    // Prune forgets the claims of fires before its cutoff.
    s.prune(PrunePolicy { older_than: t(1), failures_older_than: None }).await.unwrap();
    assert_eq!(expired_keys(s, 40 * SECS).await, [at("a", 5)]);
}

/// A take-over: the fence goes up, the run's rows move to the new id, its
/// running attempt is abandoned naming both instances, and the next attempt
/// follows the last; a second taker, the old owner's renewal and its late
/// records are refused.
pub(crate) async fn a_take_over_moves_the_run_and_fences_the_old_owner(s: &dyn ExecutionStore) {
    s.claim_fires("a", &[claim("j", 0, 1, None)], t(0), secs(10)).await.unwrap();
    let first = fenced_start("j", 1, 1, 0, 0, "a", Some(1));
    let second = fenced_start("j", 1, 2, 0, 2 * SECS, "a", Some(1));
    s.write(&[
        started(&first),
        fenced_end(&first, ExecutionStatus::Failed, SECS, false),
        started(&second),
    ])
    .await
    .unwrap();
    // Not expired yet; a stale fence: nothing.
    let mut expired = ExpiredLease {
        job_id: "j".to_owned(),
        scheduled_at: t(0),
        execution_id: eid(1),
        fence: 1,
        owner: "a".to_owned(),
        expired_at: t(10 * SECS),
        kind: FireKind::Schedule,
    };
    assert_eq!(
        s.retake_fire("b", &expired, eid(2), t(9 * SECS), secs(10), true).await.unwrap(),
        None
    );
    expired.fence = 2;
    assert_eq!(
        s.retake_fire("b", &expired, eid(2), t(12 * SECS), secs(10), true).await.unwrap(),
        None
    );
    expired.fence = 1;
    assert_eq!(s.expired_leases(t(12 * SECS), 10).await.unwrap(), [expired.clone()]);
    let taken = s.retake_fire("b", &expired, eid(2), t(12 * SECS), secs(10), true).await.unwrap();
    assert_eq!(taken, Some(RetakenFire { fence: 2, next_attempt: 3, had_rows: true }));
    assert_eq!(
        s.retake_fire("c", &expired, eid(3), t(12 * SECS), secs(10), true).await.unwrap(),
        None
    );
    assert!(s.expired_leases(t(21 * SECS), 10).await.unwrap().is_empty());
    let got = rows(s, "j").await;
    let mut want_first = ExecutionRecord::from_start(&first);
    if let ExecutionEvent::Finished(e) = fenced_end(&first, ExecutionStatus::Failed, SECS, false) {
        want_first.apply_end(&e);
    }
    want_first.execution_id = eid(2);
    let mut want_second = ExecutionRecord::from_start(&second);
    want_second.execution_id = eid(2);
    want_second.status = ExecutionStatus::Abandoned;
    want_second.completed_at = Some(t(12 * SECS));
    want_second.duration_ms = Some(10_000);
    want_second.error = Some(abandoned_for_retake("a", "b", 2, true));
    let mut want = vec![want_first, want_second];
    want.sort_by_key(|r| (r.scheduled_at, r.execution_id, r.attempt));
    assert_eq!(got, want);
    // The old owner is out: no renewal, its records refused (the whole
    // batch, here); the taker's are written.
    assert_eq!(
        s.renew_leases("a", &[lease_of("j", 0, 1)], t(13 * SECS), secs(10)).await.unwrap(),
        [false]
    );
    let late = fenced_end(&second, ExecutionStatus::Succeeded, SECS, true);
    let err = s.write(&[late]).await.unwrap_err();
    assert!(matches!(err, StoreError::Fenced { refused: 1, .. }), "{err}");
    assert!(!err.is_transient());
    let third = fenced_start("j", 2, 3, 0, 13 * SECS, "b", Some(2));
    s.write(&[started(&third)]).await.unwrap();
    assert_eq!(
        s.renew_leases("b", &[lease_of("j", 0, 2)], t(14 * SECS), secs(10)).await.unwrap(),
        [true]
    );
    s.write(&[fenced_end(&third, ExecutionStatus::Succeeded, SECS, true)]).await.unwrap();
    let got = rows(s, "j").await;
    let statuses: Vec<_> = got.iter().map(|r| (r.attempt, r.status, r.fence)).collect();
    assert_eq!(
        statuses,
        [
            (1, ExecutionStatus::Failed, Some(1)),
            (2, ExecutionStatus::Abandoned, Some(1)),
            (3, ExecutionStatus::Succeeded, Some(2)),
        ]
    );
    assert!(got.iter().all(|r| r.execution_id == eid(2)));
    // Ended: neither expired nor renewable.
    assert!(s.expired_leases(t(100 * SECS), 10).await.unwrap().is_empty());
    assert_eq!(
        s.renew_leases("b", &[lease_of("j", 0, 2)], t(15 * SECS), secs(10)).await.unwrap(),
        [false]
    );
}

/// Without a rerun, a take-over ends a fire that had rows (its `abandoned`
/// row is its last); a fire without rows stays the taker's to record
/// skipped, which ends it.
pub(crate) async fn a_take_over_without_rerun(s: &dyn ExecutionStore) {
    s.claim_fires("a", &[claim("j", 0, 1, None), claim("j", 1, 2, None)], t(0), secs(10))
        .await
        .unwrap();
    let st = fenced_start("j", 1, 1, 0, 0, "a", Some(1));
    s.write(&[started(&st)]).await.unwrap();
    let expired = s.expired_leases(t(10 * SECS), 10).await.unwrap();
    assert_eq!(expired.len(), 2);
    let with_rows =
        s.retake_fire("b", &expired[0], eid(11), t(10 * SECS), secs(10), false).await.unwrap();
    assert_eq!(with_rows, Some(RetakenFire { fence: 2, next_attempt: 2, had_rows: true }));
    let without =
        s.retake_fire("b", &expired[1], eid(12), t(10 * SECS), secs(10), false).await.unwrap();
    assert_eq!(without, Some(RetakenFire { fence: 2, next_attempt: 1, had_rows: false }));
    assert_eq!(
        s.renew_leases("b", &[lease_of("j", 0, 2), lease_of("j", 1, 2)], t(11 * SECS), secs(10))
            .await
            .unwrap(),
        [false, true]
    );
    assert_eq!(expired_keys(s, 30 * SECS).await, [("j".to_owned(), t(1))]);
    s.write(&[ExecutionEvent::Skipped(fenced_skip("j", 12, 1, "b", Some(2)))]).await.unwrap();
    assert!(s.expired_leases(t(30 * SECS), 10).await.unwrap().is_empty());
    let got = rows(s, "j").await;
    let summary: Vec<_> =
        got.iter().map(|r| (r.scheduled_at, r.execution_id, r.status, r.fence)).collect();
    assert_eq!(
        summary,
        [
            (t(0), eid(11), ExecutionStatus::Abandoned, Some(1)),
            (t(1), eid(12), ExecutionStatus::Skipped, Some(2)),
        ]
    );
    // A take-over of an ended fire, or of a fire never claimed: nothing.
    let mut gone = expired[0].clone();
    gone.fence = 2;
    assert_eq!(
        s.retake_fire("c", &gone, eid(13), t(40 * SECS), secs(10), true).await.unwrap(),
        None
    );
    gone.job_id = "never".to_owned();
    gone.fence = 1;
    assert_eq!(
        s.retake_fire("c", &gone, eid(13), t(40 * SECS), secs(10), true).await.unwrap(),
        None
    );
}

/// The engine's `tests/leases.rs` case, on every store.
pub(crate) async fn an_event_with_a_stale_fence_is_refused_and_the_rest_of_the_batch_written(
    store: &dyn ExecutionStore,
) {
    let at: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let claim = FireClaim {
        job_id: "j".into(),
        scheduled_at: at,
        execution_id: ExecutionId::from_u128(7),
        max_running: None,
        kind: FireKind::Schedule,
    };
    let lease = Duration::from_secs(10);
    let won = store.claim_fires("a", std::slice::from_ref(&claim), at, lease).await.unwrap();
    assert_eq!(won, vec![ClaimOutcome::Won { fence: 1 }]);
    assert_eq!(
        store.claim_fires("b", &[claim], at, lease).await.unwrap(),
        vec![ClaimOutcome::Taken]
    );
    let later = at + chrono::Duration::seconds(11);
    let expired = store.expired_leases(later, 10).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!((expired[0].owner.as_str(), expired[0].fence), ("a", 1));
    let new_id = ExecutionId::from_u128(8);
    let taken = store.retake_fire("b", &expired[0], new_id, later, lease, true).await.unwrap();
    assert_eq!(taken.map(|t| (t.fence, t.next_attempt)), Some((2, 1)));
    // A second taker finds it taken.
    assert_eq!(
        store.retake_fire("c", &expired[0], new_id, later, lease, true).await.unwrap(),
        None
    );
    let start = |fence, id| {
        ExecutionEvent::Started(AttemptStart {
            job_id: "j".into(),
            execution_id: ExecutionId::from_u128(id),
            attempt: 1,
            scheduled_at: at,
            started_at: later,
            instance_id: "x".into(),
            kind: FireKind::Schedule,
            fence: Some(fence),
        })
    };
    let err = store.write(&[start(1, 7), start(2, 8)]).await.unwrap_err();
    assert!(matches!(err, StoreError::Fenced { refused: 1, .. }), "{err}");
    assert!(err.to_string().contains("j at 2026-01-01"), "{err}");
    let all = store.history(&HistoryQuery::new("j", 10)).await.unwrap();
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].execution_id, new_id);
    // The old owner cannot renew either.
    let stale = FireLease { job_id: "j".into(), scheduled_at: at, fence: 1 };
    assert_eq!(store.renew_leases("a", &[stale], later, lease).await.unwrap(), vec![false]);
}

/// Which events end a lease: a skip, an end with `ends_run`, with the
/// current fence; an end followed by a retry keeps it. A fenced event of a
/// fire that was never claimed is refused; events without a fence are
/// written unchecked. Refused fires are named in order.
pub(crate) async fn events_that_end_a_fire_end_its_lease(s: &dyn ExecutionStore) {
    s.claim_fires(
        "a",
        &[claim("j", 0, 1, None), claim("j", 1, 2, None), claim("k", 0, 3, None)],
        t(0),
        secs(10),
    )
    .await
    .unwrap();
    let retried = fenced_start("j", 1, 1, 0, 0, "a", Some(1));
    let last = fenced_start("j", 2, 1, 1, 0, "a", Some(1));
    s.write(&[
        started(&retried),
        fenced_end(&retried, ExecutionStatus::Failed, 5, false),
        started(&last),
        fenced_end(&last, ExecutionStatus::Failed, 5, true),
    ])
    .await
    .unwrap();
    assert_eq!(expired_keys(s, 10 * SECS).await, [("j".to_owned(), t(0)), ("k".to_owned(), t(0))]);
    let orphan = fenced_start("nobody", 9, 1, 7, 7, "a", Some(1));
    let plain = fenced_start("nobody", 10, 1, 8, 8, "a", None);
    let stale = fenced_start("k", 3, 1, 0, 0, "a", Some(3));
    let err = s
        .write(&[started(&orphan), started(&plain), started(&stale), started(&orphan)])
        .await
        .unwrap_err();
    let StoreError::Fenced { refused, message } = &err else { panic!("{err:?}") };
    assert_eq!(*refused, 3);
    assert_eq!(message, &format!("nobody at {}, k at {}, nobody at {}", t(7), t(0), t(7)), "{err}");
    assert_eq!(rows(s, "nobody").await.len(), 1);
    assert!(rows(s, "k").await.is_empty());
    // The end of a fire written twice (a retry of the batch) is idempotent.
    let end = fenced_end(&last, ExecutionStatus::Failed, 5, true);
    s.write(&[end.clone(), end]).await.unwrap();
    assert_eq!(rows(s, "j").await.len(), 2);
}

/// A stale event among many good ones in one batch: exactly it is left out.
pub(crate) async fn a_big_batch_with_a_few_stale_events(s: &dyn ExecutionStore) {
    let fires: Vec<FireClaim> = (0..200).map(|i| claim("bulk", i, i as u128 + 1, None)).collect();
    let got = s.claim_fires("a", &fires, t(0), secs(10)).await.unwrap();
    assert!(got.iter().all(|o| *o == ClaimOutcome::Won { fence: 1 }));
    let mut events = Vec::new();
    for i in 0..200i64 {
        let fence = if i % 50 == 7 { 2 } else { 1 };
        let st = fenced_start("bulk", i as u128 + 1, 1, i, 1000 + i, "a", Some(fence));
        events.push(started(&st));
        if i % 2 == 0 {
            events.push(fenced_end(&st, ExecutionStatus::Succeeded, 3, true));
        }
        events.push(start("plain", 1000 + i as u128, 1, 2000 + i, "a"));
    }
    let err = s.write(&events).await.unwrap_err();
    assert!(matches!(err, StoreError::Fenced { refused: 4, .. }), "{err}");
    assert_eq!(rows(s, "bulk").await.len(), 196);
    assert_eq!(rows(s, "plain").await.len(), 200);
    // The ends written ended their leases; the refused ones did not.
    let expired = expired_keys(s, 10 * SECS).await;
    assert_eq!(expired.len(), 100, "{expired:?}");
}

/// The nominal times with a row in a final status, in `[from, to]`,
/// ascending, each once.
pub(crate) async fn recorded_fires_are_final_rows_in_range(s: &dyn ExecutionStore) {
    s.write(&[
        start("j", 1, 1, 105, "i1"),
        end("j", 1, 1, 105, ExecutionStatus::Failed),
        end("j", 1, 2, 105, ExecutionStatus::Succeeded),
        skip("j", 2, 205, "i1"),
        start("j", 3, 1, 305, "i1"), // running: not recorded
        end("j", 4, 1, 405, ExecutionStatus::Abandoned),
        end("j", 5, 1, 505, ExecutionStatus::Cancelled),
        start("other", 6, 1, 305, "i1"),
        end("other", 6, 1, 305, ExecutionStatus::Succeeded),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.recorded_fires("j", t(0), t(1000)).await.unwrap(),
        [t(100), t(200), t(400), t(500)]
    );
    assert_eq!(s.recorded_fires("j", t(200), t(400)).await.unwrap(), [t(200), t(400)]);
    assert!(s.recorded_fires("j", t(201), t(399)).await.unwrap().is_empty());
    assert!(s.recorded_fires("j", t(500), t(100)).await.unwrap().is_empty());
    assert!(s.recorded_fires("none", t(0), t(1000)).await.unwrap().is_empty());
    let all = s
        .recorded_fires("other", DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC)
        .await
        .unwrap();
    assert_eq!(all, [t(300)]);
}

/// A row keeps the kind and fence of its first event (an end over a start
/// changes neither); an end without a start keeps its own.
pub(crate) async fn kind_and_fence_round_trip(s: &dyn ExecutionStore) {
    s.claim_fires("a", &[claim("j", 0, 1, None), claim("j", 1, 2, None)], t(0), secs(10))
        .await
        .unwrap();
    for (i, kind) in FireKind::ALL.into_iter().enumerate() {
        let mut st = fenced_start("k", 20 + i as u128, 1, i as i64, 0, "a", None);
        st.kind = kind;
        s.write(&[started(&st)]).await.unwrap();
    }
    let mut manual = fenced_start("j", 1, 1, 0, 0, "a", Some(1));
    manual.kind = FireKind::Manual;
    s.write(&[started(&manual)]).await.unwrap();
    let mut backfill = fenced_start("j", 2, 1, 1, 0, "a", Some(1));
    backfill.kind = FireKind::Backfill;
    let ExecutionEvent::Finished(mut end_only) =
        fenced_end(&backfill, ExecutionStatus::Succeeded, 9, true)
    else {
        unreachable!()
    };
    end_only.kind = FireKind::Backfill;
    s.write(&[ExecutionEvent::Finished(end_only.clone())]).await.unwrap();
    let ExecutionEvent::Finished(mut over) = fenced_end(&manual, ExecutionStatus::Failed, 9, true)
    else {
        unreachable!()
    };
    over.kind = FireKind::Schedule;
    s.write(&[ExecutionEvent::Finished(over.clone())]).await.unwrap();
    let got = rows(s, "j").await;
    let mut want_manual = ExecutionRecord::from_start(&manual);
    want_manual.apply_end(&over);
    assert_eq!(got, [want_manual, ExecutionRecord::from_end(&end_only)]);
    assert_eq!(
        got.iter().map(|r| (r.kind, r.fence)).collect::<Vec<_>>(),
        [(FireKind::Manual, Some(1)), (FireKind::Backfill, Some(1))]
    );
    let kinds: Vec<(FireKind, Option<u64>)> =
        rows(s, "k").await.iter().map(|r| (r.kind, r.fence)).collect();
    assert_eq!(kinds, FireKind::ALL.map(|k| (k, None)));
    // Filtered reads decode them too.
    let failed = s.history(&HistoryQuery::new("j", 5).with_status(ExecutionStatus::Failed)).await;
    assert_eq!(failed.unwrap()[0].kind, FireKind::Manual);
}

/// Random claims, renewals, take-overs and fenced writes over a few fires,
/// answered as the memory store answers them.
pub(crate) async fn leases_match_the_memory_store(s: &dyn ExecutionStore) {
    let model = MemoryStore::unbounded();
    let mut rng = fastrand::Rng::with_seed(0x1ea5e);
    let jobs = ["a", "b", "c"];
    let instances = ["i1", "i2", "i3"];
    let leases = [0u64, 2, 5, 20];
    // What each instance believes it holds: (instance, job, at, fence, exec).
    let mut held: Vec<(&str, &str, i64, u64, u128)> = Vec::new();
    let mut now = 0i64;
    let mut next_exec = 1u128;
    // How often each answer came, so that the case keeps covering them.
    let mut seen = std::collections::BTreeMap::<&str, u32>::new();
    let mut saw = |what| *seen.entry(what).or_default() += 1;
    for step in 0..400u32 {
        now += rng.i64(0..3 * SECS);
        let me = instances[rng.usize(..instances.len())];
        let lease = secs(leases[rng.usize(..leases.len())]);
        match rng.u8(0..10) {
            0..=2 => {
                let max = [None, Some(1), Some(2)][rng.usize(..3)];
                let specs: Vec<(&str, i64, u128)> = (0..rng.usize(1..4))
                    .map(|_| {
                        next_exec += 1;
                        (jobs[rng.usize(..3)], rng.i64(0..12) * SECS, next_exec)
                    })
                    .collect();
                let fires: Vec<FireClaim> =
                    specs.iter().map(|(job, at, exec)| claim(job, *at, *exec, max)).collect();
                let a = s.claim_fires(me, &fires, t(now), lease).await.unwrap();
                let b = model.claim_fires(me, &fires, t(now), lease).await.unwrap();
                assert_eq!(a, b, "step {step}: claim {fires:?}");
                for o in &b {
                    saw(match o {
                        ClaimOutcome::Won { .. } => "won",
                        ClaimOutcome::Taken => "taken",
                        ClaimOutcome::Busy { .. } => "busy",
                    });
                }
                for ((job, at, exec), o) in specs.into_iter().zip(&b) {
                    if let ClaimOutcome::Won { fence } | ClaimOutcome::Busy { fence, .. } = o {
                        held.push((me, job, at, *fence, exec));
                    }
                }
            }
            3 => {
                let mine: Vec<FireLease> = held
                    .iter()
                    .filter(|h| h.0 == me || rng.u8(0..4) == 0)
                    .map(|h| lease_of(h.1, h.2, h.3))
                    .collect();
                let a = s.renew_leases(me, &mine, t(now), lease).await.unwrap();
                let b = model.renew_leases(me, &mine, t(now), lease).await.unwrap();
                assert_eq!(a, b, "step {step}: renew {mine:?}");
                b.iter().for_each(|kept| saw(if *kept { "renewed" } else { "not renewed" }));
            }
            4..=5 => {
                let limit = rng.usize(0..5);
                let a = s.expired_leases(t(now), limit).await.unwrap();
                let b = model.expired_leases(t(now), limit).await.unwrap();
                assert_eq!(a, b, "step {step}: expired");
                if let Some(e) = b.get(rng.usize(..b.len().max(1))) {
                    let mut e = e.clone();
                    if rng.u8(0..6) == 0 {
                        e.fence += 1; // a stale view
                    }
                    next_exec += 1;
                    let rerun = rng.bool();
                    let id = eid(next_exec);
                    let a = s.retake_fire(me, &e, id, t(now), lease, rerun).await.unwrap();
                    let b = model.retake_fire(me, &e, id, t(now), lease, rerun).await.unwrap();
                    assert_eq!(a, b, "step {step}: retake {e:?}");
                    saw(match b {
                        Some(RetakenFire { had_rows: true, .. }) => "retaken with rows",
                        Some(_) => "retaken without rows",
                        None => "not retaken",
                    });
                    if let Some(r) = b {
                        let at = e.scheduled_at.timestamp_millis() - t(0).timestamp_millis();
                        let job = jobs.iter().find(|j| **j == e.job_id.as_str()).unwrap();
                        held.push((me, job, at, r.fence, next_exec));
                    }
                }
            }
            _ => {
                if held.is_empty() {
                    continue;
                }
                let mut events = Vec::new();
                for _ in 0..rng.usize(1..4) {
                    let (who, job, at, fence, exec) = held[rng.usize(..held.len())];
                    let mut st = fenced_start(job, exec, rng.u32(1..3), at, now, who, Some(fence));
                    st.kind = FireKind::ALL[rng.usize(..3)];
                    events.push(match rng.u8(0..4) {
                        0 => started(&st),
                        1 | 2 => {
                            let status = [ExecutionStatus::Succeeded, ExecutionStatus::Failed]
                                [rng.usize(..2)];
                            fenced_end(&st, status, rng.i64(0..500), rng.bool())
                        }
                        _ => ExecutionEvent::Skipped(fenced_skip(job, exec, at, who, Some(fence))),
                    });
                }
                if rng.u8(0..3) == 0 {
                    events.push(start(jobs[rng.usize(..3)], 5000 + u128::from(step), 1, now, me));
                }
                let a = s.write(&events).await;
                let b = model.write(&events).await;
                match (&a, &b) {
                    (Ok(()), Ok(())) => saw("written"),
                    (
                        Err(StoreError::Fenced { refused: x, message: m }),
                        Err(StoreError::Fenced { refused: y, message: n }),
                    ) => {
                        assert_eq!((x, m), (y, n), "step {step}");
                        saw("fenced");
                    }
                    _ => panic!("step {step}: {a:?} vs {b:?} for {events:#?}"),
                }
            }
        }
    }
    for job in jobs {
        assert_eq!(rows(s, job).await, rows(&model, job).await, "job {job}");
        let (from, to) = (t(0), t(12 * SECS));
        assert_eq!(
            s.recorded_fires(job, from, to).await.unwrap(),
            model.recorded_fires(job, from, to).await.unwrap()
        );
    }
    for what in [
        "won",
        "taken",
        "busy",
        "renewed",
        "not renewed",
        "retaken with rows",
        "retaken without rows",
        "not retaken",
        "written",
        "fenced",
    ] {
        assert!(seen.get(what).is_some_and(|n| *n >= 3), "{what} too rare: {seen:?}");
    }
    let far = t(now + 100 * SECS);
    assert_eq!(
        s.expired_leases(far, 1000).await.unwrap(),
        model.expired_leases(far, 1000).await.unwrap()
    );
}
