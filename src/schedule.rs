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

use std::fmt::{self, Write as _};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::offset::LocalResult;
use chrono::{DateTime, Datelike, NaiveDateTime, Offset, SecondsFormat, TimeZone, Utc};
use chrono_tz::{GapInfo, Tz};

use crate::error::{Error, Result};

/// When a job fires: a cron expression (optionally in a time zone), a fixed
/// interval, or one instant.
///
/// Build one with [`Schedule::parse`] (or [`str::parse`]), [`Schedule::cron`],
/// [`Schedule::interval`], [`Schedule::every_ms`] or [`Schedule::once`]. See
/// the [module documentation](self) for the syntax and the rules around
/// daylight saving time.
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

/// A parsed cron expression and its evaluator.
#[derive(Clone, Debug)]
struct Cron {
    /// The expression as given, fields separated by one space, without the
    /// zone prefix; a macro is kept in lower case.
    source: Box<str>,
    tz: Option<Tz>,
    fields: Fields,
    eval: Eval,
    memo: Memo,
}

/// The last two `next_after` queries of a cron and their answers. Jobs that
/// share a parsed cron (the scheduler shares one per expression and zone)
/// come due together and then ask for the same next fire; all but the first
/// get it from here. Two entries, because a job with a start jitter also
/// asks for the fire after its next one (the room for its delay), which
/// would otherwise push out the answer the jobs after it ask for. An answer
/// serves every instant from its query up to the answer itself: no fire lies
/// between (the instants past [`LAST_YEAR`] are answered before the memo).
/// `try_lock`, so a query never waits on another thread.
#[derive(Default)]
struct Memo(std::sync::Mutex<[Option<Answer>; 2]>);

/// A query of `next_after` and its answer.
type Answer = (DateTime<Utc>, Option<DateTime<Utc>>);

impl Memo {
    fn get(&self, t: DateTime<Utc>) -> Option<Option<DateTime<Utc>>> {
        let g = self.0.try_lock().ok()?;
        g.iter().flatten().find(|(q, a)| *q <= t && a.is_none_or(|a| t < a)).map(|(_, a)| *a)
    }

    fn set(&self, t: DateTime<Utc>, answer: Option<DateTime<Utc>>) {
        if let Ok(mut g) = self.0.try_lock() {
            g[1] = g[0].replace((t, answer));
        }
    }
}

impl Clone for Memo {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

impl fmt::Debug for Memo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Memo")
    }
}

impl PartialEq for Cron {
    fn eq(&self, other: &Self) -> bool {
        // `eval` is a function of `fields`; `source` is only how it was spelt.
        self.fields == other.fields && self.tz == other.tz
    }
}

impl Eq for Cron {}

/// The normalised fields: bit `n` of a mask is set when value `n` matches.
/// Days of the week are numbered 0-6 from Sunday.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fields {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// Crontab's rule: a day matches when its day of month *or* its day of
    /// week matches (both fields restricted). Otherwise both must match.
    days_either: bool,
}

/// Evaluates the fields with the `cron` crate, which always ANDs the two day
/// fields, numbers days of the week 1-7 from Sunday and needs seconds.
#[derive(Clone, Debug)]
enum Eval {
    /// Day of month and day of week must both match.
    Both(Box<cron::Schedule>),
    /// Either may match: the earlier of a schedule restricted by day of month
    /// only and one restricted by day of week only.
    Either(Box<cron::Schedule>, Box<cron::Schedule>),
}

impl Eval {
    /// The first match strictly after `after`, read as a wall-clock time
    /// (UTC stands in for "no zone").
    #[inline]
    fn next(&self, after: &DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Eval::Both(s) => s.after(after).next(),
            Eval::Either(a, b) => match (a.after(after).next(), b.after(after).next()) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            },
        }
    }
}

/// The macros, with the 5-field expressions they stand for.
const MACROS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

const UNKNOWN_MACRO_HELP: &str = "expected @yearly, @annually, @monthly, @weekly, @daily, \
     @midnight, @hourly, @every <duration> or @at <RFC 3339 time>";

const GARBAGE_HELP: &str = "expected a cron expression (\"0 2 * * *\"), a macro (\"@daily\"), \
     an interval (\"60s\", \"@every 1h30m\") or a time (\"@at 2026-01-01T00:00:00Z\")";

const DURATION_HELP: &str = "expected a duration such as \"1h30m\", \"5s\" or \"500ms\"";

/// The cron crate knows no year after this one.
const LAST_YEAR: i32 = 2100;

impl Schedule {
    /// Parses any schedule: 5- or 6-field cron, a macro such as `@daily`,
    /// an interval (`60s`, `700ms`, `@every 1h30m`) or
    /// `@at 2026-01-01T00:00:00Z`, each cron form optionally prefixed by
    /// `CRON_TZ=<zone>` (or `TZ=<zone>`).
    ///
    /// A bare number such as `"700"` is refused: it reads as seconds to
    /// some and milliseconds to others. Write `"700ms"`, or pass the
    /// integer itself to [`JobConfig::schedule`](crate::JobConfig::schedule),
    /// which reads it as milliseconds.
    ///
    /// Errors quote the input: [`Error::InvalidCronField`] names the bad
    /// field, [`Error::InvalidCron`] reports a wrong field count or an unknown
    /// macro, [`Error::UnknownTimeZone`] a zone chrono-tz does not know,
    /// [`Error::ZeroInterval`] an interval of zero, and
    /// [`Error::InvalidSchedule`] anything else.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mscribe_scheduler::Schedule;
    ///
    /// assert_eq!(Schedule::parse("60s")?.interval_duration(), Some(Duration::from_secs(60)));
    /// assert_eq!(Schedule::parse("@every 1h30m")?, Schedule::parse("90m")?);
    /// let err = Schedule::parse("700").unwrap_err();
    /// assert!(err.to_string().contains(r#"write "700ms" for milliseconds or "@every 700s""#));
    /// let err = Schedule::parse("61 * * * *").unwrap_err();
    /// assert_eq!(err.to_string(), r#"invalid minute field "61" in "61 * * * *": expected 0-59"#);
    /// # Ok::<(), mscribe_scheduler::Error>(())
    /// ```
    pub fn parse(input: &str) -> Result<Schedule> {
        let s = input.trim();
        if s.is_empty() {
            return Err(Error::InvalidSchedule {
                input: input.to_owned(),
                reason: "schedule is empty".to_owned(),
            });
        }
        if let Some((_, body)) = split_zone(s) {
            if strip_keyword(body, "@every").is_some()
                || strip_keyword(body, "@at").is_some()
                || is_millis(body)
                || bare_duration(body).is_some()
            {
                return Err(Error::InvalidSchedule {
                    input: s.to_owned(),
                    reason: "a time zone applies only to cron expressions and macros".to_owned(),
                });
            }
            return Schedule::cron(s);
        }
        if let Some(rest) = strip_keyword(s, "@every") {
            let (every, start) = match rest.split_once(" from ") {
                Some((every, start)) => (every, Some(start.trim())),
                None => (rest, None),
            };
            let d = parse_duration(every.trim()).ok_or_else(|| Error::InvalidSchedule {
                input: s.to_owned(),
                reason: DURATION_HELP.to_owned(),
            })?;
            let schedule = interval_from(d, || s.to_owned())?;
            let Some(start) = start else { return Ok(schedule) };
            let start = DateTime::parse_from_rfc3339(start).map_err(|e| Error::InvalidSchedule {
                input: s.to_owned(),
                reason: format!(
                    "expected an RFC 3339 time after \"from\", such as 2026-01-01T00:00:00Z ({e})"
                ),
            })?;
            return Ok(phased(d, start.to_utc()));
        }
        if let Some(rest) = strip_keyword(s, "@at") {
            let at = DateTime::parse_from_rfc3339(rest).map_err(|e| Error::InvalidSchedule {
                input: s.to_owned(),
                reason: format!("expected an RFC 3339 time such as 2026-01-01T00:00:00Z ({e})"),
            })?;
            return Ok(Schedule::once(at.to_utc()));
        }
        if is_millis(s) {
            return Err(Error::InvalidSchedule {
                input: s.to_owned(),
                reason: format!(
                    "a bare number is ambiguous: write \"{s}ms\" for milliseconds or \"@every {s}s\" \
                     for seconds (an integer given as a number, not a string, is milliseconds)"
                ),
            });
        }
        if let Some(d) = bare_duration(s) {
            return interval_from(d, || s.to_owned());
        }
        if s.starts_with('@') {
            return Schedule::cron(s);
        }
        let tokens = s.split_whitespace();
        let cron_like = tokens.clone().filter(|t| looks_like_cron_field(t)).count();
        let n = tokens.count();
        if cron_like == 0 || (!(5..=6).contains(&n) && cron_like < n) {
            return Err(Error::InvalidSchedule {
                input: s.to_owned(),
                reason: GARBAGE_HELP.to_owned(),
            });
        }
        Schedule::cron(s)
    }

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

/// `t + every`. Within one UTC day (most steps of an interval of less than a
/// day) it adds to the time of day alone and skips chrono's calendar
/// arithmetic, which costs about twice as much per fire.
fn step(t: DateTime<Utc>, every: Duration) -> Option<DateTime<Utc>> {
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
fn next_on_grid(start: DateTime<Utc>, every: Duration, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
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
fn phased(every: Duration, start: DateTime<Utc>) -> Schedule {
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
fn interval_from(d: Duration, given: impl FnOnce() -> String) -> Result<Schedule> {
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

/// A duration with its units and nothing else, such as `700ms` or `1h30m`.
fn bare_duration(s: &str) -> Option<Duration> {
    if !s.starts_with(|c: char| c.is_ascii_digit()) || s.contains(char::is_whitespace) {
        return None;
    }
    parse_duration(s)
}

/// Whether `s` is a bare number such as `60000` or `60_000`.
fn is_millis(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'_')
}

/// `s` without a leading `keyword` and the white space after it, when `s`
/// starts with that keyword (in any case) followed by white space.
fn strip_keyword<'a>(s: &'a str, keyword: &str) -> Option<&'a str> {
    let head = s.get(..keyword.len())?;
    let rest = &s[keyword.len()..];
    let separated = rest.is_empty() || rest.starts_with(char::is_whitespace);
    (head.eq_ignore_ascii_case(keyword) && separated).then(|| rest.trim_start())
}

/// Splits `CRON_TZ=<zone> <rest>` (or `TZ=`) into the zone's name and the rest.
fn split_zone(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix("CRON_TZ=").or_else(|| s.strip_prefix("TZ="))?;
    Some(match rest.split_once(char::is_whitespace) {
        Some((name, body)) => (name, body.trim_start()),
        None => (rest, ""),
    })
}

/// An IANA zone by name.
pub(crate) fn parse_zone(name: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| Error::UnknownTimeZone(name.to_owned()))
}

/// A sum of `<number><unit>` terms, such as `1h30m`; `None` when malformed
/// or too large.
fn parse_duration(s: &str) -> Option<Duration> {
    let mut rest = s;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '_').unwrap_or(rest.len());
        if digits == 0 || rest.starts_with('_') {
            return None;
        }
        let n = rest[..digits]
            .bytes()
            .filter(u8::is_ascii_digit)
            .try_fold(0u64, |acc, b| acc.checked_mul(10)?.checked_add(u64::from(b - b'0')))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let nanos_per: u64 = match &rest[..unit_len] {
            "d" => 86_400_000_000_000,
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" => 1_000,
            "ns" => 1,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let term = if nanos_per >= 1_000_000_000 {
            Duration::from_secs(n.checked_mul(nanos_per / 1_000_000_000)?)
        } else {
            Duration::from_nanos(n.checked_mul(nanos_per)?)
        };
        total = total.checked_add(term)?;
    }
    Some(total)
}

/// Prints a duration as `@every` reads it: `1h30m`, `500ms`, `2s1ns`.
fn write_duration(f: &mut fmt::Formatter<'_>, d: Duration) -> fmt::Result {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    let parts = [
        (secs / 3600, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
        (u64::from(nanos / 1_000_000), "ms"),
        (u64::from(nanos / 1_000 % 1_000), "us"),
        (u64::from(nanos % 1_000), "ns"),
    ];
    for (n, unit) in parts {
        if n > 0 {
            write!(f, "{n}{unit}")?;
        }
    }
    Ok(())
}

/// Whether a token could be a cron field: cron punctuation, digits and
/// three-letter month or day names only.
fn looks_like_cron_field(token: &str) -> bool {
    let mut rest = token;
    while let Some(c) = rest.chars().next() {
        if c.is_ascii_alphabetic() {
            let len = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
            let word = &rest[..len];
            let known =
                MONTH.names.iter().chain(DAY_OF_WEEK.names).any(|n| n.eq_ignore_ascii_case(word));
            if !known {
                return false;
            }
            rest = &rest[len..];
        } else if c.is_ascii_digit() || "*?/,-".contains(c) {
            rest = &rest[1..];
        } else {
            return false;
        }
    }
    true
}

/// What one cron field accepts.
#[derive(Debug)]
struct FieldKind {
    /// The name used in errors.
    name: &'static str,
    min: u32,
    /// The largest number accepted (7 for days of the week, Sunday again).
    max: u32,
    /// Names for `min`, `min + 1`, ... (months from 1, days from 0).
    names: &'static [&'static str],
    /// The reason given for a bad value.
    expected: &'static str,
    /// Whether `?` may stand for `*`.
    question: bool,
}

const SECOND: FieldKind = FieldKind {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
    expected: "expected 0-59",
    question: false,
};
const MINUTE: FieldKind = FieldKind {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    expected: "expected 0-59",
    question: false,
};
const HOUR: FieldKind = FieldKind {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    expected: "expected 0-23",
    question: false,
};
const DAY_OF_MONTH: FieldKind = FieldKind {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    expected: "expected 1-31",
    question: true,
};
const MONTH: FieldKind = FieldKind {
    name: "month",
    min: 1,
    max: 12,
    names: &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
    expected: "expected 1-12 or JAN-DEC",
    question: false,
};
const DAY_OF_WEEK: FieldKind = FieldKind {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    expected: "expected 0-7 or SUN-SAT",
    question: true,
};

/// Bits `lo`, `lo + step`, ... up to `hi`.
fn range_mask(lo: u32, hi: u32, step: u32) -> u64 {
    (lo..=hi).step_by(step as usize).fold(0, |m, v| m | 1 << v)
}

/// The largest day of each month (February in a leap year), index 1-12.
const MONTH_DAYS: [u32; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

const ALL_DAYS_OF_MONTH: u64 = ((1 << 32) - 1) & !1;
const ALL_DAYS_OF_WEEK: u64 = (1 << 7) - 1;

impl FieldKind {
    /// One value: a number in range, or a name.
    fn value(&self, s: &str) -> Result<u32, String> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(v) = s.parse::<u32>()
                && (self.min..=self.max).contains(&v)
            {
                return Ok(v);
            }
        } else if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(self.min + i as u32);
        }
        Err(self.expected.to_owned())
    }

    /// The set of values a field matches, as a bit mask, or the reason it is
    /// invalid.
    fn parse(&self, text: &str) -> Result<u64, String> {
        if text.contains('?') {
            if !self.question {
                return Err("\"?\" is only allowed in day-of-month and day-of-week".to_owned());
            }
            if text != "?" {
                return Err("\"?\" must stand alone".to_owned());
            }
            return Ok(range_mask(self.min, self.max, 1) & self.all());
        }
        let mut mask = 0u64;
        for item in text.split(',') {
            let (base, step) = match item.split_once('/') {
                Some((base, step)) => (base, Some(self.step(step)?)),
                None => (item, None),
            };
            let (lo, hi) = if base == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = base.split_once('-') {
                let (lo, hi) = (self.value(a)?, self.value(b)?);
                if lo > hi {
                    return Err(format!("range start {a} is after its end {b}"));
                }
                (lo, hi)
            } else {
                let v = self.value(base)?;
                (v, if step.is_some() { self.max } else { v })
            };
            mask |= range_mask(lo, hi, step.unwrap_or(1));
        }
        if self.max == 7 {
            // Day of week 7 is Sunday, like 0.
            mask = (mask | mask >> 7) & ALL_DAYS_OF_WEEK;
        }
        Ok(mask)
    }

    fn step(&self, s: &str) -> Result<u32, String> {
        match s.parse::<u32>() {
            Ok(n) if (1..=self.max).contains(&n) && s.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            _ => Err(format!("step must be between 1 and {}", self.max)),
        }
    }

    /// Every value of the field.
    fn all(&self) -> u64 {
        if self.max == 7 { ALL_DAYS_OF_WEEK } else { range_mask(self.min, self.max, 1) }
    }
}

/// Renders a mask as a `cron` crate field: `*` when full, else a list, with
/// each value moved by `shift`.
fn cron_list(out: &mut String, mask: u64, all: u64, shift: u32) {
    if mask == all {
        out.push('*');
        return;
    }
    let mut first = true;
    for v in 0..64 {
        if mask & (1 << v) != 0 {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{}", v + shift);
        }
    }
}

impl Fields {
    /// The `cron` crate's expression for these fields, with the given day
    /// masks (days of week numbered from Sunday = 0; the crate wants 1).
    fn cron_expr(&self, days_of_month: u64, days_of_week: u64) -> String {
        let mut s = String::new();
        cron_list(&mut s, self.seconds, SECOND.all(), 0);
        s.push(' ');
        cron_list(&mut s, self.minutes, MINUTE.all(), 0);
        s.push(' ');
        cron_list(&mut s, self.hours, HOUR.all(), 0);
        s.push(' ');
        cron_list(&mut s, days_of_month, ALL_DAYS_OF_MONTH, 0);
        s.push(' ');
        cron_list(&mut s, self.months, MONTH.all(), 0);
        s.push(' ');
        cron_list(&mut s, days_of_week, ALL_DAYS_OF_WEEK, 1);
        s
    }

    /// Whether some selected month has one of the selected days of month.
    fn day_of_month_possible(&self) -> bool {
        (1..=12).any(|m| {
            self.months & (1 << m) != 0
                && self.days_of_month & range_mask(1, MONTH_DAYS[m as usize], 1) != 0
        })
    }
}

impl Cron {
    /// Parses `body` (the expression without its zone prefix); `whole` is
    /// quoted in errors.
    fn parse(whole: &str, body: &str, tz: Option<Tz>) -> Result<Cron> {
        let mut body_owned = String::new();
        let (source, expanded) = if body.starts_with('@') {
            let Some((name, expr)) =
                MACROS.iter().find(|(name, _)| name.eq_ignore_ascii_case(body))
            else {
                return Err(Error::InvalidCron {
                    expr: whole.to_owned(),
                    reason: format!("unknown macro \"{body}\"; {UNKNOWN_MACRO_HELP}"),
                });
            };
            ((*name).to_owned(), *expr)
        } else {
            for (i, f) in body.split_whitespace().enumerate() {
                if i > 0 {
                    body_owned.push(' ');
                }
                body_owned.push_str(f);
            }
            (body_owned.clone(), body_owned.as_str())
        };

        let texts: Vec<&str> = expanded.split_whitespace().collect();
        let (second_text, rest) = match texts.len() {
            5 => ("0", &texts[..]),
            6 => (texts[0], &texts[1..]),
            n => {
                return Err(Error::InvalidCron {
                    expr: whole.to_owned(),
                    reason: format!("expected 5 or 6 fields, got {n}"),
                });
            }
        };
        let field = |kind: &FieldKind, text: &str| {
            kind.parse(text).map_err(|reason| Error::InvalidCronField {
                field: kind.name,
                value: text.to_owned(),
                expr: whole.to_owned(),
                reason,
            })
        };
        let seconds = field(&SECOND, second_text)?;
        let minutes = field(&MINUTE, rest[0])?;
        let hours = field(&HOUR, rest[1])?;
        let days_of_month = field(&DAY_OF_MONTH, rest[2])?;
        let months = field(&MONTH, rest[3])?;
        let days_of_week = field(&DAY_OF_WEEK, rest[4])?;
        let unrestricted = |t: &str| t.starts_with('*') || t == "?";

        let mut fields = Fields {
            seconds,
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            days_either: !unrestricted(rest[2]) && !unrestricted(rest[4]),
        };
        // Normalise, so equal schedules compare equal and evaluation is cheap.
        if fields.days_either
            && (fields.days_of_month == ALL_DAYS_OF_MONTH
                || fields.days_of_week == ALL_DAYS_OF_WEEK)
        {
            // Either field matching every day: every day matches.
            fields.days_of_month = ALL_DAYS_OF_MONTH;
            fields.days_of_week = ALL_DAYS_OF_WEEK;
            fields.days_either = false;
        }
        if !fields.day_of_month_possible() {
            if !fields.days_either {
                return Err(Error::InvalidCronField {
                    field: DAY_OF_MONTH.name,
                    value: rest[2].to_owned(),
                    expr: whole.to_owned(),
                    reason: "no selected month has such a day, so it would never fire".to_owned(),
                });
            }
            // Only the day of week can ever match.
            fields.days_of_month = ALL_DAYS_OF_MONTH;
            fields.days_either = false;
        }

        let build = |expr: String| {
            cron::Schedule::from_str(&expr).map(Box::new).map_err(|e| Error::InvalidCron {
                expr: whole.to_owned(),
                reason: format!("internal cron form \"{expr}\" was refused: {e}"),
            })
        };
        let eval = if fields.days_either {
            Eval::Either(
                build(fields.cron_expr(fields.days_of_month, ALL_DAYS_OF_WEEK))?,
                build(fields.cron_expr(ALL_DAYS_OF_MONTH, fields.days_of_week))?,
            )
        } else {
            Eval::Both(build(fields.cron_expr(fields.days_of_month, fields.days_of_week))?)
        };
        Ok(Cron { source: source.into_boxed_str(), tz, fields, eval, memo: Memo::default() })
    }

    fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Before the memo: a fire in a zone west of UTC can fall in the
        // first hours of UTC's 2101, and an instant there has no next fire
        // although one lies ahead of it in an earlier query's span.
        if t.naive_utc().year() > LAST_YEAR {
            return None;
        }
        if let Some(answer) = self.memo.get(t) {
            return answer;
        }
        let answer = match self.tz {
            None => self.eval.next(&t),
            Some(tz) => self.next_in_zone(t, tz),
        };
        self.memo.set(t, answer);
        answer
    }

    /// Matches the wall-clock time of `tz` and maps each match to an instant:
    /// once-only local times to themselves, repeated ones to their first
    /// occurrence, skipped ones to the end of their gap. That mapping never
    /// goes backwards, so the first match whose instant is after `t` is the
    /// answer; matches before the local time of `t` map to `t` or earlier.
    fn next_in_zone(&self, t: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let mut from = t.with_timezone(&tz).naive_local().and_utc();
        loop {
            let local = self.eval.next(&from)?.naive_utc();
            match tz.from_local_datetime(&local) {
                LocalResult::Single(at) => {
                    let at = at.to_utc();
                    if at > t {
                        return Some(at);
                    }
                    from = local.and_utc();
                }
                LocalResult::Ambiguous(a, b) => {
                    let (early, late) = if a.to_utc() <= b.to_utc() { (a, b) } else { (b, a) };
                    let early_utc = early.to_utc();
                    if early_utc > t {
                        return Some(early_utc);
                    }
                    // `t` lies in the repeated hour's second pass: every
                    // repeated local time has had its first occurrence. Go on
                    // from the end of the repetition.
                    let transition = first_with_offset(tz, early_utc, late.to_utc());
                    let end = transition.naive_utc()
                        + chrono::Duration::seconds(early.offset().fix().local_minus_utc().into());
                    // Just before `end`: the next match is `end` or later.
                    from = (end - chrono::Duration::nanoseconds(1)).max(local).and_utc();
                }
                LocalResult::None => {
                    let at = gap_end(tz, local);
                    if at > t {
                        return Some(at);
                    }
                    from = local.and_utc();
                }
            }
        }
    }
}

/// The first instant after the gap (spring forward) that `local` falls in:
/// the moment of the transition.
fn gap_end(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    if let Some(end) = GapInfo::new(&local, &tz).and_then(|g| g.end) {
        return end.to_utc();
    }
    // Out of chrono-tz's table (not seen for real zones): search for the
    // first instant whose wall-clock time is past `local`, within the widest
    // span of UTC offsets.
    let base = local.and_utc();
    let (lo, hi) = (base - chrono::Duration::hours(18), base + chrono::Duration::hours(18));
    bisect(lo, hi, |x| x.with_timezone(&tz).naive_local() > local)
}

/// The instant in `(lo, hi]` at which the offset of `tz` changes from the
/// one at `lo` to the one at `hi` (assuming one change in between).
fn first_with_offset(tz: Tz, lo: DateTime<Utc>, hi: DateTime<Utc>) -> DateTime<Utc> {
    let target = tz.offset_from_utc_datetime(&hi.naive_utc()).fix();
    bisect(lo, hi, |x| tz.offset_from_utc_datetime(&x.naive_utc()).fix() == target)
}

/// The first whole second in `(lo, hi]` where `pred` holds, for a `pred`
/// false at `lo` and true from some point on.
fn bisect(
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
    pred: impl Fn(DateTime<Utc>) -> bool,
) -> DateTime<Utc> {
    let (mut lo, mut hi) = (lo.timestamp(), hi.timestamp());
    let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap_or(DateTime::<Utc>::MAX_UTC);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if pred(at(mid)) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    at(hi)
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn p(s: &str) -> Schedule {
        Schedule::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        Schedule::parse(s).unwrap_err().to_string()
    }

    /// Every answer of a shared cron, whose memo has seen the queries
    /// before, equals a fresh parse's: repeated queries, a job's jitter
    /// query past the next fire between two of the same fire, instants
    /// inside a span, its end and just before it. Across both of Berlin's
    /// changes of offset, with either day field, and at the end of the range,
    /// where a fire in New York's last evening of 2100 falls in UTC's 2101.
    #[test]
    fn the_memo_answers_as_a_fresh_parse_does() {
        let ns = chrono::Duration::nanoseconds(1);
        let cases = [
            ("CRON_TZ=Europe/Berlin 30 2 * * *", utc(2026, 3, 27, 0, 0, 0)),
            ("CRON_TZ=Europe/Berlin 30 2 * * *", utc(2026, 10, 23, 0, 0, 0)),
            ("0 12 13 * FRI", utc(2026, 2, 10, 0, 0, 0)),
            ("CRON_TZ=America/New_York 0 22 31 12 *", utc(2098, 12, 1, 0, 0, 0)),
        ];
        let range_end = [
            utc(2100, 12, 31, 12, 0, 0),
            utc(2101, 1, 1, 1, 0, 0),
            utc(2100, 12, 31, 12, 0, 0),
            utc(2101, 1, 1, 3, 0, 0),
            utc(2099, 6, 1, 0, 0, 0),
        ];
        for (expr, from) in cases {
            let shared = p(expr);
            let fresh = |t| p(expr).next_after(t);
            let mut queries = Vec::new();
            let mut t = from;
            while let Some(next) = fresh(t) {
                queries.extend([t, t, next, t, t + ns, next - ns, next]);
                if let Some(after) = fresh(next) {
                    queries.extend([after - ns, after, t]);
                }
                if queries.len() > 60 {
                    break;
                }
                t = next;
            }
            queries.extend(range_end);
            for t in queries {
                assert_eq!(shared.next_after(t), fresh(t), "{expr} after {t}");
            }
        }
        let new_york = p("CRON_TZ=America/New_York 0 22 31 12 *");
        assert_eq!(
            new_york.next_after(utc(2100, 12, 31, 12, 0, 0)),
            Some(utc(2101, 1, 1, 3, 0, 0))
        );
        assert_eq!(new_york.next_after(utc(2101, 1, 1, 1, 0, 0)), None);
    }

    /// The next `n` fires after `t`.
    fn fires(s: &Schedule, mut t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        for _ in 0..n {
            t = s.next_after(t).expect("a next fire");
            out.push(t);
        }
        out
    }

    #[test]
    fn five_fields_have_minute_precision() {
        let s = p("0 2 * * *");
        assert_eq!(s.next_after(utc(2026, 1, 1, 0, 0, 0)), Some(utc(2026, 1, 1, 2, 0, 0)));
        assert_eq!(s.next_after(utc(2026, 1, 1, 2, 0, 0)), Some(utc(2026, 1, 2, 2, 0, 0)));
        let t = utc(2026, 1, 1, 1, 59, 59) + chrono::Duration::milliseconds(999);
        assert_eq!(s.next_after(t), Some(utc(2026, 1, 1, 2, 0, 0)));
        assert_eq!(
            p("* * * * *").next_after(utc(2026, 1, 1, 0, 0, 30)),
            Some(utc(2026, 1, 1, 0, 1, 0))
        );
    }

    #[test]
    fn six_fields_have_seconds() {
        let s = p("*/15 * * * * *");
        assert_eq!(
            fires(&s, utc(2026, 1, 1, 0, 0, 0), 3),
            [utc(2026, 1, 1, 0, 0, 15), utc(2026, 1, 1, 0, 0, 30), utc(2026, 1, 1, 0, 0, 45)]
        );
        assert_eq!(p("0 0 2 * * *"), p("0 2 * * *"));
    }

    #[test]
    fn macros() {
        let t = utc(2026, 5, 17, 13, 14, 0);
        assert_eq!(p("@hourly").next_after(t), Some(utc(2026, 5, 17, 14, 0, 0)));
        assert_eq!(p("@daily").next_after(t), Some(utc(2026, 5, 18, 0, 0, 0)));
        assert_eq!(p("@midnight"), p("@daily"));
        // 2026-05-17 is a Sunday.
        assert_eq!(p("@weekly").next_after(t), Some(utc(2026, 5, 24, 0, 0, 0)));
        assert_eq!(p("@monthly").next_after(t), Some(utc(2026, 6, 1, 0, 0, 0)));
        assert_eq!(p("@yearly").next_after(t), Some(utc(2027, 1, 1, 0, 0, 0)));
        assert_eq!(p("@Annually"), p("@yearly"));
        assert_eq!(p("@DAILY").to_string(), "@daily");
    }

    #[test]
    fn days_of_week_count_from_sunday_zero_and_seven() {
        // 2026-05-17 is a Sunday, 2026-05-18 a Monday.
        let t = utc(2026, 5, 16, 12, 0, 0);
        assert_eq!(p("0 0 * * 0").next_after(t), Some(utc(2026, 5, 17, 0, 0, 0)));
        assert_eq!(p("0 0 * * 7").next_after(t), Some(utc(2026, 5, 17, 0, 0, 0)));
        assert_eq!(p("0 0 * * 1").next_after(t), Some(utc(2026, 5, 18, 0, 0, 0)));
        assert_eq!(p("0 0 * * sun"), p("0 0 * * 0"));
        assert_eq!(p("0 0 * * Mon-Fri"), p("0 0 * * 1-5"));
        assert_eq!(p("0 0 * * 5-7"), p("0 0 * * 0,5,6"));
        assert_eq!(p("0 0 * * */1"), p("0 0 * * *"));
    }

    #[test]
    fn restricted_day_fields_are_ored_like_crontab() {
        // The 1st and 15th, and every Monday.
        let s = p("0 0 1,15 * MON");
        assert_eq!(
            fires(&s, utc(2026, 5, 31, 12, 0, 0), 4),
            [
                utc(2026, 6, 1, 0, 0, 0),
                utc(2026, 6, 8, 0, 0, 0),
                utc(2026, 6, 15, 0, 0, 0),
                utc(2026, 6, 22, 0, 0, 0),
            ]
        );
        // A starred field (even stepped) means both must match.
        let s = p("0 0 */2 * MON");
        // Odd days that are Mondays: 2026-06-01, 2026-06-15, 2026-06-29.
        assert_eq!(
            fires(&s, utc(2026, 5, 31, 12, 0, 0), 3),
            [utc(2026, 6, 1, 0, 0, 0), utc(2026, 6, 15, 0, 0, 0), utc(2026, 6, 29, 0, 0, 0)]
        );
        assert_eq!(p("0 0 ? * MON"), p("0 0 * * 1"));
        // Either field covering every day: every day.
        assert_eq!(p("0 0 1-31 * MON"), p("0 0 * * *"));
        // A day of month that never happens leaves the day of week alone.
        assert_eq!(p("0 0 30 2 MON"), p("0 0 * 2 MON"));
    }

    #[test]
    fn field_grammar() {
        assert_eq!(p("0-10/5 * * * *"), p("0,5,10 * * * *"));
        assert_eq!(p("50/3 * * * *"), p("50,53,56,59 * * * *"));
        assert_eq!(p("* * * jan-mar/2 *"), p("* * * 1,3 *"));
        assert_eq!(p("0 0 1 JAN,Dec *"), p("0 0 1 1,12 *"));
        assert_eq!(p("  0   2 *  * *  ").to_string(), "0 2 * * *");
        assert_eq!(p("00 02 * * *"), p("0 2 * * *"));
        assert_ne!(p("0 2 * * *"), p("0 3 * * *"));
    }

    #[test]
    fn field_errors_name_and_quote_the_field() {
        assert_eq!(
            err("61 * * * *"),
            r#"invalid minute field "61" in "61 * * * *": expected 0-59"#
        );
        assert_eq!(err("0 24 * * *"), r#"invalid hour field "24" in "0 24 * * *": expected 0-23"#);
        assert_eq!(
            err("0 0 0 * *"),
            r#"invalid day-of-month field "0" in "0 0 0 * *": expected 1-31"#
        );
        assert_eq!(
            err("0 0 * 13 *"),
            r#"invalid month field "13" in "0 0 * 13 *": expected 1-12 or JAN-DEC"#
        );
        assert_eq!(
            err("0 0 * * 8"),
            r#"invalid day-of-week field "8" in "0 0 * * 8": expected 0-7 or SUN-SAT"#
        );
        assert_eq!(
            err("60 * * * * *"),
            r#"invalid second field "60" in "60 * * * * *": expected 0-59"#
        );
        assert_eq!(
            err("*/0 * * * *"),
            r#"invalid minute field "*/0" in "*/0 * * * *": step must be between 1 and 59"#
        );
        assert_eq!(
            err("5-3 * * * *"),
            r#"invalid minute field "5-3" in "5-3 * * * *": range start 5 is after its end 3"#
        );
        assert!(err("? * * * *").contains("only allowed in day-of-month and day-of-week"));
        assert!(err("0 0 1,? * *").contains("must stand alone"));
        assert!(err("0 0 30 2 *").starts_with(r#"invalid day-of-month field "30""#));
        assert!(err("1,,2 * * * *").ends_with("expected 0-59"));
        assert!(err("0 0 * FOO *").ends_with("expected 1-12 or JAN-DEC"));
        assert!(err("0 0 * * MON-FOO").ends_with("expected 0-7 or SUN-SAT"));
        assert!(err("0 0 * * 1/-1").contains("step must be"));
        assert!(err("99999999999 * * * *").ends_with("expected 0-59"));
        assert!(matches!(
            Schedule::parse("61 * * * *"),
            Err(Error::InvalidCronField { field: "minute", .. })
        ));
    }

    #[test]
    fn other_errors() {
        assert!(matches!(Schedule::parse("* * * *"), Err(Error::InvalidCron { .. })));
        assert!(matches!(Schedule::parse("* * * * * * *"), Err(Error::InvalidCron { .. })));
        assert!(matches!(Schedule::parse("@fortnightly"), Err(Error::InvalidCron { .. })));
        assert!(matches!(Schedule::parse("@reboot"), Err(Error::InvalidCron { .. })));
        assert!(matches!(
            Schedule::parse("CRON_TZ=Mars/Olympus 0 2 * * *"),
            Err(Error::UnknownTimeZone(z)) if z == "Mars/Olympus"
        ));
        assert!(matches!(
            p("0 2 * * *").with_timezone("Europe/Berlln"),
            Err(Error::UnknownTimeZone(_))
        ));
        assert!(matches!(Schedule::parse("0ms"), Err(Error::ZeroInterval(v)) if v == "0ms"));
        assert!(matches!(Schedule::parse("0_000s"), Err(Error::ZeroInterval(_))));
        assert!(matches!(Schedule::parse("@every 0s"), Err(Error::ZeroInterval(_))));
        assert!(matches!(Schedule::interval(Duration::ZERO), Err(Error::ZeroInterval(_))));
        assert!(matches!(Schedule::every_ms(0), Err(Error::ZeroInterval(_))));
        for garbage in ["", "   ", "banana", "every day at two", "@every", "@every 5", "@every 5x"]
        {
            assert!(
                matches!(Schedule::parse(garbage), Err(Error::InvalidSchedule { .. })),
                "{garbage:?}"
            );
        }
        assert!(matches!(Schedule::parse("@every 500us"), Err(Error::InvalidSchedule { .. })));
        assert!(matches!(Schedule::parse("@at tomorrow"), Err(Error::InvalidSchedule { .. })));
        assert!(matches!(
            Schedule::parse("99999999999999999999999"),
            Err(Error::InvalidSchedule { .. })
        ));
        for zoned in
            ["CRON_TZ=Europe/Berlin @every 5m", "TZ=UTC 1000", "TZ=UTC @at 2026-01-01T00:00:00Z"]
        {
            assert!(
                matches!(Schedule::parse(zoned), Err(Error::InvalidSchedule { .. })),
                "{zoned}"
            );
        }
    }

    #[test]
    fn a_bare_number_in_a_schedule_string_is_refused_with_a_suggestion() {
        for (input, want) in [
            ("700", r#"write "700ms" for milliseconds or "@every 700s" for seconds"#),
            ("60", r#"write "60ms" for milliseconds or "@every 60s" for seconds"#),
            ("60_000", r#"write "60_000ms""#),
            (" 5 ", r#"write "5ms""#),
        ] {
            let e = err(input);
            assert!(e.contains(want), "{input:?}: {e}");
            assert!(e.starts_with(&format!("invalid schedule \"{}\"", input.trim())), "{e}");
        }
        assert!(err("CRON_TZ=UTC 700").contains("a time zone applies only to cron"));
        assert!(err("CRON_TZ=UTC 700ms").contains("a time zone applies only to cron"));
    }

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

    #[test]
    fn display_round_trips() {
        for s in [
            "0 2 * * *",
            "*/5 1-3 1,15 JAN-jun MON-FRI",
            "30 */10 * * * *",
            "@weekly",
            "CRON_TZ=Europe/Berlin 0 2 * * *",
            "TZ=America/New_York @daily",
            "60s",
            "@every 2h",
            "@at 2026-07-01T12:00:00.5Z",
            "@every 1m from 2026-01-01T00:00:30Z",
            "@every 1h30m from 2026-01-01T00:00:00.25+01:00",
        ] {
            let a = p(s);
            let b = p(&a.to_string());
            assert_eq!(a, b, "{s}");
            assert_eq!(a.to_string(), b.to_string(), "{s}");
            let t = utc(2026, 3, 1, 0, 0, 0);
            assert_eq!(a.next_after(t), b.next_after(t), "{s}");
        }
        assert_eq!(p("TZ=America/New_York @daily").to_string(), "CRON_TZ=America/New_York @daily");
        assert_eq!(format!("{:?}", p("0 2 * * *")), "Schedule(\"0 2 * * *\")");
    }

    #[test]
    fn with_timezone_sets_and_replaces_the_zone() {
        let s = p("0 2 * * *").with_timezone("Europe/Berlin").unwrap();
        assert_eq!(s, p("CRON_TZ=Europe/Berlin 0 2 * * *"));
        assert_eq!(s.timezone(), Some(chrono_tz::Europe::Berlin));
        let s = s.with_timezone("Asia/Kolkata").unwrap();
        assert_eq!(s.to_string(), "CRON_TZ=Asia/Kolkata 0 2 * * *");
        // 02:00 IST is 20:30 UTC the day before.
        assert_eq!(s.next_after(utc(2026, 1, 1, 0, 0, 0)), Some(utc(2026, 1, 1, 20, 30, 0)));
        assert_ne!(p("0 2 * * *"), p("CRON_TZ=UTC 0 2 * * *"));
    }

    #[test]
    fn spring_forward_fires_once_at_the_end_of_the_gap() {
        // Berlin, 2026-03-29: 02:00 CET (01:00 UTC) becomes 03:00 CEST.
        let s = p("CRON_TZ=Europe/Berlin 30 2 * * *");
        assert_eq!(
            fires(&s, utc(2026, 3, 27, 12, 0, 0), 3),
            [utc(2026, 3, 28, 1, 30, 0), utc(2026, 3, 29, 1, 0, 0), utc(2026, 3, 30, 0, 30, 0)]
        );
        // Every quarter hour: 02:00-02:45 and 03:00 all collapse into 01:00 UTC.
        let s = p("CRON_TZ=Europe/Berlin */15 * * * *");
        assert_eq!(
            fires(&s, utc(2026, 3, 29, 0, 30, 0), 4),
            [
                utc(2026, 3, 29, 0, 45, 0),
                utc(2026, 3, 29, 1, 0, 0),
                utc(2026, 3, 29, 1, 15, 0),
                utc(2026, 3, 29, 1, 30, 0),
            ]
        );
    }

    #[test]
    fn fall_back_fires_once_at_the_first_occurrence() {
        // New York, 2026-11-01: 02:00 EDT (06:00 UTC) becomes 01:00 EST.
        let s = p("CRON_TZ=America/New_York 30 1 * * *");
        assert_eq!(
            fires(&s, utc(2026, 10, 31, 12, 0, 0), 2),
            [utc(2026, 11, 1, 5, 30, 0), utc(2026, 11, 2, 6, 30, 0)]
        );
        // Asked from inside the repeated hour's second pass, it moves on.
        assert_eq!(s.next_after(utc(2026, 11, 1, 6, 10, 0)), Some(utc(2026, 11, 2, 6, 30, 0)));
        let s = p("CRON_TZ=America/New_York 0 * * * * *");
        assert_eq!(s.next_after(utc(2026, 11, 1, 6, 10, 0)), Some(utc(2026, 11, 1, 7, 0, 0)));
        assert_eq!(
            s.next_after(utc(2026, 11, 1, 5, 59, 0)),
            Some(utc(2026, 11, 1, 7, 0, 0)),
            "01:59 EDT is followed by 02:00 EST, not by the repeated 01:00"
        );
    }

    #[test]
    fn gap_end_matches_a_search() {
        let tz = chrono_tz::Australia::Lord_Howe;
        // 2026-10-04 02:00 (+10:30) becomes 02:30 (+11) at 15:30 UTC the day before.
        let local =
            chrono::NaiveDate::from_ymd_opt(2026, 10, 4).unwrap().and_hms_opt(2, 10, 0).unwrap();
        let expected = utc(2026, 10, 3, 15, 30, 0);
        assert_eq!(gap_end(tz, local), expected);
        let base = local.and_utc();
        let searched =
            bisect(base - chrono::Duration::hours(18), base + chrono::Duration::hours(18), |x| {
                x.with_timezone(&tz).naive_local() > local
            });
        assert_eq!(searched, expected);
    }

    #[test]
    fn out_of_range_instants_have_no_next_fire() {
        let s = p("0 2 * * *");
        assert_eq!(s.next_after(DateTime::<Utc>::MAX_UTC), None);
        assert_eq!(s.next_after(utc(2100, 12, 31, 3, 0, 0)), None);
        let z = p("CRON_TZ=Pacific/Kiritimati 0 2 * * *");
        assert_eq!(z.next_after(DateTime::<Utc>::MAX_UTC), None);
        assert_eq!(p("1s").next_after(DateTime::<Utc>::MAX_UTC), None);
    }

    #[test]
    fn schedule_is_send_sync_and_small() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Schedule>();
        // A phased interval's duration and start; every job holds one.
        assert!(std::mem::size_of::<Schedule>() <= 32);
    }
}
