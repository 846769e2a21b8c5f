//! [`PostgresStore`]'s backfill locks (`backfill_locks`): one backfill of a
//! job at a time across the instances, each change one statement.

use std::time::Duration;

use chrono::{DateTime, Utc};
use mscribe_scheduler::StoreResult;

use super::store::PostgresStore;
use super::time::ts_param;
use crate::codec::{Dialect, lease_until};
use crate::control::{BackfillLock, BackfillLockOutcome, rejected};

/// Takes the lock of `$1` for `$2` from `$3` to `$4`, unless a lock runs
/// past `$3`: a row when taken.
const LOCK: &str = "INSERT INTO backfill_locks (job_id, holder, acquired_at, expires_at)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (job_id) DO UPDATE SET
         holder = excluded.holder, acquired_at = excluded.acquired_at,
         expires_at = excluded.expires_at
     WHERE backfill_locks.expires_at <= excluded.acquired_at
     RETURNING holder";

const HOLDER: &str = "SELECT holder, acquired_at, expires_at FROM backfill_locks WHERE job_id = $1";

const RENEW: &str = "UPDATE backfill_locks SET expires_at = $3 WHERE job_id = $1 AND holder = $2";

const UNLOCK: &str = "DELETE FROM backfill_locks WHERE job_id = $1 AND holder = $2";

fn ids(job_id: &str, holder: &str) -> StoreResult<(String, String)> {
    let job = Dialect::Postgres.id("job id", job_id).map_err(rejected)?;
    let holder = Dialect::Postgres.id("lock holder", holder).map_err(rejected)?;
    Ok((job, holder))
}

impl PostgresStore {
    pub(super) async fn lock_backfill_row(
        &self,
        job_id: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> StoreResult<BackfillLockOutcome> {
        let (job, who) = ids(job_id, holder)?;
        let until = ts_param("lock expiry", lease_until(now, ttl)).map_err(rejected)?;
        let now = ts_param("lock time", now).map_err(rejected)?;
        let taken: Option<String> = self
            .op(
                "taking backfill_locks",
                sqlx::query_scalar(LOCK)
                    .bind(&job)
                    .bind(&who)
                    .bind(now)
                    .bind(until)
                    .fetch_optional(&self.pool),
            )
            .await?;
        if taken.is_some() {
            return Ok(BackfillLockOutcome::Acquired);
        }
        let held: Option<(String, DateTime<Utc>, DateTime<Utc>)> = self
            .op(
                "reading backfill_locks",
                sqlx::query_as(HOLDER).bind(&job).fetch_optional(&self.pool),
            )
            .await?;
        match held {
            Some((holder, acquired_at, expires_at)) => {
                Ok(BackfillLockOutcome::Held(BackfillLock {
                    job_id: job,
                    holder,
                    acquired_at,
                    expires_at,
                }))
            }
            // Given back between the two statements: free again.
            None => Box::pin(self.lock_backfill_row(job_id, holder, now, ttl)).await,
        }
    }

    pub(super) async fn renew_backfill_row(
        &self,
        job_id: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let (job, who) = ids(job_id, holder)?;
        let until = ts_param("lock expiry", lease_until(now, ttl)).map_err(rejected)?;
        let done = self
            .op(
                "renewing backfill_locks",
                sqlx::query(RENEW).bind(&job).bind(&who).bind(until).execute(&self.pool),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn unlock_backfill_row(
        &self,
        job_id: &str,
        holder: &str,
    ) -> StoreResult<bool> {
        let (job, who) = ids(job_id, holder)?;
        let done = self
            .op(
                "deleting from backfill_locks",
                sqlx::query(UNLOCK).bind(&job).bind(&who).execute(&self.pool),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
