//! Value parsers of the configuration: durations, sizes and job schedules.
//!
//! Each is a serde `deserialize_with` helper (`30s`, `7d`; `100MiB` or a
//! number of bytes; cron text or a TOML integer of milliseconds) with the
//! plain parser it uses.

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// A duration such as `30s`, `5m`, `1h30m`, `7d`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d).map_err(|_| {
        D::Error::custom("expected a duration as a string, such as \"30s\", \"5m\" or \"7d\"")
    })?;
    parse_duration(&s).map_err(D::Error::custom)
}

/// Parses a duration such as `30s`, `500ms`, `1h30m`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("invalid duration \"{s}\": {e}; expected e.g. \"500ms\", \"30s\", \"5m\", \"2h\", \"7d\"")
    })
}

/// A job's schedule: a string, kept as written (`Schedule::parse`
/// checks it when the configuration is validated, so a bare number
/// such as `"60000"` is refused there, naming the key), or an integer
/// number of milliseconds, as the engine reads
/// `JobConfig::schedule(60_000u64)`, kept as its interval's text
/// (`60000` becomes `@every 1m`).
pub fn schedule<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Millis(i64),
        Text(String),
    }
    match Raw::deserialize(d).map_err(|_| {
        D::Error::custom(
            "expected a schedule: a string such as \"0 2 * * *\", \"@daily\" or \"90s\", \
             or an integer number of milliseconds such as 60000",
        )
    })? {
        Raw::Text(s) => Ok(s),
        Raw::Millis(n) => {
            let ms = u64::try_from(n).map_err(|_| {
                D::Error::custom(format!(
                    "a schedule in milliseconds must not be negative, got {n}"
                ))
            })?;
            mscribe_scheduler::Schedule::every_ms(ms)
                .map(|s| s.to_string())
                .map_err(D::Error::custom)
        }
    }
}

/// A size: an integer number of bytes, or a string such as `100MiB`, `1GB`, `64KiB`.
pub fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(i64),
        S(String),
    }
    match Raw::deserialize(d).map_err(|_| {
        D::Error::custom("expected a size: a number of bytes or a string such as \"100MiB\"")
    })? {
        Raw::N(n) => u64::try_from(n)
            .map_err(|_| D::Error::custom(format!("size must not be negative, got {n}"))),
        Raw::S(s) => parse_bytes(&s).map_err(D::Error::custom),
    }
}

/// Parses a size such as `1048576`, `64KiB`, `100MiB`, `1GB`, `2G`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 =
        num.parse().map_err(|_| format!("invalid size \"{s}\": expected e.g. \"100MiB\""))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => {
            return Err(format!(
                "invalid size \"{s}\": unknown unit \"{other}\", expected B, KB, KiB, MB, MiB, GB, GiB, TB or TiB"
            ));
        }
    };
    Ok((n * mult as f64).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_bytes("100MiB").unwrap(), 100 << 20);
        assert_eq!(parse_bytes("1GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_bytes("512").unwrap(), 512);
        assert_eq!(parse_bytes("1.5KiB").unwrap(), 1536);
        assert!(parse_bytes("12 parsecs").is_err());
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
    }
}
