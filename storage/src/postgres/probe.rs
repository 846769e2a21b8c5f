//! Checks of a Postgres database: [`PostgresProbe`], the health probe.

use std::time::{Duration, Instant};

use sqlx::postgres::PgPool;

use super::sql;
use super::store::PostgresStore;
use crate::probe::{DEFAULT_PROBE_TIMEOUT, DbCheck};

/// Checks that Postgres answers a query through a pool, within a timeout.
#[derive(Debug, Clone)]
pub struct PostgresProbe {
    pool: PgPool,
    target: String,
    timeout: Duration,
}

impl PostgresProbe {
    /// A probe through the store's pool, with the default timeout (2 s).
    pub fn new(store: &PostgresStore) -> Self {
        PostgresProbe {
            pool: store.pool().clone(),
            target: store.target().to_owned(),
            timeout: DEFAULT_PROBE_TIMEOUT,
        }
    }

    /// A probe through a pool of your own.
    pub fn from_pool(pool: PgPool, target: impl Into<String>) -> Self {
        PostgresProbe { pool, target: target.into(), timeout: DEFAULT_PROBE_TIMEOUT }
    }

    /// Sets how long a check may take before it fails.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// One round trip: reads the schema version.
    pub async fn check(&self) -> DbCheck {
        let start = Instant::now();
        let query = sqlx::query_scalar::<_, Option<i64>>(sql::SCHEMA_VERSION).fetch_one(&self.pool);
        match tokio::time::timeout(self.timeout, query).await {
            Ok(Ok(Some(_))) => DbCheck::ok(start.elapsed()),
            Ok(Ok(None)) => {
                DbCheck::failed(start.elapsed(), format!("{}: no migration recorded", self.target))
            }
            Ok(Err(e)) => DbCheck::failed(start.elapsed(), format!("{}: {e}", self.target)),
            Err(_) => DbCheck::failed(
                start.elapsed(),
                format!("{}: no answer within {:?}", self.target, self.timeout),
            ),
        }
    }
}
