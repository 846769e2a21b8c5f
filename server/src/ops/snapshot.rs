//! `health-snapshot`: runs the probes and records the result.

use std::sync::{Arc, Mutex};

use crate::probe::HealthStatus;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{OpsJob, OpsOutcome};
use crate::health::HealthChecker;

/// Runs the health probes afresh (joining a check already under way) and
/// records the full result, messages included, as the run's data. When the
/// status turns unhealthy it logs an alert line at error level (once per
/// transition); with `fail_when_unhealthy` the run then fails, so the
/// history shows it.
#[derive(Debug)]
pub struct HealthSnapshotJob {
    checker: Arc<HealthChecker>,
    fail_when_unhealthy: bool,
    last: Mutex<Option<HealthStatus>>,
}

impl HealthSnapshotJob {
    /// A snapshot of `checker`'s probes.
    pub fn new(checker: Arc<HealthChecker>, fail_when_unhealthy: bool) -> Self {
        HealthSnapshotJob { checker, fail_when_unhealthy, last: Mutex::new(None) }
    }
}

#[async_trait]
impl OpsJob for HealthSnapshotJob {
    async fn run_at(&self, _now: DateTime<Utc>) -> OpsOutcome {
        let snap = self.checker.refresh().await;
        let previous = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(snap.status);
        let failing: Vec<String> = snap
            .checks
            .iter()
            .filter(|c| c.report.status != HealthStatus::Healthy)
            .map(|c| match &c.report.message {
                Some(m) => format!("{} {}: {m}", c.name, c.report.status),
                None => format!("{} {}", c.name, c.report.status),
            })
            .collect();
        match snap.status {
            HealthStatus::Unhealthy if previous != Some(HealthStatus::Unhealthy) => {
                tracing::error!(alert = "health_unhealthy", checks = %failing.join("; "), "ALERT: health turned unhealthy");
            }
            HealthStatus::Healthy if previous.is_some_and(|p| p != HealthStatus::Healthy) => {
                tracing::info!("health recovered");
            }
            _ => {}
        }
        let data = snap.body(true);
        let out = if snap.status == HealthStatus::Unhealthy && self.fail_when_unhealthy {
            OpsOutcome::failed(data, format!("health is unhealthy: {}", failing.join("; ")))
        } else {
            OpsOutcome::ok(data)
        };
        let code = match snap.status {
            HealthStatus::Healthy => 0.0,
            HealthStatus::Degraded => 1.0,
            HealthStatus::Unhealthy => 2.0,
        };
        out.metric("status", code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthSettings;
    use crate::probe::ScriptedProbe;
    use crate::probe::{Probe, ProbeReport};
    use mscribe_scheduler::LocalRuntime;
    use std::time::Duration;

    #[test]
    fn records_every_check_and_fails_while_unhealthy() {
        let rt = LocalRuntime::new();
        let db = Arc::new(ScriptedProbe::new(
            "database",
            true,
            ProbeReport::healthy(Duration::from_millis(2)),
        ));
        let probes: Vec<Arc<dyn Probe>> = vec![db.clone()];
        let checker = HealthChecker::new(probes, Arc::new(rt.clock()), HealthSettings::default());
        let job = HealthSnapshotJob::new(checker.clone(), true);
        let out = rt.block_on(job.run_at(Utc::now()));
        assert_eq!(out.error, None);
        assert_eq!(out.data["status"], "healthy");
        assert_eq!(out.data["checks"]["database"]["latency_ms"], 2);
        db.push(ProbeReport::unhealthy(Duration::ZERO, "connection refused"));
        let out = rt.block_on(job.run_at(Utc::now()));
        assert_eq!(
            out.error.as_deref(),
            Some("health is unhealthy: database unhealthy: connection refused")
        );
        assert_eq!(out.data["checks"]["database"]["message"], "connection refused");
        // Each run probes afresh, whatever the cache's TTL.
        assert_eq!(checker.refreshes(), 2);
    }
}
