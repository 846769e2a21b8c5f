//! The health check: the server's probes, and a [`HealthChecker`] that runs
//! them concurrently (each under a timeout, through the engine's
//! [`check_all`]) and caches the result for a TTL with single flight.
//!
//! Single flight: while a refresh runs, every caller awaits that same
//! refresh, so a flood of requests reaches each dependency at most once per
//! TTL.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use mscribe_server::probe::ScriptedProbe;
//! use mscribe_scheduler::{LocalRuntime};
//! use mscribe_server::probe::{HealthStatus, Probe, ProbeReport};
//! use mscribe_server::health::{HealthChecker, HealthSettings};
//!
//! let rt = LocalRuntime::new();
//! let db: Arc<dyn Probe> =
//!     Arc::new(ScriptedProbe::new("database", true, ProbeReport::healthy(Duration::ZERO)));
//! let checker = HealthChecker::new(vec![db], Arc::new(rt.clock()), HealthSettings::default());
//! let snap = rt.block_on(checker.check());
//! assert_eq!(snap.status, HealthStatus::Healthy);
//! assert_eq!(checker.refreshes(), 1);
//! rt.block_on(checker.check()); // within the TTL: cached
//! assert_eq!(checker.refreshes(), 1);
//! ```

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::probe::{HealthStatus, Probe, ProbeReport};
use crate::probe::{NamedReport, check_all};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use mscribe_scheduler::{Clock, ExecutionStatus, HistoryQuery, JobScheduler, Phase};
use serde_json::{Map, Value, json};

use crate::http_client::{HttpUrl, request};

/// How the checker runs probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// How long a result is reused.
    pub ttl: Duration,
    /// The timeout of each probe.
    pub probe_timeout: Duration,
    /// A healthy probe slower than this degrades the whole.
    pub slow_threshold: Duration,
}

impl Default for HealthSettings {
    /// 2 s TTL, 1 s probe timeout, 500 ms slow threshold.
    fn default() -> Self {
        HealthSettings {
            ttl: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(1),
            slow_threshold: Duration::from_millis(500),
        }
    }
}

/// One health result.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSnapshot {
    /// The overall status.
    pub status: HealthStatus,
    /// When the probes finished.
    pub checked_at: DateTime<Utc>,
    /// Each probe's report, in probe order.
    pub checks: Vec<NamedReport>,
}

impl HealthSnapshot {
    /// The JSON body of `/health-check`. Messages (errors, hostnames, paths)
    /// are included only for an admin.
    pub fn body(&self, admin: bool) -> Value {
        let mut checks = Map::new();
        for c in &self.checks {
            let mut o = Map::new();
            o.insert("status".into(), json!(c.report.status));
            o.insert(
                "latency_ms".into(),
                json!(u64::try_from(c.report.latency.as_millis()).unwrap_or(u64::MAX)),
            );
            if admin && let Some(m) = &c.report.message {
                o.insert("message".into(), json!(m));
            }
            checks.insert(c.name.clone(), Value::Object(o));
        }
        json!({
            "status": self.status,
            "timestamp": self.checked_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "version": env!("CARGO_PKG_VERSION"),
            "checks": checks,
        })
    }

    /// The report of one probe.
    pub fn check(&self, name: &str) -> Option<&ProbeReport> {
        self.checks.iter().find(|c| c.name == name).map(|c| &c.report)
    }
}

/// A function called with every fresh health result.
pub type HealthHook = Box<dyn Fn(&HealthSnapshot) + Send + Sync>;
type Refresh = Shared<BoxFuture<'static, Arc<HealthSnapshot>>>;

#[derive(Default)]
struct CacheState {
    last: Option<Arc<HealthSnapshot>>,
    inflight: Option<Refresh>,
}

/// Runs the probes and caches the result; see the module docs.
pub struct HealthChecker {
    probes: Vec<Arc<dyn Probe>>,
    clock: Arc<dyn Clock>,
    settings: HealthSettings,
    state: Mutex<CacheState>,
    refreshes: AtomicU64,
    hooks: Vec<HealthHook>,
}

impl fmt::Debug for HealthChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthChecker")
            .field("probes", &self.probes.iter().map(|p| p.name().to_owned()).collect::<Vec<_>>())
            .field("settings", &self.settings)
            .field("refreshes", &self.refreshes.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl HealthChecker {
    /// A checker over `probes`, timed by `clock`.
    pub fn new(
        probes: Vec<Arc<dyn Probe>>,
        clock: Arc<dyn Clock>,
        settings: HealthSettings,
    ) -> Arc<Self> {
        Self::with_hooks(probes, clock, settings, Vec::new())
    }

    /// A checker that calls each hook with every fresh result (metrics).
    pub fn with_hooks(
        probes: Vec<Arc<dyn Probe>>,
        clock: Arc<dyn Clock>,
        settings: HealthSettings,
        hooks: Vec<HealthHook>,
    ) -> Arc<Self> {
        Arc::new(HealthChecker {
            probes,
            clock,
            settings,
            state: Mutex::new(CacheState::default()),
            refreshes: AtomicU64::new(0),
            hooks,
        })
    }

    /// The probes' names.
    pub fn probe_names(&self) -> Vec<String> {
        self.probes.iter().map(|p| p.name().to_owned()).collect()
    }

    /// How many times the probes have run.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// The last result, however old.
    pub fn last(&self) -> Option<Arc<HealthSnapshot>> {
        self.lock().last.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached result if younger than the TTL, else a fresh one (joining
    /// a refresh already under way).
    pub async fn check(self: &Arc<Self>) -> Arc<HealthSnapshot> {
        let refresh = {
            let mut st = self.lock();
            if let Some(last) = &st.last {
                let age = (self.clock.now() - last.checked_at).to_std().unwrap_or_default();
                if age < self.settings.ttl {
                    return last.clone();
                }
            }
            self.join_or_start(&mut st)
        };
        refresh.await
    }

    /// A fresh result, whatever the cache holds (a refresh under way is
    /// joined rather than doubled).
    pub async fn refresh(self: &Arc<Self>) -> Arc<HealthSnapshot> {
        let refresh = {
            let mut st = self.lock();
            self.join_or_start(&mut st)
        };
        refresh.await
    }

    fn join_or_start(self: &Arc<Self>, st: &mut CacheState) -> Refresh {
        if let Some(r) = &st.inflight {
            return r.clone();
        }
        let this = self.clone();
        let fut: BoxFuture<'static, Arc<HealthSnapshot>> = Box::pin(async move {
            this.refreshes.fetch_add(1, Ordering::Relaxed);
            let (status, checks) = check_all(
                &this.probes,
                &*this.clock,
                this.settings.probe_timeout,
                this.settings.slow_threshold,
            )
            .await;
            let snap = Arc::new(HealthSnapshot { status, checked_at: this.clock.now(), checks });
            let previous = {
                let mut st = this.lock();
                st.inflight = None;
                st.last.replace(snap.clone()).map(|s| s.status)
            };
            if previous.is_some_and(|p| p != status) {
                let failing: Vec<String> = snap
                    .checks
                    .iter()
                    .filter(|c| c.report.status != HealthStatus::Healthy)
                    .map(|c| format!("{}={}", c.name, c.report.status))
                    .collect();
                tracing::warn!(from = %previous.unwrap_or(status), to = %status, checks = %failing.join(","), "health status changed");
            }
            for h in &this.hooks {
                h(&snap);
            }
            snap
        });
        let shared = fut.shared();
        st.inflight = Some(shared.clone());
        shared
    }
}

/// The `storage` probe: each path must be a directory, writable, with free
/// space above both thresholds. Not critical: a failure degrades the whole.
#[derive(Debug, Clone)]
pub struct StorageProbe {
    paths: Vec<PathBuf>,
    min_free_bytes: u64,
    min_free_percent: f64,
}

impl StorageProbe {
    /// A probe of `paths`.
    pub fn new(paths: Vec<PathBuf>, min_free_bytes: u64, min_free_percent: f64) -> Self {
        StorageProbe { paths, min_free_bytes, min_free_percent }
    }

    fn check_path(&self, p: &std::path::Path) -> Result<Option<String>, String> {
        let meta = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        if !meta.is_dir() {
            return Err(format!("{}: not a directory", p.display()));
        }
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let probe = p.join(format!(
            ".mscribe-health-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let write = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"ok"));
        let removed = std::fs::remove_file(&probe);
        write.map_err(|e| format!("{}: not writable: {e}", p.display()))?;
        removed.map_err(|e| format!("{}: cannot remove probe file: {e}", p.display()))?;
        let st = nix::sys::statvfs::statvfs(p)
            .map_err(|e| format!("{}: cannot read free space: {e}", p.display()))?;
        let frag = st.fragment_size() as u64;
        let free = (st.blocks_available() as u64).saturating_mul(frag);
        let total = (st.blocks() as u64).saturating_mul(frag);
        let percent = if total == 0 { 100.0 } else { free as f64 * 100.0 / total as f64 };
        if free < self.min_free_bytes || percent < self.min_free_percent {
            return Ok(Some(format!(
                "{}: low disk space: {free} bytes free ({percent:.1}%), need {} bytes and {:.1}%",
                p.display(),
                self.min_free_bytes,
                self.min_free_percent
            )));
        }
        Ok(None)
    }
}

#[async_trait]
impl Probe for StorageProbe {
    fn name(&self) -> &str {
        "storage"
    }

    fn critical(&self) -> bool {
        false
    }

    async fn check(&self) -> ProbeReport {
        let start = Instant::now();
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        for p in &self.paths {
            match self.check_path(p) {
                Ok(None) => {}
                Ok(Some(w)) => warnings.push(w),
                Err(e) => errors.push(e),
            }
        }
        let latency = start.elapsed();
        if !errors.is_empty() {
            errors.extend(warnings);
            ProbeReport::unhealthy(latency, errors.join("; "))
        } else if !warnings.is_empty() {
            ProbeReport::degraded(latency, warnings.join("; "))
        } else {
            ProbeReport::healthy(latency)
        }
    }
}

/// The `auth` probe: an HTTP GET that must answer 2xx. Not critical.
#[derive(Debug, Clone)]
pub struct AuthProbe {
    url: HttpUrl,
    timeout: Duration,
}

impl AuthProbe {
    /// A probe of `url` (the request itself is cut at `timeout`).
    pub fn new(url: HttpUrl, timeout: Duration) -> Self {
        AuthProbe { url, timeout }
    }
}

#[async_trait]
impl Probe for AuthProbe {
    fn name(&self) -> &str {
        "auth"
    }

    fn critical(&self) -> bool {
        false
    }

    async fn check(&self) -> ProbeReport {
        let start = Instant::now();
        match request("GET", &self.url, &[], self.timeout).await {
            Ok(r) if (200..300).contains(&r.status) => ProbeReport::healthy(start.elapsed()),
            Ok(r) => ProbeReport::unhealthy(
                start.elapsed(),
                format!("auth service {} answered {}", self.url, r.status),
            ),
            Err(e) => {
                ProbeReport::unhealthy(start.elapsed(), format!("auth service {}: {e}", self.url))
            }
        }
    }
}

/// The `scheduler` probe: unhealthy unless running; degraded while the
/// store buffer fails or fills, while the driver is behind by more than
/// `max_overdue`, or while the last run of a [watched](Self::watch_failures)
/// job failed. Critical.
#[derive(Debug, Clone)]
pub struct SchedulerProbe {
    scheduler: JobScheduler,
    max_overdue: Duration,
    watched: Vec<Arc<Watched>>,
    shared: bool,
}

/// A job whose failed last run degrades the probe.
#[derive(Debug)]
struct Watched {
    job: String,
    /// The last run's status as the store had it when last read (`None`
    /// until read; `Some(None)` when the job had no finished run). It
    /// stands in until a run ends in this process: after a restart, a
    /// nightly job may not run for hours.
    stored: Mutex<Option<Option<ExecutionStatus>>>,
}

impl SchedulerProbe {
    /// A probe of `scheduler`.
    pub fn new(scheduler: JobScheduler, max_overdue: Duration) -> Self {
        SchedulerProbe { scheduler, max_overdue, watched: Vec::new(), shared: false }
    }

    /// Whether other instances run the watched jobs too (the scheduler
    /// claims fires, `claim_fires`): then this process's own last run says
    /// nothing of the last run, and every check reads the job's latest rows
    /// from the store (at most once per health TTL, through the cache).
    pub fn shared(mut self, on: bool) -> Self {
        self.shared = on;
        self
    }

    /// Degrades the probe while the last run of `job` failed (failed,
    /// timed out, retries exhausted or abandoned), until a run of it
    /// succeeds. The server watches `database-backup`: a night without a
    /// backup should show before the night a restore is needed. A job
    /// that is not registered is ignored.
    pub fn watch_failures(mut self, job: impl Into<String>) -> Self {
        let job = job.into();
        self.watched.push(Arc::new(Watched { job, stored: Mutex::new(None) }));
        self
    }

    /// The failed status of the last run of `w`'s job, if it failed.
    ///
    /// A success known to this process (its own last run, or the store's
    /// verdict read once after a restart) costs no query. Otherwise the
    /// store has the last word, since `mscribe run` in another process may
    /// have run the job since: so while a failure stands, each check reads
    /// the job's latest rows. Running and skipped rows are no verdict; a
    /// store error keeps what this process knew.
    async fn failure(&self, w: &Watched) -> Option<ExecutionStatus> {
        let info = self.scheduler.job(&w.job)?;
        let stored = *w.stored.lock().expect("watch lock");
        let known = info.last_status.or(stored.flatten());
        match known {
            _ if self.shared => {}
            Some(s) if !s.is_failure() => return None,
            // Read already: the job has no finished run.
            None if stored.is_some() => return None,
            _ => {}
        }
        let Ok(rows) = self.scheduler.store().history(&HistoryQuery::new(&w.job, 10)).await else {
            return known;
        };
        let verdict = rows
            .iter()
            .map(|r| r.status)
            .find(|s| !matches!(s, ExecutionStatus::Running | ExecutionStatus::Skipped));
        *w.stored.lock().expect("watch lock") = Some(verdict);
        verdict.filter(|s| s.is_failure())
    }
}

#[async_trait]
impl Probe for SchedulerProbe {
    fn name(&self) -> &str {
        "scheduler"
    }

    async fn check(&self) -> ProbeReport {
        let phase = self.scheduler.phase();
        if phase != Phase::Running {
            let phase = serde_json::to_value(phase).ok();
            let phase = phase.as_ref().and_then(Value::as_str).unwrap_or("unknown");
            return ProbeReport::unhealthy(Duration::ZERO, format!("scheduler is {phase}"));
        }
        let store = self.scheduler.store_health();
        let mut problems = Vec::new();
        if store.is_degraded() {
            problems.push(format!(
                "execution store {}: {} of {} records buffered, {} dropped{}",
                if store.failing {
                    "failing"
                } else if store.dropped_since_drained > 0 {
                    "catching up after lost records"
                } else {
                    "backlogged"
                },
                store.buffered,
                store.capacity,
                store.dropped,
                store
                    .last_error
                    .as_deref()
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default()
            ));
        }
        let overdue = self.scheduler.overdue();
        if overdue > self.max_overdue {
            problems.push(format!(
                "scheduler is {overdue:?} behind its earliest fire (limit {:?})",
                self.max_overdue
            ));
        }
        for w in &self.watched {
            if let Some(status) = self.failure(w).await {
                problems.push(format!(
                    "the last run of {} ended {status}; see `mscribe history {}`",
                    w.job, w.job
                ));
            }
        }
        if problems.is_empty() {
            ProbeReport::healthy(Duration::ZERO)
        } else {
            ProbeReport::degraded(Duration::ZERO, problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::ScriptedProbe;
    use mscribe_scheduler::LocalRuntime;

    #[derive(Debug)]
    struct Counting {
        runs: Arc<AtomicU64>,
        clock: Arc<dyn Clock>,
        delay: Duration,
    }

    #[async_trait]
    impl Probe for Counting {
        fn name(&self) -> &str {
            "database"
        }
        async fn check(&self) -> ProbeReport {
            self.runs.fetch_add(1, Ordering::SeqCst);
            let until = self.clock.now() + chrono::Duration::from_std(self.delay).unwrap();
            self.clock.sleep_until(until).await;
            ProbeReport::healthy(self.delay)
        }
    }

    #[test]
    fn concurrent_requests_share_one_refresh_per_ttl() {
        let rt = LocalRuntime::new();
        let clock: Arc<dyn Clock> = Arc::new(rt.clock());
        let runs = Arc::new(AtomicU64::new(0));
        let probe: Arc<dyn Probe> = Arc::new(Counting {
            runs: runs.clone(),
            clock: clock.clone(),
            delay: Duration::from_millis(100),
        });
        let checker = HealthChecker::new(vec![probe], clock.clone(), HealthSettings::default());
        // 100 concurrent requests while the probe takes 100 ms: one probe run.
        let all = futures::future::join_all((0..100).map(|_| checker.check()));
        let snaps = rt.block_on(all);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(snaps.iter().all(|s| Arc::ptr_eq(s, &snaps[0])));
        // Within the TTL: still one.
        rt.advance(Duration::from_millis(1800));
        rt.block_on(futures::future::join_all((0..50).map(|_| checker.check())));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // At the TTL: exactly one more, however many ask.
        rt.advance(Duration::from_millis(200));
        rt.block_on(futures::future::join_all((0..50).map(|_| checker.check())));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(checker.refreshes(), 2);
        // A forced refresh joins one under way.
        rt.block_on(futures::future::join(checker.refresh(), checker.check()));
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn hooks_see_every_fresh_result_and_bodies_hide_messages() {
        let rt = LocalRuntime::new();
        let clock: Arc<dyn Clock> = Arc::new(rt.clock());
        let db: Arc<dyn Probe> = Arc::new(ScriptedProbe::new(
            "database",
            true,
            ProbeReport::unhealthy(Duration::from_millis(3), "db.internal:5432 refused"),
        ));
        let seen = Arc::new(AtomicU64::new(0));
        let s2 = seen.clone();
        let checker = HealthChecker::with_hooks(
            vec![db],
            clock,
            HealthSettings::default(),
            vec![Box::new(move |_| {
                s2.fetch_add(1, Ordering::SeqCst);
            })],
        );
        let snap = rt.block_on(checker.check());
        assert_eq!(snap.status, HealthStatus::Unhealthy);
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        let anon = snap.body(false).to_string();
        assert!(!anon.contains("db.internal"), "{anon}");
        assert!(snap.body(true).to_string().contains("db.internal:5432 refused"));
    }

    #[test]
    fn scheduler_probe_sees_phase_a_stalled_driver_and_a_backlogged_store() {
        use futures::future::BoxFuture;
        use mscribe_scheduler::FnSpawner;
        use mscribe_scheduler::{JobConfig, JobContext, VirtualClock};
        // A spawner that never polls: the driver and the store writer stall.
        let parked: Arc<Mutex<Vec<BoxFuture<'static, ()>>>> = Arc::default();
        let p2 = parked.clone();
        let spawner = FnSpawner(move |f| p2.lock().unwrap().push(f));
        let clock = VirtualClock::at_epoch_2026();
        let scheduler = JobScheduler::builder(Arc::new(clock.clone()), Arc::new(spawner))
            .buffer_capacity(4)
            .build();
        scheduler
            .register(JobConfig::new("j", |_ctx: JobContext| async {}).schedule("* * * * *"))
            .unwrap();
        let probe = SchedulerProbe::new(scheduler.clone(), Duration::from_secs(60));
        let check = || futures::executor::block_on(probe.check());
        let r = check();
        assert_eq!(r.status, HealthStatus::Unhealthy);
        assert_eq!(r.message.as_deref(), Some("scheduler is created"));
        futures::executor::block_on(scheduler.start()).unwrap();
        assert_eq!(check().status, HealthStatus::Healthy);
        // The first fire is due at 00:01; two minutes later nothing ran it.
        clock.advance(Duration::from_secs(180));
        let r = check();
        assert_eq!(r.status, HealthStatus::Degraded);
        assert!(r.message.unwrap().contains("behind its earliest fire"));
        // A run is parked, so triggers are skipped (overlap skip); their
        // records fill the buffer that no writer drains: over half full.
        for _ in 0..4 {
            scheduler.trigger("j").unwrap();
        }
        let msg = check().message.unwrap();
        assert!(
            msg.contains("execution store backlogged: 3 of 4 records buffered, 0 dropped"),
            "{msg}"
        );
        assert!(!parked.lock().unwrap().is_empty());
    }

    #[test]
    fn a_watched_job_that_failed_last_degrades_until_it_succeeds() {
        use mscribe_scheduler::{AttemptEnd, FireKind};
        use mscribe_scheduler::{
            ExecutionEvent, ExecutionId, ExecutionStore, JobConfig, JobContext, JobResult,
            MemoryStore,
        };
        use std::sync::atomic::AtomicBool;
        let rt = LocalRuntime::new();
        let store = Arc::new(MemoryStore::new());
        let fail = Arc::new(AtomicBool::new(true));
        let build = || {
            let s = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
                .store(store.clone())
                .build();
            let f = fail.clone();
            let backup = JobConfig::new("database-backup", move |_ctx: JobContext| {
                let failing = f.load(Ordering::SeqCst);
                async move {
                    if failing {
                        JobResult::failed("pg_dump not found on PATH")
                    } else {
                        JobResult::ok()
                    }
                }
            });
            s.register(backup.schedule("0 2 * * *")).unwrap();
            s
        };
        let probe_of = |s: &JobScheduler| {
            SchedulerProbe::new(s.clone(), Duration::from_secs(60))
                .watch_failures("database-backup")
                .watch_failures("not-registered")
        };
        let check = |p: &SchedulerProbe| rt.block_on(p.check());
        let run = |s: &JobScheduler| {
            s.trigger("database-backup").unwrap();
            rt.run_until_stalled();
        };

        let s = build();
        rt.block_on(s.start()).unwrap();
        let probe = probe_of(&s);
        // Never run: nothing in the store, healthy.
        assert_eq!(check(&probe).status, HealthStatus::Healthy);
        run(&s);
        let r = check(&probe);
        assert_eq!(r.status, HealthStatus::Degraded);
        assert_eq!(
            r.message.as_deref(),
            Some(
                "the last run of database-backup ended failed; see `mscribe history database-backup`"
            )
        );

        // A restart: no run in the new process, the store's verdict stands.
        rt.block_on(s.stop(Duration::from_secs(1))).unwrap();
        let s = build();
        rt.block_on(s.start()).unwrap();
        let probe = probe_of(&s);
        assert_eq!(check(&probe).status, HealthStatus::Degraded);

        // Another process (`mscribe run`) backs up successfully: the row it
        // writes clears the failure.
        let last = store.all().into_iter().max_by_key(|r| r.started_at).unwrap();
        let later = last.started_at + chrono::Duration::minutes(5);
        let ok = AttemptEnd {
            job_id: "database-backup".into(),
            execution_id: ExecutionId::from_u128(u128::MAX),
            attempt: 1,
            scheduled_at: later,
            started_at: later,
            instance_id: "cli".into(),
            status: ExecutionStatus::Succeeded,
            completed_at: later,
            duration: Duration::from_secs(1),
            error: None,
            error_kind: None,
            result: None,
            metrics: None,
            kind: FireKind::Schedule,
            fence: None,
            ends_run: true,
        };
        rt.block_on(store.write(&[ExecutionEvent::Finished(ok)])).unwrap();
        assert_eq!(check(&probe).status, HealthStatus::Healthy);

        // This process's own runs, after that one: a failure degrades, a
        // success clears it.
        rt.advance(Duration::from_secs(600));
        run(&s);
        assert_eq!(check(&probe).status, HealthStatus::Degraded);
        fail.store(false, Ordering::SeqCst);
        run(&s);
        assert_eq!(check(&probe).status, HealthStatus::Healthy);

        // Several instances share the job (`claim_fires`): another one's
        // later failure is the last run, though this one's own succeeded.
        let last = store.all().into_iter().max_by_key(|r| r.started_at).unwrap();
        let later = last.started_at + chrono::Duration::minutes(5);
        let failed = AttemptEnd {
            job_id: "database-backup".into(),
            execution_id: ExecutionId::from_u128(u128::MAX - 1),
            attempt: 1,
            scheduled_at: later,
            started_at: later,
            instance_id: "other".into(),
            status: ExecutionStatus::Failed,
            completed_at: later,
            duration: Duration::from_secs(1),
            error: Some("pg_dump failed".to_owned()),
            error_kind: None,
            result: None,
            metrics: None,
            kind: FireKind::Schedule,
            fence: None,
            ends_run: true,
        };
        rt.block_on(store.write(&[ExecutionEvent::Finished(failed)])).unwrap();
        assert_eq!(check(&probe).status, HealthStatus::Healthy, "alone, its own run decides");
        let shared = probe_of(&s).shared(true);
        assert_eq!(check(&shared).status, HealthStatus::Degraded);
    }

    #[test]
    fn storage_probe_finds_missing_unwritable_and_full() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok");
        std::fs::create_dir(&ok).unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let rt = LocalRuntime::new();
        let check = |paths: Vec<PathBuf>, bytes: u64, pct: f64| {
            rt.block_on(StorageProbe::new(paths, bytes, pct).check())
        };
        assert_eq!(check(vec![ok.clone()], 0, 0.0).status, HealthStatus::Healthy);
        let r = check(vec![ok.clone(), dir.path().join("missing")], 0, 0.0);
        assert_eq!(r.status, HealthStatus::Unhealthy);
        assert!(r.message.unwrap().contains("missing: No such file"));
        let r = check(vec![file], 0, 0.0);
        assert!(r.message.unwrap().ends_with("file: not a directory"));
        let r = check(vec![ok.clone()], u64::MAX, 0.0);
        assert_eq!(r.status, HealthStatus::Degraded);
        assert!(r.message.unwrap().contains("low disk space"));
        assert_eq!(check(vec![ok.clone()], 0, 100.1).status, HealthStatus::Degraded);
        // No probe file is left behind.
        assert_eq!(std::fs::read_dir(&ok).unwrap().count(), 0);
    }
}
