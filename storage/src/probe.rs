//! Database health probes: one round trip with a timeout.
//!
//! [`SqliteProbe`](crate::SqliteProbe) and
//! [`PostgresProbe`](crate::PostgresProbe) are plain structs with an
//! `async fn check(&self) -> DbCheck`; the server's health endpoint
//! adapts them to its own probe trait.

use std::time::Duration;

/// The outcome of one database check (the server turns it into its health
/// probe's `ProbeReport`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbCheck {
    /// Whether the database answered correctly within the timeout.
    pub ok: bool,
    /// How long the check took (up to the timeout when it timed out).
    pub latency: Duration,
    /// Why it failed; `None` when `ok`.
    pub message: Option<String>,
}

impl DbCheck {
    pub(crate) fn ok(latency: Duration) -> Self {
        DbCheck { ok: true, latency, message: None }
    }

    pub(crate) fn failed(latency: Duration, message: impl Into<String>) -> Self {
        DbCheck { ok: false, latency, message: Some(message.into()) }
    }
}

/// How long a probe waits by default.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
