//! Reading a schedule from text: [`Schedule::parse`], its keywords, the
//! durations of intervals (read and printed back) and the help texts of
//! its errors.

use std::fmt;
use std::time::Duration;

use chrono::DateTime;
use chrono_tz::Tz;

use super::Schedule;
use super::cron::looks_like_cron_field;
use super::interval::{interval_from, phased};
use crate::error::{Error, Result};

const GARBAGE_HELP: &str = "expected a cron expression (\"0 2 * * *\"), a macro (\"@daily\"), \
     an interval (\"60s\", \"@every 1h30m\") or a time (\"@at 2026-01-01T00:00:00Z\")";

const DURATION_HELP: &str = "expected a duration such as \"1h30m\", \"5s\" or \"500ms\"";

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
pub(super) fn split_zone(s: &str) -> Option<(&str, &str)> {
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
pub(super) fn write_duration(f: &mut fmt::Formatter<'_>, d: Duration) -> fmt::Result {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::testing::{err, p, utc};

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
}
