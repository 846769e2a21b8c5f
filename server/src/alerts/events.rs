//! What an alert says: the run outcomes the observer passes on, the events
//! they raise, each alert's dedupe key and body (`json` or `slack`). Pure
//! functions of their inputs, with no clock and no store.

use chrono::{DateTime, SecondsFormat, Utc};
use mscribe_scheduler::{ExecutionEvent, ExecutionStatus};
use mscribe_storage::NewAlert;
use serde_json::{Value, json};

use crate::config::{AlertConfig, AlertEvent, AlertFormat};

/// A record the alerts act on, as the observer copies it off the hot path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Observed {
    /// A run ended (its last attempt).
    RunEnded {
        /// The job.
        job: String,
        /// The fire's nominal time.
        scheduled_at: DateTime<Utc>,
        /// The run.
        execution_id: String,
        /// The attempt that ended it.
        attempt: u32,
        /// Its final status.
        status: ExecutionStatus,
        /// Its error, if any.
        error: Option<String>,
        /// When it ended.
        at: DateTime<Utc>,
        /// The instance that ran it.
        instance: String,
    },
    /// A fire was skipped by the misfire policy or because it could not be
    /// claimed.
    Missed {
        /// The job.
        job: String,
        /// The fire's nominal time.
        scheduled_at: DateTime<Utc>,
        /// Why.
        reason: String,
        /// When it was decided.
        at: DateTime<Utc>,
        /// The instance that decided.
        instance: String,
    },
}

/// Whether a skip's reason is a missed fire: a misfire (except a fire that
/// came due while the job was paused, which is what a pause is for) or a
/// fire that could not be claimed.
pub(crate) fn is_missed(reason: &str) -> bool {
    (reason.starts_with("misfire:") && !reason.contains("while the job was paused"))
        || reason.contains("claim failed")
}

/// Whether a final status is a failure: `failed`, `timed_out`,
/// `retries_exhausted` or `abandoned` (not `cancelled`, which someone asked
/// for).
pub(crate) fn is_failure(status: ExecutionStatus) -> bool {
    matches!(
        status,
        ExecutionStatus::Failed
            | ExecutionStatus::TimedOut
            | ExecutionStatus::RetriesExhausted
            | ExecutionStatus::Abandoned
    )
}

impl Observed {
    /// The record the alerts act on, if `event` is one: a run's last
    /// attempt, or a missed fire.
    pub(crate) fn of(event: &ExecutionEvent) -> Option<Observed> {
        match event {
            ExecutionEvent::Finished(e) if e.ends_run => Some(Observed::RunEnded {
                job: e.job_id.to_string(),
                scheduled_at: e.scheduled_at,
                execution_id: e.execution_id.to_string(),
                attempt: e.attempt,
                status: e.status,
                error: e.error.clone(),
                at: e.completed_at,
                instance: e.instance_id.to_string(),
            }),
            ExecutionEvent::Skipped(s) if is_missed(&s.reason) => Some(Observed::Missed {
                job: s.job_id.to_string(),
                scheduled_at: s.scheduled_at,
                reason: s.reason.clone(),
                at: s.decided_at,
                instance: s.instance_id.to_string(),
            }),
            _ => None,
        }
    }

    /// The job.
    pub(crate) fn job(&self) -> &str {
        match self {
            Observed::RunEnded { job, .. } | Observed::Missed { job, .. } => job,
        }
    }
}

/// A time as the keys and bodies write it: RFC 3339, milliseconds, `Z`.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One event about one job, before it is addressed to the alerts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Raised {
    /// The event.
    pub(crate) event: AlertEvent,
    /// The job.
    pub(crate) job: String,
    /// What makes it unique for the job: the run and the attempt that
    /// ended it (`failure`, `recovered`: each run of one fire is its own
    /// event), the fire's time (`missed`, and with the count
    /// `failures_in_a_row` and `auto_paused`, counted once per fire), the
    /// window, the pause's version.
    pub(crate) key: String,
    /// One line for people.
    pub(crate) message: String,
    /// When it happened.
    pub(crate) at: DateTime<Utc>,
    /// The event's own fields (status, error, counts, ...).
    pub(crate) details: Value,
}

impl Raised {
    /// The outbox rows of this event: one per alert that covers its job and
    /// event, keyed `<alert>/<event>/<job>/<key>`; `filter` may refuse an
    /// alert (e.g. a threshold that is the alert's own).
    pub(crate) fn rows<'a>(
        &self,
        alerts: impl IntoIterator<Item = (&'a String, &'a AlertConfig)>,
        filter: impl Fn(&AlertConfig) -> bool,
    ) -> Vec<NewAlert> {
        alerts
            .into_iter()
            .filter(|(_, a)| a.covers_job(&self.job) && a.covers_event(self.event) && filter(a))
            .map(|(name, a)| NewAlert {
                dedupe_key: format!("{name}/{}/{}/{}", self.event, self.job, self.key),
                alert: name.clone(),
                event: self.event.as_str().to_owned(),
                job_id: Some(self.job.clone()),
                body: self.body(name, a.format),
                created_at: self.at,
            })
            .collect()
    }

    /// The body: for `json` an object with `alert`, `event`, `job`,
    /// `message`, `at` and `details`; for `slack` `{"text": ...}`.
    pub(crate) fn body(&self, alert: &str, format: AlertFormat) -> Value {
        match format {
            AlertFormat::Json => json!({
                "alert": alert,
                "event": self.event.as_str(),
                "job": self.job,
                "message": self.message,
                "at": ts(self.at),
                "details": self.details,
            }),
            AlertFormat::Slack => json!({
                "text": format!("[mscribe] {} ({}: {})", self.message, self.event, self.job),
            }),
        }
    }
}

/// The longest error quoted in a message (the body's `details` has it all).
const MESSAGE_ERROR_CHARS: usize = 300;

fn short(error: &str) -> String {
    let mut s: String = error.chars().take(MESSAGE_ERROR_CHARS).collect();
    if s.len() < error.len() {
        s.push('…');
    }
    s
}

/// A run as the keys write it: its id and the attempt that ended it.
fn run_key(execution_id: &str, attempt: u32) -> String {
    format!("{execution_id}/{attempt}")
}

/// A run that ended: the job, the fire's nominal time, the run's id and
/// the attempt that ended it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunRef<'a> {
    /// The job.
    pub(crate) job: &'a str,
    /// The fire's nominal time.
    pub(crate) scheduled_at: DateTime<Utc>,
    /// The run.
    pub(crate) execution_id: &'a str,
    /// The attempt that ended it.
    pub(crate) attempt: u32,
}

/// `failure` for a run that ended failed; keyed by the run, so that two
/// runs of one fire (a forced backfill) are two alerts.
pub(crate) fn failure(
    run: RunRef<'_>,
    status: ExecutionStatus,
    error: Option<&str>,
    at: DateTime<Utc>,
    instance: &str,
) -> Raised {
    let RunRef { job, scheduled_at, execution_id, attempt } = run;
    let why = error.map(|e| format!(": {}", short(e))).unwrap_or_default();
    Raised {
        event: AlertEvent::Failure,
        job: job.to_owned(),
        key: run_key(execution_id, attempt),
        message: format!("job {job} failed ({}){why}", status.as_str()),
        at,
        details: json!({
            "status": status.as_str(),
            "error": error,
            "execution_id": execution_id,
            "attempt": attempt,
            "scheduled_at": ts(scheduled_at),
            "instance": instance,
        }),
    }
}

/// `failures_in_a_row` when the run of failures reached `n`.
pub(crate) fn failures_in_a_row(
    job: &str,
    scheduled_at: DateTime<Utc>,
    n: u32,
    at: DateTime<Utc>,
) -> Raised {
    Raised {
        event: AlertEvent::FailuresInARow,
        job: job.to_owned(),
        key: format!("{}/{n}", ts(scheduled_at)),
        message: format!("job {job} failed {n} runs in a row"),
        at,
        details: json!({ "failures_in_a_row": n, "scheduled_at": ts(scheduled_at) }),
    }
}

/// `recovered` for the first success after `previous` failed runs; keyed
/// by the run, as [`failure`].
pub(crate) fn recovered(run: RunRef<'_>, previous: u32, at: DateTime<Utc>) -> Raised {
    let RunRef { job, scheduled_at, execution_id, attempt } = run;
    Raised {
        event: AlertEvent::Recovered,
        job: job.to_owned(),
        key: run_key(execution_id, attempt),
        message: format!("job {job} succeeded again after {previous} failed runs"),
        at,
        details: json!({ "failed_runs_before": previous, "scheduled_at": ts(scheduled_at) }),
    }
}

/// `missed` for a skipped fire.
pub(crate) fn missed(
    job: &str,
    scheduled_at: DateTime<Utc>,
    reason: &str,
    at: DateTime<Utc>,
    instance: &str,
) -> Raised {
    Raised {
        event: AlertEvent::Missed,
        job: job.to_owned(),
        key: ts(scheduled_at),
        message: format!("job {job} missed its fire of {}: {}", ts(scheduled_at), short(reason)),
        at,
        details: json!({ "scheduled_at": ts(scheduled_at), "reason": reason, "instance": instance }),
    }
}

/// `auto_paused` when `pause_after_failures = n` paused the job.
pub(crate) fn auto_paused(
    job: &str,
    scheduled_at: DateTime<Utc>,
    n: u32,
    at: DateTime<Utc>,
    pause_error: Option<&str>,
) -> Raised {
    let message = match pause_error {
        None => format!("job {job} paused after {n} failed runs in a row (pause_after_failures)"),
        Some(e) => format!(
            "job {job} failed {n} runs in a row (pause_after_failures) but could not be paused: {e}"
        ),
    };
    Raised {
        event: AlertEvent::AutoPaused,
        job: job.to_owned(),
        key: ts(scheduled_at),
        message,
        at,
        details: json!({
            "pause_after_failures": n,
            "paused": pause_error.is_none(),
            "error": pause_error,
            "scheduled_at": ts(scheduled_at),
        }),
    }
}

/// `overdue`: no success within `window` since `since` (the last success,
/// or `None`: never, counted from `watched`, when this instance started
/// watching the job), the `n`-th whole window missed. The key of a job
/// that never succeeded names `watched`, so that the windows counted again
/// after a restart are new keys, not those of the windows before it.
pub(crate) fn overdue(
    job: &str,
    since: Option<DateTime<Utc>>,
    watched: DateTime<Utc>,
    window: std::time::Duration,
    n: u64,
    at: DateTime<Utc>,
) -> Raised {
    let w = humantime::format_duration(window).to_string();
    let message = match since {
        Some(t) => format!("job {job} has not succeeded since {} (expected within {w})", ts(t)),
        None => format!("job {job} has not succeeded in the {w} it is expected within"),
    };
    Raised {
        event: AlertEvent::Overdue,
        job: job.to_owned(),
        key: match since {
            Some(t) => format!("{}/{n}", ts(t)),
            None => format!("never/{}/{n}", ts(watched)),
        },
        message,
        at,
        details: json!({
            "last_success": since.map(ts),
            "expect_success_within": w,
            "windows_missed": n,
        }),
    }
}

/// `paused_too_long`: paused since `since` (pause `version`) for longer
/// than `limit`.
pub(crate) fn paused_too_long(
    job: &str,
    since: DateTime<Utc>,
    version: u64,
    note: Option<&str>,
    limit: std::time::Duration,
    at: DateTime<Utc>,
) -> Raised {
    let l = humantime::format_duration(limit).to_string();
    let why = note.map(|n| format!(" (note: {})", short(n))).unwrap_or_default();
    Raised {
        event: AlertEvent::PausedTooLong,
        job: job.to_owned(),
        key: format!("v{version}"),
        message: format!("job {job} has been paused since {} (over {l}){why}", ts(since)),
        at,
        details: json!({ "paused_since": ts(since), "note": note, "paused_too_long": l }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 2, 0, 0).unwrap()
    }

    #[test]
    fn missed_reasons() {
        assert!(is_missed("misfire: missed while down or stalled"));
        assert!(is_missed("claim failed, not run: database down"));
        assert!(!is_missed("misfire: came due while the job was paused"));
        assert!(!is_missed("overlap: a run is in progress"));
    }

    #[test]
    fn bodies_and_keys() {
        let cfg: AlertConfig =
            toml::from_str("url = \"http://h/x\"\njobs = [\"a\"]\nevents = [\"failure\"]").unwrap();
        let slack =
            AlertConfig { format: AlertFormat::Slack, jobs: None, events: None, ..cfg.clone() };
        let alerts = [("j".to_owned(), cfg), ("s".to_owned(), slack)];
        let run = |job, execution_id| RunRef { job, scheduled_at: t0(), execution_id, attempt: 3 };
        let r = failure(run("a", "e1"), ExecutionStatus::RetriesExhausted, Some("boom"), t0(), "i");
        let rows = r.rows(alerts.iter().map(|(n, a)| (n, a)), |_| true);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].dedupe_key, "j/failure/a/e1/3");
        assert_eq!(rows[0].body["message"], "job a failed (retries_exhausted): boom");
        assert_eq!(rows[0].body["details"]["execution_id"], "e1");
        assert_eq!(
            rows[1].body,
            json!({"text": "[mscribe] job a failed (retries_exhausted): boom (failure: a)"})
        );
        // Another job: only the alert that covers every job.
        let r = failure(run("b", "e2"), ExecutionStatus::Failed, None, t0(), "i");
        assert_eq!(r.rows(alerts.iter().map(|(n, a)| (n, a)), |_| true).len(), 1);
        // Another event: only the alert that sends every event.
        let r = recovered(run("a", "e3"), 2, t0());
        assert_eq!(r.key, "e3/3");
        let rows = r.rows(alerts.iter().map(|(n, a)| (n, a)), |_| true);
        assert_eq!(rows.iter().map(|r| r.alert.as_str()).collect::<Vec<_>>(), ["s"]);
        let o = overdue("a", None, t0(), std::time::Duration::from_secs(3600), 1, t0());
        assert_eq!(o.key, format!("never/{}/1", ts(t0())));
        assert!(short(&"x".repeat(400)).ends_with('…'));
    }
}
