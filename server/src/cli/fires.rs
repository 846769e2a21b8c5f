//! `mscribe backfill` and `mscribe upcoming`: a job's fires behind and
//! ahead. With `--url` they ask the server (`POST /jobs/{id}/backfill`,
//! `GET /jobs/{id}/upcoming`); without, they plan from the configured job
//! (or the definition a server stored) and the database, read-only,
//! through a scheduler that is built but never started, so nothing runs.
//! A backfill that runs needs a server: without `--url` only `--dry-run`
//! is accepted.

use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use mscribe_scheduler::{
    BackfillReport, BackfillRequest, JobConfig, JobContext, JobScheduler, PlannedFire, Schedule,
    SystemClock, TokioSpawner,
};
use serde_json::{Value, json};

use super::local::{open_existing, unknown_job};
use super::remote::{Server, print_json, segment};
use super::{Cli, CliResult, Failure, out, table};
use crate::config::{Config, JOB_IDS};
use crate::db::Database;

/// What `backfill` asks for.
#[derive(Debug)]
pub(super) struct BackfillArgs<'a> {
    pub(super) job: &'a str,
    pub(super) from: DateTime<Utc>,
    pub(super) to: DateTime<Utc>,
    pub(super) dry_run: bool,
    pub(super) force: bool,
    pub(super) concurrency: usize,
    pub(super) json: bool,
}

impl BackfillArgs<'_> {
    fn request(&self) -> BackfillRequest {
        BackfillRequest {
            from: self.from,
            to: self.to,
            dry_run: self.dry_run,
            force: self.force,
            concurrency: self.concurrency,
        }
    }
}

/// Parses `--from` and `--to`: an RFC 3339 time such as
/// `2026-03-01T02:00:00Z` or `2026-03-01T03:00:00+01:00`.
pub(super) fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("\"{s}\" is not an RFC 3339 time such as 2026-03-01T02:00:00Z ({e})"))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The schedule of `job` as this machine knows it: its section in the
/// config, else the definition a server stored (`None`: trigger-only).
/// An unknown job is a usage error.
async fn schedule_of(cfg: &Config, db: &Database, job: &str) -> Result<Option<Schedule>, Failure> {
    if let Some(c) = cfg.jobs.common(job) {
        return c.parsed_schedule().map(Some).map_err(|e| Failure::Usage(e.to_string()));
    }
    let defs = db.control().definitions().await?;
    let Some(def) = defs.into_iter().find(|d| d.job_id == job) else {
        return Err(unknown_job(job));
    };
    let Some(text) = def.schedule.filter(|s| !s.trim().is_empty()) else { return Ok(None) };
    let s = Schedule::parse(&text).map_err(|e| Failure::Io(format!("stored schedule: {e}")))?;
    match def.timezone {
        Some(tz) => s.with_timezone(&tz).map(Some).map_err(|e| Failure::Io(e.to_string())),
        None => Ok(Some(s)),
    }
}

/// A scheduler over the database's execution store with `job` alone,
/// never started: it plans and lists fires, and runs nothing.
async fn planner(cfg: &Config, db: &Database, job: &str) -> Result<JobScheduler, Failure> {
    let schedule = schedule_of(cfg, db, job).await?;
    let scheduler = JobScheduler::builder(Arc::new(SystemClock), Arc::new(TokioSpawner::current()))
        .store(db.store())
        .build();
    let mut jc = JobConfig::new(job, |_ctx: JobContext| async { Ok::<_, String>(()) });
    if let Some(s) = schedule {
        jc = jc.schedule(s);
    }
    scheduler.register(jc).map_err(|e| Failure::Usage(e.to_string()))?;
    Ok(scheduler)
}

/// The engine's refusal, naming the option at fault.
fn engine_failure(job: &str, e: mscribe_scheduler::Error) -> Failure {
    match e {
        mscribe_scheduler::Error::InvalidBackfill { field, reason, .. } => {
            let what = match field {
                "from" | "to" | "concurrency" => format!("--{field}"),
                "range" => "--from/--to".to_owned(),
                _ => format!("job {job}"),
            };
            Failure::Usage(format!("{what}: {reason}"))
        }
        mscribe_scheduler::Error::UnknownJob(_) => unknown_job(job),
        other => Failure::Io(other.to_string()),
    }
}

/// `mscribe backfill` without `--url`: a dry run only, planned from the
/// database; a run is refused (exit 2).
pub(super) async fn backfill_local(cli: &Cli, a: &BackfillArgs<'_>) -> CliResult {
    if !a.dry_run {
        return Err(Failure::Usage(format!(
            "a backfill runs on a server: pass --url URL (or set MSCRIBE_URL) to run it there; \
             without --url only --dry-run works (it plans from the database and runs nothing). \
             The built-in jobs are {}",
            JOB_IDS.join(", ")
        )));
    }
    let (cfg, db) = open_existing(cli).await?;
    let result = match planner(&cfg, &db, a.job).await {
        Ok(s) => s.backfill(a.job, &a.request()).await.map_err(|e| engine_failure(a.job, e)),
        Err(e) => Err(e),
    };
    db.close().await;
    let report = result?;
    if a.json {
        print_json(&serde_json::to_value(&report).unwrap_or(Value::Null));
    } else {
        print_plan(a, &report, &Value::Null);
    }
    Ok(ExitCode::SUCCESS)
}

/// `mscribe backfill --url`: the server plans it (dry run) or accepts it
/// and runs it in the background.
pub(super) async fn backfill_remote(cli: &Cli, url: &str, a: &BackfillArgs<'_>) -> CliResult {
    let s = Server::new(cli, url)?;
    let body = json!({
        "from": rfc3339(a.from),
        "to": rfc3339(a.to),
        "dry_run": a.dry_run,
        "force": a.force,
        "concurrency": a.concurrency,
    });
    let v = s.call("POST", &format!("/jobs/{}/backfill", segment(a.job)), Some(body)).await?;
    if a.json {
        print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let report: BackfillReport = serde_json::from_value(v.clone())
        .map_err(|e| Failure::Io(format!("{url}: unexpected backfill answer: {e}")))?;
    print_plan(a, &report, &v);
    Ok(ExitCode::SUCCESS)
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

/// The plan as a table, then what was done: planned (dry run), nothing to
/// run, or accepted by the server (`answer` has its `state`, `audit_id`
/// and `instance_id`).
fn print_plan(a: &BackfillArgs<'_>, r: &BackfillReport, answer: &Value) {
    let range = format!("{} to {}", rfc3339(a.from), rfc3339(a.to));
    if r.fires.is_empty() {
        out!("no fires of {} from {range}", a.job);
        return;
    }
    let rows: Vec<Vec<String>> = r
        .fires
        .iter()
        .map(|f| {
            vec![
                rfc3339(f.scheduled_at),
                f.local.clone().unwrap_or_else(|| "-".to_owned()),
                yes_no(f.recorded),
                yes_no(a.force || !f.recorded),
                f.dst_note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out!("{}", table(&["SCHEDULED", "LOCAL", "RECORDED", "RUNS", "NOTE"], &rows));
    let counts = format!(
        "{} fires of {} from {range}: {} already recorded, {} to run{}",
        r.fires.len(),
        a.job,
        r.already_recorded,
        r.to_run,
        if a.force { " (--force)" } else { "" }
    );
    if r.dry_run {
        out!("dry run: {counts}; nothing was run");
    } else if r.to_run == 0 || answer["state"] == "nothing_to_run" {
        out!("{counts}; nothing to run (--force runs recorded fires again)");
    } else {
        let audit =
            answer["audit_id"].as_i64().map(|i| format!(", audit id {i}")).unwrap_or_default();
        out!(
            "{counts}; accepted: running on {} in the background, {} at a time{audit}",
            answer["instance_id"].as_str().unwrap_or("the server"),
            a.concurrency
        );
        out!("follow it with: mscribe audit --job {} (and mscribe history {})", a.job, a.job);
    }
}

/// What `upcoming` asks for.
#[derive(Debug)]
pub(super) struct UpcomingArgs<'a> {
    pub(super) job: &'a str,
    pub(super) n: usize,
    pub(super) json: bool,
}

/// `mscribe upcoming` without `--url`: from the configured job (or the
/// stored definition) and the database's pause state, read-only.
pub(super) async fn upcoming_local(cli: &Cli, a: &UpcomingArgs<'_>) -> CliResult {
    let (cfg, db) = open_existing(cli).await?;
    let result = async {
        let s = planner(&cfg, &db, a.job).await?;
        let fires = s.upcoming(a.job, a.n).map_err(|e| engine_failure(a.job, e))?;
        let schedule = s.job(a.job).and_then(|j| j.schedule);
        let disabled = cfg.jobs.common(a.job).is_some_and(|c| !c.enabled);
        let paused = disabled || db.control().pause_state(a.job).await?.is_some_and(|p| p.paused);
        Ok::<_, Failure>(upcoming_body(a.job, schedule, paused, &fires))
    }
    .await;
    db.close().await;
    print_upcoming(a, &result?);
    Ok(ExitCode::SUCCESS)
}

/// The API's answer for `fires`.
fn upcoming_body(
    job: &str,
    schedule: Option<String>,
    paused: bool,
    fires: &[PlannedFire],
) -> Value {
    let fires: Vec<Value> = fires
        .iter()
        .map(|f| {
            let mut v = json!({ "scheduled_at": f.scheduled_at });
            if let Some(l) = &f.local {
                v["local"] = json!(l);
            }
            if let Some(n) = &f.dst_note {
                v["dst_note"] = json!(n);
            }
            v
        })
        .collect();
    json!({ "job_id": job, "schedule": schedule, "paused": paused, "fires": fires })
}

/// `mscribe upcoming --url`.
pub(super) async fn upcoming_remote(cli: &Cli, url: &str, a: &UpcomingArgs<'_>) -> CliResult {
    let s = Server::new(cli, url)?;
    let v = s.call("GET", &format!("/jobs/{}/upcoming?n={}", segment(a.job), a.n), None).await?;
    print_upcoming(a, &v);
    Ok(ExitCode::SUCCESS)
}

fn print_upcoming(a: &UpcomingArgs<'_>, v: &Value) {
    if a.json {
        print_json(v);
        return;
    }
    let fires = v["fires"].as_array().map(Vec::as_slice).unwrap_or_default();
    if v["schedule"].is_null() {
        out!("{} is trigger-only: it has no scheduled fires", a.job);
        return;
    }
    let text = |x: &Value| x.as_str().unwrap_or("-").to_owned();
    let rows: Vec<Vec<String>> = fires
        .iter()
        .map(|f| {
            vec![
                text(&f["scheduled_at"]),
                text(&f["local"]),
                f["dst_note"].as_str().unwrap_or_default().to_owned(),
            ]
        })
        .collect();
    out!("{}", table(&["SCHEDULED", "LOCAL", "NOTE"], &rows));
    if v["paused"] == true {
        eprintln!("mscribe: {} is paused: these fires run only once it is resumed", a.job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_any_offset() {
        let t = parse_time("2026-03-01T03:00:00+01:00").unwrap();
        assert_eq!(rfc3339(t), "2026-03-01T02:00:00Z");
        let e = parse_time("2026-03-01").unwrap_err();
        assert!(e.starts_with("\"2026-03-01\" is not an RFC 3339 time"), "{e}");
    }

    #[test]
    fn upcoming_bodies_leave_out_what_is_not_there() {
        let t = parse_time("2026-03-01T02:00:00Z").unwrap();
        let f = PlannedFire { scheduled_at: t, local: None, dst_note: None, recorded: false };
        let v = upcoming_body("j", Some("@hourly".into()), false, &[f]);
        assert_eq!(v["fires"], json!([{ "scheduled_at": "2026-03-01T02:00:00Z" }]));
    }
}
