//! The table of the operational jobs: one row per kind of job, defined once.
//!
//! Everything the server switches on by job is in its row, as ripgrep's
//! `flags/defs.rs` defines each flag once.
//!
//! A row ([`JobKind`]) gives the job's id (also its config section
//! `[jobs.<id>]` and its metric label), its display name, its default
//! schedule, timeout and retry policy, whether every instance runs it, whether
//! the scheduler health probe watches its failures, and its settings: the
//! options type of its section ([`JobSection<O>`]), where that section lives
//! in [`JobsConfig`], and the constructor of its handler from the process
//! ([`OpsContext`]) and those options.
//!
//! Everything else reads [`JOBS`]:
//!
//! | reader | what it takes |
//! |---|---|
//! | [`ops_jobs`](super::ops_jobs) (registration) | every row's [`JobKind::job_config`] |
//! | [`JobsConfig`]'s `Default` | each row's defaults ([`JobSection::for_kind`]) |
//! | `[jobs]` deserialization | the ids (an unknown job is refused, naming them), each row's section keys |
//! | [`env_keys`](crate::config::env_keys) | each row's keys: `MSCRIBE_JOBS_<ID>_<KEY>` |
//! | config validation | each row's scheduling settings, its options' [`JobOptions::check`] |
//! | [`JOB_IDS`](crate::config::JOB_IDS), [`job_name`](super::job_name) | ids and names |
//! | `mscribe jobs`, `run`, `history` | ids, names, scheduling settings |
//! | [`App::build`](crate::app::App::build) | the rows whose failures the scheduler probe watches |
//! | the docs tests (`docs_readme.rs`) | the job tables of the README and MAINTENANCE.md (ids, default schedules and timeouts), the jobs `claim_fires` still runs on each instance |
//!
//! Adding a built-in job: its options type in `config/jobs.rs` (a
//! [`JobOptions`] with its keys and defaults), a field of that section type
//! in [`JobsConfig`] (and its `Default`), a row here, and a line in [`JOBS`].
//!
//! The rows are kinds of job. The seven built-in kinds have one job each,
//! whose id is the kind's, with a fixed section in [`JobsConfig`]
//! ([`Sections::Builtin`]). The kinds `command` and `http` have the jobs of
//! your own (`[jobs.<id>] kind = "command"` or `"http"`,
//! [`UserJobDef`]), their sections kept by id in [`JobsConfig::user`]
//! ([`Sections::User`]); their rows give the defaults (no default
//! schedule: one is required), the keys, whether every instance runs them
//! (no: once per cluster under `claim_fires`) and the constructor of the
//! handler from the job's id and options. [`JobsConfig::all`] lists every
//! job, built-in or not, with the row of its kind.

use std::time::Duration;

use mscribe_scheduler::{JobConfig, RetryPolicy};

use super::{
    CommandJob, DatabaseBackup, HealthSnapshotJob, HistoryRetention, HttpJob, LogRotation,
    MetricsAggregation, OpsContext, OpsJob, SecurityScan, TempCleanup, job_config,
};
use crate::config::{
    AggregationOptions, BackupOptions, CleanupOptions, CommandOptions, CommonSettings, EnvKind,
    HttpOptions, JobOptions, JobSection, JobsConfig, LogRotationOptions, RetentionOptions,
    SecurityOptions, SnapshotOptions, UserJobDef,
};

/// Every kind of job, in the order they are documented and listed: the
/// seven built-in jobs, then the kinds of the jobs of your own.
pub const JOBS: &[JobKind] = &[
    HISTORY_RETENTION,
    DATABASE_BACKUP,
    LOG_ROTATION,
    TEMP_CLEANUP,
    SECURITY_SCAN,
    METRICS_AGGREGATION,
    HEALTH_SNAPSHOT,
    COMMAND,
    HTTP,
];

const fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

pub(crate) const HISTORY_RETENTION: JobKind = JobKind {
    id: "history-retention",
    name: "History retention",
    schedule: "30 3 * * *",
    timeout: minutes(10),
    retry: RetryPolicy::none,
    per_instance: false,
    watch_failures: false,
    settings: Sections::Builtin(&Settings::<RetentionOptions> {
        section: |j| &j.history_retention,
        section_mut: |j| &mut j.history_retention,
        build: |ctx, o| {
            Box::new(HistoryRetention::new(ctx.db.store(), o.clone()).with_database(ctx.db.clone()))
        },
    }),
};

pub(crate) const DATABASE_BACKUP: JobKind = JobKind {
    id: "database-backup",
    name: "Database backup",
    schedule: "0 2 * * *",
    timeout: minutes(30),
    retry: || {
        RetryPolicy::exponential(3).initial_delay(Duration::from_secs(30)).max_delay(minutes(10))
    },
    per_instance: false,
    watch_failures: true,
    settings: Sections::Builtin(&Settings::<BackupOptions> {
        section: |j| &j.database_backup,
        section_mut: |j| &mut j.database_backup,
        build: |ctx, o| {
            Box::new(DatabaseBackup::new(ctx.db.clone(), ctx.config.backup_dir.clone(), o.clone()))
        },
    }),
};

pub(crate) const LOG_ROTATION: JobKind = JobKind {
    id: "log-rotation",
    name: "Log rotation",
    schedule: "0 * * * *",
    timeout: minutes(5),
    retry: RetryPolicy::none,
    per_instance: true,
    watch_failures: false,
    settings: Sections::Builtin(&Settings::<LogRotationOptions> {
        section: |j| &j.log_rotation,
        section_mut: |j| &mut j.log_rotation,
        build: |ctx, o| {
            Box::new(
                LogRotation::new(ctx.config.log_dir.clone(), o.clone())
                    .on_rotated_opt(ctx.on_log_rotated.clone()),
            )
        },
    }),
};

pub(crate) const TEMP_CLEANUP: JobKind = JobKind {
    id: "temp-cleanup",
    name: "Temp and cache cleanup",
    schedule: "15 4 * * *",
    timeout: minutes(10),
    retry: RetryPolicy::none,
    per_instance: true,
    watch_failures: false,
    settings: Sections::Builtin(&Settings::<CleanupOptions> {
        section: |j| &j.temp_cleanup,
        section_mut: |j| &mut j.temp_cleanup,
        build: |ctx, o| {
            Box::new(TempCleanup::new(ctx.config.cleanup_dirs(), o.max_age, o.remove_empty_dirs))
        },
    }),
};

pub(crate) const SECURITY_SCAN: JobKind = JobKind {
    id: "security-scan",
    name: "Security scan",
    schedule: "0 6 * * *",
    timeout: minutes(2),
    retry: RetryPolicy::none,
    per_instance: true,
    watch_failures: false,
    settings: Sections::Builtin(&Settings::<SecurityOptions> {
        section: |j| &j.security_scan,
        section_mut: |j| &mut j.security_scan,
        build: |ctx, o| Box::new(security_scan(ctx, o)),
    }),
};

pub(crate) const METRICS_AGGREGATION: JobKind = JobKind {
    id: "metrics-aggregation",
    name: "Hourly metric aggregation",
    schedule: "5 * * * *",
    timeout: minutes(5),
    retry: RetryPolicy::none,
    per_instance: false,
    watch_failures: false,
    settings: Sections::Builtin(&Settings::<AggregationOptions> {
        section: |j| &j.metrics_aggregation,
        section_mut: |j| &mut j.metrics_aggregation,
        build: |ctx, o| Box::new(MetricsAggregation::new(ctx.db.clone(), o.lookback)),
    }),
};

pub(crate) const HEALTH_SNAPSHOT: JobKind = JobKind {
    id: "health-snapshot",
    name: "Health snapshot",
    schedule: "*/5 * * * *",
    timeout: Duration::from_secs(30),
    retry: RetryPolicy::none,
    per_instance: true,
    watch_failures: false,
    settings: Sections::Builtin(&Settings::<SnapshotOptions> {
        section: |j| &j.health_snapshot,
        section_mut: |j| &mut j.health_snapshot,
        build: |ctx, o| Box::new(HealthSnapshotJob::new(ctx.health.clone(), o.fail_when_unhealthy)),
    }),
};

pub(crate) const COMMAND: JobKind = JobKind {
    id: "command",
    name: "Command",
    schedule: "",
    timeout: minutes(10),
    retry: RetryPolicy::none,
    per_instance: false,
    watch_failures: false,
    settings: Sections::User(&UserRow::<CommandOptions> {
        options: |d| match d {
            UserJobDef::Command(s) => Some(&s.options),
            UserJobDef::Http(_) => None,
        },
        build: |id, o| Box::new(CommandJob::new(id, o.clone())),
    }),
};

pub(crate) const HTTP: JobKind = JobKind {
    id: "http",
    name: "HTTP request",
    schedule: "",
    timeout: Duration::from_secs(30),
    retry: RetryPolicy::none,
    per_instance: false,
    watch_failures: false,
    settings: Sections::User(&UserRow::<HttpOptions> {
        options: |d| match d {
            UserJobDef::Http(s) => Some(&s.options),
            UserJobDef::Command(_) => None,
        },
        build: |id, o| Box::new(HttpJob::new(id, o.clone())),
    }),
};

/// The security scan of the process: the config file, the SQLite file, the
/// token file and `extra_paths`, the server's directories, the admin token.
fn security_scan(ctx: &OpsContext, o: &SecurityOptions) -> SecurityScan {
    let cfg = &ctx.config;
    let mut secrets = vec![cfg.token_file()];
    secrets.extend(o.extra_paths.iter().cloned());
    SecurityScan {
        config_file: cfg.source.clone(),
        database_file: ctx.db.sqlite_path().map(std::path::Path::to_path_buf),
        secret_files: secrets,
        directories: vec![cfg.data_dir.clone(), cfg.backup_dir.clone(), cfg.log_dir.clone()],
        backup_dir: Some(cfg.backup_dir.clone()),
        admin_token: ctx.admin_token.clone(),
        min_token_length: o.min_token_length,
    }
}

/// One row of [`JOBS`]: a kind of job and everything the server switches on
/// by it.
#[derive(Clone, Copy)]
pub struct JobKind {
    /// A built-in job's id: its section `[jobs.<id>]`, the `job` label of
    /// its metrics, the `MSCRIBE_JOBS_<ID>_*` of its keys. For a kind of
    /// jobs of your own, the kind (`kind = "command"`).
    pub id: &'static str,
    /// The display name (`mscribe jobs --json`, `GET /jobs`).
    pub name: &'static str,
    /// The default schedule (`schedule`); empty for the kinds of jobs of
    /// your own, whose schedule is required.
    pub schedule: &'static str,
    /// The default per-attempt timeout (`timeout`).
    pub timeout: Duration,
    /// The default retry policy (`retry`).
    pub retry: fn() -> RetryPolicy,
    /// Whether every instance runs the job's fires even when they are
    /// claimed (`claim_fires`): work on the instance's own files
    /// ([`JobConfig::per_instance`]).
    pub per_instance: bool,
    /// Whether the `scheduler` health check is degraded while the job's last
    /// run failed ([`SchedulerProbe::watch_failures`](crate::health::SchedulerProbe::watch_failures)).
    pub watch_failures: bool,
    /// The settings type, where its sections live, the constructor.
    pub(crate) settings: Sections,
}

/// Where the sections of a kind live, with their typed settings.
#[derive(Clone, Copy)]
pub(crate) enum Sections {
    /// A built-in job: one section, a field of [`JobsConfig`].
    Builtin(&'static dyn AnySettings),
    /// Jobs of your own: sections by id in [`JobsConfig::user`].
    User(&'static dyn UserSettings),
}

impl std::fmt::Debug for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobKind")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("schedule", &self.schedule)
            .field("timeout", &self.timeout)
            .field("per_instance", &self.per_instance)
            .field("watch_failures", &self.watch_failures)
            .field("builtin", &self.is_builtin())
            .finish_non_exhaustive()
    }
}

/// The row of built-in job `id`, if there is one (the rows of the kinds
/// `command` and `http` are no job's).
pub fn job_kind(id: &str) -> Option<&'static JobKind> {
    JOBS.iter().find(|k| k.is_builtin() && k.id == id)
}

impl JobKind {
    /// Whether the row is a built-in job (else a kind of jobs of your own).
    pub const fn is_builtin(&self) -> bool {
        matches!(self.settings, Sections::Builtin(_))
    }

    /// Every key of a section of this kind: the common ones, then its
    /// options' ([`JobSection::keys`]).
    pub fn keys(&self) -> Vec<(&'static str, EnvKind)> {
        match self.settings {
            Sections::Builtin(s) => s.keys(),
            Sections::User(u) => u.keys(),
        }
    }

    /// A built-in job's scheduling settings in `jobs`; `None` for the kind
    /// of jobs of your own (see [`JobsConfig::get`]).
    pub(crate) fn builtin_common<'a>(&self, jobs: &'a JobsConfig) -> Option<CommonSettings<'a>> {
        match self.settings {
            Sections::Builtin(s) => Some(s.common(jobs)),
            Sections::User(_) => None,
        }
    }

    /// Whether a built-in job's section is the same in `a` and `b` (always
    /// false for the kinds of jobs of your own, which have one per id).
    pub(crate) fn same_section(&self, a: &JobsConfig, b: &JobsConfig) -> bool {
        match self.settings {
            Sections::Builtin(s) => s.same(a, b),
            Sections::User(_) => false,
        }
    }

    /// Job `id` of this kind, configured from `ctx.config`: its handler
    /// built from its options, its scheduling settings,
    /// [`per_instance`](Self::per_instance). `None` when `ctx.config` has no
    /// such job of this kind.
    pub fn job_config(&self, ctx: &OpsContext, id: &str) -> Option<JobConfig> {
        let (name, common, handler) = match self.settings {
            Sections::Builtin(s) if id == self.id => {
                (self.name, s.common(&ctx.config.jobs), s.handler(ctx))
            }
            Sections::Builtin(_) => return None,
            Sections::User(_) => {
                let def = ctx.config.jobs.user.get(id)?;
                return user_job_config(id, def).filter(|_| def.kind().id == self.id);
            }
        };
        Some(job_config(id, name, common, handler).per_instance(self.per_instance))
    }

    /// Overlays the keys of `table` on a built-in job's section in `jobs`.
    /// An error is `(key, reason)`, the key relative to the section.
    pub(crate) fn overlay(
        &self,
        jobs: &mut JobsConfig,
        table: toml::Table,
    ) -> Result<(), (String, String)> {
        match self.settings {
            Sections::Builtin(s) => s.overlay(jobs, table),
            Sections::User(_) => {
                Err(("kind".to_owned(), format!("`{}` is a kind of job, not a job", self.id)))
            }
        }
    }

    /// Checks a built-in job's options in `jobs` ([`JobOptions::check`]);
    /// the jobs of your own check themselves ([`UserJobDef::check`]).
    pub(crate) fn check(&self, jobs: &JobsConfig) -> Result<(), (&'static str, String)> {
        match self.settings {
            Sections::Builtin(s) => s.check(jobs),
            Sections::User(_) => Ok(()),
        }
    }
}

/// The typed part of a built-in row: the options type `O` of the job's
/// section (a [`JobSection<O>`]), where that section lives in
/// [`JobsConfig`], and the constructor of the job's handler from the
/// process and the options.
pub(crate) struct Settings<O: 'static> {
    /// The job's section.
    pub(crate) section: fn(&JobsConfig) -> &JobSection<O>,
    /// The same, to overlay a `[jobs.<id>]` table on.
    pub(crate) section_mut: fn(&mut JobsConfig) -> &mut JobSection<O>,
    /// The constructor.
    pub(crate) build: fn(&OpsContext, &O) -> Box<dyn OpsJob>,
}

/// [`Settings`] with the options type erased, so rows of different types
/// make one table.
pub(crate) trait AnySettings: Sync {
    /// The keys of the section ([`JobSection::keys`]).
    fn keys(&self) -> Vec<(&'static str, EnvKind)>;
    /// The scheduling settings of the section.
    fn common<'a>(&self, jobs: &'a JobsConfig) -> CommonSettings<'a>;
    /// Overlays a `[jobs.<id>]` table on the section.
    fn overlay(&self, jobs: &mut JobsConfig, table: toml::Table) -> Result<(), (String, String)>;
    /// Checks the options.
    fn check(&self, jobs: &JobsConfig) -> Result<(), (&'static str, String)>;
    /// Builds the handler.
    fn handler(&self, ctx: &OpsContext) -> Box<dyn OpsJob>;
    /// Whether the section is the same in `a` and `b`.
    fn same(&self, a: &JobsConfig, b: &JobsConfig) -> bool;
}

impl<O: JobOptions> AnySettings for Settings<O> {
    fn keys(&self) -> Vec<(&'static str, EnvKind)> {
        JobSection::<O>::keys().collect()
    }

    fn common<'a>(&self, jobs: &'a JobsConfig) -> CommonSettings<'a> {
        (self.section)(jobs).common()
    }

    fn overlay(&self, jobs: &mut JobsConfig, table: toml::Table) -> Result<(), (String, String)> {
        (self.section_mut)(jobs).overlay(table)
    }

    fn check(&self, jobs: &JobsConfig) -> Result<(), (&'static str, String)> {
        (self.section)(jobs).options.check()
    }

    fn handler(&self, ctx: &OpsContext) -> Box<dyn OpsJob> {
        (self.build)(ctx, &(self.section)(&ctx.config.jobs).options)
    }

    fn same(&self, a: &JobsConfig, b: &JobsConfig) -> bool {
        (self.section)(a) == (self.section)(b)
    }
}

/// Job `id` of your own from its definition, wherever it comes from (the
/// configuration, or the API: the same handler and settings): named by
/// its id, [`per_instance`](JobKind::per_instance) as its kind says.
pub(crate) fn user_job_config(id: &str, def: &UserJobDef) -> Option<JobConfig> {
    let kind = def.kind();
    let Sections::User(u) = kind.settings else { return None };
    Some(job_config(id, id, def.common(), u.handler(id, def)?).per_instance(kind.per_instance))
}

/// The typed part of a row of a kind of jobs of your own: the options type
/// `O`, how to find it in a [`UserJobDef`], and the constructor of a job's
/// handler from its id and options.
pub(crate) struct UserRow<O: 'static> {
    /// The options of a definition of this kind.
    pub(crate) options: fn(&UserJobDef) -> Option<&O>,
    /// The constructor.
    pub(crate) build: fn(&str, &O) -> Box<dyn OpsJob>,
}

/// [`UserRow`] with the options type erased.
pub(crate) trait UserSettings: Sync {
    /// The keys of a section of the kind ([`JobSection::keys`]).
    fn keys(&self) -> Vec<(&'static str, EnvKind)>;
    /// Builds the handler of job `id`; `None` when `def` is of another kind.
    fn handler(&self, id: &str, def: &UserJobDef) -> Option<Box<dyn OpsJob>>;
}

impl<O: JobOptions> UserSettings for UserRow<O> {
    fn keys(&self) -> Vec<(&'static str, EnvKind)> {
        JobSection::<O>::keys().collect()
    }

    fn handler(&self, id: &str, def: &UserJobDef) -> Option<Box<dyn OpsJob>> {
        (self.options)(def).map(|o| (self.build)(id, o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_the_constructors_match_their_sections() {
        let mut ids: Vec<&str> = JOBS.iter().map(|k| k.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), JOBS.len());
        for k in JOBS {
            let found = job_kind(k.id).map(|f| f.id);
            assert_eq!(found, k.is_builtin().then_some(k.id));
            // Job ids contain no dots, so `jobs.<id>.<key>` splits cleanly.
            assert!(!k.id.contains('.'), "{}", k.id);
        }
        assert!(job_kind("backup").is_none());
        let user: Vec<&str> = JOBS.iter().filter(|k| !k.is_builtin()).map(|k| k.id).collect();
        assert_eq!(user, crate::config::USER_KINDS);
        // The jobs of your own have no default schedule and run once per
        // cluster.
        assert!(JOBS.iter().filter(|k| !k.is_builtin()).all(|k| k.schedule.is_empty()));
        assert!(JOBS.iter().filter(|k| !k.is_builtin()).all(|k| !k.per_instance));
        assert_eq!(JOBS.iter().filter(|k| k.watch_failures).count(), 1);
    }
}
