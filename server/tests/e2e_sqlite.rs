//! End to end: the real `mscribe` binary on a free port, SQLite in a temp dir.

mod common;

use common::{Server, base_env, run_cli, scenario};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_health_jobs_trigger_storage_failure_and_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("mscribe.db");
    let env = base_env(dir, &format!("sqlite://{}", db.display()));

    let srv = Server::start(dir, &env);
    scenario(dir, &srv).await;

    // The backup is a real, verified SQLite file. (The storage probe's
    // write test, `.mscribe-health-<pid>-<n>`, may be there for an instant:
    // the health-snapshot job triggered last runs the probes.)
    let backups: Vec<_> = std::fs::read_dir(dir.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with(".mscribe-health-"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let name = backups[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("mscribe-") && name.ends_with("Z.db"), "{name}");
    mscribe_server::ops::verify_sqlite_backup(&backups[0]).unwrap();

    let (status, stderr) = srv.terminate();
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");

    // Every record reached the store and none is left running.
    let c = rusqlite::Connection::open(&db).unwrap();
    let running: i64 = c
        .query_row(
            "SELECT count(*) FROM scheduled_job_executions WHERE status = 'running'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let total: i64 =
        c.query_row("SELECT count(*) FROM scheduled_job_executions", [], |r| r.get(0)).unwrap();
    assert_eq!(running, 0);
    assert!(total >= 2, "{total}");
    drop(c);
    // The server logged to log_dir/mscribe.log too.
    let log = std::fs::read_to_string(dir.join("logs/mscribe.log")).unwrap();
    assert!(log.contains("mscribe started"), "{log}");

    // The CLI against the same files, no server running.
    let (code, out, err) = run_cli(dir, &env, &["jobs"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 8, "{out}");
    assert!(lines[0].starts_with("JOB"));
    let backup_line = lines.iter().find(|l| l.starts_with("database-backup")).unwrap();
    assert!(
        backup_line.contains("0 2 * * *") && backup_line.ends_with("succeeded"),
        "{backup_line}"
    );
    // last_run: the newest scheduled_at of each job's rows, as the store has it.
    let (code, out, err) = run_cli(dir, &env, &["jobs", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let c = rusqlite::Connection::open(&db).unwrap();
    for job in v["jobs"].as_array().unwrap() {
        let id = job["id"].as_str().unwrap();
        let newest: Option<String> = c
            .query_row(
                "SELECT max(scheduled_at) FROM scheduled_job_executions WHERE job_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
        assert_eq!(
            job["last_run"].as_str().map(parse),
            newest.as_deref().map(parse),
            "{id}: {job}"
        );
        assert!(job["schedule"].is_string(), "{job}");
    }
    drop(c);

    let (code, out, err) =
        run_cli(dir, &env, &["history", "database-backup", "--json", "--status", "succeeded"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["executions"].as_array().unwrap().len(), 1);
    assert_eq!(v["executions"][0]["result"]["integrity_check"], "ok");

    let (code, out, err) = run_cli(dir, &env, &["run", "security-scan"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["result"]["high"], 0, "{v}");

    // A run that fails exits non-zero: the token file became world-readable.
    use std::os::unix::fs::PermissionsExt;
    let token_file = dir.join("data/admin_token");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out, _) = run_cli(dir, &env, &["run", "security-scan"]);
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "failed");
    assert_eq!(v["result"]["findings"][0]["severity"], "high");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    // `health` with no server: checks the database and storage directly.
    std::fs::rename(dir.join("backups"), dir.join("backups.moved")).unwrap();
    std::fs::write(dir.join("backups"), b"x").unwrap();
    let (code, out, err) = run_cli(dir, &env, &["health"]);
    assert_eq!(code, 1, "degraded: {out}\n{err}");
    assert!(err.contains("no server answered"), "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["checks"]["database"]["status"],
        "healthy"
    );
    std::fs::remove_file(dir.join("backups")).unwrap();
    std::fs::rename(dir.join("backups.moved"), dir.join("backups")).unwrap();
    let (code, out, _) = run_cli(dir, &env, &["health"]);
    assert_eq!(code, 0, "{out}");

    let (code, out, err) = run_cli(dir, &env, &["migrate"]);
    assert_eq!(code, 0, "{err}");
    let latest = mscribe_storage::migrate::SQLITE_MIGRATIONS.last().unwrap().label();
    assert!(out.contains(&format!("migrated to {latest}")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_command_against_a_running_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let env = base_env(dir, &format!("sqlite://{}", dir.join("m.db").display()));
    let srv = Server::start(dir, &env);
    srv.poll("GET", "/health-check", None, |c, _| c == 200).await;
    let url = format!("http://{}", srv.addr);
    let (code, out, err) = run_cli(dir, &env, &["health", "--url", &url]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "healthy");
    let (status, stderr) = srv.terminate();
    assert_eq!(status.code(), Some(0), "{stderr}");
    // --url to a server that is gone: unhealthy, exit 2 (no local fallback).
    let (code, _, _) = run_cli(dir, &env, &["health", "--url", &url]);
    assert_eq!(code, 2);
}

#[test]
fn config_errors_stop_the_start_naming_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("bad.toml"), "[jobs.database-backup]\nkep = 3\n").unwrap();
    let (code, _, err) = run_cli(dir, &[], &["serve", "--config", "bad.toml"]);
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "invalid config: key `jobs.database-backup.kep` in file bad.toml: unknown key `kep`"
        ),
        "{err}"
    );
    let env = vec![("MSCRIBE_HEALTH_TTL".to_owned(), "soon".to_owned())];
    let (code, _, err) = run_cli(dir, &env, &["jobs"]);
    assert_eq!(code, 2);
    assert!(err.contains("key `health.ttl` in environment variable MSCRIBE_HEALTH_TTL"), "{err}");
    let (code, _, err) = run_cli(dir, &[], &["jobs", "--config", "missing.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read config file missing.toml"), "{err}");
}

#[test]
fn defaults_need_no_setup() {
    // No config, no environment: ./mscribe.db, ./data, ./logs, ./backups.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (code, out, err) = run_cli(dir, &[], &["migrate"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mscribe.db"), "{out}");
    assert!(dir.join("mscribe.db").is_file());
    let (code, out, err) = run_cli(dir, &[], &["run", "temp-cleanup"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for d in ["data", "logs", "backups", "data/tmp", "data/cache"] {
        assert!(dir.join(d).is_dir(), "{d} missing");
    }
    assert!(dir.join("data/admin_token").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_no_config_creates_its_files_in_the_working_directory() {
    // Only the port is set (8080 may be taken on the test machine).
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let env = vec![("MSCRIBE_LISTEN".to_owned(), "127.0.0.1:0".to_owned())];
    let srv = Server::start(dir, &env);
    let (code, body) = srv.poll("GET", "/readyz", None, |c, _| c == 200).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("ready")));
    for d in ["data", "logs", "backups", "data/tmp", "data/cache"] {
        assert!(dir.join(d).is_dir(), "{d} missing");
    }
    assert!(dir.join("mscribe.db").is_file());
    assert!(dir.join("data/admin_token").is_file());
    assert!(dir.join("logs/mscribe.log").is_file());
    let stderr = srv.stderr();
    assert!(stderr.contains("admin token generated"), "{stderr}");
    assert!(stderr.contains("data/admin_token"), "{stderr}");
    let (status, stderr) = srv.terminate();
    assert_eq!(status.code(), Some(0), "{stderr}");
}
