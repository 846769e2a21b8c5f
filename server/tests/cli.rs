//! The `mscribe` binary's commands that act on the database or on a
//! running server (`--url`): read-only commands never create or migrate a
//! database, the exit codes (2 for usage and bad input, 1 for server and
//! I/O failures), control actions through the database and through the
//! API, and `serve` on a taken port.

mod common;

use std::path::Path;

use common::{Server, base_env, run_cli};
use serde_json::Value;

fn sqlite_env(dir: &Path) -> (Vec<(String, String)>, std::path::PathBuf) {
    let db = dir.join("db/mscribe.db");
    (base_env(dir, &format!("sqlite://{}", db.display())), db)
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn read_only_commands_never_create_a_database() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (env, db) = sqlite_env(dir);
    for args in [
        &["jobs"][..],
        &["jobs", "--json"],
        &["history", "database-backup"],
        &["audit"],
        &["pause", "database-backup"],
        &["trigger", "database-backup"],
    ] {
        let (code, out, err) = run_cli(dir, &env, args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(
            err.contains(&format!("database file {} does not exist", db.display())),
            "{args:?}: {err}"
        );
        assert!(!db.exists() && !db.parent().unwrap().exists(), "{args:?} created the database");
    }
}

/// `mscribe run` uses the database it is given: a wrong or missing
/// `database_url` must not become a new empty database whose "backup"
/// succeeds.
#[test]
fn run_on_a_missing_database_fails_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (env, db) = sqlite_env(dir);
    for job in ["database-backup", "temp-cleanup"] {
        let (code, out, err) = run_cli(dir, &env, &["run", job]);
        assert_eq!(code, 2, "{job}: {out}{err}");
        assert!(
            err.contains(&format!("database file {} does not exist", db.display()))
                && err.contains("mscribe migrate"),
            "{job}: {err}"
        );
        assert!(!db.exists() && !db.parent().unwrap().exists(), "{job} created the database");
        for d in ["data", "logs", "backups"] {
            assert!(!dir.join(d).exists(), "{job} created {d}");
        }
    }
    // An existing database is used as before.
    assert_eq!(run_cli(dir, &env, &["migrate"]).0, 0);
    let (code, out, err) = run_cli(dir, &env, &["run", "database-backup"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json(&out)["status"], "succeeded", "{out}");
}

#[test]
fn a_database_never_migrated_or_older_is_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (env, db) = sqlite_env(dir);
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    // Some other application's database.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("CREATE TABLE notes (x TEXT)").unwrap();
    let (code, _, err) = run_cli(dir, &env, &["jobs"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not an mscribe database, or never migrated"), "{err}");
    assert!(err.contains("run `mscribe migrate` first"), "{err}");
    let tables = |c: &rusqlite::Connection| -> Vec<String> {
        let mut st =
            c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").unwrap();
        st.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    };
    assert_eq!(tables(&c), ["notes"], "nothing was migrated");
    drop(c);

    // An mscribe database one migration behind this build.
    std::fs::remove_file(&db).unwrap();
    let known = mscribe_storage::migrate::SQLITE_MIGRATIONS;
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "CREATE TABLE mscribe_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
         checksum TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .unwrap();
    for m in &known[..known.len() - 1] {
        c.execute_batch(m.sql).unwrap();
        c.execute(
            "INSERT INTO mscribe_migrations VALUES (?1, ?2, ?3, '2026-01-01T00:00:00Z')",
            rusqlite::params![m.version, m.name, m.checksum()],
        )
        .unwrap();
    }
    let before = tables(&c);
    for args in [&["jobs"][..], &["history", "database-backup"], &["audit"]] {
        let (code, _, err) = run_cli(dir, &env, args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("the schema is older than this build"), "{err}");
        assert!(err.contains(&known.last().unwrap().label()), "{err}");
    }
    assert_eq!(tables(&c), before, "nothing was migrated");
    // `migrate` brings it up to date; then it reads.
    let (code, _, err) = run_cli(dir, &env, &["migrate"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run_cli(dir, &env, &["jobs"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn history_of_an_unknown_job_fails_and_usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (env, _) = sqlite_env(dir);
    assert_eq!(run_cli(dir, &env, &["migrate"]).0, 0);
    let (code, _, err) = run_cli(dir, &env, &["history", "nope"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown job \"nope\""), "{err}");
    let (code, out, err) = run_cli(dir, &env, &["history", "database-backup"]);
    assert_eq!((code, out.trim()), (0, "no executions of database-backup"), "{err}");
    let (code, _, err) = run_cli(dir, &env, &["history", "database-backup", "-n", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("--limit must be at least 1, got 0"), "{err}");
    let (code, _, err) = run_cli(dir, &env, &["history", "database-backup", "--cursor", "zz"]);
    assert_eq!(code, 2);
    assert!(err.contains("--cursor: invalid cursor \"zz\""), "{err}");
    let (code, _, err) = run_cli(dir, &env, &["cancel", "not-an-id"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid execution id \"not-an-id\""), "{err}");
    let (code, _, err) = run_cli(dir, &env, &["pause", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown job \"nope\""), "{err}");
    let (code, _, err) = run_cli(dir, &env, &["pause", "database-backup", "--note", " "]);
    assert_eq!(code, 2);
    assert!(err.contains("--note is empty"), "{err}");
    // clap's own usage errors exit 2 too.
    assert_eq!(run_cli(dir, &env, &["history"]).0, 2);
}

#[test]
fn control_actions_without_url_go_through_the_database() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (env, _) = sqlite_env(dir);
    assert_eq!(run_cli(dir, &env, &["migrate"]).0, 0);
    let (code, out, err) =
        run_cli(dir, &env, &["pause", "database-backup", "--note", "disk replacement"]);
    assert_eq!(code, 0, "{err}");
    let state = json(&out);
    assert_eq!((state["paused"].as_bool(), state["source"].as_str()), (Some(true), Some("cli")));
    let (_, out, _) = run_cli(dir, &env, &["jobs", "--json"]);
    let jobs = json(&out);
    let backup =
        jobs["jobs"].as_array().unwrap().iter().find(|j| j["id"] == "database-backup").unwrap();
    assert_eq!(
        (backup["paused"].as_bool(), backup["pause_note"].as_str()),
        (Some(true), Some("disk replacement"))
    );
    let (_, out, _) = run_cli(dir, &env, &["jobs"]);
    assert!(out.lines().any(|l| l.starts_with("database-backup") && l.contains("paused")), "{out}");
    assert_eq!(run_cli(dir, &env, &["resume", "database-backup"]).0, 0);
    let (code, out, err) = run_cli(dir, &env, &["trigger", "security-scan"]);
    assert_eq!(code, 0, "{err}");
    assert!(json(&out)["trigger_id"].is_i64(), "{out}");
    let (code, out, err) = run_cli(dir, &env, &["audit", "--json"]);
    assert_eq!(code, 0, "{err}");
    let entries = json(&out)["entries"].as_array().unwrap().clone();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["trigger", "resume", "pause"], "newest first");
    assert!(entries.iter().all(|e| e["source"] == "cli"));
    assert_eq!(entries[2]["note"], "disk replacement");
    let (_, out, _) = run_cli(dir, &env, &["audit", "--job", "security-scan"]);
    assert_eq!(out.lines().count(), 2, "a header and one row: {out}");
}

/// `mscribe cancel ID` without `--url` records a request only for a run the
/// database shows `running`; for any other id it fails naming it, as the
/// API's 404 does, and records nothing.
#[test]
fn cancel_without_url_of_a_run_nobody_runs_fails_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (env, db) = sqlite_env(dir);
    assert_eq!(run_cli(dir, &env, &["migrate"]).0, 0);
    let c = rusqlite::Connection::open(&db).unwrap();
    let row = |id: &str, status: &str| {
        c.execute(
            "INSERT INTO scheduled_job_executions (job_id, execution_id, attempt, status, \
             scheduled_at, started_at, instance_id) VALUES ('security-scan', ?1, 1, ?2, \
             '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', 'gone')",
            rusqlite::params![id, status],
        )
        .unwrap();
    };
    let (unknown, ended, running) = (
        "00000000-0000-0000-0000-00000000002a",
        "00000000-0000-0000-0000-00000000002b",
        "00000000-0000-0000-0000-00000000002c",
    );
    row(ended, "succeeded");
    row(running, "running");
    for id in [unknown, ended] {
        let (code, out, err) = run_cli(dir, &env, &["cancel", id]);
        assert_eq!(code, 2, "{id}: {out}{err}");
        assert!(err.contains(id) && err.contains("no instance runs this execution"), "{err}");
    }
    let (code, out, err) = run_cli(dir, &env, &["cancel", running]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json(&out)["outcome"], "requested", "{out}");
    let (_, out, _) = run_cli(dir, &env, &["audit", "--json"]);
    let entries = json(&out)["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 1, "only the running run's cancel is recorded: {out}");
    assert_eq!(
        (entries[0]["execution_id"].as_str(), entries[0]["job_id"].as_str()),
        (Some(running), Some("security-scan"))
    );
}

#[test]
fn jobs_without_url_list_the_jobs_defined_through_the_api_or_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (env, _) = sqlite_env(dir);
    assert_eq!(run_cli(dir, &env, &["migrate"]).0, 0);
    // Stored as `PUT /jobs/{id}` stores it: a definition in the database.
    let file = dir.join("jobs.toml");
    std::fs::write(
        &file,
        "[jobs.ping]\nkind = \"http\"\nurl = \"http://example.test/\"\n\
         schedule = \"0 3 * * *\"\ntimezone = \"Europe/Berlin\"\n",
    )
    .unwrap();
    let (code, _, err) = run_cli(dir, &env, &["job", "apply", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run_cli(dir, &env, &["jobs", "--json"]);
    assert_eq!(code, 0, "{err}");
    let jobs = json(&out);
    let list = jobs["jobs"].as_array().unwrap();
    let ping = list.iter().find(|j| j["id"] == "ping").unwrap_or_else(|| panic!("{out}"));
    assert_eq!(ping["schedule"], "0 3 * * * (Europe/Berlin)");
    assert_eq!(ping["enabled"], true);
    assert!(ping["next_run"].is_string(), "{ping}");
    assert!(list.iter().any(|j| j["id"] == "database-backup"), "the configured jobs stay");
    let (_, out, _) = run_cli(dir, &env, &["jobs"]);
    assert!(out.lines().any(|l| l.starts_with("ping ")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_with_url_talk_to_a_running_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (env, _) = sqlite_env(dir);
    let srv = Server::start(dir, &env);
    let url = format!("http://{}", srv.addr);
    let cli = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--url", &url]);
        run_cli(dir, &env, &a)
    };
    let (code, out, err) = cli(&["jobs"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("JOB") && out.contains("database-backup"), "{out}");
    let (code, out, err) = cli(&["pause", "temp-cleanup", "--note", "moving disks"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["paused"], true);
    let (_, out, _) = cli(&["jobs", "--json"]);
    let j = json(&out);
    assert!(
        j["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == "temp-cleanup" && j["paused"] == true)
    );
    assert_eq!(json(&cli(&["resume", "temp-cleanup"]).1)["paused"], false);
    let (code, out, err) = cli(&["trigger", "security-scan"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["outcome"], "started");
    let (code, out, err) = cli(&["history", "security-scan", "--json", "-n", "1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["executions"].as_array().unwrap().len(), 1);

    // Cancel and the audit log through the server's control plane.
    let (code, out, err) = cli(&["audit"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ID") && out.contains("moving disks"), "{out}");
    // No run of that id, and no other instance alive to have one: a 404.
    let (code, _, err) = cli(&["cancel", "00000000-0000-0000-0000-00000000002a"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("404") && err.contains("no instance runs this execution"), "{err}");
    let (code, _, err) = cli(&["cancel", "xyz"]);
    assert_eq!(code, 2);
    assert!(err.contains("400 invalid execution id \"xyz\""), "{err}");
    let (_, out, _) = cli(&["audit", "--json", "--job", "temp-cleanup"]);
    let actions: Vec<String> = json(&out)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["resume", "pause"]);

    // The server's errors: its JSON message, exit 2 for a 4xx.
    let (code, _, err) = cli(&["history", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("404 unknown job \"nope\""), "{err}");
    let (code, _, err) = cli(&["history", "security-scan", "-n", "1001"]);
    assert_eq!(code, 2);
    assert!(err.contains("422 limit must be between 1 and 1000, got 1001"), "{err}");
    let (code, _, err) = cli(&["pause", "temp-cleanup", "--note", &"n".repeat(1001)]);
    assert_eq!(code, 2);
    assert!(err.contains("--note has 1001 characters"), "{err}");
    let mut bad = env.clone();
    bad.push(("MSCRIBE_TOKEN".into(), "wrong".into()));
    bad.push(("MSCRIBE_URL".into(), url.clone()));
    let (code, _, err) = run_cli(dir, &bad, &["jobs"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("401 invalid bearer token"), "{err}");
    // MSCRIBE_URL alone is enough.
    let mut by_env = env.clone();
    by_env.push(("MSCRIBE_URL".into(), url.clone()));
    assert_eq!(run_cli(dir, &by_env, &["jobs"]).0, 0);

    // No server there, over http or https: exit 1. Another scheme: exit 2.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    for scheme in ["http", "https"] {
        let (code, _, err) =
            run_cli(dir, &env, &["jobs", "--url", &format!("{scheme}://{closed}")]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(&format!("cannot connect to {closed}")), "{err}");
    }
    let (code, _, err) = run_cli(dir, &env, &["jobs", "--url", &format!("ftp://{closed}")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not an http:// or https:// URL"), "{err}");
    let (status, stderr) = srv.terminate();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn serve_on_a_taken_port_fails_before_creating_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut env, db) = sqlite_env(dir);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    env.retain(|(k, _)| k != "MSCRIBE_LISTEN");
    env.push(("MSCRIBE_LISTEN".into(), addr.to_string()));
    let (code, out, err) = run_cli(dir, &env, &["serve"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(err.contains("nothing was created or migrated"), "{err}");
    assert!(!db.exists(), "the database was created");
    for d in ["data", "logs", "backups", "db"] {
        assert!(!dir.join(d).exists(), "{d} was created");
    }
    drop(taken);
}
