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
//! | file | role |
//! |---|---|
//! | `mod.rs` | [`HealthChecker`]: runs the probes, caches, single flight |
//! | `probes.rs` | the [`StorageProbe`] and the [`AuthProbe`] |
//! | `scheduler.rs` | the [`SchedulerProbe`] |
//! | `tests.rs` | the tests of all three |
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::probe::{HealthStatus, Probe, ProbeReport};
use crate::probe::{NamedReport, after, check_all};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use futures::future::{Either, select};
use mscribe_scheduler::{Clock, Spawner};
use serde_json::{Map, Value, json};

mod probes;
mod scheduler;
#[cfg(test)]
mod tests;

pub use probes::{AuthProbe, StorageProbe};
pub use scheduler::SchedulerProbe;

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
