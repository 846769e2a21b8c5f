//! Cron on a zone's wall clock: each local match mapped to an instant, across
//! the gaps (spring forward) and overlaps (fall back) of daylight saving.

use chrono::offset::LocalResult;
use chrono::{DateTime, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{GapInfo, Tz};

use super::Cron;

impl Cron {
    /// Matches the wall-clock time of `tz` and maps each match to an instant:
    /// once-only local times to themselves, repeated ones to their first
    /// occurrence, skipped ones to the end of their gap. That mapping never
    /// goes backwards, so the first match whose instant is after `t` is the
    /// answer; matches before the local time of `t` map to `t` or earlier.
    pub(super) fn next_in_zone(&self, t: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::testing::{fires, p, utc};

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
}
