//! Timestamp encoding for Postgres: `timestamptz`, bound as chrono values.
//!
//! sqlx sends a `DateTime<Utc>` as microseconds since 2000-01-01 and
//! `timestamptz` keeps microseconds, so a time checked here (in the
//! supported years, 1 to 9999, truncated to whole microseconds) reads back
//! equal. The SQLite store's `time.rs` is the text counterpart.

use chrono::{DateTime, Utc};

use crate::codec;

/// A timestamp to store: checked to lie in the supported range (the error
/// names `what`), truncated to microseconds.
pub(crate) fn ts_param(what: &str, t: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    codec::check_ts(what, t)
}

/// A bound to compare stored timestamps with, brought into the supported
/// range first (comparisons with stored values are unchanged).
pub(crate) fn cutoff_param(t: DateTime<Utc>) -> DateTime<Utc> {
    codec::clamp_ts(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn values_are_checked_and_bounds_clamped() {
        assert!(ts_param("t", DateTime::<Utc>::MIN_UTC).is_err());
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            ts_param("t", t + chrono::Duration::nanoseconds(1_500)).unwrap(),
            t + chrono::Duration::microseconds(1)
        );
        assert_eq!(cutoff_param(DateTime::<Utc>::MAX_UTC), codec::max_ts());
        assert_eq!(cutoff_param(t), t);
    }
}
