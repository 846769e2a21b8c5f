//! How log fields are written: instants as RFC 3339 in UTC with the `Z`
//! offset, never chrono's `2026-01-01 00:00:00 UTC`.

use std::fmt;

use chrono::{DateTime, Utc};

/// An instant written as RFC 3339 (`2026-01-01T02:00:00.250Z`: fractional
/// seconds only when there are some), for `tracing` fields with `%`.
pub(crate) struct Rfc3339(pub(crate) DateTime<Utc>);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%S%.fZ"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_rfc3339_with_their_offset() {
        let t = DateTime::parse_from_rfc3339("2026-03-29T01:30:00.25+00:00").unwrap().to_utc();
        assert_eq!(Rfc3339(t).to_string(), "2026-03-29T01:30:00.250Z");
        let whole = DateTime::parse_from_rfc3339("2026-03-29T01:30:00Z").unwrap().to_utc();
        assert_eq!(Rfc3339(whole).to_string(), "2026-03-29T01:30:00Z");
        assert!(DateTime::parse_from_rfc3339(&Rfc3339(t).to_string()).is_ok());
    }
}
