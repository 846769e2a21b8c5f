//! When a job fires: cron expressions, fixed intervals and one-shot times.
//!
//! A [`Schedule`] is parsed once, at registration, and then answers one pure
//! question, [`Schedule::next_after`]: the first fire strictly after an
//! instant. It reads no clock, so it is tested without one.
//!
//! # Syntax
//!
//! | form | example | meaning |
//! |---|---|---|
//! | 5-field cron | `0 2 * * *` | minute, hour, day of month, month, day of week, read as crontab(5) reads them |
//! | 6-field cron | `*/10 * * * * *` | a seconds field first, then the five above |
//! | macro | `@daily` | see below |
//! | interval | `60s`, `700ms`, `@every 1h30m` | units `d`, `h`, `m`, `s`, `ms`, `us` (or `µs`), `ns`; at least 1 ms; counted from the instant passed to `next_after` |
//! | one shot | `@at 2026-01-01T00:00:00Z` | once, at an RFC 3339 time |
//! | time zone | `CRON_TZ=Europe/Berlin 0 2 * * *` | cron read on that zone's wall clock; `TZ=` works too |
//!
//! Each cron field is a comma-separated list of items, and each item is one
//! of `*`, `n`, `a-b`, `*/s`, `a-b/s` or `n/s` (`n` to the field's maximum, in
//! steps of `s`). Months may be named `JAN`-`DEC` and days of the week
//! `SUN`-`SAT`, in any case. Days of the week run 0-7, where both 0 and 7 are
//! Sunday. `?` stands for `*` in the day-of-month and day-of-week fields.
//!
//! As in crontab, when both the day-of-month and the day-of-week field are
//! restricted (neither starts with `*` or `?`), a day matches when *either*
//! matches: `0 0 1,15 * MON` fires on the 1st, on the 15th and on every
//! Monday. When one of them starts with `*` (`*/2` included), both must match.
//! An expression whose day of month exists in none of its months
//! (`0 0 30 2 *`) is refused rather than left to never fire.
//!
//! The macros are `@yearly` and `@annually` (`0 0 1 1 *`), `@monthly`
//! (`0 0 1 * *`), `@weekly` (`0 0 * * 0`), `@daily` and `@midnight`
//! (`0 0 * * *`) and `@hourly` (`0 * * * *`).
//!
//! A schedule prints back in a form that [`Schedule::parse`] reads to an equal
//! schedule: `Schedule::parse(&s.to_string())` equals `s`.
//!
//! # Time zones and daylight saving time
//!
//! Without a zone, cron is read in UTC. With one, cron is matched against the
//! zone's local wall-clock time, which is then mapped to an instant:
//!
//! - a local time that exists once fires at that instant;
//! - a local time that exists twice (the clocks go back) fires once, at its
//!   *first* occurrence; the repeated hour does not fire again;
//! - a local time that does not exist (the clocks go forward) fires once at
//!   the first instant after the gap, the moment of the transition. All the
//!   matches that fall in one gap collapse into that single fire.
//!
//! Intervals and one-shot times are absolute and ignore zones.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use mscribe_scheduler::Schedule;
//!
//! let s = Schedule::parse("CRON_TZ=Europe/Berlin 30 2 * * *")?;
//!
//! // 2026-03-29: at 02:00 CET the clocks jump to 03:00 CEST, so 02:30 does not
//! // exist; the job fires once, at the jump (01:00 UTC).
//! let t = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
//! assert_eq!(s.next_after(t), Some(Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap()));
//!
//! // 2026-10-25: at 03:00 CEST the clocks go back to 02:00 CET, so 02:30
//! // happens twice; the job fires at the first one (00:30 UTC) only.
//! let t = Utc.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap();
//! let first = s.next_after(t).unwrap();
//! assert_eq!(first, Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap());
//! assert_eq!(s.next_after(first), Some(Utc.with_ymd_and_hms(2026, 10, 26, 1, 30, 0).unwrap()));
//!
//! // Display round-trips.
//! assert_eq!(s.to_string(), "CRON_TZ=Europe/Berlin 30 2 * * *");
//! assert_eq!(Schedule::parse(&s.to_string())?, s);
//! # Ok::<(), mscribe_scheduler::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;

use crate::error::{Error, Result};

mod cron;
mod interval;
mod parse;

use cron::Cron;
use interval::{interval_from, next_on_grid, phased, step};
pub(crate) use parse::parse_zone;
use parse::{split_zone, write_duration};

/// When a job fires: a cron expression (optionally in a time zone), a fixed
/// interval, or one instant.
///
/// Build one with [`Schedule::parse`] (or [`str::parse`]), [`Schedule::cron`],
/// [`Schedule::interval`], [`Schedule::every_ms`] or [`Schedule::once`]. See
/// [`Schedule::parse`] for the syntax, and `docs/SEMANTICS.md` (§1, §7) for
/// the rules around daylight saving time.
///
/// Cloning is cheap: a parsed cron expression is shared.
///
/// Two schedules are equal when they fire at the same times by construction:
/// the same kind, the same zone and, for cron, the same normalised fields
/// (so `0 2 * * *`, `0 0 2 * * *` and `0 2 ? * SUN-SAT` are equal).
#[derive(Clone, PartialEq, Eq)]
pub struct Schedule {
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Cron(Arc<Cron>),
    /// Every `every`; from `start` on when it is set (the fires fall on
    /// `start + k × every`), else counted from the instant given to
    /// `next_after`.
    Interval {
        every: Duration,
        start: Option<DateTime<Utc>>,
    },
    Once(DateTime<Utc>),
}

impl Schedule {
    /// Parses a cron expression: 5 fields (minute precision, like crontab),
    /// 6 fields (seconds first) or a macro such as `@daily`, optionally
    /// prefixed by `CRON_TZ=<zone>` or `TZ=<zone>`.
    ///
    /// ```
    /// use mscribe_scheduler::Schedule;
    ///
    /// let s = Schedule::cron("CRON_TZ=America/New_York 0 9 * * MON-FRI")?;
    /// assert_eq!(s.timezone(), Some(chrono_tz::America::New_York));
    /// # Ok::<(), mscribe_scheduler::Error>(())
    /// ```
    pub fn cron(expr: &str) -> Result<Schedule> {
        let whole = expr.trim();
        let (tz, body) = match split_zone(whole) {
            Some((name, body)) => (Some(parse_zone(name)?), body),
            None => (None, whole),
        };
        let cron = Cron::parse(whole, body, tz)?;
        Ok(Schedule { kind: Kind::Cron(Arc::new(cron)) })
    }

    /// A fixed interval: each fire comes `d` after the instant passed to
    /// [`Schedule::next_after`]. `d` must be at least 1 ms.
    pub fn interval(d: Duration) -> Result<Schedule> {
        interval_from(d, || format!("{d:?}"))
    }

    /// A fixed interval with a phase: fires at `start`, `start + every`,
    /// `start + 2 × every`, … and never before `start`, wherever the
    /// scheduler starts or the job is registered (as tokio's
    /// `interval_at`). A `start` in the past is a phase: the first fire is
    /// the next one on that grid. A `start` inside a leap second counts
    /// from the same fraction of the next second. Giving jobs on one
    /// interval different starts spreads their fires over it instead of
    /// firing them all at the same instant. `every` must be at least 1 ms.
    /// Text form: `@every 1m from 2026-01-01T00:00:30Z`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use chrono::{TimeZone, Utc};
    /// use mscribe_scheduler::Schedule;
    ///
    /// let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 30).unwrap();
    /// let s = Schedule::interval_at(start, Duration::from_secs(60))?;
    /// let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    /// assert_eq!(s.next_after(now), Some(Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 30).unwrap()));
    /// assert_eq!(s.to_string(), "@every 1m from 2026-01-01T00:00:30Z");
    /// assert_eq!(Schedule::parse(&s.to_string())?, s);
    /// # Ok::<(), mscribe_scheduler::Error>(())
    /// ```
    pub fn interval_at(start: DateTime<Utc>, every: Duration) -> Result<Schedule> {
        interval_from(every, || format!("{every:?} from {}", start.to_rfc3339()))?;
        Ok(phased(every, start))
    }

    /// A fixed interval in milliseconds; zero is refused.
    pub fn every_ms(ms: u64) -> Result<Schedule> {
        interval_from(Duration::from_millis(ms), || ms.to_string())
    }

    /// One fire at `at`.
    pub fn once(at: DateTime<Utc>) -> Schedule {
        Schedule { kind: Kind::Once(at) }
    }

    /// Reads a cron schedule on the wall clock of the IANA zone `tz`
    /// (replacing any `CRON_TZ=` it was parsed with).
    ///
    /// Intervals and one-shot times are absolute and are returned unchanged,
    /// but the zone's name is still checked, so a typo is never silent.
    pub fn with_timezone(self, tz: &str) -> Result<Schedule> {
        let zone = parse_zone(tz)?;
        match self.kind {
            Kind::Cron(c) => {
                let mut cron = Arc::unwrap_or_clone(c);
                cron.tz = Some(zone);
                Ok(Schedule { kind: Kind::Cron(Arc::new(cron)) })
            }
            other => Ok(Schedule { kind: other }),
        }
    }

    /// The time zone a cron schedule is read in; `None` for UTC, intervals
    /// and one-shot times.
    pub fn timezone(&self) -> Option<Tz> {
        match &self.kind {
            Kind::Cron(c) => c.tz,
            Kind::Interval { .. } | Kind::Once(_) => None,
        }
    }

    /// How many schedules share this one's parsed cron (1 for other kinds).
    pub(crate) fn shared(&self) -> usize {
        match &self.kind {
            Kind::Cron(c) => Arc::strong_count(c),
            Kind::Interval { .. } | Kind::Once(_) => 1,
        }
    }

    /// Whether this is a cron schedule (including the macros).
    pub fn is_cron(&self) -> bool {
        matches!(self.kind, Kind::Cron(_))
    }

    /// The fixed interval, for interval schedules.
    pub fn interval_duration(&self) -> Option<Duration> {
        match self.kind {
            Kind::Interval { every, .. } => Some(every),
            Kind::Cron(_) | Kind::Once(_) => None,
        }
    }

    /// The start of a phased interval ([`Schedule::interval_at`]): its
    /// fires fall on `start + k × every`.
    pub fn interval_start(&self) -> Option<DateTime<Utc>> {
        match self.kind {
            Kind::Interval { start, .. } => start,
            Kind::Cron(_) | Kind::Once(_) => None,
        }
    }

    /// Whether this is a one-shot schedule.
    pub fn is_once(&self) -> bool {
        matches!(self.kind, Kind::Once(_))
    }

    /// The instant of a one-shot schedule.
    pub fn once_at(&self) -> Option<DateTime<Utc>> {
        match self.kind {
            Kind::Once(at) => Some(at),
            Kind::Cron(_) | Kind::Interval { .. } => None,
        }
    }

    /// The first fire strictly after `t`, or `None` when there is none: a
    /// one-shot time at or before `t`, an instant out of range, or a cron
    /// expression with no match left before the end of 2100.
    ///
    /// A pure function of `t`; it does not allocate.
    #[inline]
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Cron(c) => c.next_after(t),
            Kind::Interval { every, start: None } => step(t, *every),
            Kind::Interval { every, start: Some(start) } => {
                if t < *start {
                    return Some(*start);
                }
                next_on_grid(*start, *every, t)
            }
            Kind::Once(at) => (*at > t).then_some(*at),
        }
    }

    /// The next fire after `t` of a job whose last fire was `last`: for an
    /// interval counted from the previous fire, the next instant of the
    /// grid `last + k × every` after `t` (so a pause or missed fires never
    /// move the grid); for every other schedule, [`next_after`](Self::next_after).
    pub(crate) fn next_after_since(
        &self,
        last: DateTime<Utc>,
        t: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Interval { every, start: None } if t >= last => next_on_grid(last, *every, t),
            Kind::Interval { every, start: None } => step(last, *every),
            _ => self.next_after(t),
        }
    }

    /// `t`, or for an interval counted from the previous fire, the latest
    /// instant of the grid of `last` at or before `t` (from which the
    /// misfire plan lists the fires after it).
    pub(crate) fn grid_at_or_before(&self, last: DateTime<Utc>, t: DateTime<Utc>) -> DateTime<Utc> {
        match &self.kind {
            Kind::Interval { every, start: None } if t >= last => {
                next_on_grid(last, *every, t).map_or(t, |next| crate::clock::before(next, *every))
            }
            _ => t,
        }
    }

    /// An instant whose next fire is `fire`, itself a fire of this
    /// schedule: where the misfire plan starts to list the fires from
    /// `fire` on. One step back for an interval counted from the previous
    /// fire, else just before `fire`.
    pub(crate) fn before_fire(&self, fire: DateTime<Utc>) -> DateTime<Utc> {
        match &self.kind {
            Kind::Interval { every, start: None } => crate::clock::before(fire, *every),
            _ => crate::clock::before(fire, Duration::from_nanos(1)),
        }
    }

    /// The next fire after `fire`, itself a fire of this schedule (an
    /// answer of [`next_after`](Self::next_after)): for an interval, one
    /// step on, with no grid arithmetic (a phased interval's grid costs
    /// three times a step). The scheduler plans each fire from the last
    /// one here.
    pub(crate) fn next_after_fire(&self, fire: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next = match &self.kind {
            Kind::Interval { every, .. } => step(fire, *every),
            _ => return self.next_after(fire),
        };
        debug_assert_eq!(next, self.next_after(fire), "{fire} is not a fire of {self}");
        next
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Cron(c) => match c.tz {
                Some(tz) => write!(f, "CRON_TZ={} {}", tz.name(), c.source),
                None => f.write_str(&c.source),
            },
            Kind::Interval { every, start } => {
                f.write_str("@every ")?;
                write_duration(f, *every)?;
                match start {
                    Some(at) => {
                        write!(f, " from {}", at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                    }
                    None => Ok(()),
                }
            }
            Kind::Once(at) => write!(f, "@at {}", at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schedule").field(&format_args!("\"{self}\"")).finish()
    }
}

impl FromStr for Schedule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Schedule::parse(s)
    }
}

/// Helpers of the schedule tests, in every file of this module.
#[cfg(test)]
mod testing {
    use chrono::{DateTime, TimeZone, Utc};

    use super::Schedule;

    pub(super) fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    pub(super) fn p(s: &str) -> Schedule {
        Schedule::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    pub(super) fn err(s: &str) -> String {
        Schedule::parse(s).unwrap_err().to_string()
    }

    /// The next `n` fires after `t`.
    pub(super) fn fires(s: &Schedule, mut t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        for _ in 0..n {
            t = s.next_after(t).expect("a next fire");
            out.push(t);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{p, utc};
    use super::*;

    #[test]
    fn once() {
        let at = utc(2026, 1, 1, 0, 0, 0);
        let s = p("@at 2026-01-01T00:00:00Z");
        assert_eq!(s, Schedule::once(at));
        assert!(s.is_once());
        assert_eq!(s.once_at(), Some(at));
        assert_eq!(s.next_after(at - chrono::Duration::nanoseconds(1)), Some(at));
        assert_eq!(s.next_after(at), None);
        assert_eq!(p("@at 2026-01-01T01:00:00+01:00"), s);
        assert_eq!(s.to_string(), "@at 2026-01-01T00:00:00Z");
        let precise = Schedule::once(at + chrono::Duration::nanoseconds(123));
        assert_eq!(p(&precise.to_string()), precise);
    }

    #[test]
    fn schedule_is_send_sync_and_small() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Schedule>();
        // A phased interval's duration and start; every job holds one.
        assert!(std::mem::size_of::<Schedule>() <= 32);
    }
}
