//! `mscribe backfill` and `mscribe upcoming` with the real binary: on the
//! database without `--url` (read-only: a dry run and the next fires, a
//! run refused), and through a running server with `--url` (a dry run, a
//! run in the background followed in the audit log, the server's refusals).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, SecondsFormat, Utc};
use common::{Server, base_env, run_cli};
use serde_json::Value;

fn sqlite_env(dir: &Path) -> (Vec<(String, String)>, std::path::PathBuf) {
    let db = dir.join("db/mscribe.db");
    (base_env(dir, &format!("sqlite://{}", db.display())), db)
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn t(x: DateTime<Utc>) -> String {
    x.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The last three whole hours: `metrics-aggregation` (`5 * * * *`) fired
/// three times in them.
fn last_hours() -> (String, String) {
    let hour = Utc::now().duration_trunc(chrono::Duration::hours(1)).unwrap();
    (t(hour - chrono::Duration::hours(3)), t(hour - chrono::Duration::minutes(50)))
}

#[test]
fn without_url_a_dry_run_and_the_next_fires_read_the_database_and_a_run_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut env, db) = sqlite_env(dir);
    env.push(("MSCRIBE_JOBS_DATABASE_BACKUP_TIMEZONE".into(), "Europe/Berlin".into()));
    let (from, to) = last_hours();
    let backfill = ["backfill", "metrics-aggregation", "--from", &from, "--to", &to];

    // A run needs a server: refused before anything is opened.
    let (code, out, err) = run_cli(dir, &env, &backfill);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("a backfill runs on a server: pass --url URL"), "{err}");
    // Read-only: a missing database stays missing.
    let dry: Vec<&str> = backfill.iter().copied().chain(["--dry-run"]).collect();
    for args in [&dry[..], &["upcoming", "database-backup"]] {
        let (code, _, err) = run_cli(dir, &env, args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("does not exist"), "{args:?}: {err}");
        assert!(!db.exists(), "{args:?} created the database");
    }
    assert_eq!(run_cli(dir, &env, &["migrate"]).0, 0);

    let (code, out, err) = run_cli(dir, &env, &dry);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("SCHEDULED") && lines[0].contains("RECORDED"), "{out}");
    assert_eq!(lines.len(), 5, "a header, three fires, the summary: {out}");
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cells[1..], ["-", "no", "yes"], "UTC: no local time; not recorded, runs: {out}");
    assert!(
        lines[4].starts_with("dry run: 3 fires of metrics-aggregation")
            && lines[4].contains("0 already recorded, 3 to run"),
        "{out}"
    );
    let (code, out, err) = run_cli(dir, &env, &[&dry[..], &["--json"]].concat());
    assert_eq!(code, 0, "{err}");
    let plan = json(&out);
    assert_eq!((plan["to_run"].as_u64(), plan["dry_run"].as_bool()), (Some(3), Some(true)));

    // The next fires, with the zone the config gives.
    let (code, out, err) = run_cli(dir, &env, &["upcoming", "database-backup", "-n", "3"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(out.lines().nth(1).unwrap().contains("T02:00:00+0"), "local 02:00 Berlin: {out}");
    let (_, out, _) = run_cli(dir, &env, &["upcoming", "health-snapshot", "--json"]);
    let v = json(&out);
    assert_eq!(v["fires"].as_array().unwrap().len(), 10);
    assert_eq!((v["schedule"].as_str(), v["paused"].as_bool()), (Some("*/5 * * * *"), Some(false)));

    // Bad input: exit 2, naming the option.
    let future = t(Utc::now() + chrono::Duration::hours(2));
    for (args, msg) in [
        (
            vec!["backfill", "metrics-aggregation", "--from", &to, "--to", &from, "--dry-run"],
            "--from: from",
        ),
        (
            vec!["backfill", "metrics-aggregation", "--from", &from, "--to", &future, "--dry-run"],
            "--to: to",
        ),
        (
            vec!["backfill", "metrics-aggregation", "--from", "yesterday", "--to", &to],
            "not an RFC 3339 time",
        ),
        (
            vec![
                "backfill",
                "metrics-aggregation",
                "--from",
                &from,
                "--to",
                &to,
                "--concurrency",
                "0",
            ],
            "--concurrency",
        ),
        (
            vec!["backfill", "nope", "--from", &from, "--to", &to, "--dry-run"],
            "unknown job \"nope\"",
        ),
        (vec!["upcoming", "nope"], "unknown job \"nope\""),
        (vec!["upcoming", "health-snapshot", "-n", "0"], "--limit"),
        (vec!["upcoming", "health-snapshot", "-n", "1001"], "--limit"),
    ] {
        let (code, out, err) = run_cli(dir, &env, &args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(msg), "{args:?}: {err}");
    }
    // An hour of a job firing every second is over the cap.
    let mut every_second = env.clone();
    every_second.push(("MSCRIBE_JOBS_HEALTH_SNAPSHOT_SCHEDULE".into(), "@every 100ms".into()));
    let (code, _, err) = run_cli(
        dir,
        &every_second,
        &["backfill", "health-snapshot", "--from", &from, "--to", &to, "--dry-run"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--from/--to: ") && err.contains("more than 10000 fires"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_url_the_server_plans_runs_and_refuses() {
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
    let (from, to) = last_hours();
    let backfill = ["backfill", "metrics-aggregation", "--from", &from, "--to", &to];

    let (code, out, err) = cli(&[&backfill[..], &["--dry-run"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dry run: 3 fires of metrics-aggregation"), "{out}");

    // A run: accepted at once, then followed in the audit log.
    let (code, out, err) = cli(&[&backfill[..], &["--concurrency", "2"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0 already recorded, 3 to run; accepted: running on"), "{out}");
    assert!(out.contains("2 at a time, audit id"), "{out}");
    assert!(out.contains("follow it with: mscribe audit --job metrics-aggregation"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let entries = loop {
        let (code, out, err) = cli(&["audit", "--job", "metrics-aggregation", "--json"]);
        assert_eq!(code, 0, "{err}");
        let entries = json(&out)["entries"].as_array().cloned().unwrap_or_default();
        if entries.len() >= 2 {
            break entries;
        }
        assert!(Instant::now() < deadline, "no end of the backfill in the audit log: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(entries.iter().all(|e| e["action"] == "backfill" && e["source"] == "api"));
    assert_eq!(entries[0]["detail"]["phase"], "ended", "{entries:?}");
    assert_eq!(entries[0]["detail"]["runs"], 3, "{entries:?}");
    assert_eq!(entries[1]["detail"]["phase"], "started");
    let (_, out, _) = cli(&["audit", "--job", "metrics-aggregation"]);
    assert!(out.contains("ended: 3 runs"), "the table shows the note: {out}");

    // Now recorded: the server and the database say so.
    let (_, out, _) = cli(&[&backfill[..], &["--dry-run", "--json"]].concat());
    assert_eq!(json(&out)["already_recorded"], 3, "{out}");
    let (code, out, err) = run_cli(dir, &env, &[&backfill[..], &["--dry-run"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 already recorded, 0 to run"), "{out}");
    let (code, out, err) = cli(&backfill);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("nothing to run"), "{out}");
    let (_, out, _) = cli(&["history", "metrics-aggregation", "--json", "-n", "10"]);
    let kinds: Vec<Value> =
        json(&out)["executions"].as_array().unwrap().iter().map(|r| r["kind"].clone()).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "backfill").count(), 3, "{out}");

    let (code, out, err) = cli(&["upcoming", "metrics-aggregation", "-n", "4"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(out.lines().nth(1).unwrap().contains(":05:00Z"), "{out}");

    // The server's refusals: exit 2 with its message.
    let (code, _, err) = cli(&["backfill", "metrics-aggregation", "--from", &to, "--to", &from]);
    assert_eq!(code, 2);
    assert!(err.contains("400 POST /jobs/metrics-aggregation/backfill: field \"from\""), "{err}");
    let (code, _, err) = cli(&["backfill", "nope", "--from", &from, "--to", &to]);
    assert_eq!(code, 2);
    assert!(err.contains("404 unknown job \"nope\""), "{err}");
    let (code, _, err) = cli(&["upcoming", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("404 unknown job \"nope\""), "{err}");
    let (status, stderr) = srv.terminate();
    assert_eq!(status.code(), Some(0), "{stderr}");
}
