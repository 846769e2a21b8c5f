//! Environment overrides: every config key as a `MSCRIBE_<KEY>` variable.
//!
//! The variable of a key is `MSCRIBE_` plus the dotted key in upper case
//! with `.` and `-` as `_` ([`env_var_of`]); [`env_keys`] lists every key
//! (the top-level and `[health]` ones, then each job's, from the table of
//! jobs) with how its text is read ([`EnvKind`]). The overrides are merged
//! into the file's table before it is deserialized again, and an error
//! names the variable it came from.
//!
//! A job of your own is defined in the file (its `kind` is there); the
//! environment overrides its scalar keys, `MSCRIBE_JOBS_<ID>_<KEY>` as for
//! a built-in job ([`user_job_env_keys`]). Its lists and tables
//! (`command`, `env`, `permanent_exit_codes`, `headers`, `expect_status`)
//! are set in the file only ([`EnvKind::FileOnly`]).

use super::{CONFIG_ENV, ConfigError};
use crate::ops::{JOBS, JobKind, job_kind};

/// The prefix of every environment override.
pub const ENV_PREFIX: &str = "MSCRIBE_";

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
    /// Not read from the environment: set in the file only (a table, or a
    /// list whose items a comma-separated text cannot say unambiguously).
    FileOnly,
}

/// The top-level, `[health]`, `[api]`, `[ui]` and `[telemetry]` keys with their environment kinds.
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
    ("log_format", EnvKind::Str),
    ("log_to_file", EnvKind::Bool),
    ("claim_fires", EnvKind::Bool),
    ("lease", EnvKind::Str),
    ("claim_standby", EnvKind::Str),
    ("claim_ahead", EnvKind::Str),
    ("health.ttl", EnvKind::Str),
    ("health.probe_timeout", EnvKind::Str),
    ("health.slow_threshold", EnvKind::Str),
    ("health.auth_url", EnvKind::Str),
    ("health.storage_paths", EnvKind::List),
    ("health.min_free_bytes", EnvKind::Bytes),
    ("health.min_free_percent", EnvKind::Float),
    ("health.max_overdue", EnvKind::Str),
    ("api.allow_command_jobs", EnvKind::Bool),
    ("api.allow_env", EnvKind::List),
    ("ui.enabled", EnvKind::Bool),
    ("ui.secure_cookie", EnvKind::Bool),
    ("ui.session_ttl", EnvKind::Str),
    ("telemetry.otlp_endpoint", EnvKind::Str),
    ("telemetry.service_name", EnvKind::Str),
    ("telemetry.sample_ratio", EnvKind::Float),
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
    for job in JOBS.iter().filter(|j| j.is_builtin()) {
        out.extend(job_env_keys(job.id, job));
    }
    out
}

/// The overridable keys of job `id` of kind `kind`.
fn job_env_keys(id: &str, kind: &JobKind) -> impl Iterator<Item = EnvKey> {
    kind.keys().into_iter().filter(|(_, k)| *k != EnvKind::FileOnly).map(move |(key, kind)| {
        let path = format!("jobs.{id}.{key}");
        EnvKey { var: env_var_of(&path), path, kind }
    })
}

/// The overridable keys of the jobs of your own that the file's `[jobs]`
/// defines: its sections whose id is no built-in job's and whose `kind`
/// names a kind of jobs of your own.
pub fn user_job_env_keys(table: &toml::Table) -> Vec<EnvKey> {
    let Some(jobs) = table.get("jobs").and_then(toml::Value::as_table) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (id, section) in jobs {
        if job_kind(id).is_some() {
            continue;
        }
        let Some(kind) = section.get("kind").and_then(toml::Value::as_str) else { continue };
        if let Some(row) = JOBS.iter().find(|k| !k.is_builtin() && k.id == kind) {
            out.extend(job_env_keys(id, row));
        }
    }
    out
}

/// Refuses jobs of your own whose environment variables are another
/// job's too (`a-b` and `a_b`, `My-Job` and `my-job`, `database_backup`
/// and `database-backup`): an override could not say which it means. The
/// error names the later job's section.
pub(super) fn check_unique_vars(table: &toml::Table, origin: &str) -> Result<(), ConfigError> {
    let mut seen: std::collections::HashMap<String, String> =
        env_keys().into_iter().map(|k| (k.var, k.path)).collect();
    for key in user_job_env_keys(table) {
        if let Some(other) = seen.get(&key.var) {
            let job = |path: &str| path.split('.').nth(1).unwrap_or_default().to_owned();
            let (mine, theirs) = (job(&key.path), job(other));
            return Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                key: format!("jobs.{mine}"),
                reason: format!(
                    "its environment variables ({}_*) are those of job `{theirs}` too; choose \
                     an id that differs from it by more than case, `-` and `_`",
                    env_var_of(&format!("jobs.{mine}"))
                ),
            });
        }
        seen.insert(key.var, key.path);
    }
    Ok(())
}

/// Variables with the `MSCRIBE_` prefix that are not config keys but are
/// read elsewhere.
pub const OTHER_ENV_VARS: &[&str] =
    &[CONFIG_ENV, "MSCRIBE_LOG", "MSCRIBE_TEST_POSTGRES_URL", "MSCRIBE_URL", "MSCRIBE_TOKEN"];

/// The `MSCRIBE_*` variables of the process that are neither config keys
/// (those of the jobs of your own of `table` included) nor
/// [`OTHER_ENV_VARS`] (a typo, most likely).
pub(super) fn unknown_vars(table: &toml::Table) -> Vec<String> {
    let mut known = env_keys();
    known.extend(user_job_env_keys(table));
    std::env::vars()
        .map(|(name, _)| name)
        .filter(|name| {
            name.starts_with(ENV_PREFIX)
                && !OTHER_ENV_VARS.contains(&name.as_str())
                && !known.iter().any(|k| &k.var == name)
        })
        .collect()
}

/// Sets in `table` the value of every key whose variable `env` returns;
/// returns those keys.
pub(super) fn apply(
    table: &mut toml::Table,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<EnvKey>, ConfigError> {
    let mut applied: Vec<EnvKey> = Vec::new();
    let user = user_job_env_keys(table);
    for key in env_keys().into_iter().chain(user) {
        let Some(raw) = env(&key.var) else { continue };
        let value = env_value(&key, &raw)?;
        set_path(table, &key.path, value);
        applied.push(key);
    }
    Ok(applied)
}

/// Where the value of dotted key `path` came from, once the `applied`
/// overrides were merged into the file (`file_origin`): the variable that
/// set it (or a key above or below it), else the file with the overrides.
pub(super) fn origin_of(applied: &[EnvKey], file_origin: &str, path: &str) -> String {
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
        EnvKind::Int => toml::Value::Integer(t.parse().map_err(|_| bad(int_error(t, raw)))?),
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
        EnvKind::FileOnly => {
            return Err(bad("cannot be set from the environment; set it in the file".to_owned()));
        }
    })
}

/// Why `t` (the trimmed `raw`) is no TOML integer: all digits but past
/// `i64` (naming the bound), or not an integer at all.
fn int_error(t: &str, raw: &str) -> String {
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return format!("expected an integer, got \"{raw}\"");
    }
    if t.starts_with('-') {
        format!("{t} is out of range: an integer here is at least {}", i64::MIN)
    } else {
        format!("{t} is out of range: an integer here is at most {}", i64::MAX)
    }
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::config::{COMMON_JOB_KEYS, Config, JOB_IDS, JobsConfig, is_postgres_url};

    #[test]
    fn every_env_var_is_documented_in_the_readme() {
        let readme = include_str!("../../README.md");
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
}
