//! The server's configuration: its types and how it is loaded. A TOML file,
//! every key overridable from the environment, defaults that need no setup
//! at all.
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
//! | module | role |
//! |---|---|
//! | this one | the [`Config`] types, [`Config::load`], [`Config::from_toml_str`] |
//! | `file` | the TOML text, its syntax errors, unknown keys and their errors |
//! | `env` | the `MSCRIBE_*` overrides: [`env_keys`], [`env_var_of`], [`EnvKind`] |
//! | `jobs` | the `[jobs.<id>]` sections: [`JobsConfig`], [`JobSection`], [`CommonSettings`] |
//! | `options` | the options of each built-in job ([`BackupOptions`], ...) |
//! | `user` | the jobs of your own (`kind = "command"`, `"http"`): [`UserJobDef`], their options and checks |
//! | `telemetry` | `[telemetry]` ([`TelemetryConfig`]): OpenTelemetry traces |
//! | `alerts` | the `[alerts.<name>]` blocks ([`AlertConfig`]) and the jobs' alert keys ([`JobAlerting`]) |
//! | [`de`] | value parsers: durations, sizes, schedules |
//! | `validate` | the checks of the values after deserialization |
//! | `show` | [`effective_toml`]: the configuration read, as TOML, secrets redacted (`mscribe config show`); [`redact_url`] |
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

mod alerts;
mod env;
mod file;
mod jobs;
mod options;
mod show;
mod telemetry;
mod user;
mod validate;

pub mod de;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use alerts::{
    AlertConfig, AlertEvent, AlertFormat, DEFAULT_ALERT_ATTEMPTS, DEFAULT_ALERT_TIMEOUT,
    DEFAULT_FAILURES_IN_A_ROW, DEFAULT_PAUSED_TOO_LONG, JobAlerting, check_url,
};
pub use env::{
    ENV_PREFIX, EnvKey, EnvKind, OTHER_ENV_VARS, env_keys, env_var_of, user_job_env_keys,
};
pub use jobs::{
    COMMON_JOB_KEYS, CommonSettings, ConfiguredJob, JOB_IDS, JobOptions, JobSection, JobsConfig,
    MisfireConfig, MisfireModeName, RetryConfig,
};
pub use options::{
    AggregationOptions, BackupOptions, CleanupOptions, LogRotationOptions, RetentionOptions,
    SecurityOptions, SnapshotOptions,
};
pub use show::{REDACTED, effective_toml, redact_url};
pub use telemetry::{DEFAULT_SERVICE_NAME, OTLP_TRACES_PATH, TelemetryConfig};
pub use user::{
    CommandOptions, DEFAULT_OUTPUT_LIMIT, DefError, ExpectStatus, HTTP_BODY_LIMIT, HttpOptions,
    MAX_JOB_ID_LEN, MAX_OUTPUT_LIMIT, USER_KINDS, UserJobDef, check_allowed_env, check_env_name,
    check_id, expand, is_server_variable, template_vars,
};

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "mscribe.toml";

/// The default `lease`: the engine's.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// The default `claim_standby`: the engine's.
pub const DEFAULT_CLAIM_STANDBY: Duration = Duration::from_millis(250);

/// The default `claim_ahead`: the engine's.
pub const DEFAULT_CLAIM_AHEAD: Duration = mscribe_scheduler::DEFAULT_CLAIM_AHEAD;

/// The shortest `lease` accepted.
pub const MIN_LEASE: Duration = Duration::from_secs(1);

/// The environment variable naming the config file (like `--config`).
pub const CONFIG_ENV: &str = "MSCRIBE_CONFIG";

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
    /// The HTTP listen address (`listen`, default `127.0.0.1:8080`): an
    /// IP and a port.
    #[serde(deserialize_with = "de::socket_addr")]
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
    /// How log lines are written: `"text"` or `"json"`, one object per
    /// line (`log_format`, default `"text"`).
    pub log_format: crate::logging::LogFormat,
    /// Whether logs are also written to `log_dir/mscribe.log` (`log_to_file`, default true).
    pub log_to_file: bool,
    /// Whether scheduled fires are claimed in the database before they run,
    /// for several servers on one database (`claim_fires`, default false;
    /// see `SchedulerBuilder::claim_fires`).
    pub claim_fires: bool,
    /// How long the lease on a claimed fire lasts before another instance
    /// may take the fire over (`lease`, default `15s`, at least `1s`; see
    /// `SchedulerBuilder::lease`). Only with `claim_fires`.
    #[serde(deserialize_with = "de::duration")]
    pub lease: Duration,
    /// How long a server waits before it claims a fire that another live
    /// server is preferred for (`claim_standby`, default `250ms`, `0s` for
    /// no claim affinity, less than `lease`; see
    /// `SchedulerBuilder::claim_standby`). Only with `claim_fires`.
    #[serde(deserialize_with = "de::duration")]
    pub claim_standby: Duration,
    /// How long before its instant a server claims a scheduled fire, to
    /// start it at the instant with its claim settled (`claim_ahead`,
    /// default `500ms`, `0s` to claim at the instant, less than `lease`;
    /// see `SchedulerBuilder::claim_ahead`). Only with `claim_fires`.
    #[serde(deserialize_with = "de::duration")]
    pub claim_ahead: Duration,
    /// The health check (`[health]`).
    pub health: HealthConfig,
    /// The jobs API (`[api]`).
    pub api: ApiConfig,
    /// The web dashboard (`[ui]`).
    pub ui: UiConfig,
    /// OpenTelemetry traces (`[telemetry]`; sent by a build with the
    /// `otel` feature).
    pub telemetry: TelemetryConfig,
    /// The seven built-in jobs and the jobs of your own (`[jobs.<id>]`).
    pub jobs: JobsConfig,
    /// Webhook alerts (`[alerts.<name>]`), by name. Not overridable from
    /// the environment (their names are the file's).
    pub alerts: BTreeMap<String, AlertConfig>,
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
            log_format: crate::logging::LogFormat::Text,
            log_to_file: true,
            claim_fires: false,
            lease: DEFAULT_LEASE,
            claim_standby: DEFAULT_CLAIM_STANDBY,
            claim_ahead: DEFAULT_CLAIM_AHEAD,
            health: HealthConfig::default(),
            api: ApiConfig::default(),
            ui: UiConfig::default(),
            telemetry: TelemetryConfig::default(),
            jobs: JobsConfig::default(),
            alerts: BTreeMap::new(),
            source: None,
            unknown_env: Vec::new(),
        }
    }
}

/// `[api]`: what the jobs API may do.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Whether `PUT /jobs/{id}` (and `mscribe job apply`) may define jobs
    /// of kind `command` (`allow_command_jobs`, default false): a command
    /// job runs any program on the server, so remote command execution is
    /// the operator's choice, not a default. HTTP jobs are always allowed.
    pub allow_command_jobs: bool,
    /// The environment variables a job defined through the API or `mscribe
    /// job apply` may read as `${VAR}` (`allow_env`, default none): the
    /// token must not give away the server's own secrets. The server's
    /// own variables (`MSCRIBE_*`) cannot be listed.
    pub allow_env: Vec<String>,
}

/// `[ui]`: the web dashboard at `/ui`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// Whether the dashboard is served (`enabled`, default true); when
    /// false, `/`, `/ui` and everything under it answer 404.
    pub enabled: bool,
    /// Whether the session cookie has the `Secure` flag, for a dashboard
    /// served behind HTTPS (`secure_cookie`, default false).
    pub secure_cookie: bool,
    /// How long a login lasts (`session_ttl`, default `12h`).
    #[serde(deserialize_with = "de::duration")]
    pub session_ttl: Duration,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            enabled: true,
            secure_cookie: false,
            session_ttl: Duration::from_secs(12 * 3600),
        }
    }
}

/// `[health]`: the health check.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
        let text = match &file {
            Some(p) => file::read(p)?,
            None => String::new(),
        };
        let origin = file.as_ref().map_or("(defaults)".to_owned(), |p| p.display().to_string());
        let mut cfg = Config::from_toml_str(&text, &origin, env)?;
        cfg.source = file;
        // Parsed already: the keys of the jobs of your own it defines.
        let table = file::parse(&text, &origin)?;
        cfg.unknown_env = env::unknown_vars(&table);
        Ok(cfg)
    }

    /// Parses `text` (named `origin` in errors) and applies the overrides
    /// that `env` returns for each variable of [`env_keys`]; checks the log
    /// filter `env` returns for `$MSCRIBE_LOG` too.
    pub fn from_toml_str(
        text: &str,
        origin: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file_origin = format!("file {origin}");
        let table = file::parse(text, origin)?;
        // The file alone first, so its errors name the file.
        let cfg = file::deserialize_table(table.clone(), &file_origin)?;
        cfg.validate(&|_| file_origin.clone())?;
        env::check_unique_vars(&table, &file_origin)?;
        // `$MSCRIBE_LOG` replaces `log_level` when set: checked as it is.
        if let Some(spec) = env(crate::logging::LOG_ENV)
            && let Err(e) = crate::logging::parse_filter(&spec)
        {
            return Err(ConfigError::Invalid {
                origin: format!("environment variable {}", crate::logging::LOG_ENV),
                key: "log_level".to_owned(),
                reason: format!("invalid log filter \"{spec}\": {e}"),
            });
        }

        let mut merged = table;
        let applied = env::apply(&mut merged, &env)?;
        if applied.is_empty() {
            return Ok(cfg);
        }
        let origin_of = |path: &str| env::origin_of(&applied, &file_origin, path);
        let cfg = file::deserialize_table(merged, "").map_err(|e| match e {
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
}

/// Whether a database URL names Postgres.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
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
        let text = include_str!("../../../config/mscribe.example.toml");
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
    fn the_ui_section() {
        let c = Config::from_toml_str("", "x", no_env).unwrap();
        assert!(c.ui.enabled && !c.ui.secure_cookie);
        assert_eq!(c.ui.session_ttl, Duration::from_secs(12 * 3600));
        let c = Config::from_toml_str(
            "[ui]\nenabled = false\nsecure_cookie = true\nsession_ttl = \"30m\"",
            "x",
            |k: &str| (k == "MSCRIBE_UI_SESSION_TTL").then(|| "2h".to_owned()),
        )
        .unwrap();
        assert!(!c.ui.enabled && c.ui.secure_cookie);
        assert_eq!(c.ui.session_ttl, Duration::from_secs(7200));
        assert_eq!(
            err("[ui]\nsession_ttl = \"5s\"", no_env),
            "invalid config: key `ui.session_ttl` in file mscribe.toml: must be at least 1m, got \"5s\""
        );
    }

    #[test]
    fn huge_durations_are_refused_at_config_check_naming_key_and_value() {
        assert_eq!(
            err("[ui]\nsession_ttl = \"300000000000y\"", no_env),
            "invalid config: key `ui.session_ttl` in file mscribe.toml: must be at most 100y, \
             got \"300000000000y\""
        );
        assert_eq!(
            err("", |k: &str| (k == "MSCRIBE_SHUTDOWN_GRACE").then(|| "200y".to_owned())),
            "invalid config: key `shutdown_grace` in environment variable MSCRIBE_SHUTDOWN_GRACE: \
             must be at most 100y, got \"200y\""
        );
        assert_eq!(
            err(
                "[jobs.r]\nkind = \"command\"\nschedule = \"@daily\"\nshell = \"x\"\n\
                 kill_grace = \"300000000000y\"",
                no_env
            ),
            "invalid config: key `jobs.r.kill_grace` in file mscribe.toml: must be at most 100y, \
             got \"300000000000y\""
        );
        assert!(
            err("[jobs.database-backup]\nexpect_success_within = \"101y\"", no_env)
                .ends_with("must be at most 100y, got \"101y\""),
        );
    }

    #[test]
    fn allow_env_takes_variable_names_but_never_the_servers_own() {
        let ok = Config::from_toml_str("[api]\nallow_env = [\"HOOK_KEY\"]", "m.toml", no_env);
        assert_eq!(ok.unwrap().api.allow_env, ["HOOK_KEY"]);
        assert_eq!(
            err("[api]\nallow_env = [\"MSCRIBE_DATABASE_URL\"]", no_env),
            "invalid config: key `api.allow_env` in file mscribe.toml: MSCRIBE_DATABASE_URL is \
             one of the server's own settings (MSCRIBE_*), never readable by a job defined at run \
             time"
        );
        let bad = err("", |k: &str| (k == "MSCRIBE_API_ALLOW_ENV").then(|| "A,1B".to_owned()));
        assert!(bad.contains("api.allow_env") && bad.contains("\"1B\""), "{bad}");
    }

    #[test]
    fn listen_errors_name_the_value() {
        assert_eq!(
            err("listen = \"127.0.0.1:99999\"", no_env),
            "invalid config: key `listen` in file mscribe.toml: invalid listen address \
             \"127.0.0.1:99999\": port 99999 is out of range (0 to 65535)"
        );
        assert_eq!(
            err("", |k: &str| (k == "MSCRIBE_LISTEN").then(|| "nope".to_owned())),
            "invalid config: key `listen` in environment variable MSCRIBE_LISTEN: invalid listen \
             address \"nope\": expected IP:PORT, such as \"127.0.0.1:8080\" or \"[::1]:8080\""
        );
        assert_eq!(
            err("listen = 8080", no_env),
            "invalid config: key `listen` in file mscribe.toml: expected a listen address as a \
             string, such as \"127.0.0.1:8080\", got integer 8080"
        );
    }

    #[test]
    fn env_integers_out_of_range_say_so_naming_the_range() {
        let var = "MSCRIBE_JOBS_DATABASE_BACKUP_KEEP";
        assert_eq!(
            err("", |k: &str| (k == var).then(|| "99999999999999999999".to_owned())),
            "invalid config: key `jobs.database-backup.keep` in environment variable \
             MSCRIBE_JOBS_DATABASE_BACKUP_KEEP: 99999999999999999999 is out of range: an integer \
             here is at most 9223372036854775807"
        );
        assert_eq!(
            err("", |k: &str| (k == var).then(|| "-99999999999999999999".to_owned())),
            "invalid config: key `jobs.database-backup.keep` in environment variable \
             MSCRIBE_JOBS_DATABASE_BACKUP_KEEP: -99999999999999999999 is out of range: an integer \
             here is at least -9223372036854775808"
        );
        assert!(
            err("", |k: &str| (k == var).then(|| "many".to_owned()))
                .ends_with("expected an integer, got \"many\"")
        );
    }

    #[test]
    fn lease_is_a_duration_of_at_least_a_second() {
        assert_eq!(Config::from_toml_str("", "x", no_env).unwrap().lease, DEFAULT_LEASE);
        let c = Config::from_toml_str("lease = \"4s\"", "x", no_env).unwrap();
        assert_eq!(c.lease, Duration::from_secs(4));
        let c = Config::from_toml_str("lease = \"4s\"", "x", |k: &str| {
            (k == "MSCRIBE_LEASE").then(|| "1m".to_owned())
        })
        .unwrap();
        assert_eq!(c.lease, Duration::from_secs(60));
        assert_eq!(
            err("lease = \"500ms\"", no_env),
            "invalid config: key `lease` in file mscribe.toml: must be at least 1s, got \"500ms\""
        );
        assert_eq!(
            err("lease = 15", no_env),
            "invalid config: key `lease` in file mscribe.toml: expected a duration as a string, \
             such as \"30s\", \"5m\" or \"7d\""
        );
        assert_eq!(
            err("", |k: &str| (k == "MSCRIBE_LEASE").then(|| "soon".to_owned())),
            "invalid config: key `lease` in environment variable MSCRIBE_LEASE: invalid duration \
             \"soon\": expected number at 0; expected e.g. \"500ms\", \"30s\", \"5m\", \"2h\", \"7d\""
        );
        assert_eq!(
            err("", |k: &str| (k == "MSCRIBE_LEASE").then(|| "0s".to_owned())),
            "invalid config: key `lease` in environment variable MSCRIBE_LEASE: must be at least \
             1s, got \"0s\""
        );
    }

    #[test]
    fn claim_ahead_is_a_duration_under_the_lease() {
        let c = Config::from_toml_str("", "x", no_env).unwrap();
        assert_eq!(c.claim_ahead, DEFAULT_CLAIM_AHEAD);
        let c = Config::from_toml_str("claim_ahead = \"0s\"", "x", no_env).unwrap();
        assert_eq!(c.claim_ahead, Duration::ZERO);
        let c = Config::from_toml_str("", "x", |k: &str| {
            (k == "MSCRIBE_CLAIM_AHEAD").then(|| "2s".to_owned())
        })
        .unwrap();
        assert_eq!(c.claim_ahead, Duration::from_secs(2));
        assert_eq!(
            err("lease = \"5s\"\nclaim_ahead = \"6s\"", no_env),
            "invalid config: key `claim_ahead` in file mscribe.toml: must be less than lease \
             (5s), got \"6s\""
        );
        assert_eq!(
            err("claim_ahead = \"-1s\"", no_env),
            "invalid config: key `claim_ahead` in file mscribe.toml: invalid duration \"-1s\": \
             expected number at 0; expected e.g. \"500ms\", \"30s\", \"5m\", \"2h\", \"7d\""
        );
    }

    #[test]
    fn claim_standby_is_a_duration_under_the_lease() {
        let c = Config::from_toml_str("", "x", no_env).unwrap();
        assert_eq!(c.claim_standby, DEFAULT_CLAIM_STANDBY);
        let c = Config::from_toml_str("claim_standby = \"0s\"", "x", no_env).unwrap();
        assert_eq!(c.claim_standby, Duration::ZERO);
        let c = Config::from_toml_str("", "x", |k: &str| {
            (k == "MSCRIBE_CLAIM_STANDBY").then(|| "1s".to_owned())
        })
        .unwrap();
        assert_eq!(c.claim_standby, Duration::from_secs(1));
        assert_eq!(
            err("lease = \"5s\"\nclaim_standby = \"5s\"", no_env),
            "invalid config: key `claim_standby` in file mscribe.toml: must be less than lease \
             (5s), got \"5s\""
        );
        assert_eq!(
            err("claim_standby = \"later\"", no_env),
            "invalid config: key `claim_standby` in file mscribe.toml: invalid duration \"later\": \
             expected number at 0; expected e.g. \"500ms\", \"30s\", \"5m\", \"2h\", \"7d\""
        );
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
}
