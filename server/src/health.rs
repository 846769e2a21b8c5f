//! The health check: the server's probes, and a [`HealthChecker`] that runs
//! them concurrently (each under a timeout, through the engine's
//! [`check_all`]) and caches the result for a TTL (counted from when its
//! probes started) with single flight.
//!
//! Single flight: while a refresh runs, every caller joins that same
//! refresh, so a flood of requests reaches each dependency at most once per
//! TTL. With the refreshes in the [background](HealthChecker::in_background)
//! (the server), a caller waits for one at most the
//! [answer budget](HealthSettings::answer_budget) and then gets the cached
//! result: a hung dependency never holds an answer up to the probe timeout.
//!
//! No probe waits for the database outside its own timeout: the
//! [`SchedulerProbe`] reads the scheduler's memory only, so a database
//! outage leaves it degraded (records waiting), not timed out.
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
use crate::probe::{NamedReport, after, check_all};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use futures::future::{Either, select};
use mscribe_scheduler::{Clock, ExecutionStatus, HistoryQuery, JobScheduler, Phase, Spawner};
use serde_json::{Map, Value, json};

use crate::http_client::{Url, request};

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

impl HealthSettings {
    /// How long a request waits for a refresh under way before it gets the
    /// cached result ([`HealthChecker::in_background`]): the slow
    /// threshold, a refresh slower than that being slow anyway, and at most
    /// half the probe timeout, so that an answer comes well within it while
    /// a probe hangs.
    pub fn answer_budget(&self) -> Duration {
        self.slow_threshold.min(self.probe_timeout / 2)
    }
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
    /// When the probes of `last` started: its TTL counts from then, so
    /// that the probes run once per TTL however long they take.
    last_started: Option<DateTime<Utc>>,
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
    spawner: Option<Arc<dyn Spawner>>,
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
        Self::build(probes, clock, settings, hooks, None)
    }

    /// A checker whose refreshes run on `spawner`, so that a request need
    /// not wait for one: a request that finds the cached result older than
    /// the TTL waits for the refresh at most the
    /// [answer budget](HealthSettings::answer_budget), then gets the cached
    /// result while the refresh goes on, and its result serves the next
    /// requests. The first request of all, with nothing cached, waits for
    /// the probes (each cut at the probe timeout).
    pub fn in_background(
        probes: Vec<Arc<dyn Probe>>,
        clock: Arc<dyn Clock>,
        settings: HealthSettings,
        hooks: Vec<HealthHook>,
        spawner: Arc<dyn Spawner>,
    ) -> Arc<Self> {
        Self::build(probes, clock, settings, hooks, Some(spawner))
    }

    fn build(
        probes: Vec<Arc<dyn Probe>>,
        clock: Arc<dyn Clock>,
        settings: HealthSettings,
        hooks: Vec<HealthHook>,
        spawner: Option<Arc<dyn Spawner>>,
    ) -> Arc<Self> {
        Arc::new(HealthChecker {
            probes,
            clock,
            settings,
            state: Mutex::new(CacheState::default()),
            refreshes: AtomicU64::new(0),
            hooks,
            spawner,
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
    /// a refresh already under way). With refreshes in the
    /// [background](Self::in_background), a refresh that outlasts the
    /// answer budget leaves the request with the cached result.
    pub async fn check(self: &Arc<Self>) -> Arc<HealthSnapshot> {
        let asked = self.clock.now();
        let (refresh, last) = {
            let mut st = self.lock();
            if let (Some(last), Some(started)) = (&st.last, st.last_started)
                && crate::probe::std_dur(started, asked) < self.settings.ttl
            {
                return last.clone();
            }
            (self.join_or_start(&mut st), st.last.clone())
        };
        let refresh = self.drive(refresh);
        match last {
            Some(last) if self.spawner.is_some() => {
                let budget = after(asked, self.settings.answer_budget());
                match select(refresh, self.clock.sleep_until(budget)).await {
                    Either::Left((fresh, _)) => fresh,
                    Either::Right(_) => last,
                }
            }
            _ => refresh.await,
        }
    }

    /// A fresh result, whatever the cache holds (a refresh under way is
    /// joined rather than doubled).
    pub async fn refresh(self: &Arc<Self>) -> Arc<HealthSnapshot> {
        let refresh = {
            let mut st = self.lock();
            self.join_or_start(&mut st)
        };
        self.drive(refresh).await
    }

    /// Hands a refresh just started to the spawner, if any, once the
    /// state's lock is released; returns the refresh to await.
    fn drive(&self, (refresh, started): (Refresh, bool)) -> Refresh {
        if started && let Some(spawner) = &self.spawner {
            spawner.spawn(Box::pin(refresh.clone().map(drop)));
        }
        refresh
    }

    /// The refresh under way, or a new one (`true`: not started yet).
    fn join_or_start(self: &Arc<Self>, st: &mut CacheState) -> (Refresh, bool) {
        if let Some(r) = &st.inflight {
            return (r.clone(), false);
        }
        let this = self.clone();
        let fut: BoxFuture<'static, Arc<HealthSnapshot>> = Box::pin(async move {
            this.refreshes.fetch_add(1, Ordering::Relaxed);
            let started = this.clock.now();
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
                st.last_started = Some(started);
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
        (shared, true)
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
    url: Url,
    timeout: Duration,
}

impl AuthProbe {
    /// A probe of `url` (the request itself is cut at `timeout`).
    pub fn new(url: Url, timeout: Duration) -> Self {
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
/// store buffer fails or fills, while a store write or claim has hung for
/// longer than the [store timeout](Self::store_timeout), while claims fail
/// (`claim_fires`), while the driver is behind by more than `max_overdue`,
/// or while the last run of a [watched](Self::watch_failures) job failed.
/// Critical.
///
/// A check reads the scheduler's memory only and never waits for the
/// store: a database that does not answer makes this probe degraded (its
/// records wait in the buffer), not unhealthy, and the `database` probe
/// says unhealthy. The store reads of the watched jobs run in the
/// background, on the [spawner](Self::spawner).
#[derive(Debug, Clone)]
pub struct SchedulerProbe {
    scheduler: JobScheduler,
    max_overdue: Duration,
    store_timeout: Duration,
    spawner: Option<Arc<dyn Spawner>>,
    watched: Vec<Arc<Watched>>,
    shared: bool,
}

/// A job whose failed last run degrades the probe.
#[derive(Debug)]
struct Watched {
    job: String,
    state: Mutex<WatchState>,
}

#[derive(Debug, Default)]
struct WatchState {
    /// The last store read that finished: this process's own last status
    /// when the read began, and the store's verdict (`None` when the job
    /// had no finished run). It stands in until a run ends in this process:
    /// after a restart, a nightly job may not run for hours.
    read: Option<(Option<ExecutionStatus>, Option<ExecutionStatus>)>,
    /// A read is under way.
    reading: bool,
}

/// Clears [`WatchState::reading`] however the read ends (a panicking
/// store, a runtime dropping the task).
struct ReadingGuard(Arc<Watched>);

impl Drop for ReadingGuard {
    fn drop(&mut self) {
        self.0.lock().reading = false;
    }
}

impl Watched {
    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SchedulerProbe {
    /// A probe of `scheduler`, with a store timeout of 1 s and no spawner.
    pub fn new(scheduler: JobScheduler, max_overdue: Duration) -> Self {
        SchedulerProbe {
            scheduler,
            max_overdue,
            store_timeout: HealthSettings::default().probe_timeout,
            spawner: None,
            watched: Vec::new(),
            shared: false,
        }
    }

    /// How long a store write or claim may hang before the probe is
    /// degraded ("execution store not answering"), and how long a read of a
    /// watched job's rows may take before it is given up. The server passes
    /// `health.probe_timeout`: a store slower than that is as good as down
    /// for the `database` probe too.
    pub fn store_timeout(mut self, d: Duration) -> Self {
        self.store_timeout = d;
        self
    }

    /// Where the watched jobs' store reads run, in the background: a check
    /// starts one (at most one per job at a time) and goes on with the last
    /// verdict read. Without a spawner the store is read only by
    /// [`read_store`](Self::read_store).
    pub fn spawner(mut self, spawner: Arc<dyn Spawner>) -> Self {
        self.spawner = Some(spawner);
        self
    }

    /// Whether other instances run the watched jobs too (the scheduler
    /// claims fires, `claim_fires`): then this process's own last run says
    /// nothing of the last run, and every check starts a read of the job's
    /// latest rows from the store (at most once per health TTL, through the
    /// cache).
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
        self.watched.push(Arc::new(Watched { job, state: Mutex::default() }));
        self
    }

    /// Reads every watched job's last rows from the store now, each read
    /// cut at the store timeout (the server calls it once at start, so that
    /// the first check after a restart knows how the last backup ended).
    pub async fn read_store(&self) {
        let reads: Vec<_> = self
            .watched
            .iter()
            .filter_map(|w| {
                let own = self.scheduler.job(&w.job).and_then(|i| i.last_status);
                self.read(w, own)
            })
            .collect();
        futures::future::join_all(reads).await;
    }

    /// A read of `w`'s last rows into its state, cut at the store timeout;
    /// `None` while one is under way.
    fn read(
        &self,
        w: &Arc<Watched>,
        own: Option<ExecutionStatus>,
    ) -> Option<BoxFuture<'static, ()>> {
        {
            let mut st = w.lock();
            if st.reading {
                return None;
            }
            st.reading = true;
        }
        let guard = ReadingGuard(w.clone());
        let store = self.scheduler.store().clone();
        let clock = self.scheduler.clock().clone();
        let timeout = self.store_timeout;
        Some(Box::pin(async move {
            let query = HistoryQuery::new(&guard.0.job, 10);
            let deadline = crate::probe::after(clock.now(), timeout);
            let rows = match select(store.history(&query), clock.sleep_until(deadline)).await {
                Either::Left((Ok(rows), _)) => rows,
                // A store error or no answer: what was known stands.
                Either::Left((Err(_), _)) | Either::Right(_) => return,
            };
            let verdict = rows
                .iter()
                .map(|r| r.status)
                .find(|s| !matches!(s, ExecutionStatus::Running | ExecutionStatus::Skipped));
            guard.0.lock().read = Some((own, verdict));
        }))
    }

    /// The failed status of the last run of `w`'s job, if it failed, from
    /// what is known now; starts a store read when the store may know
    /// better.
    ///
    /// A success known to this process (its own last run, or the store's
    /// verdict read after a restart) needs no read. Otherwise the store has
    /// the last word, since `mscribe run` in another process (or, shared,
    /// another instance) may have run the job since: so while a failure
    /// stands, each check starts a read, and the next check uses it. A read
    /// counts only while no run has ended in this process since it began;
    /// running and skipped rows are no verdict; a store error or a read cut
    /// at the timeout keeps what was known.
    fn failure(&self, w: &Arc<Watched>) -> Option<ExecutionStatus> {
        let own = self.scheduler.job(&w.job)?.last_status;
        let read = w.lock().read.filter(|(basis, _)| *basis == own).map(|(_, v)| v);
        let known = own.or(read.flatten());
        let wants_read = self.shared
            || match known {
                Some(s) => s.is_failure(),
                None => read.is_none(),
            };
        if !wants_read {
            return None;
        }
        if let Some(spawner) = &self.spawner
            && let Some(fut) = self.read(w, own)
        {
            spawner.spawn(fut);
        }
        read.unwrap_or(known).filter(|s| s.is_failure())
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
        // A store that does not answer fails a call only at its own
        // timeout: until then, a write or a claim waiting longer than the
        // store timeout says it.
        let now = self.scheduler.clock().now();
        let hung = |since: Option<DateTime<Utc>>| {
            since.map(|t| crate::probe::std_dur(t, now)).filter(|d| *d > self.store_timeout)
        };
        if let Some(d) = hung(store.writing_since).filter(|_| !store.failing) {
            problems.push(format!(
                "execution store not answering: a write has waited {:.1}s (limit {:?}), {} of {} records buffered",
                d.as_secs_f64(),
                self.store_timeout,
                store.buffered,
                store.capacity,
            ));
        }
        if let Some(d) = hung(store.claiming_since) {
            problems.push(format!(
                "execution store not answering: a claim of fires has waited {:.1}s (limit {:?}); claimed fires do not run meanwhile",
                d.as_secs_f64(),
                self.store_timeout,
            ));
        }
        if let Some(e) = &store.claim_error {
            problems.push(format!(
                "claims failing: {} fire(s) not run here, to be claimed again; last error: {e}",
                store.unclaimed
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
            if let Some(status) = self.failure(w) {
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
                .spawner(Arc::new(rt.spawner()))
                .watch_failures("database-backup")
                .watch_failures("not-registered")
        };
        // A check never waits for the store: the read it starts runs on the
        // runtime, and the next check uses it.
        let check = |p: &SchedulerProbe| rt.block_on(p.check());
        let read_in_background = || rt.run_until_stalled();
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

        // A restart: no run in the new process, the store's verdict stands,
        // read once at start (as the server does) before the first check.
        rt.block_on(s.stop(Duration::from_secs(1))).unwrap();
        let s = build();
        rt.block_on(s.start()).unwrap();
        let probe = probe_of(&s);
        rt.block_on(probe.read_store());
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
        assert_eq!(check(&probe).status, HealthStatus::Degraded, "not read yet");
        read_in_background();
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
        read_in_background();
        assert_eq!(check(&probe).status, HealthStatus::Healthy, "alone, its own run decides");
        let shared = probe_of(&s).shared(true);
        assert_eq!(check(&shared).status, HealthStatus::Healthy, "not read yet");
        read_in_background();
        assert_eq!(check(&shared).status, HealthStatus::Degraded);
        let shared = probe_of(&s).shared(true);
        rt.block_on(shared.read_store());
        assert_eq!(check(&shared).status, HealthStatus::Degraded);
    }

    /// How the database behaves in [`OutageStore`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Outage {
        /// It answers.
        Up,
        /// Connections are refused: every call fails at once.
        Refusing,
        /// A network partition: every call waits, and fails only when the
        /// database is back (the connection was lost meanwhile).
        Hanging,
    }

    /// A [`MemoryStore`](mscribe_scheduler::MemoryStore) behind a database
    /// that can be taken away, as `scripts/chaos.sh` does through its proxy.
    #[derive(Debug)]
    struct OutageStore {
        inner: mscribe_scheduler::MemoryStore,
        mode: Mutex<Outage>,
        clock: Arc<dyn Clock>,
        /// `history` calls, and how many of them are under way.
        reads: AtomicU64,
        reading: AtomicU64,
    }

    impl OutageStore {
        fn new(clock: Arc<dyn Clock>) -> Arc<Self> {
            Arc::new(OutageStore {
                inner: mscribe_scheduler::MemoryStore::new(),
                mode: Mutex::new(Outage::Up),
                clock,
                reads: AtomicU64::new(0),
                reading: AtomicU64::new(0),
            })
        }

        fn set(&self, m: Outage) {
            *self.mode.lock().unwrap() = m;
        }

        fn mode(&self) -> Outage {
            *self.mode.lock().unwrap()
        }

        async fn gate(&self) -> mscribe_scheduler::StoreResult<()> {
            let unavailable = |message: &str| {
                Err(mscribe_scheduler::StoreError::Unavailable {
                    message: message.to_owned(),
                    source: None,
                })
            };
            let mut hung = false;
            loop {
                match self.mode() {
                    Outage::Up if hung => return unavailable("connection lost"),
                    Outage::Up => return Ok(()),
                    Outage::Refusing => return unavailable("connection refused"),
                    Outage::Hanging => {
                        hung = true;
                        let next =
                            crate::probe::after(self.clock.now(), Duration::from_millis(100));
                        self.clock.sleep_until(next).await;
                    }
                }
            }
        }
    }

    #[async_trait]
    impl mscribe_scheduler::ExecutionStore for OutageStore {
        async fn write(
            &self,
            events: &[mscribe_scheduler::ExecutionEvent],
        ) -> mscribe_scheduler::StoreResult<()> {
            self.gate().await?;
            self.inner.write(events).await
        }
        async fn history(
            &self,
            query: &HistoryQuery,
        ) -> mscribe_scheduler::StoreResult<Vec<mscribe_scheduler::ExecutionRecord>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.reading.fetch_add(1, Ordering::SeqCst);
            struct Done<'a>(&'a AtomicU64);
            impl Drop for Done<'_> {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::SeqCst);
                }
            }
            let _done = Done(&self.reading);
            self.gate().await?;
            self.inner.history(query).await
        }
        async fn last_fire(
            &self,
            job_id: &str,
        ) -> mscribe_scheduler::StoreResult<Option<DateTime<Utc>>> {
            self.gate().await?;
            self.inner.last_fire(job_id).await
        }
        async fn heartbeat(
            &self,
            instance_id: &str,
            now: DateTime<Utc>,
        ) -> mscribe_scheduler::StoreResult<()> {
            self.gate().await?;
            self.inner.heartbeat(instance_id, now).await
        }
        async fn mark_abandoned(
            &self,
            own_instance: &str,
            now: DateTime<Utc>,
            stale_after: Duration,
        ) -> mscribe_scheduler::StoreResult<Vec<mscribe_scheduler::ExecutionRecord>> {
            self.gate().await?;
            self.inner.mark_abandoned(own_instance, now, stale_after).await
        }
        async fn prune(
            &self,
            policy: mscribe_scheduler::PrunePolicy,
        ) -> mscribe_scheduler::StoreResult<u64> {
            self.gate().await?;
            self.inner.prune(policy).await
        }
        fn supports_claims(&self) -> bool {
            true
        }
        async fn claim_fires(
            &self,
            instance_id: &str,
            fires: &[mscribe_scheduler::FireClaim],
            now: DateTime<Utc>,
            lease: Duration,
        ) -> mscribe_scheduler::StoreResult<Vec<mscribe_scheduler::ClaimOutcome>> {
            self.gate().await?;
            self.inner.claim_fires(instance_id, fires, now, lease).await
        }
        async fn renew_leases(
            &self,
            instance_id: &str,
            leases: &[mscribe_scheduler::FireLease],
            now: DateTime<Utc>,
            lease: Duration,
        ) -> mscribe_scheduler::StoreResult<Vec<bool>> {
            self.gate().await?;
            self.inner.renew_leases(instance_id, leases, now, lease).await
        }
        async fn expired_leases(
            &self,
            now: DateTime<Utc>,
            limit: usize,
        ) -> mscribe_scheduler::StoreResult<Vec<mscribe_scheduler::ExpiredLease>> {
            self.gate().await?;
            self.inner.expired_leases(now, limit).await
        }
        async fn retake_fire(
            &self,
            instance_id: &str,
            expired: &mscribe_scheduler::ExpiredLease,
            new_execution_id: mscribe_scheduler::ExecutionId,
            now: DateTime<Utc>,
            lease: Duration,
            rerun: bool,
        ) -> mscribe_scheduler::StoreResult<Option<mscribe_scheduler::RetakenFire>> {
            self.gate().await?;
            self.inner.retake_fire(instance_id, expired, new_execution_id, now, lease, rerun).await
        }
    }

    /// A probe that is one round trip through the store, as the server's
    /// `database` probe is through its pool.
    #[derive(Debug)]
    struct ThroughStore {
        name: &'static str,
        critical: bool,
        store: Arc<OutageStore>,
    }

    #[async_trait]
    impl Probe for ThroughStore {
        fn name(&self) -> &str {
            self.name
        }
        fn critical(&self) -> bool {
            self.critical
        }
        async fn check(&self) -> ProbeReport {
            use mscribe_scheduler::ExecutionStore;
            match self.store.history(&HistoryQuery::new("probe", 1)).await {
                Ok(_) => ProbeReport::healthy(Duration::ZERO),
                Err(e) => ProbeReport::unhealthy(Duration::ZERO, e.to_string()),
            }
        }
    }

    /// A started scheduler over `store` with a job firing every 250 ms (its
    /// records reach the store, or wait in the buffer; with `claim`, each
    /// fire is claimed in the store first, as with `claim_fires`) and the
    /// watched `database-backup`.
    fn scheduler_over(rt: &LocalRuntime, store: &Arc<OutageStore>, claim: bool) -> JobScheduler {
        use mscribe_scheduler::{JobConfig, JobContext};
        let s = JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
            .store(store.clone())
            .claim_fires(claim)
            .build();
        s.register(
            JobConfig::new("tick", |_ctx: JobContext| async {})
                .schedule(Duration::from_millis(250)),
        )
        .unwrap();
        s.register(
            JobConfig::new("database-backup", |_ctx: JobContext| async {}).schedule("0 2 * * *"),
        )
        .unwrap();
        rt.block_on(s.start()).unwrap();
        s
    }

    /// server/README.md, "Database outages": while the database is away the
    /// `database` check is unhealthy and the `scheduler` check degraded (its
    /// records wait in the buffer, or its claims fail; the scheduler runs).
    /// The scheduler check read the watched job's rows from the store in
    /// the check itself (every check, with `claim_fires`), so a database
    /// that did not answer made it time out: unhealthy, "timed out after
    /// 1s". Whether the database refuses or holds connections, with or
    /// without `claim_fires`.
    #[test]
    fn the_scheduler_check_is_degraded_not_unhealthy_while_the_database_is_unreachable() {
        let cases = [
            (false, Outage::Refusing, "execution store failing: "),
            (false, Outage::Hanging, "execution store not answering: a write has waited "),
            (true, Outage::Refusing, "claims failing: "),
            (true, Outage::Hanging, "execution store not answering: a claim of fires has waited "),
        ];
        for (claim, outage, expected) in cases {
            let rt = LocalRuntime::new();
            let clock: Arc<dyn Clock> = Arc::new(rt.clock());
            let store = OutageStore::new(clock.clone());
            let scheduler = scheduler_over(&rt, &store, claim);
            let probes: Vec<Arc<dyn Probe>> = vec![
                Arc::new(ThroughStore { name: "database", critical: true, store: store.clone() }),
                Arc::new(
                    SchedulerProbe::new(scheduler.clone(), Duration::from_secs(60))
                        .shared(true)
                        .watch_failures("database-backup"),
                ),
            ];
            let checker = HealthChecker::new(probes, clock.clone(), HealthSettings::default());
            assert_eq!(rt.block_on(checker.refresh()).status, HealthStatus::Healthy);

            store.set(outage);
            rt.advance(Duration::from_secs(3));
            let snap = rt.block_on(checker.refresh());
            let scheduler_check = snap.check("scheduler").unwrap();
            assert_eq!(
                snap.check("database").unwrap().status,
                HealthStatus::Unhealthy,
                "{outage:?}"
            );
            assert_eq!(
                scheduler_check.status,
                HealthStatus::Degraded,
                "{outage:?}: {scheduler_check:?}"
            );
            let message = scheduler_check.message.as_deref().unwrap_or_default();
            assert!(message.contains(expected), "claim {claim}, {outage:?}: {message}");
            assert_eq!(snap.status, HealthStatus::Unhealthy, "{outage:?}");

            // Back: the buffered records are written and the failed claims
            // claimed again (every third of the lease), all healthy again.
            store.set(Outage::Up);
            rt.advance(Duration::from_secs(10));
            let snap = rt.block_on(checker.refresh());
            assert_eq!(snap.status, HealthStatus::Healthy, "claim {claim}, {outage:?}: {snap:?}");
            let health = scheduler.store_health();
            assert_eq!((health.buffered, health.unclaimed), (0, 0), "{health:?}");
        }
    }

    /// Polls `/health-check` every 250 ms, as `scripts/chaos.sh` does, from
    /// 2 s before a 10 s outage that hangs every probe touching the
    /// database (the critical `database` one and a non-critical one) to 6 s
    /// after it, with the server's settings and wiring. Every answer comes
    /// within the probe timeout (in fact within the answer budget): a
    /// request that finds the cache expired waits for the refresh at most
    /// that long, then gets the cached result, while the refresh goes on.
    /// The answers match the README once the last result from before the
    /// outage has expired.
    #[test]
    fn the_health_answer_comes_within_its_timeout_while_the_database_hangs() {
        let rt = LocalRuntime::new();
        let clock: Arc<dyn Clock> = Arc::new(rt.clock());
        let spawner: Arc<dyn Spawner> = Arc::new(rt.spawner());
        let settings = HealthSettings::default();
        let store = OutageStore::new(clock.clone());
        let scheduler = scheduler_over(&rt, &store, true);
        let probes: Vec<Arc<dyn Probe>> = vec![
            Arc::new(ThroughStore { name: "database", critical: true, store: store.clone() }),
            Arc::new(
                SchedulerProbe::new(scheduler.clone(), Duration::from_secs(60))
                    .shared(true)
                    .store_timeout(settings.probe_timeout)
                    .spawner(spawner.clone())
                    .watch_failures("database-backup"),
            ),
            Arc::new(ThroughStore { name: "auth", critical: false, store: store.clone() }),
        ];
        let checker =
            HealthChecker::in_background(probes, clock.clone(), settings, Vec::new(), spawner);
        // The server refreshes once before it listens.
        assert_eq!(rt.block_on(checker.refresh()).status, HealthStatus::Healthy);

        let start = clock.now();
        let outage = (start + chrono::Duration::seconds(2), start + chrono::Duration::seconds(12));
        let settled =
            outage.0 + chrono::Duration::from_std(settings.ttl + settings.probe_timeout).unwrap();
        let mut answers = Vec::new();
        while clock.now() < start + chrono::Duration::seconds(18) {
            let asked = clock.now();
            if asked >= outage.1 {
                store.set(Outage::Up);
            } else if asked >= outage.0 {
                store.set(Outage::Hanging);
            }
            let snap = rt.block_on(checker.check());
            let took = crate::probe::std_dur(asked, clock.now());
            assert!(
                took < settings.probe_timeout,
                "the answer asked {:?} after the start took {took:?}",
                crate::probe::std_dur(start, asked)
            );
            answers.push((asked, took, snap));
            rt.run_until(asked + chrono::Duration::milliseconds(250));
        }
        let during: Vec<_> = answers.iter().filter(|a| a.0 >= settled && a.0 < outage.1).collect();
        assert!(during.len() >= 20, "{}", during.len());
        for (asked, _, snap) in during {
            let at = crate::probe::std_dur(outage.0, *asked);
            let status = |name| snap.check(name).map(|r| r.status);
            assert_eq!(snap.status, HealthStatus::Unhealthy, "{at:?} in: {snap:?}");
            assert_eq!(status("database"), Some(HealthStatus::Unhealthy), "{at:?} in");
            assert_eq!(status("scheduler"), Some(HealthStatus::Degraded), "{at:?} in: {snap:?}");
        }
        let waited = answers.iter().map(|a| a.1).max().unwrap();
        assert!(waited <= settings.answer_budget(), "{waited:?}");
        assert!(waited > Duration::ZERO, "some answers waited for a refresh");
        let (_, _, last) = answers.last().unwrap();
        assert_eq!(last.status, HealthStatus::Healthy, "after the outage: {last:?}");
        // The hung probes were cut: one refresh per TTL, not one per request.
        assert!(checker.refreshes() <= 1 + 18 / 2, "{}", checker.refreshes());
    }

    /// The watched job's rows are read off the check: a check starts a read
    /// and answers at once with the verdict it has; a read that hangs is
    /// given up at the store timeout, and no second read starts while one
    /// is under way.
    #[test]
    fn a_watched_job_is_read_in_the_background_and_a_hung_read_is_given_up() {
        let rt = LocalRuntime::new();
        let clock: Arc<dyn Clock> = Arc::new(rt.clock());
        let store = OutageStore::new(clock.clone());
        let scheduler = scheduler_over(&rt, &store, true);
        let probe = SchedulerProbe::new(scheduler.clone(), Duration::from_secs(60))
            .shared(true)
            .store_timeout(Duration::from_secs(1))
            .spawner(Arc::new(rt.spawner()))
            .watch_failures("database-backup");
        rt.block_on(probe.read_store());
        assert_eq!(store.reads.load(Ordering::SeqCst), 1);

        store.set(Outage::Hanging);
        let asked = clock.now();
        for _ in 0..4 {
            assert_eq!(rt.block_on(probe.check()).status, HealthStatus::Healthy);
            rt.advance(Duration::from_millis(200));
        }
        assert_eq!(crate::probe::std_dur(asked, clock.now()), Duration::from_millis(800));
        assert_eq!(store.reads.load(Ordering::SeqCst), 2, "one read at a time");
        assert_eq!(store.reading.load(Ordering::SeqCst), 1);
        rt.advance(Duration::from_millis(250));
        assert_eq!(store.reading.load(Ordering::SeqCst), 0, "given up at the store timeout");
        rt.block_on(probe.check());
        rt.advance(Duration::from_millis(100));
        assert_eq!(store.reads.load(Ordering::SeqCst), 3, "the next check reads again");
        store.set(Outage::Up);
        rt.advance(Duration::from_secs(2));
        assert_eq!(store.reading.load(Ordering::SeqCst), 0);
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
