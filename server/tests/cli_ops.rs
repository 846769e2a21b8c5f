//! The operator's commands and logs of the real binary: `config check`,
//! `config show`, `completions`, `man`, and what `serve` logs (JSON lines,
//! one INFO line on a normal start, no colour with `NO_COLOR`).

use std::path::Path;

mod common;

use common::{Server, base_env, run_cli};

fn env_of(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn completions_and_man_name_the_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = run_cli(dir.path(), &[], &["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        for sub in ["serve", "backfill", "completions"] {
            assert!(out.contains(sub), "{shell} completions lack {sub}");
        }
    }
    let (code, _, err) = run_cli(dir.path(), &[], &["completions", "tcsh"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid value 'tcsh'"), "{err}");

    let (code, out, err) = run_cli(dir.path(), &[], &["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(".ie") || out.contains(".TH mscribe"), "not roff:\n{out}");
    for sub in ["serve", "backfill", "config"] {
        assert!(out.contains(sub), "the man page lacks {sub}");
    }
}

#[test]
fn config_check_accepts_a_good_file_and_refuses_a_bad_one_as_serve_does() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.toml",
        "listen = \"127.0.0.1:9001\"\n[jobs.database-backup]\nkeep = 3\n",
    );
    let (code, out, err) = run_cli(dir.path(), &[], &["config", "check", &good]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("good.toml: ok (7 jobs enabled, listen 127.0.0.1:9001"), "{out}");
    assert!(!dir.path().join("data").exists(), "config check created data_dir");
    assert!(!dir.path().join("mscribe.db").exists(), "config check created the database");

    // A bad file: exit 2 and the very message `serve` gives.
    let bad = write(dir.path(), "bad.toml", "[jobs.database-backup]\nkeep = 0\n");
    let (code, _, check_err) = run_cli(dir.path(), &[], &["config", "check", &bad]);
    assert_eq!(code, 2);
    assert!(check_err.contains("key `jobs.database-backup.keep` in file"), "{check_err}");
    let (code, _, serve_err) = run_cli(dir.path(), &[], &["--config", &bad, "serve"]);
    assert_eq!(code, 2);
    assert_eq!(check_err, serve_err);

    // The environment is checked too, and --config is the default file.
    let env = env_of(&[("MSCRIBE_HEALTH_TTL", "soon")]);
    let (code, _, err) = run_cli(dir.path(), &env, &["--config", &good, "config", "check"]);
    assert_eq!(code, 2);
    assert!(err.contains("environment variable MSCRIBE_HEALTH_TTL"), "{err}");

    let (code, _, err) = run_cli(dir.path(), &[], &["config", "check", "missing.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read config file missing.toml"), "{err}");
}

#[test]
fn a_misspelled_log_level_is_refused_naming_it() {
    // A bare word that is no level would be read as a target name and
    // silence every line: config check and serve refuse it, naming where
    // it came from and how to filter a target.
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.toml", "log_level = \"warning\"\n");
    let good = write(dir.path(), "good.toml", "");
    let cases = [
        (&bad, None, "key `log_level` in file"),
        (&good, Some(("MSCRIBE_LOG_LEVEL", "verbose")), "environment variable MSCRIBE_LOG_LEVEL"),
        (&good, Some(("MSCRIBE_LOG", "info,bogus")), "environment variable MSCRIBE_LOG"),
    ];
    for (file, var, origin) in cases {
        let env = env_of(var.as_slice());
        let env = &env;
        for cmd in [&["config", "check"][..], &["serve"][..]] {
            let args: Vec<&str> = ["--config", file].iter().chain(cmd).copied().collect();
            let (code, _, err) = run_cli(dir.path(), env, &args);
            assert_eq!(code, 2, "{args:?} {env:?}: {err}");
            assert!(err.contains(origin), "{err}");
            assert!(err.contains("target=level"), "{err}");
            let word = ["\"warning\"", "\"verbose\"", "\"bogus\""];
            assert!(word.iter().any(|w| err.contains(w)), "{err}");
        }
    }
    // Valid filters still pass, a level in any case and target=level too.
    for spec in ["Warn", "info,mscribe_server=debug", "OFF"] {
        let env = env_of(&[("MSCRIBE_LOG_LEVEL", spec), ("MSCRIBE_LOG", spec)]);
        let (code, _, err) = run_cli(dir.path(), &env, &["--config", &good, "config", "check"]);
        assert_eq!(code, 0, "{spec}: {err}");
    }
}

#[test]
fn config_show_merges_the_environment_and_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "m.toml",
        "admin_token = \"file-token-0123456789abcdef0123456789\"\nlisten = \"127.0.0.1:9001\"\n",
    );
    let env = env_of(&[
        ("MSCRIBE_DATABASE_URL", "postgres://svc:hunter2@db.internal:5432/mscribe"),
        ("MSCRIBE_LISTEN", "0.0.0.0:9100"),
    ]);
    let (code, out, err) = run_cli(dir.path(), &env, &["--config", &file, "config", "show"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("listen = \"0.0.0.0:9100\""), "the override is not shown:\n{out}");
    assert!(out.contains("postgres://svc:REDACTED@db.internal:5432/mscribe"), "{out}");
    assert!(out.contains("admin_token = \"REDACTED\""), "{out}");
    // Every key in force, the defaults included.
    assert!(out.contains("shutdown_grace = \"30s\""), "a default is not shown:\n{out}");
    assert!(out.contains("[jobs.database-backup]"), "{out}");
    for secret in ["hunter2", "file-token"] {
        assert!(!out.contains(secret) && !err.contains(secret), "{secret} shown:\n{out}");
    }
    let shown = out.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
    let _: toml::Table = shown.parse().expect("config show prints TOML");

    let bad = write(dir.path(), "bad.toml", "lisen = 1\n");
    let (code, _, err) = run_cli(dir.path(), &[], &["--config", &bad, "config", "show"]);
    assert_eq!(code, 2);
    assert!(err.contains("lisen"), "{err}");
}

/// The stderr of a `serve` started twice in `dir` (the first start creates
/// the database and the token), the second time with `extra` variables.
fn second_start_stderr(dir: &Path, extra: &[(&str, &str)]) -> String {
    let db = format!("sqlite://{}", dir.join("m.db").display());
    let mut env = base_env(dir, &db);
    let (status, _) = Server::start(dir, &env).terminate();
    assert_eq!(status.code(), Some(0));
    env.extend(env_of(extra));
    std::fs::remove_file(dir.join("server.stderr")).unwrap();
    let srv = Server::start(dir, &env);
    let (status, stderr) = srv.terminate();
    assert_eq!(status.code(), Some(0), "{stderr}");
    stderr
}

#[test]
fn json_logs_are_one_object_per_line_and_a_start_logs_one_info_line() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = second_start_stderr(dir.path(), &[("MSCRIBE_LOG_FORMAT", "json")]);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
    }
    // Up to the stop, the start is the only INFO line, and says it all.
    let start =
        lines.iter().position(|l| l["message"] == "mscribe started").expect("no start line");
    let stop = lines.iter().position(|l| l["message"] == "shutting down").expect("no stop line");
    let infos: Vec<&serde_json::Value> =
        lines[..stop].iter().filter(|l| l["level"] != "DEBUG" && l["level"] != "TRACE").collect();
    assert_eq!(infos.len(), 1, "more than one INFO line or any warning at start:\n{stderr}");
    let s = &lines[start];
    assert_eq!(s["level"], "INFO");
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert!(s["listen"].as_str().unwrap().starts_with("127.0.0.1:"), "{s}");
    assert!(s["database"].as_str().unwrap().contains("m.db"), "{s}");
    assert_eq!(s["jobs"], 7);
    assert!(s["instance_id"].as_str().is_some_and(|i| !i.is_empty()), "{s}");
    // The log file is JSON too.
    let file = std::fs::read_to_string(dir.path().join("logs/mscribe.log")).unwrap();
    let last = file.lines().last().unwrap();
    serde_json::from_str::<serde_json::Value>(last).unwrap_or_else(|e| panic!("{e}: {last}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_fields_of_text_values_are_plain_strings_not_quoted_json() {
    // `outcome` of "triggered through the API" and `file` of "database
    // backed up" are strings in the JSON line, not JSON text in a string.
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let token = "json-log-test-token-0123456789abcdef";
    let mut env = base_env(dir.path(), &db);
    env.extend(env_of(&[("MSCRIBE_LOG_FORMAT", "json"), ("MSCRIBE_ADMIN_TOKEN", token)]));
    let srv = Server::start(dir.path(), &env);
    let (code, body) = srv.json("POST", "/jobs/database-backup/trigger", Some(token)).await;
    assert_eq!(code, 202, "{body}");
    let exec = body["execution_id"].as_str().unwrap().to_owned();
    srv.poll("GET", "/jobs/database-backup/executions", Some(token), |_, b| {
        b["executions"].as_array().is_some_and(|rows| {
            rows.iter().any(|r| r["execution_id"] == exec.as_str() && r["status"] != "running")
        })
    })
    .await;
    let (status, stderr) = srv.terminate();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let lines: Vec<serde_json::Value> =
        stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let line = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line:\n{stderr}"))
    };
    let triggered = line("triggered through the API");
    assert_eq!(triggered["outcome"], "started", "{triggered}");
    let backed_up = line("database backed up");
    let file = backed_up["file"].as_str().unwrap();
    assert!(!file.starts_with('"') && file.contains("backups"), "{backed_up}");
}

#[test]
fn text_logs_have_no_escape_codes_with_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = second_start_stderr(dir.path(), &[("NO_COLOR", "1")]);
    assert!(!stderr.contains('\u{1b}'), "escape codes in:\n{stderr}");
    let start: Vec<&str> = stderr.lines().filter(|l| l.contains(" INFO ")).collect();
    assert!(start[0].contains("mscribe started"), "{start:?}");
    assert!(start[0].contains("instance_id="), "{start:?}");
}

#[test]
fn malformed_requests_of_anonymous_clients_log_nothing_above_debug() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let srv = Server::start(dir.path(), &base_env(dir.path(), &db));
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let requests = [
        ("a bad Content-Length", "GET /livez HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
        (
            "two Content-Lengths",
            "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nabcde",
        ),
        ("a bad method", "FOO%BAR /livez HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("an unknown method", "BREW /livez HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("a URI too long", long_uri.as_str()),
    ];
    for (what, raw) in requests {
        let mut s = std::net::TcpStream::connect(&srv.addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        // The server may answer and close before reading all of a long request.
        let _ = s.write_all(raw.as_bytes());
        let mut answer = [0u8; 12];
        s.read_exact(&mut answer).unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = String::from_utf8_lossy(&answer[9..12]).into_owned();
        assert!(status.starts_with('4'), "{what}: answered {status}");
    }
    let (status, stderr) = srv.terminate();
    assert_eq!(status.code(), Some(0));
    for line in stderr.lines() {
        assert!(!line.contains(" WARN ") && !line.contains(" ERROR "), "logged: {line}");
    }
}

#[test]
fn serve_warns_about_a_short_admin_token_and_every_command_about_unknown_variables() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = second_start_stderr(dir.path(), &[("MSCRIBE_ADMIN_TOKEN", "short-token")]);
    let warn: Vec<&str> = stderr.lines().filter(|l| l.contains(" WARN ")).collect();
    assert!(
        warn.iter().any(|l| l.contains("shorter than 32 bytes") && l.contains("bytes=11")),
        "{stderr}"
    );
    assert!(!stderr.contains("short-token"), "the token itself is never logged:\n{stderr}");
    // Any command, not only serve: a typo in a variable name is said once.
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let mut env = base_env(dir.path(), &db);
    env.extend(env_of(&[("MSCRIBE_LISTN", "127.0.0.1:1")]));
    let (code, _, err) = run_cli(dir.path(), &env, &["jobs"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err.matches("unknown MSCRIBE_ environment variable MSCRIBE_LISTN ignored").count(),
        1,
        "{err}"
    );
}
