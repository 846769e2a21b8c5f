//! The options of the seven built-in jobs: one [`JobOptions`] type per job,
//! with its keys (and how each is read from the environment), defaults and
//! checks. Which section each belongs to is in the table of jobs
//! (`ops/defs.rs`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::EnvKind;
use super::de;
use super::jobs::JobOptions;

/// `[jobs.history-retention]` options.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionOptions {
    /// Finished runs older than this are deleted (`keep`, default `30d`).
    #[serde(deserialize_with = "de::duration")]
    pub keep: Duration,
    /// Failed runs are kept this long instead (`keep_failures`, default `90d`).
    #[serde(deserialize_with = "de::duration")]
    pub keep_failures: Duration,
    /// Hourly metric rows older than this are deleted (`keep_metrics`, default `400d`).
    #[serde(deserialize_with = "de::duration")]
    pub keep_metrics: Duration,
}

impl Default for RetentionOptions {
    fn default() -> Self {
        RetentionOptions {
            keep: Duration::from_secs(30 * 86_400),
            keep_failures: Duration::from_secs(90 * 86_400),
            keep_metrics: Duration::from_secs(400 * 86_400),
        }
    }
}

impl JobOptions for RetentionOptions {
    const KEYS: &'static [(&'static str, EnvKind)] =
        &[("keep", EnvKind::Str), ("keep_failures", EnvKind::Str), ("keep_metrics", EnvKind::Str)];
}

/// `[jobs.database-backup]` options.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupOptions {
    /// How many backups to keep (`keep`, default 7).
    pub keep: usize,
    /// Whether each backup is opened and checked (`verify`, default true).
    pub verify: bool,
    /// The `pg_dump` program for Postgres (`pg_dump`, default `pg_dump` on PATH).
    pub pg_dump: String,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions { keep: 7, verify: true, pg_dump: "pg_dump".to_owned() }
    }
}

impl JobOptions for BackupOptions {
    const KEYS: &'static [(&'static str, EnvKind)] =
        &[("keep", EnvKind::Int), ("verify", EnvKind::Bool), ("pg_dump", EnvKind::Str)];

    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.keep == 0 {
            return Err(("keep", "must be at least 1".to_owned()));
        }
        Ok(())
    }
}

/// `[jobs.log-rotation]` options.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogRotationOptions {
    /// Rotate a log once it is this large (`max_size`, default `10MiB`).
    #[serde(deserialize_with = "de::bytes")]
    pub max_size: u64,
    /// Rotate a non-empty log once its current segment is this old (`max_age`, default `1d`).
    #[serde(deserialize_with = "de::duration")]
    pub max_age: Duration,
    /// Rotated files to keep per log (`keep`, default 10).
    pub keep: usize,
    /// Whether rotated files are gzipped (`compress`, default true).
    pub compress: bool,
}

impl Default for LogRotationOptions {
    fn default() -> Self {
        LogRotationOptions {
            max_size: 10 * 1024 * 1024,
            max_age: Duration::from_secs(86_400),
            keep: 10,
            compress: true,
        }
    }
}

impl JobOptions for LogRotationOptions {
    const KEYS: &'static [(&'static str, EnvKind)] = &[
        ("max_size", EnvKind::Bytes),
        ("max_age", EnvKind::Str),
        ("keep", EnvKind::Int),
        ("compress", EnvKind::Bool),
    ];

    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.keep == 0 {
            return Err(("keep", "must be at least 1".to_owned()));
        }
        if self.max_size == 0 {
            return Err(("max_size", "must be greater than zero".to_owned()));
        }
        Ok(())
    }
}

/// `[jobs.temp-cleanup]` options.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleanupOptions {
    /// Directories to clean (`dirs`, default `data_dir/tmp` and `data_dir/cache`).
    pub dirs: Option<Vec<PathBuf>>,
    /// Files not modified for this long are deleted (`max_age`, default `7d`).
    #[serde(deserialize_with = "de::duration")]
    pub max_age: Duration,
    /// Whether emptied subdirectories are removed (`remove_empty_dirs`, default true).
    pub remove_empty_dirs: bool,
}

impl Default for CleanupOptions {
    fn default() -> Self {
        CleanupOptions {
            dirs: None,
            max_age: Duration::from_secs(7 * 86_400),
            remove_empty_dirs: true,
        }
    }
}

impl JobOptions for CleanupOptions {
    const KEYS: &'static [(&'static str, EnvKind)] =
        &[("dirs", EnvKind::List), ("max_age", EnvKind::Str), ("remove_empty_dirs", EnvKind::Bool)];
}

/// `[jobs.security-scan]` options.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityOptions {
    /// The shortest acceptable admin token (`min_token_length`, default 32).
    pub min_token_length: usize,
    /// More secret files to check (`extra_paths`).
    pub extra_paths: Vec<PathBuf>,
}

impl Default for SecurityOptions {
    fn default() -> Self {
        SecurityOptions { min_token_length: 32, extra_paths: Vec::new() }
    }
}

impl JobOptions for SecurityOptions {
    const KEYS: &'static [(&'static str, EnvKind)] =
        &[("min_token_length", EnvKind::Int), ("extra_paths", EnvKind::List)];
}

/// `[jobs.metrics-aggregation]` options.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregationOptions {
    /// How far back each run recomputes hours (`lookback`, default `48h`).
    #[serde(deserialize_with = "de::duration")]
    pub lookback: Duration,
}

impl Default for AggregationOptions {
    fn default() -> Self {
        AggregationOptions { lookback: Duration::from_secs(48 * 3600) }
    }
}

impl JobOptions for AggregationOptions {
    const KEYS: &'static [(&'static str, EnvKind)] = &[("lookback", EnvKind::Str)];

    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.lookback < Duration::from_secs(3600) {
            return Err(("lookback", "must be at least 1h".to_owned()));
        }
        Ok(())
    }
}

/// `[jobs.health-snapshot]` options.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotOptions {
    /// Whether the run fails while the health is unhealthy (`fail_when_unhealthy`, default true).
    pub fail_when_unhealthy: bool,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions { fail_when_unhealthy: true }
    }
}

impl JobOptions for SnapshotOptions {
    const KEYS: &'static [(&'static str, EnvKind)] = &[("fail_when_unhealthy", EnvKind::Bool)];
}
