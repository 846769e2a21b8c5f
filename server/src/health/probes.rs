//! The `storage` and `auth` probes of the health check.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::probe::{Probe, ProbeReport};
use async_trait::async_trait;

use crate::http_client::{Url, request};

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
        // The report is shown and logged: a secret query parameter is not.
        let shown = || crate::config::redact_url(self.url.as_str());
        match request("GET", &self.url, &[], self.timeout).await {
            Ok(r) if (200..300).contains(&r.status) => ProbeReport::healthy(start.elapsed()),
            Ok(r) => ProbeReport::unhealthy(
                start.elapsed(),
                format!("auth service {} answered {}", shown(), r.status),
            ),
            Err(e) => {
                ProbeReport::unhealthy(start.elapsed(), format!("auth service {}: {e}", shown()))
            }
        }
    }
}
