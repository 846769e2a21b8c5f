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
//! | `mscribe_job_last_success_timestamp_seconds` | gauge | job | end of the job's latest successful run, Unix seconds; 0 if none |
//! | `mscribe_job_last_run_timestamp_seconds` | gauge | job, status | end of the job's latest run that ended with that final status; 0 if none |
//! | `mscribe_job_next_fire_timestamp_seconds` | gauge | job | the job's next nominal fire; 0 if none (paused, trigger-only, spent one-shot) |
//! | `mscribe_job_paused` | gauge | job | 1 while the job is paused here, else 0 |
//! | `mscribe_build_info` | gauge | version, commit | always 1: the server's version and git commit |
//!
//! The per-job freshness series (the last four job rows) exist for every
//! registered job from the first scrape after its registration, before it
//! ever fires, so that `absent()` and `time() - ...` rules work from the
//! start. `last_success` and `last_run` move as this instance ends runs, and
//! are seeded at start from the store's history ([`ServerMetrics::seed_from_store`]),
//! and for a job registered later ([`ServerMetrics::seed_new_jobs`]);
//! runs ended by other instances on the same database reach them only at
//! this instance's next start: alert on `max by (job)` across instances.
//! `next_fire` and `paused` are sampled from the scheduler at each scrape.
//!
//! ```
//! use mscribe_server::metrics::ServerMetrics;
//!
//! let m = ServerMetrics::new();
//! assert!(m.encode().ends_with("# EOF\n"));
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};

use crate::probe::HealthStatus;
use mscribe_scheduler::{
    ExecutionEvent, ExecutionStatus, ExecutionStore, HistoryQuery, JobScheduler, Observer,
};
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    commit: String,
}

type HistogramFamily = Family<JobLabels, Histogram, fn() -> Histogram>;
type TimeGauge = Gauge<f64, AtomicU64>;

/// The server's version (`mscribe_build_info{version}`).
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the server was built from (`mscribe_build_info{commit}`):
/// `$MSCRIBE_BUILD_COMMIT` at build time, else `git rev-parse --short=12
/// HEAD`, else `unknown` (see `server/build.rs`).
pub const BUILD_COMMIT: &str = env!("MSCRIBE_BUILD_COMMIT");

/// The final statuses (every status but `running`): the per-job series
/// of `mscribe_job_outcomes_total` and
/// `mscribe_job_last_run_timestamp_seconds` exist for each from registration.
fn final_statuses() -> impl Iterator<Item = ExecutionStatus> {
    ExecutionStatus::ALL.into_iter().filter(|s| s.is_final())
}

/// How many of a job's newest rows [`ServerMetrics::seed_from_store`] reads
/// for `last_run` (its latest success is read apart, whatever its age).
pub const SEED_ROWS: usize = 100;

fn unix_seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// Sets `g` to `v` unless it already holds a later time.
fn set_max(g: &TimeGauge, v: f64) {
    if v > g.get() {
        g.set(v);
    }
}

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
    last_success: Family<JobLabels, TimeGauge>,
    last_run: Family<JobStatusLabels, TimeGauge>,
    next_fire: Family<JobLabels, TimeGauge>,
    paused: Family<JobLabels, Gauge>,
    /// The jobs given series at the last scrape (to drop those of jobs
    /// unregistered since).
    known_jobs: Mutex<BTreeSet<String>>,
    /// The jobs whose freshness series were read from the history (until
    /// a scrape finds them unregistered).
    seeded: Mutex<BTreeSet<String>>,
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
        let last_success = Family::<JobLabels, TimeGauge>::default();
        let last_run = Family::<JobStatusLabels, TimeGauge>::default();
        let next_fire = Family::<JobLabels, TimeGauge>::default();
        let paused = Family::<JobLabels, Gauge>::default();
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
        registry.register(
            "job_last_success_timestamp_seconds",
            "End of the job's latest successful run, in Unix seconds; 0 if none",
            last_success.clone(),
        );
        registry.register(
            "job_last_run_timestamp_seconds",
            "End of the job's latest run that ended with this final status, in Unix seconds; 0 if none",
            last_run.clone(),
        );
        registry.register(
            "job_next_fire_timestamp_seconds",
            "The job's next nominal fire, in Unix seconds; 0 if none (paused, trigger-only, spent)",
            next_fire.clone(),
        );
        registry.register("job_paused", "1 while the job is paused, else 0", paused.clone());
        // A gauge that is always 1, as Prometheus' own `prometheus_build_info`
        // (readable by the classic text format too, unlike an OpenMetrics info).
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: BUILD_VERSION.to_owned(),
                commit: BUILD_COMMIT.to_owned(),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1: the server's version and the git commit it was built from",
            build_info,
        );
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
            last_success,
            last_run,
            next_fire,
            paused,
            known_jobs: Mutex::new(BTreeSet::new()),
            seeded: Mutex::new(BTreeSet::new()),
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
        for status in final_statuses() {
            let _ = self.outcomes.get_or_create(&JobStatusLabels {
                job: job.to_owned(),
                status: status.as_str().to_owned(),
            });
        }
    }

    /// Gives every registered job its per-job freshness series, samples
    /// `next_fire` and `paused`, and drops the series of jobs no longer
    /// registered.
    fn sample_jobs(&self, s: &JobScheduler) {
        let jobs = s.jobs();
        let mut known = self.known_jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now: BTreeSet<String> = jobs.iter().map(|j| j.id.clone()).collect();
        let mut seeded = self.seeded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        seeded.retain(|id| now.contains(id));
        drop(seeded);
        for gone in known.difference(&now) {
            let job = JobLabels { job: gone.clone() };
            self.last_success.remove(&job);
            self.next_fire.remove(&job);
            self.paused.remove(&job);
            for st in final_statuses() {
                self.last_run
                    .remove(&JobStatusLabels { job: gone.clone(), status: st.as_str().to_owned() });
            }
        }
        for info in &jobs {
            let job = JobLabels { job: info.id.clone() };
            drop(self.last_success.get_or_create(&job));
            for st in final_statuses() {
                drop(self.last_run.get_or_create(&JobStatusLabels {
                    job: info.id.clone(),
                    status: st.as_str().to_owned(),
                }));
            }
            self.next_fire.get_or_create(&job).set(info.next_run.map_or(0.0, unix_seconds));
            self.paused.get_or_create(&job).set(i64::from(info.paused));
        }
        *known = now;
    }

    /// Seeds `last_success` and `last_run` from `store`'s history, for each
    /// of `job_ids`: the job's latest `succeeded` row (one query, whatever
    /// its age), and the latest row per final status among its newest
    /// [`SEED_ROWS`] rows (one query). A later value already held (a run
    /// that ended meanwhile) is kept. Returns the first store error, after
    /// trying every job.
    pub async fn seed_from_store(
        &self,
        store: &dyn ExecutionStore,
        job_ids: &[String],
    ) -> Result<(), mscribe_scheduler::StoreError> {
        let mut first_error = None;
        for id in job_ids {
            let success = HistoryQuery::new(id.as_str(), 1).with_status(ExecutionStatus::Succeeded);
            let recent = HistoryQuery::new(id.as_str(), SEED_ROWS);
            let mut read = true;
            for rows in [store.history(&success).await, store.history(&recent).await] {
                match rows {
                    Ok(rows) => {
                        for r in rows {
                            self.record_end(id, r.status, r.completed_at.unwrap_or(r.started_at));
                        }
                    }
                    Err(e) => {
                        read = false;
                        first_error.get_or_insert(e);
                    }
                }
            }
            if read {
                self.seeded
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(id.clone());
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// [`seed_from_store`](Self::seed_from_store) for the jobs of `job_ids`
    /// not read yet: those registered after the start (defined through the
    /// API or the CLI, added by a reload), and those whose read failed.
    /// A job unregistered and registered again is read again.
    pub async fn seed_new_jobs(
        &self,
        store: &dyn ExecutionStore,
        job_ids: &[String],
    ) -> Result<(), mscribe_scheduler::StoreError> {
        let new: Vec<String> = {
            let seeded = self.seeded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            job_ids.iter().filter(|id| !seeded.contains(*id)).cloned().collect()
        };
        if new.is_empty() {
            return Ok(());
        }
        self.seed_from_store(store, &new).await
    }

    /// A run of `job` ended with the final `status` at `at`.
    fn record_end(&self, job: &str, status: ExecutionStatus, at: DateTime<Utc>) {
        if status == ExecutionStatus::Running {
            return;
        }
        let t = unix_seconds(at);
        if status == ExecutionStatus::Succeeded {
            set_max(&self.last_success.get_or_create(&JobLabels { job: job.to_owned() }), t);
        }
        set_max(
            &self.last_run.get_or_create(&JobStatusLabels {
                job: job.to_owned(),
                status: status.as_str().to_owned(),
            }),
            t,
        );
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
            self.sample_jobs(s);
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
                if e.ends_run {
                    self.record_end(&job.job, e.status, e.completed_at);
                }
            }
            ExecutionEvent::Skipped(sk) => {
                self.record_end(&job.job, ExecutionStatus::Skipped, sk.decided_at);
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
