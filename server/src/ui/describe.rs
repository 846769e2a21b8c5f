//! A schedule in plain words ("at 02:00 every day, Europe/Berlin"): common
//! cron shapes, macros, intervals and one-off times; anything else is the
//! expression itself with its zone.

/// The schedule text (as the API shows it: `CRON_TZ=<zone> <cron>`,
/// `@every 5m`, `@at <time>`, a macro, or 5- or 6-field cron) in plain
/// words; a trigger-only job (`None`) is "on demand only".
pub(crate) fn describe(schedule: Option<&str>) -> String {
    let Some(text) = schedule.map(str::trim) else { return "on demand only".to_owned() };
    let (zone, expr) = split_zone(text);
    if let Some(every) = expr.strip_prefix("@every ") {
        return format!("every {}", every.trim());
    }
    if let Some(at) = expr.strip_prefix("@at ") {
        return format!("once, at {}", at.trim());
    }
    if !expr.starts_with('@') && expr.split_whitespace().count() == 1 {
        // A bare interval such as `60s`.
        return format!("every {expr}");
    }
    let words = match expr {
        "@yearly" | "@annually" => Some("at 00:00 on 1 January every year".to_owned()),
        "@monthly" => Some("at 00:00 on day 1 of every month".to_owned()),
        "@weekly" => Some("at 00:00 every Sunday".to_owned()),
        "@daily" | "@midnight" => Some("at 00:00 every day".to_owned()),
        "@hourly" => Some("at minute 0 of every hour".to_owned()),
        _ => cron_words(expr),
    };
    format!("{}, {}", words.unwrap_or_else(|| expr.to_owned()), zone.unwrap_or("UTC"))
}

/// The `CRON_TZ=` (or `TZ=`) zone and the rest.
fn split_zone(text: &str) -> (Option<&str>, &str) {
    for prefix in ["CRON_TZ=", "TZ="] {
        if let Some(rest) = text.strip_prefix(prefix)
            && let Some((zone, expr)) = rest.split_once(char::is_whitespace)
        {
            return (Some(zone), expr.trim());
        }
    }
    (None, text)
}

const DAYS: [&str; 7] =
    ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// A number field of at most `max`.
fn num(f: &str, max: u32) -> Option<u32> {
    f.parse::<u32>().ok().filter(|n| *n <= max)
}

/// `*/n` as n.
fn step(f: &str) -> Option<u32> {
    f.strip_prefix("*/").and_then(|n| n.parse().ok()).filter(|n| *n > 0)
}

/// A day-of-week field: one day, a range or a list of days.
fn weekdays(f: &str) -> Option<String> {
    let day = |s: &str| -> Option<&'static str> {
        let n = match s.to_ascii_uppercase().as_str() {
            "SUN" => 0,
            "MON" => 1,
            "TUE" => 2,
            "WED" => 3,
            "THU" => 4,
            "FRI" => 5,
            "SAT" => 6,
            other => num(other, 7)? % 7,
        };
        Some(DAYS[n as usize])
    };
    if let Some((a, b)) = f.split_once('-') {
        return Some(format!("{} to {}", day(a)?, day(b)?));
    }
    let days: Option<Vec<&str>> = f.split(',').map(day).collect();
    let days = days?;
    Some(match days.as_slice() {
        [one] => format!("every {one}"),
        [init @ .., last] => format!("on {} and {last}", init.join(", ")),
        [] => return None,
    })
}

/// Common 5-field (or 6-field with second 0) cron shapes in words.
fn cron_words(expr: &str) -> Option<String> {
    let mut fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() == 6 {
        if fields[0] != "0" {
            return None;
        }
        fields.remove(0);
    }
    let [min, hour, dom, mon, dow] = fields.as_slice() else { return None };
    let anyday = *dom == "*" && *mon == "*";
    match (num(min, 59), num(hour, 23)) {
        (Some(m), Some(h)) if *mon == "*" => {
            let at = format!("at {h:02}:{m:02}");
            match (*dom, *dow) {
                ("*", "*") => Some(format!("{at} every day")),
                ("*", d) => {
                    let days = weekdays(d)?;
                    Some(if days.contains(" to ") {
                        format!("{at}, {days}")
                    } else {
                        format!("{at} {days}")
                    })
                }
                (d, "*") => Some(format!("{at} on day {} of every month", num(d, 31)?)),
                _ => None,
            }
        }
        (Some(m), None) if anyday && *dow == "*" => match (*hour, step(hour)) {
            ("*", _) => Some(format!("at minute {m} of every hour")),
            (_, Some(n)) => Some(format!("at minute {m} of every {n} hours")),
            _ => None,
        },
        (None, None) if anyday && *dow == "*" && *hour == "*" => match (*min, step(min)) {
            ("*", _) => Some("every minute".to_owned()),
            (_, Some(1)) => Some("every minute".to_owned()),
            (_, Some(n)) => Some(format!("every {n} minutes")),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn daily_times_read_back(m in 0u32..60, h in 0u32..24, zone in "(Europe/Berlin|UTC|America/New_York)") {
            let words = describe(Some(&format!("CRON_TZ={zone} {m} {h} * * *")));
            prop_assert_eq!(words, format!("at {h:02}:{m:02} every day, {zone}"));
        }

        #[test]
        fn any_text_is_described(fields in proptest::collection::vec("([0-9]{1,3}|\\*|\\*/[0-9]{1,2}|[0-9]-[0-9]|MON|[0-9],[0-9]|L|@daily|@every|CRON_TZ=X)", 0..8)) {
            let text = fields.join(" ");
            let words = describe(Some(&text));
            prop_assert!(!words.is_empty());
            // Words or the expression itself: never a made-up schedule.
            if !words.starts_with("at ") && !words.starts_with("every ") && !words.starts_with("once") {
                prop_assert!(words.contains(split_zone(text.trim()).1), "{} -> {}", text, words);
            }
        }
    }

    #[test]
    fn common_shapes_in_words() {
        for (schedule, words) in [
            ("0 2 * * *", "at 02:00 every day, UTC"),
            ("CRON_TZ=Europe/Berlin 0 2 * * *", "at 02:00 every day, Europe/Berlin"),
            ("TZ=Asia/Tokyo 30 9 * * 1", "at 09:30 every Monday, Asia/Tokyo"),
            ("15 3 * * 1-5", "at 03:15, Monday to Friday, UTC"),
            ("0 6 * * MON,WED,FRI", "at 06:00 on Monday, Wednesday and Friday, UTC"),
            ("0 4 1 * *", "at 04:00 on day 1 of every month, UTC"),
            ("0 0 3 * * *", "at 03:00 every day, UTC"),
            ("*/5 * * * *", "every 5 minutes, UTC"),
            ("* * * * *", "every minute, UTC"),
            ("7 * * * *", "at minute 7 of every hour, UTC"),
            ("0 */6 * * *", "at minute 0 of every 6 hours, UTC"),
            ("@daily", "at 00:00 every day, UTC"),
            ("@hourly", "at minute 0 of every hour, UTC"),
            ("@every 1h30m", "every 1h30m"),
            ("60s", "every 60s"),
            ("@at 2027-01-01T00:00:00Z", "once, at 2027-01-01T00:00:00Z"),
        ] {
            assert_eq!(describe(Some(schedule)), words, "{schedule}");
        }
        assert_eq!(describe(None), "on demand only");
    }

    #[test]
    fn other_shapes_fall_back_to_the_expression() {
        for (schedule, words) in [
            ("0 2 * 1 *", "0 2 * 1 *, UTC"),
            ("5 0-3 * * *", "5 0-3 * * *, UTC"),
            ("30 0 2 * * *", "30 0 2 * * *, UTC"),
            ("CRON_TZ=Europe/Paris 0 2 L * *", "0 2 L * *, Europe/Paris"),
            ("0 2 1 * 1", "0 2 1 * 1, UTC"),
            ("99 2 * * *", "99 2 * * *, UTC"),
        ] {
            assert_eq!(describe(Some(schedule)), words, "{schedule}");
        }
    }
}
