//! Database health probes: one round trip with a timeout.
//!
//! [`SqliteProbe`](crate::SqliteProbe) and
//! [`PostgresProbe`](crate::PostgresProbe) are plain structs with an
//! `async fn check(&self) -> ProbeReport`; the server's health endpoint
//! adapts them to its own probe trait.

use std::time::Duration;

/// The outcome of one health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// Whether the database answered correctly within the timeout.
    pub ok: bool,
    /// How long the check took (up to the timeout when it timed out).
    pub latency: Duration,
    /// Why it failed; `None` when `ok`.
    pub message: Option<String>,
}

impl ProbeReport {
    pub(crate) fn ok(latency: Duration) -> Self {
        ProbeReport { ok: true, latency, message: None }
    }

    pub(crate) fn failed(latency: Duration, message: impl Into<String>) -> Self {
        ProbeReport { ok: false, latency, message: Some(message.into()) }
    }
}

/// How long a probe waits by default.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
