//! The conformance cases of [`HourlyMetricsStore`], for the SQL stores (the
//! engine's memory store keeps no hourly metrics): reading executions by
//! nominal fire time, and `job_metrics_hourly` upserted, read, pruned.

use chrono::{DateTime, TimeZone, Utc};
use mscribe_scheduler::StoreError;
use mscribe_scheduler::{ExecutionStatus, ExecutionStore};
use mscribe_storage::{AttemptRow, HourlyMetricsStore, HourlyRow};

use crate::common::*;

/// The hour `h` hours after 2026-01-01T00:00:00Z.
fn hour(h: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(h)
}

fn row(job: &str, h: i64, runs: u64) -> HourlyRow {
    HourlyRow {
        job_id: job.to_owned(),
        hour_start: hour(h),
        runs,
        successes: runs / 2,
        failures: runs - runs / 2,
        skipped: 1,
        success_rate: (runs > 0).then(|| (runs / 2) as f64 / runs as f64),
        p50_ms: Some(120),
        p95_ms: (runs > 1).then_some(900),
    }
}

fn by_key(mut v: Vec<AttemptRow>) -> Vec<AttemptRow> {
    v.sort_by(|a, b| (&a.execution_id, a.attempt).cmp(&(&b.execution_id, b.attempt)));
    v
}

pub(crate) async fn empty_store_has_no_hourly_rows(h: &dyn HourlyMetricsStore) {
    assert!(h.attempts_between(t(0), t(1_000_000)).await.unwrap().is_empty());
    assert!(h.hourly(None).await.unwrap().is_empty());
    assert!(h.hourly(Some("j")).await.unwrap().is_empty());
    assert_eq!(h.prune_hourly(DateTime::<Utc>::MAX_UTC).await.unwrap(), 0);
    h.upsert_hourly(&[], t(0)).await.unwrap();
    assert!(h.hourly(None).await.unwrap().is_empty());
}

/// The rows whose nominal fire time (`t(at - 5)`) is in `[from, to)`, every
/// attempt and skip, running rows included, with the fields a rollup needs.
pub(crate) async fn attempts_between_reads_by_nominal_time(
    s: &dyn ExecutionStore,
    h: &dyn HourlyMetricsStore,
) {
    s.write(&[
        start("a", 1, 1, 105, "i1"),
        end("a", 1, 1, 105, ExecutionStatus::Failed),
        end("a", 1, 2, 105, ExecutionStatus::Succeeded),
        skip("a", 2, 205, "i1"),
        start("b", 3, 1, 305, "i1"),
        end("b", 4, 1, 405, ExecutionStatus::TimedOut),
        start("a", 5, 1, 95, "i1"),   // nominal t(90): before the window
        start("a", 6, 1, 1005, "i1"), // nominal t(1000): the end, excluded
    ])
    .await
    .unwrap();
    let got = by_key(h.attempts_between(t(100), t(1000)).await.unwrap());
    let want = by_key(vec![
        AttemptRow {
            job_id: "a".into(),
            execution_id: eid(1).to_string(),
            attempt: 1,
            status: ExecutionStatus::Failed,
            scheduled_at: t(100),
            duration_ms: Some(250),
        },
        AttemptRow {
            job_id: "a".into(),
            execution_id: eid(1).to_string(),
            attempt: 2,
            status: ExecutionStatus::Succeeded,
            scheduled_at: t(100),
            duration_ms: Some(250),
        },
        AttemptRow {
            job_id: "a".into(),
            execution_id: eid(2).to_string(),
            attempt: 0,
            status: ExecutionStatus::Skipped,
            scheduled_at: t(200),
            duration_ms: Some(0),
        },
        AttemptRow {
            job_id: "b".into(),
            execution_id: eid(3).to_string(),
            attempt: 1,
            status: ExecutionStatus::Running,
            scheduled_at: t(300),
            duration_ms: None,
        },
        AttemptRow {
            job_id: "b".into(),
            execution_id: eid(4).to_string(),
            attempt: 1,
            status: ExecutionStatus::TimedOut,
            scheduled_at: t(400),
            duration_ms: Some(250),
        },
    ]);
    assert_eq!(got, want);
    // Bounds past the supported years read everything.
    let all = h.attempts_between(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC).await;
    assert_eq!(all.unwrap().len(), 7);
    assert!(h.attempts_between(t(1000), t(100)).await.unwrap().is_empty());
}

/// Rows are keyed by job and hour: a second upsert replaces them (the last
/// listing of a key wins), and reads come by hour, then job.
pub(crate) async fn hourly_rows_upsert_by_job_and_hour(h: &dyn HourlyMetricsStore) {
    let first = vec![row("b", 1, 4), row("a", 1, 3), row("a", 0, 0), row("b", 0, 1)];
    h.upsert_hourly(&first, t(0)).await.unwrap();
    let read = h.hourly(None).await.unwrap();
    assert_eq!(read, vec![row("a", 0, 0), row("b", 0, 1), row("a", 1, 3), row("b", 1, 4)]);
    assert_eq!(read[0].success_rate, None);
    assert_eq!(read[1].p95_ms, None);
    assert_eq!(read[2].success_rate, Some(1.0 / 3.0));
    // Rerun: the same rows, not doubled; one changed in place.
    h.upsert_hourly(&first, t(1)).await.unwrap();
    h.upsert_hourly(&[row("a", 1, 9), row("a", 1, 7)], t(2)).await.unwrap();
    let read = h.hourly(None).await.unwrap();
    assert_eq!(read, vec![row("a", 0, 0), row("b", 0, 1), row("a", 1, 7), row("b", 1, 4)]);
    assert_eq!(h.hourly(Some("a")).await.unwrap(), vec![row("a", 0, 0), row("a", 1, 7)]);
    assert!(h.hourly(Some("A")).await.unwrap().is_empty());
    // Counts past i64::MAX are stored as i64::MAX.
    let mut huge = row("c", 0, 2);
    huge.runs = u64::MAX;
    h.upsert_hourly(&[huge], t(3)).await.unwrap();
    let c = h.hourly(Some("c")).await.unwrap();
    assert_eq!(c[0].runs, i64::MAX as u64);
}

/// One row the database cannot hold fails the whole call, as rejected, and
/// nothing of it is written.
pub(crate) async fn a_bad_hourly_row_writes_nothing(h: &dyn HourlyMetricsStore) {
    let mut bad = row("b", 0, 1);
    bad.hour_start = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
    let e = h.upsert_hourly(&[row("a", 0, 1), bad], t(0)).await.unwrap_err();
    assert!(matches!(e, StoreError::Rejected { .. }), "{e:?}");
    assert!(e.to_string().contains("hour_start"), "{e}");
    let e = h.upsert_hourly(&[row("a", 0, 1)], DateTime::<Utc>::MAX_UTC).await.unwrap_err();
    assert!(matches!(e, StoreError::Rejected { .. }), "{e:?}");
    assert!(h.hourly(None).await.unwrap().is_empty());
}

pub(crate) async fn prune_hourly_deletes_the_hours_before(h: &dyn HourlyMetricsStore) {
    let rows: Vec<HourlyRow> = (0..5).flat_map(|i| [row("a", i, 1), row("b", i, 2)]).collect();
    h.upsert_hourly(&rows, t(0)).await.unwrap();
    assert_eq!(h.prune_hourly(DateTime::<Utc>::MIN_UTC).await.unwrap(), 0);
    assert_eq!(h.prune_hourly(hour(2)).await.unwrap(), 4);
    assert_eq!(h.prune_hourly(hour(2)).await.unwrap(), 0);
    let left: Vec<DateTime<Utc>> =
        h.hourly(Some("a")).await.unwrap().iter().map(|r| r.hour_start).collect();
    assert_eq!(left, vec![hour(2), hour(3), hour(4)]);
    assert_eq!(h.prune_hourly(DateTime::<Utc>::MAX_UTC).await.unwrap(), 6);
    assert!(h.hourly(None).await.unwrap().is_empty());
}
