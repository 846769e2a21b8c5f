//! The commands that act in this process and on the database directly:
//! `serve`, `migrate`, `run`, and `jobs`, `history`, `trigger`, `pause`,
//! `resume`, `cancel`, `audit` without `--url`. All but `serve` and
//! `migrate` open the database with [`Database::open_existing`], which
//! neither creates nor migrates it; the control actions are written through the storage
//! crate's `ControlStore` (source `cli`), where running servers pick them
//! up.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mscribe_scheduler::{
    ExecutionId, ExecutionRecord, ExecutionStatus, ExecutionStore, HistoryQuery, StoreError,
    TriggerOutcome,
};
use mscribe_storage::{
    AuditQuery, ControlStore, JobDefinition, MAX_NOTE_CHARS, NewCancel, NewTrigger, PauseChange,
    Source,
};
use serde_json::json;

use super::{
    AuditArgs, Cli, CliResult, Failure, HistoryArgs, audit_table, history_table, load, out, table,
    ts,
};
use crate::app::{App, BuildOptions, ensure_dirs};
use crate::config::{CommonSettings, Config, JOB_IDS};
use crate::control::{is_defined_here, runs_here, stored_definition};
use crate::db::Database;
use crate::http::cursor::{self, Cursor};
use crate::logging::{LOG_FILE_NAME, LogFile};

pub(super) async fn serve(cli: &Cli) -> CliResult {
    let cfg = load(cli)?;
    // The port first: a taken port fails before anything is created or
    // migrated (the server binds again when it starts, a moment later).
    if cfg.listen.port() != 0 {
        std::net::TcpListener::bind(cfg.listen).map_err(|e| {
            Failure::Io(format!(
                "cannot listen on {}: {e} (is another server running there?); nothing was \
                 created or migrated",
                cfg.listen
            ))
        })?;
    }
    ensure_dirs(&cfg).map_err(|e| Failure::Io(e.to_string()))?;
    let log_file = if cfg.log_to_file {
        Some(LogFile::open(&cfg.log_dir.join(LOG_FILE_NAME)).map_err(|e| {
            Failure::Io(format!("cannot open log file in {}: {e}", cfg.log_dir.display()))
        })?)
    } else {
        None
    };
    let telemetry = crate::logging::init_serve(
        &cfg.log_level,
        cfg.log_format,
        log_file.clone(),
        &cfg.telemetry,
    )
    .map_err(Failure::Usage)?;
    for name in &cfg.unknown_env {
        tracing::warn!(variable = %name, "unknown MSCRIBE_ environment variable ignored");
    }
    if let Some(src) = &cfg.source {
        tracing::debug!(config = %src.display(), "configuration loaded");
    } else {
        tracing::debug!("no config file; using defaults and environment overrides");
    }
    let on_log_rotated: Option<Arc<dyn Fn() + Send + Sync>> =
        log_file.map(|f| Arc::new(move || f.reopen()) as Arc<dyn Fn() + Send + Sync>);
    let app = App::build(cfg, BuildOptions { on_log_rotated, ..Default::default() })
        .await
        .map_err(app_failure)?;
    let served = app
        .serve(|addr| {
            out!("mscribe listening on http://{addr}");
        })
        .await;
    // The spans of the last runs and requests, before the process ends.
    if telemetry.is_on() {
        let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    }
    served.map_err(app_failure)?;
    Ok(ExitCode::SUCCESS)
}

fn app_failure(e: crate::app::AppError) -> Failure {
    use crate::app::AppError;
    match e {
        AppError::Db(db) => Failure::from(db),
        AppError::Scheduler(_) => Failure::Usage(e.to_string()),
        other => Failure::Io(other.to_string()),
    }
}

/// The preamble of `migrate`: the config, warnings only, the database
/// opened (created and migrated).
async fn open_for_migrate(cli: &Cli) -> Result<(Config, Database), Failure> {
    let cfg = load(cli)?;
    crate::logging::init("warn", None);
    let db = Database::open(&cfg.database_url).await?;
    Ok((cfg, db))
}

/// The preamble of the commands that use an existing database: the
/// config, warnings only, the database opened without creating or
/// migrating it.
pub(super) async fn open_existing(cli: &Cli) -> Result<(Config, Database), Failure> {
    let cfg = load(cli)?;
    crate::logging::init("warn", None);
    let db = Database::open_existing(&cfg.database_url).await?;
    Ok((cfg, db))
}

pub(super) async fn migrate(cli: &Cli) -> CliResult {
    let (_, db) = open_for_migrate(cli).await?;
    let latest = match &db {
        Database::Sqlite { .. } => mscribe_storage::migrate::SQLITE_MIGRATIONS.last(),
        Database::Postgres { .. } => mscribe_storage::migrate::POSTGRES_MIGRATIONS.last(),
    };
    out!(
        "{}: migrated to {} (plus table job_metrics_hourly)",
        db.target(),
        latest.map(|m| m.label()).unwrap_or_default()
    );
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// What the table shows for a trigger-only job's schedule (JSON: `null`).
pub const TRIGGER_ONLY: &str = "trigger only";

/// A job's schedule as listed: its text, then its time zone in
/// parentheses; `None` for a trigger-only job (no schedule, or an empty
/// one), which JSON shows as `null` and the table as [`TRIGGER_ONLY`].
pub fn schedule_label(schedule: Option<&str>, timezone: Option<&str>) -> Option<String> {
    let s = schedule.map(str::trim).filter(|s| !s.is_empty())?;
    Some(match timezone {
        Some(tz) => format!("{s} ({tz})"),
        None => s.to_owned(),
    })
}

/// One line of `mscribe jobs`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobLine {
    /// The id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// The schedule with its time zone ([`schedule_label`]); `null` for a
    /// trigger-only job.
    pub schedule: Option<String>,
    /// Whether the job is scheduled (not `enabled = false`).
    pub enabled: bool,
    /// The next nominal fire after now, if enabled and scheduled.
    pub next_run: Option<DateTime<Utc>>,
    /// The latest `scheduled_at` among the job's fires that ran or were
    /// skipped, manual triggers included: the newest `scheduled_at` of its
    /// rows (`ExecutionStore::last_fires`), as `JobInfo::last_run` and
    /// `GET /jobs` report it.
    pub last_run: Option<DateTime<Utc>>,
    /// The status of the latest stored row.
    pub last_status: Option<ExecutionStatus>,
    /// Whether the job is paused in the database (through the API or the
    /// command line), on every instance.
    pub paused: bool,
    /// The note of the pause, if any.
    pub pause_note: Option<String>,
}

impl JobLine {
    /// The line as table cells: job, schedule (or [`TRIGGER_ONLY`]), next
    /// run (or `disabled`, or `paused`), last run, last status.
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.schedule.clone().unwrap_or_else(|| TRIGGER_ONLY.to_owned()),
            if !self.enabled {
                "disabled".to_owned()
            } else if self.paused {
                "paused".to_owned()
            } else {
                ts(self.next_run)
            },
            ts(self.last_run),
            self.last_status.map(|s| s.to_string()).unwrap_or_else(|| "-".to_owned()),
        ]
    }
}

/// The lines of `mscribe jobs`, as `GET /jobs` lists them: the configured
/// jobs, then (given a `control` store) the jobs defined through the API
/// or the CLI that the configuration does not have, by id; with what
/// `store` holds of them and their pause state, at `now`.
pub async fn job_lines(
    cfg: &Config,
    store: &dyn ExecutionStore,
    control: Option<&dyn ControlStore>,
    now: DateTime<Utc>,
) -> Result<Vec<JobLine>, StoreError> {
    let (pauses, stored) = match control {
        Some(c) => (c.pause_states().await?, c.definitions().await?),
        None => (Vec::new(), Vec::new()),
    };
    let mut lines: Vec<JobLine> = cfg
        .jobs
        .all()
        .into_iter()
        .map(|job| JobLine::configured(job.id, job.name, &job.common, now))
        .collect();
    let mut defined: Vec<JobLine> = stored
        .iter()
        .filter(|d| is_defined_here(d) && cfg.jobs.get(&d.job_id).is_none())
        .map(|d| JobLine::defined(d, now))
        .collect();
    defined.sort_by(|a, b| a.id.cmp(&b.id));
    lines.extend(defined);
    let ids: Vec<String> = lines.iter().map(|l| l.id.clone()).collect();
    let last_runs = store.last_fires(&ids).await?;
    for line in &mut lines {
        let last: Option<ExecutionRecord> =
            store.history(&HistoryQuery::new(line.id.as_str(), 1)).await?.pop();
        let pause = pauses.iter().find(|p| p.job_id == line.id && p.paused);
        line.last_run = last_runs.get(&line.id).copied();
        line.last_status = last.map(|r| r.status);
        line.paused = pause.is_some();
        line.pause_note = pause.and_then(|p| p.note.clone());
    }
    Ok(lines)
}

impl JobLine {
    /// The line of a job with these settings, before the store is read.
    fn configured(id: &str, name: &str, c: &CommonSettings<'_>, now: DateTime<Utc>) -> Self {
        let next =
            if c.enabled { c.parsed_schedule().ok().and_then(|s| s.next_after(now)) } else { None };
        JobLine {
            id: id.to_owned(),
            name: name.to_owned(),
            schedule: schedule_label(Some(c.schedule), c.timezone),
            enabled: c.enabled,
            next_run: next,
            last_run: None,
            last_status: None,
            paused: false,
            pause_note: None,
        }
    }

    /// The line of a job stored through the API or the CLI. A definition
    /// that no longer parses (written by another version) is listed with
    /// its stored schedule and no next run, as no instance runs it.
    fn defined(d: &JobDefinition, now: DateTime<Utc>) -> Self {
        match stored_definition(d) {
            Ok(def) => Self::configured(&d.job_id, &d.name, &def.common(), now),
            Err(_) => JobLine {
                id: d.job_id.clone(),
                name: d.name.clone(),
                schedule: schedule_label(d.schedule.as_deref(), d.timezone.as_deref()),
                enabled: true,
                next_run: None,
                last_run: None,
                last_status: None,
                paused: false,
                pause_note: None,
            },
        }
    }
}

pub(super) async fn jobs(cli: &Cli, as_json: bool) -> CliResult {
    let (cfg, db) = open_existing(cli).await?;
    let (store, control) = (db.store(), db.control());
    let lines = job_lines(&cfg, &*store, Some(&*control), Utc::now()).await?;
    if as_json {
        out!("{}", serde_json::to_string_pretty(&json!({ "jobs": lines })).unwrap_or_default());
    } else {
        let rows: Vec<Vec<String>> = lines.iter().map(JobLine::cells).collect();
        out!("{}", table(&["JOB", "SCHEDULE", "NEXT RUN", "LAST RUN", "LAST STATUS"], &rows));
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Whether `job` is known: configured (built-in or of your own),
/// registered by an instance, or with rows in the history.
async fn job_is_known(cfg: &Config, db: &Database, job: &str) -> Result<bool, Failure> {
    if cfg.jobs.get(job).is_some() {
        return Ok(true);
    }
    if db.control().definitions().await?.iter().any(|d| d.job_id == job) {
        return Ok(true);
    }
    Ok(!db.store().history(&HistoryQuery::new(job, 1)).await?.is_empty())
}

pub(super) fn unknown_job(job: &str) -> Failure {
    Failure::Usage(format!(
        "unknown job \"{job}\": not configured, never registered by a server and no executions \
         recorded (the built-in jobs are {}; a job of your own is a [jobs.<id>] section with \
         kind = \"command\" or \"http\")",
        JOB_IDS.join(", ")
    ))
}

pub(super) async fn history(cli: &Cli, q: &HistoryArgs<'_>) -> CliResult {
    let cursor = q
        .cursor
        .map(Cursor::decode)
        .transpose()
        .map_err(|e| Failure::Usage(format!("--cursor: {}", e.message)))?;
    let (cfg, db) = open_existing(cli).await?;
    let store = db.store();
    let (rows, next) =
        cursor::page(&*store, q.job, q.limit, q.status, cursor).await.map_err(|e| {
            if e.status.is_client_error() {
                Failure::Usage(e.message)
            } else {
                Failure::Io(e.message)
            }
        })?;
    if rows.is_empty() && cursor.is_none() && !job_is_known(&cfg, &db, q.job).await? {
        db.close().await;
        return Err(unknown_job(q.job));
    }
    print_history(q, &rows, next.map(|c| c.encode()));
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Prints a page as JSON (the API's shape) or a table, and how to get the
/// next one.
pub(super) fn print_history(q: &HistoryArgs<'_>, rows: &[ExecutionRecord], next: Option<String>) {
    if q.json {
        let body = json!({ "job_id": q.job, "executions": rows, "next_cursor": next });
        out!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
        return;
    }
    if rows.is_empty() {
        out!("no executions of {}", q.job);
    } else {
        out!("{}", history_table(rows));
    }
    if let Some(c) = next {
        eprintln!("mscribe: more rows: mscribe history {} -n {} --cursor {c}", q.job, q.limit);
    }
}

pub(super) async fn run_job(cli: &Cli, job: &str) -> CliResult {
    let cfg = load(cli)?;
    crate::logging::init(&cfg.log_level, None);
    let configured = cfg.jobs.get(job).is_some();
    // The database must exist: a wrong database_url is an error, not a new
    // empty database to run (and back up).
    let opts = BuildOptions { pause_all: true, existing_database: true, ..Default::default() };
    let app = App::build(cfg, opts).await.map_err(app_failure)?;
    if !configured && let Err(e) = register_defined(&app, job).await {
        app.db.close().await;
        return Err(e);
    }
    app.scheduler.start().await.map_err(|e| Failure::Io(e.to_string()))?;
    let outcome = app.scheduler.trigger(job).map_err(|e| Failure::Io(e.to_string()))?;
    let TriggerOutcome::Started { execution_id } = outcome else {
        let _ = app.scheduler.stop(Duration::from_secs(5)).await;
        return Err(Failure::Io(format!("job {job} did not start: {outcome:?}")));
    };
    // Wait for the run (retries included) to end.
    loop {
        match app.scheduler.job(job) {
            Some(info) if info.running == 0 && info.queued == 0 => break,
            Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            None => break,
        }
    }
    let report = app.scheduler.stop(app.config.shutdown_grace).await;
    // A command that timed out may still be getting its SIGKILL.
    crate::ops::wait_for_group_kills().await;
    if let Ok(r) = &report
        && r.unwritten > 0
    {
        eprintln!("mscribe: warning: {} records could not be written to the store", r.unwritten);
    }
    let rows = app.scheduler.store().history(&HistoryQuery::new(job, 50)).await.unwrap_or_default();
    let last =
        rows.into_iter().filter(|r| r.execution_id == execution_id).max_by_key(|r| r.attempt);
    app.db.close().await;
    let Some(rec) = last else {
        return Err(Failure::Io(format!("no record of execution {execution_id} of {job}")));
    };
    let body = json!({
        "job_id": job,
        "execution_id": rec.execution_id,
        "attempt": rec.attempt,
        "status": rec.status,
        "duration_ms": rec.duration_ms,
        "error": rec.error,
        "result": rec.result,
        "metrics": rec.metrics,
    });
    out!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
    Ok(if rec.status == ExecutionStatus::Succeeded { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Registers, paused, job `job` of a definition stored through the API or
/// `job apply`, for `mscribe run`. A command job needs this
/// configuration's consent, as on a server (`[api] allow_command_jobs`).
async fn register_defined(app: &App, job: &str) -> Result<(), Failure> {
    let defs = app.db.control().definitions().await?;
    let Some(d) = defs.iter().find(|d| d.job_id == job && is_defined_here(d)) else {
        let mut ids = app.config.jobs.ids();
        ids.extend(defs.iter().filter(|d| is_defined_here(d)).map(|d| d.job_id.clone()));
        return Err(Failure::Usage(format!(
            "unknown job \"{job}\"; the configured jobs and the jobs defined through the API \
             or the CLI are {}",
            ids.join(", ")
        )));
    };
    let def = stored_definition(d)
        .map_err(|e| Failure::Io(format!("the stored definition of {job} cannot be used: {e}")))?;
    let api = &app.config.api;
    runs_here(job, &def, api.allow_command_jobs, &api.allow_env).map_err(Failure::Usage)?;
    let Some(cfg) = crate::ops::defs::user_job_config(job, &def) else {
        return Err(Failure::Io(format!("the stored definition of {job} is no job of your own")));
    };
    app.scheduler.register(cfg.paused(true)).map_err(|e| Failure::Io(e.to_string()))
}

/// How the command line names itself in the control tables: `cli@HOST`.
pub(super) fn instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("cli@{host}")
}

/// A note as given: 1 to [`MAX_NOTE_CHARS`] characters.
pub(super) fn check_note(note: Option<&str>) -> Result<(), Failure> {
    if let Some(n) = note {
        if n.trim().is_empty() {
            return Err(Failure::Usage("--note is empty; leave it out or say why".to_owned()));
        }
        if n.contains('\0') {
            return Err(Failure::Usage("--note contains a NUL character".to_owned()));
        }
        let count = n.chars().count();
        if count > MAX_NOTE_CHARS {
            return Err(Failure::Usage(format!(
                "--note has {count} characters, over the limit of {MAX_NOTE_CHARS}"
            )));
        }
    }
    Ok(())
}

/// Opens the database for a control action on `job`, which must be known.
async fn open_for_job(cli: &Cli, job: &str) -> Result<Database, Failure> {
    let (cfg, db) = open_existing(cli).await?;
    if !job_is_known(&cfg, &db, job).await? {
        db.close().await;
        return Err(unknown_job(job));
    }
    Ok(db)
}

async fn set_paused(cli: &Cli, job: &str, paused: bool, note: Option<&str>) -> CliResult {
    check_note(note)?;
    let db = open_for_job(cli, job).await?;
    let change = PauseChange {
        paused,
        note: note.map(str::to_owned),
        source: Source::Cli,
        instance_id: instance_id(),
        at: Utc::now(),
    };
    let state = db.control().set_paused(job, &change).await?;
    out!("{}", serde_json::to_string_pretty(&state).unwrap_or_default());
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn pause(cli: &Cli, job: &str, note: Option<&str>) -> CliResult {
    set_paused(cli, job, true, note).await
}

pub(super) async fn resume(cli: &Cli, job: &str) -> CliResult {
    set_paused(cli, job, false, None).await
}

pub(super) async fn trigger(cli: &Cli, job: &str) -> CliResult {
    let db = open_for_job(cli, job).await?;
    let req = NewTrigger {
        job_id: job.to_owned(),
        note: None,
        source: Source::Cli,
        instance_id: instance_id(),
        at: Utc::now(),
        take: false,
    };
    let id = db.control().request_trigger(&req).await?;
    out!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "job_id": job,
            "trigger_id": id,
            "outcome": "requested",
        }))
        .unwrap_or_default()
    );
    eprintln!(
        "mscribe: trigger {id} of {job} recorded; a running server takes it and runs the job once"
    );
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn cancel(cli: &Cli, execution_id: &str) -> CliResult {
    let id: ExecutionId = execution_id.parse().map_err(|e| Failure::Usage(format!("{e}")))?;
    let (_, db) = open_existing(cli).await?;
    // As the API's 404: a run with no `running` row runs nowhere, and a
    // request for it would only be closed unhandled.
    let Some(job) = db.control().running_job(&id.to_string()).await? else {
        db.close().await;
        return Err(Failure::Usage(format!(
            "execution {id}: {}: the database has no running attempt of it (it ended, or \
             never ran)",
            crate::control::NOT_RUNNING
        )));
    };
    let req = NewCancel {
        execution_id: id.to_string(),
        job_id: Some(job),
        note: None,
        source: Source::Cli,
        instance_id: instance_id(),
        at: Utc::now(),
    };
    let cancel_id = db.control().request_cancel(&req).await?;
    out!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "execution_id": id,
            "cancel_id": cancel_id,
            "outcome": "requested",
        }))
        .unwrap_or_default()
    );
    eprintln!(
        "mscribe: cancel request {cancel_id} recorded; the instance running {id} ({}) cancels it",
        req.job_id.as_deref().unwrap_or_default()
    );
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn audit(cli: &Cli, q: &AuditArgs<'_>) -> CliResult {
    let (_, db) = open_existing(cli).await?;
    let mut query = AuditQuery::new(q.limit);
    if let Some(j) = q.job {
        query = query.job(j);
    }
    if let Some(b) = q.before {
        query = query.before(b);
    }
    let rows = db.control().audit(&query).await?;
    if q.json {
        let next = (rows.len() == q.limit).then(|| rows.last().map(|r| r.id)).flatten();
        let body = json!({ "entries": rows, "next_before": next });
        out!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
    } else if rows.is_empty() {
        out!("no audit entries");
    } else {
        out!("{}", audit_table(&rows));
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}
