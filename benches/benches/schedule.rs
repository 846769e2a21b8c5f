//! Next-fire computation: `Schedule::next_after` for typical 5-field,
//! 6-field and time-zone expressions, beside calling the `cron` crate
//! directly with the same expression in its own syntax.
//!
//! `cargo bench -p mscribe-bench --bench schedule`
#![allow(missing_docs)]

use std::hint::black_box;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mscribe_scheduler::Schedule;

/// (name, our expression, our zone, the cron crate's expression)
const CASES: &[(&str, &str, Option<&str>, &str)] = &[
    ("5_field_every_15_min", "*/15 * * * *", None, "0 */15 * * * *"),
    ("5_field_daily_0230", "30 2 * * *", None, "0 30 2 * * *"),
    ("5_field_weekdays_0900", "0 9 * * 1-5", None, "0 0 9 * * Mon-Fri"),
    ("6_field_every_10_s", "*/10 * * * * *", None, "*/10 * * * * *"),
    ("6_field_0915_weekdays", "0 15 9 * * 1-5", None, "0 15 9 * * Mon-Fri"),
    ("tz_berlin_weekdays_0900", "0 9 * * 1-5", Some("Europe/Berlin"), "0 0 9 * * Mon-Fri"),
    ("tz_new_york_daily_0230", "30 2 * * *", Some("America/New_York"), "0 30 2 * * *"),
];

fn bench(c: &mut Criterion) {
    let t: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 3, 11, 10, 17, 23).unwrap();
    let mut g = c.benchmark_group("next_after");
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(1));
    for &(name, ours, zone, theirs) in CASES {
        let mut s = Schedule::parse(ours).unwrap();
        if let Some(z) = zone {
            s = s.with_timezone(z).unwrap();
        }
        g.bench_function(BenchmarkId::new("mscribe", name), |b| {
            b.iter(|| black_box(&s).next_after(black_box(t)))
        });
        let cs = cron::Schedule::from_str(theirs).unwrap();
        match zone {
            None => g.bench_function(BenchmarkId::new("cron", name), |b| {
                b.iter(|| black_box(&cs).after(black_box(&t)).next())
            }),
            Some(z) => {
                let tz: chrono_tz::Tz = z.parse().unwrap();
                g.bench_function(BenchmarkId::new("cron", name), |b| {
                    b.iter(|| black_box(&cs).after(&black_box(t).with_timezone(&tz)).next())
                })
            }
        };
        // Same answer from both, so the comparison is like for like.
        let ours_next = s.next_after(t).unwrap();
        let theirs_next = match zone {
            None => cs.after(&t).next().unwrap(),
            Some(z) => {
                let tz: chrono_tz::Tz = z.parse().unwrap();
                cs.after(&t.with_timezone(&tz)).next().unwrap().with_timezone(&Utc)
            }
        };
        assert_eq!(ours_next, theirs_next, "{name}");
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
