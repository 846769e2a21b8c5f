//! `mscribe health`: a running server's `/health-check`, or, when none
//! answers (and no `--url` was given), the database and storage checked
//! directly. Exits 0 healthy, 1 degraded, 2 unhealthy.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mscribe_scheduler::SystemClock;
use serde_json::Value;

use super::{Cli, load, out};
use crate::config::Config;
use crate::db::Database;
use crate::health::{HealthSnapshot, StorageProbe};
use crate::http_client::{parse_http_url, request};
use crate::probe::{HealthStatus, Probe, check_all};

fn exit_for(status: HealthStatus) -> ExitCode {
    match status {
        HealthStatus::Healthy => ExitCode::SUCCESS,
        HealthStatus::Degraded => ExitCode::from(1),
        HealthStatus::Unhealthy => ExitCode::from(2),
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("mscribe: error: {msg}");
    ExitCode::from(2)
}

pub(super) async fn health(cli: &Cli, url: Option<&str>) -> ExitCode {
    let cfg = match load(cli) {
        Ok(c) => c,
        Err(e) => return e.report(),
    };
    crate::logging::init("warn", None);
    let explicit = url.is_some();
    let url = match url {
        Some(u) => u.to_owned(),
        None => {
            let mut addr = cfg.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}/health-check")
        }
    };
    let mut parsed = match parse_http_url(&url) {
        Ok(u) => u,
        Err(e) => return fail(e),
    };
    if parsed.path() == "/" {
        parsed.set_path("/health-check");
    }
    // The token, if one is known (never generated here).
    let token =
        cfg.admin_token.as_ref().map(|t| t.expose().to_owned()).or_else(|| {
            std::fs::read_to_string(cfg.token_file()).ok().map(|t| t.trim().to_owned())
        });
    let auth = token.as_ref().map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    match request(
        "GET",
        &parsed,
        &headers,
        cfg.health.probe_timeout.saturating_mul(5).saturating_add(Duration::from_secs(1)),
    )
    .await
    {
        Ok(resp) => {
            let body: Value = match serde_json::from_slice(&resp.body) {
                Ok(v) => v,
                Err(_) => {
                    eprintln!(
                        "mscribe: {parsed} answered {} with a body that is not JSON",
                        resp.status
                    );
                    return ExitCode::from(2);
                }
            };
            out!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
            let status: Option<HealthStatus> = serde_json::from_value(body["status"].clone()).ok();
            exit_for(status.unwrap_or(HealthStatus::Unhealthy))
        }
        Err(e) if !explicit => {
            eprintln!(
                "mscribe: no server answered at {parsed} ({e}); checking the database and storage directly"
            );
            local_health(&cfg).await
        }
        Err(e) => {
            eprintln!("mscribe: {e}");
            ExitCode::from(2)
        }
    }
}

async fn local_health(cfg: &Config) -> ExitCode {
    let h = &cfg.health;
    let mut probes: Vec<Arc<dyn Probe>> = vec![Arc::new(StorageProbe::new(
        cfg.storage_paths(),
        h.min_free_bytes,
        h.min_free_percent,
    ))];
    let db = match tokio::time::timeout(
        h.probe_timeout.saturating_mul(5),
        Database::open(&cfg.database_url),
    )
    .await
    {
        Ok(Ok(db)) => {
            probes.insert(0, db.probe(h.probe_timeout));
            Some(db)
        }
        Ok(Err(e)) => {
            probes.insert(0, Arc::new(FailedProbe(e.to_string())));
            None
        }
        Err(_) => {
            probes.insert(
                0,
                Arc::new(FailedProbe(format!(
                    "no answer within {:?}",
                    h.probe_timeout.saturating_mul(5)
                ))),
            );
            None
        }
    };
    let (status, checks) =
        check_all(&probes, &SystemClock, h.probe_timeout, h.slow_threshold).await;
    let snap = HealthSnapshot { status, checked_at: Utc::now(), checks };
    out!("{}", serde_json::to_string_pretty(&snap.body(true)).unwrap_or_default());
    if let Some(db) = db {
        db.close().await;
    }
    exit_for(status)
}

/// A database probe that failed before it could run (the open failed).
#[derive(Debug)]
struct FailedProbe(String);

#[async_trait::async_trait]
impl Probe for FailedProbe {
    fn name(&self) -> &str {
        "database"
    }

    async fn check(&self) -> crate::probe::ProbeReport {
        crate::probe::ProbeReport::unhealthy(Duration::ZERO, self.0.clone())
    }
}
