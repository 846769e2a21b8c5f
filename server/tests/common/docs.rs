//! The docs tests' shared part: the docs, their blocks, the scratch server.
//!
//! The tests are `server/tests/docs_*.rs`, one file per doc or check.
//!
//!
//! The docs are tested like code.
//!
//! Every fenced shell block (`sh`, `bash`, `shell`, `console`) and SQL block
//! of the README, `docs/ARCHITECTURE.md` and the runbooks says whether it
//! runs, in its info string:
//!
//! | info string | what this test does |
//! |---|---|
//! | `sh runnable` | runs it, whether or not a server is running |
//! | `sh runnable with-server` | starts `mscribe serve` first (if not running), then runs it |
//! | `sh runnable without-server` | stops the server first (if running), then runs it |
//! | `sh not-runnable: <reason>` | nothing; the reason is required |
//! | `sql sqlite`, `sql postgres` | runs it (in a transaction rolled back) against a fresh, migrated, seeded database |
//! | `sql not-runnable: <reason>` | nothing |
//!
//! The runnable blocks of one document run in order, each with
//! `bash -euo pipefail`, in one scratch directory with a SQLite database,
//! `MSCRIBE_*` variables pointing into it (`MSCRIBE_LISTEN` on a free
//! port, `MSCRIBE_ADMIN_TOKEN` set) and `mscribe` first on the `PATH`; a
//! block fails the test when it exits non-zero, and the failure shows the
//! block, its output and the server's log. A server the test started must
//! stop cleanly (exit 0) on SIGTERM.
//!
//! Besides: every relative link (and `#anchor`) in `docs/` and the README
//! resolves; the README's Rust example is `server/examples/readme_embed.rs`
//! (which is compiled); every metric name and every `LEVEL message` log
//! line the docs quote exists in the code; the README's configuration
//! reference names every key; the default schedules and timeouts quoted are
//! the server's (its table of jobs, `mscribe_server::ops::JOBS`).
//!
//! | test file | what it checks |
//! |---|---|
//! | `docs_readme.rs` | the README (and `docs/ARCHITECTURE.md`): its runnable blocks, its Rust example, its configuration reference, the job tables of it and MAINTENANCE.md |
//! | `docs_runbooks.rs` | the runbooks' runnable blocks, the tested backup and restore |
//! | `docs_blocks.rs` | every shell and SQL block of the docs is marked; the SQL blocks run on SQLite and Postgres |
//! | `docs_links.rs` | the relative links and anchors of the README and `docs/` |
//! | `docs_names.rs` | the metric names and log lines the docs quote exist in the code |
//!
//! The Postgres SQL needs a server (`MSCRIBE_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`); like the other Postgres
//! tests it fails, never skips, when none answers.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mscribe_scheduler::ExecutionStatus;
use mscribe_scheduler::{AttemptEnd, ExecutionId, FireKind};

use super::BIN;

/// The documents whose every shell and SQL block must be marked.
pub const DOCS: &[&str] = &[
    "README.md",
    "docs/ARCHITECTURE.md",
    "docs/runbooks/INCIDENT_RESPONSE.md",
    "docs/runbooks/MAINTENANCE.md",
    "docs/runbooks/HEALTH_CHECKS.md",
];

pub const SHELL_LANGS: &[&str] = &["sh", "bash", "shell", "console", "zsh"];

/// How long one block may run.
pub const BLOCK_TIMEOUT: Duration = Duration::from_secs(180);

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

pub fn read(rel: &str) -> String {
    let path = root().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// ---- fenced blocks ---------------------------------------------------------

/// One fenced code block.
#[derive(Debug, Clone)]
pub struct Block {
    /// The document.
    pub file: String,
    /// The line of the opening fence, 1-based.
    pub line: usize,
    /// The first word of the info string, e.g. `sh`.
    pub lang: String,
    /// The rest of the info string, e.g. `runnable with-server`.
    pub attrs: String,
    /// The block's text.
    pub body: String,
}

impl Block {
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// The fenced blocks of a Markdown text (fences of three backticks, at any
/// indentation; the body loses the fence's indentation).
pub fn fenced_blocks(file: &str, text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(usize, usize, String, String, Vec<String>)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let info = info.trim();
                    let (lang, attrs) = info.split_once(char::is_whitespace).unwrap_or((info, ""));
                    open = Some((i + 1, indent, lang.to_owned(), attrs.trim().to_owned(), vec![]));
                }
            }
            Some((start, fence_indent, lang, attrs, body)) => {
                if trimmed.trim_end() == "```" {
                    out.push(Block {
                        file: file.to_owned(),
                        line: *start,
                        lang: std::mem::take(lang),
                        attrs: std::mem::take(attrs),
                        body: body.join("\n") + "\n",
                    });
                    open = None;
                } else {
                    let strip = indent.min(*fence_indent);
                    body.push(line[strip..].to_owned());
                }
            }
        }
    }
    assert!(open.is_none(), "{file}: a code fence is never closed");
    out
}

/// When a runnable shell block needs the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Any,
    Up,
    Down,
}

/// What a shell block's info string says: `Ok(Some(need))` runnable,
/// `Ok(None)` not runnable (with a reason), `Err` unmarked or malformed.
pub fn shell_marker(attrs: &str) -> Result<Option<Need>, String> {
    match attrs {
        "runnable" => Ok(Some(Need::Any)),
        "runnable with-server" => Ok(Some(Need::Up)),
        "runnable without-server" => Ok(Some(Need::Down)),
        a => match a.strip_prefix("not-runnable:") {
            Some(reason) if !reason.trim().is_empty() => Ok(None),
            _ => Err(format!(
                "info string \"{a}\": expected `runnable`, `runnable with-server`, \
                 `runnable without-server` or `not-runnable: <reason>`"
            )),
        },
    }
}

/// The SQL dialect a SQL block runs on, `None` when not runnable.
pub fn sql_marker(attrs: &str) -> Result<Option<&'static str>, String> {
    match attrs {
        "postgres" => Ok(Some("postgres")),
        "sqlite" => Ok(Some("sqlite")),
        a => match a.strip_prefix("not-runnable:") {
            Some(reason) if !reason.trim().is_empty() => Ok(None),
            _ => Err(format!(
                "info string \"{a}\": expected `sqlite`, `postgres` or `not-runnable: <reason>`"
            )),
        },
    }
}

pub fn doc_blocks(doc: &str) -> Vec<Block> {
    fenced_blocks(doc, &read(doc))
}

pub fn runnable_shell_blocks(doc: &str) -> Vec<(Block, Need)> {
    doc_blocks(doc)
        .into_iter()
        .filter(|b| SHELL_LANGS.contains(&b.lang.as_str()))
        .filter_map(|b| match shell_marker(&b.attrs) {
            Ok(Some(need)) => Some((b, need)),
            _ => None,
        })
        .collect()
}

pub fn sql_blocks(dialect: &str) -> Vec<Block> {
    DOCS.iter()
        .flat_map(|d| doc_blocks(d))
        .filter(|b| b.lang == "sql" && sql_marker(&b.attrs) == Ok(Some(dialect)))
        .collect()
}

// ---- the scratch server ----------------------------------------------------

/// A scratch directory with its own database, directories, port and token,
/// and the `mscribe serve` this test may have started in it.
pub struct Sandbox {
    dir: tempfile::TempDir,
    port: u16,
    token: String,
    server: Option<Child>,
    blocks_run: usize,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        for d in ["data", "logs", "backups"] {
            fs::create_dir_all(dir.path().join(d)).expect("create dir");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let token = mscribe_server::token::generate_token().expect("token");
        Sandbox { dir, port, token, server: None, blocks_run: 0 }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn env(&self) -> Vec<(String, String)> {
        let d = self.path();
        let bin_dir = Path::new(BIN).parent().expect("bin dir");
        let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
        [
            ("MSCRIBE_LISTEN", format!("127.0.0.1:{}", self.port)),
            ("MSCRIBE_DATABASE_URL", format!("sqlite://{}", d.join("mscribe.db").display())),
            ("MSCRIBE_DATA_DIR", d.join("data").display().to_string()),
            ("MSCRIBE_LOG_DIR", d.join("logs").display().to_string()),
            ("MSCRIBE_BACKUP_DIR", d.join("backups").display().to_string()),
            ("MSCRIBE_ADMIN_TOKEN", self.token.clone()),
            // The test machine's disk and load are not under test.
            ("MSCRIBE_HEALTH_MIN_FREE_BYTES", "0".to_owned()),
            ("MSCRIBE_HEALTH_MIN_FREE_PERCENT", "0".to_owned()),
            ("MSCRIBE_HEALTH_PROBE_TIMEOUT", "5s".to_owned()),
            ("MSCRIBE_HEALTH_SLOW_THRESHOLD", "5s".to_owned()),
            ("MSCRIBE_SHUTDOWN_GRACE", "5s".to_owned()),
            ("PATH", path),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// A command in the sandbox with its environment and none of the
    /// caller's `MSCRIBE_*` variables.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.path()).stdin(Stdio::null());
        for (k, _) in std::env::vars() {
            if k.starts_with("MSCRIBE_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env());
        cmd
    }

    fn server_log(&self) -> PathBuf {
        self.path().join("server.out")
    }

    fn server_log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.server_log()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn livez(&self) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if s.write_all(b"GET /livez HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.split_whitespace().nth(1) == Some("200")
    }

    fn ensure_up(&mut self) -> Result<(), String> {
        if self.server.is_some() {
            return Ok(());
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.server_log())
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut child = self
            .command(BIN)
            .arg("serve")
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("cannot start mscribe serve: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.livez() {
                self.server = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "mscribe serve exited with {status} before answering /livez:\n{}",
                    self.server_log_tail(40)
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "mscribe serve did not answer /livez within 60 s:\n{}",
                    self.server_log_tail(40)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server with SIGTERM; it must exit 0 within a minute.
    fn ensure_down(&mut self) -> Result<(), String> {
        let Some(mut child) = self.server.take() else { return Ok(()) };
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let pid = i32::try_from(child.id()).map_err(|e| e.to_string())?;
        kill(Pid::from_raw(pid), Signal::SIGTERM).map_err(|e| format!("SIGTERM: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "mscribe serve exited with {status} after SIGTERM:\n{}",
                        self.server_log_tail(40)
                    ))
                };
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "mscribe serve did not exit within 60 s of SIGTERM:\n{}",
                    self.server_log_tail(40)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs one block with `bash -euo pipefail`; returns its output, or the
    /// failure to report.
    fn run(&mut self, block: &Block, need: Need) -> Result<String, String> {
        let fail = |what: String, out: &str, srv: String| {
            format!(
                "{} ({} {}) {what}\n--- block ---\n{}--- output ---\n{out}\n--- server log (last lines) ---\n{srv}\n",
                block.location(),
                block.lang,
                block.attrs,
                block.body
            )
        };
        let state = match need {
            Need::Any => Ok(()),
            Need::Up => self.ensure_up(),
            Need::Down => self.ensure_down(),
        };
        state.map_err(|e| fail("could not be prepared".to_owned(), &e, String::new()))?;
        self.blocks_run += 1;
        let n = self.blocks_run;
        let script = self.path().join(format!("block-{n:02}.sh"));
        let output = self.path().join(format!("block-{n:02}.out"));
        fs::write(&script, &block.body).map_err(|e| e.to_string())?;
        let out = File::create(&output).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut child = self
            .command("bash")
            .arg("-euo")
            .arg("pipefail")
            .arg(&script)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("cannot run bash: {e}"))?;
        let deadline = Instant::now() + BLOCK_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let text = fs::read_to_string(&output).unwrap_or_default();
        match status {
            Some(s) if s.success() => Ok(text),
            Some(s) => Err(fail(format!("exited with {s}"), &text, self.server_log_tail(30))),
            None => Err(fail(
                format!("did not finish within {BLOCK_TIMEOUT:?}"),
                &text,
                self.server_log_tail(30),
            )),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the runnable shell blocks of `doc` in order in one sandbox; panics
/// with every failure. Returns how many ran.
pub fn run_doc(doc: &str) -> usize {
    assert!(
        Command::new("curl").arg("--version").stdout(Stdio::null()).status().is_ok(),
        "the runnable doc blocks need curl on the PATH"
    );
    let blocks = runnable_shell_blocks(doc);
    let mut sb = Sandbox::new();
    let mut failures = Vec::new();
    for (block, need) in &blocks {
        match sb.run(block, *need) {
            Ok(_) => {}
            Err(e) => failures.push(e),
        }
    }
    if let Err(e) = sb.ensure_down() {
        failures.push(format!("{doc}: stopping the server at the end: {e}"));
    }
    println!("{doc}: {} runnable blocks, {} failed", blocks.len(), failures.len());
    assert!(
        failures.is_empty(),
        "{} of {} runnable blocks of {doc} failed:\n\n{}",
        failures.len(),
        blocks.len(),
        failures.join("\n")
    );
    blocks.len()
}

/// A finished attempt of `job` at `at` (failures say "disk full"), with a
/// backup's result data.
pub fn end_event(
    job: &str,
    id: u128,
    attempt: u32,
    at: DateTime<Utc>,
    status: ExecutionStatus,
) -> AttemptEnd {
    AttemptEnd {
        job_id: job.into(),
        execution_id: ExecutionId::from_u128(id),
        attempt,
        scheduled_at: at,
        started_at: at,
        instance_id: "docs-test".into(),
        status,
        completed_at: at + chrono::Duration::milliseconds(1500),
        duration: Duration::from_millis(1500),
        error: (status != ExecutionStatus::Succeeded).then(|| "disk full".to_owned()),
        error_kind: None,
        result: Some(serde_json::json!({
            "file": "backups/mscribe-20260101T020000.000Z.db", "bytes": 4096, "status": "healthy"
        })),
        metrics: None,
        kind: FireKind::Schedule,
        fence: None,
        ends_run: true,
    }
}
