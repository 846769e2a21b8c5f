//! The server's configuration: a TOML file, every key overridable from the
//! environment, defaults that need no setup at all.
//!
//! Loading goes in three steps, so an error says where the bad value came
//! from:
//!
//! 1. the file is parsed as TOML (a syntax error names the file and line);
//! 2. it is deserialized alone, with unknown keys refused
//!    (`deny_unknown_fields`): an error names the file and the key;
//! 3. environment overrides (`MSCRIBE_<KEY>`, see [`env_keys`]) are merged
//!    in and the result deserialized again: an error now names the
//!    environment variable.
//!
//! Values are then checked (schedules parse, the listen address is a socket
//! address, ...), again naming the key and where it came from.
//!
//! ```
//! use mscribe_server::config::Config;
//!
//! let cfg = Config::from_toml_str(
//!     "listen = \"0.0.0.0:9000\"\n[jobs.database-backup]\nkeep = 3\n",
//!     "inline.toml",
//!     |name| (name == "MSCRIBE_HEALTH_TTL").then(|| "5s".to_owned()),
//! )?;
//! assert_eq!(cfg.listen.port(), 9000);
//! assert_eq!(cfg.jobs.database_backup.options.keep, 3);
//! assert_eq!(cfg.health.ttl, std::time::Duration::from_secs(5));
//! # Ok::<(), mscribe_server::config::ConfigError>(())
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mscribe_scheduler::{Jitter, MisfireMode, MisfirePolicy, OverlapPolicy, RetryPolicy, Schedule};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "mscribe.toml";

/// The environment variable naming the config file (like `--config`).
pub const CONFIG_ENV: &str = "MSCRIBE_CONFIG";

/// The prefix of every environment override.
pub const ENV_PREFIX: &str = "MSCRIBE_";

/// Why the configuration could not be loaded. The message names the file or
/// environment variable, the key and the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key is unknown or its value is wrong.
    #[error("invalid config: key `{key}` in {origin}: {reason}")]
    Invalid {
        /// Where the value came from: `file mscribe.toml`, `environment variable MSCRIBE_LISTEN`.
        origin: String,
        /// The dotted key, e.g. `jobs.database-backup.keep`.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// A secret string whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(*** {} chars)", self.0.chars().count())
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The HTTP listen address (`listen`, default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// `sqlite://PATH`, `sqlite::memory:` or `postgres://...` (`database_url`,
    /// default `sqlite://./mscribe.db`).
    pub database_url: String,
    /// The bearer token of the jobs API and of health details
    /// (`admin_token`); when unset, one is generated into
    /// `data_dir/admin_token`.
    pub admin_token: Option<Secret>,
    /// Where the server keeps its own files (`data_dir`, default `./data`).
    pub data_dir: PathBuf,
    /// Where the server writes `mscribe.log` and log rotation works
    /// (`log_dir`, default `./logs`).
    pub log_dir: PathBuf,
    /// Where database backups go (`backup_dir`, default `./backups`).
    pub backup_dir: PathBuf,
    /// How long shutdown waits for running jobs (`shutdown_grace`, default `30s`).
    #[serde(deserialize_with = "de::duration")]
    pub shutdown_grace: Duration,
    /// The largest request body accepted (`max_body_bytes`, default `64KiB`).
    #[serde(deserialize_with = "de::bytes")]
    pub max_body_bytes: u64,
    /// The log filter, e.g. `info` or `info,mscribe_server=debug` (`log_level`).
    pub log_level: String,
    /// Whether logs are also written to `log_dir/mscribe.log` (`log_to_file`, default true).
    pub log_to_file: bool,
    /// Whether scheduled fires are claimed in the database before they run,
    /// for several servers on one database (`claim_fires`, default false;
    /// see `SchedulerBuilder::claim_fires`).
    pub claim_fires: bool,
    /// The health check (`[health]`).
    pub health: HealthConfig,
    /// The seven operational jobs (`[jobs.<id>]`).
    pub jobs: JobsConfig,
    /// The file this was read from, if any.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// `MSCRIBE_*` environment variables that are not config keys (a typo,
    /// most likely); logged as warnings once logging is up.
    #[serde(skip)]
    pub unknown_env: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://./mscribe.db".to_owned(),
            admin_token: None,
            data_dir: PathBuf::from("./data"),
            log_dir: PathBuf::from("./logs"),
            backup_dir: PathBuf::from("./backups"),
            shutdown_grace: Duration::from_secs(30),
            max_body_bytes: 64 * 1024,
            log_level: "info".to_owned(),
            log_to_file: true,
            claim_fires: false,
            health: HealthConfig::default(),
            jobs: JobsConfig::default(),
            source: None,
            unknown_env: Vec::new(),
        }
    }
}

/// `[health]`: the health check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// How long a health result is reused (`ttl`, default `2s`).
    #[serde(deserialize_with = "de::duration")]
    pub ttl: Duration,
    /// The timeout of each probe (`probe_timeout`, default `1s`).
    #[serde(deserialize_with = "de::duration")]
    pub probe_timeout: Duration,
    /// A healthy probe slower than this makes the whole `degraded`
    /// (`slow_threshold`, default `500ms`).
    #[serde(deserialize_with = "de::duration")]
    pub slow_threshold: Duration,
    /// An HTTP URL answering 2xx when the auth service is up (`auth_url`);
    /// no auth probe when unset.
    pub auth_url: Option<String>,
    /// Directories that must exist, be writable and have free space
    /// (`storage_paths`, default `data_dir`, `log_dir` and `backup_dir`).
    pub storage_paths: Option<Vec<PathBuf>>,
    /// Free bytes required on each storage path (`min_free_bytes`, default `100MiB`).
    #[serde(deserialize_with = "de::bytes")]
    pub min_free_bytes: u64,
    /// Free space required on each storage path, in percent of its file
    /// system (`min_free_percent`, default 1).
    pub min_free_percent: f64,
    /// The scheduler counts as degraded when its earliest due fire is later
    /// than this (`max_overdue`, default `60s`).
    #[serde(deserialize_with = "de::duration")]
    pub max_overdue: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            ttl: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(1),
            slow_threshold: Duration::from_millis(500),
            auth_url: None,
            storage_paths: None,
            min_free_bytes: 100 * 1024 * 1024,
            min_free_percent: 1.0,
            max_overdue: Duration::from_secs(60),
        }
    }
}

/// `retry = { ... }` of a job.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts in all, the first included (`attempts`, 1 = no retry).
    pub attempts: u32,
    /// The delay after the first failure (`initial_delay`).
    #[serde(deserialize_with = "de::duration")]
    pub initial_delay: Duration,
    /// The growth of the delay per failure (`multiplier`).
    pub multiplier: f64,
    /// The cap on the delay (`max_delay`).
    #[serde(deserialize_with = "de::duration")]
    pub max_delay: Duration,
    /// `none`, `full` or `equal` (`jitter`).
    pub jitter: Jitter,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig::from_policy(&RetryPolicy::none())
    }
}

impl RetryConfig {
    fn from_policy(p: &RetryPolicy) -> Self {
        RetryConfig {
            attempts: p.max_attempts,
            initial_delay: p.initial_delay,
            multiplier: p.multiplier,
            max_delay: p.max_delay,
            jitter: p.jitter,
        }
    }

    /// The engine's policy.
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy::exponential(self.attempts)
            .initial_delay(self.initial_delay)
            .multiplier(self.multiplier)
            .max_delay(self.max_delay)
            .jitter(self.jitter)
    }
}

/// The misfire mode's name in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MisfireModeName {
    /// Skip missed fires.
    Skip,
    /// Run once for the latest missed fire.
    RunOnce,
    /// Run missed fires within `window`, at most `max_runs`.
    RunAll,
}

/// `misfire = { ... }` of a job.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MisfireConfig {
    /// `skip`, `run_once` (default) or `run_all` (`mode`).
    pub mode: MisfireModeName,
    /// How late a fire may be and still run normally (`grace`, default `1m`).
    #[serde(deserialize_with = "de::duration")]
    pub grace: Duration,
    /// For `run_all`: how far back missed fires run (`window`, default `1d`).
    #[serde(deserialize_with = "de::duration")]
    pub window: Duration,
    /// For `run_all`: how many missed fires run (`max_runs`, default 3).
    pub max_runs: u32,
    /// Whether fires missed while paused are replayed on resume (`replay_paused`).
    pub replay_paused: bool,
}

impl Default for MisfireConfig {
    fn default() -> Self {
        MisfireConfig {
            mode: MisfireModeName::RunOnce,
            grace: Duration::from_secs(60),
            window: Duration::from_secs(86_400),
            max_runs: 3,
            replay_paused: false,
        }
    }
}

impl MisfireConfig {
    /// The engine's policy.
    pub fn policy(&self) -> MisfirePolicy {
        let base = match self.mode {
            MisfireModeName::Skip => MisfirePolicy::skip(),
            MisfireModeName::RunOnce => MisfirePolicy::run_once(),
            MisfireModeName::RunAll => MisfirePolicy::run_all(self.window, self.max_runs),
        };
        base.grace(self.grace).replay_paused(self.replay_paused)
    }

    /// The mode as the engine names it.
    pub fn mode(&self) -> MisfireMode {
        self.policy().mode
    }
}

/// How an environment variable's text becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvKind {
    /// Taken as text.
    Str,
    /// An integer.
    Int,
    /// A number.
    Float,
    /// `true` or `false`.
    Bool,
    /// A comma-separated list of strings.
    List,
    /// An integer when all digits, else text such as `100MiB`.
    Bytes,
}

/// The per-job options of one operational job: its keys (for unknown-key
/// errors and environment overrides) and defaults.
pub trait JobOptions: DeserializeOwned + Default + Clone + fmt::Debug {
    /// The option keys and how each is read from the environment.
    const KEYS: &'static [(&'static str, EnvKind)];
}

/// The keys every job section has besides its options.
pub const COMMON_JOB_KEYS: &[(&str, EnvKind)] = &[
    ("schedule", EnvKind::Str),
    ("timezone", EnvKind::Str),
    ("timeout", EnvKind::Str),
    ("enabled", EnvKind::Bool),
    ("overlap", EnvKind::Str),
    ("retry.attempts", EnvKind::Int),
    ("retry.initial_delay", EnvKind::Str),
    ("retry.multiplier", EnvKind::Float),
    ("retry.max_delay", EnvKind::Str),
    ("retry.jitter", EnvKind::Str),
    ("misfire.mode", EnvKind::Str),
    ("misfire.grace", EnvKind::Str),
    ("misfire.window", EnvKind::Str),
    ("misfire.max_runs", EnvKind::Int),
    ("misfire.replay_paused", EnvKind::Bool),
];

/// One `[jobs.<id>]` section: scheduling settings common to every job plus
/// the job's own options.
#[derive(Debug, Clone)]
pub struct JobSection<O> {
    /// The schedule (`schedule`), as text for `Schedule::parse`: cron
    /// (`30 3 * * *`), `@daily`, `@every 5m`, `90s`, `500ms`. In the file,
    /// a TOML integer is milliseconds (`schedule = 60000`, as
    /// `JobConfig::schedule(60_000u64)`) and is kept as its interval's text
    /// (`@every 1m`); a bare number inside a string (`"60000"`) is refused
    /// as ambiguous, naming the key.
    pub schedule: String,
    /// An IANA zone for a cron schedule (`timezone`, default UTC).
    pub timezone: Option<String>,
    /// The per-attempt timeout (`timeout`).
    pub timeout: Duration,
    /// Whether the job is scheduled (`enabled`); a disabled job is
    /// registered paused, so it is listed and can be triggered or resumed.
    pub enabled: bool,
    /// `skip`, `queue`, `allow` or `replace` (`overlap`, default `skip`).
    pub overlap: OverlapPolicy,
    /// The retry policy (`retry`).
    pub retry: RetryConfig,
    /// The misfire policy (`misfire`).
    pub misfire: MisfireConfig,
    /// The job's own options.
    pub options: O,
}

impl<O: JobOptions> JobSection<O> {
    fn with_defaults(schedule: &str, timeout: Duration, retry: RetryPolicy) -> Self {
        JobSection {
            schedule: schedule.to_owned(),
            timezone: None,
            timeout,
            enabled: true,
            overlap: OverlapPolicy::Skip,
            retry: RetryConfig::from_policy(&retry),
            misfire: MisfireConfig::default(),
            options: O::default(),
        }
    }

    /// Every key of the section (common keys, then the options).
    pub fn keys() -> impl Iterator<Item = (&'static str, EnvKind)> {
        COMMON_JOB_KEYS.iter().chain(O::KEYS.iter()).copied()
    }

    /// Overlays the keys present in `table` on `self`. An error is
    /// `(key, reason)`, the key relative to the section.
    fn overlay(mut self, table: toml::Table) -> Result<Self, (String, String)> {
        let mut options = toml::Table::new();
        for (key, value) in table {
            let field = |e: toml::de::Error| (key.clone(), e.message().to_owned());
            match key.as_str() {
                "schedule" => self.schedule = de::schedule(value).map_err(field)?,
                "timezone" => self.timezone = Some(String::deserialize(value).map_err(field)?),
                "timeout" => self.timeout = de::duration(value).map_err(field)?,
                "enabled" => self.enabled = bool::deserialize(value).map_err(field)?,
                "overlap" => self.overlap = OverlapPolicy::deserialize(value).map_err(field)?,
                "retry" => self.retry = sub_table(&key, value)?,
                "misfire" => self.misfire = sub_table(&key, value)?,
                k if O::KEYS.iter().any(|(o, _)| o.split('.').next() == Some(k)) => {
                    options.insert(key, value);
                }
                _ => {
                    let mut names: Vec<&str> =
                        Self::keys().map(|(k, _)| k.split('.').next().unwrap_or(k)).collect();
                    names.dedup();
                    let expected =
                        names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
                    return Err((
                        key.clone(),
                        format!("unknown key `{key}`, expected one of {expected}"),
                    ));
                }
            }
        }
        if !options.is_empty() {
            self.options = sub_table("", toml::Value::Table(options))?;
        }
        Ok(self)
    }
}

/// Deserializes a table (keys not given take the type's defaults, as the
/// types have `#[serde(default)]`); an error names the key under `prefix`.
fn sub_table<T: DeserializeOwned>(prefix: &str, value: toml::Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().message().to_owned();
        let mut key = match (prefix, path.as_str()) {
            (p, ".") => p.to_owned(),
            ("", rest) => rest.to_owned(),
            (p, rest) => format!("{p}.{rest}"),
        };
        if let Some(field) = unknown_field(&message)
            && !key.ends_with(field)
        {
            key = if key.is_empty() { field.to_owned() } else { format!("{key}.{field}") };
        }
        (key, message)
    })
}

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

/// `[jobs]`: the seven operational jobs, by id.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// `[jobs.history-retention]`.
    pub history_retention: JobSection<RetentionOptions>,
    /// `[jobs.database-backup]`.
    pub database_backup: JobSection<BackupOptions>,
    /// `[jobs.log-rotation]`.
    pub log_rotation: JobSection<LogRotationOptions>,
    /// `[jobs.temp-cleanup]`.
    pub temp_cleanup: JobSection<CleanupOptions>,
    /// `[jobs.security-scan]`.
    pub security_scan: JobSection<SecurityOptions>,
    /// `[jobs.metrics-aggregation]`.
    pub metrics_aggregation: JobSection<AggregationOptions>,
    /// `[jobs.health-snapshot]`.
    pub health_snapshot: JobSection<SnapshotOptions>,
}

/// The seven job ids, in the order they are documented.
pub const JOB_IDS: [&str; 7] = [
    "history-retention",
    "database-backup",
    "log-rotation",
    "temp-cleanup",
    "security-scan",
    "metrics-aggregation",
    "health-snapshot",
];

impl Default for JobsConfig {
    fn default() -> Self {
        let min = |m: u64| Duration::from_secs(m * 60);
        JobsConfig {
            history_retention: JobSection::with_defaults(
                "30 3 * * *",
                min(10),
                RetryPolicy::none(),
            ),
            database_backup: JobSection::with_defaults(
                "0 2 * * *",
                min(30),
                RetryPolicy::exponential(3)
                    .initial_delay(Duration::from_secs(30))
                    .max_delay(min(10)),
            ),
            log_rotation: JobSection::with_defaults("0 * * * *", min(5), RetryPolicy::none()),
            temp_cleanup: JobSection::with_defaults("15 4 * * *", min(10), RetryPolicy::none()),
            security_scan: JobSection::with_defaults("0 6 * * *", min(2), RetryPolicy::none()),
            metrics_aggregation: JobSection::with_defaults(
                "5 * * * *",
                min(5),
                RetryPolicy::none(),
            ),
            health_snapshot: JobSection::with_defaults(
                "*/5 * * * *",
                Duration::from_secs(30),
                RetryPolicy::none(),
            ),
        }
    }
}

impl JobsConfig {
    /// The keys of the section of job `id`.
    pub fn keys_of(id: &str) -> Vec<(&'static str, EnvKind)> {
        match id {
            "history-retention" => JobSection::<RetentionOptions>::keys().collect(),
            "database-backup" => JobSection::<BackupOptions>::keys().collect(),
            "log-rotation" => JobSection::<LogRotationOptions>::keys().collect(),
            "temp-cleanup" => JobSection::<CleanupOptions>::keys().collect(),
            "security-scan" => JobSection::<SecurityOptions>::keys().collect(),
            "metrics-aggregation" => JobSection::<AggregationOptions>::keys().collect(),
            "health-snapshot" => JobSection::<SnapshotOptions>::keys().collect(),
            _ => Vec::new(),
        }
    }

    /// The scheduling settings of job `id`, without its options.
    pub fn common(&self, id: &str) -> Option<CommonSettings<'_>> {
        macro_rules! c {
            ($s:expr) => {
                Some(CommonSettings {
                    schedule: &$s.schedule,
                    timezone: $s.timezone.as_deref(),
                    timeout: $s.timeout,
                    enabled: $s.enabled,
                    overlap: $s.overlap,
                    retry: &$s.retry,
                    misfire: &$s.misfire,
                })
            };
        }
        match id {
            "history-retention" => c!(self.history_retention),
            "database-backup" => c!(self.database_backup),
            "log-rotation" => c!(self.log_rotation),
            "temp-cleanup" => c!(self.temp_cleanup),
            "security-scan" => c!(self.security_scan),
            "metrics-aggregation" => c!(self.metrics_aggregation),
            "health-snapshot" => c!(self.health_snapshot),
            _ => None,
        }
    }
}

/// The scheduling settings of one job section, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct CommonSettings<'a> {
    /// The schedule text.
    pub schedule: &'a str,
    /// The time zone.
    pub timezone: Option<&'a str>,
    /// The per-attempt timeout.
    pub timeout: Duration,
    /// Whether the job is scheduled.
    pub enabled: bool,
    /// The overlap policy.
    pub overlap: OverlapPolicy,
    /// The retry settings.
    pub retry: &'a RetryConfig,
    /// The misfire settings.
    pub misfire: &'a MisfireConfig,
}

impl<'a> CommonSettings<'a> {
    /// The schedule, parsed, with its time zone.
    pub fn parsed_schedule(&self) -> Result<Schedule, mscribe_scheduler::Error> {
        let s = Schedule::parse(self.schedule)?;
        match self.timezone {
            Some(tz) => s.with_timezone(tz),
            None => Ok(s),
        }
    }
}

impl<'de> Deserialize<'de> for JobsConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = toml::Table::deserialize(d)?;
        let mut jobs = JobsConfig::default();
        for (id, value) in table {
            let toml::Value::Table(t) = value else {
                return Err(D::Error::custom(format!(
                    "{id}: expected a table such as [jobs.{id}], got {}",
                    value.type_str()
                )));
            };
            let err =
                |(key, reason): (String, String)| D::Error::custom(format!("{id}.{key}: {reason}"));
            match id.as_str() {
                "history-retention" => {
                    jobs.history_retention = jobs.history_retention.overlay(t).map_err(err)?
                }
                "database-backup" => {
                    jobs.database_backup = jobs.database_backup.overlay(t).map_err(err)?
                }
                "log-rotation" => jobs.log_rotation = jobs.log_rotation.overlay(t).map_err(err)?,
                "temp-cleanup" => jobs.temp_cleanup = jobs.temp_cleanup.overlay(t).map_err(err)?,
                "security-scan" => {
                    jobs.security_scan = jobs.security_scan.overlay(t).map_err(err)?
                }
                "metrics-aggregation" => {
                    jobs.metrics_aggregation = jobs.metrics_aggregation.overlay(t).map_err(err)?
                }
                "health-snapshot" => {
                    jobs.health_snapshot = jobs.health_snapshot.overlay(t).map_err(err)?
                }
                other => {
                    return Err(D::Error::custom(format!(
                        "{other}: unknown job `{other}`, expected one of {}",
                        JOB_IDS.map(|j| format!("`{j}`")).join(", ")
                    )));
                }
            }
        }
        Ok(jobs)
    }
}

/// The top-level and `[health]` keys with their environment kinds.
const TOP_KEYS: &[(&str, EnvKind)] = &[
    ("listen", EnvKind::Str),
    ("database_url", EnvKind::Str),
    ("admin_token", EnvKind::Str),
    ("data_dir", EnvKind::Str),
    ("log_dir", EnvKind::Str),
    ("backup_dir", EnvKind::Str),
    ("shutdown_grace", EnvKind::Str),
    ("max_body_bytes", EnvKind::Bytes),
    ("log_level", EnvKind::Str),
    ("log_to_file", EnvKind::Bool),
    ("claim_fires", EnvKind::Bool),
    ("health.ttl", EnvKind::Str),
    ("health.probe_timeout", EnvKind::Str),
    ("health.slow_threshold", EnvKind::Str),
    ("health.auth_url", EnvKind::Str),
    ("health.storage_paths", EnvKind::List),
    ("health.min_free_bytes", EnvKind::Bytes),
    ("health.min_free_percent", EnvKind::Float),
    ("health.max_overdue", EnvKind::Str),
];

/// One overridable key: its dotted path, its environment variable and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvKey {
    /// The dotted key, e.g. `jobs.database-backup.keep`.
    pub path: String,
    /// The variable, e.g. `MSCRIBE_JOBS_DATABASE_BACKUP_KEEP`.
    pub var: String,
    /// How its text is read.
    pub kind: EnvKind,
}

/// The environment variable of a dotted key: `MSCRIBE_` + the key in upper
/// case with `.` and `-` as `_` (`health.ttl` is `MSCRIBE_HEALTH_TTL`).
pub fn env_var_of(path: &str) -> String {
    let mut s = String::from(ENV_PREFIX);
    s.extend(path.chars().map(|c| match c {
        '.' | '-' => '_',
        c => c.to_ascii_uppercase(),
    }));
    s
}

/// Every key that can be overridden from the environment.
pub fn env_keys() -> Vec<EnvKey> {
    let mut out: Vec<EnvKey> = TOP_KEYS
        .iter()
        .map(|(p, k)| EnvKey { path: (*p).to_owned(), var: env_var_of(p), kind: *k })
        .collect();
    for id in JOB_IDS {
        for (key, kind) in JobsConfig::keys_of(id) {
            let path = format!("jobs.{id}.{key}");
            out.push(EnvKey { var: env_var_of(&path), path, kind });
        }
    }
    out
}

/// Variables with the `MSCRIBE_` prefix that are not config keys but are
/// read elsewhere.
pub const OTHER_ENV_VARS: &[&str] = &[CONFIG_ENV, "MSCRIBE_LOG", "MSCRIBE_TEST_POSTGRES_URL"];

impl Config {
    /// Loads the configuration: `path` if given (it must exist), else
    /// `$MSCRIBE_CONFIG`, else `./mscribe.toml` if it exists, else defaults;
    /// then the environment overrides of the process.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let env = |name: &str| std::env::var(name).ok();
        let explicit = path.map(Path::to_path_buf).or_else(|| env(CONFIG_ENV).map(PathBuf::from));
        let file = match explicit {
            Some(p) => Some(p),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
        };
        let cfg = match &file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|source| ConfigError::Read { path: p.clone(), source })?;
                let mut cfg = Config::from_toml_str(&text, &p.display().to_string(), env)?;
                cfg.source = Some(p.clone());
                cfg
            }
            None => Config::from_toml_str("", "(defaults)", env)?,
        };
        let mut cfg = cfg;
        let known = env_keys();
        cfg.unknown_env = std::env::vars()
            .map(|(name, _)| name)
            .filter(|name| {
                name.starts_with(ENV_PREFIX)
                    && !OTHER_ENV_VARS.contains(&name.as_str())
                    && !known.iter().any(|k| &k.var == name)
            })
            .collect();
        Ok(cfg)
    }

    /// Parses `text` (named `origin` in errors) and applies the overrides
    /// that `env` returns for each variable of [`env_keys`].
    pub fn from_toml_str(
        text: &str,
        origin: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file_origin = format!("file {origin}");
        let table: toml::Table =
            text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
                path: origin.to_owned(),
                message: match e.span() {
                    Some(span) => {
                        let before = &text[..span.start.min(text.len())];
                        let line = before.matches('\n').count() + 1;
                        let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                        format!("line {line}, column {col}: {}", e.message())
                    }
                    None => e.message().to_owned(),
                },
            })?;
        // The file alone first, so its errors name the file.
        let cfg = deserialize_table(table.clone(), &file_origin)?;
        cfg.validate(&|_| file_origin.clone())?;

        let mut merged = table;
        let mut applied: Vec<EnvKey> = Vec::new();
        for key in env_keys() {
            let Some(raw) = env(&key.var) else { continue };
            let value = env_value(&key, &raw)?;
            set_path(&mut merged, &key.path, value);
            applied.push(key);
        }
        if applied.is_empty() {
            return Ok(cfg);
        }
        let origin_of = |path: &str| -> String {
            applied
                .iter()
                .find(|k| {
                    path == k.path
                        || path.starts_with(&format!("{}.", k.path))
                        || k.path.starts_with(&format!("{path}."))
                })
                .map(|k| format!("environment variable {}", k.var))
                .unwrap_or_else(|| {
                    format!(
                        "{file_origin} with environment overrides {}",
                        applied.iter().map(|k| k.var.as_str()).collect::<Vec<_>>().join(", ")
                    )
                })
        };
        let cfg = deserialize_table(merged, "").map_err(|e| match e {
            ConfigError::Invalid { key, reason, .. } => {
                ConfigError::Invalid { origin: origin_of(&key), key, reason }
            }
            other => other,
        })?;
        cfg.validate(&|p| origin_of(p))?;
        Ok(cfg)
    }

    /// The paths the storage probe checks.
    pub fn storage_paths(&self) -> Vec<PathBuf> {
        self.health.storage_paths.clone().unwrap_or_else(|| {
            vec![self.data_dir.clone(), self.log_dir.clone(), self.backup_dir.clone()]
        })
    }

    /// The directories the temp-cleanup job cleans.
    pub fn cleanup_dirs(&self) -> Vec<PathBuf> {
        self.jobs
            .temp_cleanup
            .options
            .dirs
            .clone()
            .unwrap_or_else(|| vec![self.data_dir.join("tmp"), self.data_dir.join("cache")])
    }

    /// Where a generated admin token is kept.
    pub fn token_file(&self) -> PathBuf {
        self.data_dir.join("admin_token")
    }

    /// The SQLite file of `database_url`, if it names one.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        if is_postgres_url(&self.database_url) {
            return None;
        }
        mscribe_storage::SqliteOptions::from_url(&self.database_url)
            .ok()
            .and_then(|o| o.path().map(Path::to_path_buf))
    }

    fn validate(&self, origin: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::Invalid {
            origin: origin(key),
            key: key.to_owned(),
            reason,
        };
        if is_postgres_url(&self.database_url) {
            if self.database_url.split("://").nth(1).is_none_or(str::is_empty) {
                return Err(bad("database_url", "a postgres URL needs a host".to_owned()));
            }
        } else if let Err(e) = mscribe_storage::SqliteOptions::from_url(&self.database_url) {
            return Err(bad(
                "database_url",
                format!("{e}; expected sqlite://PATH, sqlite::memory: or postgres://USER@HOST/DB"),
            ));
        }
        if let Some(t) = &self.admin_token
            && t.expose().trim().is_empty()
        {
            return Err(bad(
                "admin_token",
                "must not be empty (leave it unset to generate one)".to_owned(),
            ));
        }
        for (key, p) in [
            ("data_dir", &self.data_dir),
            ("log_dir", &self.log_dir),
            ("backup_dir", &self.backup_dir),
        ] {
            if p.as_os_str().is_empty() {
                return Err(bad(key, "must not be empty".to_owned()));
            }
        }
        if let Err(e) = self.log_level.parse::<tracing_subscriber::filter::Targets>() {
            return Err(bad(
                "log_level",
                format!("invalid log filter \"{}\": {e}", self.log_level),
            ));
        }
        let h = &self.health;
        if h.probe_timeout.is_zero() {
            return Err(bad("health.probe_timeout", "must be greater than zero".to_owned()));
        }
        if !(0.0..=100.0).contains(&h.min_free_percent) || h.min_free_percent.is_nan() {
            return Err(bad(
                "health.min_free_percent",
                format!("must be between 0 and 100, got {}", h.min_free_percent),
            ));
        }
        if let Some(url) = &h.auth_url
            && let Err(reason) = crate::http_client::parse_http_url(url)
        {
            return Err(bad("health.auth_url", reason));
        }
        for id in JOB_IDS {
            let c = self.jobs.common(id).expect("known job");
            let key = |k: &str| format!("jobs.{id}.{k}");
            if let Err(e) = Schedule::parse(c.schedule) {
                return Err(bad(&key("schedule"), e.to_string()));
            }
            if let Err(e) = c.parsed_schedule() {
                return Err(bad(&key("timezone"), e.to_string()));
            }
            if c.timeout.is_zero() {
                return Err(bad(&key("timeout"), "must be greater than zero".to_owned()));
            }
            if c.retry.attempts == 0 {
                return Err(bad(
                    &key("retry.attempts"),
                    "must be at least 1 (1 means no retry)".to_owned(),
                ));
            }
            if let Err(e) = c.retry.policy().validate() {
                return Err(bad(&key("retry"), e));
            }
            if c.misfire.mode == MisfireModeName::RunAll && c.misfire.max_runs == 0 {
                return Err(bad(
                    &key("misfire.max_runs"),
                    "must be at least 1 for run_all".to_owned(),
                ));
            }
        }
        if self.jobs.database_backup.options.keep == 0 {
            return Err(bad("jobs.database-backup.keep", "must be at least 1".to_owned()));
        }
        if self.jobs.log_rotation.options.keep == 0 {
            return Err(bad("jobs.log-rotation.keep", "must be at least 1".to_owned()));
        }
        if self.jobs.log_rotation.options.max_size == 0 {
            return Err(bad("jobs.log-rotation.max_size", "must be greater than zero".to_owned()));
        }
        if self.jobs.metrics_aggregation.options.lookback < Duration::from_secs(3600) {
            return Err(bad("jobs.metrics-aggregation.lookback", "must be at least 1h".to_owned()));
        }
        Ok(())
    }
}

/// Whether a database URL names Postgres.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn deserialize_table(table: toml::Table, origin: &str) -> Result<Config, ConfigError> {
    let value = toml::Value::Table(table);
    serde_path_to_error::deserialize::<_, Config>(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().to_owned();
        // Errors raised inside `[jobs]` carry the rest of the key in front
        // of the message ("database-backup.keep: ...").
        let (key, reason) = match (path.as_str(), message.split_once(": ")) {
            ("jobs", Some((rest, reason))) if !rest.contains(' ') => {
                (format!("jobs.{rest}"), reason.to_owned())
            }
            _ => (if path == "." { String::new() } else { path }, message),
        };
        let (key, reason) = match unknown_field(&reason) {
            Some(field) if !key.ends_with(field) => {
                (if key.is_empty() { field.to_owned() } else { format!("{key}.{field}") }, reason)
            }
            _ => (key, reason),
        };
        ConfigError::Invalid { origin: origin.to_owned(), key, reason }
    })
}

/// The field named by serde's "unknown field `x`" message.
fn unknown_field(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("unknown field `").or_else(|| msg.strip_prefix("unknown key `"))?;
    rest.split('`').next()
}

fn env_value(key: &EnvKey, raw: &str) -> Result<toml::Value, ConfigError> {
    let bad = |reason: String| ConfigError::Invalid {
        origin: format!("environment variable {}", key.var),
        key: key.path.clone(),
        reason,
    };
    let t = raw.trim();
    Ok(match key.kind {
        EnvKind::Str => toml::Value::String(raw.to_owned()),
        EnvKind::Int => toml::Value::Integer(
            t.parse().map_err(|_| bad(format!("expected an integer, got \"{raw}\"")))?,
        ),
        EnvKind::Float => toml::Value::Float(
            t.parse().map_err(|_| bad(format!("expected a number, got \"{raw}\"")))?,
        ),
        EnvKind::Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
            "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
            _ => return Err(bad(format!("expected true or false, got \"{raw}\""))),
        },
        EnvKind::List => toml::Value::Array(
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
        EnvKind::Bytes => match t.parse::<i64>() {
            Ok(n) => toml::Value::Integer(n),
            Err(_) => toml::Value::String(t.to_owned()),
        },
    })
}

fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    // Job ids contain no dots, so `jobs.<id>.<key>` splits cleanly.
    let last = parts.pop().expect("non-empty path");
    let mut cur = table;
    for p in parts {
        let entry =
            cur.entry(p.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        cur = entry.as_table_mut().expect("a table");
    }
    cur.insert(last.to_owned(), value);
}

/// Serde helpers for durations and sizes.
pub mod de {
    use std::time::Duration;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};

    /// A duration such as `30s`, `5m`, `1h30m`, `7d`.
    pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d).map_err(|_| {
            D::Error::custom("expected a duration as a string, such as \"30s\", \"5m\" or \"7d\"")
        })?;
        parse_duration(&s).map_err(D::Error::custom)
    }

    /// Parses a duration such as `30s`, `500ms`, `1h30m`, `7d`.
    pub fn parse_duration(s: &str) -> Result<Duration, String> {
        humantime::parse_duration(s.trim()).map_err(|e| {
            format!("invalid duration \"{s}\": {e}; expected e.g. \"500ms\", \"30s\", \"5m\", \"2h\", \"7d\"")
        })
    }

    /// A job's schedule: a string, kept as written (`Schedule::parse`
    /// checks it when the configuration is validated, so a bare number
    /// such as `"60000"` is refused there, naming the key), or an integer
    /// number of milliseconds, as the engine reads
    /// `JobConfig::schedule(60_000u64)`, kept as its interval's text
    /// (`60000` becomes `@every 1m`).
    pub fn schedule<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Millis(i64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            D::Error::custom(
                "expected a schedule: a string such as \"0 2 * * *\", \"@daily\" or \"90s\", \
                 or an integer number of milliseconds such as 60000",
            )
        })? {
            Raw::Text(s) => Ok(s),
            Raw::Millis(n) => {
                let ms = u64::try_from(n).map_err(|_| {
                    D::Error::custom(format!(
                        "a schedule in milliseconds must not be negative, got {n}"
                    ))
                })?;
                mscribe_scheduler::Schedule::every_ms(ms)
                    .map(|s| s.to_string())
                    .map_err(D::Error::custom)
            }
        }
    }

    /// A size: an integer number of bytes, or a string such as `100MiB`, `1GB`, `64KiB`.
    pub fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            D::Error::custom("expected a size: a number of bytes or a string such as \"100MiB\"")
        })? {
            Raw::N(n) => u64::try_from(n)
                .map_err(|_| D::Error::custom(format!("size must not be negative, got {n}"))),
            Raw::S(s) => parse_bytes(&s).map_err(D::Error::custom),
        }
    }

    /// Parses a size such as `1048576`, `64KiB`, `100MiB`, `1GB`, `2G`.
    pub fn parse_bytes(s: &str) -> Result<u64, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 =
            num.parse().map_err(|_| format!("invalid size \"{s}\": expected e.g. \"100MiB\""))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            other => {
                return Err(format!(
                    "invalid size \"{s}\": unknown unit \"{other}\", expected B, KB, KiB, MB, MiB, GB, GiB, TB or TiB"
                ));
            }
        };
        Ok((n * mult as f64).round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn err(text: &str, env: impl Fn(&str) -> Option<String>) -> String {
        Config::from_toml_str(text, "mscribe.toml", env).unwrap_err().to_string()
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::from_toml_str("", "x", no_env).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://./mscribe.db");
        assert_eq!(c.sqlite_path().unwrap(), PathBuf::from("./mscribe.db"));
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.health.ttl, Duration::from_secs(2));
        assert_eq!(c.jobs.history_retention.schedule, "30 3 * * *");
        assert_eq!(c.jobs.database_backup.schedule, "0 2 * * *");
        assert_eq!(c.jobs.log_rotation.schedule, "0 * * * *");
        assert_eq!(c.jobs.temp_cleanup.schedule, "15 4 * * *");
        assert_eq!(c.jobs.security_scan.schedule, "0 6 * * *");
        assert_eq!(c.jobs.metrics_aggregation.schedule, "5 * * * *");
        assert_eq!(c.jobs.health_snapshot.schedule, "*/5 * * * *");
        assert_eq!(c.storage_paths().len(), 3);
    }

    #[test]
    fn example_config_parses_and_sets_every_section() {
        let text = include_str!("../../config/mscribe.example.toml");
        let c = Config::from_toml_str(text, "config/mscribe.example.toml", no_env).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert!(c.jobs.database_backup.enabled);
        // Every overridable key is at least mentioned in the example.
        for k in env_keys() {
            let leaf = k.path.rsplit('.').next().unwrap();
            assert!(text.contains(leaf), "example config does not mention {}", k.path);
        }
    }

    #[test]
    fn every_env_var_is_documented_in_the_readme() {
        let readme = include_str!("../README.md");
        for k in env_keys() {
            if k.path.starts_with("jobs.") {
                continue;
            }
            assert!(readme.contains(&k.var), "README does not document {}", k.var);
        }
        for key in COMMON_JOB_KEYS.iter().map(|(k, _)| k).chain(
            JOB_IDS
                .iter()
                .flat_map(|id| JobsConfig::keys_of(id))
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
                .iter(),
        ) {
            assert!(readme.contains(&format!("`{key}`")), "README does not document job key {key}");
        }
        assert!(readme.contains("MSCRIBE_JOBS_DATABASE_BACKUP_KEEP"));
    }

    #[test]
    fn job_sections_overlay_defaults() {
        let c = Config::from_toml_str(
            r#"
            [jobs.database-backup]
            schedule = "0 3 * * *"
            keep = 2
            retry = { attempts = 5 }
            misfire = { mode = "skip" }
            [jobs.health-snapshot]
            enabled = false
            overlap = "queue"
            "#,
            "x",
            no_env,
        )
        .unwrap();
        let b = &c.jobs.database_backup;
        assert_eq!(b.schedule, "0 3 * * *");
        assert_eq!(b.options.keep, 2);
        assert!(b.options.verify);
        assert_eq!(b.retry.attempts, 5);
        assert_eq!(b.misfire.mode, MisfireModeName::Skip);
        assert!(!c.jobs.health_snapshot.enabled);
        assert_eq!(c.jobs.health_snapshot.overlap, OverlapPolicy::Queue);
        assert_eq!(c.jobs.health_snapshot.schedule, "*/5 * * * *");
    }

    #[test]
    fn env_overrides_every_kind() {
        let env = |k: &str| -> Option<String> {
            Some(
                match k {
                    "MSCRIBE_LISTEN" => "0.0.0.0:9999",
                    "MSCRIBE_DATABASE_URL" => "postgres://u@db/x",
                    "MSCRIBE_ADMIN_TOKEN" => "12345678901234567890123456789012",
                    "MSCRIBE_CLAIM_FIRES" => "true",
                    "MSCRIBE_HEALTH_TTL" => "10s",
                    "MSCRIBE_HEALTH_MIN_FREE_BYTES" => "1GiB",
                    "MSCRIBE_HEALTH_MIN_FREE_PERCENT" => "2.5",
                    "MSCRIBE_HEALTH_STORAGE_PATHS" => "/a, /b",
                    "MSCRIBE_JOBS_DATABASE_BACKUP_KEEP" => "3",
                    "MSCRIBE_JOBS_DATABASE_BACKUP_RETRY_ATTEMPTS" => "4",
                    "MSCRIBE_JOBS_LOG_ROTATION_ENABLED" => "false",
                    "MSCRIBE_JOBS_LOG_ROTATION_MAX_SIZE" => "1048576",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let c = Config::from_toml_str("listen = \"127.0.0.1:1\"\n", "f.toml", env).unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert!(is_postgres_url(&c.database_url));
        assert_eq!(c.admin_token.as_ref().unwrap().expose().len(), 32);
        assert!(c.claim_fires);
        assert_eq!(c.health.ttl, Duration::from_secs(10));
        assert_eq!(c.health.min_free_bytes, 1 << 30);
        assert_eq!(c.health.min_free_percent, 2.5);
        assert_eq!(c.storage_paths(), vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(c.jobs.database_backup.options.keep, 3);
        assert_eq!(c.jobs.database_backup.retry.attempts, 4);
        assert!(!c.jobs.log_rotation.enabled);
        assert_eq!(c.jobs.log_rotation.options.max_size, 1 << 20);
        assert_eq!(format!("{:?}", c.admin_token.unwrap()), "Secret(*** 32 chars)");
    }

    #[test]
    fn env_var_names() {
        assert_eq!(env_var_of("health.ttl"), "MSCRIBE_HEALTH_TTL");
        assert_eq!(env_var_of("jobs.database-backup.keep"), "MSCRIBE_JOBS_DATABASE_BACKUP_KEEP");
        let vars: Vec<String> = env_keys().into_iter().map(|k| k.var).collect();
        let mut dedup = vars.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(vars.len(), dedup.len(), "two keys map to one variable");
    }

    #[test]
    fn errors_name_file_key_and_reason() {
        let cases = [
            "lisen = \"x\"",
            "listen = \"nope\"",
            "[health]\nttl = 5",
            "[health]\nttl = \"5 parsecs\"",
            "[health]\nauth_url = \"ftp://auth\"",
            "[jobs.database-backup]\nkep = 3",
            "[jobs.database-backup]\nkeep = \"x\"",
            "[jobs.database-backup]\nkeep = 0",
            "[jobs.backup]\nkeep = 1",
            "[jobs.log-rotation]\nschedule = \"61 * * * *\"",
            "[jobs.log-rotation]\ntimezone = \"Mars/Olympus\"",
            "[jobs.log-rotation]\nretry = { attempts = 0 }",
            "[jobs.log-rotation]\nretry = { tries = 2 }",
            "[jobs.log-rotation]\nmax_size = \"10 parsecs\"",
            "database_url = \"mysql://x\"",
            "listen = ",
        ];
        let out: Vec<String> =
            cases.iter().map(|c| format!("{c}\n=> {}\n", err(c, no_env))).collect();
        insta::assert_snapshot!("config_file_errors", out.join("\n"));
    }

    #[test]
    fn env_errors_name_the_variable() {
        let cases = [
            ("MSCRIBE_LISTEN", "localhost"),
            ("MSCRIBE_JOBS_DATABASE_BACKUP_KEEP", "many"),
            ("MSCRIBE_HEALTH_TTL", "soon"),
            ("MSCRIBE_HEALTH_MIN_FREE_PERCENT", "200"),
            ("MSCRIBE_JOBS_SECURITY_SCAN_SCHEDULE", "daily"),
            ("MSCRIBE_JOBS_LOG_ROTATION_OVERLAP", "sometimes"),
        ];
        let out: Vec<String> = cases
            .iter()
            .map(|(var, val)| {
                let e = err("", |k: &str| (k == *var).then(|| (*val).to_owned()));
                format!("{var}={val}\n=> {e}\n")
            })
            .collect();
        insta::assert_snapshot!("config_env_errors", out.join("\n"));
    }

    #[test]
    fn a_schedule_integer_is_milliseconds_and_a_bare_number_string_is_refused_naming_the_key() {
        use mscribe_scheduler::ScheduleSpec;
        let c = Config::from_toml_str("[jobs.health-snapshot]\nschedule = 60000\n", "x", no_env)
            .unwrap();
        assert_eq!(c.jobs.health_snapshot.schedule, "@every 1m");
        let parsed = c.jobs.common("health-snapshot").unwrap().parsed_schedule().unwrap();
        // The same schedule as the engine makes of the integer.
        assert_eq!(parsed, ScheduleSpec::from(60_000u64).build().unwrap());
        // ... and as a string with its unit.
        let c =
            Config::from_toml_str("[jobs.health-snapshot]\nschedule = \"60000ms\"\n", "x", no_env)
                .unwrap();
        assert_eq!(c.jobs.common("health-snapshot").unwrap().parsed_schedule().unwrap(), parsed);

        // A number inside a string: the engine's refusal, naming the key.
        let e = err("[jobs.health-snapshot]\nschedule = \"60000\"\n", no_env);
        let engine = Schedule::parse("60000").unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "invalid config: key `jobs.health-snapshot.schedule` in file mscribe.toml: {engine}"
            )
        );
        assert!(e.contains(r#"write "60000ms" for milliseconds or "@every 60000s""#), "{e}");
        // The environment has only strings: refused the same way.
        let e = err("", |k: &str| {
            (k == "MSCRIBE_JOBS_HEALTH_SNAPSHOT_SCHEDULE").then(|| "60000".to_owned())
        });
        assert_eq!(
            e,
            format!(
                "invalid config: key `jobs.health-snapshot.schedule` in environment variable \
                 MSCRIBE_JOBS_HEALTH_SNAPSHOT_SCHEDULE: {engine}"
            )
        );
        // Integers that are no interval, and values that are no schedule.
        let e = err("[jobs.health-snapshot]\nschedule = 0\n", no_env);
        assert!(e.starts_with("invalid config: key `jobs.health-snapshot.schedule` in file mscribe.toml: interval must be greater than zero"), "{e}");
        let e = err("[jobs.health-snapshot]\nschedule = -5\n", no_env);
        assert!(e.ends_with("key `jobs.health-snapshot.schedule` in file mscribe.toml: a schedule in milliseconds must not be negative, got -5"), "{e}");
        let e = err("[jobs.health-snapshot]\nschedule = 1.5\n", no_env);
        assert!(
            e.contains(
                "key `jobs.health-snapshot.schedule` in file mscribe.toml: expected a schedule"
            ),
            "{e}"
        );
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(de::parse_bytes("100MiB").unwrap(), 100 << 20);
        assert_eq!(de::parse_bytes("1GB").unwrap(), 1_000_000_000);
        assert_eq!(de::parse_bytes("512").unwrap(), 512);
        assert_eq!(de::parse_bytes("1.5KiB").unwrap(), 1536);
        assert!(de::parse_bytes("12 parsecs").is_err());
        assert_eq!(de::parse_duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(de::parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
    }
}
