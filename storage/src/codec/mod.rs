//! What both SQL backends share: turning events into rows, and checking and
//! decoding the values that cross into and out of SQL.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveTime, Timelike, Utc};
use mscribe_scheduler::{ErrorKind, ExecutionStatus, StoreError};
use mscribe_scheduler::{
    ExecutionEvent, ExecutionId, FireKind, HistoryPosition, Metrics, StoreResult,
};
use serde_json::Value;

/// A duration in whole milliseconds, saturating (as the engine counts it).
pub(crate) fn duration_ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The earliest timestamp a store accepts: 0001-01-01T00:00:00Z.
pub(crate) fn min_ts() -> DateTime<Utc> {
    MIN_TS
}

/// The latest timestamp a store accepts: 9999-12-31T23:59:59.999999Z.
pub(crate) fn max_ts() -> DateTime<Utc> {
    MAX_TS
}

/// [`min_ts`], built once at compile time: every row's times are checked
/// against both bounds, and building them from a calendar date cost more
/// than the check.
const MIN_TS: DateTime<Utc> = match NaiveDate::from_ymd_opt(1, 1, 1) {
    Some(d) => d.and_time(NaiveTime::MIN).and_utc(),
    None => panic!("a valid constant date"),
};

/// [`max_ts`], built once at compile time.
const MAX_TS: DateTime<Utc> = match (
    NaiveDate::from_ymd_opt(9999, 12, 31),
    NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999),
) {
    (Some(d), Some(t)) => d.and_time(t).and_utc(),
    _ => panic!("a valid constant date"),
};

/// Truncates to whole microseconds (what both backends keep).
pub(crate) fn trunc_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = t.nanosecond();
    t.with_nanosecond(nanos - nanos % 1000).unwrap_or(t)
}

/// Where a history page starts (`HistoryQuery::before`), as the SQL stores
/// compare it with what they hold: times in whole microseconds within
/// [`min_ts`]..=[`max_ts`], attempts that fit an `int4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HistoryBound {
    /// Every row (no position, or one after every storable row).
    All,
    /// No row (a position before every storable row).
    Nothing,
    /// The rows strictly older than this key, whose values the store holds
    /// as they are: no row is older than the position and not older than
    /// this key, or the other way round.
    Before { started_at: DateTime<Utc>, attempt: i32, execution_id: ExecutionId },
}

/// The [`HistoryBound`] of a position.
///
/// A position with a time finer than a microsecond, or an attempt past any
/// storable one, has every stored row of its microsecond older than it:
/// the bound is then the start of the next microsecond.
pub(crate) fn history_bound(before: Option<HistoryPosition>) -> HistoryBound {
    let Some(p) = before else { return HistoryBound::All };
    if p.started_at > max_ts() {
        return HistoryBound::All;
    }
    if p.started_at < min_ts() {
        return HistoryBound::Nothing;
    }
    let t = trunc_micros(p.started_at);
    match i32::try_from(p.attempt) {
        Ok(attempt) if t == p.started_at => {
            HistoryBound::Before { started_at: t, attempt, execution_id: p.execution_id }
        }
        _ => match t.checked_add_signed(chrono::Duration::microseconds(1)) {
            Some(next) if next <= max_ts() => HistoryBound::Before {
                started_at: next,
                attempt: 0,
                execution_id: ExecutionId::from_u128(0),
            },
            _ => HistoryBound::All,
        },
    }
}

/// Checks that a timestamp is within the supported range, truncated to
/// microseconds.
pub(crate) fn check_ts(what: &str, t: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if t < min_ts() || t > max_ts() {
        return Err(format!("{what} {t} is outside the supported range (years 1 to 9999)"));
    }
    Ok(trunc_micros(t))
}

/// The SQL backend a value is encoded for: what differs between them.
///
/// Postgres `text` and `jsonb` cannot hold a NUL character; SQLite's `TEXT`
/// can. So for Postgres an id (a job or instance id) holding one is refused,
/// naming it, and free text (an error message, JSON strings and keys, metric
/// names) has it replaced by U+FFFD; for SQLite everything is kept verbatim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite: text holds any character.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Sqlite,
    /// Postgres: text holds no NUL.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres,
}

impl Dialect {
    /// Whether a text value may contain a NUL character.
    pub(crate) fn text_holds_nul(self) -> bool {
        match self {
            Dialect::Sqlite => true,
            Dialect::Postgres => false,
        }
    }

    /// An id (`what`: "job id", "instance id") as stored, or why it cannot be.
    pub(crate) fn id(self, what: &str, s: &str) -> Result<String, String> {
        self.check_id(what, s).map(str::to_owned)
    }

    /// [`id`](Self::id) of an event's shared id: the same `Arc`, not a copy.
    pub(crate) fn shared_id(self, what: &str, s: &Arc<str>) -> Result<Arc<str>, String> {
        self.check_id(what, s).map(|_| s.clone())
    }

    fn check_id<'s>(self, what: &str, s: &'s str) -> Result<&'s str, String> {
        if !self.text_holds_nul() && s.contains('\0') {
            return Err(format!("{what} {s:?} contains a NUL character"));
        }
        Ok(s)
    }

    /// Free text as stored: verbatim, or with NUL characters replaced by
    /// U+FFFD where text cannot hold them.
    pub(crate) fn free_text(self, s: &str) -> String {
        if !self.text_holds_nul() && s.contains('\0') {
            s.replace('\0', "\u{fffd}")
        } else {
            s.to_owned()
        }
    }

    /// JSON text of a value; where text cannot hold NUL, NUL characters
    /// inside strings and keys become U+FFFD.
    pub(crate) fn json(self, v: &Value) -> String {
        let text = v.to_string();
        if !self.text_holds_nul() && text.contains("\\u0000") {
            let mut v = v.clone();
            strip_nul(&mut v);
            return v.to_string();
        }
        text
    }

    /// JSON text of metrics: an object of numbers, where a value that is
    /// not finite is written as `null` (JSON has no NaN) and reads back as
    /// NaN. Names are free text.
    pub(crate) fn metrics(self, m: &Metrics) -> String {
        let obj: serde_json::Map<String, Value> = m
            .iter()
            .map(|(k, v)| {
                let value = serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number);
                (self.free_text(k), value)
            })
            .collect();
        Value::Object(obj).to_string()
    }

    /// The nominal time of a fire to claim, checked as [`check_ts`] does,
    /// its job id as [`Dialect::id`] does. The error names the job.
    pub(crate) fn check_claim(
        self,
        f: &mscribe_scheduler::FireClaim,
    ) -> Result<DateTime<Utc>, String> {
        self.id("job id", &f.job_id)?;
        check_ts("scheduled_at", f.scheduled_at)
            .map_err(|m| format!("fire of job {:?}: {m}", f.job_id))
    }
}

/// Replaces NUL characters in a JSON value's strings and keys by U+FFFD.
fn strip_nul(v: &mut Value) {
    match v {
        Value::String(s) => {
            if s.contains('\0') {
                *s = s.replace('\0', "\u{fffd}");
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nul),
        Value::Object(o) => {
            let entries: Vec<(String, Value)> = std::mem::take(o).into_iter().collect();
            for (k, mut val) in entries {
                strip_nul(&mut val);
                o.insert(k.replace('\0', "\u{fffd}"), val);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A cutoff for a comparison, brought into the supported range (every
/// stored value lies inside it, so comparisons are unchanged).
pub(crate) fn clamp_ts(t: DateTime<Utc>) -> DateTime<Utc> {
    trunc_micros(t.clamp(min_ts(), max_ts()))
}

/// `now - stale_after`, or the earliest supported time if that underflows.
pub(crate) fn cutoff(now: DateTime<Utc>, stale_after: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(stale_after)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .map_or_else(min_ts, clamp_ts)
}

/// When a lease taken at `now` for `lease` runs out: `now + lease`, at the
/// latest supported time when that is later (every stored time compares as
/// it would with the memory store's saturated one).
pub(crate) fn lease_until(now: DateTime<Utc>, lease: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(lease)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .map_or_else(max_ts, clamp_ts)
}

/// Milliseconds as stored (a signed 64-bit column), saturating.
pub(crate) fn ms_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[cfg(feature = "sqlite")]
/// The duration of an attempt abandoned at `now`, as the memory store computes it.
pub(crate) fn abandoned_ms(started_at: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    ms_i64(duration_ms((now - started_at).to_std().unwrap_or_default()))
}

#[cfg(feature = "sqlite")]
/// The error stored on an abandoned row.
pub(crate) fn abandoned_error(instance_id: &str) -> String {
    format!("instance {instance_id} stopped while the attempt ran")
}

/// The statuses that [`ExecutionStatus::is_failure`] counts, as an SQL list
/// literal, for `concat!` in the backends' SQL constants (checked against
/// the engine by a test).
macro_rules! failure_statuses_sql {
    () => {
        "('failed', 'timed_out', 'retries_exhausted', 'abandoned')"
    };
}
pub(crate) use failure_statuses_sql;

/// [`failure_statuses_sql!`] as a constant, for tests.
#[cfg(test)]
pub(crate) const FAILURE_STATUSES_SQL: &str = failure_statuses_sql!();

/// One row to write.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) job_id: Arc<str>,
    pub(crate) execution_id: ExecutionId,
    pub(crate) attempt: i32,
    pub(crate) status: ExecutionStatus,
    pub(crate) scheduled_at: DateTime<Utc>,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) completed_at: Option<DateTime<Utc>>,
    pub(crate) duration_ms: Option<i64>,
    pub(crate) error: Option<String>,
    /// `transient` or `permanent` ([`ErrorKind::as_str`]); only ends carry one.
    pub(crate) error_kind: Option<&'static str>,
    pub(crate) result: Option<String>,
    pub(crate) metrics: Option<String>,
    pub(crate) instance_id: Arc<str>,
    /// `schedule`, `manual` or `backfill` ([`FireKind::as_str`]).
    pub(crate) kind: &'static str,
    /// The fencing token the event carries: the store writes the row only
    /// when it is the fire's current one (see [`Row::fenced`]).
    pub(crate) fence: Option<i64>,
    /// Whether the event ends its fire's lease (a skip, or an end with
    /// `ends_run`), when it carries a fence that is still current.
    pub(crate) ends_lease: bool,
    /// How many events the row stands for: 2 for an end whose start came
    /// in the same call and was merged into it (see [`merge_starts`]).
    pub(crate) events: u8,
}

impl Row {
    /// The fence to check, with whether the event ends the lease: `None`
    /// for an event of a fire that was not claimed (written unchecked).
    pub(crate) fn fenced(&self) -> Option<(i64, bool)> {
        self.fence.map(|f| (f, self.ends_lease))
    }

    /// How a refused event's fire is named in [`StoreError::Fenced`], as
    /// the engine's `MemoryStore` names it.
    pub(crate) fn fire_label(&self) -> String {
        format!("{} at {}", self.job_id, self.scheduled_at)
    }

    /// Names the fire in `refused` once per event the row stands for.
    pub(crate) fn refuse_into(&self, refused: &mut Vec<String>) {
        let label = self.fire_label();
        for _ in 1..self.events {
            refused.push(label.clone());
        }
        refused.push(label);
    }

    /// Whether `end` is this start's end with the fields a start writes
    /// unchanged, so that inserting `end` alone leaves the row a start then
    /// its end would.
    fn ended_by(&self, end: &Row) -> bool {
        self.status == ExecutionStatus::Running
            && self.execution_id == end.execution_id
            && self.attempt == end.attempt
            && self.job_id == end.job_id
            && self.scheduled_at == end.scheduled_at
            && self.started_at == end.started_at
            && self.instance_id == end.instance_id
            && self.kind == end.kind
            && self.fence == end.fence
    }
}

/// Drops each start whose end follows in the same call, and makes the end
/// stand for both: the end's row, inserted whole or setting its end fields
/// on a row already there, is what the start then the end would leave, and
/// its fence is checked once in the same transaction as the two would be.
/// A short attempt's start and end usually reach the store together, so
/// this halves the rows written and spares an update per attempt.
pub(crate) fn merge_starts(ops: Vec<Op>) -> Vec<Op> {
    let starts = ops
        .iter()
        .filter(|op| matches!(op, Op::Insert(r) if r.status == ExecutionStatus::Running))
        .count();
    if starts == 0 {
        return ops;
    }
    let mut pending: HashMap<(ExecutionId, i32), usize> = HashMap::with_capacity(starts);
    let mut slots: Vec<Option<Op>> = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            Op::Insert(r) if r.status == ExecutionStatus::Running => {
                pending.entry((r.execution_id, r.attempt)).or_insert(slots.len());
                slots.push(Some(Op::Insert(r)));
            }
            Op::Upsert(mut end) => {
                if let Some(i) = pending.remove(&(end.execution_id, end.attempt))
                    && matches!(&slots[i], Some(Op::Insert(s)) if s.ended_by(&end))
                {
                    slots[i] = None;
                    end.events += 1;
                }
                slots.push(Some(Op::Upsert(end)));
            }
            skip @ Op::Insert(_) => slots.push(Some(skip)),
        }
    }
    slots.into_iter().flatten().collect()
}

/// A fencing token as stored (a signed 64-bit column).
pub(crate) fn fence_i64(fence: u64) -> Result<i64, String> {
    i64::try_from(fence)
        .map_err(|_| format!("fence {fence} exceeds the largest storable {}", i64::MAX))
}

/// A stored fencing token.
pub(crate) fn decode_fence(v: i64) -> StoreResult<u64> {
    u64::try_from(v)
        .ok()
        .filter(|f| *f >= 1)
        .ok_or_else(|| StoreError::Corrupt { message: format!("fence {v} is out of range") })
}

/// Parses a stored fire kind.
pub(crate) fn decode_kind(text: &str) -> StoreResult<FireKind> {
    text.parse().map_err(|message| StoreError::Corrupt { message })
}

#[cfg(feature = "postgres")]
impl Row {
    /// The `(execution_id, attempt)` key.
    pub(crate) fn key(&self) -> (ExecutionId, i32) {
        (self.execution_id, self.attempt)
    }
}

/// What to do with a row.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// `Started` or `Skipped`: insert, ignore a conflict.
    Insert(Row),
    /// `Finished`: insert the whole row, or on conflict set its end fields
    /// (status, completed_at, duration_ms, error, error_kind, result,
    /// metrics).
    Upsert(Row),
}

impl Op {
    pub(crate) fn row(&self) -> &Row {
        match self {
            Op::Insert(r) | Op::Upsert(r) => r,
        }
    }
}

/// Encodes events into rows for `dialect`. An event that cannot be stored (a
/// timestamp out of range, an attempt past `i32::MAX`, an id the dialect
/// cannot hold) is left out and named in the returned list, for
/// [`StoreError::write_outcome`]; the others are written, so one bad event
/// never costs the good ones.
pub(crate) fn encode(events: &[ExecutionEvent], dialect: Dialect) -> (Vec<Op>, Vec<String>) {
    let mut ops = Vec::with_capacity(events.len());
    let mut bad = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        match encode_one(ev, dialect) {
            Ok(op) => ops.push(op),
            Err(why) => bad.push(format!("event {i} ({}): {why}", ev.describe())),
        }
    }
    (merge_starts(ops), bad)
}

fn attempt_i32(a: u32) -> Result<i32, String> {
    i32::try_from(a).map_err(|_| format!("attempt {a} exceeds the largest storable {}", i32::MAX))
}

fn encode_one(ev: &ExecutionEvent, d: Dialect) -> Result<Op, String> {
    Ok(match ev {
        ExecutionEvent::Started(s) => Op::Insert(Row {
            job_id: d.shared_id("job id", &s.job_id)?,
            execution_id: s.execution_id,
            attempt: attempt_i32(s.attempt)?,
            status: ExecutionStatus::Running,
            scheduled_at: check_ts("scheduled_at", s.scheduled_at)?,
            started_at: check_ts("started_at", s.started_at)?,
            completed_at: None,
            duration_ms: None,
            error: None,
            error_kind: None,
            result: None,
            metrics: None,
            instance_id: d.shared_id("instance id", &s.instance_id)?,
            kind: s.kind.as_str(),
            fence: s.fence.map(fence_i64).transpose()?,
            ends_lease: false,
            events: 1,
        }),
        ExecutionEvent::Skipped(s) => Op::Insert(Row {
            job_id: d.shared_id("job id", &s.job_id)?,
            execution_id: s.execution_id,
            attempt: 0,
            status: ExecutionStatus::Skipped,
            scheduled_at: check_ts("scheduled_at", s.scheduled_at)?,
            started_at: check_ts("decided_at", s.decided_at)?,
            completed_at: Some(check_ts("decided_at", s.decided_at)?),
            duration_ms: Some(0),
            error: Some(d.free_text(&s.reason)),
            error_kind: None,
            result: None,
            metrics: None,
            instance_id: d.shared_id("instance id", &s.instance_id)?,
            kind: s.kind.as_str(),
            fence: s.fence.map(fence_i64).transpose()?,
            ends_lease: true,
            events: 1,
        }),
        ExecutionEvent::Finished(e) => Op::Upsert(Row {
            job_id: d.shared_id("job id", &e.job_id)?,
            execution_id: e.execution_id,
            attempt: attempt_i32(e.attempt)?,
            status: e.status,
            scheduled_at: check_ts("scheduled_at", e.scheduled_at)?,
            started_at: check_ts("started_at", e.started_at)?,
            completed_at: Some(check_ts("completed_at", e.completed_at)?),
            duration_ms: Some(ms_i64(duration_ms(e.duration))),
            error: e.error.as_deref().map(|t| d.free_text(t)),
            error_kind: e.error_kind.map(ErrorKind::as_str),
            result: e.result.as_ref().map(|v| d.json(v)),
            metrics: e.metrics.as_ref().map(|m| d.metrics(m)),
            instance_id: d.shared_id("instance id", &e.instance_id)?,
            kind: e.kind.as_str(),
            fence: e.fence.map(fence_i64).transpose()?,
            ends_lease: e.ends_run,
            events: 1,
        }),
    })
}

/// Parses stored result JSON.
pub(crate) fn decode_json(text: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        message: format!("result is not JSON ({e}): {text:.200}"),
    })
}

/// Parses stored metrics JSON (`null` values read as NaN).
pub(crate) fn decode_metrics(text: &str) -> StoreResult<Metrics> {
    let corrupt = |why: String| StoreError::Corrupt {
        message: format!("metrics are not an object of numbers ({why}): {text:.200}"),
    };
    let v: Value = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    let Value::Object(obj) = v else {
        return Err(corrupt("not an object".to_owned()));
    };
    obj.into_iter()
        .map(|(k, v)| match v {
            Value::Number(n) => n
                .as_f64()
                .map(|f| (k.clone(), f))
                .ok_or_else(|| corrupt(format!("{k} is out of range"))),
            Value::Null => Ok((k, f64::NAN)),
            other => Err(corrupt(format!("{k} is {other}"))),
        })
        .collect()
}

/// Parses a stored status.
pub(crate) fn decode_status(text: &str) -> StoreResult<ExecutionStatus> {
    text.parse().map_err(|e: mscribe_scheduler::ParseStatusError| StoreError::Corrupt {
        message: e.to_string(),
    })
}

/// Parses a stored execution id.
pub(crate) fn decode_execution_id(text: &str) -> StoreResult<ExecutionId> {
    text.parse().map_err(|e: mscribe_scheduler::ParseExecutionIdError| StoreError::Corrupt {
        message: e.to_string(),
    })
}

/// The execution id of job `job`'s claim, which claims made before leases
/// lack (such a claim is ended, so no lease query finds it).
pub(crate) fn decode_claim_execution_id(job: &str, text: Option<&str>) -> StoreResult<ExecutionId> {
    match text {
        Some(t) => decode_execution_id(t),
        None => Err(StoreError::Corrupt {
            message: format!("a lease of job {job:?} has no execution id"),
        }),
    }
}

/// Parses a stored error kind (`transient` or `permanent`).
pub(crate) fn decode_error_kind(text: &str) -> StoreResult<ErrorKind> {
    ErrorKind::parse(text).ok_or_else(|| StoreError::Corrupt {
        message: format!("error_kind {text:?} is neither \"transient\" nor \"permanent\""),
    })
}

/// A stored integer that must fit an unsigned field.
pub(crate) fn decode_u32(what: &str, v: i64) -> StoreResult<u32> {
    u32::try_from(v)
        .map_err(|_| StoreError::Corrupt { message: format!("{what} {v} is out of range") })
}

/// A stored duration in milliseconds.
pub(crate) fn decode_ms(v: i64) -> StoreResult<u64> {
    u64::try_from(v)
        .map_err(|_| StoreError::Corrupt { message: format!("duration_ms {v} is negative") })
}

/// This machine's host name, for the instances table.
pub(crate) fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests;
