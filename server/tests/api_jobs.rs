//! Jobs defined through the API and the CLI, end to end: two real
//! `mscribe serve` processes claiming fires on one SQLite file, a local
//! HTTP receiver in the test. A job defined on one runs on the cluster once
//! per fire, reaches the other within a second, survives a restart of both
//! and is deleted everywhere; bad definitions are refused and store
//! nothing. Real processes are the point, so these tests wait on the wall
//! clock (bounded polls).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Server, base_env, run_cli};
use serde_json::{Value, json};
use warp::Filter;

/// A local receiver counting its requests.
async fn receiver() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let route = warp::any().map(move || {
        h.fetch_add(1, Ordering::SeqCst);
        "ok"
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}/hook"), hits)
}

/// The environment of a server on the shared file, claiming fires; its own
/// data directory (the token is shared through `MSCRIBE_ADMIN_TOKEN`).
fn env_for(dir: &Path, name: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let own = dir.join(name);
    std::fs::create_dir_all(&own).unwrap();
    let mut env = base_env(&own, &format!("sqlite://{}", dir.join("shared.db").display()));
    env.push(("MSCRIBE_CLAIM_FIRES".into(), "true".into()));
    env.push(("MSCRIBE_ADMIN_TOKEN".into(), TOKEN.into()));
    env.push(("MSCRIBE_LOG_TO_FILE".into(), "false".into()));
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    env
}

const TOKEN: &str = "api-jobs-test-token-0123456789abcdef";

/// The job's history rows from the shared database, read through the CLI.
fn history(dir: &Path, job: &str) -> Vec<Value> {
    let env = env_for(dir, "cli", &[]);
    let (code, out, err) = run_cli(dir, &env, &["history", job, "--json", "--limit", "500"]);
    assert_eq!(code, 0, "history: {err}");
    let body: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    body["executions"].as_array().cloned().unwrap_or_default()
}

/// Polls `ok` every 25 ms for at most `secs` seconds.
async fn until(what: &str, secs: u64, mut ok: impl AsyncFnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !ok().await {
        assert!(t0.elapsed() < Duration::from_secs(secs), "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    t0.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_defined_on_one_instance_runs_once_per_fire_everywhere_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, hits) = receiver().await;
    let (env_a, env_b) = (env_for(dir.path(), "a", &[]), env_for(dir.path(), "b", &[]));
    let a = Server::start(dir.path(), &env_a);
    let b = Server::start(dir.path(), &env_b);

    let def = json!({ "kind": "http", "url": hook, "schedule": "@every 1s", "timeout": "5s" });
    let (code, body) = a.send("PUT", "/jobs/ping-hook", TOKEN, &def).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!((body["kind"].as_str(), body["created"].as_bool()), (Some("http"), Some(true)));
    let took = until("the job on b", 5, async || {
        b.json("GET", "/jobs/ping-hook", Some(TOKEN)).await.0 == 200
    })
    .await;
    eprintln!("defined on a, registered on b after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");

    until("six runs", 20, async || history(dir.path(), "ping-hook").len() >= 6).await;
    // Redefined (same id): 200, the other instance follows.
    let faster = json!({ "kind": "http", "url": hook, "schedule": "@every 2s" });
    let (code, body) = a.send("PUT", "/jobs/ping-hook", TOKEN, &faster).await;
    assert_eq!((code, body["created"].as_bool()), (200, Some(false)), "{body}");

    drop(a.terminate());
    drop(b.terminate());
    let a = Server::start(dir.path(), &env_a);
    let b = Server::start(dir.path(), &env_b);
    let (code, job) = b.json("GET", "/jobs/ping-hook", Some(TOKEN)).await;
    assert_eq!(code, 200, "after the restart: {job}");
    let before = history(dir.path(), "ping-hook").len();
    until("runs after the restart", 20, async || history(dir.path(), "ping-hook").len() > before)
        .await;

    // Deleted through b: gone from a too; its history stays.
    let (code, body) = b.json("DELETE", "/jobs/ping-hook", Some(TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    until("gone from a", 5, async || a.json("GET", "/jobs/ping-hook", Some(TOKEN)).await.0 == 404)
        .await;
    assert_eq!(b.json("DELETE", "/jobs/ping-hook", Some(TOKEN)).await.0, 404);
    // Its history is read through the API still; a job never known is 404.
    let (code, page) = b.json("GET", "/jobs/ping-hook/executions", Some(TOKEN)).await;
    assert_eq!(code, 200, "{page}");
    assert!(!page["executions"].as_array().unwrap().is_empty(), "{page}");
    assert_eq!(b.json("GET", "/jobs/nobody/executions", Some(TOKEN)).await.0, 404);
    drop(a.terminate());
    drop(b.terminate());

    // Once per fire: one final record per scheduled instant, and one
    // request per succeeded run.
    let rows = history(dir.path(), "ping-hook");
    let mut fires: Vec<&str> = rows.iter().filter_map(|r| r["scheduled_at"].as_str()).collect();
    let n = fires.len();
    fires.sort_unstable();
    fires.dedup();
    assert_eq!(fires.len(), n, "a fire recorded twice: {rows:#?}");
    let succeeded = rows.iter().filter(|r| r["status"] == "succeeded").count();
    assert_eq!(hits.load(Ordering::SeqCst), succeeded, "{rows:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_definitions_are_refused_naming_the_field_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), &env_for(dir.path(), "a", &[]));
    let put = |id: &'static str, body: Value| {
        let srv = &srv;
        async move { srv.send("PUT", &format!("/jobs/{id}"), TOKEN, &body).await }
    };
    let cases: [(&str, Value, u16, &str); 10] = [
        ("x", json!({ "kind": "cron", "schedule": "@every 1m" }), 400, "kind"),
        (
            "x",
            json!({ "kind": "http", "url": "http:///status/200", "schedule": "@every 1m" }),
            400,
            "url",
        ),
        ("x", json!({ "kind": "command", "command": [], "schedule": "@every 1m" }), 400, "command"),
        (
            "x",
            json!({ "kind": "command", "command": ["true"], "schedule": "@every 1m" }),
            403,
            "allow_command_jobs",
        ),
        (
            "x",
            json!({ "kind": "http", "url": "ftp://example.test/", "schedule": "@every 1m" }),
            400,
            "url",
        ),
        (
            "x",
            json!({ "kind": "http", "url": "http://example.test/", "schedule": "@every 1m", "colour": "red" }),
            400,
            "colour",
        ),
        (
            "x",
            json!({ "kind": "http", "url": "http://example.test/", "schedule": "every now and then" }),
            400,
            "schedule",
        ),
        ("x", json!({ "kind": "http", "url": "http://example.test/" }), 400, "schedule"),
        (
            "history-retention",
            json!({ "kind": "http", "url": "http://example.test/", "schedule": "@every 1m" }),
            409,
            "history-retention",
        ),
        (
            "bad%20id",
            json!({ "kind": "http", "url": "http://example.test/", "schedule": "@every 1m" }),
            400,
            "",
        ),
    ];
    for (id, body, want, field) in cases {
        let (code, err) = put(id, body.clone()).await;
        assert_eq!(code, want, "{id} {body}: {err}");
        let msg = err["error"].as_str().unwrap_or_default();
        assert!(msg.contains(field), "{id} {body}: {msg}");
        if code == 400 && !field.is_empty() {
            assert_eq!(err["field"].as_str(), Some(field), "{err}");
        }
    }
    let (code, err) = srv.send("PUT", "/jobs/x", TOKEN, &json!(["not", "an", "object"])).await;
    assert_eq!(code, 400, "{err}");
    // Nothing stored: no such job, no audit row.
    assert_eq!(srv.json("GET", "/jobs/x", Some(TOKEN)).await.0, 404);
    let (_, audit) = srv.json("GET", "/audit", Some(TOKEN)).await;
    assert_eq!(audit["entries"].as_array().map(Vec::len), Some(0), "{audit}");
    // A job of the configuration is neither replaced nor deleted: 409.
    let ok = json!({ "kind": "http", "url": "http://example.test/", "schedule": "@every 1m" });
    assert_eq!(srv.send("PUT", "/jobs/temp-cleanup", TOKEN, &ok).await.0, 409);
    assert_eq!(srv.json("DELETE", "/jobs/temp-cleanup", Some(TOKEN)).await.0, 409);
    assert_eq!(srv.json("DELETE", "/jobs/nobody", Some(TOKEN)).await.0, 404);
}

/// A job defined at run time reads only the environment variables the
/// configuration lists (`[api] allow_env`): the token must not give away
/// the server's secrets (its database URL, its own token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_defined_through_the_api_reads_only_the_environment_variables_the_configuration_allows()
 {
    let dir = tempfile::tempdir().unwrap();
    let (hook, hits) = receiver().await;
    let extra = [("MSCRIBE_API_ALLOW_ENV", "HOOK_KEY"), ("HOOK_KEY", "k3y")];
    let srv = Server::start(dir.path(), &env_for(dir.path(), "a", &extra));
    let job = |headers: Value, body: Option<&str>| {
        let mut def =
            json!({ "kind": "http", "url": hook, "schedule": "@every 1s", "headers": headers });
        if let Some(b) = body {
            def["body"] = json!(b);
        }
        def
    };
    for (headers, body, field, var) in [
        (json!({ "x-a": "${MSCRIBE_ADMIN_TOKEN}" }), None, "headers", "MSCRIBE_ADMIN_TOKEN"),
        (json!({ "x-a": "Bearer ${HOME}" }), None, "headers", "HOME"),
        (json!({}), Some("{\"db\": \"${MSCRIBE_DATABASE_URL}\"}"), "body", "MSCRIBE_DATABASE_URL"),
    ] {
        let (code, err) = srv.send("PUT", "/jobs/exfil", TOKEN, &job(headers, body)).await;
        assert_eq!(code, 400, "{err}");
        assert_eq!(err["field"].as_str(), Some(field), "{err}");
        let msg = err["error"].as_str().unwrap_or_default();
        let why = if var.starts_with("MSCRIBE_") { "own settings" } else { "allow_env" };
        assert!(msg.contains(var) && msg.contains(why), "{msg}");
    }
    assert_eq!(srv.json("GET", "/jobs/exfil", Some(TOKEN)).await.0, 404);
    // A listed variable is read; `$${` stays a literal.
    let ok = job(json!({ "x-key": "${HOOK_KEY}" }), Some("$${MSCRIBE_ADMIN_TOKEN}"));
    let (code, body) = srv.send("PUT", "/jobs/keyed", TOKEN, &ok).await;
    assert_eq!(code, 201, "{body}");
    until("a run of keyed", 10, async || hits.load(Ordering::SeqCst) > 0).await;
    let rows = history(dir.path(), "keyed");
    assert!(rows.iter().any(|r| r["status"] == "succeeded"), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_jobs_need_the_operators_consent_and_the_cli_applies_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let allow = [("MSCRIBE_API_ALLOW_COMMAND_JOBS", "true")];
    let srv = Server::start(dir.path(), &env_for(dir.path(), "a", &allow));
    let out = dir.path().join("touched");
    let file = dir.path().join("jobs.toml");
    std::fs::write(
        &file,
        format!(
            "[jobs.touch]\nkind = \"command\"\ncommand = [\"touch\", \"{}\"]\nschedule = \"@every 1s\"\n",
            out.display()
        ),
    )
    .unwrap();
    // Without --url, into the database: this CLI's configuration must
    // allow command jobs too.
    let cli_env = env_for(dir.path(), "cli", &[]);
    let (code, _, err) = run_cli(dir.path(), &cli_env, &["job", "apply", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("allow_command_jobs"), "{err}");
    let cli_env = env_for(dir.path(), "cli", &allow);
    let (code, stdout, err) =
        run_cli(dir.path(), &cli_env, &["job", "apply", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("\"created\": true"), "{stdout}");
    until("the command ran", 10, async || out.exists()).await;

    // Through --url and the API: deleted, then the job is gone.
    let url = format!("http://{}", srv.addr);
    let (code, stdout, err) =
        run_cli(dir.path(), &cli_env, &["job", "delete", "touch", "--url", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("\"deleted\": true"), "{stdout}");
    assert_eq!(srv.json("GET", "/jobs/touch", Some(TOKEN)).await.0, 404);
    let (code, _, err) = run_cli(dir.path(), &cli_env, &["job", "delete", "touch"]);
    assert_eq!(code, 2, "{err}");
    let (_, audit) = srv.json("GET", "/audit?job=touch", Some(TOKEN)).await;
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["delete", "define"], "{audit}");

    // A file with a bad section stores nothing through --url either: every
    // section is checked before the first is sent.
    let two = dir.path().join("two.toml");
    std::fs::write(
        &two,
        "[jobs.good]\nkind = \"http\"\nurl = \"http://example.test/\"\nschedule = \"@every 1m\"\n\n\
         [jobs.bad]\nkind = \"http\"\nurl = \"ftp://example.test/\"\nschedule = \"@every 1m\"\n",
    )
    .unwrap();
    let (code, stdout, err) =
        run_cli(dir.path(), &cli_env, &["job", "apply", two.to_str().unwrap(), "--url", &url]);
    assert_eq!(code, 2, "{stdout} {err}");
    assert!(err.contains("[jobs.bad]") && err.contains("ftp://example.test/"), "{err}");
    assert_eq!(srv.json("GET", "/jobs/good", Some(TOKEN)).await.0, 404, "nothing was sent");
}

/// The value of the series `series` (name and labels) in a scrape.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_freshness_metrics_of_an_api_defined_job_are_seeded_from_its_history_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, _) = receiver().await;
    let env = env_for(dir.path(), "a", &[]);
    let srv = Server::start(dir.path(), &env);
    let def = json!({ "kind": "http", "url": hook, "schedule": "@every 365d" });
    assert_eq!(srv.send("PUT", "/jobs/yearly", TOKEN, &def).await.0, 201);
    let (code, body) = srv.json("POST", "/jobs/yearly/trigger", Some(TOKEN)).await;
    assert!(code < 300, "{code} {body}");
    let series = "mscribe_job_last_success_timestamp_seconds{job=\"yearly\"}";
    until("a success in the metrics", 20, async || {
        let r = srv.req("GET", "/metrics", None).await;
        metric(&String::from_utf8_lossy(&r.body), series).is_some_and(|v| v > 0.0)
    })
    .await;
    let r = srv.req("GET", "/metrics", None).await;
    let before = metric(&String::from_utf8_lossy(&r.body), series).unwrap();
    drop(srv.terminate());

    // Restarted: the job comes from its stored definition, and its series
    // from the history at once (no run since).
    let srv = Server::start(dir.path(), &env);
    let r = srv.req("GET", "/metrics", None).await;
    let text = String::from_utf8_lossy(&r.body);
    assert_eq!(metric(&text, series), Some(before), "{text}");
    let run = "mscribe_job_last_run_timestamp_seconds{job=\"yearly\",status=\"succeeded\"}";
    assert_eq!(metric(&text, run), Some(before), "{text}");

    // A job defined later on this instance is seeded when it arrives: its
    // history (kept after a delete) is read again.
    assert_eq!(srv.json("DELETE", "/jobs/yearly", Some(TOKEN)).await.0, 200);
    let r = srv.req("GET", "/metrics", None).await;
    assert_eq!(metric(&String::from_utf8_lossy(&r.body), series), None, "gone with the job");
    assert_eq!(srv.send("PUT", "/jobs/yearly", TOKEN, &def).await.0, 201);
    until("seeded again", 5, async || {
        let r = srv.req("GET", "/metrics", None).await;
        metric(&String::from_utf8_lossy(&r.body), series) == Some(before)
    })
    .await;
    drop(srv.terminate());
}
