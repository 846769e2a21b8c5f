//! Timestamp encoding for SQLite: UTC text in a fixed, sortable format.
//!
//! SQLite has no timestamp type. Times are stored as
//! `YYYY-MM-DDTHH:MM:SS.ffffffZ` ([`ts_text`]): whole microseconds, always
//! the same width for the supported years (1 to 9999), so text order is time
//! order and SQL compares them with `<` and `max()`; SQLite's date functions
//! read them too.

use chrono::{DateTime, Datelike, Timelike, Utc};
use mscribe_scheduler::StoreError;
use mscribe_scheduler::StoreResult;

use crate::codec;

/// A timestamp as the SQLite store writes it: `YYYY-MM-DDTHH:MM:SS.ffffffZ`,
/// which sorts as text in time order (callers keep years within 1..=9999).
/// Public so that SQL written beside the store compares times the same way.
pub fn ts_text(t: DateTime<Utc>) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        (t.nanosecond() / 1000).min(999_999)
    )
}

/// A stored timestamp (`what` names the column for the error).
pub(crate) fn parse_ts(what: &str, s: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| {
        StoreError::Corrupt { message: format!("{what} \"{s}\" is not a timestamp ({e})") }
    })
}

/// A timestamp to store: checked to lie in the supported range (the error
/// names `what`), as text.
pub(crate) fn ts_param(what: &str, t: DateTime<Utc>) -> Result<String, String> {
    codec::check_ts(what, t).map(ts_text)
}

/// A bound to compare stored timestamps with, brought into the supported
/// range first (comparisons with stored values are unchanged), as text.
pub(crate) fn cutoff_param(t: DateTime<Utc>) -> String {
    ts_text(codec::clamp_ts(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_sort_as_text() {
        let a = Utc.with_ymd_and_hms(999, 1, 1, 0, 0, 0).unwrap();
        let b =
            Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap() + chrono::Duration::microseconds(8);
        assert_eq!(ts_text(a), "0999-01-01T00:00:00.000000Z");
        assert_eq!(ts_text(b), "2026-03-04T05:06:07.000008Z");
        assert!(ts_text(a) < ts_text(b));
        assert_eq!(parse_ts("t", &ts_text(b)).unwrap(), b);
    }

    #[test]
    fn bounds_are_clamped_and_values_checked() {
        assert_eq!(cutoff_param(DateTime::<Utc>::MIN_UTC), "0001-01-01T00:00:00.000000Z");
        assert_eq!(cutoff_param(DateTime::<Utc>::MAX_UTC), "9999-12-31T23:59:59.999999Z");
        assert!(ts_param("t", DateTime::<Utc>::MAX_UTC).is_err());
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(ts_param("t", t).unwrap(), "2026-01-01T00:00:00.000000Z");
    }
}
