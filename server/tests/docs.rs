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
//! reference names every key; the default schedules quoted are the
//! server's.
//!
//! The Postgres SQL needs a server (`MSCRIBE_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`); like the other Postgres
//! tests it fails, never skips, when none answers.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mscribe_scheduler::probe::NamedReport;
use mscribe_scheduler::store::{AttemptEnd, AttemptStart, ExecutionId, SkippedFire};
use mscribe_scheduler::{ExecutionEvent, ExecutionStatus, HealthStatus, Observer, ProbeReport};
use mscribe_server::config::{COMMON_JOB_KEYS, Config, JOB_IDS, env_keys};
use mscribe_server::db::Database;
use mscribe_server::health::HealthSnapshot;
use mscribe_server::metrics::ServerMetrics;

const BIN: &str = env!("CARGO_BIN_EXE_mscribe");

/// The documents whose every shell and SQL block must be marked.
const DOCS: &[&str] = &[
    "README.md",
    "docs/ARCHITECTURE.md",
    "docs/runbooks/INCIDENT_RESPONSE.md",
    "docs/runbooks/MAINTENANCE.md",
    "docs/runbooks/HEALTH_CHECKS.md",
];

const SHELL_LANGS: &[&str] = &["sh", "bash", "shell", "console", "zsh"];

/// How long one block may run.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(180);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// ---- fenced blocks ---------------------------------------------------------

/// One fenced code block.
#[derive(Debug, Clone)]
struct Block {
    file: String,
    /// The line of the opening fence, 1-based.
    line: usize,
    /// The first word of the info string, e.g. `sh`.
    lang: String,
    /// The rest of the info string, e.g. `runnable with-server`.
    attrs: String,
    body: String,
}

impl Block {
    fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// The fenced blocks of a Markdown text (fences of three backticks, at any
/// indentation; the body loses the fence's indentation).
fn fenced_blocks(file: &str, text: &str) -> Vec<Block> {
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
enum Need {
    Any,
    Up,
    Down,
}

/// What a shell block's info string says: `Ok(Some(need))` runnable,
/// `Ok(None)` not runnable (with a reason), `Err` unmarked or malformed.
fn shell_marker(attrs: &str) -> Result<Option<Need>, String> {
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
fn sql_marker(attrs: &str) -> Result<Option<&'static str>, String> {
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

fn doc_blocks(doc: &str) -> Vec<Block> {
    fenced_blocks(doc, &read(doc))
}

fn runnable_shell_blocks(doc: &str) -> Vec<(Block, Need)> {
    doc_blocks(doc)
        .into_iter()
        .filter(|b| SHELL_LANGS.contains(&b.lang.as_str()))
        .filter_map(|b| match shell_marker(&b.attrs) {
            Ok(Some(need)) => Some((b, need)),
            _ => None,
        })
        .collect()
}

fn sql_blocks(dialect: &str) -> Vec<Block> {
    DOCS.iter()
        .flat_map(|d| doc_blocks(d))
        .filter(|b| b.lang == "sql" && sql_marker(&b.attrs) == Ok(Some(dialect)))
        .collect()
}

#[test]
fn every_shell_and_sql_block_is_marked() {
    let mut errors = Vec::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for doc in DOCS {
        for b in doc_blocks(doc) {
            let res = if SHELL_LANGS.contains(&b.lang.as_str()) {
                shell_marker(&b.attrs)
                    .map(|m| if m.is_some() { "runnable" } else { "not runnable" })
            } else if b.lang == "sql" {
                sql_marker(&b.attrs).map(|m| m.unwrap_or("not runnable"))
            } else {
                continue;
            };
            match res {
                Ok(kind) => *counts.entry(kind).or_default() += 1,
                Err(e) => errors.push(format!("{}: {e}", b.location())),
            }
        }
    }
    println!("marked blocks: {counts:?}");
    assert!(errors.is_empty(), "unmarked or malformed blocks:\n{}", errors.join("\n"));
}

// ---- the scratch server ----------------------------------------------------

/// A scratch directory with its own database, directories, port and token,
/// and the `mscribe serve` this test may have started in it.
struct Sandbox {
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
fn run_doc(doc: &str) -> usize {
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

#[test]
fn incident_response_blocks_run() {
    assert!(run_doc("docs/runbooks/INCIDENT_RESPONSE.md") > 10);
}

#[test]
fn maintenance_blocks_run() {
    assert!(run_doc("docs/runbooks/MAINTENANCE.md") > 10);
}

#[test]
fn health_checks_blocks_run() {
    assert!(run_doc("docs/runbooks/HEALTH_CHECKS.md") > 5);
}

#[test]
fn readme_and_architecture_blocks_run() {
    run_doc("README.md");
    run_doc("docs/ARCHITECTURE.md");
}

/// The backup and restore procedure is tested, not only written: a backup,
/// then a restore that replaces the database (server stopped), then a check
/// that the history is back.
#[test]
fn backup_and_restore_are_among_the_tested_blocks() {
    let blocks = runnable_shell_blocks("docs/runbooks/MAINTENANCE.md");
    let pos = |from: usize, ok: &dyn Fn(&Block, Need) -> bool| {
        blocks.iter().skip(from).position(|(b, n)| ok(b, *n)).map(|p| p + from)
    };
    let backup = pos(0, &|b, _| b.body.contains("mscribe run database-backup"))
        .expect("a runnable block takes a backup");
    let restore = pos(backup + 1, &|b, n| {
        n == Need::Down && b.body.contains("mscribe-*.db") && b.body.contains("mv \"$f\"")
    })
    .expect("a later runnable block, server stopped, moves the database aside and restores");
    pos(restore + 1, &|b, _| {
        b.body.contains("mscribe history") && b.body.contains("grep '\"last_run\": \"'")
    })
    .expect("a later runnable block checks that the history is back");
}

// ---- links -----------------------------------------------------------------

/// The Markdown files the link check covers: the README and `docs/`.
fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut out = vec![root().join("README.md")];
    walk(&root().join("docs"), &mut out);
    out.sort();
    out
}

/// The lines outside fenced code blocks, with inline code removed.
fn prose_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let mut s = String::new();
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            } else if !in_code {
                s.push(c);
            }
        }
        out.push((i + 1, s));
    }
    out
}

/// GitHub's anchors of a Markdown file's headings.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_default();
        out.insert(if *n == 0 { slug.clone() } else { format!("{slug}-{n}") });
        *n += 1;
    }
    out
}

/// The targets of `[text](target)` links and `[label]: target` definitions.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let t = line.trim_start();
    if t.starts_with('[')
        && let Some((_, rest)) = t.split_once("]:")
    {
        if let Some(target) = rest.split_whitespace().next() {
            out.push(target.to_owned());
        }
        return out;
    }
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let mut depth = 0usize;
        let mut end = after.len();
        for (j, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = j;
                    break;
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        let target = after[..end].split_whitespace().next().unwrap_or("");
        out.push(target.to_owned());
        rest = &after[end.min(after.len())..];
    }
    out
}

#[test]
fn relative_links_and_anchors_resolve() {
    let mut errors = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = fs::read_to_string(&file).expect("read");
        let rel = file.strip_prefix(root()).unwrap_or(&file).display().to_string();
        for (line, prose) in prose_lines(&text) {
            for target in link_targets(&prose) {
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
                let dest =
                    if path.is_empty() { file.clone() } else { file.parent().unwrap().join(path) };
                if !dest.exists() {
                    errors
                        .push(format!("{rel}:{line}: {target}: {} does not exist", dest.display()));
                    continue;
                }
                if anchor.is_empty() || dest.extension().is_none_or(|x| x != "md") {
                    continue;
                }
                let dest_text = fs::read_to_string(&dest).expect("read link target");
                if !anchors(&dest_text).contains(anchor) {
                    errors.push(format!(
                        "{rel}:{line}: {target}: no heading with anchor #{anchor} in {}",
                        dest.display()
                    ));
                }
            }
        }
    }
    println!("{checked} relative links checked");
    assert!(errors.is_empty(), "broken links:\n{}", errors.join("\n"));
}

// ---- the README ------------------------------------------------------------

#[test]
fn readme_example_is_the_compiled_example() {
    let rust: Vec<Block> =
        doc_blocks("README.md").into_iter().filter(|b| b.lang.starts_with("rust")).collect();
    assert_eq!(rust.len(), 1, "the README has one Rust example");
    assert_eq!(rust[0].lang, "rust,no_run", "{}: the example is `rust,no_run`", rust[0].location());
    let file = read("server/examples/readme_embed.rs");
    let body: Vec<&str> = file.lines().skip_while(|l| l.starts_with("//!")).collect();
    let compiled = body.join("\n").trim().to_owned();
    assert_eq!(
        rust[0].body.trim(),
        compiled,
        "the README's example differs from server/examples/readme_embed.rs (without its //! header)"
    );
}

#[test]
fn readme_documents_every_config_key() {
    let readme = read("README.md");
    let mut missing = Vec::new();
    for key in env_keys() {
        let parts: Vec<&str> = key.path.splitn(3, '.').collect();
        let ok = match parts.as_slice() {
            ["jobs", _, k] if COMMON_JOB_KEYS.iter().any(|(c, _)| c == k) => {
                readme.contains(&format!("`{k}`"))
            }
            ["jobs", _, _] => readme.contains(&key.var),
            _ => {
                let last = key.path.rsplit('.').next().unwrap_or(&key.path);
                readme.contains(&key.var) && readme.contains(&format!("`{last}`"))
            }
        };
        if !ok {
            missing.push(format!("{} ({})", key.path, key.var));
        }
    }
    assert!(
        missing.is_empty(),
        "the README's configuration reference misses:\n{}",
        missing.join("\n")
    );
}

#[test]
fn quoted_default_schedules_are_the_servers() {
    let cfg = Config::default();
    for doc in ["README.md", "docs/runbooks/MAINTENANCE.md"] {
        let text = read(doc);
        for id in JOB_IDS {
            let schedule = cfg.jobs.common(id).expect("known job").schedule;
            let row = text
                .lines()
                .find(|l| l.starts_with(&format!("| `{id}` |")))
                .unwrap_or_else(|| panic!("{doc}: no table row for job {id}"));
            assert!(
                row.contains(&format!("`{schedule}`")),
                "{doc}: the row of {id} does not give its default schedule `{schedule}`:\n{row}"
            );
        }
    }
}

// ---- metric names and log lines --------------------------------------------

/// Every series name the server exposes, with every family populated.
fn exposed_metric_names() -> BTreeSet<String> {
    let m = ServerMetrics::new();
    let now = Utc::now();
    let start = AttemptStart {
        job_id: "j".into(),
        execution_id: ExecutionId(1),
        attempt: 1,
        scheduled_at: now,
        started_at: now,
        instance_id: "i".into(),
    };
    m.on_event(&ExecutionEvent::Started(start));
    m.on_event(&ExecutionEvent::Finished(end_event("j", 1, 1, now, ExecutionStatus::Failed)));
    m.on_event(&ExecutionEvent::Skipped(SkippedFire {
        job_id: "j".into(),
        execution_id: ExecutionId(2),
        scheduled_at: now,
        decided_at: now,
        reason: "r".into(),
        instance_id: "i".into(),
    }));
    m.record_health(&HealthSnapshot {
        status: HealthStatus::Healthy,
        checked_at: now,
        checks: vec![NamedReport {
            name: "database".into(),
            critical: true,
            report: ProbeReport::healthy(Duration::ZERO),
        }],
    });
    let mut names = BTreeSet::new();
    for line in m.encode().lines() {
        let name = match line.strip_prefix("# HELP ").or_else(|| line.strip_prefix("# TYPE ")) {
            Some(rest) => rest.split_whitespace().next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        };
        if let Some(n) = name {
            names.insert(n.to_owned());
        }
    }
    names
}

#[test]
fn metric_names_in_the_docs_exist() {
    let names = exposed_metric_names();
    let prefixes =
        ["mscribe_job_", "mscribe_store_", "mscribe_scheduler_overdue", "mscribe_health_"];
    let mut unknown = Vec::new();
    let mut seen = 0;
    for doc in DOCS {
        let text = read(doc);
        let mut rest = text.as_str();
        while let Some(i) = rest.find("mscribe_") {
            let token: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            rest = &rest[i + token.len().max(1)..];
            // `mscribe_store_*`, `^mscribe_(store_|...)`: a family, not a name.
            if token.ends_with('_') || !prefixes.iter().any(|p| token.starts_with(p)) {
                continue;
            }
            seen += 1;
            if !names.contains(&token) {
                unknown.push(format!("{doc}: {token}"));
            }
        }
    }
    assert!(seen > 20, "only {seen} metric names found in the docs");
    assert!(unknown.is_empty(), "metric names the server does not expose:\n{}", unknown.join("\n"));
}

/// The Rust sources of the engine, the stores and the server.
fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = fs::read_to_string(&p).unwrap_or_default();
                out.push((p, text));
            }
        }
    }
    let mut out = Vec::new();
    for d in ["src", "storage/src", "server/src"] {
        walk(&root().join(d), &mut out);
    }
    out
}

/// Whether `message` is the start of a string literal logged at `level`
/// (the nearest `tracing::<level>!` before the literal).
fn logged_at(sources: &[(PathBuf, String)], level: &str, message: &str) -> bool {
    let needle = format!("\"{message}");
    sources.iter().any(|(_, text)| {
        text.match_indices(&needle).any(|(i, _)| {
            let before = &text[i.saturating_sub(2000)..i];
            before
                .rfind("tracing::")
                .is_some_and(|j| before[j + 9..].starts_with(&format!("{level}!")))
        })
    })
}

#[test]
fn quoted_log_lines_exist_in_the_code() {
    let sources = sources();
    let mut unknown = Vec::new();
    let mut seen = 0;
    for doc in DOCS {
        for (n, line) in read(doc).lines().enumerate() {
            for (k, span) in line.split('`').enumerate() {
                if k % 2 == 0 {
                    continue;
                }
                let Some((level, message)) = span.split_once(' ') else { continue };
                let level = match level {
                    "ERROR" | "WARN" | "INFO" | "DEBUG" => level.to_lowercase(),
                    _ => continue,
                };
                let message = message.trim_end_matches("...").trim_end();
                seen += 1;
                if !logged_at(&sources, &level, message) {
                    unknown.push(format!("{doc}:{}: {} {message}", n + 1, level.to_uppercase()));
                }
            }
        }
    }
    assert!(seen > 20, "only {seen} log lines found in the docs");
    assert!(
        unknown.is_empty(),
        "log lines the code does not log (at that level):\n{}",
        unknown.join("\n")
    );
}

// ---- SQL -------------------------------------------------------------------

fn end_event(
    job: &str,
    id: u128,
    attempt: u32,
    at: DateTime<Utc>,
    status: ExecutionStatus,
) -> AttemptEnd {
    AttemptEnd {
        job_id: job.into(),
        execution_id: ExecutionId(id),
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
    }
}

/// Rows the queries can find: runs, a failure, a late run, a skipped fire,
/// a run left running.
fn seed_events() -> Vec<ExecutionEvent> {
    let now = Utc::now();
    let min = chrono::Duration::minutes;
    let mut late =
        end_event("metrics-aggregation", 13, 1, now - min(50), ExecutionStatus::Succeeded);
    late.started_at = now - min(45);
    vec![
        ExecutionEvent::Finished(end_event(
            "database-backup",
            10,
            1,
            now - min(90),
            ExecutionStatus::Failed,
        )),
        ExecutionEvent::Finished(end_event(
            "database-backup",
            10,
            2,
            now - min(89),
            ExecutionStatus::RetriesExhausted,
        )),
        ExecutionEvent::Finished(end_event(
            "health-snapshot",
            11,
            1,
            now - min(5),
            ExecutionStatus::Succeeded,
        )),
        ExecutionEvent::Finished(late),
        ExecutionEvent::Skipped(SkippedFire {
            job_id: "log-rotation".into(),
            execution_id: ExecutionId(12),
            scheduled_at: now - min(120),
            decided_at: now - min(30),
            reason: "misfire: missed while down or stalled".into(),
            instance_id: "docs-test".into(),
        }),
        ExecutionEvent::Started(AttemptStart {
            job_id: "temp-cleanup".into(),
            execution_id: ExecutionId(14),
            attempt: 1,
            scheduled_at: now - min(1),
            started_at: now - min(1),
            instance_id: "docs-test".into(),
        }),
    ]
}

async fn open_and_seed(url: &str) -> Database {
    let db = Database::open(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    let store = db.store();
    store.write(&seed_events()).await.expect("seed rows");
    store.heartbeat("docs-test", Utc::now()).await.expect("seed heartbeat");
    db
}

#[test]
fn sqlite_sql_blocks_run() {
    let blocks = sql_blocks("sqlite");
    assert!(blocks.len() >= 5, "only {} SQLite blocks", blocks.len());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("mscribe.db");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let db = rt.block_on(open_and_seed(&format!("sqlite://{}", path.display())));
    rt.block_on(db.close());
    drop(db);
    let conn = rusqlite::Connection::open(&path).expect("open sqlite");
    let mut errors = Vec::new();
    for b in &blocks {
        let run = || -> rusqlite::Result<usize> {
            conn.execute_batch("BEGIN")?;
            let mut rows = 0;
            let mut batch = rusqlite::Batch::new(&conn, &b.body);
            let res = (|| {
                while let Some(mut stmt) = batch.next()? {
                    let mut r = stmt.raw_query();
                    while r.next()?.is_some() {
                        rows += 1;
                    }
                }
                Ok(())
            })();
            conn.execute_batch("ROLLBACK")?;
            res.map(|()| rows)
        };
        match run() {
            Ok(rows) => println!("{}: {rows} rows", b.location()),
            Err(e) => errors.push(format!("{}: {e}\n{}", b.location(), b.body)),
        }
    }
    assert!(errors.is_empty(), "SQLite blocks failed:\n{}", errors.join("\n"));
}

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    match base[scheme_end..].find('/') {
        Some(i) => format!("{}/{name}{query}", &base[..scheme_end + i]),
        None => format!("{base}/{name}{query}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sql_blocks_run() {
    use sqlx::{Connection, Executor, PgConnection};
    let blocks = sql_blocks("postgres");
    assert!(blocks.len() >= 5, "only {} Postgres blocks", blocks.len());
    let admin_url = std::env::var("MSCRIBE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let mut admin =
        tokio::time::timeout(Duration::from_secs(30), PgConnection::connect(&admin_url))
            .await
            .unwrap_or_else(|_| panic!("Postgres at {admin_url} did not answer within 30 s"))
            .unwrap_or_else(|e| {
                panic!(
                    "cannot connect to Postgres at {admin_url} (set MSCRIBE_TEST_POSTGRES_URL): {e}"
                )
            });
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let name = format!("mscribe_docs_{:x}{:x}", std::process::id(), nanos & 0xffff_ffff_ffff);
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create database");
    let url = with_database(&admin_url, &name);

    let db = open_and_seed(&url).await;
    let mut errors = Vec::new();
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    for b in &blocks {
        let mut tx = conn.begin().await.expect("begin");
        let res = sqlx::raw_sql(&b.body).execute(&mut *tx).await;
        let _ = tx.rollback().await;
        match res {
            Ok(_) => println!("{}: ok", b.location()),
            Err(e) => errors.push(format!("{}: {e}\n{}", b.location(), b.body)),
        }
    }
    let _ = conn.close().await;
    db.close().await;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .expect("drop database");
    assert!(errors.is_empty(), "Postgres blocks failed:\n{}", errors.join("\n"));
}
