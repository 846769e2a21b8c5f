//! One backfill of a job at a time in the cluster: [`ControlPlane::lock_backfill`]
//! takes the job's lock in the database, a task renews it while the
//! backfill runs, and the [`BackfillGuard`] gives it back when dropped. A
//! holder that dies stops renewing; its lock runs out after
//! [`BACKFILL_LOCK_TTL`] and the next backfill may take it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mscribe_storage::{BackfillLock, BackfillLockOutcome};
use tokio::sync::watch;

use super::{ControlError, ControlPlane};

/// How long a backfill lock holds without renewal; renewed every third.
pub const BACKFILL_LOCK_TTL: Duration = Duration::from_secs(60);

/// What [`ControlPlane::lock_backfill`] found.
#[derive(Debug)]
pub enum BackfillLocking {
    /// This instance holds the lock while the guard lives.
    Locked(BackfillGuard),
    /// Another backfill of the job holds it.
    Busy(BackfillLock),
}

/// The job's backfill lock, held while this lives: renewed by a task of its
/// own, given back when dropped.
#[derive(Debug)]
pub struct BackfillGuard {
    plane: ControlPlane,
    job: String,
    holder: String,
    lost: watch::Receiver<bool>,
    renew: tokio::task::JoinHandle<()>,
}

impl BackfillGuard {
    /// The lock's holder text: this instance's id and a number.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Resolves when the lock is lost: a renewal found it taken, or the
    /// database did not answer until it ran out. The backfill must stop:
    /// another one may run the same fires.
    pub async fn lost(&self) {
        let mut rx = self.lost.clone();
        let _ = rx.wait_for(|lost| *lost).await;
    }
}

impl Drop for BackfillGuard {
    fn drop(&mut self) {
        self.renew.abort();
        let (plane, job, holder) = (self.plane.clone(), self.job.clone(), self.holder.clone());
        tokio::spawn(async move {
            if let Err(e) = plane.store().unlock_backfill(&job, &holder).await {
                tracing::warn!(job_id = %job, holder, error = %e, "could not give back a backfill lock; it runs out by itself");
            }
        });
    }
}

impl ControlPlane {
    /// Takes the backfill lock of `job` for this instance, for as long as
    /// the guard lives.
    pub async fn lock_backfill(&self, job: &str) -> Result<BackfillLocking, ControlError> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let holder = format!("{}#{}", self.instance_id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let store = self.store().clone();
        let got = store.lock_backfill(job, &holder, self.now(), BACKFILL_LOCK_TTL).await?;
        if let BackfillLockOutcome::Held(lock) = got {
            return Ok(BackfillLocking::Busy(lock));
        }
        let (tx, lost) = watch::channel(false);
        let (plane, j, h) = (self.clone(), job.to_owned(), holder.clone());
        let renew = tokio::spawn(async move {
            let mut expires = plane.now() + BACKFILL_LOCK_TTL;
            loop {
                tokio::time::sleep(BACKFILL_LOCK_TTL / 3).await;
                let now = plane.now();
                match plane.store().renew_backfill(&j, &h, now, BACKFILL_LOCK_TTL).await {
                    Ok(true) => expires = now + BACKFILL_LOCK_TTL,
                    Ok(false) => {
                        tracing::warn!(job_id = %j, holder = %h, "the backfill lost its lock (it ran out and was taken)");
                        break;
                    }
                    Err(e) if plane.now() < expires => {
                        tracing::warn!(job_id = %j, holder = %h, error = %e, "could not renew the backfill lock; trying again");
                    }
                    Err(e) => {
                        tracing::warn!(job_id = %j, holder = %h, error = %e, "the backfill lock ran out while the database was unreachable");
                        break;
                    }
                }
            }
            let _ = tx.send(true);
        });
        Ok(BackfillLocking::Locked(BackfillGuard {
            plane: self.clone(),
            job: job.to_owned(),
            holder,
            lost,
            renew,
        }))
    }
}
