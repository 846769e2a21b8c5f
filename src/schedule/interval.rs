//! Fixed intervals: one step on from a fire, the grid of a phased interval
//! (`start + k × every`), and the validation of an interval.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Kind, Schedule};
use crate::error::{Error, Result};

/// `t + every`. Within one UTC day (most steps of an interval of less than a
/// day) it adds to the time of day alone and skips chrono's calendar
/// arithmetic, which costs about twice as much per fire.
pub(super) fn step(t: DateTime<Utc>, every: Duration) -> Option<DateTime<Utc>> {
    use chrono::{NaiveTime, Timelike};
    const NS: u64 = 1_000_000_000;
    let n = t.naive_utc();
    let ns = u64::from(n.nanosecond());
    // Not from within a leap second, whose arithmetic chrono defines apart.
    if ns < NS && every.as_secs() < 86_400 {
        let sum_ns = ns + u64::from(every.subsec_nanos());
        let secs = u64::from(n.num_seconds_from_midnight()) + every.as_secs() + sum_ns / NS;
        if secs < 86_400 {
            let time =
                NaiveTime::from_num_seconds_from_midnight_opt(secs as u32, (sum_ns % NS) as u32)?;
            return Some(n.date().and_time(time).and_utc());
        }
    }
    t.checked_add_signed(chrono::Duration::from_std(every).ok()?)
}

/// The first `start + k × every` after `t` (`t >= start`), counted in i128
/// nanoseconds from `start`: any two instants chrono holds are at most
/// about 2^64 seconds apart.
pub(super) fn next_on_grid(
    start: DateTime<Utc>,
    every: Duration,
    t: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let every = i128::try_from(every.as_nanos()).ok()?;
    let elapsed = t - start;
    let elapsed =
        i128::from(elapsed.num_seconds()) * 1_000_000_000 + i128::from(elapsed.subsec_nanos());
    let ahead = (elapsed / every + 1) * every;
    let ahead = chrono::Duration::new(
        i64::try_from(ahead / 1_000_000_000).ok()?,
        (ahead % 1_000_000_000) as u32,
    )?;
    start.checked_add_signed(ahead)
}

/// An interval already validated by [`interval_from`], phased at `start`.
pub(super) fn phased(every: Duration, start: DateTime<Utc>) -> Schedule {
    Schedule { kind: Kind::Interval { every, start: Some(past_leap(start)) } }
}

/// `t`, or for an instant inside a leap second (`23:59:60.5`), the same
/// fraction into the next second (`00:00:00.5`): a phase's grid is counted
/// in plain seconds, and chrono's arithmetic does not invert across a leap
/// second.
fn past_leap(t: DateTime<Utc>) -> DateTime<Utc> {
    let ns = t.timestamp_subsec_nanos();
    if ns < 1_000_000_000 {
        return t;
    }
    DateTime::from_timestamp(t.timestamp() + 1, ns - 1_000_000_000).unwrap_or(t)
}

/// Validates an interval; `given` makes the text quoted in errors (only
/// then: registering many jobs formats nothing).
pub(super) fn interval_from(d: Duration, given: impl FnOnce() -> String) -> Result<Schedule> {
    if d.is_zero() {
        return Err(Error::ZeroInterval(given()));
    }
    if d < Duration::from_millis(1) {
        return Err(Error::InvalidSchedule {
            input: given(),
            reason: "interval must be at least 1ms".to_owned(),
        });
    }
    Ok(Schedule { kind: Kind::Interval { every: d, start: None } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::testing::{p, utc};

    #[test]
    fn intervals() {
        let t = utc(2026, 1, 1, 0, 0, 0);
        assert_eq!(p("60000ms").interval_duration(), Some(Duration::from_secs(60)));
        assert_eq!(p("60_000ms"), p("60s"));
        assert_eq!(p("@every 1h30m"), p("5400000ms"));
        assert_eq!(p("@every 700ms"), p("700ms"));
        assert_eq!(p("@every 1h30m").to_string(), "@every 1h30m");
        assert_eq!(p("@every 90m").to_string(), "@every 1h30m");
        assert_eq!(p("@every 1d").to_string(), "@every 24h");
        assert_eq!(p("@every 500ms").to_string(), "@every 500ms");
        assert_eq!(p("@every 1ms").next_after(t), Some(t + chrono::Duration::milliseconds(1)));
        let odd = Schedule::interval(Duration::new(3, 1_500_001)).unwrap();
        assert_eq!(odd.to_string(), "@every 3s1ms500us1ns");
        assert_eq!(p(&odd.to_string()), odd);
        assert_eq!(p("1500ms").next_after(t), Some(t + chrono::Duration::milliseconds(1500)));
        let huge = Schedule::interval(Duration::MAX).unwrap();
        assert_eq!(huge.next_after(t), None);
        assert_eq!(p(&huge.to_string()), huge);
        // Intervals ignore zones.
        assert_eq!(p("1s").with_timezone("Europe/Berlin").unwrap(), p("1s"));
    }

    #[test]
    fn a_phased_interval_fires_on_its_grid_never_before_its_start() {
        let start = utc(2026, 1, 1, 0, 0, 30);
        let s = Schedule::interval_at(start, Duration::from_secs(60)).unwrap();
        assert_eq!(
            s.next_after(utc(2025, 12, 31, 0, 0, 0)),
            Some(start),
            "nothing before the start"
        );
        assert_eq!(s.next_after(start), Some(utc(2026, 1, 1, 0, 1, 30)), "strictly after");
        assert_eq!(s.next_after(utc(2026, 3, 1, 12, 0, 29)), Some(utc(2026, 3, 1, 12, 0, 30)));
        assert_eq!(s.next_after(utc(2026, 3, 1, 12, 0, 30)), Some(utc(2026, 3, 1, 12, 1, 30)));
        assert_eq!(s.interval_duration(), Some(Duration::from_secs(60)));
        assert_eq!(s.interval_start(), Some(start));
        let leap = p("@every 1s from 2016-12-31T23:59:60.5Z");
        assert_eq!(leap.to_string(), "@every 1s from 2017-01-01T00:00:00.500Z");
        assert_eq!(
            leap.next_after(utc(2017, 1, 1, 0, 0, 1)),
            Some(utc(2017, 1, 1, 0, 0, 1) + chrono::Duration::milliseconds(500))
        );
        assert_eq!(Schedule::interval(Duration::from_secs(60)).unwrap().interval_start(), None);
        // Far from the start, and past the range of i64 nanoseconds (2262).
        let far = utc(9999, 12, 31, 23, 59, 0);
        assert_eq!(s.next_after(far), Some(utc(9999, 12, 31, 23, 59, 30)));
        assert_eq!(s.next_after(DateTime::<Utc>::MAX_UTC), None, "past chrono's range");
        assert_eq!(p("@every 1m from 2026-01-01T00:00:30Z"), s);
        assert_eq!(
            p("  @every 1m   from   2026-01-01T01:00:30+01:00 "),
            s,
            "any offset, any spacing"
        );
        assert_ne!(s, Schedule::interval(Duration::from_secs(60)).unwrap());
    }

    proptest::proptest! {
        /// The scheduler's one step from a fire lands where the grid says,
        /// for any phase, period and fire within a century of the start.
        #[test]
        fn a_step_from_a_fire_is_the_grids_next_fire(
            start_s in -2_000_000_000i64..8_000_000_000,
            start_ns in 0u32..1_000_000_000,
            every_ns in 1_000_000u64..400_000_000_000_000,
            after_ns in 0i64..3_000_000_000_000_000_000,
        ) {
            let start = DateTime::from_timestamp(start_s, start_ns).unwrap();
            let s = Schedule::interval_at(start, Duration::from_nanos(every_ns)).unwrap();
            let t = start + chrono::Duration::nanoseconds(after_ns);
            let fire = s.next_after(t).unwrap();
            proptest::prop_assert!(fire > t);
            let step = chrono::Duration::nanoseconds(every_ns as i64);
            proptest::prop_assert_eq!(s.next_after(fire), Some(fire + step));
            proptest::prop_assert_eq!(s.next_after_fire(fire), Some(fire + step));
        }

        /// A step within the day equals chrono's addition, near midnight and
        /// at the ends of chrono's range too.
        #[test]
        fn a_step_is_chronos_addition(
            secs in proptest::prop_oneof![
                -8_000_000_000_000i64..8_000_000_000_000,
                proptest::strategy::Strategy::prop_map(0i64..100, |d| d * 86_400 - 1),
                proptest::strategy::Just(DateTime::<Utc>::MAX_UTC.timestamp()),
            ],
            ns in 0u32..1_000_000_000,
            every_ns in proptest::prop_oneof![
                0u64..2_000_000_000,
                0u64..86_400_000_000_000,
                0u64..u64::MAX,
            ],
        ) {
            let t = DateTime::from_timestamp(secs, ns).unwrap();
            let every = Duration::from_nanos(every_ns);
            let want = chrono::Duration::from_std(every).ok().and_then(|d| t.checked_add_signed(d));
            proptest::prop_assert_eq!(step(t, every), want);
        }
    }

    #[test]
    fn a_step_from_a_leap_second_is_chronos_addition() {
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        for every in
            [Duration::from_millis(1), Duration::from_millis(600), Duration::from_secs(300)]
        {
            let want = leap.checked_add_signed(chrono::Duration::from_std(every).unwrap());
            assert_eq!(step(leap, every), want, "{every:?}");
        }
    }

    #[test]
    fn a_bad_phased_interval_is_an_error_quoting_it() {
        let e = Schedule::parse("@every 1m from yesterday").unwrap_err().to_string();
        assert!(e.contains("\"@every 1m from yesterday\"") && e.contains("RFC 3339"), "{e}");
        let e = Schedule::parse("@every soon from 2026-01-01T00:00:00Z").unwrap_err().to_string();
        assert!(e.contains("soon") && e.contains("duration"), "{e}");
        let start = utc(2026, 1, 1, 0, 0, 0);
        assert!(matches!(
            Schedule::interval_at(start, Duration::ZERO),
            Err(Error::ZeroInterval(v)) if v.contains("2026-01-01")
        ));
        let e = Schedule::parse("CRON_TZ=UTC @every 1m from 2026-01-01T00:00:00Z").unwrap_err();
        assert!(e.to_string().contains("only to cron"), "{e}");
    }
}
