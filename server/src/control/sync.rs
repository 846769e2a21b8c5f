//! The control plane's sync loop: each round applies the stored pause state
//! to the local scheduler, runs the pending triggers this instance takes,
//! and handles the cancel requests of its runs; and, on Postgres, the
//! listener that wakes the loop on `NOTIFY`. Store errors are logged and
//! the round is tried again at the next poll.

use std::collections::HashSet;
use std::sync::Weak;

use mscribe_scheduler::{Error as SchedulerError, ExecutionId, JobInfo, TriggerOutcome};
use mscribe_storage::{CancelRequest, PauseState, PostgresStore, TriggerRequest};
use serde::Serialize;
use tokio::sync::watch;

use super::{CANCELLED, ControlError, ControlPlane, Inner, NOT_RUNNING};

/// What one round of the sync loop did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Jobs paused here because the store says so.
    pub paused: usize,
    /// Jobs resumed here because the store no longer says so.
    pub resumed: usize,
    /// Triggers taken and run here.
    pub triggers: usize,
    /// Cancel requests handled here (cancelled, or closed as expired).
    pub cancels: usize,
}

/// A trigger's outcome as stored: the execution id, and `started`,
/// `queued`, `pending` (waiting for its claim), `skipped` or
/// `failed: <why>`.
pub(crate) fn describe_trigger(
    r: &Result<TriggerOutcome, SchedulerError>,
) -> (Option<String>, String) {
    match r {
        Ok(TriggerOutcome::Started { execution_id }) => {
            (Some(execution_id.to_string()), "started".to_owned())
        }
        Ok(TriggerOutcome::Queued { execution_id }) => {
            (Some(execution_id.to_string()), "queued".to_owned())
        }
        Ok(TriggerOutcome::Pending { execution_id }) => {
            (Some(execution_id.to_string()), "pending".to_owned())
        }
        Ok(TriggerOutcome::Skipped) => (None, "skipped".to_owned()),
        Err(e) => (None, format!("failed: {e}")),
    }
}

impl ControlPlane {
    /// Records the jobs not seen before; those registered paused are the
    /// configuration's (pinned).
    pub(super) fn note_jobs(&self, jobs: &[JobInfo]) {
        let mut local = self.local();
        for j in jobs {
            if !local.known.contains(&j.id) {
                local.known.insert(j.id.clone());
                if j.paused && !local.applied.contains(&j.id) {
                    local.pinned.insert(j.id.clone());
                }
            }
        }
    }

    /// Applies one change made here: pause or resume the local job,
    /// unless the configuration pins it.
    pub(super) fn apply_one(&self, job: &str, paused: bool) {
        let mut local = self.local();
        if local.pinned.contains(job) || self.inner.scheduler.job(job).is_none() {
            return;
        }
        if paused {
            if self.inner.scheduler.pause(job).is_ok() {
                local.applied.insert(job.to_owned());
            }
        } else {
            local.applied.remove(job);
            let _ = self.inner.scheduler.resume(job);
        }
    }

    /// Reads the stored pause state and applies it to the local jobs:
    /// pauses those paused in the store, resumes those the plane paused and
    /// the store no longer does; never touches pinned jobs. Returns (paused,
    /// resumed).
    pub(super) async fn sync_pauses(
        &self,
        jobs: &[JobInfo],
    ) -> Result<(usize, usize), ControlError> {
        let _applying = self.inner.apply.lock().await;
        let stored = self.inner.store.pause_states().await?;
        Ok(self.apply_pauses(jobs, &stored))
    }

    fn apply_pauses(&self, jobs: &[JobInfo], stored: &[PauseState]) -> (usize, usize) {
        let want: HashSet<&str> = stored.iter().map(|p| p.job_id.as_str()).collect();
        let (mut paused, mut resumed) = (0, 0);
        let mut local = self.local();
        for j in jobs {
            if local.pinned.contains(&j.id) {
                continue;
            }
            let id = j.id.as_str();
            if want.contains(id) && !local.applied.contains(id) {
                if self.inner.scheduler.pause(id).is_ok() {
                    local.applied.insert(j.id.clone());
                    paused += 1;
                    if let Some(s) = stored.iter().find(|p| p.job_id == id) {
                        tracing::info!(
                            job_id = %id, by = %s.instance_id, source = %s.source,
                            note = s.note.as_deref().unwrap_or(""), "job paused in the cluster"
                        );
                    }
                }
            } else if !want.contains(id) && local.applied.remove(id) {
                let _ = self.inner.scheduler.resume(id);
                resumed += 1;
                tracing::info!(job_id = %id, "job resumed in the cluster");
            }
        }
        let registered: HashSet<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        local.applied.retain(|id| registered.contains(id.as_str()));
        (paused, resumed)
    }

    /// One round: pauses, triggers, cancels, and the occasional prune. Each
    /// part runs even when an earlier one failed; the first error is
    /// returned.
    pub async fn sync_now(&self) -> Result<SyncReport, ControlError> {
        let mut report = SyncReport::default();
        let mut first_error = None;
        if let Err(e) = self.sync_definitions().await {
            first_error = Some(e);
        }
        let jobs = self.inner.scheduler.jobs();
        self.note_jobs(&jobs);
        match self.sync_pauses(&jobs).await {
            Ok((p, r)) => (report.paused, report.resumed) = (p, r),
            Err(e) => first_error = first_error.or(Some(e)),
        }
        match self.take_and_run(&jobs).await {
            Ok(n) => report.triggers = n,
            Err(e) => first_error = first_error.or(Some(e)),
        }
        match self.handle_cancels().await {
            Ok(n) => report.cancels = n,
            Err(e) => first_error = first_error.or(Some(e)),
        }
        if let Err(e) = self.prune_if_due().await {
            first_error = first_error.or(Some(e));
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    async fn take_and_run(&self, jobs: &[JobInfo]) -> Result<usize, ControlError> {
        let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
        let taken = self.inner.store.take_triggers(self.instance_id(), &ids, self.now()).await?;
        let n = taken.len();
        for t in taken {
            self.run_trigger(t).await;
        }
        Ok(n)
    }

    async fn run_trigger(&self, t: TriggerRequest) {
        let result = self.inner.scheduler.trigger_at(&t.job_id, t.requested_at);
        let (exec, outcome) = describe_trigger(&result);
        tracing::info!(
            job_id = %t.job_id, trigger_id = t.id, requested_by = %t.requested_by,
            outcome = %outcome, "ran a trigger taken from the cluster"
        );
        if let Err(e) =
            self.inner.store.finish_trigger(t.id, exec.as_deref(), &outcome, self.now()).await
        {
            tracing::warn!(trigger_id = t.id, error = %e, "could not record a trigger's outcome");
        }
    }

    async fn handle_cancels(&self) -> Result<usize, ControlError> {
        let pending = self.inner.store.pending_cancels().await?;
        let mut handled = 0;
        for c in pending {
            if let Some(outcome) = self.try_cancel(&c) {
                let done =
                    self.inner.store.finish_cancel(c.id, self.instance_id(), outcome, self.now());
                if done.await? {
                    handled += 1;
                }
                self.local().cancelled.remove(&c.id);
            }
        }
        Ok(handled)
    }

    /// What to record for a pending request, if anything: [`CANCELLED`]
    /// when this instance runs the execution (or already cancelled it),
    /// [`NOT_RUNNING`] once the request expired, else nothing (another
    /// instance may own it).
    fn try_cancel(&self, c: &CancelRequest) -> Option<&'static str> {
        if self.local().cancelled.contains(&c.id) {
            return Some(CANCELLED);
        }
        if let Ok(id) = c.execution_id.parse::<ExecutionId>() {
            match self.inner.scheduler.cancel(id) {
                Ok(()) => {
                    tracing::info!(execution_id = %id, cancel_id = c.id, "cancelled a run on request");
                    self.local().cancelled.insert(c.id);
                    return Some(CANCELLED);
                }
                Err(SchedulerError::UnknownExecution(_)) => {}
                Err(e) => {
                    tracing::debug!(execution_id = %id, error = %e, "cancel request not handled");
                    return None;
                }
            }
        }
        let age = (self.now() - c.requested_at).to_std().unwrap_or_default();
        (age >= self.inner.settings.cancel_expiry).then_some(NOT_RUNNING)
    }

    async fn prune_if_due(&self) -> Result<(), ControlError> {
        let every = self.inner.settings.prune_every;
        let due = self.local().last_prune.is_none_or(|t| t.elapsed() >= every);
        if !due {
            return Ok(());
        }
        self.local().last_prune = Some(std::time::Instant::now());
        let keep = chrono::Duration::from_std(self.inner.settings.keep_requests)
            .unwrap_or(chrono::Duration::MAX);
        let before =
            self.now().checked_sub_signed(keep).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let n = self.inner.store.prune_control(before).await?;
        if n > 0 {
            tracing::debug!(deleted = n, "pruned old triggers and cancel requests");
        }
        Ok(())
    }
}

/// The sync loop: a round, then a wait for the poll interval, a wake-up or
/// the stop. Ends when stopped or when the plane is dropped.
pub(super) async fn run(inner: Weak<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        let Some(plane) = inner.upgrade().map(|inner| ControlPlane { inner }) else { return };
        let result = plane.sync_now().await;
        let was_failing = plane.local().failing;
        match result {
            Ok(_) if was_failing => {
                plane.local().failing = false;
                tracing::info!("control plane: the store answers again");
            }
            Ok(_) => {}
            Err(e) if !was_failing => {
                plane.local().failing = true;
                tracing::warn!(error = %e, "control plane: sync failed; retrying every poll");
            }
            Err(e) => tracing::debug!(error = %e, "control plane: sync failed again"),
        }
        let poll = plane.inner.settings.poll;
        drop(plane);
        let Some(inner_now) = inner.upgrade() else { return };
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = inner_now.wake.notified() => {}
            r = stop.wait_for(|s| *s) => {
                let _ = r;
                return;
            }
        }
    }
}

/// The Postgres listener: wakes the loop on each notification, and after
/// each (re)connection (notifications may have been missed meanwhile).
pub(super) async fn listen(
    store: PostgresStore,
    inner: Weak<Inner>,
    mut stop: watch::Receiver<bool>,
) {
    let mut listener = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let wake = || match inner.upgrade() {
            Some(i) => {
                i.wake.notify_one();
                true
            }
            None => false,
        };
        if listener.is_none() {
            let connected = tokio::select! {
                r = store.control_listener() => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            match connected {
                Ok(l) => {
                    tracing::debug!("control plane: listening on mscribe_control");
                    listener = Some(l);
                    if !wake() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "control plane: cannot listen; polling meanwhile");
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    continue;
                }
            }
        }
        let Some(l) = listener.as_mut() else { continue };
        let got = tokio::select! {
            r = l.recv() => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match got {
            Ok(_) => {
                if !wake() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "control plane: the listener failed; reconnecting");
                listener = None;
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    }
}
