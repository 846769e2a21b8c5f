//! The codec's unit tests: encoding events into rows, the checks on the
//! values that cross into SQL, and decoding them back.

use super::*;
use chrono::TimeZone;
use mscribe_scheduler::{AttemptEnd, AttemptStart};

#[test]
fn the_timestamp_bounds_are_the_first_and_last_microsecond_of_years_1_to_9999() {
    assert_eq!(min_ts(), Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap());
    let last = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap()
        + chrono::Duration::microseconds(999_999);
    assert_eq!(max_ts(), last);
    assert!(check_ts("t", last).is_ok());
    assert!(check_ts("t", min_ts()).is_ok());
    let err = check_ts("started_at", last + chrono::Duration::nanoseconds(1)).unwrap_err();
    assert!(err.contains("started_at") && err.contains("9999-12-31"), "{err}");
    assert!(check_ts("t", min_ts() - chrono::Duration::nanoseconds(1)).is_err());
}

fn start(id: u128, kind: FireKind) -> ExecutionEvent {
    ExecutionEvent::Started(AttemptStart {
        job_id: "j".into(),
        execution_id: ExecutionId::from_u128(id),
        attempt: 1,
        scheduled_at: Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap(),
        started_at: Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 1).unwrap(),
        instance_id: "i".into(),
        kind,
        fence: None,
    })
}

fn end(id: u128) -> ExecutionEvent {
    let ExecutionEvent::Started(s) = start(id, FireKind::Schedule) else { unreachable!() };
    ExecutionEvent::Finished(AttemptEnd {
        job_id: s.job_id,
        execution_id: s.execution_id,
        attempt: 1,
        scheduled_at: s.scheduled_at,
        started_at: s.started_at,
        instance_id: s.instance_id,
        status: ExecutionStatus::Succeeded,
        completed_at: s.started_at,
        duration: std::time::Duration::ZERO,
        error: None,
        error_kind: None,
        result: None,
        metrics: None,
        kind: FireKind::Schedule,
        fence: None,
        ends_run: true,
    })
}

/// (kind of op, execution id, events it stands for), in order.
fn shape(events: &[ExecutionEvent]) -> Vec<(&'static str, u128, u8)> {
    let (ops, bad) = encode(events, Dialect::Sqlite);
    assert!(bad.is_empty(), "{bad:?}");
    ops.iter()
        .map(|op| {
            let kind = if matches!(op, Op::Insert(_)) { "insert" } else { "upsert" };
            (kind, op.row().execution_id.as_u128(), op.row().events)
        })
        .collect()
}

#[test]
fn a_start_and_its_end_in_one_call_are_one_row() {
    let s = FireKind::Schedule;
    assert_eq!(
        shape(&[start(1, s), start(2, s), end(1), end(3)]),
        [("insert", 2, 1), ("upsert", 1, 2), ("upsert", 3, 1)]
    );
    // An end before its start, or one whose start differs, merges nothing.
    assert_eq!(shape(&[end(1), start(1, s)]), [("upsert", 1, 1), ("insert", 1, 1)]);
    assert_eq!(shape(&[start(1, FireKind::Manual), end(1)]), [("insert", 1, 1), ("upsert", 1, 1)]);
    // A repeated start: the first merges, the second stays (ignored by key).
    assert_eq!(shape(&[start(1, s), start(1, s), end(1)]), [("insert", 1, 1), ("upsert", 1, 2)]);
}

/// A position the stores hold as it is stays; a finer time or an
/// attempt past `int4` becomes the next microsecond; positions past
/// either end of the supported range select every row or none.
#[test]
fn history_bounds_are_values_the_stores_hold() {
    let at = Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap();
    let id = ExecutionId::from_u128(7);
    let pos = |started_at, attempt| Some(HistoryPosition { started_at, attempt, execution_id: id });
    let before = |started_at, attempt: i32, execution_id| HistoryBound::Before {
        started_at,
        attempt,
        execution_id,
    };
    let zero = ExecutionId::from_u128(0);
    let us = chrono::Duration::microseconds(1);
    assert_eq!(history_bound(None), HistoryBound::All);
    assert_eq!(history_bound(pos(at, 3)), before(at, 3, id));
    assert_eq!(history_bound(pos(at + us, i32::MAX as u32)), before(at + us, i32::MAX, id));
    let finer = at + chrono::Duration::nanoseconds(1500);
    assert_eq!(history_bound(pos(finer, 3)), before(at + us * 2, 0, zero));
    assert_eq!(history_bound(pos(at, i32::MAX as u32 + 1)), before(at + us, 0, zero));
    assert_eq!(history_bound(pos(max_ts(), 1)), before(max_ts(), 1, id));
    assert_eq!(history_bound(pos(max_ts(), u32::MAX)), HistoryBound::All);
    assert_eq!(history_bound(pos(DateTime::<Utc>::MAX_UTC, 0)), HistoryBound::All);
    assert_eq!(history_bound(pos(min_ts(), 0)), before(min_ts(), 0, id));
    assert_eq!(history_bound(pos(DateTime::<Utc>::MIN_UTC, 9)), HistoryBound::Nothing);
}

#[test]
fn failure_statuses_match_the_engine() {
    let engine: Vec<String> = ExecutionStatus::ALL
        .into_iter()
        .filter(|s| s.is_failure())
        .map(|s| format!("'{s}'"))
        .collect();
    assert_eq!(FAILURE_STATUSES_SQL, format!("({})", engine.join(", ")));
}

#[test]
fn error_kinds_round_trip_and_unknown_text_is_corrupt_naming_it() {
    for k in [ErrorKind::Transient, ErrorKind::Permanent] {
        assert_eq!(decode_error_kind(k.as_str()).unwrap(), k);
    }
    for bad in ["fatal", "Permanent", ""] {
        let e = decode_error_kind(bad).unwrap_err();
        assert!(matches!(&e, StoreError::Corrupt { .. }), "{e:?}");
        assert!(e.to_string().contains(&format!("error_kind {bad:?}")), "{e}");
    }
}

#[test]
fn only_ends_carry_an_error_kind() {
    use mscribe_scheduler::{AttemptEnd, AttemptStart, SkippedFire};
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let id = ExecutionId::from_u128(7);
    let started = AttemptStart {
        job_id: "j".into(),
        execution_id: id,
        attempt: 1,
        scheduled_at: at,
        started_at: at,
        instance_id: "i".into(),
        kind: FireKind::Schedule,
        fence: None,
    };
    let ended = AttemptEnd {
        job_id: "j".into(),
        execution_id: id,
        attempt: 1,
        scheduled_at: at,
        started_at: at,
        instance_id: "i".into(),
        status: ExecutionStatus::Failed,
        completed_at: at,
        duration: std::time::Duration::from_millis(3),
        error: Some("no such file".into()),
        error_kind: Some(ErrorKind::Permanent),
        result: None,
        metrics: None,
        kind: FireKind::Schedule,
        fence: None,
        ends_run: true,
    };
    let skipped = SkippedFire {
        job_id: "j".into(),
        execution_id: id,
        scheduled_at: at,
        decided_at: at,
        reason: "overlap".into(),
        instance_id: "i".into(),
        kind: FireKind::Schedule,
        fence: None,
    };
    let events = [
        ExecutionEvent::Started(started),
        ExecutionEvent::Finished(ended.clone()),
        ExecutionEvent::Finished(AttemptEnd { error_kind: None, ..ended }),
        ExecutionEvent::Skipped(skipped),
    ];
    let kinds: Vec<_> =
        events.iter().map(|e| encode_one(e, Dialect::Sqlite).unwrap().row().error_kind).collect();
    assert_eq!(kinds, [None, Some("permanent"), None, None]);
}

#[test]
fn metrics_round_trip_with_nan_as_null() {
    let mut m = Metrics::new();
    m.insert("a".into(), 1.5);
    m.insert("b".into(), f64::NAN);
    m.insert("c".into(), f64::INFINITY);
    let text = Dialect::Sqlite.metrics(&m);
    assert_eq!(text, r#"{"a":1.5,"b":null,"c":null}"#);
    let back = decode_metrics(&text).unwrap();
    assert_eq!(back["a"], 1.5);
    assert!(back["b"].is_nan() && back["c"].is_nan());
    assert!(decode_metrics(r#"{"a":"x"}"#).is_err());
    assert!(decode_metrics("[1]").is_err());
}

#[test]
fn nul_is_replaced_in_json_for_postgres() {
    let v = serde_json::json!({"a\u{0}": ["x\u{0}y", 1], "b": "\\u0000"});
    let out = Dialect::Postgres.json(&v);
    let back: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(back, serde_json::json!({"a\u{fffd}": ["x\u{fffd}y", 1], "b": "\\u0000"}));
    assert_eq!(Dialect::Sqlite.json(&v), v.to_string());
}

#[test]
fn timestamps_out_of_range_are_refused_and_cutoffs_clamped() {
    assert!(check_ts("t", DateTime::<Utc>::MIN_UTC).is_err());
    assert!(check_ts("t", DateTime::<Utc>::MAX_UTC).is_err());
    assert_eq!(clamp_ts(DateTime::<Utc>::MIN_UTC), min_ts());
    assert_eq!(clamp_ts(DateTime::<Utc>::MAX_UTC), max_ts());
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    assert_eq!(cutoff(now, std::time::Duration::MAX), min_ts());
    assert_eq!(
        cutoff(now, std::time::Duration::from_secs(60)),
        Utc.with_ymd_and_hms(2025, 12, 31, 23, 59, 0).unwrap()
    );
}

#[cfg(feature = "sqlite")]
#[test]
fn abandoned_duration_matches_the_memory_store() {
    let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    assert_eq!(abandoned_ms(t, t + chrono::Duration::microseconds(1_999)), 1);
    assert_eq!(abandoned_ms(t, t - chrono::Duration::seconds(1)), 0);
}
