//! The `mscribe` command line.
//!
//! Exit codes: 0 success (a job run that succeeded, a healthy check);
//! 1 a job run that did not succeed, or a degraded health check; 2 an
//! unhealthy health check, or an error (bad config, unreachable database).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::probe::check_all;
use crate::probe::{HealthStatus, Probe};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Parser, Subcommand};
use mscribe_scheduler::{
    ExecutionRecord, ExecutionStatus, ExecutionStore, HistoryQuery, StoreError, SystemClock,
    TriggerOutcome,
};
use serde_json::{Value, json};

use crate::app::{App, BuildOptions, ensure_dirs};
use crate::config::{Config, JOB_IDS};
use crate::db::Database;
use crate::health::{HealthSnapshot, StorageProbe};
use crate::http_client::{parse_http_url, request};
use crate::logging::{LOG_FILE_NAME, LogFile};
use crate::ops::JOBS;

/// Prints one line to standard output. A closed pipe (`mscribe jobs | head`)
/// ends the process quietly with status 0, as Unix tools do, instead of the
/// panic `println!` gives.
macro_rules! out {
    ($($arg:tt)*) => { print_line(format_args!($($arg)*)) };
}

#[allow(clippy::exit, reason = "a closed stdout leaves nothing more to do; exit as Unix tools do")]
fn print_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("mscribe: error: cannot write to standard output: {e}");
        std::process::exit(2);
    }
}

/// mscribe: the Mental Scribe operations scheduler.
///
/// Runs scheduled jobs (seven operational jobs built in), records every
/// run in SQLite or Postgres, and serves a health check, a jobs API and
/// Prometheus metrics over HTTP.
#[derive(Debug, Parser)]
#[command(
    name = "mscribe",
    version,
    about,
    long_about,
    after_long_help = "Exit codes: 0 success; 1 a job run that did not succeed, or a degraded \
                       health check; 2 an unhealthy health check, or an error (bad config, \
                       unreachable database).\n\nEnvironment: MSCRIBE_<KEY> overrides a config \
                       key (e.g. MSCRIBE_LISTEN, MSCRIBE_DATABASE_URL, MSCRIBE_HEALTH_TTL, \
                       MSCRIBE_JOBS_DATABASE_BACKUP_KEEP); MSCRIBE_LOG sets the log filter."
)]
pub struct Cli {
    /// The config file (TOML). Default: $MSCRIBE_CONFIG, else ./mscribe.toml
    /// if it exists, else built-in defaults. Every key can be overridden by
    /// an environment variable: MSCRIBE_ plus the key in upper case.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the scheduler, the seven operational jobs and the HTTP server
    /// until SIGINT or SIGTERM.
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// List the jobs: schedule, next run, last run and last status.
    Jobs {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the execution history of a job, newest first.
    History {
        /// The job id, e.g. database-backup.
        job: String,
        /// How many rows.
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
        /// Only rows with this status (succeeded, failed, timed_out,
        /// cancelled, retries_exhausted, abandoned, skipped, running).
        #[arg(long, short = 's')]
        status: Option<ExecutionStatus>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run one job once, now, and exit with its status (0 when it
    /// succeeded, 1 otherwise).
    Run {
        /// The job id, e.g. security-scan.
        job: String,
    },
    /// Check health: a running server's /health-check, or, when none
    /// answers, the configured database and storage directly. Exits 0
    /// healthy, 1 degraded, 2 unhealthy.
    Health {
        /// The server's URL (default: http://LISTEN/health-check, LISTEN from the
        /// config).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("mscribe: error: {msg}");
    ExitCode::from(2)
}

fn load(cli: &Cli) -> Result<Config, ExitCode> {
    Config::load(cli.config.as_deref()).map_err(fail)
}

fn ts(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).unwrap_or_else(|| "-".to_owned())
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = vec![line(headers.iter().map(|h| (*h).to_owned()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

/// Runs the command line; returns the process's exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match &cli.command {
        Command::Serve => serve(&cli).await,
        Command::Migrate => migrate(&cli).await,
        Command::Jobs { json } => jobs(&cli, *json).await,
        Command::History { job, limit, status, json } => {
            history(&cli, job, *limit, *status, *json).await
        }
        Command::Run { job } => run_job(&cli, job).await,
        Command::Health { url } => health(&cli, url.as_deref()).await,
    }
}

async fn serve(cli: &Cli) -> ExitCode {
    let cfg = match load(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = ensure_dirs(&cfg) {
        return fail(e);
    }
    let log_file = if cfg.log_to_file {
        match LogFile::open(&cfg.log_dir.join(LOG_FILE_NAME)) {
            Ok(f) => Some(f),
            Err(e) => {
                return fail(format!("cannot open log file in {}: {e}", cfg.log_dir.display()));
            }
        }
    } else {
        None
    };
    crate::logging::init(&cfg.log_level, log_file.clone());
    for name in &cfg.unknown_env {
        tracing::warn!(variable = %name, "unknown MSCRIBE_ environment variable ignored");
    }
    if let Some(src) = &cfg.source {
        tracing::info!(config = %src.display(), "configuration loaded");
    } else {
        tracing::info!("no config file; using defaults and environment overrides");
    }
    let on_log_rotated: Option<Arc<dyn Fn() + Send + Sync>> =
        log_file.map(|f| Arc::new(move || f.reopen()) as Arc<dyn Fn() + Send + Sync>);
    let app = match App::build(cfg, BuildOptions { pause_all: false, on_log_rotated }).await {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let res = app
        .serve(|addr| {
            out!("mscribe listening on http://{addr}");
        })
        .await;
    match res {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn open_db(cfg: &Config) -> Result<Database, ExitCode> {
    if let Some(p) = cfg.sqlite_path()
        && let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty())
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        return Err(fail(format!("cannot create {}: {e}", dir.display())));
    }
    Database::open(&cfg.database_url).await.map_err(fail)
}

/// The preamble of the one-shot commands (`migrate`, `jobs`, `history`):
/// load the config, log warnings only, open the database.
async fn open_quietly(cli: &Cli) -> Result<(Config, Database), ExitCode> {
    let cfg = load(cli)?;
    crate::logging::init("warn", None);
    let db = open_db(&cfg).await?;
    Ok((cfg, db))
}

async fn migrate(cli: &Cli) -> ExitCode {
    let (_, db) = match open_quietly(cli).await {
        Ok(v) => v,
        Err(code) => return code,
    };
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
    ExitCode::SUCCESS
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
}

impl JobLine {
    /// The line as table cells: job, schedule (or [`TRIGGER_ONLY`]), next
    /// run (or `disabled`), last run, last status.
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.schedule.clone().unwrap_or_else(|| TRIGGER_ONLY.to_owned()),
            if self.enabled { ts(self.next_run) } else { "disabled".to_owned() },
            ts(self.last_run),
            self.last_status.map(|s| s.to_string()).unwrap_or_else(|| "-".to_owned()),
        ]
    }
}

/// The lines of `mscribe jobs`: the configured jobs, with what `store`
/// holds of them, at `now`.
pub async fn job_lines(
    cfg: &Config,
    store: &dyn ExecutionStore,
    now: DateTime<Utc>,
) -> Result<Vec<JobLine>, StoreError> {
    let ids: Vec<String> = JOBS.iter().map(|job| job.id.to_owned()).collect();
    let last_runs = store.last_fires(&ids).await?;
    let mut lines = Vec::new();
    for job in JOBS {
        let (id, c) = (job.id, job.common(&cfg.jobs));
        let next =
            if c.enabled { c.parsed_schedule().ok().and_then(|s| s.next_after(now)) } else { None };
        let last: Option<ExecutionRecord> = store.history(&HistoryQuery::new(id, 1)).await?.pop();
        lines.push(JobLine {
            id: id.to_owned(),
            name: job.name.to_owned(),
            schedule: schedule_label(Some(c.schedule), c.timezone),
            enabled: c.enabled,
            next_run: next,
            last_run: last_runs.get(id).copied(),
            last_status: last.map(|r| r.status),
        });
    }
    Ok(lines)
}

async fn jobs(cli: &Cli, as_json: bool) -> ExitCode {
    let (cfg, db) = match open_quietly(cli).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let store = db.store();
    let lines = match job_lines(&cfg, &*store, Utc::now()).await {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    if as_json {
        out!("{}", serde_json::to_string_pretty(&json!({ "jobs": lines })).unwrap_or_default());
    } else {
        let rows: Vec<Vec<String>> = lines.iter().map(JobLine::cells).collect();
        out!("{}", table(&["JOB", "SCHEDULE", "NEXT RUN", "LAST RUN", "LAST STATUS"], &rows));
    }
    db.close().await;
    ExitCode::SUCCESS
}

async fn history(
    cli: &Cli,
    job: &str,
    limit: usize,
    status: Option<ExecutionStatus>,
    as_json: bool,
) -> ExitCode {
    if limit == 0 {
        return fail("--limit must be at least 1");
    }
    let (_, db) = match open_quietly(cli).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut q = HistoryQuery::new(job, limit);
    q.status = status;
    let rows = match db.store().history(&q).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if as_json {
        out!(
            "{}",
            serde_json::to_string_pretty(&json!({ "job_id": job, "executions": rows }))
                .unwrap_or_default()
        );
    } else if rows.is_empty() {
        if !JOB_IDS.contains(&job) {
            eprintln!(
                "mscribe: no executions of \"{job}\" (the built-in jobs are {})",
                JOB_IDS.join(", ")
            );
        } else {
            out!("no executions of {job}");
        }
    } else {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.execution_id.to_string(),
                    r.attempt.to_string(),
                    r.status.to_string(),
                    ts(Some(r.scheduled_at)),
                    ts(Some(r.started_at)),
                    r.duration_ms.map(|d| format!("{d}ms")).unwrap_or_else(|| "-".to_owned()),
                    r.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out!(
            "{}",
            table(
                &["EXECUTION", "ATTEMPT", "STATUS", "SCHEDULED", "STARTED", "DURATION", "ERROR"],
                &cells
            )
        );
    }
    db.close().await;
    ExitCode::SUCCESS
}

async fn run_job(cli: &Cli, job: &str) -> ExitCode {
    let cfg = match load(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !JOB_IDS.contains(&job) {
        return fail(format!("unknown job \"{job}\"; the jobs are {}", JOB_IDS.join(", ")));
    }
    crate::logging::init(&cfg.log_level, None);
    let app = match App::build(cfg, BuildOptions { pause_all: true, on_log_rotated: None }).await {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    if let Err(e) = app.scheduler.start().await {
        return fail(e);
    }
    let outcome = match app.scheduler.trigger(job) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let TriggerOutcome::Started { execution_id } = outcome else {
        let _ = app.scheduler.stop(Duration::from_secs(5)).await;
        return fail(format!("job {job} did not start: {outcome:?}"));
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
        return fail(format!("no record of execution {execution_id} of {job}"));
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
    if rec.status == ExecutionStatus::Succeeded { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn exit_for(status: HealthStatus) -> ExitCode {
    match status {
        HealthStatus::Healthy => ExitCode::SUCCESS,
        HealthStatus::Degraded => ExitCode::from(1),
        HealthStatus::Unhealthy => ExitCode::from(2),
    }
}

async fn health(cli: &Cli, url: Option<&str>) -> ExitCode {
    let cfg = match load(cli) {
        Ok(c) => c,
        Err(code) => return code,
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
    if parsed.path == "/" {
        parsed.path = "/health-check".to_owned();
    }
    // The token, if one is known (never generated here).
    let token =
        cfg.admin_token.as_ref().map(|t| t.expose().to_owned()).or_else(|| {
            std::fs::read_to_string(cfg.token_file()).ok().map(|t| t.trim().to_owned())
        });
    let auth = token.as_ref().map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    match request("GET", &parsed, &headers, cfg.health.probe_timeout * 5 + Duration::from_secs(1))
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
    let db =
        match tokio::time::timeout(h.probe_timeout * 5, Database::open(&cfg.database_url)).await {
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
                    Arc::new(FailedProbe(format!("no answer within {:?}", h.probe_timeout * 5))),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_texts() {
        let mut cmd = Cli::command();
        insta::assert_snapshot!("help_mscribe", cmd.render_long_help().to_string());
        for sub in ["serve", "migrate", "jobs", "history", "run", "health"] {
            let mut cmd = Cli::command();
            let sc = cmd.find_subcommand_mut(sub).expect("subcommand");
            let mut sc = sc.clone().bin_name(format!("mscribe {sub}"));
            insta::assert_snapshot!(format!("help_{sub}"), sc.render_long_help().to_string());
        }
    }

    #[test]
    fn parses_arguments() {
        let c = Cli::try_parse_from([
            "mscribe",
            "history",
            "database-backup",
            "-n",
            "5",
            "--status",
            "failed",
            "--config",
            "x.toml",
        ])
        .unwrap();
        assert_eq!(c.config, Some(PathBuf::from("x.toml")));
        match c.command {
            Command::History { job, limit, status, json } => {
                assert_eq!(
                    (job.as_str(), limit, status, json),
                    ("database-backup", 5, Some(ExecutionStatus::Failed), false)
                );
            }
            other => panic!("{other:?}"),
        }
        let e = Cli::try_parse_from(["mscribe", "history", "x", "--status", "fine"]).unwrap_err();
        assert!(e.to_string().contains("unknown execution status \"fine\""), "{e}");
        assert!(Cli::try_parse_from(["mscribe", "--config", "a.toml", "serve"]).is_ok());
    }

    #[test]
    fn cli_last_run_is_the_newest_scheduled_at_of_the_jobs_rows_not_a_start_time() {
        use chrono::TimeZone;
        use mscribe_scheduler::{AttemptEnd, AttemptStart, ExecutionId, FireKind, SkippedFire};
        use mscribe_scheduler::{ExecutionEvent, MemoryStore};
        let at = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 3, 1, h, m, 0).unwrap();
        let end = |job: &str, id: u128, attempt: u32, fired: DateTime<Utc>, started, status| {
            ExecutionEvent::Finished(AttemptEnd {
                job_id: job.into(),
                execution_id: ExecutionId::from_u128(id),
                attempt,
                scheduled_at: fired,
                started_at: started,
                instance_id: "i".into(),
                status,
                completed_at: started,
                duration: Duration::ZERO,
                error: None,
                error_kind: None,
                result: None,
                metrics: None,
                kind: FireKind::Schedule,
                fence: None,
                ends_run: true,
            })
        };
        let store = MemoryStore::new();
        let events = vec![
            // The 02:00 backup started late, at 02:30, and was retried at 02:31.
            end("database-backup", 1, 1, at(2, 0), at(2, 30), ExecutionStatus::Failed),
            end("database-backup", 1, 2, at(2, 0), at(2, 31), ExecutionStatus::Succeeded),
            // A manual trigger at 01:00 that is still running.
            ExecutionEvent::Started(AttemptStart {
                job_id: "security-scan".into(),
                execution_id: ExecutionId::from_u128(2),
                attempt: 1,
                scheduled_at: at(1, 0),
                started_at: at(1, 0),
                instance_id: "i".into(),
                kind: FireKind::Manual,
                fence: None,
            }),
            // The 03:00 log rotation was skipped, decided at 03:05; the
            // 02:00 one ran.
            end("log-rotation", 3, 1, at(2, 0), at(2, 0), ExecutionStatus::Succeeded),
            ExecutionEvent::Skipped(SkippedFire {
                job_id: "log-rotation".into(),
                execution_id: ExecutionId::from_u128(4),
                scheduled_at: at(3, 0),
                decided_at: at(3, 5),
                reason: "overlap policy skip".into(),
                instance_id: "i".into(),
                kind: FireKind::Schedule,
                fence: None,
            }),
        ];
        futures::executor::block_on(store.write(&events)).unwrap();
        let cfg = Config::default();
        let lines = futures::executor::block_on(job_lines(&cfg, &store, at(4, 0))).unwrap();
        let line = |id: &str| lines.iter().find(|l| l.id == id).unwrap().clone();
        assert_eq!(lines.len(), JOB_IDS.len());
        let backup = line("database-backup");
        assert_eq!(backup.last_run, Some(at(2, 0)), "the fire's time, not the retry's start");
        assert_eq!(backup.last_status, Some(ExecutionStatus::Succeeded));
        let scan = line("security-scan");
        assert_eq!(scan.last_run, Some(at(1, 0)), "a trigger counts");
        assert_eq!(scan.last_status, Some(ExecutionStatus::Running));
        let rotation = line("log-rotation");
        assert_eq!(rotation.last_run, Some(at(3, 0)), "a skipped fire counts, by its fire time");
        assert_eq!(rotation.last_status, Some(ExecutionStatus::Skipped));
        assert_eq!(line("temp-cleanup").last_run, None);
        // What the store's own definition says, job by job.
        let ids: Vec<String> = JOB_IDS.iter().map(|s| (*s).to_owned()).collect();
        let stored = futures::executor::block_on(store.last_fires(&ids)).unwrap();
        for l in &lines {
            assert_eq!(l.last_run, stored.get(&l.id).copied(), "{}", l.id);
        }
        let v = serde_json::to_value(&backup).unwrap();
        assert_eq!(v["last_run"], "2026-03-01T02:00:00Z");
        assert_eq!(v["schedule"], "0 2 * * *");
    }

    #[test]
    fn a_trigger_only_job_lists_no_schedule() {
        assert_eq!(schedule_label(None, None), None);
        assert_eq!(schedule_label(Some("  "), Some("Europe/Berlin")), None);
        assert_eq!(schedule_label(Some("0 2 * * *"), None).as_deref(), Some("0 2 * * *"));
        assert_eq!(
            schedule_label(Some("0 2 * * *"), Some("Europe/Berlin")).as_deref(),
            Some("0 2 * * * (Europe/Berlin)")
        );
        let line = JobLine {
            id: "adhoc".into(),
            name: String::new(),
            schedule: schedule_label(None, None),
            enabled: true,
            next_run: None,
            last_run: None,
            last_status: None,
        };
        assert_eq!(serde_json::to_value(&line).unwrap()["schedule"], Value::Null);
        assert_eq!(line.cells(), ["adhoc", "trigger only", "-", "-", "-"]);
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["A", "LONGER"],
            &[vec!["xyz".into(), "1".into()], vec!["q".into(), "22".into()]],
        );
        assert_eq!(t, "A    LONGER\nxyz  1\nq    22");
    }
}
