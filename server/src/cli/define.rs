//! `mscribe job apply FILE` and `mscribe job delete ID`: jobs of your own
//! defined for the whole cluster. With `--url` through the server's API
//! (`PUT`/`DELETE /jobs/{id}`); without, straight into the database, with
//! the same checks, where every running server picks them up within 1 s.

use std::path::Path;
use std::process::ExitCode;

use chrono::Utc;
use mscribe_storage::Source;
use serde_json::{Value, json};

use super::local::{instance_id, open_existing};
use super::remote::{Server, segment};
use super::{Cli, CliResult, Failure, load, out};
use crate::config::{Config, UserJobDef, check_allowed_env};
use crate::control::{definition_row, deletion_audit, is_defined_here};

/// The jobs of a file: each `[jobs.<id>]` section, as JSON, in file order.
fn read_jobs(file: &Path) -> Result<Vec<(String, Value)>, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", file.display())))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| Failure::Usage(format!("{}: invalid TOML: {e}", file.display())))?;
    if let Some(other) = table.keys().find(|k| k.as_str() != "jobs") {
        return Err(Failure::Usage(format!(
            "{}: unknown key `{other}`: the file holds [jobs.<id>] sections only",
            file.display()
        )));
    }
    let Some(jobs) = table.get("jobs").and_then(toml::Value::as_table) else {
        return Err(Failure::Usage(format!("{}: no [jobs.<id>] section", file.display())));
    };
    jobs.iter()
        .map(|(id, section)| {
            if !section.is_table() {
                return Err(Failure::Usage(format!(
                    "{}: `jobs.{id}` is not a section: write [jobs.{id}]",
                    file.display()
                )));
            }
            let body = serde_json::to_value(section)
                .map_err(|e| Failure::Usage(format!("{}: [jobs.{id}]: {e}", file.display())))?;
            Ok((id.clone(), body))
        })
        .collect()
}

/// Checks job `id`'s definition as the API does, against this
/// configuration: the configuration's messages, no job of the
/// configuration replaced, no `command` job unless allowed.
fn check(cfg: &Config, id: &str, body: &Value) -> Result<UserJobDef, Failure> {
    let def = UserJobDef::from_json(id, body.clone())
        .map_err(|e| Failure::Usage(format!("[jobs.{id}] {e}")))?;
    if cfg.jobs.get(id).is_some() {
        return Err(configured(id));
    }
    if def.kind().id == "command" && !cfg.api.allow_command_jobs {
        return Err(Failure::Usage(format!(
            "[jobs.{id}]: jobs of kind \"command\" are refused unless the configuration allows \
             them ([api] allow_command_jobs = true)"
        )));
    }
    check_allowed_env(&def, &cfg.api.allow_env)
        .map_err(|e| Failure::Usage(format!("[jobs.{id}] {e}")))?;
    Ok(def)
}

fn configured(id: &str) -> Failure {
    Failure::Usage(format!(
        "job \"{id}\" is defined in the configuration; change it there, or give the job of your \
         own another id"
    ))
}

/// `mscribe job apply FILE`: every job of the file, all checked before any
/// is written.
pub(super) async fn apply(cli: &Cli, file: &Path, url: Option<&str>) -> CliResult {
    let jobs = read_jobs(file)?;
    if let Some(url) = url {
        // The definitions' own checks first, so that a bad section sends
        // nothing. The server's configuration may still refuse one (a job
        // of its own, a command job): the error then says what was applied.
        for (id, body) in &jobs {
            UserJobDef::from_json(id, body.clone())
                .map_err(|e| Failure::Usage(format!("[jobs.{id}] {e}")))?;
        }
        let s = Server::new(cli, url)?;
        let mut applied = Vec::new();
        for (id, body) in jobs {
            let got = match s.call("PUT", &format!("/jobs/{}", segment(&id)), Some(body)).await {
                Ok(got) => got,
                Err(e) if applied.is_empty() => return Err(e),
                Err(e) => return Err(after_applied(e, &applied)),
            };
            out!("{}", serde_json::to_string_pretty(&got).unwrap_or_default());
            applied.push(id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = load(cli)?;
    let checked = jobs
        .into_iter()
        .map(|(id, body)| check(&cfg, &id, &body).map(|def| (id, body, def)))
        .collect::<Result<Vec<_>, Failure>>()?;
    let (_, db) = open_existing(cli).await?;
    let control = db.control();
    let stored = control.definitions().await?;
    let me = instance_id();
    for (id, body, def) in checked {
        if stored.iter().any(|d| d.job_id == id && !is_defined_here(d)) {
            db.close().await;
            return Err(configured(&id));
        }
        let existed = stored.iter().any(|d| d.job_id == id);
        let (row, audit) = definition_row(&id, &def, body, Source::Cli, &me, Utc::now(), existed);
        control.put_definition(&row, &audit).await?;
        out!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "job_id": id,
                "kind": row.kind,
                "schedule": row.schedule,
                "created": !existed,
            }))
            .unwrap_or_default()
        );
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `e`, saying which jobs of the file the server took before it; the rest
/// were not sent.
fn after_applied(e: Failure, applied: &[String]) -> Failure {
    let note = format!(
        " (applied before it: {}; the jobs after it in the file were not sent)",
        applied.join(", ")
    );
    match e {
        Failure::Usage(m) => Failure::Usage(m + &note),
        Failure::Io(m) => Failure::Io(m + &note),
    }
}

/// `mscribe job delete ID`.
pub(super) async fn delete(cli: &Cli, job: &str, url: Option<&str>) -> CliResult {
    if let Some(url) = url {
        let s = Server::new(cli, url)?;
        let got = s.call("DELETE", &format!("/jobs/{}", segment(job)), None).await?;
        out!("{}", serde_json::to_string_pretty(&got).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = load(cli)?;
    if cfg.jobs.get(job).is_some() {
        return Err(configured(job));
    }
    let (_, db) = open_existing(cli).await?;
    let audit = deletion_audit(job, Source::Cli, &instance_id(), Utc::now());
    let deleted = db.control().delete_definition(job, &audit).await;
    db.close().await;
    if !deleted? {
        return Err(Failure::Usage(format!("no job \"{job}\" defined through the API or the CLI")));
    }
    out!(
        "{}",
        serde_json::to_string_pretty(&json!({ "job_id": job, "deleted": true }))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
