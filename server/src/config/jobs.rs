//! The `[jobs.<id>]` sections: what every job's section has
//! ([`JobSection`], [`CommonSettings`]), and [`JobsConfig`]. The options of
//! the built-in jobs are in `options.rs`, the jobs of your own in `user.rs`.
//!
//! Every section has the scheduling settings ([`COMMON_JOB_KEYS`]:
//! `schedule`, `timeout`, `retry`, `misfire`, ...) and the job's options
//! (a [`JobOptions`] type with its keys, defaults and checks). Which jobs
//! there are, their ids, default schedules and which options type each
//! section has come from the table of jobs, [`JOBS`] (`ops/defs.rs`).
//! A section whose id is no built-in job's and that has a `kind` is a job
//! of your own ([`UserJobDef`], `user.rs`), kept by id in
//! [`JobsConfig::user`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mscribe_scheduler::{
    Jitter, MisfireMode, MisfirePolicy, OverlapPolicy, OverlapScope, RetryPolicy, Schedule,
};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

use super::EnvKind;
use super::alerts::JobAlerting;
use super::de;
use super::file::sub_table;
use super::options::{
    AggregationOptions, BackupOptions, CleanupOptions, LogRotationOptions, RetentionOptions,
    SecurityOptions, SnapshotOptions,
};
use super::user::UserJobDef;
use crate::ops::{JOBS, JobKind, defs, job_kind};

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

/// The per-job options of one operational job: its keys (for unknown-key
/// errors and environment overrides) and defaults.
pub trait JobOptions: DeserializeOwned + Default + Clone + PartialEq + fmt::Debug {
    /// The option keys and how each is read from the environment.
    const KEYS: &'static [(&'static str, EnvKind)];

    /// Checks values the type allows but the job does not (`keep = 0`): an
    /// error is `(key, reason)`, the key relative to the section.
    fn check(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }
}

/// The keys every job section has besides its options.
pub const COMMON_JOB_KEYS: &[(&str, EnvKind)] = &[
    ("schedule", EnvKind::Str),
    ("timezone", EnvKind::Str),
    ("timeout", EnvKind::Str),
    ("enabled", EnvKind::Bool),
    ("overlap", EnvKind::Str),
    ("overlap_scope", EnvKind::Str),
    ("max_concurrent", EnvKind::Int),
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
    ("expect_success_within", EnvKind::Str),
    ("pause_after_failures", EnvKind::Int),
    ("failures_in_a_row", EnvKind::Int),
    ("paused_too_long", EnvKind::Str),
];

/// One `[jobs.<id>]` section: scheduling settings common to every job plus
/// the job's own options.
#[derive(Debug, Clone, PartialEq)]
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
    /// Where the overlap policy holds under `claim_fires`: `instance`
    /// (default) or `cluster` (`overlap_scope`; see
    /// `JobConfig::overlap_scope`).
    pub overlap_scope: OverlapScope,
    /// At most this many runs of the job at once, across the cluster under
    /// `claim_fires` (`max_concurrent`, at least 1; default no limit but the
    /// overlap policy's; see `JobConfig::max_concurrent`).
    pub max_concurrent: Option<u32>,
    /// The retry policy (`retry`).
    pub retry: RetryConfig,
    /// The misfire policy (`misfire`).
    pub misfire: MisfireConfig,
    /// The alert keys (`expect_success_within`, `pause_after_failures`,
    /// `failures_in_a_row`, `paused_too_long`; see `config/alerts.rs`).
    pub alerting: JobAlerting,
    /// The job's own options.
    pub options: O,
}

impl<O: JobOptions> JobSection<O> {
    /// A section with the defaults of `kind` and of the options type.
    pub(crate) fn for_kind(kind: &JobKind) -> Self {
        JobSection {
            schedule: kind.schedule.to_owned(),
            timezone: None,
            timeout: kind.timeout,
            enabled: true,
            overlap: OverlapPolicy::Skip,
            overlap_scope: OverlapScope::Instance,
            max_concurrent: None,
            retry: RetryConfig::from_policy(&(kind.retry)()),
            misfire: MisfireConfig::default(),
            alerting: JobAlerting::default(),
            options: O::default(),
        }
    }

    /// The scheduling settings, borrowed.
    pub fn common(&self) -> CommonSettings<'_> {
        CommonSettings {
            schedule: &self.schedule,
            timezone: self.timezone.as_deref(),
            timeout: self.timeout,
            enabled: self.enabled,
            overlap: self.overlap,
            overlap_scope: self.overlap_scope,
            max_concurrent: self.max_concurrent,
            retry: &self.retry,
            misfire: &self.misfire,
            alerting: &self.alerting,
        }
    }

    /// Every key of the section (common keys, then the options).
    pub fn keys() -> impl Iterator<Item = (&'static str, EnvKind)> {
        COMMON_JOB_KEYS.iter().chain(O::KEYS.iter()).copied()
    }

    /// Overlays the keys present in `table` on `self`. An error is
    /// `(key, reason)`, the key relative to the section.
    pub(crate) fn overlay(&mut self, table: toml::Table) -> Result<(), (String, String)> {
        let mut options = toml::Table::new();
        for (key, value) in table {
            let field = |e: toml::de::Error| (key.clone(), e.message().to_owned());
            match key.as_str() {
                "schedule" => self.schedule = de::schedule(value).map_err(field)?,
                "timezone" => self.timezone = Some(String::deserialize(value).map_err(field)?),
                "timeout" => self.timeout = de::duration(value).map_err(field)?,
                "enabled" => self.enabled = bool::deserialize(value).map_err(field)?,
                "overlap" => self.overlap = OverlapPolicy::deserialize(value).map_err(field)?,
                "overlap_scope" => {
                    self.overlap_scope = OverlapScope::deserialize(value).map_err(field)?;
                }
                "max_concurrent" => {
                    self.max_concurrent =
                        Some(max_concurrent(&value).map_err(|r| (key.clone(), r))?);
                }
                "retry" => self.retry = sub_table(&key, value)?,
                "misfire" => self.misfire = sub_table(&key, value)?,
                k if JobAlerting::KEYS.contains(&k) => {
                    self.alerting.set(k, value).map_err(|r| (key.clone(), r))?;
                }
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
        Ok(())
    }
}

/// A job's `max_concurrent`: an integer from 1 to `u32::MAX`; the error
/// names the value.
fn max_concurrent(value: &toml::Value) -> Result<u32, String> {
    match value {
        toml::Value::Integer(n) => match u32::try_from(*n) {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!("must be an integer from 1 to {}, got {n}", u32::MAX)),
        },
        other => Err(format!(
            "expected an integer of at least 1 (runs at once), got {} {other}",
            other.type_str()
        )),
    }
}

/// `[jobs]`: the seven built-in jobs, by id, and the jobs of your own. Each
/// field is the section of one built-in row of [`JOBS`], whose defaults it
/// starts with.
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
    /// The jobs of your own (`[jobs.<id>]` with a `kind`), by id.
    pub user: BTreeMap<String, UserJobDef>,
}

/// How many rows of [`JOBS`] are built-in jobs.
const BUILTIN_JOBS: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < JOBS.len() {
        if JOBS[i].is_builtin() {
            n += 1;
        }
        i += 1;
    }
    n
};

/// The seven built-in job ids, in the order they are documented: those of
/// the built-in rows of [`JOBS`].
pub const JOB_IDS: [&str; BUILTIN_JOBS] = {
    let mut ids = [""; BUILTIN_JOBS];
    let (mut i, mut n) = (0, 0);
    while i < JOBS.len() {
        if JOBS[i].is_builtin() {
            ids[n] = JOBS[i].id;
            n += 1;
        }
        i += 1;
    }
    ids
};

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            history_retention: JobSection::for_kind(&defs::HISTORY_RETENTION),
            database_backup: JobSection::for_kind(&defs::DATABASE_BACKUP),
            log_rotation: JobSection::for_kind(&defs::LOG_ROTATION),
            temp_cleanup: JobSection::for_kind(&defs::TEMP_CLEANUP),
            security_scan: JobSection::for_kind(&defs::SECURITY_SCAN),
            metrics_aggregation: JobSection::for_kind(&defs::METRICS_AGGREGATION),
            health_snapshot: JobSection::for_kind(&defs::HEALTH_SNAPSHOT),
            user: BTreeMap::new(),
        }
    }
}

/// One configured job, built-in or of your own: its id, display name, the
/// row of its kind and its scheduling settings.
#[derive(Debug, Clone, Copy)]
pub struct ConfiguredJob<'a> {
    /// The id.
    pub id: &'a str,
    /// The display name: the row's for a built-in job, the id for a job of
    /// your own.
    pub name: &'a str,
    /// The row of its kind in [`JOBS`].
    pub kind: &'static JobKind,
    /// The scheduling settings.
    pub common: CommonSettings<'a>,
}

impl JobsConfig {
    /// The keys of the section of built-in job `id` (none for another id).
    pub fn keys_of(id: &str) -> Vec<(&'static str, EnvKind)> {
        job_kind(id).map(|k| k.keys()).unwrap_or_default()
    }

    /// The scheduling settings of job `id`, without its options.
    pub fn common(&self, id: &str) -> Option<CommonSettings<'_>> {
        self.get(id).map(|j| j.common)
    }

    /// Job `id`, built-in or of your own.
    pub fn get(&self, id: &str) -> Option<ConfiguredJob<'_>> {
        match job_kind(id) {
            Some(kind) => kind.builtin_common(self).map(|common| ConfiguredJob {
                id: kind.id,
                name: kind.name,
                kind,
                common,
            }),
            None => self.user.get_key_value(id).map(|(id, def)| ConfiguredJob {
                id,
                name: id,
                kind: def.kind(),
                common: def.common(),
            }),
        }
    }

    /// Every job: the built-in ones in the order of [`JOBS`], then the jobs
    /// of your own by id.
    pub fn all(&self) -> Vec<ConfiguredJob<'_>> {
        JOBS.iter()
            .filter(|k| k.is_builtin())
            .filter_map(|k| self.get(k.id))
            .chain(self.user.keys().filter_map(|id| self.get(id)))
            .collect()
    }

    /// The longest `kill_grace` of the command jobs (zero without any): how
    /// long a process group may still need to be killed after a stop.
    pub fn max_kill_grace(&self) -> std::time::Duration {
        self.user
            .values()
            .filter_map(|d| match d {
                UserJobDef::Command(s) => Some(s.options.kill_grace),
                UserJobDef::Http(_) => None,
            })
            .max()
            .unwrap_or_default()
    }

    /// Whether job `id` has the same section (scheduling settings and
    /// options, secrets included) in `self` and `other`; a job in only one
    /// of them is not the same.
    pub fn same_job(&self, other: &JobsConfig, id: &str) -> bool {
        match job_kind(id) {
            Some(kind) => kind.same_section(self, other),
            None => matches!((self.user.get(id), other.user.get(id)), (Some(a), Some(b)) if a == b),
        }
    }

    /// A copy with every job's alert keys unset: two configurations whose
    /// copies are the same job ([`same_job`](Self::same_job)) differ at
    /// most in alert keys, which a reload applies without registering the
    /// job again.
    pub(crate) fn without_alert_keys(&self) -> JobsConfig {
        let mut j = self.clone();
        j.history_retention.alerting = JobAlerting::default();
        j.database_backup.alerting = JobAlerting::default();
        j.log_rotation.alerting = JobAlerting::default();
        j.temp_cleanup.alerting = JobAlerting::default();
        j.security_scan.alerting = JobAlerting::default();
        j.metrics_aggregation.alerting = JobAlerting::default();
        j.health_snapshot.alerting = JobAlerting::default();
        for def in j.user.values_mut() {
            match def {
                UserJobDef::Command(s) => s.alerting = JobAlerting::default(),
                UserJobDef::Http(s) => s.alerting = JobAlerting::default(),
            }
        }
        j
    }

    /// The ids of every job, as [`all`](Self::all) lists them.
    pub fn ids(&self) -> Vec<String> {
        self.all().iter().map(|j| j.id.to_owned()).collect()
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
    /// Where the overlap policy holds.
    pub overlap_scope: OverlapScope,
    /// The cap on simultaneous runs, if any.
    pub max_concurrent: Option<u32>,
    /// The retry settings.
    pub retry: &'a RetryConfig,
    /// The misfire settings.
    pub misfire: &'a MisfireConfig,
    /// The alert keys.
    pub alerting: &'a JobAlerting,
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

    /// Checks what the types allow but the engine does not: a schedule or
    /// time zone that does not parse, a zero timeout, attempt count or
    /// `max_concurrent`, an invalid retry policy, `run_all` without runs.
    /// An error is `(key, reason)`, the key relative to the section.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if let Err(e) = Schedule::parse(self.schedule) {
            return Err(("schedule", e.to_string()));
        }
        match self.parsed_schedule() {
            Err(e) => return Err(("timezone", e.to_string())),
            // The engine takes any interval; a job defined here that could
            // never run is a mistake to name now, as a cron that never
            // matches is.
            Ok(s)
                if s.interval_duration().is_some()
                    && s.next_after(DateTime::<Utc>::UNIX_EPOCH).is_none() =>
            {
                return Err((
                    "schedule",
                    format!(
                        "\"{}\" is longer than the calendar, which ends in the year 262143: from any time after 1970 its first fire falls past that, so it would never fire",
                        self.schedule
                    ),
                ));
            }
            Ok(_) => {}
        }
        if self.timeout.is_zero() {
            return Err(("timeout", "must be greater than zero".to_owned()));
        }
        if self.max_concurrent == Some(0) {
            return Err(("max_concurrent", "must be at least 1, got 0".to_owned()));
        }
        if self.retry.attempts == 0 {
            return Err(("retry.attempts", "must be at least 1 (1 means no retry)".to_owned()));
        }
        if let Err(e) = self.retry.policy().validate() {
            return Err(("retry", e));
        }
        if self.misfire.mode == MisfireModeName::RunAll && self.misfire.max_runs == 0 {
            return Err(("misfire.max_runs", "must be at least 1 for run_all".to_owned()));
        }
        Ok(())
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
            let Some(kind) = job_kind(&id) else {
                if !t.contains_key("kind") {
                    return Err(D::Error::custom(format!(
                        "{id}: unknown job `{id}`, expected one of {}, or a job of your own \
                         with kind = \"command\" or kind = \"http\"",
                        JOB_IDS.map(|j| format!("`{j}`")).join(", ")
                    )));
                }
                let def = UserJobDef::from_toml(&id, t).map_err(|e| {
                    let key = if e.key.is_empty() { id.clone() } else { format!("{id}.{}", e.key) };
                    D::Error::custom(format!("{key}: {}", e.reason))
                })?;
                jobs.user.insert(id, def);
                continue;
            };
            if t.contains_key("kind") {
                return Err(err((
                    "kind".to_owned(),
                    format!(
                        "`{id}` is a built-in job, whose kind is fixed; a job of your own needs another id"
                    ),
                )));
            }
            kind.overlay(&mut jobs, t).map_err(err)?;
        }
        Ok(jobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn err(text: &str, env: impl Fn(&str) -> Option<String>) -> String {
        Config::from_toml_str(text, "mscribe.toml", env).unwrap_err().to_string()
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
    fn overlap_scope_and_max_concurrent_are_read_from_file_and_environment() {
        let c = Config::from_toml_str(
            "[jobs.database-backup]\noverlap_scope = \"cluster\"\nmax_concurrent = 2\n",
            "x",
            no_env,
        )
        .unwrap();
        let b = c.jobs.common("database-backup").unwrap();
        assert_eq!((b.overlap_scope, b.max_concurrent), (OverlapScope::Cluster, Some(2)));
        // The defaults: per instance, no cap.
        let r = c.jobs.common("history-retention").unwrap();
        assert_eq!((r.overlap_scope, r.max_concurrent), (OverlapScope::Instance, None));
        // The environment wins over the file.
        let c = Config::from_toml_str(
            "[jobs.database-backup]\noverlap_scope = \"cluster\"\n",
            "x",
            |k: &str| match k {
                "MSCRIBE_JOBS_DATABASE_BACKUP_OVERLAP_SCOPE" => Some("instance".to_owned()),
                "MSCRIBE_JOBS_HEALTH_SNAPSHOT_MAX_CONCURRENT" => Some(" 3 ".to_owned()),
                _ => None,
            },
        )
        .unwrap();
        assert_eq!(c.jobs.database_backup.overlap_scope, OverlapScope::Instance);
        assert_eq!(c.jobs.health_snapshot.max_concurrent, Some(3));
        // Both reach the job the server registers.
        let defs = crate::control::ops_definitions(&c);
        let snap = defs.iter().find(|d| d.job_id == "health-snapshot").unwrap();
        assert_eq!(snap.policies["max_concurrent"], 3);
        assert_eq!(snap.policies["overlap_scope"], "instance");
    }

    #[test]
    fn bad_overlap_scope_and_max_concurrent_name_the_key_and_the_value() {
        let cases = [
            (
                "[jobs.log-rotation]\noverlap_scope = \"global\"",
                "invalid config: key `jobs.log-rotation.overlap_scope` in file mscribe.toml: \
                 unknown variant `global`, expected `instance` or `cluster`",
            ),
            (
                "[jobs.log-rotation]\nmax_concurrent = 0",
                "invalid config: key `jobs.log-rotation.max_concurrent` in file mscribe.toml: \
                 must be an integer from 1 to 4294967295, got 0",
            ),
            (
                "[jobs.log-rotation]\nmax_concurrent = -2",
                "invalid config: key `jobs.log-rotation.max_concurrent` in file mscribe.toml: \
                 must be an integer from 1 to 4294967295, got -2",
            ),
            (
                "[jobs.log-rotation]\nmax_concurrent = \"two\"",
                "invalid config: key `jobs.log-rotation.max_concurrent` in file mscribe.toml: \
                 expected an integer of at least 1 (runs at once), got string \"two\"",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(err(text, no_env), want, "{text}");
        }
        let env_cases = [
            (
                "MSCRIBE_JOBS_TEMP_CLEANUP_MAX_CONCURRENT",
                "0",
                "invalid config: key `jobs.temp-cleanup.max_concurrent` in environment variable \
                 MSCRIBE_JOBS_TEMP_CLEANUP_MAX_CONCURRENT: must be an integer from 1 to \
                 4294967295, got 0",
            ),
            (
                "MSCRIBE_JOBS_TEMP_CLEANUP_MAX_CONCURRENT",
                "many",
                "invalid config: key `jobs.temp-cleanup.max_concurrent` in environment variable \
                 MSCRIBE_JOBS_TEMP_CLEANUP_MAX_CONCURRENT: expected an integer, got \"many\"",
            ),
            (
                "MSCRIBE_JOBS_TEMP_CLEANUP_OVERLAP_SCOPE",
                "Cluster",
                "invalid config: key `jobs.temp-cleanup.overlap_scope` in environment variable \
                 MSCRIBE_JOBS_TEMP_CLEANUP_OVERLAP_SCOPE: unknown variant `Cluster`, expected \
                 `instance` or `cluster`",
            ),
        ];
        for (var, val, want) in env_cases {
            assert_eq!(err("", |k: &str| (k == var).then(|| val.to_owned())), want, "{var}={val}");
        }
    }

    #[test]
    fn an_interval_past_the_end_of_the_calendar_is_refused_as_never_firing() {
        // About 300,000 years: from any time after 1970 its first fire is
        // past the last instant the calendar holds (year 262,143).
        for every in ["@every 2629999999h", "@every 109500000d"] {
            let e = err(&format!("[jobs.health-snapshot]\nschedule = \"{every}\"\n"), no_env);
            assert!(e.contains("key `jobs.health-snapshot.schedule`"), "{e}");
            assert!(e.contains(every) && e.contains("it would never fire"), "{e}");
        }
        // A long one that fires is kept; so is a phase that fires once.
        for kept in ["@every 1752000000h", "@every 2629999999h from 2030-01-01T00:00:00Z"] {
            let toml = format!("[jobs.health-snapshot]\nschedule = \"{kept}\"\n");
            assert!(Config::from_toml_str(&toml, "x", no_env).is_ok(), "{kept}");
        }
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
}
