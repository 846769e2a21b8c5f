//! The dashboard in a real browser: headless Chromium driven through
//! chromedriver (Debian's `chromium` and `chromium-driver`, installed by
//! scripts/test.sh) against the real `mscribe serve` on SQLite in a temp
//! dir. Fails, never skips, when the browser or the driver is missing.
//! With `MSCRIBE_SCREENSHOTS=<dir>`, saves screenshots of the Jobs, Job and
//! Run pages there (docs/screenshots/ holds the committed ones).

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, base_env};
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use mscribe_server::http_client::{parse_http_url, request_with_body};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_driver(dir: &Path) -> Driver {
    for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: the browser tests need Debian's {package} \
             (apt-get install chromium chromium-driver; scripts/test.sh installs both)"
        );
    }
    let port = free_port();
    let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn chromedriver");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver { child, url: format!("http://127.0.0.1:{port}") }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = Capabilities::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--force-prefers-reduced-motion"],
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    // chromedriver listens on 127.0.0.1: plain HTTP, no TLS stack.
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a chromium session through chromedriver")
}

/// chromedriver's browser log (`POST /session/{id}/se/log`), which it
/// empties as it answers: console messages, failed loads, CSP violations.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or("")))
    }

    fn method_and_body(&self, _: &url::Url) -> (warp::http::Method, Option<String>) {
        (warp::http::Method::POST, Some(json!({ "type": "browser" }).to_string()))
    }
}

async fn console(c: &Client) -> Vec<Value> {
    c.issue_cmd(BrowserLog).await.expect("the browser log").as_array().cloned().unwrap_or_default()
}

async fn screenshot(c: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("MSCRIBE_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        let png = c.screenshot().await.unwrap();
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

/// Waits (at most 30 s, polling) for `css` to match, without reloading.
async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(30))
        .every(Duration::from_millis(100))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
}

/// A form POST with the session cookie and the given fields.
async fn post_form(srv: &Server, path: &str, cookie: &str, form: &str) -> u16 {
    let url = parse_http_url(&format!("http://{}{path}", srv.addr)).unwrap();
    let headers = [("cookie", cookie), ("content-type", "application/x-www-form-urlencoded")];
    let body = Some(bytes::Bytes::from(form.to_owned()));
    request_with_body("POST", &url, &headers, body, Duration::from_secs(30)).await.unwrap().status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut env = base_env(dir, &format!("sqlite://{}", dir.join("mscribe.db").display()));
    env.push(("MSCRIBE_API_ALLOW_COMMAND_JOBS".into(), "true".into()));
    let srv = Server::start(dir, &env);
    let token = std::fs::read_to_string(dir.join("data/admin_token")).unwrap().trim().to_owned();
    let base = format!("http://{}", srv.addr);
    let driver = start_driver(dir);
    let c = browser(&driver).await;

    // `/` leads to the login; a wrong token does not get in.
    c.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/ui/login");
    c.find(Locator::Id("token")).await.unwrap().send_keys("not-the-token").await.unwrap();
    c.find(Locator::Id("login")).await.unwrap().click().await.unwrap();
    let err = wait_for(&c, "#login-error").await.text().await.unwrap();
    assert_eq!(err, "That is not the admin token.");
    assert!(c.get_named_cookie("mscribe_session").await.is_err(), "a wrong token got a session");
    // The 401 of the wrong login is the browser log's only error so far.
    let log = console(&c).await;
    let errors: Vec<&Value> = log.iter().filter(|e| e["level"] == "SEVERE").collect();
    assert!(
        errors.len() == 1 && errors[0]["message"].as_str().unwrap().contains("status of 401"),
        "{log:#?}"
    );

    // The right token: the seven jobs.
    c.find(Locator::Id("token")).await.unwrap().send_keys(&token).await.unwrap();
    c.find(Locator::Id("login")).await.unwrap().click().await.unwrap();
    wait_for(&c, "table#jobs").await;
    let rows = c.find_all(Locator::Css("tr[data-job]")).await.unwrap();
    let mut ids = Vec::new();
    for r in &rows {
        ids.push(r.attr("data-job").await.unwrap().unwrap());
    }
    ids.sort();
    let mut expected = mscribe_server::config::JOB_IDS.to_vec();
    expected.sort();
    assert_eq!(ids, expected);
    let cookie = c.get_named_cookie("mscribe_session").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    let cookie = format!("mscribe_session={}", cookie.value());

    // The filter hides the rows that do not match, in the page.
    c.find(Locator::Id("job-filter")).await.unwrap().send_keys("backup").await.unwrap();
    let shown = c.execute(
        "return [...document.querySelectorAll('tr[data-job]')].filter(r => !r.hidden).map(r => r.dataset.job)",
        vec![],
    );
    assert_eq!(shown.await.unwrap(), json!(["database-backup"]));
    c.find(Locator::Id("job-filter")).await.unwrap().clear().await.unwrap();

    // Pause with a note holding a script: shown as text, never run, and the
    // API has the same note.
    let note = "disk full <script>window.pwned = true</script> & more";
    c.goto(&format!("{base}/ui/jobs/temp-cleanup")).await.unwrap();
    c.find(Locator::Id("pause-note")).await.unwrap().send_keys(note).await.unwrap();
    c.find(Locator::Id("pause")).await.unwrap().click().await.unwrap();
    wait_for(&c, "#resume").await;
    c.refresh().await.unwrap();
    let shown = wait_for(&c, "#job-facts [data-pause-note]").await.text().await.unwrap();
    assert_eq!(shown, note);
    assert_eq!(c.execute("return window.pwned === undefined", vec![]).await.unwrap(), json!(true));
    let (code, job) = srv.json("GET", "/jobs/temp-cleanup", Some(&token)).await;
    assert_eq!(code, 200);
    assert_eq!((job["paused"].as_bool(), job["pause"]["note"].as_str()), (Some(true), Some(note)));
    c.goto(&format!("{base}/ui/")).await.unwrap();
    let row = wait_for(&c, "tr[data-job='temp-cleanup'] [data-pause-note]").await;
    assert_eq!(row.text().await.unwrap(), note);

    // Trigger from the page; then a run triggered elsewhere (the API)
    // appears and finishes without a reload.
    c.goto(&format!("{base}/ui/jobs/health-snapshot")).await.unwrap();
    c.find(Locator::Id("trigger")).await.unwrap().click().await.unwrap();
    wait_for(&c, "#job-history tr[data-status='succeeded']").await;
    c.execute("window.notReloaded = true", vec![]).await.unwrap();
    let (code, body) = srv.json("POST", "/jobs/health-snapshot/trigger", Some(&token)).await;
    assert_eq!(code, 202, "{body}");
    let run = body["execution_id"].as_str().unwrap().to_owned();
    wait_for(&c, &format!("#job-history tr[data-run='{run}'][data-status='succeeded']")).await;
    assert_eq!(c.execute("return window.notReloaded", vec![]).await.unwrap(), json!(true));

    // A backfill's preview lists the fires of the API's dry run.
    let now = chrono::Utc::now();
    let from = (now - chrono::Duration::hours(2)).format("%Y-%m-%dT%H:00:00Z").to_string();
    let to = (now - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:00:00Z").to_string();
    c.find(Locator::Id("backfill-from")).await.unwrap().send_keys(&from).await.unwrap();
    c.find(Locator::Id("backfill-to")).await.unwrap().send_keys(&to).await.unwrap();
    c.find(Locator::Id("backfill-preview")).await.unwrap().click().await.unwrap();
    wait_for(&c, "#backfill-plan").await;
    let mut listed = Vec::new();
    for li in c.find_all(Locator::Css("#backfill-fires li[data-fire]")).await.unwrap() {
        listed.push(li.attr("data-fire").await.unwrap().unwrap());
    }
    let (code, plan) = srv
        .send(
            "POST",
            "/jobs/health-snapshot/backfill",
            &token,
            &json!({ "from": from, "to": to, "dry_run": true }),
        )
        .await;
    assert_eq!(code, 200, "{plan}");
    let api: Vec<String> = plan["fires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["scheduled_at"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed.len(), 13, "{listed:?}");
    assert_eq!(listed, api);
    screenshot(&c, "job").await;

    // The run's page.
    c.goto(&format!("{base}/ui/jobs/health-snapshot/runs/{run}")).await.unwrap();
    let status = wait_for(&c, "#run-status").await;
    assert_eq!(status.attr("data-status").await.unwrap().as_deref(), Some("succeeded"));
    wait_for(&c, ".attempt[data-attempt='1'] pre").await;
    screenshot(&c, "run").await;

    // The jobs with their runs' marks, each leading to its run.
    c.goto(&format!("{base}/ui/")).await.unwrap();
    let mark = wait_for(&c, "tr[data-job='health-snapshot'] a.mark.s-succeeded").await;
    assert!(
        mark.attr("href").await.unwrap().unwrap().starts_with("/ui/jobs/health-snapshot/runs/")
    );
    screenshot(&c, "jobs").await;

    // The other pages render.
    for (path, css) in
        [("/ui/audit", "#audit"), ("/ui/alerts", "#alerts"), ("/ui/health", "#probes")]
    {
        c.goto(&format!("{base}{path}")).await.unwrap();
        wait_for(&c, css).await;
    }
    // The health page lists this instance by its heartbeat.
    let beat = wait_for(&c, "#instances tr[data-instance]").await;
    assert!(beat.text().await.unwrap().contains("this instance"));

    // A run still going has a Cancel button, confirmed in a dialog; the
    // page then shows it cancelled.
    let def = json!({ "kind": "command", "command": ["sleep", "60"], "schedule": "@every 24h" });
    assert_eq!(srv.send("PUT", "/jobs/sleeper", &token, &def).await.0, 201);
    let (code, body) = srv.json("POST", "/jobs/sleeper/trigger", Some(&token)).await;
    assert_eq!(code, 202, "{body}");
    let sleeping = body["execution_id"].as_str().unwrap().to_owned();
    c.goto(&format!("{base}/ui/jobs/sleeper/runs/{sleeping}")).await.unwrap();
    wait_for(&c, "#run-status[data-status='running']").await;
    c.find(Locator::Id("cancel")).await.unwrap().click().await.unwrap();
    assert_eq!(c.get_alert_text().await.unwrap(), "Cancel this run?");
    c.accept_alert().await.unwrap();
    wait_for(&c, "#run-status[data-status='cancelled']").await;
    assert!(c.find(Locator::Id("cancel")).await.is_err(), "a Cancel button on a cancelled run");
    let (_, job) = srv.json("GET", "/jobs/sleeper", Some(&token)).await;
    assert_eq!(job["last_execution"]["status"], "cancelled", "{job}");

    // No console errors on any page since the login (CSP violations
    // included); the pages stayed long enough for a refresh round or more.
    let log = console(&c).await;
    let severe: Vec<&Value> =
        log.iter().filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING").collect();
    assert!(severe.is_empty(), "browser console:\n{severe:#?}");

    // A POST without the CSRF token, or with a wrong one: 403, nothing done.
    assert_eq!(post_form(&srv, "/ui/jobs/temp-cleanup/resume", &cookie, "").await, 403);
    assert_eq!(post_form(&srv, "/ui/jobs/temp-cleanup/resume", &cookie, "csrf=nope").await, 403);
    let (_, job) = srv.json("GET", "/jobs/temp-cleanup", Some(&token)).await;
    assert_eq!(job["paused"], true);

    // Logout ends the session.
    c.find(Locator::Css("form[action='/ui/logout'] button")).await.unwrap().click().await.unwrap();
    wait_for(&c, "#token").await;
    c.goto(&format!("{base}/ui/")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/ui/login");
    assert_eq!(post_form(&srv, "/ui/jobs/temp-cleanup/resume", &cookie, "").await, 403);
    c.close().await.unwrap();
}
