//! Checks of a SQLite database: [`SqliteProbe`], the health probe of a live
//! store, and [`verify_sqlite_file`], the check of a file (a backup).

use std::path::Path;
use std::time::{Duration, Instant};

use futures::future::{Either, select};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::error::store_error;
use super::sql;
use super::store::SqliteStore;
use crate::probe::{DEFAULT_PROBE_TIMEOUT, DbCheck};

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
    pub async fn check(&self) -> DbCheck {
        let start = Instant::now();
        // The timer below decides; the writer's own limit is only a backstop.
        let query = self.store.worker().on_writer("probe", self.timeout.saturating_mul(2), |c| {
            c.query_row(sql::SCHEMA_VERSION, [], |r| r.get::<_, Option<i64>>(0))
                .optional()
                .map_err(|e| store_error("probe", e))
        });
        let timer = futures_timer::Delay::new(self.timeout);
        futures::pin_mut!(query);
        match select(query, timer).await {
            Either::Left((Ok(Some(Some(_))), _)) => DbCheck::ok(start.elapsed()),
            Either::Left((Ok(_), _)) => DbCheck::failed(
                start.elapsed(),
                format!("{}: no migration recorded", self.store.target()),
            ),
            Either::Left((Err(e), _)) => DbCheck::failed(start.elapsed(), e.to_string()),
            Either::Right(((), _)) => DbCheck::failed(
                start.elapsed(),
                format!("{}: no answer within {:?}", self.store.target(), self.timeout),
            ),
        }
    }
}

/// Opens a SQLite database file read-only (a backup, say), runs `PRAGMA
/// integrity_check`, and returns how many execution rows it holds.
///
/// Blocking: call it off the async threads. The error says which step
/// failed, with SQLite's words: `cannot open: ...`, `integrity_check: ...`
/// (the problems it lists), `cannot read scheduled_job_executions: ...`.
pub fn verify_sqlite_file(path: &Path) -> Result<i64, String> {
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open: {e}"))?;
    let mut st = c.prepare(sql::INTEGRITY_CHECK).map_err(|e| format!("integrity_check: {e}"))?;
    let lines: Vec<String> = st
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| format!("integrity_check: {e}"))?;
    if lines != ["ok"] {
        return Err(format!("integrity_check: {}", lines.join("; ")));
    }
    c.query_row(sql::COUNT_EXECUTIONS, [], |r| r.get(0))
        .map_err(|e| format!("cannot read scheduled_job_executions: {e}"))
}
