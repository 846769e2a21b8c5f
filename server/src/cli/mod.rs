//! The `mscribe` command line: the arguments ([`Cli`], [`Command`]), the
//! exit codes, and the dispatch to `local.rs` (this process and the
//! database), `remote.rs` (a running server's HTTP API, with `--url`),
//! `fires.rs` (`backfill` and `upcoming`, either way), `define.rs` (`job
//! apply` and `job delete`, either way), `health.rs` (`mscribe health`) and
//! `meta.rs` (`config check`, `config show`, `completions`, `man`).
//!
//! Exit codes: 0 success; 1 a failure of the server or of I/O (the server
//! answered 5xx or could not be reached, the database could not be read or
//! written, the listen port is taken), a job run that did not succeed, or
//! a degraded health check; 2 usage or bad input (bad arguments or config,
//! a missing or un-migrated database, an unknown job, a 4xx answer of the
//! server), or an unhealthy health check.

mod define;
mod fires;
mod health;
mod local;
mod meta;
mod remote;

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Parser, Subcommand};
use mscribe_scheduler::ExecutionStatus;

use crate::config::Config;

pub use local::{JobLine, TRIGGER_ONLY, job_lines, schedule_label};

/// Prints one line to standard output. A closed pipe (`mscribe jobs | head`)
/// ends the process quietly with status 0, as Unix tools do, instead of the
/// panic `println!` gives.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::print_line(format_args!($($arg)*)) };
}
pub(crate) use out;

#[allow(clippy::exit, reason = "a closed stdout leaves nothing more to do; exit as Unix tools do")]
fn print_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("mscribe: error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// mscribe: the Mental Scribe operations scheduler.
///
/// Runs scheduled jobs (seven operational jobs built in), records every
/// run in SQLite or Postgres, and serves a health check, a jobs API and
/// Prometheus metrics over HTTP.
///
/// jobs, history, trigger, pause, resume, cancel, audit, backfill and
/// upcoming act on the database directly, or, with --url (or MSCRIBE_URL),
/// on a running server through its HTTP API with the admin token. The
/// read-only ones (jobs, history, audit, upcoming, backfill --dry-run)
/// never create or migrate a database.
#[derive(Debug, Parser)]
#[command(
    name = "mscribe",
    version,
    about,
    long_about,
    after_long_help = const_format_help()
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

const fn const_format_help() -> &'static str {
    concat!(
        "Exit codes: 0 success. 1 a failure of the server or of I/O (the server answered 5xx or \
         could not be reached, the database could not be read or written, the listen port is \
         taken), a job run that did not succeed (run), a degraded health check. 2 usage or bad \
         input (bad arguments or config, a missing or un-migrated database, an unknown job, a \
         4xx answer of the server such as a bad value or a wrong token), an unhealthy health \
         check.",
        "\n\nEnvironment: MSCRIBE_<KEY> overrides a config key (e.g. MSCRIBE_LISTEN, \
         MSCRIBE_DATABASE_URL, MSCRIBE_HEALTH_TTL, MSCRIBE_JOBS_DATABASE_BACKUP_KEEP); \
         MSCRIBE_LOG sets the log filter; MSCRIBE_URL is the default of --url; MSCRIBE_TOKEN \
         is the admin token sent with --url (default: admin_token from the config, else the \
         token file data_dir/admin_token)."
    )
}

/// Where a command acts: a running server, or the database.
#[derive(Debug, Clone, Default, Args)]
pub struct Target {
    /// Ask the server at this URL (e.g. http://127.0.0.1:8080) through its
    /// HTTP API, with the admin token, instead of the database. Default:
    /// $MSCRIBE_URL.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

impl Target {
    /// `--url`, else `$MSCRIBE_URL` (an empty value counts as unset).
    fn url(&self) -> Option<String> {
        self.url
            .clone()
            .or_else(|| std::env::var("MSCRIBE_URL").ok())
            .filter(|u| !u.trim().is_empty())
    }
}

/// What `mscribe job` does.
#[derive(Debug, Subcommand)]
pub enum JobAction {
    /// Define (or redefine) every job of a TOML file of `[jobs.<id>]`
    /// sections, the keys of a job of your own in the configuration
    /// (`kind = "command"` or `"http"`, `schedule`, ...). All are checked
    /// before any is stored; every running server runs them within 1 s,
    /// and they survive restarts. A job of the configuration is refused,
    /// and so is a command job unless `[api] allow_command_jobs = true`.
    Apply {
        /// The file.
        file: std::path::PathBuf,
        /// Where to act: `--url`, or the database.
        #[command(flatten)]
        target: Target,
    },
    /// Delete a job defined through the API or `job apply`, on every
    /// instance (its history stays).
    Delete {
        /// The job id.
        job: String,
        /// Where to act: `--url`, or the database.
        #[command(flatten)]
        target: Target,
    },
}

/// What `mscribe config` does.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Load and check the configuration as `serve` does, with the same
    /// messages, and start nothing: exit 0 when it is valid, 2 when not.
    Check {
        /// The file to check (default: --config, $MSCRIBE_CONFIG, else
        /// ./mscribe.toml if it exists). MSCRIBE_* variables apply too.
        file: Option<PathBuf>,
    },
    /// Print the configuration in force as TOML: every key with its
    /// default, the file's keys and the MSCRIBE_* variables over them, with
    /// the admin token, URL passwords and the jobs' env and header values
    /// redacted.
    Show,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the scheduler, the seven operational jobs and the HTTP server
    /// until SIGINT or SIGTERM. Fails before creating or migrating anything
    /// when the listen port is taken.
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// List the jobs: schedule, next run, last run, last status, paused.
    Jobs {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Where to act: `--url`, or the database.
        #[command(flatten)]
        target: Target,
    },
    /// Show the execution history of a job, newest first, a page at a time.
    History {
        /// The job id, e.g. database-backup.
        job: String,
        /// How many rows (with --url, at most 1000).
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
        /// Only rows with this status (succeeded, failed, timed_out,
        /// cancelled, retries_exhausted, abandoned, skipped, running).
        #[arg(long, short = 's')]
        status: Option<ExecutionStatus>,
        /// Start after this position: the cursor a previous page printed.
        #[arg(long)]
        cursor: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Where to act: `--url`, or the database.
        #[command(flatten)]
        target: Target,
    },
    /// Run one job once, now, in this process (not on a server: for that,
    /// use trigger), and exit with its status (0 when it succeeded, 1
    /// otherwise).
    Run {
        /// The job id, e.g. security-scan.
        job: String,
    },
    /// Ask for one run of a job now. With --url the server runs it (per
    /// its overlap policy); without, the request is written to the
    /// database and one running server takes it.
    Trigger {
        /// The job id.
        job: String,
        /// Where to act: `--url`, or the database.
        #[command(flatten)]
        target: Target,
    },
    /// Pause a job on every instance until it is resumed.
    Pause {
        /// The job id.
        job: String,
        /// Why (1 to 1000 characters), kept in the audit log.
        #[arg(long, short = 'm')]
        note: Option<String>,
        /// Where to act: `--url`, or the database.
        #[command(flatten)]
        target: Target,
    },
    /// Resume a paused job on every instance.
    Resume {
        /// The job id.
        job: String,
        /// Where to act: `--url`, or the database.
        #[command(flatten)]
        target: Target,
    },
    /// Cancel one run, by its execution id, on whichever instance runs it.
    Cancel {
        /// The execution id (as history shows it).
        execution_id: String,
        /// Where to act: `--url`, or the database.
        #[command(flatten)]
        target: Target,
    },
    /// List the audit log of control actions (pause, resume, trigger,
    /// cancel, backfill), newest first.
    Audit {
        /// Only this job's rows.
        #[arg(long)]
        job: Option<String>,
        /// How many rows (1 to 1000).
        #[arg(long, short = 'n', default_value_t = 50)]
        limit: usize,
        /// Only rows older than this id (the last id of a previous page).
        #[arg(long)]
        before: Option<i64>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Where to act: `--url`, or the database.
        #[command(flatten)]
        target: Target,
    },
    /// Run a job for every fire its schedule had over a past range.
    ///
    /// The runs go oldest first, each recorded with the backfill kind;
    /// fires that already have a final record are left unless --force. With --url the server runs
    /// it in the background (answering at once; the audit log records its
    /// start and its end) or, with --dry-run, lists the plan. Without
    /// --url only --dry-run works: it plans from the configured job and
    /// the database, read-only. At most 10000 fires per request.
    Backfill {
        /// The job id.
        job: String,
        /// The start of the range, included: an RFC 3339 time such as
        /// 2026-03-01T00:00:00Z or 2026-03-01T01:00:00+01:00.
        #[arg(long, value_parser = fires::parse_time, value_name = "TIME")]
        from: DateTime<Utc>,
        /// The end of the range, included, not in the future (RFC 3339).
        #[arg(long, value_parser = fires::parse_time, value_name = "TIME")]
        to: DateTime<Utc>,
        /// List the fires (with local times, DST notes and whether each is
        /// recorded) and run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Run fires that already have a final record too.
        #[arg(long)]
        force: bool,
        /// How many runs at once (1 to 64).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        concurrency: u16,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Where to act: `--url`, or the database (dry run only).
        #[command(flatten)]
        target: Target,
    },
    /// Define or delete jobs of your own (kind command or http) for the
    /// whole cluster, as `PUT`/`DELETE /jobs/{id}` do.
    Job {
        /// What to do.
        #[command(subcommand)]
        action: JobAction,
    },
    /// List a job's next fires, with their local times and daylight-saving
    /// notes.
    Upcoming {
        /// The job id.
        job: String,
        /// How many fires (1 to 1000).
        #[arg(short = 'n', long = "limit", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
        n: u16,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Where to act: `--url`, or the database.
        #[command(flatten)]
        target: Target,
    },
    /// Check or show the configuration, starting nothing.
    Config {
        /// What to do.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Print a shell completion script: `mscribe completions bash >
    /// /etc/bash_completion.d/mscribe`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `mscribe man > /usr/local/share/man/man1/mscribe.1`.
    Man,
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

/// Why a command failed, and so its exit code.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The caller's to fix: exit 2.
    Usage(String),
    /// The server, the database or I/O failed: exit 1.
    Io(String),
}

impl Failure {
    fn report(self) -> ExitCode {
        match self {
            Failure::Usage(m) => {
                eprintln!("mscribe: error: {m}");
                ExitCode::from(2)
            }
            Failure::Io(m) => {
                eprintln!("mscribe: error: {m}");
                ExitCode::from(1)
            }
        }
    }
}

impl From<crate::db::DbError> for Failure {
    fn from(e: crate::db::DbError) -> Self {
        if e.is_usage() { Failure::Usage(e.to_string()) } else { Failure::Io(e.to_string()) }
    }
}

impl From<mscribe_scheduler::StoreError> for Failure {
    fn from(e: mscribe_scheduler::StoreError) -> Self {
        Failure::Io(e.to_string())
    }
}

pub(crate) type CliResult = Result<ExitCode, Failure>;

/// Loads the configuration; warns on stderr (once) about `MSCRIBE_*`
/// variables that are no key, a typo most likely, in every command but
/// `serve` and `config check`, which report them their own way.
fn load(cli: &Cli) -> Result<Config, Failure> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let cfg = Config::load(cli.config.as_deref()).map_err(|e| Failure::Usage(e.to_string()))?;
    let own_report = matches!(
        cli.command,
        Command::Serve | Command::Config { action: ConfigAction::Check { .. } }
    );
    if !own_report {
        WARNED.call_once(|| {
            for name in &cfg.unknown_env {
                eprintln!("mscribe: warning: unknown MSCRIBE_ environment variable {name} ignored");
            }
        });
    }
    Ok(cfg)
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

fn check_limit(limit: usize, max: usize) -> Result<(), Failure> {
    if limit == 0 {
        return Err(Failure::Usage("--limit must be at least 1, got 0".to_owned()));
    }
    if limit > max {
        return Err(Failure::Usage(format!("--limit must be at most {max}, got {limit}")));
    }
    Ok(())
}

/// Runs the command line; returns the process's exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let res = match &cli.command {
        Command::Serve => local::serve(&cli).await,
        Command::Migrate => local::migrate(&cli).await,
        Command::Run { job } => local::run_job(&cli, job).await,
        Command::Health { url } => return health::health(&cli, url.as_deref()).await,
        Command::Config { action: ConfigAction::Check { file } } => {
            meta::config_check(&cli, file.as_deref())
        }
        Command::Config { action: ConfigAction::Show } => meta::config_show(&cli),
        Command::Completions { shell } => meta::completions(*shell),
        Command::Man => meta::man(),
        Command::Jobs { json, target } => match target.url() {
            Some(url) => remote::jobs(&cli, &url, *json).await,
            None => local::jobs(&cli, *json).await,
        },
        Command::History { job, limit, status, cursor, json, target } => {
            // No upper bound here: the database pages any size (exports),
            // a server refuses over 1000 itself.
            match check_limit(*limit, usize::MAX) {
                Err(e) => Err(e),
                Ok(()) => {
                    let q = HistoryArgs {
                        job,
                        limit: *limit,
                        status: *status,
                        cursor: cursor.as_deref(),
                        json: *json,
                    };
                    match target.url() {
                        Some(url) => remote::history(&cli, &url, &q).await,
                        None => local::history(&cli, &q).await,
                    }
                }
            }
        }
        Command::Trigger { job, target } => match target.url() {
            Some(url) => remote::trigger(&cli, &url, job).await,
            None => local::trigger(&cli, job).await,
        },
        Command::Pause { job, note, target } => match target.url() {
            Some(url) => remote::pause(&cli, &url, job, note.as_deref()).await,
            None => local::pause(&cli, job, note.as_deref()).await,
        },
        Command::Resume { job, target } => match target.url() {
            Some(url) => remote::resume(&cli, &url, job).await,
            None => local::resume(&cli, job).await,
        },
        Command::Cancel { execution_id, target } => match target.url() {
            Some(url) => remote::cancel(&cli, &url, execution_id).await,
            None => local::cancel(&cli, execution_id).await,
        },
        Command::Audit { job, limit, before, json, target } => {
            match check_limit(*limit, mscribe_storage::MAX_AUDIT_LIMIT) {
                Err(e) => Err(e),
                Ok(()) => {
                    let q = AuditArgs {
                        job: job.as_deref(),
                        limit: *limit,
                        before: *before,
                        json: *json,
                    };
                    match target.url() {
                        Some(url) => remote::audit(&cli, &url, &q).await,
                        None => local::audit(&cli, &q).await,
                    }
                }
            }
        }
        Command::Backfill { job, from, to, dry_run, force, concurrency, json, target } => {
            let a = fires::BackfillArgs {
                job,
                from: *from,
                to: *to,
                dry_run: *dry_run,
                force: *force,
                concurrency: usize::from(*concurrency),
                json: *json,
            };
            match target.url() {
                Some(url) => fires::backfill_remote(&cli, &url, &a).await,
                None => fires::backfill_local(&cli, &a).await,
            }
        }
        Command::Job { action: JobAction::Apply { file, target } } => {
            define::apply(&cli, file, target.url().as_deref()).await
        }
        Command::Job { action: JobAction::Delete { job, target } } => {
            define::delete(&cli, job, target.url().as_deref()).await
        }
        Command::Upcoming { job, n, json, target } => {
            let a = fires::UpcomingArgs { job, n: usize::from(*n), json: *json };
            match target.url() {
                Some(url) => fires::upcoming_remote(&cli, &url, &a).await,
                None => fires::upcoming_local(&cli, &a).await,
            }
        }
    };
    res.unwrap_or_else(Failure::report)
}

/// What `history` asks for.
#[derive(Debug)]
struct HistoryArgs<'a> {
    job: &'a str,
    limit: usize,
    status: Option<ExecutionStatus>,
    cursor: Option<&'a str>,
    json: bool,
}

/// What `audit` asks for.
#[derive(Debug)]
struct AuditArgs<'a> {
    job: Option<&'a str>,
    limit: usize,
    before: Option<i64>,
    json: bool,
}

/// The table of a history page: one row per attempt.
fn history_table(rows: &[mscribe_scheduler::ExecutionRecord]) -> String {
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
    table(&["EXECUTION", "ATTEMPT", "STATUS", "SCHEDULED", "STARTED", "DURATION", "ERROR"], &cells)
}

/// The table of audit rows.
fn audit_table(rows: &[mscribe_storage::AuditRecord]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let e = &r.entry;
            vec![
                r.id.to_string(),
                ts(Some(e.at)),
                e.action.to_string(),
                e.job_id
                    .clone()
                    .or_else(|| e.execution_id.clone())
                    .unwrap_or_else(|| "-".to_owned()),
                e.source.to_string(),
                e.instance_id.clone(),
                e.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&AUDIT_HEADERS, &cells)
}

/// The columns of the audit table.
const AUDIT_HEADERS: [&str; 7] = ["ID", "AT", "ACTION", "TARGET", "SOURCE", "INSTANCE", "NOTE"];
#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use mscribe_scheduler::{ExecutionStore, MemoryStore};
    use std::time::Duration;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_texts() {
        let mut cmd = Cli::command();
        insta::assert_snapshot!("help_mscribe", cmd.render_long_help().to_string());
        for sub in [
            "serve", "migrate", "jobs", "history", "run", "trigger", "pause", "resume", "cancel",
            "audit", "backfill", "upcoming", "health",
        ] {
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
            Command::History { job, limit, status, json, cursor, target } => {
                assert_eq!(
                    (job.as_str(), limit, status, json, cursor, target.url),
                    ("database-backup", 5, Some(ExecutionStatus::Failed), false, None, None)
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
        use mscribe_scheduler::ExecutionEvent;
        use mscribe_scheduler::{AttemptEnd, AttemptStart, ExecutionId, FireKind, SkippedFire};
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
        let lines = futures::executor::block_on(job_lines(&cfg, &store, None, at(4, 0))).unwrap();
        let line = |id: &str| lines.iter().find(|l| l.id == id).unwrap().clone();
        assert_eq!(lines.len(), crate::config::JOB_IDS.len());
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
        let ids: Vec<String> = crate::config::JOB_IDS.iter().map(|s| (*s).to_owned()).collect();
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
            paused: false,
            pause_note: None,
        };
        assert_eq!(serde_json::to_value(&line).unwrap()["schedule"], serde_json::Value::Null);
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
