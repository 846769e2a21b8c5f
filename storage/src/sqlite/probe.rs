//! The SQLite health probe.

use std::time::{Duration, Instant};

use futures::future::{Either, select};
use rusqlite::OptionalExtension;

use super::error::store_error;
use super::store::SqliteStore;
use crate::probe::{DEFAULT_PROBE_TIMEOUT, ProbeReport};

/// Checks that a [`SqliteStore`]'s writer thread answers: a query through
/// the same queue as the writes, so a writer stuck behind a lock or a long
/// prune shows up as slow or failing.
#[derive(Debug, Clone)]
pub struct SqliteProbe {
    store: SqliteStore,
    timeout: Duration,
}

impl SqliteProbe {
    /// A probe of `store` with the default timeout (2 s).
    pub fn new(store: &SqliteStore) -> Self {
        SqliteProbe { store: store.clone(), timeout: DEFAULT_PROBE_TIMEOUT }
    }

    /// Sets how long a check may take before it fails.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// One round trip: reads the schema version through the writer thread.
    pub async fn check(&self) -> ProbeReport {
        let start = Instant::now();
        // The timer below decides; the writer's own limit is only a backstop.
        let query = self.store.on_writer("probe", self.timeout.saturating_mul(2), |c| {
            c.query_row("SELECT max(version) FROM mscribe_migrations", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .optional()
            .map_err(|e| store_error("probe", e))
        });
        let timer = futures_timer::Delay::new(self.timeout);
        futures::pin_mut!(query);
        match select(query, timer).await {
            Either::Left((Ok(Some(Some(_))), _)) => ProbeReport::ok(start.elapsed()),
            Either::Left((Ok(_), _)) => ProbeReport::failed(
                start.elapsed(),
                format!("{}: no migration recorded", self.store.target()),
            ),
            Either::Left((Err(e), _)) => ProbeReport::failed(start.elapsed(), e.to_string()),
            Either::Right(((), _)) => ProbeReport::failed(
                start.elapsed(),
                format!("{}: no answer within {:?}", self.store.target(), self.timeout),
            ),
        }
    }
}
