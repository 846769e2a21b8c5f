//! `metrics-aggregation`: hourly rollups per job into `job_metrics_hourly`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, DurationRound, Utc};
use mscribe_scheduler::ExecutionStatus;
use serde_json::json;

use super::{OpsJob, OpsOutcome, time_before};
use crate::db::{AttemptRow, Database, HourlyRow};

/// Recomputes the hours from `now - lookback` (rounded down to the hour)
/// up to now, from the execution rows, and upserts one row per job and
/// hour into `job_metrics_hourly`: rerunning gives the same rows.
///
/// Hours are those of the nominal fire time. A run counts once, by its last
/// attempt; runs still running are left for the next pass. `p50_ms` and
/// `p95_ms` are nearest-rank percentiles of the runs' last-attempt
/// durations.
#[derive(Debug, Clone)]
pub struct MetricsAggregation {
    db: Database,
    lookback: Duration,
}

impl MetricsAggregation {
    /// Aggregation over `db`.
    pub fn new(db: Database, lookback: Duration) -> Self {
        MetricsAggregation { db, lookback }
    }
}

fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(chrono::Duration::hours(1)).unwrap_or(t)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// Rolls attempt rows up per job and hour (a pure function).
pub fn rollup(rows: &[AttemptRow]) -> Vec<HourlyRow> {
    // The last attempt of each run.
    let mut last: HashMap<(&str, &str), &AttemptRow> = HashMap::new();
    let mut skipped: BTreeMap<(&str, DateTime<Utc>), u64> = BTreeMap::new();
    for r in rows {
        if r.status == ExecutionStatus::Skipped {
            *skipped.entry((&r.job_id, hour_of(r.scheduled_at))).or_default() += 1;
            continue;
        }
        let e = last.entry((&r.job_id, &r.execution_id)).or_insert(r);
        if r.attempt > e.attempt {
            *e = r;
        }
    }
    #[derive(Default)]
    struct Acc {
        runs: u64,
        successes: u64,
        failures: u64,
        durations: Vec<u64>,
    }
    let mut acc: BTreeMap<(&str, DateTime<Utc>), Acc> = BTreeMap::new();
    for r in last.values() {
        if r.status == ExecutionStatus::Running {
            continue;
        }
        let a = acc.entry((&r.job_id, hour_of(r.scheduled_at))).or_default();
        a.runs += 1;
        if r.status == ExecutionStatus::Succeeded {
            a.successes += 1;
        }
        if r.status.is_failure() {
            a.failures += 1;
        }
        if let Some(d) = r.duration_ms {
            a.durations.push(d);
        }
    }
    for key in skipped.keys() {
        acc.entry(*key).or_default();
    }
    acc.into_iter()
        .map(|((job, hour), mut a)| {
            a.durations.sort_unstable();
            HourlyRow {
                job_id: job.to_owned(),
                hour_start: hour,
                runs: a.runs,
                successes: a.successes,
                failures: a.failures,
                skipped: skipped.get(&(job, hour)).copied().unwrap_or(0),
                success_rate: (a.runs > 0).then(|| a.successes as f64 / a.runs as f64),
                p50_ms: percentile(&a.durations, 50.0),
                p95_ms: percentile(&a.durations, 95.0),
            }
        })
        .collect()
}

#[async_trait]
impl OpsJob for MetricsAggregation {
    async fn run_at(&self, now: DateTime<Utc>) -> OpsOutcome {
        let from = match time_before(now, self.lookback, "[jobs.metrics-aggregation] lookback") {
            Ok(t) => hour_of(t),
            Err(e) => return OpsOutcome::from_error(json!({ "to": now }), e),
        };
        let to = now;
        let mut data = json!({ "from": from, "to": to });
        let rows = match self.db.attempts_between(from, to).await {
            Ok(r) => r,
            Err(crate::db::DbError::InMemory(..)) => {
                data["skipped"] = json!(true);
                data["reason"] = json!("the database is in memory; nothing to aggregate into");
                return OpsOutcome::ok(data);
            }
            Err(e) => return OpsOutcome::failed(data, format!("reading executions failed: {e}")),
        };
        let hourly = rollup(&rows);
        if let Err(e) = self.db.upsert_hourly(&hourly, now).await {
            return OpsOutcome::failed(data, format!("writing job_metrics_hourly failed: {e}"));
        }
        let jobs: std::collections::BTreeSet<&str> =
            hourly.iter().map(|h| h.job_id.as_str()).collect();
        data["attempts_read"] = json!(rows.len());
        data["rows_upserted"] = json!(hourly.len());
        data["jobs"] = json!(jobs);
        tracing::info!(rows = hourly.len(), attempts = rows.len(), "hourly metrics aggregated");
        OpsOutcome::ok(data).metric("rows_upserted", hourly.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn row(
        job: &str,
        exec: &str,
        attempt: u32,
        status: ExecutionStatus,
        at: DateTime<Utc>,
        ms: u64,
    ) -> AttemptRow {
        AttemptRow {
            job_id: job.into(),
            execution_id: exec.into(),
            attempt,
            status,
            scheduled_at: at,
            duration_ms: Some(ms),
        }
    }

    #[test]
    fn runs_count_once_by_their_last_attempt() {
        use ExecutionStatus::*;
        let h = Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap();
        let m = |min: i64| h + chrono::Duration::minutes(min);
        let mut rows = vec![
            row("a", "1", 1, Failed, m(0), 100),
            row("a", "1", 2, Succeeded, m(0), 200), // retry succeeded: one success
            row("a", "2", 1, RetriesExhausted, m(10), 300),
            row("a", "3", 1, Running, m(20), 0), // not finished: not counted
            row("a", "4", 0, Skipped, m(30), 0),
            row("b", "5", 1, Succeeded, m(70), 50), // next hour
        ];
        for i in 0..17 {
            rows.push(row("c", &format!("c{i}"), 1, Succeeded, m(5), (i + 1) * 10));
        }
        let out = rollup(&rows);
        assert_eq!(out.len(), 3);
        let a = &out[0];
        assert_eq!((a.job_id.as_str(), a.hour_start), ("a", h));
        assert_eq!((a.runs, a.successes, a.failures, a.skipped), (2, 1, 1, 1));
        assert_eq!(a.success_rate, Some(0.5));
        assert_eq!((a.p50_ms, a.p95_ms), (Some(200), Some(300)));
        let b = out.iter().find(|r| r.job_id == "b").unwrap();
        assert_eq!(b.hour_start, h + chrono::Duration::hours(1));
        let c = out.iter().find(|r| r.job_id == "c").unwrap();
        assert_eq!((c.p50_ms, c.p95_ms), (Some(90), Some(170)));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 95.0), Some(7));
    }

    #[tokio::test]
    async fn a_lookback_reaching_before_the_earliest_time_fails_permanently() {
        let db = Database::open("sqlite::memory:").await.unwrap();
        let forever = Duration::from_secs(1_000_000 * 366 * 86_400);
        let out = MetricsAggregation::new(db, forever).run_at(Utc::now()).await;
        assert!(out.permanent, "{:?}", out.error);
        assert!(out.error.unwrap().starts_with("[jobs.metrics-aggregation] lookback = "));
    }
}
