//! Reloading the configuration while the server runs: the jobs and alerts
//! of a new file applied (added, removed, changed), the cluster's pause
//! state kept, other settings left for a restart; and through a real
//! `mscribe serve`, SIGHUP applying a changed schedule while a broken file
//! changes nothing.

mod common;

use std::path::Path;

use common::{Server, base_env};
use mscribe_server::app::{App, BuildOptions};
use mscribe_server::config::Config;
use mscribe_storage::Source;

const TOKEN: &str = "reload-test-token-0123456789abcdef0123456789";

/// A configuration in `dir` (SQLite there), with `jobs` as its jobs.
fn config(dir: &Path, jobs: &str) -> Config {
    let text = format!(
        "database_url = \"sqlite://{d}/mscribe.db\"\ndata_dir = \"{d}/data\"\nlog_dir = \"{d}/logs\"\nbackup_dir = \"{d}/backups\"\nadmin_token = \"{TOKEN}\"\n{jobs}",
        d = dir.display()
    );
    Config::from_toml_str(&text, "test.toml", |_| None).unwrap()
}

const BEFORE: &str = r#"
[jobs.ping]
kind = "http"
schedule = "@every 1h"
url = "http://127.0.0.1:9/ping"

[jobs.report]
kind = "http"
schedule = "@every 1h"
url = "http://127.0.0.1:9/report"

[jobs.sleeper]
kind = "http"
schedule = "@every 1h"
url = "http://127.0.0.1:9/sleeper"
enabled = false
"#;

const AFTER: &str = r#"
[jobs.ping]
kind = "http"
schedule = "@every 2h"
url = "http://127.0.0.1:9/ping"

[jobs.fresh]
kind = "http"
schedule = "0 3 * * *"
timezone = "Europe/Berlin"
url = "http://127.0.0.1:9/fresh"

[jobs.sleeper]
kind = "http"
schedule = "@every 1h"
url = "http://127.0.0.1:9/sleeper"

[jobs.database-backup]
keep = 3
"#;

fn schedule(app: &App, id: &str) -> Option<String> {
    app.scheduler.job(id).and_then(|j| j.schedule)
}

#[tokio::test]
async fn a_reload_adds_removes_and_changes_jobs_and_keeps_the_cluster_pauses() {
    let tmp = tempfile::tempdir().unwrap();
    let app = App::build(config(tmp.path(), BEFORE), BuildOptions::default()).await.unwrap();
    app.control.prepare(mscribe_server::control::ops_definitions(&app.config)).await.unwrap();
    app.scheduler.start().await.unwrap();
    app.control.pause("ping", Some("held for the migration".into()), Source::Api).await.unwrap();
    assert!(app.scheduler.job("ping").unwrap().paused);
    assert!(app.scheduler.job("sleeper").unwrap().paused, "enabled = false");

    let report = app.reloader.apply(config(tmp.path(), AFTER)).await;
    assert_eq!(report.added, ["fresh"]);
    assert_eq!(report.removed, ["report"]);
    assert_eq!(report.changed, ["database-backup", "ping", "sleeper"]);
    assert_eq!(report.unchanged, 6);
    assert!(report.failed.is_empty() && report.needs_restart.is_empty(), "{report:?}");
    assert!(!report.alerts_changed);

    assert_eq!(schedule(&app, "ping").as_deref(), Some("@every 2h"));
    assert!(app.scheduler.job("report").is_none());
    assert_eq!(schedule(&app, "fresh").as_deref(), Some("CRON_TZ=Europe/Berlin 0 3 * * *"));
    // The pause made in the cluster outlives the change of the schedule;
    // the job no longer disabled in the file runs.
    assert!(app.scheduler.job("ping").unwrap().paused, "the stored pause applies again");
    assert!(!app.scheduler.job("sleeper").unwrap().paused, "enabled again");
    assert_eq!(app.reloader.config().jobs.database_backup.options.keep, 3);
    // The stored definitions follow, for the other instances and the CLI.
    let defs = app.control.definitions().await.unwrap();
    let ping = defs.iter().find(|d| d.job_id == "ping").unwrap();
    assert_eq!(ping.schedule.as_deref(), Some("@every 2h"));
    assert!(defs.iter().any(|d| d.job_id == "fresh"));

    // The same file again: nothing to do.
    let again = app.reloader.apply(config(tmp.path(), AFTER)).await;
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(again.unchanged, 10);
    app.scheduler.stop(std::time::Duration::from_secs(1)).await.unwrap();
}

/// A reload that changes the configuration's jobs leaves the jobs defined
/// through the API alone: their stored definitions were overwritten by a
/// bare listing of the registered job, which deleted them everywhere.
#[tokio::test]
async fn a_reload_keeps_the_jobs_defined_through_the_api() {
    let tmp = tempfile::tempdir().unwrap();
    let app = App::build(config(tmp.path(), BEFORE), BuildOptions::default()).await.unwrap();
    app.control.prepare(mscribe_server::control::ops_definitions(&app.config)).await.unwrap();
    app.scheduler.start().await.unwrap();
    let body = serde_json::json!({
        "kind": "http", "url": "http://127.0.0.1:9/api", "schedule": "@every 3h"
    });
    app.control.define_job("from-api", body, Source::Api).await.unwrap();
    assert_eq!(schedule(&app, "from-api").as_deref(), Some("@every 3h"));

    let report = app.reloader.apply(config(tmp.path(), AFTER)).await;
    assert!(!report.is_empty(), "{report:?}");
    let stored = |defs: &[mscribe_storage::JobDefinition]| {
        defs.iter().find(|d| d.job_id == "from-api").map(|d| (d.kind.clone(), d.source.clone()))
    };
    let defs = app.control.definitions().await.unwrap();
    assert_eq!(stored(&defs), Some(("http".to_owned(), Source::Api)), "{defs:?}");
    // A round, and a restart's preparation, keep it registered.
    app.control.sync_now().await.unwrap();
    app.control.prepare(mscribe_server::control::ops_definitions(&app.config)).await.unwrap();
    assert_eq!(schedule(&app, "from-api").as_deref(), Some("@every 3h"));
    let defs = app.control.definitions().await.unwrap();
    assert_eq!(stored(&defs), Some(("http".to_owned(), Source::Api)), "{defs:?}");
    app.scheduler.stop(std::time::Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn settings_outside_jobs_and_alerts_wait_for_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let app = App::build(config(tmp.path(), ""), BuildOptions::default()).await.unwrap();
    let mut new = config(tmp.path(), "[health]\nttl = \"9s\"\n");
    new.listen = "127.0.0.1:1".parse().unwrap();
    let report = app.reloader.apply(new).await;
    assert_eq!(report.needs_restart, ["listen", "[health]"]);
    assert!(report.is_empty(), "no job changed: {report:?}");
    // The running values stay.
    assert_eq!(app.reloader.config().listen, app.config.listen);
    assert_eq!(app.reloader.config().health.ttl, app.config.health.ttl);
}

#[tokio::test]
async fn a_reload_changing_only_alert_keys_keeps_the_jobs_registered_and_applies_the_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let job = |keys: &str| {
        format!(
            "[jobs.long]\nkind = \"http\"\nschedule = \"@every 1h\"\nurl = \"http://127.0.0.1:9/long\"\n{keys}\n\
             [jobs.database-backup]\n{keys}\n"
        )
    };
    let app =
        App::build(config(tmp.path(), &job("failures_in_a_row = 3")), BuildOptions::default())
            .await
            .unwrap();
    let keys = "failures_in_a_row = 5\nexpect_success_within = \"26h\"\npaused_too_long = \"2h\"\npause_after_failures = 4";
    let report = app.reloader.apply(config(tmp.path(), &job(keys))).await;
    assert!(report.changed.is_empty(), "only alert keys changed: {report:?}");
    assert!(report.added.is_empty() && report.removed.is_empty(), "{report:?}");
    assert!(report.alerts_changed, "the keys are alert settings: {report:?}");
    // In force for the next record.
    let now = app.reloader.config();
    for id in ["long", "database-backup"] {
        let a = now.jobs.common(id).unwrap().alerting.clone();
        assert_eq!((a.failures_in_a_row, a.pause_after_failures), (Some(5), Some(4)), "{id}");
    }
    assert!(app.alerts.is_running(), "pause_after_failures needs the alert loops");
    app.alerts.stop(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_alert_added_by_a_reload_starts_the_alert_loops() {
    let tmp = tempfile::tempdir().unwrap();
    let app = App::build(config(tmp.path(), ""), BuildOptions::default()).await.unwrap();
    assert!(!app.alerts.is_running());
    let with_alert = config(
        tmp.path(),
        "[alerts.ops]\nurl = \"http://127.0.0.1:9/hook\"\nevents = [\"failure\"]\n",
    );
    let report = app.reloader.apply(with_alert).await;
    assert!(report.alerts_changed, "{report:?}");
    assert!(app.alerts.is_running(), "the loops run once an alert is configured");
    app.alerts.stop(std::time::Duration::from_secs(1)).await;
}

/// Polls `GET /jobs/{id}` until its schedule is `want`.
async fn wait_for_schedule(srv: &Server, id: &str, want: &str) {
    srv.poll("GET", &format!("/jobs/{id}"), Some(TOKEN), |code, v| {
        code == 200 && v["schedule"] == want
    })
    .await;
}

/// Waits (up to 30 s) until the server's log has `line`.
async fn wait_for_log(srv: &Server, line: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !srv.stderr().contains(line) {
        assert!(std::time::Instant::now() < deadline, "not logged: {line}\n{}", srv.stderr());
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

fn hangup(srv: &Server) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    kill(Pid::from_raw(srv.child.id() as i32), Signal::SIGHUP).expect("kill -HUP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_changed_schedule_and_a_broken_file_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let file = dir.join("mscribe.toml");
    let job = |schedule: &str| {
        format!(
            "[jobs.ping]\nkind = \"http\"\nschedule = \"{schedule}\"\nurl = \"http://127.0.0.1:9/ping\"\n"
        )
    };
    std::fs::write(&file, job("@every 1h")).unwrap();
    let mut env = base_env(dir, &format!("sqlite://{}/mscribe.db", dir.display()));
    env.push(("MSCRIBE_ADMIN_TOKEN".into(), TOKEN.into()));
    env.push(("MSCRIBE_CONFIG".into(), file.display().to_string()));
    let srv = Server::start(dir, &env);
    wait_for_schedule(&srv, "ping", "@every 1h").await;

    std::fs::write(&file, job("@every 2h")).unwrap();
    hangup(&srv);
    wait_for_schedule(&srv, "ping", "@every 2h").await;
    // The summary follows once the cluster's state is applied to the job.
    wait_for_log(&srv, "configuration reloaded: jobs: 1 changed (ping)").await;

    // A schedule that does not parse: the error is logged, nothing changes.
    std::fs::write(&file, job("every tuesday-ish")).unwrap();
    hangup(&srv);
    wait_for_log(&srv, "configuration not reloaded").await;
    let log = srv.stderr();
    assert!(log.contains("every tuesday-ish"), "the error names the bad value:\n{log}");
    assert!(log.contains("jobs.ping.schedule"), "the error names the key:\n{log}");
    wait_for_schedule(&srv, "ping", "@every 2h").await;

    // The server still serves and still stops cleanly.
    let (status, log) = srv.terminate();
    assert!(status.success(), "{log}");
}
