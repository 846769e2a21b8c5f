//! Starting the real `mscribe` binary and talking to it; [`docs`] is the
//! docs tests' shared part.
#![allow(dead_code, unreachable_pub)]

pub mod docs;
pub mod receiver;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mscribe_server::http_client::{HttpResponse, parse_http_url, request, request_with_body};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_mscribe");

/// A Postgres database name no other test takes: `prefix`, the process id,
/// the time in nanoseconds and a count of the names this process made.
pub fn fresh_db_name(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos();
    db_name_at(prefix, nanos)
}

/// [`fresh_db_name`] at the time `nanos`: two tests of one binary can read
/// the same nanosecond on two threads, and still get two names.
pub fn db_name_at(prefix: &str, nanos: u128) -> String {
    static MADE: AtomicU64 = AtomicU64::new(0);
    let made = MADE.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{:x}_{:x}_{made:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

/// The environment every test server gets: paths in `dir`, a free port,
/// a short health TTL, no free-space requirement (the test machine's disk
/// is not under test), generous probe timeouts for a loaded CI machine.
pub fn base_env(dir: &Path, database_url: &str) -> Vec<(String, String)> {
    [
        ("MSCRIBE_LISTEN", "127.0.0.1:0".to_owned()),
        ("MSCRIBE_DATABASE_URL", database_url.to_owned()),
        ("MSCRIBE_DATA_DIR", dir.join("data").display().to_string()),
        ("MSCRIBE_LOG_DIR", dir.join("logs").display().to_string()),
        ("MSCRIBE_BACKUP_DIR", dir.join("backups").display().to_string()),
        ("MSCRIBE_HEALTH_TTL", "50ms".to_owned()),
        ("MSCRIBE_HEALTH_PROBE_TIMEOUT", "5s".to_owned()),
        ("MSCRIBE_HEALTH_SLOW_THRESHOLD", "5s".to_owned()),
        ("MSCRIBE_HEALTH_MIN_FREE_BYTES", "0".to_owned()),
        ("MSCRIBE_HEALTH_MIN_FREE_PERCENT", "0".to_owned()),
        ("MSCRIBE_SHUTDOWN_GRACE", "5s".to_owned()),
        ("MSCRIBE_JOBS_DATABASE_BACKUP_RETRY_ATTEMPTS", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A command for the binary, run in `dir` with `env` and nothing else of
/// ours from the parent's environment.
pub fn command(dir: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("MSCRIBE_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd
}

/// Runs a CLI command to completion (bounded).
pub fn run_cli(dir: &Path, env: &[(String, String)], args: &[&str]) -> (i32, String, String) {
    let mut child = command(dir, env)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mscribe");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(_status) = child.try_wait().expect("wait") {
            break;
        }
        assert!(Instant::now() < deadline, "mscribe {args:?} did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `mscribe serve`.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub stderr_path: PathBuf,
}

impl Server {
    /// Starts `mscribe serve` and waits (bounded) for its listening line.
    pub fn start(dir: &Path, env: &[(String, String)]) -> Server {
        let stderr_path = dir.join("server.stderr");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut child = command(dir, env)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn mscribe serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("mscribe listening on http://") {
                        return Server { child, addr: addr.trim().to_owned(), stderr_path };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "mscribe serve did not start; stderr:\n{}",
                        std::fs::read_to_string(&stderr_path).unwrap_or_default()
                    );
                }
            }
        }
    }

    /// One request.
    pub async fn req(&self, method: &str, path: &str, token: Option<&str>) -> HttpResponse {
        let url = parse_http_url(&format!("http://{}{path}", self.addr)).unwrap();
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        request(method, &url, &headers, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\nstderr:\n{}", self.stderr()))
    }

    /// One request with a JSON body (with the token), the answer as JSON.
    pub async fn send(&self, method: &str, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let url = parse_http_url(&format!("http://{}{path}", self.addr)).unwrap();
        let auth = format!("Bearer {token}");
        let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
        let body = Some(bytes::Bytes::from(body.to_string()));
        let r = request_with_body(method, &url, &headers, body, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\nstderr:\n{}", self.stderr()));
        (r.status, serde_json::from_slice(&r.body).unwrap_or(Value::Null))
    }

    /// One request, the body as JSON.
    pub async fn json(&self, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
        let r = self.req(method, path, token).await;
        let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        (r.status, v)
    }

    /// Polls `path` (every 25 ms, for at most 30 s) until `ok` holds.
    pub async fn poll(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        ok: impl Fn(u16, &Value) -> bool,
    ) -> (u16, Value) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, body) = self.json(method, path, token).await;
            if ok(code, &body) {
                return (code, body);
            }
            assert!(
                Instant::now() < deadline,
                "{method} {path}: condition not met; last {code} {body}\nstderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).expect("kill");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, self.stderr());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("mscribe did not exit after SIGTERM; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What both e2e tests check against a running server; returns the admin token.
pub async fn scenario(dir: &Path, srv: &Server) -> String {
    // Health: 200 healthy, with every check.
    let (code, body) = srv.poll("GET", "/health-check", None, |c, _| c == 200).await;
    assert_eq!(code, 200);
    assert_eq!(body["status"], "healthy", "{body}");
    for check in ["database", "scheduler", "storage"] {
        assert_eq!(body["checks"][check]["status"], "healthy", "{body}");
        assert!(body["checks"][check].get("message").is_none());
    }
    let head = srv.req("HEAD", "/health-check", None).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD returned a body");
    assert_eq!(head.headers["cache-control"], "no-cache, no-store, must-revalidate");
    assert_eq!(srv.json("GET", "/livez", None).await.0, 200);
    assert_eq!(srv.json("GET", "/readyz", None).await.0, 200);

    // Jobs API: 401 without the token, the seven jobs with it.
    let (code, body) = srv.json("GET", "/jobs", None).await;
    assert_eq!((code, body["error"].is_string()), (401, true));
    let token_file = dir.join("data/admin_token");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_file).unwrap().trim().to_owned();
    assert!(token.len() >= 64);
    assert!(!srv.stderr().contains(&token), "the token was logged");
    let (code, body) = srv.json("GET", "/jobs", Some(&token)).await;
    assert_eq!(code, 200);
    let mut ids: Vec<&str> =
        body["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut expected = mscribe_server::config::JOB_IDS.to_vec();
    expected.sort();
    assert_eq!(ids, expected);
    assert!(body["jobs"].as_array().unwrap().iter().all(|j| j["next_run"].is_string()));

    // A trigger creates an execution row.
    let (code, body) = srv.json("POST", "/jobs/database-backup/trigger", Some(&token)).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["outcome"], "started");
    let exec = body["execution_id"].as_str().unwrap().to_owned();
    let (_, body) = srv
        .poll("GET", "/jobs/database-backup/executions", Some(&token), |_, b| {
            b["executions"].as_array().is_some_and(|rows| {
                rows.iter().any(|r| r["execution_id"] == exec.as_str() && r["status"] != "running")
            })
        })
        .await;
    let row = body["executions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["execution_id"] == exec.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["status"], "succeeded", "{row}");
    let (code, text) = {
        let r = srv.req("GET", "/metrics", None).await;
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    };
    assert_eq!(code, 200);
    assert!(
        text.contains("mscribe_job_outcomes_total{job=\"database-backup\",status=\"succeeded\"} 1"),
        "{text}"
    );

    // Break storage in a way that works as root (chmod does not stop root):
    // backup_dir becomes a regular file. Health goes 503 (degraded).
    let backups = dir.join("backups");
    std::fs::rename(&backups, dir.join("backups.moved")).unwrap();
    std::fs::write(&backups, b"not a directory").unwrap();
    let (code, body) = srv.poll("GET", "/health-check", Some(&token), |c, _| c == 503).await;
    assert_eq!(code, 503);
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["storage"]["status"], "unhealthy");
    assert!(
        body["checks"]["storage"]["message"].as_str().unwrap().contains("backups: not a directory"),
        "{body}"
    );
    assert_eq!(body["checks"]["database"]["status"], "healthy");
    // Restore it.
    std::fs::remove_file(&backups).unwrap();
    std::fs::rename(dir.join("backups.moved"), &backups).unwrap();
    srv.poll("GET", "/health-check", None, |c, _| c == 200).await;

    // A run in progress at SIGTERM is left neither running nor unrecorded.
    let (code, _) = srv.json("POST", "/jobs/health-snapshot/trigger", Some(&token)).await;
    assert_eq!(code, 202);
    token
}
