//! Prometheus metrics (`GET /metrics`), fed by the engine's
//! [`Observer`] hook and sampled from the scheduler at scrape time.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `mscribe_job_fires_total` | counter | job | fires handled: runs started plus fires skipped |
//! | `mscribe_job_attempts_total` | counter | job | attempts started (retries included) |
//! | `mscribe_job_outcomes_total` | counter | job, status | attempts ended and fires skipped, by status |
//! | `mscribe_job_skipped_total` | counter | job | fires skipped (overlap, misfire, stop) |
//! | `mscribe_job_duration_seconds` | histogram | job | attempt durations |
//! | `mscribe_job_lateness_seconds` | histogram | job | first attempt's start minus its nominal time |
//! | `mscribe_store_buffered_events` | gauge | | records waiting for the store |
//! | `mscribe_store_dropped_events_total` | counter | | records dropped from a full buffer |
//! | `mscribe_store_written_events_total` | counter | | records written |
//! | `mscribe_store_failing` | gauge | | 1 while store writes fail |
//! | `mscribe_scheduler_overdue_seconds` | gauge | | how far the earliest due fire is behind |
//! | `mscribe_health_status` | gauge | check | 0 healthy, 1 degraded, 2 unhealthy (last check) |
//! | `mscribe_health_overall_status` | gauge | | the same for the whole |
//! | `mscribe_health_checks_total` | counter | | health refreshes (probe runs) |
//!
//! ```
//! use mscribe_server::metrics::ServerMetrics;
//!
//! let m = ServerMetrics::new();
//! assert!(m.encode().ends_with("# EOF\n"));
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::probe::HealthStatus;
use mscribe_scheduler::{ExecutionEvent, ExecutionStatus, JobScheduler, Observer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::health::HealthSnapshot;

/// The content type of [`ServerMetrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobStatusLabels {
    job: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    check: String,
}

type HistogramFamily = Family<JobLabels, Histogram, fn() -> Histogram>;

/// The server's metrics: an [`Observer`] of the scheduler plus gauges
/// sampled when scraped.
pub struct ServerMetrics {
    registry: Registry,
    fires: Family<JobLabels, Counter>,
    attempts: Family<JobLabels, Counter>,
    outcomes: Family<JobStatusLabels, Counter>,
    skipped: Family<JobLabels, Counter>,
    duration: HistogramFamily,
    lateness: HistogramFamily,
    store_buffered: Gauge,
    store_dropped: Counter,
    store_written: Counter,
    store_failing: Gauge,
    overdue: Gauge<f64, AtomicU64>,
    health: Family<CheckLabels, Gauge>,
    health_overall: Gauge,
    health_checks: Counter,
    /// The store counters' values at the last scrape (they are cumulative
    /// in the engine, deltas here).
    last_store: Mutex<(u64, u64)>,
    scheduler: OnceLock<JobScheduler>,
}

impl fmt::Debug for ServerMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerMetrics").finish_non_exhaustive()
    }
}

fn duration_histogram() -> Histogram {
    // 10 ms .. ~1.5 h
    Histogram::new(exponential_buckets(0.01, 4.0, 12))
}

fn lateness_histogram() -> Histogram {
    // 1 ms .. ~4.4 min
    Histogram::new(exponential_buckets(0.001, 4.0, 10))
}

impl Default for ServerMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mscribe");
        let fires = Family::<JobLabels, Counter>::default();
        let attempts = Family::<JobLabels, Counter>::default();
        let outcomes = Family::<JobStatusLabels, Counter>::default();
        let skipped = Family::<JobLabels, Counter>::default();
        let duration: HistogramFamily = Family::new_with_constructor(duration_histogram);
        let lateness: HistogramFamily = Family::new_with_constructor(lateness_histogram);
        let store_buffered = Gauge::default();
        let store_dropped = Counter::default();
        let store_written = Counter::default();
        let store_failing = Gauge::default();
        let overdue = Gauge::<f64, AtomicU64>::default();
        let health = Family::<CheckLabels, Gauge>::default();
        let health_overall = Gauge::default();
        let health_checks = Counter::default();
        registry.register(
            "job_fires",
            "Fires handled: runs started plus fires skipped",
            fires.clone(),
        );
        registry.register("job_attempts", "Attempts started, retries included", attempts.clone());
        registry.register(
            "job_outcomes",
            "Attempts ended and fires skipped, by final status",
            outcomes.clone(),
        );
        registry.register(
            "job_skipped",
            "Fires skipped by the overlap or misfire policy",
            skipped.clone(),
        );
        registry.register("job_duration_seconds", "Attempt durations", duration.clone());
        registry.register(
            "job_lateness_seconds",
            "Start of a run's first attempt minus its nominal fire time",
            lateness.clone(),
        );
        registry.register(
            "store_buffered_events",
            "Records waiting for the store",
            store_buffered.clone(),
        );
        registry.register(
            "store_dropped_events",
            "Records dropped from a full store buffer",
            store_dropped.clone(),
        );
        registry.register(
            "store_written_events",
            "Records written to the store",
            store_written.clone(),
        );
        registry.register(
            "store_failing",
            "1 while writes to the store fail",
            store_failing.clone(),
        );
        registry.register(
            "scheduler_overdue_seconds",
            "How far the earliest due fire is behind the clock",
            overdue.clone(),
        );
        registry.register(
            "health_status",
            "Last health check per probe: 0 healthy, 1 degraded, 2 unhealthy",
            health.clone(),
        );
        registry.register(
            "health_overall_status",
            "Last overall health: 0 healthy, 1 degraded, 2 unhealthy",
            health_overall.clone(),
        );
        registry.register("health_checks", "Health refreshes (probe runs)", health_checks.clone());
        ServerMetrics {
            registry,
            fires,
            attempts,
            outcomes,
            skipped,
            duration,
            lateness,
            store_buffered,
            store_dropped,
            store_written,
            store_failing,
            overdue,
            health,
            health_overall,
            health_checks,
            last_store: Mutex::new((0, 0)),
            scheduler: OnceLock::new(),
        }
    }
}

fn status_value(s: HealthStatus) -> i64 {
    match s {
        HealthStatus::Healthy => 0,
        HealthStatus::Degraded => 1,
        HealthStatus::Unhealthy => 2,
    }
}

impl ServerMetrics {
    /// Empty metrics.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Samples store and driver gauges from `scheduler` at each scrape.
    /// Only the first call has an effect.
    pub fn attach(&self, scheduler: JobScheduler) {
        let _ = self.scheduler.set(scheduler);
    }

    /// Records a health result.
    pub fn record_health(&self, snap: &HealthSnapshot) {
        self.health_checks.inc();
        self.health_overall.set(status_value(snap.status));
        for c in &snap.checks {
            self.health
                .get_or_create(&CheckLabels { check: c.name.clone() })
                .set(status_value(c.report.status));
        }
    }

    /// Creates every per-job series of `job` at zero, so that a job's first
    /// failure or skip is an increase Prometheus sees (a series that appears
    /// at 1 has no increase) and a dashboard lists jobs that never ran.
    fn init_job(&self, job: &str) {
        let labels = JobLabels { job: job.to_owned() };
        let _ = self.fires.get_or_create(&labels);
        let _ = self.attempts.get_or_create(&labels);
        let _ = self.skipped.get_or_create(&labels);
        let _ = self.duration.get_or_create(&labels);
        let _ = self.lateness.get_or_create(&labels);
        for status in ExecutionStatus::ALL.into_iter().filter(|s| s.is_final()) {
            let _ = self.outcomes.get_or_create(&JobStatusLabels {
                job: job.to_owned(),
                status: status.as_str().to_owned(),
            });
        }
    }

    /// The metrics in the OpenMetrics text format (which Prometheus reads).
    /// Every job of the scheduler has its series, at zero until it runs.
    pub fn encode(&self) -> String {
        if let Some(s) = self.scheduler.get() {
            let h = s.store_health();
            self.store_buffered.set(i64::try_from(h.buffered).unwrap_or(i64::MAX));
            self.store_failing.set(i64::from(h.failing));
            let mut last =
                self.last_store.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            self.store_dropped.inc_by(h.dropped.saturating_sub(last.0));
            self.store_written.inc_by(h.written.saturating_sub(last.1));
            *last = (h.dropped.max(last.0), h.written.max(last.1));
            drop(last);
            self.overdue.set(s.overdue().as_secs_f64());
            for job in s.jobs() {
                self.init_job(&job.id);
            }
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Observer for ServerMetrics {
    fn on_event(&self, event: &ExecutionEvent) {
        let job = JobLabels { job: event.job_id().to_owned() };
        match event {
            ExecutionEvent::Started(s) => {
                self.attempts.get_or_create(&job).inc();
                if s.attempt == 1 {
                    self.fires.get_or_create(&job).inc();
                    let late = (s.started_at - s.scheduled_at).to_std().unwrap_or_default();
                    self.lateness.get_or_create(&job).observe(late.as_secs_f64());
                }
            }
            ExecutionEvent::Finished(e) => {
                self.outcomes
                    .get_or_create(&JobStatusLabels {
                        job: job.job.clone(),
                        status: e.status.as_str().to_owned(),
                    })
                    .inc();
                self.duration.get_or_create(&job).observe(e.duration.as_secs_f64());
            }
            ExecutionEvent::Skipped(_) => {
                self.fires.get_or_create(&job).inc();
                self.skipped.get_or_create(&job).inc();
                self.outcomes
                    .get_or_create(&JobStatusLabels {
                        job: job.job.clone(),
                        status: "skipped".to_owned(),
                    })
                    .inc();
            }
        }
    }
}

/// Counts observed events, for tests and embedding: how many of each kind.
#[derive(Debug, Default)]
pub struct EventCounter {
    /// Attempts started.
    pub started: AtomicU64,
    /// Attempts ended.
    pub finished: AtomicU64,
    /// Fires skipped.
    pub skipped: AtomicU64,
}

impl Observer for EventCounter {
    fn on_event(&self, event: &ExecutionEvent) {
        let c = match event {
            ExecutionEvent::Started(_) => &self.started,
            ExecutionEvent::Finished(_) => &self.finished,
            ExecutionEvent::Skipped(_) => &self.skipped,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use mscribe_scheduler::ExecutionStatus;
    use mscribe_scheduler::{AttemptEnd, AttemptStart, ExecutionId, FireKind, SkippedFire};
    use std::time::Duration;

    #[test]
    fn events_become_series() {
        let m = ServerMetrics::new();
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 2, 0, 0).unwrap();
        let start = AttemptStart {
            job_id: "database-backup".into(),
            execution_id: ExecutionId::from_u128(1),
            attempt: 1,
            scheduled_at: t0,
            started_at: t0 + chrono::Duration::milliseconds(20),
            instance_id: "i".into(),
            kind: FireKind::Schedule,
            fence: None,
        };
        m.on_event(&ExecutionEvent::Started(start.clone()));
        m.on_event(&ExecutionEvent::Finished(AttemptEnd {
            job_id: start.job_id.clone(),
            execution_id: start.execution_id,
            attempt: 1,
            scheduled_at: t0,
            started_at: start.started_at,
            instance_id: "i".into(),
            status: ExecutionStatus::Succeeded,
            completed_at: t0 + chrono::Duration::seconds(3),
            duration: Duration::from_millis(2980),
            error: None,
            error_kind: None,
            result: None,
            metrics: None,
            kind: FireKind::Schedule,
            fence: None,
            ends_run: true,
        }));
        m.on_event(&ExecutionEvent::Skipped(SkippedFire {
            job_id: "database-backup".into(),
            execution_id: ExecutionId::from_u128(2),
            scheduled_at: t0,
            decided_at: t0,
            reason: "overlap".into(),
            instance_id: "i".into(),
            kind: FireKind::Schedule,
            fence: None,
        }));
        let text = m.encode();
        assert!(text.contains("mscribe_job_fires_total{job=\"database-backup\"} 2"), "{text}");
        assert!(text.contains("mscribe_job_attempts_total{job=\"database-backup\"} 1"));
        assert!(text.contains(
            "mscribe_job_outcomes_total{job=\"database-backup\",status=\"succeeded\"} 1"
        ));
        assert!(
            text.contains(
                "mscribe_job_outcomes_total{job=\"database-backup\",status=\"skipped\"} 1"
            )
        );
        assert!(text.contains("mscribe_job_skipped_total{job=\"database-backup\"} 1"));
        assert!(text.contains("mscribe_job_duration_seconds_count{job=\"database-backup\"} 1"));
        assert!(text.contains("mscribe_job_lateness_seconds_sum{job=\"database-backup\"} 0.02"));
        assert!(text.ends_with("# EOF\n"));
    }
}
