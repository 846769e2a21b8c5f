//! The fields of a cron expression: what each accepts, their bit masks,
//! and the form the `cron` crate evaluates.

use std::fmt::Write as _;

/// The normalised fields: bit `n` of a mask is set when value `n` matches.
/// Days of the week are numbered 0-6 from Sunday.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fields {
    pub(super) seconds: u64,
    pub(super) minutes: u64,
    pub(super) hours: u64,
    pub(super) days_of_month: u64,
    pub(super) months: u64,
    pub(super) days_of_week: u64,
    /// Crontab's rule: a day matches when its day of month *or* its day of
    /// week matches (both fields restricted). Otherwise both must match.
    pub(super) days_either: bool,
}

/// Whether a token could be a cron field: cron punctuation, digits and
/// three-letter month or day names only.
pub(in crate::schedule) fn looks_like_cron_field(token: &str) -> bool {
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
pub(super) struct FieldKind {
    /// The name used in errors.
    pub(super) name: &'static str,
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

pub(super) const SECOND: FieldKind = FieldKind {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
    expected: "expected 0-59",
    question: false,
};
pub(super) const MINUTE: FieldKind = FieldKind {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    expected: "expected 0-59",
    question: false,
};
pub(super) const HOUR: FieldKind = FieldKind {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    expected: "expected 0-23",
    question: false,
};
pub(super) const DAY_OF_MONTH: FieldKind = FieldKind {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    expected: "expected 1-31",
    question: true,
};
pub(super) const MONTH: FieldKind = FieldKind {
    name: "month",
    min: 1,
    max: 12,
    names: &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
    expected: "expected 1-12 or JAN-DEC",
    question: false,
};
pub(super) const DAY_OF_WEEK: FieldKind = FieldKind {
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

pub(super) const ALL_DAYS_OF_MONTH: u64 = ((1 << 32) - 1) & !1;
pub(super) const ALL_DAYS_OF_WEEK: u64 = (1 << 7) - 1;

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
    pub(super) fn parse(&self, text: &str) -> Result<u64, String> {
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
    pub(super) fn cron_expr(&self, days_of_month: u64, days_of_week: u64) -> String {
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
    pub(super) fn day_of_month_possible(&self) -> bool {
        (1..=12).any(|m| {
            self.months & (1 << m) != 0
                && self.days_of_month & range_mask(1, MONTH_DAYS[m as usize], 1) != 0
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::Error;
    use crate::schedule::Schedule;
    use crate::schedule::testing::{err, p, utc};

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
}
