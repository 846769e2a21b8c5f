//! `Schedule::parse` on arbitrary input.
//!
//! For any input (bytes read as UTF-8, lossily):
//!
//! - `Schedule::parse` (and `Schedule::cron`) never panic;
//! - when it parses, `next_after` is strictly increasing over 1,000 steps,
//!   from a fixed instant and from one taken from the input's last 8 bytes
//!   (1970..2200). It may stop early with `None` only where the documentation
//!   allows it: a one-shot time already passed, an interval that would leave
//!   chrono's range, or a cron expression with no match left before 2101;
//! - intervals step by exactly their duration; a phased interval
//!   (`@every 1m from <time>`) fires at its start first when asked before
//!   it, and otherwise on its grid `start + k × every`, without skipping a
//!   grid point; one-shot schedules fire once;
//! - `Display` round-trips: `Schedule::parse(&s.to_string())` succeeds, equals
//!   `s`, prints the same text again, and fires at the same instants (first
//!   50 steps from both starting instants).

#![no_main]

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use mscribe_scheduler::Schedule;

/// Steps of `next_after` checked from each starting instant.
const STEPS: usize = 1_000;
/// Steps compared between a schedule and its printed-and-reparsed copy.
const ROUND_TRIP_STEPS: usize = 50;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);

    // `cron` is what `parse` hands cron-looking input to; call it directly
    // too, so inputs `parse` routes elsewhere still reach it.
    if let Ok(s) = Schedule::cron(&input) {
        assert!(s.is_cron(), "Schedule::cron({input:?}) gave a non-cron {s:?}");
    }

    let Ok(schedule) = Schedule::parse(&input) else {
        return;
    };
    let starts = [fixed_start(), start_from(data)];

    for &start in &starts {
        check_sequence(&input, &schedule, start);
    }

    let text = schedule.to_string();
    let reparsed = Schedule::parse(&text).unwrap_or_else(|e| {
        panic!("{input:?} parsed to {schedule:?}, whose text {text:?} does not parse: {e}")
    });
    assert_eq!(reparsed, schedule, "{input:?}: reparsing its text {text:?} gives another schedule");
    assert_eq!(reparsed.to_string(), text, "{input:?}: the text of {text:?} is not a fixed point");
    for &start in &starts {
        let a = fires(&schedule, start, ROUND_TRIP_STEPS);
        let b = fires(&reparsed, start, ROUND_TRIP_STEPS);
        assert_eq!(a, b, "{input:?} and its text {text:?} fire differently after {start}");
    }
});

/// 2026-03-01T00:00:00Z.
fn fixed_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
}

/// An instant in [1970, 2200) taken from the last 8 bytes of `data`
/// (zero-padded in front when shorter), to nanosecond precision.
fn start_from(data: &[u8]) -> DateTime<Utc> {
    let mut raw = [0u8; 8];
    let tail = &data[data.len().saturating_sub(8)..];
    raw[8 - tail.len()..].copy_from_slice(tail);
    let lo = DateTime::<Utc>::UNIX_EPOCH;
    let hi = Utc.with_ymd_and_hms(2200, 1, 1, 0, 0, 0).unwrap();
    let span = (hi - lo).num_nanoseconds().expect("230 years fit in i64 nanoseconds") as u64;
    lo + TimeDelta::nanoseconds((u64::from_le_bytes(raw) % span) as i64)
}

/// The first `n` fires after `t` (fewer when the schedule runs out).
fn fires(s: &Schedule, mut t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let Some(next) = s.next_after(t) else { break };
        out.push(next);
        t = next;
    }
    out
}

/// Walks `STEPS` fires from `start`, checking each against the contract.
fn check_sequence(input: &str, s: &Schedule, start: DateTime<Utc>) {
    let mut t = start;
    for step in 0..STEPS {
        let next = s.next_after(t);
        assert_eq!(next, s.next_after(t), "{input:?} ({s:?}): next_after({t}) is not a function");
        let Some(next) = next else {
            check_end(input, s, start, t, step);
            return;
        };
        assert!(
            next > t,
            "{input:?} ({s:?}): step {step} from {start}: next_after({t}) = {next}, not after it"
        );
        if let Some(d) = s.interval_duration() {
            let d = TimeDelta::from_std(d).expect("an interval that fired fits a TimeDelta");
            match s.interval_start() {
                None => assert_eq!(next - t, d, "{input:?} ({s:?}): next_after({t}) = {next}"),
                Some(from) if t < from => {
                    assert_eq!(next, from, "{input:?} ({s:?}): next_after({t}) is not the start");
                }
                Some(from) => {
                    let since = nanos(next - from);
                    assert_eq!(since % nanos(d), 0, "{input:?} ({s:?}): {next} is off the grid");
                    assert!(next - d <= t, "{input:?} ({s:?}): next_after({t}) = {next} skips one");
                }
            }
        }
        if let Some(at) = s.once_at() {
            assert_eq!(next, at, "{input:?} ({s:?}): next_after({t}) = {next}");
        }
        t = next;
    }
    // Only a schedule that fires forever gets here.
    assert!(!s.is_once(), "{input:?} ({s:?}): a one-shot schedule fired {STEPS} times");
}

/// Whole nanoseconds of a non-negative `d` (i128: no range limit).
fn nanos(d: TimeDelta) -> i128 {
    i128::from(d.num_seconds()) * 1_000_000_000 + i128::from(d.subsec_nanos())
}

/// `next_after(t)` is `None`: check that the schedule may end there.
fn check_end(input: &str, s: &Schedule, start: DateTime<Utc>, t: DateTime<Utc>, step: usize) {
    if let Some(at) = s.once_at() {
        assert!(at <= t, "{input:?} ({s:?}): next_after({t}) = None before the time {at}");
        assert!(step <= 1, "{input:?} ({s:?}): a one-shot schedule fired {step} times");
    } else if let Some(d) = s.interval_duration() {
        let fits = TimeDelta::from_std(d).ok().and_then(|d| t.checked_add_signed(d)).is_some();
        assert!(!fits, "{input:?} ({s:?}): next_after({t}) = None, though {t} + {d:?} exists");
    } else {
        // Between 1901 and 2099 the calendar repeats every 28 years, and any
        // cron expression `parse` accepts matches some day in every such
        // cycle (2072-2099 included). So a cron schedule may run out (its
        // evaluator stops after 2100) only from 2071 on.
        let earliest_end = Utc.with_ymd_and_hms(2071, 1, 1, 0, 0, 0).unwrap();
        assert!(
            t >= earliest_end,
            "{input:?} ({s:?}): step {step} from {start}: next_after({t}) = None, \
             though a cron schedule has matches until 2100"
        );
    }
}
