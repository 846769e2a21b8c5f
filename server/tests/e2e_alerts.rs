//! Alerts from a real `mscribe serve` (SQLite, a free port) to a local
//! receiver, on short real windows: `security-scan` fails every second (its
//! `min_token_length` is over the admin token's length), which sends one
//! `failure` per run, one `failures_in_a_row`, and, since it never
//! succeeds, `overdue`; `GET /alerts` lists the deliveries.

mod common;

use std::time::{Duration, Instant};

use common::receiver::{Mode, Receiver};
use common::{Server, base_env};
use serde_json::Value;

const TOKEN: &str = "e2e-alerts-token-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_server_sends_failure_failures_in_a_row_and_overdue_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let rx = Receiver::start(Mode::Ok).await;
    let config = dir.join("mscribe.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts.hook]\nurl = \"{}\"\njobs = [\"security-scan\"]\n\
             events = [\"failure\", \"failures_in_a_row\", \"overdue\"]\nfailures_in_a_row = 3\n\n\
             [jobs.security-scan]\nschedule = \"@every 1s\"\nmin_token_length = 1000\n\
             expect_success_within = \"3s\"\n",
            rx.url
        ),
    )
    .unwrap();
    let mut env = base_env(dir, &format!("sqlite://{}", dir.join("mscribe.db").display()));
    env.push(("MSCRIBE_CONFIG".to_owned(), config.display().to_string()));
    env.push(("MSCRIBE_ADMIN_TOKEN".to_owned(), TOKEN.to_owned()));
    let srv = Server::start(dir, &env);

    // The overdue check runs every 15 s: within 25 s every event is in.
    let deadline = Instant::now() + Duration::from_secs(40);
    while !(rx.count("failure") >= 4 && rx.count("overdue") >= 1) {
        assert!(
            Instant::now() < deadline,
            "alerts so far: {:#?}\nserver log:\n{}",
            rx.bodies(),
            srv.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(rx.count("failures_in_a_row"), 1, "{:#?}", rx.bodies());
    let failures: Vec<Value> =
        rx.bodies().into_iter().filter(|b| b["event"] == "failure").collect();
    let mut fires: Vec<String> =
        failures.iter().map(|b| b["details"]["scheduled_at"].to_string()).collect();
    fires.sort();
    fires.dedup();
    assert_eq!(fires.len(), failures.len(), "one failure alert per fire: {failures:#?}");
    assert!(
        failures[0]["message"].as_str().unwrap().starts_with("job security-scan failed (failed)"),
        "{failures:#?}"
    );

    let url = format!("http://{}/alerts?limit=5", srv.addr);
    let client = reqwest::Client::new();
    let res = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.unwrap();
    let rows = body["deliveries"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().any(|r| r["state"] == "delivered" && r["last_status"] == 200), "{body}");
    assert!(body["next_before"].is_i64());
    let res = client.get(&url).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);

    let (status, stderr) = srv.terminate();
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert!(!stderr.contains(&rx.url), "the webhook URL is a secret and never logged");
}
