//! Cron expressions: the parsed `Cron`, its macros, its evaluation with the
//! `cron` crate, and the memo that answers the jobs sharing one expression.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;

use crate::error::{Error, Result};

mod fields;
mod zone;

pub(super) use fields::looks_like_cron_field;
use fields::{
    ALL_DAYS_OF_MONTH, ALL_DAYS_OF_WEEK, DAY_OF_MONTH, DAY_OF_WEEK, FieldKind, Fields, HOUR,
    MINUTE, MONTH, SECOND,
};

/// A parsed cron expression and its evaluator.
#[derive(Clone, Debug)]
pub(super) struct Cron {
    /// The expression as given, fields separated by one space, without the
    /// zone prefix; a macro is kept in lower case.
    pub(super) source: Box<str>,
    pub(super) tz: Option<Tz>,
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

/// Evaluates the fields with the `cron` crate, which always ANDs the two day
/// fields, numbers days of the week 1-7 from Sunday and needs seconds.
#[derive(Clone, Debug)]
enum Eval {
    /// Day of month and day of week must both match.
    Both(Box<::cron::Schedule>),
    /// Either may match: the earlier of a schedule restricted by day of month
    /// only and one restricted by day of week only.
    Either(Box<::cron::Schedule>, Box<::cron::Schedule>),
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

/// The cron crate knows no year after this one.
const LAST_YEAR: i32 = 2100;

impl Cron {
    /// Parses `body` (the expression without its zone prefix); `whole` is
    /// quoted in errors.
    pub(super) fn parse(whole: &str, body: &str, tz: Option<Tz>) -> Result<Cron> {
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
            ::cron::Schedule::from_str(&expr).map(Box::new).map_err(|e| Error::InvalidCron {
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

    pub(super) fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::testing::{fires, p, utc};

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
    fn out_of_range_instants_have_no_next_fire() {
        let s = p("0 2 * * *");
        assert_eq!(s.next_after(DateTime::<Utc>::MAX_UTC), None);
        assert_eq!(s.next_after(utc(2100, 12, 31, 3, 0, 0)), None);
        let z = p("CRON_TZ=Pacific/Kiritimati 0 2 * * *");
        assert_eq!(z.next_after(DateTime::<Utc>::MAX_UTC), None);
        assert_eq!(p("1s").next_after(DateTime::<Utc>::MAX_UTC), None);
    }
}
