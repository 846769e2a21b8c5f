//! Fires listed and run on request: a job's next fires ahead
//! ([`JobScheduler::upcoming`]), and a backfill of its fires over a past
//! range, planned (with the fires already recorded) and then run oldest
//! first with a bounded concurrency, each recorded with the `backfill` kind.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Offset, TimeZone, Utc};
use futures::StreamExt;
use futures::channel::oneshot;
use futures::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};

use super::registry::Fire;
use super::{JobScheduler, Phase, TriggerOutcome};
use crate::error::{Error, Result};
use crate::guard;
use crate::logfmt::Rfc3339;
use crate::schedule::Schedule;
use crate::store::{ExecutionId, ExecutionStatus, FireKind};

/// The most fires one backfill may plan; a larger range is refused.
pub const MAX_BACKFILL_FIRES: usize = 10_000;

/// The most fires [`JobScheduler::upcoming`] lists.
pub const MAX_UPCOMING_FIRES: usize = 1_000;

/// One fire of a schedule, as listed ahead or planned for a backfill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedFire {
    /// The fire's nominal time.
    pub scheduled_at: DateTime<Utc>,
    /// The same instant in the schedule's time zone, with its offset
    /// (`2026-03-29T03:00:00+02:00`); `None` for a schedule in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// Set when the zone's UTC offset changed since the fire before
    /// (daylight saving): `UTC offset +01:00 -> +02:00 (Europe/Berlin)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_note: Option<String>,
    /// For a backfill: whether the job already has a final row for it.
    #[serde(default)]
    pub recorded: bool,
}

/// What a backfill asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillRequest {
    /// The first instant of the range (included).
    pub from: DateTime<Utc>,
    /// The last instant of the range (included); not after now.
    pub to: DateTime<Utc>,
    /// Only plan: list the fires, run nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Run fires that already have a final row too.
    #[serde(default)]
    pub force: bool,
    /// How many runs at once (1 to 64; default 4).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

fn default_concurrency() -> usize {
    4
}

/// One backfilled fire's run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillRun {
    /// The fire's nominal time.
    pub scheduled_at: DateTime<Utc>,
    /// Its run.
    pub execution_id: ExecutionId,
    /// How the run ended.
    pub status: ExecutionStatus,
}

/// What a backfill planned and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillReport {
    /// The job.
    pub job_id: String,
    /// Every fire of the schedule in the range, oldest first.
    pub fires: Vec<PlannedFire>,
    /// Of those, how many had a final row already.
    pub already_recorded: usize,
    /// How many runs the request makes (or would make, dry).
    pub to_run: usize,
    /// Whether nothing was run.
    pub dry_run: bool,
    /// The runs, oldest first (empty for a dry run).
    pub runs: Vec<BackfillRun>,
}

impl JobScheduler {
    /// The job's next `n` fires (at most [`MAX_UPCOMING_FIRES`]) from its
    /// next planned one, with the zone's offset and daylight-saving notes.
    /// A trigger-only job has none; a paused job lists those its schedule
    /// has after now.
    pub fn upcoming(&self, id: &str, n: usize) -> Result<Vec<PlannedFire>> {
        let now = self.inner.clock.now();
        let (schedule, next) = {
            let st = self.inner.lock();
            let job = st.jobs.by_id(id).ok_or_else(|| Error::UnknownJob(id.to_owned()))?;
            let Some(s) = job.schedule.clone() else { return Ok(Vec::new()) };
            (s, job.next_nominal)
        };
        let mut at = next.or_else(|| schedule.next_after(now));
        let mut out = Vec::new();
        while let Some(t) = at {
            if out.len() >= n.min(MAX_UPCOMING_FIRES) {
                break;
            }
            out.push(t);
            at = schedule.next_after_fire(t);
        }
        Ok(annotate(&schedule, now, &out, &BTreeSet::new()))
    }

    /// Plans a backfill of the job over `[from, to]` (see
    /// [`backfill`](Self::backfill)) without running anything.
    pub async fn backfill_plan(
        &self,
        id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PlannedFire>> {
        let bad =
            |field, reason: String| Error::InvalidBackfill { job: id.to_owned(), field, reason };
        let schedule = {
            let st = self.inner.lock();
            let job = st.jobs.by_id(id).ok_or_else(|| Error::UnknownJob(id.to_owned()))?;
            job.schedule.clone()
        };
        let Some(schedule) = schedule else {
            return Err(bad("schedule", "the job has no schedule (trigger-only)".to_owned()));
        };
        if from > to {
            return Err(bad("from", format!("from {from} is after to {to}")));
        }
        let now = self.inner.clock.now();
        if to > now {
            return Err(bad("to", format!("to {to} is in the future (now is {now})")));
        }
        let times = fires_between(&schedule, from, to, MAX_BACKFILL_FIRES + 1);
        if times.len() > MAX_BACKFILL_FIRES {
            return Err(bad(
                "range",
                format!(
                    "{from} to {to} holds more than {MAX_BACKFILL_FIRES} fires of {schedule}; split it"
                ),
            ));
        }
        let recorded = self.inner.store.recorded_fires(id, from, to);
        let recorded: BTreeSet<DateTime<Utc>> =
            guard::store_call("recorded_fires", recorded).await?.into_iter().collect();
        Ok(annotate(&schedule, from, &times, &recorded))
    }

    /// Backfills the job: runs it for every fire its schedule had in
    /// `[req.from, req.to]`, oldest first, `req.concurrency` at a time,
    /// each recorded with [`FireKind::Backfill`] and its fire's nominal
    /// time; fires with a final row already are left unless `req.force`.
    /// The runs bypass the overlap policy (they are asked for) and are not
    /// claimed: they run on this instance. Returns once every run ended.
    ///
    /// Refused ([`Error::InvalidBackfill`], naming the field) for `from`
    /// after `to`, `to` in the future, a range of more than
    /// [`MAX_BACKFILL_FIRES`] fires, a job with no schedule, or a
    /// concurrency outside 1 to 64.
    pub async fn backfill(&self, id: &str, req: &BackfillRequest) -> Result<BackfillReport> {
        if !(1..=64).contains(&req.concurrency) {
            return Err(Error::InvalidBackfill {
                job: id.to_owned(),
                field: "concurrency",
                reason: format!("must be 1 to 64, got {}", req.concurrency),
            });
        }
        let fires = self.backfill_plan(id, req.from, req.to).await?;
        let already_recorded = fires.iter().filter(|f| f.recorded).count();
        let todo: Vec<DateTime<Utc>> =
            fires.iter().filter(|f| req.force || !f.recorded).map(|f| f.scheduled_at).collect();
        let mut report = BackfillReport {
            job_id: id.to_owned(),
            already_recorded,
            to_run: todo.len(),
            dry_run: req.dry_run,
            fires,
            runs: Vec::new(),
        };
        if req.dry_run {
            return Ok(report);
        }
        tracing::info!(job_id = %id, from = %Rfc3339(req.from), to = %Rfc3339(req.to), runs = todo.len(), "backfill started");
        let mut pending = todo.into_iter();
        let mut running = FuturesUnordered::new();
        loop {
            while running.len() < req.concurrency {
                let Some(at) = pending.next() else { break };
                let (execution_id, done) = self.start_backfill_run(id, at)?;
                running.push(async move {
                    let status = done.await.unwrap_or(ExecutionStatus::Cancelled);
                    BackfillRun { scheduled_at: at, execution_id, status }
                });
            }
            match running.next().await {
                Some(run) => report.runs.push(run),
                None => break,
            }
        }
        report.runs.sort_by_key(|r| r.scheduled_at);
        tracing::info!(job_id = %id, runs = report.runs.len(), "backfill ended");
        Ok(report)
    }

    /// Starts one backfill run now for the fire at `at`; the receiver gets
    /// its final status.
    fn start_backfill_run(
        &self,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<(ExecutionId, oneshot::Receiver<ExecutionStatus>)> {
        let mut st = self.inner.lock();
        if st.phase != Phase::Running {
            return Err(match st.phase {
                Phase::Created => Error::NotStarted,
                _ => Error::Stopped,
            });
        }
        let slot = st.jobs.slot(id).ok_or_else(|| Error::UnknownJob(id.to_owned()))?;
        let TriggerOutcome::Started { execution_id } =
            self.start_run(&mut st, slot, Fire::new(at, FireKind::Backfill))
        else {
            return Err(Error::UnknownJob(id.to_owned()));
        };
        let (tx, rx) = oneshot::channel();
        st.waiters.insert(execution_id.0 as u64, tx);
        self.release(st);
        Ok((execution_id, rx))
    }
}

/// The schedule's fires in `[from, to]`, at most `limit`. An interval with
/// no phase counts from `from`.
fn fires_between(
    schedule: &Schedule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: usize,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut at = match (schedule.interval_duration(), schedule.interval_start()) {
        (Some(_), None) => Some(from),
        _ => schedule.next_after(crate::clock::before(from, Duration::from_nanos(1))),
    };
    while let Some(t) = at {
        if t > to || out.len() >= limit {
            break;
        }
        out.push(t);
        at = schedule.next_after_fire(t);
    }
    out
}

/// Each fire with its local time and a note where the zone's offset
/// changed since the fire before (or since `since` for the first).
fn annotate(
    schedule: &Schedule,
    since: DateTime<Utc>,
    times: &[DateTime<Utc>],
    recorded: &BTreeSet<DateTime<Utc>>,
) -> Vec<PlannedFire> {
    let tz = schedule.timezone();
    let mut prev = tz.map(|tz| tz.offset_from_utc_datetime(&since.naive_utc()).fix());
    times
        .iter()
        .map(|t| {
            let (local, dst_note) = match tz {
                Some(tz) => {
                    let local = t.with_timezone(&tz);
                    let off = local.offset().fix();
                    let note = prev.filter(|p| *p != off).map(|p| {
                        format!("UTC offset {} -> {} ({})", fmt_offset(p), fmt_offset(off), tz)
                    });
                    prev = Some(off);
                    (Some(local.to_rfc3339()), note)
                }
                None => (None, None),
            };
            PlannedFire { scheduled_at: *t, local, dst_note, recorded: recorded.contains(t) }
        })
        .collect()
}

fn fmt_offset(o: chrono::FixedOffset) -> String {
    let s = o.local_minus_utc();
    let sign = if s < 0 { '-' } else { '+' };
    let s = s.abs();
    format!("{sign}{:02}:{:02}", s / 3600, (s % 3600) / 60)
}
