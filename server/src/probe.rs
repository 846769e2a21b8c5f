//! Health probes: the [`Probe`] trait, a scripted probe for tests, and
//! [`check_all`], which runs probes concurrently, each under a timeout, on
//! the engine's [`Clock`].

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::{Either, join_all, select};
use serde::{Deserialize, Serialize};

use mscribe_scheduler::Clock;

/// `t + d`, saturating at the last instant chrono holds.
pub(crate) fn after(
    t: chrono::DateTime<chrono::Utc>,
    d: Duration,
) -> chrono::DateTime<chrono::Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// The time from `from` to `to`, zero when `to` is not later.
pub(crate) fn std_dur(
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

/// The health of one probe, or of the whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Working normally.
    Healthy,
    /// Working, but slow or impaired.
    Degraded,
    /// Not working.
    Unhealthy,
}

impl HealthStatus {
    /// The lowercase name used in JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The verdict.
    pub status: HealthStatus,
    /// How long the check took.
    pub latency: Duration,
    /// Details: an error, a hostname. Shown only to an admin.
    pub message: Option<String>,
}

impl ProbeReport {
    /// A healthy report.
    pub fn healthy(latency: Duration) -> Self {
        ProbeReport { status: HealthStatus::Healthy, latency, message: None }
    }

    /// An unhealthy report with a reason.
    pub fn unhealthy(latency: Duration, message: impl Into<String>) -> Self {
        ProbeReport { status: HealthStatus::Unhealthy, latency, message: Some(message.into()) }
    }

    /// A degraded report with a reason.
    pub fn degraded(latency: Duration, message: impl Into<String>) -> Self {
        ProbeReport { status: HealthStatus::Degraded, latency, message: Some(message.into()) }
    }
}

/// One named health check.
#[async_trait]
pub trait Probe: Send + Sync + fmt::Debug + 'static {
    /// The name under `checks` in the health body.
    fn name(&self) -> &str;

    /// Whether failing makes the whole `unhealthy` (else `degraded`).
    fn critical(&self) -> bool {
        true
    }

    /// Runs the check once.
    async fn check(&self) -> ProbeReport;
}

/// A probe that answers from a script, for tests: each check pops the next
/// report; when the script is empty it repeats the last one.
#[derive(Debug)]
pub struct ScriptedProbe {
    name: String,
    critical: bool,
    script: Mutex<(VecDeque<ProbeReport>, ProbeReport)>,
    delay: Option<(std::sync::Arc<dyn Clock>, Duration)>,
}

impl ScriptedProbe {
    /// A probe that reports `first`, then whatever is pushed.
    pub fn new(name: impl Into<String>, critical: bool, first: ProbeReport) -> Self {
        ScriptedProbe {
            name: name.into(),
            critical,
            script: Mutex::new((VecDeque::new(), first)),
            delay: None,
        }
    }

    /// Makes each check take `d` on `clock` (to test timeouts).
    pub fn with_delay(mut self, clock: std::sync::Arc<dyn Clock>, d: Duration) -> Self {
        self.delay = Some((clock, d));
        self
    }

    /// Queues the next report.
    pub fn push(&self, r: ProbeReport) {
        self.script.lock().expect("probe lock").0.push_back(r);
    }
}

#[async_trait]
impl Probe for ScriptedProbe {
    fn name(&self) -> &str {
        &self.name
    }

    fn critical(&self) -> bool {
        self.critical
    }

    async fn check(&self) -> ProbeReport {
        if let Some((clock, d)) = &self.delay {
            clock.sleep_until(after(clock.now(), *d)).await;
        }
        let mut g = self.script.lock().expect("probe lock");
        if let Some(next) = g.0.pop_front() {
            g.1 = next;
        }
        g.1.clone()
    }
}

/// One probe's result within [`check_all`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedReport {
    /// The probe's name.
    pub name: String,
    /// Whether it is critical.
    pub critical: bool,
    /// What it found.
    pub report: ProbeReport,
}

/// Runs every probe concurrently, each cut off at `timeout` (then reported
/// unhealthy, "timed out after ..."), and returns the reports in the order
/// given and the overall status: unhealthy if a critical probe is unhealthy;
/// degraded if any probe is degraded, a non-critical one is unhealthy, or a
/// probe took longer than `slow`.
pub async fn check_all(
    probes: &[std::sync::Arc<dyn Probe>],
    clock: &dyn Clock,
    timeout: Duration,
    slow: Duration,
) -> (HealthStatus, Vec<NamedReport>) {
    let checks = probes.iter().map(|p| async move {
        let start = clock.now();
        let deadline = after(start, timeout);
        let report = match select(p.check(), clock.sleep_until(deadline)).await {
            Either::Left((mut r, _)) => {
                r.latency = std_dur(start, clock.now()).max(r.latency);
                r
            }
            Either::Right(_) => {
                ProbeReport::unhealthy(timeout, format!("timed out after {timeout:?}"))
            }
        };
        NamedReport { name: p.name().to_owned(), critical: p.critical(), report }
    });
    let reports = join_all(checks).await;
    let mut overall = HealthStatus::Healthy;
    for r in &reports {
        let s = match (r.report.status, r.critical) {
            (HealthStatus::Unhealthy, true) => HealthStatus::Unhealthy,
            (HealthStatus::Unhealthy, false) | (HealthStatus::Degraded, _) => {
                HealthStatus::Degraded
            }
            (HealthStatus::Healthy, _) if r.report.latency > slow => HealthStatus::Degraded,
            (HealthStatus::Healthy, _) => HealthStatus::Healthy,
        };
        overall = overall.max(s);
    }
    (overall, reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mscribe_scheduler::LocalRuntime;
    use std::sync::Arc;

    #[test]
    fn aggregation_and_timeouts() {
        let rt = LocalRuntime::new();
        let clock: Arc<dyn Clock> = Arc::new(rt.clock());
        let db: Arc<dyn Probe> =
            Arc::new(ScriptedProbe::new("database", true, ProbeReport::healthy(Duration::ZERO)));
        let slow_auth: Arc<dyn Probe> = Arc::new(
            ScriptedProbe::new("auth", false, ProbeReport::healthy(Duration::ZERO))
                .with_delay(clock.clone(), Duration::from_secs(10)),
        );
        let (status, reports) = rt.block_on(check_all(
            &[db.clone(), slow_auth],
            &*clock,
            Duration::from_secs(2),
            Duration::from_secs(1),
        ));
        assert_eq!(status, HealthStatus::Degraded);
        assert_eq!(reports[1].report.status, HealthStatus::Unhealthy);
        assert_eq!(reports[1].report.message.as_deref(), Some("timed out after 2s"));
        let (status, _) =
            rt.block_on(check_all(&[db], &*clock, Duration::from_secs(2), Duration::from_secs(1)));
        assert_eq!(status, HealthStatus::Healthy);
    }

    #[test]
    fn a_timeout_or_slowness_at_the_edges_of_duration_never_panics() {
        let edges =
            [Duration::ZERO, Duration::from_nanos(1), Duration::from_secs(u64::MAX), Duration::MAX];
        for d in edges {
            let rt = LocalRuntime::new();
            let clock: Arc<dyn Clock> = Arc::new(rt.clock());
            let probe: Arc<dyn Probe> = Arc::new(
                ScriptedProbe::new("db", true, ProbeReport::healthy(Duration::ZERO))
                    .with_delay(clock.clone(), Duration::from_secs(1)),
            );
            let (_, reports) = rt.block_on(check_all(&[probe], &*clock, d, d));
            assert_eq!(reports.len(), 1, "{d:?}");
        }
    }
}
