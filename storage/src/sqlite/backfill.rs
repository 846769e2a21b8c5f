//! [`SqliteStore`]'s backfill locks (`backfill_locks`): one backfill of a
//! job at a time across the processes sharing the file, each change in one
//! immediate transaction on the writer thread.

use std::time::Duration;

use chrono::{DateTime, Utc};
use mscribe_scheduler::StoreResult;
use rusqlite::{OptionalExtension, params};

use super::store::SqliteStore;
use super::time::{parse_ts, ts_param};
use crate::codec::lease_until;
use crate::control::{BackfillLock, BackfillLockOutcome, rejected};

/// Takes the lock of `?1` for `?2` from `?3` to `?4`, unless a lock runs
/// past `?3`: a row when taken.
const LOCK: &str = "INSERT INTO backfill_locks (job_id, holder, acquired_at, expires_at)
     VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (job_id) DO UPDATE SET
         holder = excluded.holder, acquired_at = excluded.acquired_at,
         expires_at = excluded.expires_at
     WHERE backfill_locks.expires_at <= excluded.acquired_at
     RETURNING holder";

const HOLDER: &str = "SELECT holder, acquired_at, expires_at FROM backfill_locks WHERE job_id = ?1";

const RENEW: &str = "UPDATE backfill_locks SET expires_at = ?3 WHERE job_id = ?1 AND holder = ?2";

const UNLOCK: &str = "DELETE FROM backfill_locks WHERE job_id = ?1 AND holder = ?2";

impl SqliteStore {
    pub(super) async fn lock_backfill_row(
        &self,
        job_id: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> StoreResult<BackfillLockOutcome> {
        let until = ts_param("lock expiry", lease_until(now, ttl)).map_err(rejected)?;
        let now = ts_param("lock time", now).map_err(rejected)?;
        let (job, who) = (job_id.to_owned(), holder.to_owned());
        let held = self
            .in_write_tx("taking backfill_locks", move |c| {
                let taken = c
                    .prepare_cached(LOCK)?
                    .query_row(params![job, who, now, until], |r| r.get::<_, String>(0))
                    .optional()?;
                if taken.is_some() {
                    return Ok(None);
                }
                c.prepare_cached(HOLDER)?
                    .query_row(params![job], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                    })
                    .optional()
            })
            .await?;
        let Some((holder, acquired, expires)) = held else {
            return Ok(BackfillLockOutcome::Acquired);
        };
        Ok(BackfillLockOutcome::Held(BackfillLock {
            job_id: job_id.to_owned(),
            holder,
            acquired_at: parse_ts("acquired_at", &acquired)?,
            expires_at: parse_ts("expires_at", &expires)?,
        }))
    }

    pub(super) async fn renew_backfill_row(
        &self,
        job_id: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let until = ts_param("lock expiry", lease_until(now, ttl)).map_err(rejected)?;
        let (job, who) = (job_id.to_owned(), holder.to_owned());
        self.in_write_tx("renewing backfill_locks", move |c| {
            c.prepare_cached(RENEW)?.execute(params![job, who, until]).map(|n| n == 1)
        })
        .await
    }

    pub(super) async fn unlock_backfill_row(
        &self,
        job_id: &str,
        holder: &str,
    ) -> StoreResult<bool> {
        let (job, who) = (job_id.to_owned(), holder.to_owned());
        self.in_write_tx("deleting from backfill_locks", move |c| {
            c.prepare_cached(UNLOCK)?.execute(params![job, who]).map(|n| n == 1)
        })
        .await
    }
}
