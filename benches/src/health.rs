//! The health endpoint under load: the real `mscribe serve` on a free
//! loopback port with a temporary data directory, loaded by `wrk` (or, when
//! `wrk` is missing, by an in-process keep-alive client with bounded
//! concurrency), with the health cache on. The probe runs during the load
//! are read from the server's own `mscribe_health_checks_total` counter:
//! each refresh runs the database probe (one round trip to the store) once.
//!
//! Traffic goes to 127.0.0.1 only, for a bounded time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::measure::LatencyHistogram;

/// How to load the endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthParams {
    /// The `mscribe` binary.
    pub bin: PathBuf,
    /// How long the load runs, in seconds.
    pub duration_s: u64,
    /// Concurrent connections.
    pub connections: usize,
    /// Load threads (wrk `-t`).
    pub threads: usize,
    /// The health cache TTL given to the server, in milliseconds.
    pub ttl_ms: u64,
    /// Use `wrk` when it is installed.
    pub prefer_wrk: bool,
}

/// What the load measured.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HealthResult {
    /// `wrk` or `in-process`.
    pub tool: String,
    /// The load's parameters.
    pub params: Option<HealthParams>,
    /// Requests completed.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Latency median, in milliseconds.
    pub p50_ms: f64,
    /// Latency 99th percentile, in milliseconds.
    pub p99_ms: f64,
    /// Largest latency, in milliseconds.
    pub max_ms: f64,
    /// Answers other than 2xx.
    pub non_2xx: u64,
    /// Socket errors and timeouts.
    pub errors: u64,
    /// Probe runs (refreshes, one database probe each) during the load.
    pub probe_runs: u64,
    /// The most allowed: one per started TTL of the load.
    pub probe_runs_allowed: u64,
    /// The measured load time, in seconds.
    pub elapsed_s: f64,
    /// The `/health-check` status at the start.
    pub first_status: u16,
    /// Anything odd.
    pub note: Option<String>,
}

/// A running server, killed on drop.
struct Server {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_server(bin: &Path, ttl_ms: u64) -> Result<Server, String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("mscribe-bench-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = |p: &str| dir.join(p).display().to_string();
    let env = [
        ("MSCRIBE_LISTEN", "127.0.0.1:0".to_owned()),
        ("MSCRIBE_DATABASE_URL", format!("sqlite://{}", path("mscribe.db"))),
        ("MSCRIBE_DATA_DIR", path("data")),
        ("MSCRIBE_LOG_DIR", path("logs")),
        ("MSCRIBE_BACKUP_DIR", path("backups")),
        ("MSCRIBE_HEALTH_TTL", format!("{ttl_ms}ms")),
        ("MSCRIBE_HEALTH_MIN_FREE_BYTES", "0".to_owned()),
        ("MSCRIBE_HEALTH_MIN_FREE_PERCENT", "0".to_owned()),
        ("MSCRIBE_LOG_TO_FILE", "false".to_owned()),
        ("MSCRIBE_LOG", "warn".to_owned()),
    ];
    // The server runs in the temporary directory: resolve a relative path first.
    let bin = std::fs::canonicalize(bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    let mut cmd = Command::new(&bin);
    cmd.current_dir(&dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("MSCRIBE_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let stderr = std::fs::File::create(dir.join("server.stderr")).map_err(|e| e.to_string())?;
    let mut child = cmd
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut server = Server { child, addr: String::new(), dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(addr) = line.strip_prefix("mscribe listening on http://") {
                    server.addr = addr.trim().to_owned();
                    return Ok(server);
                }
            }
            Err(_) => {
                let log =
                    std::fs::read_to_string(server.dir.join("server.stderr")).unwrap_or_default();
                return Err(format!("mscribe serve did not start; stderr:\n{log}"));
            }
        }
    }
}

/// One blocking `GET` with `Connection: close`: (status, body).
fn get(addr: &str, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad answer to GET {path}"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// The server's probe-run counter.
fn probe_runs(addr: &str) -> Result<u64, String> {
    let (_, body) = get(addr, "/metrics")?;
    body.lines()
        .find_map(|l| l.strip_prefix("mscribe_health_checks_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .ok_or_else(|| "no mscribe_health_checks_total in /metrics".to_owned())
}

/// Whether `wrk` is on the PATH.
pub fn have_wrk() -> bool {
    Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs the load; see the module docs.
pub fn run_health(p: &HealthParams) -> HealthResult {
    let mut out = HealthResult { params: Some(p.clone()), ..HealthResult::default() };
    let server = match start_server(&p.bin, p.ttl_ms) {
        Ok(s) => s,
        Err(e) => {
            out.note = Some(e);
            return out;
        }
    };
    match get(&server.addr, "/health-check") {
        Ok((status, _)) => out.first_status = status,
        Err(e) => {
            out.note = Some(e);
            return out;
        }
    }
    // Let the first refresh age out, so the load starts on a cold cache.
    std::thread::sleep(Duration::from_millis(p.ttl_ms + 50));
    let before = match probe_runs(&server.addr) {
        Ok(n) => n,
        Err(e) => {
            out.note = Some(e);
            return out;
        }
    };
    let url = format!("http://{}/health-check", server.addr);
    let t = Instant::now();
    let loaded = if p.prefer_wrk && have_wrk() {
        out.tool = "wrk".to_owned();
        run_wrk(&url, p, &mut out)
    } else {
        out.tool = "in-process".to_owned();
        run_in_process(&server.addr, p, &mut out)
    };
    out.elapsed_s = t.elapsed().as_secs_f64().min(p.duration_s as f64 + 1.0);
    if let Err(e) = loaded {
        out.note = Some(e);
    }
    match probe_runs(&server.addr) {
        Ok(after) => out.probe_runs = after - before,
        Err(e) => out.note = Some(e),
    }
    let ttl = p.ttl_ms as f64 / 1e3;
    out.probe_runs_allowed = (p.duration_s as f64 / ttl).ceil() as u64 + 1;
    drop(server);
    out
}

/// Parses a wrk time (`812.00us`, `1.23ms`, `2.00s`) into milliseconds.
fn wrk_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = if let Some(v) = s.strip_suffix("us") {
        (v, 1e-3)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('m') {
        (v, 60e3)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1e3)
    } else {
        (s, 1.0)
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

fn run_wrk(url: &str, p: &HealthParams, out: &mut HealthResult) -> Result<(), String> {
    let o = Command::new("wrk")
        .args([
            "-t",
            &p.threads.to_string(),
            "-c",
            &p.connections.to_string(),
            "-d",
            &format!("{}s", p.duration_s),
            "--timeout",
            "5s",
            "--latency",
            url,
        ])
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    if !o.status.success() {
        return Err(format!("wrk failed: {text}{}", String::from_utf8_lossy(&o.stderr)));
    }
    parse_wrk(&text, out);
    Ok(())
}

fn parse_wrk(text: &str, out: &mut HealthResult) {
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["Latency", _avg, _stdev, max, ..] => out.max_ms = wrk_ms(max).unwrap_or(0.0),
            ["50%", v] => out.p50_ms = wrk_ms(v).unwrap_or(0.0),
            ["99%", v] => out.p99_ms = wrk_ms(v).unwrap_or(0.0),
            ["Requests/sec:", v] => out.rps = v.parse().unwrap_or(0.0),
            [n, "requests", "in", ..] => out.requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => out.non_2xx = n.parse().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                out.errors =
                    rest.iter().filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok()).sum();
            }
            _ => {}
        }
    }
}

/// Bounded concurrency: `connections` keep-alive connections, each sending
/// its next request when the last answer is read, until the deadline.
fn run_in_process(addr: &str, p: &HealthParams, out: &mut HealthResult) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(p.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let hist = Arc::new(LatencyHistogram::new());
    let non_2xx = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(p.duration_s);
    let t = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..p.connections {
            let (addr, hist, non_2xx, errors) =
                (addr.to_owned(), hist.clone(), non_2xx.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                while tokio::time::Instant::now() < deadline {
                    if client_loop(&addr, deadline, &hist, &non_2xx).await.is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    let elapsed = t.elapsed().as_secs_f64();
    out.requests = hist.count();
    out.rps = out.requests as f64 / elapsed;
    out.p50_ms = hist.percentile(0.50).as_secs_f64() * 1e3;
    out.p99_ms = hist.percentile(0.99).as_secs_f64() * 1e3;
    out.max_ms = hist.max().as_secs_f64() * 1e3;
    out.non_2xx = non_2xx.load(Ordering::Relaxed);
    out.errors = errors.load(Ordering::Relaxed);
    Ok(())
}

async fn client_loop(
    addr: &str,
    deadline: tokio::time::Instant,
    hist: &LatencyHistogram,
    non_2xx: &AtomicU64,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let req = format!("GET /health-check HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    while tokio::time::Instant::now() < deadline {
        let t = Instant::now();
        s.write_all(req.as_bytes()).await?;
        buf.clear();
        // Read the head, then the body by Content-Length.
        let (head_len, body_len) = loop {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
                .await
                .map_err(|_| std::io::Error::other("timeout"))??;
            if n == 0 {
                return Err(std::io::Error::other("closed"));
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if !head.starts_with("http/1.1 2") {
                    non_2xx.fetch_add(1, Ordering::Relaxed);
                }
                break (end + 4, len);
            }
        };
        while buf.len() < head_len + body_len {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::other("closed"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        hist.record(t.elapsed());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_output() {
        let text = "Running 5s test @ http://127.0.0.1:1/health-check
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    1.02ms  31.50ms   90.00%
    Req/Sec    15.00k     1.00k   17.00k    70.00%
  Latency Distribution
     50%    1.95ms
     75%    2.40ms
     90%    3.00ms
     99%  812.00us
  150000 requests in 5.00s, 60.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  30000.50
Transfer/sec:     12.00MB
";
        let mut r = HealthResult::default();
        parse_wrk(text, &mut r);
        assert_eq!(r.requests, 150_000);
        assert_eq!(r.non_2xx, 3);
        assert!((r.rps - 30000.5).abs() < 1e-6);
        assert!((r.p50_ms - 1.95).abs() < 1e-9);
        assert!((r.p99_ms - 0.812).abs() < 1e-9);
        assert!((r.max_ms - 31.5).abs() < 1e-9);
    }
}
