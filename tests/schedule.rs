//! Schedules: `next_after` against an independent brute-force reference
//! (crontab semantics and the DST rules written out directly), DST
//! transitions in real zones, display round-trips and the error messages.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::offset::LocalResult;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use mscribe_scheduler::{Error, Schedule};
use proptest::prelude::*;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn parse(s: &str) -> Schedule {
    Schedule::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The next `n` fires after `t`.
fn fires(s: &Schedule, mut t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    (0..n)
        .map(|_| {
            t = s.next_after(t).expect("a next fire");
            t
        })
        .collect()
}

// ---------------------------------------------------------------------------
// A generator of cron fields that also knows, independently of the crate's
// parser, which values each field matches.

/// One comma-separated item of a field.
#[derive(Debug, Clone)]
enum Item {
    Star,
    Value(u32),
    Range(u32, u32),
    StarStep(u32),
    RangeStep(u32, u32, u32),
    ValueStep(u32, u32),
}

/// What a field accepts.
#[derive(Debug, Clone, Copy)]
struct Kind {
    min: u32,
    max: u32,
    names: &'static [&'static str],
    question: bool,
}

const SECOND: Kind = Kind { min: 0, max: 59, names: &[], question: false };
const MINUTE: Kind = Kind { min: 0, max: 59, names: &[], question: false };
const HOUR: Kind = Kind { min: 0, max: 23, names: &[], question: false };
const DOM: Kind = Kind { min: 1, max: 31, names: &[], question: true };
const MONTH: Kind = Kind {
    min: 1,
    max: 12,
    names: &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    question: false,
};
const DOW: Kind = Kind {
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    question: true,
};

/// A generated field: its text and the values it matches.
#[derive(Debug, Clone)]
struct Field {
    text: String,
    /// `matches[v]` for every value `v` of the field (days of week 0-6).
    matches: Vec<bool>,
    /// Crontab's "restricted": the field does not start with `*` (or is `?`).
    restricted: bool,
}

fn item(kind: Kind) -> impl Strategy<Value = Item> {
    let (lo, hi) = (kind.min, kind.max);
    let value = lo..=hi;
    let step = 1..=hi;
    prop_oneof![
        3 => Just(Item::Star),
        3 => value.clone().prop_map(Item::Value),
        2 => (value.clone(), value.clone()).prop_map(|(a, b)| Item::Range(a.min(b), a.max(b))),
        3 => step.clone().prop_map(Item::StarStep),
        1 => (value.clone(), value.clone(), step.clone())
            .prop_map(|(a, b, s)| Item::RangeStep(a.min(b), a.max(b), s)),
        1 => (value, step).prop_map(|(n, s)| Item::ValueStep(n, s)),
    ]
}

/// A field of `kind`: one to three items, sometimes with names in mixed
/// case, and `?` now and then where it is allowed.
fn field(kind: Kind) -> impl Strategy<Value = Field> {
    let items = prop::collection::vec(item(kind), 1..=3);
    (items, any::<bool>(), any::<bool>(), 0..10u8).prop_map(move |(items, names, upper, q)| {
        if kind.question && q == 0 {
            return Field { text: "?".to_owned(), matches: vec![true; 32], restricted: false };
        }
        let show = |v: u32| -> String {
            let i = (v - kind.min) as usize;
            match kind.names.get(i) {
                Some(name) if names => {
                    if upper {
                        name.to_uppercase()
                    } else {
                        name.to_string()
                    }
                }
                _ => v.to_string(),
            }
        };
        let mut matches = vec![false; kind.max as usize + 1];
        let mut texts = Vec::new();
        for it in &items {
            let (text, lo, hi, step) = match *it {
                Item::Star => ("*".to_owned(), kind.min, kind.max, 1),
                Item::Value(v) => (show(v), v, v, 1),
                Item::Range(a, b) => (format!("{}-{}", show(a), show(b)), a, b, 1),
                Item::StarStep(s) => (format!("*/{s}"), kind.min, kind.max, s),
                Item::RangeStep(a, b, s) => (format!("{}-{}/{s}", show(a), show(b)), a, b, s),
                Item::ValueStep(n, s) => (format!("{}/{s}", show(n)), n, kind.max, s),
            };
            texts.push(text);
            let mut v = lo;
            while v <= hi {
                matches[v as usize] = true;
                v += step;
            }
        }
        if kind.max == 7 {
            // 7 is Sunday again.
            matches[0] |= matches[7];
            matches.truncate(7);
        }
        let text = texts.join(",");
        Field { restricted: !text.starts_with('*'), text, matches }
    })
}

/// A generated expression and the crontab semantics of it.
#[derive(Debug, Clone)]
struct Expr {
    /// `None` for 5 fields (seconds = 0).
    second: Option<Field>,
    minute: Field,
    hour: Field,
    dom: Field,
    month: Field,
    dow: Field,
}

impl Expr {
    fn text(&self) -> String {
        let five = [&self.minute, &self.hour, &self.dom, &self.month, &self.dow]
            .map(|f| f.text.as_str())
            .join(" ");
        match &self.second {
            Some(s) => format!("{} {five}", s.text),
            None => five,
        }
    }

    /// Crontab's day rule, written out: day of month OR day of week when both
    /// are restricted, AND otherwise.
    fn day_matches(&self, d: NaiveDate) -> bool {
        if !self.month.matches[d.month() as usize] {
            return false;
        }
        let by_dom = self.dom.matches[d.day() as usize];
        let by_dow = self.dow.matches[d.weekday().num_days_from_sunday() as usize];
        if self.dom.restricted && self.dow.restricted { by_dom || by_dow } else { by_dom && by_dow }
    }

    fn second_matches(&self, s: u32) -> bool {
        match &self.second {
            Some(f) => f.matches[s as usize],
            None => s == 0,
        }
    }

    /// Whether the expression can ever fire, by the same AND rule: some
    /// selected month must have one of the selected days.
    fn days_possible(&self) -> bool {
        if self.dom.restricted && self.dow.restricted {
            return true;
        }
        const MAX_DAYS: [u32; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        (1..=12).any(|m| {
            self.month.matches[m] && (1..=MAX_DAYS[m]).any(|d| self.dom.matches[d as usize])
        })
    }
}

fn expr(six: bool) -> impl Strategy<Value = Expr> {
    let second = if six { field(SECOND).prop_map(Some).boxed() } else { Just(None).boxed() };
    (second, field(MINUTE), field(HOUR), field(DOM), field(MONTH), field(DOW)).prop_map(
        |(second, minute, hour, dom, month, dow)| Expr { second, minute, hour, dom, month, dow },
    )
}

/// A field matching every value, as `*`.
fn star(kind: Kind) -> Field {
    let len = if kind.max == 7 { 7 } else { kind.max as usize + 1 };
    Field { text: "*".to_owned(), matches: vec![true; len], restricted: false }
}

/// An expression that fires every day, often every hour: it is bound to
/// meet the transitions it is started near.
fn dense_expr(six: bool) -> impl Strategy<Value = Expr> {
    let second = if six { field(SECOND).prop_map(Some).boxed() } else { Just(None).boxed() };
    let hour = prop_oneof![Just(star(HOUR)), field(HOUR)];
    (second, field(MINUTE), hour).prop_map(|(second, minute, hour)| Expr {
        second,
        minute,
        hour,
        dom: star(DOM),
        month: star(MONTH),
        dow: star(DOW),
    })
}

const ZONES: [Option<Tz>; 6] = [
    None,
    Some(chrono_tz::UTC),
    Some(chrono_tz::Europe::Berlin),
    Some(chrono_tz::America::New_York),
    Some(chrono_tz::Australia::Lord_Howe),
    Some(chrono_tz::Asia::Kolkata),
];

// ---------------------------------------------------------------------------
// The reference: scan local wall-clock times in order, map each match to an
// instant by the DST rules, take the first one after `t`.

/// The local time of `x` in `tz` (UTC without a zone).
fn local(tz: Option<Tz>, x: DateTime<Utc>) -> NaiveDateTime {
    match tz {
        Some(tz) => x.with_timezone(&tz).naive_local(),
        None => x.naive_utc(),
    }
}

/// The first instant whose local time is past `n`, a time in a gap, found by
/// walking minute by minute and then second by second.
fn brute_gap_end(tz: Tz, n: NaiveDateTime) -> DateTime<Utc> {
    let past = |x: DateTime<Utc>| x.with_timezone(&tz).naive_local() > n;
    let mut x = (n - chrono::Duration::hours(15)).and_utc();
    assert!(!past(x));
    while !past(x) {
        x += chrono::Duration::minutes(1);
    }
    let mut y = x - chrono::Duration::minutes(1);
    while !past(y) {
        y += chrono::Duration::seconds(1);
    }
    y
}

struct Reference<'a> {
    expr: &'a Expr,
    tz: Option<Tz>,
    /// The last gap seen: its last local time before, its first local time
    /// after, and the instant of the jump.
    gap: Option<(NaiveDateTime, NaiveDateTime, DateTime<Utc>)>,
}

impl Reference<'_> {
    /// The instant a matching local time fires at: itself when it exists
    /// once, its first occurrence when it exists twice, the end of the gap
    /// when it does not exist.
    fn instant(&mut self, n: NaiveDateTime) -> DateTime<Utc> {
        let Some(tz) = self.tz else { return n.and_utc() };
        match tz.from_local_datetime(&n) {
            LocalResult::Single(x) => x.to_utc(),
            LocalResult::Ambiguous(a, b) => a.to_utc().min(b.to_utc()),
            LocalResult::None => {
                if let Some((before, after, at)) = self.gap
                    && before < n
                    && n < after
                {
                    return at;
                }
                let at = brute_gap_end(tz, n);
                let before = local(self.tz, at - chrono::Duration::seconds(1));
                self.gap = Some((before, local(self.tz, at), at));
                at
            }
        }
    }

    /// The first fire after `t`, looking `horizon_days` ahead; `Err(limit)`
    /// when there is none before `limit`.
    fn next_after(
        &mut self,
        t: DateTime<Utc>,
        horizon_days: i64,
    ) -> Result<DateTime<Utc>, NaiveDateTime> {
        // Local times more than three hours before that of `t` (more than
        // any DST shift of the zones used) fire at or before `t`.
        let lower = local(self.tz, t) - chrono::Duration::hours(3);
        let start = lower.date();
        let end = start + chrono::Duration::days(horizon_days);
        let mut day = start;
        while day < end {
            if self.expr.day_matches(day) {
                for h in (0..24).filter(|&h| self.expr.hour.matches[h as usize]) {
                    for m in (0..60).filter(|&m| self.expr.minute.matches[m as usize]) {
                        for s in (0..60).filter(|&s| self.expr.second_matches(s)) {
                            let n = day.and_hms_opt(h, m, s).unwrap();
                            if n < lower {
                                continue;
                            }
                            let at = self.instant(n);
                            if at > t {
                                return Ok(at);
                            }
                        }
                    }
                }
            }
            day = day.succ_opt().unwrap();
        }
        Err(end.and_hms_opt(0, 0, 0).unwrap())
    }
}

// ---------------------------------------------------------------------------
// Start instants: anywhere in 2020-2035, or close to a DST transition.

/// Every offset change of `tz` in 2024-2028, to the second.
fn transitions(tz: Tz) -> Vec<DateTime<Utc>> {
    let offset = |x: DateTime<Utc>| {
        use chrono::Offset;
        x.with_timezone(&tz).offset().fix()
    };
    let mut out = Vec::new();
    let mut x = utc(2024, 1, 1, 0, 0, 0);
    while x < utc(2029, 1, 1, 0, 0, 0) {
        let next = x + chrono::Duration::hours(1);
        if offset(x) != offset(next) {
            let (mut lo, mut hi) = (x, next);
            while hi - lo > chrono::Duration::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                if offset(mid) == offset(next) {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            out.push(hi);
        }
        x = next;
    }
    out
}

fn all_transitions() -> &'static [DateTime<Utc>] {
    static CELL: OnceLock<Vec<DateTime<Utc>>> = OnceLock::new();
    CELL.get_or_init(|| {
        let mut all: Vec<_> = ZONES.iter().flatten().flat_map(|tz| transitions(*tz)).collect();
        all.sort();
        all
    })
}

fn start_instant() -> impl Strategy<Value = DateTime<Utc>> {
    let uniform = (
        utc(2020, 1, 1, 0, 0, 0).timestamp()..utc(2035, 1, 1, 0, 0, 0).timestamp(),
        0..1_000_000_000u32,
    )
        .prop_map(|(s, ns)| DateTime::from_timestamp(s, ns).unwrap());
    let near = (
        any::<prop::sample::Index>(),
        -2 * 86_400..2 * 86_400i64,
        prop_oneof![Just(0), 0..1_000_000_000u32],
    )
        .prop_map(|(i, off, ns)| {
            let all = all_transitions();
            all[i.index(all.len())]
                + chrono::Duration::seconds(off)
                + chrono::Duration::nanoseconds(ns.into())
        });
    prop_oneof![1 => uniform, 2 => near]
}

/// An instant from three hours before to one hour after a transition.
fn just_before_transition() -> impl Strategy<Value = DateTime<Utc>> {
    (any::<prop::sample::Index>(), -3 * 3600..3600i64, prop_oneof![Just(0), 0..1_000_000_000u32])
        .prop_map(|(i, off, ns)| {
            let all = all_transitions();
            all[i.index(all.len())]
                + chrono::Duration::seconds(off)
                + chrono::Duration::nanoseconds(ns.into())
        })
}

/// Checks `fires` successive fires of `expr` in `tz` after `t` against the
/// reference.
fn check_against_reference(expr: &Expr, tz: Option<Tz>, mut t: DateTime<Utc>, fires: usize) {
    let text = match tz {
        Some(tz) => format!("CRON_TZ={} {}", tz.name(), expr.text()),
        None => expr.text(),
    };
    let parsed = Schedule::parse(&text);
    if !expr.days_possible() {
        match parsed {
            Err(Error::InvalidCronField { field: "day-of-month", .. }) => return,
            other => panic!("{text}: never fires, but parsed as {other:?}"),
        }
    }
    let schedule = parsed.unwrap_or_else(|e| panic!("{text}: {e}"));
    let mut reference = Reference { expr, tz, gap: None };
    // Eight years hold every day-of-month/day-of-week/month combination.
    let horizon_days = 8 * 366;
    for i in 0..fires {
        let got = schedule.next_after(t);
        match reference.next_after(t, horizon_days) {
            Ok(want) => {
                assert_eq!(got, Some(want), "{text}: fire {i} after {t}");
            }
            Err(limit) => {
                if let Some(got) = got {
                    assert!(local(tz, got) >= limit, "{text}: fire {i} after {t}: {got}");
                }
                return;
            }
        }
        let next = got.unwrap();
        assert!(next > t, "{text}: {next} is not after {t}");
        t = next;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn five_fields_match_the_reference(
        expr in expr(false),
        zone in 0..ZONES.len(),
        t in start_instant(),
    ) {
        check_against_reference(&expr, ZONES[zone], t, 6);
    }

    #[test]
    fn six_fields_match_the_reference(
        expr in expr(true),
        zone in 0..ZONES.len(),
        t in start_instant(),
    ) {
        check_against_reference(&expr, ZONES[zone], t, 6);
    }

    #[test]
    fn dense_five_fields_across_transitions(
        expr in dense_expr(false),
        zone in 2..ZONES.len(),
        t in just_before_transition(),
    ) {
        check_against_reference(&expr, ZONES[zone], t, 8);
    }

    #[test]
    fn dense_six_fields_across_transitions(
        expr in dense_expr(true),
        zone in 2..ZONES.len(),
        t in just_before_transition(),
    ) {
        check_against_reference(&expr, ZONES[zone], t, 8);
    }

    #[test]
    fn five_fields_equal_six_with_zero_seconds(
        expr in expr(false),
        zone in 0..ZONES.len(),
        t in start_instant(),
    ) {
        prop_assume!(expr.days_possible());
        let prefix = ZONES[zone].map(|tz| format!("CRON_TZ={} ", tz.name())).unwrap_or_default();
        let five = parse(&format!("{prefix}{}", expr.text()));
        let six = parse(&format!("{prefix}0 {}", expr.text()));
        prop_assert_eq!(&five, &six);
        let (mut a, mut b) = (t, t);
        for _ in 0..4 {
            let (na, nb) = (five.next_after(a), six.next_after(b));
            prop_assert_eq!(na, nb);
            let Some(n) = na else { break };
            (a, b) = (n, n);
        }
    }

    #[test]
    fn display_round_trips(
        expr in expr(true),
        five in any::<bool>(),
        zone in 0..ZONES.len(),
        t in start_instant(),
    ) {
        prop_assume!(expr.days_possible());
        let text = if five { expr.text().split_once(' ').unwrap().1.to_owned() } else { expr.text() };
        let mut s = parse(&text);
        if let Some(tz) = ZONES[zone] {
            s = s.with_timezone(tz.name()).unwrap();
        }
        let back = parse(&s.to_string());
        prop_assert_eq!(&back, &s);
        prop_assert_eq!(back.to_string(), s.to_string());
        prop_assert_eq!(back.next_after(t), s.next_after(t));
    }

    #[test]
    fn intervals_and_times_round_trip(
        nanos in 1_000_000..u64::MAX / 2,
        at in start_instant(),
        t in start_instant(),
    ) {
        for s in [Schedule::interval(Duration::from_nanos(nanos)).unwrap(), Schedule::once(at)] {
            let back = parse(&s.to_string());
            prop_assert_eq!(&back, &s);
            prop_assert_eq!(back.next_after(t), s.next_after(t));
        }
        let every = Schedule::interval(Duration::from_nanos(nanos)).unwrap();
        prop_assert_eq!(every.next_after(t), Some(t + chrono::Duration::nanoseconds(nanos as i64)));
    }

    #[test]
    fn phased_intervals_fire_on_their_grid_and_round_trip(
        every_ms in 1u64..10 * 24 * 3_600_000,
        sub_ms_ns in 0u64..1_000_000,
        start in start_instant(),
        t in start_instant(),
    ) {
        let every = Duration::from_millis(every_ms) + Duration::from_nanos(sub_ms_ns);
        let s = Schedule::interval_at(start, every).unwrap();
        let back = parse(&s.to_string());
        prop_assert_eq!(&back, &s);
        prop_assert_eq!(s.interval_duration(), Some(every));
        let n = s.next_after(t).expect("within chrono's nanosecond range");
        prop_assert!(n > t && n >= start, "{n} after {t}, from {start}");
        let since = (n - start).num_nanoseconds().unwrap() as u128;
        prop_assert_eq!(since % every.as_nanos(), 0, "{} on the grid of {:?} from {}", n, every, start);
        if n > start {
            // No grid point is skipped: the one before is at or before t.
            prop_assert!(n - chrono::Duration::from_std(every).unwrap() <= t);
        }
    }
}

// ---------------------------------------------------------------------------
// Real transitions, by hand.

#[test]
fn berlin_spring_forward() {
    // 2026-03-29 02:00 CET (01:00 UTC) becomes 03:00 CEST.
    let s = parse("CRON_TZ=Europe/Berlin 30 2 * * *");
    assert_eq!(
        fires(&s, utc(2026, 3, 27, 12, 0, 0), 3),
        [utc(2026, 3, 28, 1, 30, 0), utc(2026, 3, 29, 1, 0, 0), utc(2026, 3, 30, 0, 30, 0)]
    );
    let s = parse("CRON_TZ=Europe/Berlin */15 * * * *");
    assert_eq!(
        fires(&s, utc(2026, 3, 29, 0, 30, 0), 4),
        [
            utc(2026, 3, 29, 0, 45, 0), // 01:45 CET
            utc(2026, 3, 29, 1, 0, 0),  // 02:00-02:45 do not exist; with 03:00 CEST, one fire
            utc(2026, 3, 29, 1, 15, 0), // 03:15 CEST
            utc(2026, 3, 29, 1, 30, 0),
        ]
    );
}

#[test]
fn berlin_fall_back() {
    // 2026-10-25 03:00 CEST (01:00 UTC) becomes 02:00 CET.
    let s = parse("CRON_TZ=Europe/Berlin 30 2 * * *");
    assert_eq!(
        fires(&s, utc(2026, 10, 24, 12, 0, 0), 2),
        [utc(2026, 10, 25, 0, 30, 0), utc(2026, 10, 26, 1, 30, 0)]
    );
    let s = parse("CRON_TZ=Europe/Berlin */15 * * * *");
    assert_eq!(
        fires(&s, utc(2026, 10, 24, 23, 50, 0), 6),
        [
            utc(2026, 10, 25, 0, 0, 0), // 02:00 CEST
            utc(2026, 10, 25, 0, 15, 0),
            utc(2026, 10, 25, 0, 30, 0),
            utc(2026, 10, 25, 0, 45, 0), // 02:45 CEST; 02:00-02:45 CET are repeats
            utc(2026, 10, 25, 2, 0, 0),  // 03:00 CET
            utc(2026, 10, 25, 2, 15, 0),
        ]
    );
    // Asked during the repeated hour, it waits for 03:00 CET.
    assert_eq!(s.next_after(utc(2026, 10, 25, 1, 20, 0)), Some(utc(2026, 10, 25, 2, 0, 0)));
}

#[test]
fn new_york_spring_forward() {
    // 2026-03-08 02:00 EST (07:00 UTC) becomes 03:00 EDT.
    let s = parse("CRON_TZ=America/New_York 30 2 * * *");
    assert_eq!(
        fires(&s, utc(2026, 3, 6, 12, 0, 0), 3),
        [utc(2026, 3, 7, 7, 30, 0), utc(2026, 3, 8, 7, 0, 0), utc(2026, 3, 9, 6, 30, 0)]
    );
    let s = parse("CRON_TZ=America/New_York */15 * * * *");
    assert_eq!(
        fires(&s, utc(2026, 3, 8, 6, 40, 0), 3),
        [utc(2026, 3, 8, 6, 45, 0), utc(2026, 3, 8, 7, 0, 0), utc(2026, 3, 8, 7, 15, 0)]
    );
}

#[test]
fn new_york_fall_back() {
    // 2026-11-01 02:00 EDT (06:00 UTC) becomes 01:00 EST: 01:00-01:59 repeat,
    // 02:30 happens once (EST).
    let s = parse("CRON_TZ=America/New_York 30 2 * * *");
    assert_eq!(
        fires(&s, utc(2026, 10, 31, 12, 0, 0), 2),
        [utc(2026, 11, 1, 7, 30, 0), utc(2026, 11, 2, 7, 30, 0)]
    );
    let s = parse("CRON_TZ=America/New_York 30 1 * * *");
    assert_eq!(
        fires(&s, utc(2026, 10, 31, 12, 0, 0), 2),
        [utc(2026, 11, 1, 5, 30, 0), utc(2026, 11, 2, 6, 30, 0)]
    );
    let s = parse("CRON_TZ=America/New_York */15 * * * *");
    assert_eq!(
        fires(&s, utc(2026, 11, 1, 5, 40, 0), 3),
        [utc(2026, 11, 1, 5, 45, 0), utc(2026, 11, 1, 7, 0, 0), utc(2026, 11, 1, 7, 15, 0)]
    );
}

#[test]
fn lord_howe_half_hour_shift() {
    // 2026-10-04 02:00 (+10:30) becomes 02:30 (+11) at 15:30 UTC on the 3rd.
    let s = parse("CRON_TZ=Australia/Lord_Howe */15 * * * *");
    assert_eq!(
        fires(&s, utc(2026, 10, 3, 15, 10, 0), 3),
        [utc(2026, 10, 3, 15, 15, 0), utc(2026, 10, 3, 15, 30, 0), utc(2026, 10, 3, 15, 45, 0)]
    );
    // 2026-04-05 02:00 (+11) becomes 01:30 (+10:30) at 15:00 UTC on the 4th.
    let s = parse("CRON_TZ=Australia/Lord_Howe 45 1 * * *");
    assert_eq!(
        fires(&s, utc(2026, 4, 4, 12, 0, 0), 2),
        [utc(2026, 4, 4, 14, 45, 0), utc(2026, 4, 5, 15, 15, 0)]
    );
}

#[test]
fn schedule_agrees_with_with_timezone() {
    let a = parse("CRON_TZ=Europe/Berlin 0 2 * * *");
    let b = parse("0 2 * * *").with_timezone("Europe/Berlin").unwrap();
    assert_eq!(a, b);
    let t = utc(2026, 3, 1, 0, 0, 0);
    assert_eq!(fires(&a, t, 40), fires(&b, t, 40));
}

// ---------------------------------------------------------------------------
// Every message a schedule can be refused with, for review.

#[test]
fn error_messages() {
    let inputs = [
        "61 * * * *",
        "0 24 * * *",
        "0 0 32 * *",
        "0 0 0 * *",
        "0 0 * 13 *",
        "0 0 * FOO *",
        "0 0 * * 8",
        "0 0 * * MON-FOO",
        "60 0 0 * * *",
        "5-3 * * * *",
        "0 0 * * FRI-MON",
        "*/0 * * * *",
        "*/60 * * * *",
        "0 0 * * 1/8",
        "1,,2 * * * *",
        "? * * * *",
        "0 0 1,? * *",
        "0 0 30 2 *",
        "* * * *",
        "* * * * * * *",
        "@fortnightly",
        "@reboot",
        "CRON_TZ=Mars/Olympus_Mons 0 2 * * *",
        "TZ= 0 2 * * *",
        "CRON_TZ=Europe/Berlin @every 5m",
        "0",
        "0_000",
        "700",
        "0ms",
        "@every 0s",
        "@every 500us",
        "@every",
        "@every 5",
        "@every 5 minutes",
        "@at tomorrow",
        "99999999999999999999999",
        "",
        "banana",
        "every day at two",
    ];
    let mut out = String::new();
    for input in inputs {
        let err = Schedule::parse(input).expect_err(input);
        out.push_str(&format!("{input:?}\n  => {err}\n"));
    }
    let zero = Schedule::interval(Duration::ZERO).unwrap_err();
    out.push_str(&format!("Schedule::interval(Duration::ZERO)\n  => {zero}\n"));
    let tiny = Schedule::interval(Duration::from_micros(10)).unwrap_err();
    out.push_str(&format!("Schedule::interval(10us)\n  => {tiny}\n"));
    let zone = parse("0 2 * * *").with_timezone("Europe/Berlln").unwrap_err();
    out.push_str(&format!("with_timezone(\"Europe/Berlln\")\n  => {zone}\n"));
    insta::assert_snapshot!("error_messages", out);
}
