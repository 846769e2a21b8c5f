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
    /// Writes `v` into `out` as decimal digits, zero-padded to its width.
    fn digits(out: &mut [u8], mut v: u32) {
        for b in out.iter_mut().rev() {
            *b = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    // By hand rather than `format!`: every row has two or three of these.
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    digits(&mut out[0..4], t.year().clamp(0, 9999) as u32);
    digits(&mut out[5..7], t.month());
    digits(&mut out[8..10], t.day());
    digits(&mut out[11..13], t.hour());
    digits(&mut out[14..16], t.minute());
    digits(&mut out[17..19], t.second());
    digits(&mut out[20..26], (t.nanosecond() / 1000).min(999_999));
    // Only ASCII digits were written into an ASCII template.
    String::from_utf8(out.to_vec()).unwrap_or_default()
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
        let leap = Utc.with_ymd_and_hms(2016, 12, 31, 23, 59, 59).unwrap()
            + chrono::Duration::nanoseconds(999_999_999);
        assert_eq!(ts_text(leap), "2016-12-31T23:59:59.999999Z");
        assert_eq!(parse_ts("t", &ts_text(b)).unwrap(), b);
    }

    #[test]
    fn text_is_chronos_own_format() {
        let mut t = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        // Steps of a prime number of microseconds visit every field's range.
        while t < end {
            assert_eq!(ts_text(t), t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
            t += chrono::Duration::microseconds(7_919_993_017_291);
        }
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
