//! Schedules. (Interim version: the cron adapter is being completed.)

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};

/// When a job fires.
#[derive(Debug, Clone)]
pub struct Schedule {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Cron { expr: String, inner: Box<cron::Schedule>, tz: Option<chrono_tz::Tz> },
    Interval(Duration),
    Once(DateTime<Utc>),
}

impl Schedule {
    /// Parses cron (5 or 6 fields), a macro, milliseconds, `@every 5s` or `@at <RFC 3339>`.
    pub fn parse(input: &str) -> Result<Schedule> {
        let s = input.trim();
        let digits: String = s.chars().filter(|c| *c != '_').collect();
        if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
            let ms: u64 = digits.parse().map_err(|_| Error::InvalidSchedule {
                input: input.to_owned(),
                reason: "interval too large".to_owned(),
            })?;
            return Schedule::every_ms(ms);
        }
        Schedule::cron(s)
    }

    /// A cron schedule.
    pub fn cron(expr: &str) -> Result<Schedule> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let six = match fields.len() {
            5 => format!("0 {}", fields.join(" ")),
            6 => fields.join(" "),
            n => {
                return Err(Error::InvalidCron {
                    expr: expr.to_owned(),
                    reason: format!("expected 5 or 6 fields, got {n}"),
                });
            }
        };
        let inner = cron::Schedule::from_str(&six)
            .map_err(|e| Error::InvalidCron { expr: expr.to_owned(), reason: e.to_string() })?;
        Ok(Schedule { kind: Kind::Cron { expr: expr.to_owned(), inner: Box::new(inner), tz: None } })
    }

    /// A fixed interval.
    pub fn interval(d: Duration) -> Result<Schedule> {
        if d.is_zero() {
            return Err(Error::ZeroInterval(format!("{d:?}")));
        }
        Ok(Schedule { kind: Kind::Interval(d) })
    }

    /// A fixed interval in milliseconds.
    pub fn every_ms(ms: u64) -> Result<Schedule> {
        if ms == 0 {
            return Err(Error::ZeroInterval(ms.to_string()));
        }
        Schedule::interval(Duration::from_millis(ms))
    }

    /// One fire at `at`.
    pub fn once(at: DateTime<Utc>) -> Schedule {
        Schedule { kind: Kind::Once(at) }
    }

    /// Sets an IANA time zone on a cron schedule.
    pub fn with_timezone(mut self, tz: &str) -> Result<Schedule> {
        let zone: chrono_tz::Tz = tz.parse().map_err(|_| Error::UnknownTimeZone(tz.to_owned()))?;
        if let Kind::Cron { tz, .. } = &mut self.kind {
            *tz = Some(zone);
        }
        Ok(self)
    }

    /// The fixed interval, for interval schedules.
    pub fn interval_duration(&self) -> Option<Duration> {
        match self.kind {
            Kind::Interval(d) => Some(d),
            _ => None,
        }
    }

    /// The first fire strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Cron { inner, tz: None, .. } => inner.after(&t).next(),
            Kind::Cron { inner, tz: Some(tz), .. } => {
                inner.after(&t.with_timezone(tz)).next().map(|d| d.with_timezone(&Utc))
            }
            Kind::Interval(d) => Some(t + crate::clock::chrono_dur(*d)),
            Kind::Once(at) => (*at > t).then_some(*at),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Cron { expr, tz: None, .. } => f.write_str(expr),
            Kind::Cron { expr, tz: Some(tz), .. } => write!(f, "CRON_TZ={tz} {expr}"),
            Kind::Interval(d) => write!(f, "@every {}ms", d.as_millis()),
            Kind::Once(at) => write!(f, "@at {}", at.to_rfc3339()),
        }
    }
}

impl FromStr for Schedule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Schedule::parse(s)
    }
}
