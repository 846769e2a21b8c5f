//! Jobs of your own, end to end: the real `mscribe` binary with a config
//! holding `kind = "command"` and `kind = "http"` jobs, SQLite in a temp
//! dir, a local HTTP server in the test. Real processes are the point here,
//! so these tests wait on the wall clock (bounded polls).

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, base_env, run_cli};
use serde_json::Value;
use warp::Filter;

/// What the local server saw: one `(path, x-token header, body)` per request.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A local HTTP server: `/ping` answers 200 `pong`, `/status/<code>`
/// answers that code; every request is recorded.
async fn target() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let route = warp::path::full()
        .and(warp::header::optional::<String>("x-token"))
        .and(warp::body::bytes())
        .map(move |path: warp::path::FullPath, token: Option<String>, body: bytes::Bytes| {
            let path = path.as_str().to_owned();
            log.lock().unwrap().push((
                path.clone(),
                token.unwrap_or_default(),
                String::from_utf8_lossy(&body).into_owned(),
            ));
            let code = path.strip_prefix("/status/").and_then(|c| c.parse().ok()).unwrap_or(200);
            warp::reply::with_status(
                if code == 200 { "pong".to_owned() } else { format!("status {code}") },
                warp::http::StatusCode::from_u16(code).unwrap(),
            )
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}"), seen)
}

/// The environment of a server in `dir` with config file `mscribe.toml`.
fn env_for(dir: &Path) -> Vec<(String, String)> {
    let mut env = base_env(dir, &format!("sqlite://{}", dir.join("mscribe.db").display()));
    env.push(("MSCRIBE_CONFIG".into(), dir.join("mscribe.toml").display().to_string()));
    env
}

/// `mscribe history JOB --json` (in a blocking task: the test's HTTP
/// server keeps serving meanwhile).
async fn history(dir: &Path, env: &[(String, String)], job: &str) -> Vec<Value> {
    let (dir, env, job) = (dir.to_owned(), env.to_vec(), job.to_owned());
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run_cli(&dir, &env, &["history", &job, "--json", "--limit", "50"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "history {out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v["executions"].as_array().unwrap().clone()
}

/// `mscribe run JOB`: its exit code and printed record.
async fn run(dir: &Path, env: &[(String, String)], job: &str) -> (i32, Value) {
    let (dir, env, name) = (dir.to_owned(), env.to_vec(), job.to_owned());
    let (code, out, err) =
        tokio::task::spawn_blocking(move || run_cli(&dir, &env, &["run", &name])).await.unwrap();
    let v = serde_json::from_str(&out).unwrap_or_else(|_| panic!("run {job}: {out}\n{err}"));
    (code, v)
}

/// Polls `ok` every 50 ms for at most `secs` seconds.
async fn wait_until(secs: u64, what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {secs}s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether process `pid` runs (a zombie does not).
fn running(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(')').and_then(|(_, r)| r.trim_start().chars().next());
    matches!(state, Some(s) if s != 'Z' && s != 'X')
}

fn pid_in(file: &Path) -> i32 {
    std::fs::read_to_string(file).unwrap().trim().parse().unwrap()
}

/// A fresh `mscribe serve` runs a command job (a script that writes a
/// file) and an HTTP job on schedule; `mscribe jobs` lists them and
/// `mscribe history` shows their output. No value of `env` or of an
/// expanded `${VAR}` reaches the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_and_http_jobs_run_on_schedule_and_history_shows_their_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (base, seen) = target().await;
    std::fs::write(
        dir.join("report.sh"),
        "#!/bin/sh\necho \"run at $MSCRIBE_SCHEDULED_AT\" >> \"$TARGET\"\necho wrote report\n\
         [ \"$API_KEY\" = k3y-not-logged ] || exit 9\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("mscribe.toml"),
        format!(
            r#"
[jobs.write-report]
kind = "command"
command = ["/bin/sh", "{dir}/report.sh"]
schedule = "@every 1s"
env = {{ TARGET = "{dir}/report.txt", API_KEY = "k3y-not-logged" }}

[jobs.ping]
kind = "http"
method = "POST"
url = "{base}/ping"
headers = {{ x-token = "${{PING_TOKEN}}" }}
body = "hello ${{PING_TOKEN}}"
schedule = "@every 1s"
"#,
            dir = dir.display()
        ),
    )
    .unwrap();
    let mut env = env_for(dir);
    env.push(("PING_TOKEN".into(), "t0k-not-logged".into()));
    let srv = Server::start(dir, &env);

    let report = dir.join("report.txt");
    wait_until(30, "the command job wrote its file", || {
        std::fs::read_to_string(&report).is_ok_and(|t| t.lines().count() >= 2)
    })
    .await;
    wait_until(30, "the http job called", || seen.lock().unwrap().len() >= 2).await;
    let (path, token, body) = seen.lock().unwrap()[0].clone();
    assert_eq!((path.as_str(), token.as_str()), ("/ping", "t0k-not-logged"));
    assert_eq!(body, "hello t0k-not-logged");

    let token = std::fs::read_to_string(dir.join("data/admin_token")).unwrap();
    let (code, body) = srv.json("GET", "/jobs", Some(token.trim())).await;
    assert_eq!(code, 200);
    let ids: Vec<&str> =
        body["jobs"].as_array().unwrap().iter().filter_map(|j| j["id"].as_str()).collect();
    assert!(ids.contains(&"write-report") && ids.contains(&"ping"), "{ids:?}");
    let (status, log) = srv.terminate();
    assert!(status.success(), "{log}");
    for secret in ["k3y-not-logged", "t0k-not-logged"] {
        assert!(!log.contains(secret), "{secret} was logged:\n{log}");
    }

    let (code, out, err) = run_cli(dir, &env, &["jobs"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("write-report") && out.contains("@every 1s"), "{out}");

    let rows = history(dir, &env, "write-report").await;
    let done: Vec<&Value> = rows.iter().filter(|r| r["status"] == "succeeded").collect();
    assert!(!done.is_empty(), "{rows:?}");
    let result = &done[0]["result"];
    assert_eq!(result["stdout"], "wrote report\n", "{result}");
    assert_eq!((result["exit_code"].as_i64(), result["stderr"].as_str()), (Some(0), Some("")));
    let text = serde_json::to_string(&rows).unwrap();
    assert!(!text.contains("k3y-not-logged"), "an env value was recorded");

    let rows = history(dir, &env, "ping").await;
    let done: Vec<&Value> = rows.iter().filter(|r| r["status"] == "succeeded").collect();
    assert!(!done.is_empty(), "{rows:?}");
    assert_eq!(done[0]["result"]["status"], 200);
    assert_eq!(done[0]["result"]["body"], "pong");
    assert!(!serde_json::to_string(&rows).unwrap().contains("t0k-not-logged"));
}

/// A command job that times out leaves no process behind, even one that
/// ignores SIGTERM (it gets SIGKILL after `kill_grace`), and a background
/// child it started goes with it: the whole process group is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_times_out_leaves_no_process_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("mscribe.toml"),
        r#"
[jobs.hang]
kind = "command"
shell = "sleep 300 & echo $! > child.pid; echo $$ > main.pid; wait"
timeout = "3s"
kill_grace = "1s"
schedule = "@daily"

[jobs.stubborn]
kind = "command"
shell = "trap '' TERM; sleep 300 & echo $! > stubborn-child.pid; wait; wait; wait"
timeout = "3s"
kill_grace = "1s"
schedule = "@daily"
"#,
    )
    .unwrap();
    let env = env_for(dir);
    let srv = Server::start(dir, &env);
    let token = std::fs::read_to_string(dir.join("data/admin_token")).unwrap();
    let token = token.trim();
    for (job, pid_files) in
        [("hang", &["child.pid", "main.pid"][..]), ("stubborn", &["stubborn-child.pid"][..])]
    {
        let (code, body) = srv.json("POST", &format!("/jobs/{job}/trigger"), Some(token)).await;
        assert_eq!(code, 202, "{body}");
        srv.poll("GET", &format!("/jobs/{job}/executions"), Some(token), |_, b| {
            b["executions"][0]["status"] == "timed_out"
        })
        .await;
        for f in pid_files {
            let pid = pid_in(&dir.join(f));
            wait_until(10, &format!("{job}: process {pid} ({f}) is gone"), || !running(pid)).await;
        }
    }
    let (status, log) = srv.terminate();
    assert!(status.success(), "{log}");

    // `mscribe run` exits right after the run: not before the SIGKILL of a
    // group that ignores SIGTERM.
    std::fs::remove_file(dir.join("stubborn-child.pid")).unwrap();
    let (code, record) = run(dir, &env, "stubborn").await;
    assert_eq!((code, &record["status"]), (1, &Value::from("timed_out")), "{record}");
    let pid = pid_in(&dir.join("stubborn-child.pid"));
    assert!(!running(pid), "process {pid} outlived mscribe run");
}

/// A graceful stop waits for the SIGKILL of every command job's group
/// that ignores SIGTERM, also of a job defined through the API (not in the
/// configuration the server started with, whose `kill_grace` it cannot
/// know): nothing of it outlives the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_kills_the_group_of_a_command_job_defined_through_the_api() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("mscribe.toml"), "").unwrap();
    let mut env = env_for(dir);
    env.retain(|(k, _)| k != "MSCRIBE_SHUTDOWN_GRACE");
    env.push(("MSCRIBE_SHUTDOWN_GRACE".into(), "1s".into()));
    env.push(("MSCRIBE_API_ALLOW_COMMAND_JOBS".into(), "true".into()));
    let srv = Server::start(dir, &env);
    let token = std::fs::read_to_string(dir.join("data/admin_token")).unwrap();
    let token = token.trim();
    let pid_file = dir.join("stubborn.pid");
    let def = serde_json::json!({
        "kind": "command",
        "shell": format!("trap '' TERM; echo $$ > {}; while :; do sleep 1; done", pid_file.display()),
        "schedule": "@daily",
        "kill_grace": "3s",
    });
    let (code, body) = srv.send("PUT", "/jobs/stubborn", token, &def).await;
    assert!(code == 200 || code == 201, "{body}");
    let (code, body) = srv.json("POST", "/jobs/stubborn/trigger", Some(token)).await;
    assert_eq!(code, 202, "{body}");
    wait_until(10, "the job wrote its pid", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|t| t.ends_with('\n'))
    })
    .await;
    let pid = pid_in(&pid_file);
    let (status, log) = srv.terminate();
    assert!(status.success(), "{log}");
    // The SIGKILL is sent before the exit; its delivery takes a moment.
    let deadline = Instant::now() + Duration::from_millis(300);
    while running(pid) {
        assert!(Instant::now() < deadline, "process {pid} outlived the server:\n{log}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Exit codes and statuses map to retries: a transient failure is retried
/// up to `retry.attempts`, a permanent exit code, a missing program and a
/// 404 are not; a 503 is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_map_to_retries_or_none() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (base, seen) = target().await;
    let retry = r#"retry = { attempts = 3, initial_delay = "50ms" }"#;
    std::fs::write(
        dir.join("mscribe.toml"),
        format!(
            r#"
[jobs.flaky]
kind = "command"
shell = "echo trying >&2; exit 3"
schedule = "@daily"
{retry}

[jobs.broken]
kind = "command"
shell = "exit 64"
permanent_exit_codes = [64]
schedule = "@daily"
{retry}

[jobs.missing]
kind = "command"
command = ["mscribe-no-such-program", "--flag"]
schedule = "@daily"
{retry}

[jobs.gone]
kind = "http"
url = "{base}/status/404"
schedule = "@daily"
{retry}

[jobs.down]
kind = "http"
url = "{base}/status/503"
schedule = "@daily"
{retry}
"#
        ),
    )
    .unwrap();
    let env = env_for(dir);
    // `mscribe run` needs an existing database.
    let migrate = {
        let (dir, env) = (dir.to_owned(), env.clone());
        tokio::task::spawn_blocking(move || run_cli(&dir, &env, &["migrate"]))
    };
    assert_eq!(migrate.await.unwrap().0, 0);
    let cases = [
        ("flaky", 3, "retries_exhausted", "transient", "exited with code 3"),
        (
            "broken",
            1,
            "failed",
            "permanent",
            "exited with code 64, a permanent exit code: no retry",
        ),
        (
            "missing",
            1,
            "failed",
            "permanent",
            "program \"mscribe-no-such-program\" not found on PATH",
        ),
        ("gone", 1, "failed", "permanent", "answered 404 Not Found; expected a 2xx status"),
        (
            "down",
            3,
            "retries_exhausted",
            "transient",
            "answered 503 Service Unavailable; expected a 2xx status",
        ),
    ];
    for (job, attempts, status, kind, error) in cases {
        let (code, record) = run(dir, &env, job).await;
        assert_eq!(code, 1, "{job}: {record}");
        assert_eq!(record["attempt"], attempts, "{job}: {record}");
        assert_eq!(record["status"], status, "{job}: {record}");
        assert_eq!(record["error"], error, "{job}: {record}");
        let rows = history(dir, &env, job).await;
        assert_eq!(rows.len(), attempts as usize, "{job}: {rows:?}");
        assert!(rows.iter().all(|r| r["error_kind"] == kind), "{job}: {rows:?}");
    }
    let rows = history(dir, &env, "flaky").await;
    assert_eq!(rows[0]["result"]["stderr"], "trying\n");
    assert_eq!(rows[0]["result"]["exit_code"], 3);
    let calls = seen.lock().unwrap().iter().filter(|(p, ..)| p == "/status/503").count();
    assert_eq!(calls, 3);
}

/// A section with no `kind` that is no built-in job is still an unknown
/// job, and the message says how to define one of your own.
#[test]
fn an_unknown_job_says_how_to_define_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("mscribe.toml"),
        "[jobs.my-report]\nschedule = \"@daily\"\ncommand = [\"report\"]\n",
    )
    .unwrap();
    let (code, _, err) = run_cli(dir, &env_for(dir), &["serve"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown job `my-report`"), "{err}");
    assert!(err.contains("kind = \"command\" or kind = \"http\""), "{err}");
}

/// `mscribe run` runs a job defined through the API or `job apply` (a
/// definition in the database) as it runs a configured one: one run, its
/// record printed, the exit code its status. The job's schedule does not
/// fire meanwhile: the run is the only row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_runs_a_job_defined_through_the_api_or_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (base, seen) = target().await;
    std::fs::write(dir.join("mscribe.toml"), "").unwrap();
    let env = env_for(dir);
    std::fs::write(
        dir.join("jobs.toml"),
        format!(
            "[jobs.pinger]\nkind = \"http\"\nurl = \"{base}/ping\"\nschedule = \"@every 1s\"\n\n\
             [jobs.broken]\nkind = \"http\"\nurl = \"{base}/status/404\"\nschedule = \"@daily\"\n"
        ),
    )
    .unwrap();
    let apply = {
        let (dir, env) = (dir.to_owned(), env.clone());
        let file = dir.join("jobs.toml").display().to_string();
        tokio::task::spawn_blocking(move || {
            assert_eq!(run_cli(&dir, &env, &["migrate"]).0, 0);
            run_cli(&dir, &env, &["job", "apply", &file])
        })
    };
    let (code, out, err) = apply.await.unwrap();
    assert_eq!(code, 0, "job apply: {out}\n{err}");

    let (code, rec) = run(dir, &env, "pinger").await;
    assert_eq!(code, 0, "{rec}");
    assert_eq!(rec["job_id"], "pinger");
    assert_eq!(rec["status"], "succeeded", "{rec}");
    assert_eq!(rec["result"]["status"], 200, "{rec}");
    let rows = history(dir, &env, "pinger").await;
    assert_eq!(rows.len(), 1, "only the run asked for: {rows:?}");
    assert_eq!(seen.lock().unwrap().iter().filter(|(p, ..)| p == "/ping").count(), 1);

    let (code, rec) = run(dir, &env, "broken").await;
    assert_eq!(code, 1, "{rec}");
    assert_eq!(rec["status"], "failed", "{rec}");

    // A stored command job runs only where the configuration allows them.
    std::fs::write(
        dir.join("cmd.toml"),
        "[jobs.hello]\nkind = \"command\"\ncommand = [\"true\"]\nschedule = \"@daily\"\n",
    )
    .unwrap();
    let (dir2, env2) = (dir.to_owned(), env.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        let mut allowed = env2.clone();
        allowed.push(("MSCRIBE_API_ALLOW_COMMAND_JOBS".into(), "true".into()));
        let file = dir2.join("cmd.toml").display().to_string();
        assert_eq!(run_cli(&dir2, &allowed, &["job", "apply", &file]).0, 0);
        let refused = run_cli(&dir2, &env2, &["run", "hello"]);
        let ran = run_cli(&dir2, &allowed, &["run", "hello"]);
        (refused, ran)
    });
    let ((code, _, err), (ran, out, _)) = outcome.await.unwrap();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("hello is a command job") && err.contains("allow_command_jobs"), "{err}");
    assert_eq!(ran, 0, "{out}");
    let (_, _, err) = tokio::task::spawn_blocking({
        let (dir, env) = (dir.to_owned(), env.clone());
        move || run_cli(&dir, &env, &["run", "nope"])
    })
    .await
    .unwrap();
    assert!(err.contains("unknown job \"nope\"") && err.contains("pinger"), "{err}");
}
