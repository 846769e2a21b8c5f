//! The invariant checker: what every simulated run must satisfy, read from
//! the event log and the stored rows.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::LoggedEvent;
use crate::clock::{after, before, std_dur};
use crate::policy::OverlapPolicy;
use crate::retry::RetryPolicy;
use crate::schedule::Schedule;
use crate::store::{ExecutionEvent, ExecutionRecord, ExecutionStatus};

/// What the checker knows of a job.
#[derive(Debug, Clone)]
pub(super) struct JobModel {
    /// `None` for a trigger-only job.
    pub(super) schedule: Option<Schedule>,
    pub(super) timeout: Option<Duration>,
    pub(super) retry: RetryPolicy,
    pub(super) overlap: OverlapPolicy,
    pub(super) jitter: Duration,
    pub(super) registered_at: DateTime<Utc>,
    /// Set when the sim's caller paused, unregistered or triggered it: the
    /// exactly-once check then skips the job.
    pub(super) irregular: bool,
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: &'static str,
    /// The job.
    pub job_id: String,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated by job \"{}\": {}", self.invariant, self.job_id, self.detail)
    }
}

/// What [`Sim::check`](super::Sim::check) counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckReport {
    /// Nominal fires that came due in the checked window.
    pub fires_due: u64,
    /// Runs started (first attempts).
    pub runs: u64,
    /// Attempts in all.
    pub attempts: u64,
    /// Fires recorded as skipped.
    pub skipped: u64,
    /// Attempts per final status.
    pub timed_out: u64,
    /// Attempts that failed (any failure status).
    pub failed: u64,
}

type Attempts = BTreeMap<u32, (Option<DateTime<Utc>>, Option<(DateTime<Utc>, ExecutionStatus)>)>;

pub(super) fn check_invariants(
    models: &BTreeMap<String, JobModel>,
    events: &[LoggedEvent],
    records: &[ExecutionRecord],
    started: DateTime<Utc>,
    stop_began: DateTime<Utc>,
) -> std::result::Result<CheckReport, Vec<Violation>> {
    let mut v = Vec::new();
    let mut report = CheckReport::default();
    let mut bad = |invariant: &'static str, job: &str, detail: String| {
        v.push(Violation { invariant, job_id: job.to_owned(), detail })
    };
    // Per job: nominal times seen (runs and skips), and per execution its attempts.
    let mut seen: HashMap<&str, Vec<DateTime<Utc>>> = HashMap::new();
    let mut runs: HashMap<&str, BTreeMap<crate::store::ExecutionId, Attempts>> = HashMap::new();
    // Attempts recorded `cancelled` without ever starting (a run cut in its
    // retry backoff, a queued run cancelled): one row each, and no start.
    let mut unstarted = 0u64;
    for e in events {
        match &e.event {
            ExecutionEvent::Started(s) => {
                report.attempts += 1;
                if s.attempt == 1 {
                    report.runs += 1;
                    seen.entry(&s.job_id).or_default().push(s.scheduled_at);
                    if s.started_at < s.scheduled_at {
                        bad(
                            "no fire runs early",
                            &s.job_id,
                            format!("started {} before {}", s.started_at, s.scheduled_at),
                        );
                    }
                }
                if s.started_at > stop_began {
                    bad(
                        "nothing runs after cancellation",
                        &s.job_id,
                        format!(
                            "attempt {} started at {} after stop at {stop_began}",
                            s.attempt, s.started_at
                        ),
                    );
                }
                runs.entry(&s.job_id)
                    .or_default()
                    .entry(s.execution_id)
                    .or_default()
                    .entry(s.attempt)
                    .or_default()
                    .0 = Some(s.started_at);
            }
            ExecutionEvent::Finished(f) => {
                let started = runs
                    .get(&*f.job_id)
                    .and_then(|r| r.get(&f.execution_id))
                    .and_then(|a| a.get(&f.attempt))
                    .is_some_and(|(start, _)| start.is_some());
                if !started
                    && f.status == ExecutionStatus::Cancelled
                    && f.duration.is_zero()
                    && f.started_at == f.completed_at
                {
                    unstarted += 1;
                    continue;
                }
                match f.status {
                    ExecutionStatus::TimedOut => report.timed_out += 1,
                    s if s.is_failure() => report.failed += 1,
                    _ => {}
                }
                runs.entry(&f.job_id)
                    .or_default()
                    .entry(f.execution_id)
                    .or_default()
                    .entry(f.attempt)
                    .or_default()
                    .1 = Some((f.completed_at, f.status));
            }
            ExecutionEvent::Skipped(s) => {
                report.skipped += 1;
                seen.entry(&s.job_id).or_default().push(s.scheduled_at);
            }
        }
    }
    for (job, model) in models {
        let job = job.as_str();
        // Exactly once: every nominal fire in the window, once; none other.
        if let (false, Some(schedule)) = (model.irregular, &model.schedule) {
            let from = model.registered_at.max(started);
            // Fires close to the stop may be cut by jitter or the stop itself.
            let horizon = before(stop_began, model.jitter);
            let mut due = Vec::new();
            let mut t = from;
            while let Some(n) = schedule.next_after(t) {
                if n > stop_began {
                    break;
                }
                due.push(n);
                t = n;
            }
            report.fires_due += due.len() as u64;
            let mut got = seen.remove(job).unwrap_or_default();
            got.sort();
            for w in got.windows(2) {
                if w[0] == w[1] {
                    bad(
                        "every due fire exactly once",
                        job,
                        format!("fire {} recorded twice", w[0]),
                    );
                }
            }
            for d in &due {
                if *d <= horizon && got.binary_search(d).is_err() {
                    bad(
                        "every due fire exactly once",
                        job,
                        format!("fire {d} neither run nor skipped"),
                    );
                }
            }
            for g in &got {
                if due.binary_search(g).is_err() {
                    bad("every due fire exactly once", job, format!("fire {g} is not a due fire"));
                }
            }
        }
        let mut intervals = Vec::new();
        for (exec, attempts) in runs.remove(job).unwrap_or_default() {
            let mut prev_end: Option<(u32, DateTime<Utc>)> = None;
            let (mut first, mut last) = (None, None);
            for (n, (start, end)) in &attempts {
                let Some(start) = start else {
                    bad(
                        "stop leaves no record open",
                        job,
                        format!("execution {exec} attempt {n} ended without a start"),
                    );
                    continue;
                };
                first = first.or(Some(*start));
                let Some((end, status)) = end else {
                    bad(
                        "stop leaves no record open",
                        job,
                        format!("execution {exec} attempt {n} never ended"),
                    );
                    continue;
                };
                last = Some(*end);
                if *status == ExecutionStatus::TimedOut {
                    let want = model.timeout.map(|t| after(*start, t));
                    if want != Some(*end) {
                        bad(
                            "timeouts end at the deadline",
                            job,
                            format!(
                                "execution {exec} attempt {n} timed out at {end}, deadline {want:?}"
                            ),
                        );
                    }
                }
                if let Some((pn, pend)) = prev_end {
                    let (lo, hi) = model.retry.bounds(pn);
                    let gap = std_dur(pend, *start);
                    if *start < pend || gap < lo || gap > hi {
                        bad(
                            "attempt times follow the backoff formula",
                            job,
                            format!(
                                "execution {exec}: attempt {n} began {gap:?} after attempt {pn}, expected within [{lo:?}, {hi:?}]"
                            ),
                        );
                    }
                }
                prev_end = Some((*n, *end));
            }
            if let (Some(a), Some(b)) = (first, last) {
                intervals.push((a, b, exec));
            }
        }
        if matches!(model.overlap, OverlapPolicy::Skip | OverlapPolicy::Queue) {
            intervals.sort();
            for w in intervals.windows(2) {
                if w[1].0 < w[0].1 {
                    bad(
                        "overlap policy holds",
                        job,
                        format!(
                            "execution {} started at {} while {} ran until {}",
                            w[1].2, w[1].0, w[0].2, w[0].1
                        ),
                    );
                }
            }
        }
    }
    // Every event reached the store: one row per attempt and per skip.
    let expected_rows = report.attempts + report.skipped + unstarted;
    if records.len() as u64 != expected_rows {
        bad(
            "every record reaches the store",
            "*",
            format!("{} rows stored, {expected_rows} made", records.len()),
        );
    }
    if let Some(r) = records.iter().find(|r| r.status == ExecutionStatus::Running) {
        bad(
            "stop leaves no record open",
            &r.job_id,
            format!("row {} attempt {} still running", r.execution_id, r.attempt),
        );
    }
    if v.is_empty() { Ok(report) } else { Err(v) }
}
