//! Value parsers of the configuration: durations, sizes, job schedules and
//! the listen address.
//!
//! Each is a serde `deserialize_with` helper (`30s`, `7d`; `100MiB` or a
//! number of bytes; cron text or a TOML integer of milliseconds;
//! `IP:PORT`) with the plain parser it uses. A duration is at most
//! [`MAX_DURATION`], and [`deadline`] adds one to an instant without
//! overflow, so a configured duration never panics at run time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// A duration such as `30s`, `5m`, `1h30m`, `7d`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d).map_err(|_| {
        D::Error::custom("expected a duration as a string, such as \"30s\", \"5m\" or \"7d\"")
    })?;
    parse_duration(&s).map_err(D::Error::custom)
}

/// The longest duration accepted by any key: 100 years (`"100y"`, a year
/// being 365.25 days). Longer would mean "never", and past what a clock
/// can add to its instants the server would panic at run time.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// Parses a duration such as `30s`, `500ms`, `1h30m`, `7d`; at most
/// [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let too_long = || format!("must be at most 100y, got \"{s}\"");
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d > MAX_DURATION => Err(too_long()),
        Ok(d) => Ok(d),
        Err(humantime::DurationError::NumberOverflow) => Err(too_long()),
        Err(e) => Err(format!(
            "invalid duration \"{s}\": {e}; expected e.g. \"500ms\", \"30s\", \"5m\", \"2h\", \"7d\""
        )),
    }
}

/// `from + d`, or, past what the clock can hold, a deadline 100 years
/// away (or `from` itself on a clock that cannot even hold that): a
/// duration that may be configured, added to an instant, never panics.
pub fn deadline(from: Instant, d: Duration) -> Instant {
    from.checked_add(d).or_else(|| from.checked_add(MAX_DURATION)).unwrap_or(from)
}

/// [`deadline`] on tokio's clock (which may be paused in tests).
pub fn tokio_deadline(from: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    tokio::time::Instant::from_std(deadline(from.into_std(), d))
}

/// The listen address: `IP:PORT`, such as `127.0.0.1:8080` or
/// `[::1]:8080`; an error names the value.
pub fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    match toml::Value::deserialize(d)? {
        toml::Value::String(s) => parse_socket_addr(&s).map_err(D::Error::custom),
        other => Err(D::Error::custom(format!(
            "expected a listen address as a string, such as \"127.0.0.1:8080\", got {} {other}",
            other.type_str()
        ))),
    }
}

/// Parses a listen address, `IP:PORT`; the error quotes it and says what
/// is wrong (a port out of range, or no `IP:PORT` at all).
pub fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    match s.rsplit_once(':') {
        Some((_, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u16>().is_err() =>
        {
            Err(format!("invalid listen address \"{s}\": port {port} is out of range (0 to 65535)"))
        }
        _ => Err(format!(
            "invalid listen address \"{s}\": expected IP:PORT, such as \"127.0.0.1:8080\" or \"[::1]:8080\""
        )),
    }
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

    #[test]
    fn durations_past_a_hundred_years_are_refused_naming_the_value() {
        assert_eq!(parse_duration("100y").unwrap(), Duration::from_secs(100 * 31_557_600));
        assert_eq!(
            parse_duration("300000000000y").unwrap_err(),
            "must be at most 100y, got \"300000000000y\""
        );
        assert!(parse_duration("100y 1s").is_err());
    }
}
