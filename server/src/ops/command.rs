//! The `command` jobs: a program run without a shell (`command`), or a
//! script run by `/bin/sh -c` (`shell`), in a process group of its own;
//! its exit mapped to a success, a transient or a permanent failure, the
//! end of its stdout and stderr kept in the run's result.
//!
//! The process group is the unit of cleanup. On cancellation the group gets
//! SIGTERM, then SIGKILL after `kill_grace`; when the attempt is dropped
//! (its timeout, a cancel) a guard does the same from a thread of its own,
//! and the job's next attempt starts its process only once that group is
//! gone. When the main process exits, processes it left behind in its group
//! (`cmd &`) get the same treatment, so no run leaves anything running. (A
//! process that leaves the group on purpose, with `setsid`, is out of
//! reach.)
//!
//! The process gets the server's environment without its `MSCRIBE_*`
//! variables (the admin token, the database URL), then `env_file`, then
//! `env`, plus `MSCRIBE_JOB_ID`, `MSCRIBE_SCHEDULED_AT` (the fire's time,
//! the same for every attempt) and `MSCRIBE_ATTEMPT`. No value of `env` or
//! `env_file` is logged or recorded.

use std::io::ErrorKind as IoKind;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use mscribe_scheduler::{CancellationToken, JobContext};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{OpsJob, OpsOutcome};
use crate::config::de::{deadline, tokio_deadline};
use crate::config::{CommandOptions, check_env_name};

/// How long the output of a finished process group is still read, for a
/// pipe that a process outside the group holds open.
const DRAIN: Duration = Duration::from_secs(1);

/// A `command` job: job `id` with its options.
#[derive(Debug, Clone)]
pub struct CommandJob {
    id: String,
    options: CommandOptions,
}

impl CommandJob {
    /// Job `id` running as `options` say (checked by the configuration).
    pub fn new(id: &str, options: CommandOptions) -> Self {
        CommandJob { id: id.to_owned(), options }
    }

    /// Runs the command once; `cancel` stops it (SIGTERM to its group, then
    /// SIGKILL after `kill_grace`). `vars` are set for the process after
    /// `env_file` and `env`.
    pub async fn execute(&self, cancel: &CancellationToken, vars: &[(&str, String)]) -> OpsOutcome {
        let o = &self.options;
        let argv: Vec<String> = match (&o.command, &o.shell) {
            (Some(argv), None) if !argv.is_empty() => argv.clone(),
            (None, Some(script)) => vec!["/bin/sh".to_owned(), "-c".to_owned(), script.clone()],
            _ => {
                return OpsOutcome::failed_permanently(
                    json!({}),
                    format!("job {}: set exactly one of `command` and `shell`", self.id),
                );
            }
        };
        let program = argv[0].as_str();
        if let Some(cwd) = &o.cwd
            && !cwd.is_dir()
        {
            return OpsOutcome::failed_permanently(
                json!({}),
                format!("cwd {} is not a directory", cwd.display()),
            );
        }
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with(crate::config::ENV_PREFIX) {
                cmd.env_remove(name);
            }
        }
        if let Some(file) = &o.env_file {
            match parse_env_file(file) {
                Ok(vars) => {
                    cmd.envs(vars);
                }
                Err(e) => return OpsOutcome::failed_permanently(json!({}), e),
            }
        }
        cmd.envs(o.env.iter().map(|(k, v)| (k, v.expose())));
        cmd.envs(vars.iter().map(|(k, v)| (k, v)));
        if let Some(cwd) = &o.cwd {
            cmd.current_dir(cwd);
        }
        // An earlier attempt of this job dropped at its timeout or a cancel
        // may still be dying (its group has up to `kill_grace` after the
        // SIGTERM): never two attempts' processes at once. The wait counts
        // toward this attempt's timeout.
        let earlier = |k: &PendingKill| k.job == self.id;
        if pending_until(earlier).is_some() {
            tracing::info!(
                job_id = %self.id,
                "waiting for the process group of an earlier attempt to be gone before starting"
            );
            tokio::select! {
                () = wait_for_pending(earlier) => {}
                () = cancel.cancelled() => {
                    return OpsOutcome::failed(
                        json!({}),
                        "cancelled while waiting for an earlier attempt's process group to be gone",
                    );
                }
            }
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return spawn_failure(program, &e),
        };
        let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
            return OpsOutcome::failed(
                json!({}),
                format!("{program} exited before it could be watched"),
            );
        };
        // `process_group(0)`: the group's id is the child's pid.
        let group = Pid::from_raw(pid);
        let mut guard =
            GroupGuard { job: self.id.clone(), group, grace: o.kill_grace, armed: true };
        let limit = usize::try_from(o.output_limit).unwrap_or(usize::MAX);
        let (mut out, mut err) = (Tail::new(limit), Tail::new(limit));
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let mut reading = Box::pin(async {
            tokio::join!(read_into(stdout, &mut out), read_into(stderr, &mut err));
        });
        let mut read_done = false;

        enum End {
            Exited(std::io::Result<ExitStatus>),
            Cancelled,
        }
        let end = loop {
            tokio::select! {
                () = &mut reading, if !read_done => read_done = true,
                st = child.wait() => break End::Exited(st),
                () = cancel.cancelled() => break End::Cancelled,
            }
        };
        let (status, leftovers, cancelled) = match end {
            End::Exited(st) => {
                // Whatever the main process left in its group goes too.
                let leftovers = group_alive(group);
                if leftovers {
                    terminate(group, o.kill_grace, &mut reading, &mut read_done).await;
                }
                (st, leftovers, false)
            }
            End::Cancelled => {
                let _ = killpg(group, Signal::SIGTERM);
                let grace = tokio::time::sleep(o.kill_grace);
                tokio::pin!(grace);
                let st = loop {
                    tokio::select! {
                        () = &mut reading, if !read_done => read_done = true,
                        st = child.wait() => break st,
                        () = &mut grace => {
                            let _ = killpg(group, Signal::SIGKILL);
                            break child.wait().await;
                        }
                    }
                };
                if group_alive(group) {
                    terminate(group, Duration::ZERO, &mut reading, &mut read_done).await;
                }
                (st, false, true)
            }
        };
        guard.armed = false;
        // The group is gone: its pipes close, unless a process outside it
        // holds them open.
        let complete = read_done || tokio::time::timeout(DRAIN, &mut reading).await.is_ok();
        drop(reading);
        let mut data = json!({
            "stdout": out.text(),
            "stderr": err.text(),
            "stdout_bytes": out.total,
            "stderr_bytes": err.total,
            "stdout_truncated": out.truncated(),
            "stderr_truncated": err.truncated(),
        });
        if leftovers {
            data["killed_leftovers"] = json!(true);
        }
        if !complete {
            data["output_incomplete"] = json!(true);
        }
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                return OpsOutcome::failed(data, format!("waiting for {program} failed: {e}"));
            }
        };
        data["exit_code"] = json!(status.code());
        data["signal"] = json!(status.signal().map(signal_name));
        if cancelled {
            return OpsOutcome::failed(
                data,
                format!("cancelled: the process group got SIGTERM ({})", describe_exit(status)),
            );
        }
        exit_outcome(data, status, &o.permanent_exit_codes)
    }
}

#[async_trait]
impl OpsJob for CommandJob {
    async fn run_at(&self, _now: DateTime<Utc>) -> OpsOutcome {
        self.execute(&CancellationToken::new(), &[("MSCRIBE_JOB_ID", self.id.clone())]).await
    }

    async fn run(&self, ctx: &JobContext) -> OpsOutcome {
        let vars = [
            ("MSCRIBE_JOB_ID", self.id.clone()),
            ("MSCRIBE_SCHEDULED_AT", ctx.scheduled_at.to_rfc3339_opts(SecondsFormat::Millis, true)),
            ("MSCRIBE_ATTEMPT", ctx.attempt.to_string()),
        ];
        self.execute(&ctx.cancel, &vars).await
    }
}

/// The outcome of an exit: 0 is a success, a code of `permanent` a
/// permanent failure, another code or a signal a transient one.
fn exit_outcome(data: Value, status: ExitStatus, permanent: &[i32]) -> OpsOutcome {
    match status.code() {
        Some(0) => OpsOutcome::ok(data),
        Some(code) if permanent.contains(&code) => OpsOutcome::failed_permanently(
            data,
            format!("exited with code {code}, a permanent exit code: no retry"),
        ),
        _ => OpsOutcome::failed(data, describe_exit(status)),
    }
}

/// `exited with code 3`, `killed by signal SIGKILL (9)`.
fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!("killed by signal {} ({sig})", signal_name(sig)),
        (None, None) => format!("ended with {status}"),
    }
}

/// `SIGTERM` for 15; the number for a signal nix does not name.
fn signal_name(sig: i32) -> String {
    Signal::try_from(sig).map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_owned())
}

/// A process that could not be started: a missing or non-executable
/// program is permanent (no retry starts it), anything else transient.
fn spawn_failure(program: &str, e: &std::io::Error) -> OpsOutcome {
    match e.kind() {
        IoKind::NotFound => OpsOutcome::failed_permanently(
            json!({}),
            if program.contains('/') {
                format!(
                    "program \"{program}\" not found (no such file, or its #! interpreter is missing)"
                )
            } else {
                format!("program \"{program}\" not found on PATH")
            },
        ),
        IoKind::PermissionDenied => OpsOutcome::failed_permanently(
            json!({}),
            format!("program \"{program}\" cannot be run: permission denied"),
        ),
        _ => OpsOutcome::failed(json!({}), format!("cannot start \"{program}\": {e}")),
    }
}

/// Whether any live process of `group` is left. Where `/proc` lists the
/// processes (Linux), zombies do not count: one whose parent died waits for
/// PID 1 to reap it, which in a container may be never. Elsewhere, whether
/// the group can be signalled.
fn group_alive(group: Pid) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return killpg(group, None).is_ok();
    };
    if killpg(group, None).is_err() {
        return false;
    }
    entries.flatten().any(|e| {
        let Some(stat) = e
            .file_name()
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        else {
            return false;
        };
        live_member(&stat, group.as_raw())
    })
}

/// Whether a `/proc/<pid>/stat` line is a live (not zombie) process of
/// process group `group`: after the command name in parentheses come the
/// state, the parent's pid and the group.
fn live_member(stat: &str, group: i32) -> bool {
    let Some((_, rest)) = stat.rsplit_once(')') else { return false };
    let mut fields = rest.split_whitespace();
    let state = fields.next().unwrap_or("Z");
    let pgrp = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
    pgrp == Some(group) && !matches!(state, "Z" | "X")
}

/// Sends SIGTERM to `group`, waits up to `grace` for it to be gone (reading
/// its output meanwhile), then sends SIGKILL.
async fn terminate(
    group: Pid,
    grace: Duration,
    reading: &mut (impl std::future::Future<Output = ()> + Unpin),
    read_done: &mut bool,
) {
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = tokio_deadline(tokio::time::Instant::now(), grace);
    while group_alive(group) && tokio::time::Instant::now() < deadline {
        tokio::select! {
            () = &mut *reading, if !*read_done => *read_done = true,
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    if group_alive(group) {
        let _ = killpg(group, Signal::SIGKILL);
    }
}

/// A process group a [`GroupGuard`] thread is still to SIGKILL: the job
/// whose attempt it was and when the SIGKILL is due.
#[derive(Debug)]
struct PendingKill {
    job: String,
    group: Pid,
    kill_at: Instant,
}

/// The groups of dropped attempts not gone yet, of every job this process
/// ran (configured, defined through the API or by a reload).
static PENDING_KILLS: Mutex<Vec<PendingKill>> = Mutex::new(Vec::new());

/// How long a group is watched after its SIGKILL (which is delivered
/// asynchronously) before it counts as gone.
const REAP: Duration = Duration::from_secs(1);

/// The pending kills, whatever a panicking holder left (the list stays
/// consistent: each change is one push or one removal).
fn pending_kills() -> std::sync::MutexGuard<'static, Vec<PendingKill>> {
    PENDING_KILLS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// When the pending kills that `which` selects are over at the latest (the
/// last SIGKILL due, the time it takes to land, a second for the thread to
/// be scheduled); `None` when none is pending.
fn pending_until(which: impl Fn(&PendingKill) -> bool) -> Option<Instant> {
    let last = pending_kills().iter().filter(|k| which(k)).map(|k| k.kill_at).max()?;
    Some(deadline(last, REAP.saturating_add(Duration::from_secs(1))))
}

/// Waits while `which` selects a pending kill, at most until its SIGKILL
/// has landed (see [`pending_until`]).
async fn wait_for_pending(which: impl Fn(&PendingKill) -> bool) {
    let Some(until) = pending_until(&which) else { return };
    while Instant::now() < until && pending_kills().iter().any(&which) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until no dropped attempt's process group is left to SIGKILL, of
/// any command job this process started: at most the longest `kill_grace`
/// in force (plus a second or two for the SIGKILL to land). A process that
/// exits right after stopping its scheduler calls this, so a group that
/// ignores SIGTERM is not left running once the process is gone.
pub async fn wait_for_group_kills() {
    wait_for_pending(|_| true).await;
}

/// Kills the process group when the attempt is dropped before its end (its
/// timeout, a cancel, a stop that did not wait): SIGTERM at once, SIGKILL
/// after `grace` from a thread, which needs no runtime. Until the group is
/// gone it is listed in [`PENDING_KILLS`]: the job's next attempt waits for
/// it, and so does [`wait_for_group_kills`].
#[derive(Debug)]
struct GroupGuard {
    job: String,
    group: Pid,
    grace: Duration,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if !self.armed || killpg(self.group, Signal::SIGTERM).is_err() {
            return;
        }
        let group = self.group;
        let kill_at = deadline(Instant::now(), self.grace);
        pending_kills().push(PendingKill { job: self.job.clone(), group, kill_at });
        let done = move || {
            pending_kills().retain(|k| (k.group, k.kill_at) != (group, kill_at));
        };
        let kill = move || {
            while group_alive(group) && Instant::now() < kill_at {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = killpg(group, Signal::SIGKILL);
            let gone_by = deadline(Instant::now(), REAP);
            while group_alive(group) && Instant::now() < gone_by {
                std::thread::sleep(Duration::from_millis(10));
            }
            done();
        };
        if std::thread::Builder::new().name("mscribe-kill".to_owned()).spawn(kill).is_err() {
            let _ = killpg(group, Signal::SIGKILL);
            done();
        }
    }
}

/// The last `limit` bytes of a stream, and how many it had in all.
#[derive(Debug)]
struct Tail {
    limit: usize,
    buf: Vec<u8>,
    total: u64,
}

impl Tail {
    fn new(limit: usize) -> Self {
        Tail { limit, buf: Vec::new(), total: 0 }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if bytes.len() >= self.limit {
            self.buf.clear();
            self.buf.extend_from_slice(&bytes[bytes.len() - self.limit..]);
            return;
        }
        self.buf.extend_from_slice(bytes);
        // Trim in batches: at most twice the limit is held.
        if self.buf.len() > 2 * self.limit.max(4096) {
            self.buf.drain(..self.buf.len() - self.limit);
        }
    }

    fn truncated(&self) -> bool {
        self.total > self.limit as u64
    }

    /// The kept bytes as text (invalid UTF-8 replaced), without a character
    /// cut in two at the start.
    fn text(&self) -> String {
        let start = self.buf.len().saturating_sub(self.limit);
        let mut kept = &self.buf[start..];
        if self.truncated() {
            while let Some((b, rest)) = kept.split_first() {
                if b & 0b1100_0000 != 0b1000_0000 {
                    break;
                }
                kept = rest;
            }
        }
        String::from_utf8_lossy(kept).into_owned()
    }
}

/// Reads `pipe` to its end into `tail`; a read error ends it.
async fn read_into(pipe: Option<impl AsyncRead + Unpin>, tail: &mut Tail) {
    let Some(mut pipe) = pipe else { return };
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => tail.push(&chunk[..n]),
        }
    }
}

/// Reads an `env_file`: `KEY=VALUE` lines; blank lines and `#` comments
/// are skipped, `export ` before a key is allowed, a value in matching
/// single or double quotes loses them. An error names the file and the
/// line, never a value.
pub fn parse_env_file(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("env_file {}: cannot read it: {e}", path.display()))?;
    let mut vars = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("env_file {} line {}: expected KEY=VALUE", path.display(), i + 1));
        };
        let key = key.trim();
        check_env_name(key)
            .map_err(|e| format!("env_file {} line {}: {e}", path.display(), i + 1))?;
        let value = value.trim();
        let unquoted = [('"', '"'), ('\'', '\'')]
            .iter()
            .find_map(|(a, b)| value.strip_prefix(*a).and_then(|v| v.strip_suffix(*b)))
            .filter(|_| value.len() >= 2)
            .unwrap_or(value);
        if unquoted.contains('\0') {
            return Err(format!(
                "env_file {} line {}: the value of {key} contains a NUL byte",
                path.display(),
                i + 1
            ));
        }
        vars.push((key.to_owned(), unquoted.to_owned()));
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn job(f: impl FnOnce(&mut CommandOptions)) -> CommandJob {
        let mut o = CommandOptions::default();
        f(&mut o);
        CommandJob::new("t", o)
    }

    fn shell(script: &str) -> CommandJob {
        job(|o| o.shell = Some(script.to_owned()))
    }

    async fn run(j: &CommandJob) -> OpsOutcome {
        j.execute(&CancellationToken::new(), &[]).await
    }

    #[tokio::test]
    async fn exit_codes_map_to_success_transient_and_permanent() {
        let ok = run(&shell("echo out; echo err >&2")).await;
        assert_eq!(ok.error, None);
        assert_eq!(ok.data["stdout"], "out\n");
        assert_eq!(ok.data["stderr"], "err\n");
        assert_eq!(ok.data["exit_code"], 0);

        let transient = run(&shell("exit 3")).await;
        assert_eq!(transient.error.as_deref(), Some("exited with code 3"));
        assert!(!transient.permanent);

        let permanent = run(&job(|o| {
            o.shell = Some("exit 3".into());
            o.permanent_exit_codes = vec![3, 4];
        }))
        .await;
        assert_eq!(
            permanent.error.as_deref(),
            Some("exited with code 3, a permanent exit code: no retry")
        );
        assert!(permanent.permanent);

        let killed = run(&shell("kill -9 $$")).await;
        assert_eq!(killed.error.as_deref(), Some("killed by signal SIGKILL (9)"));
        assert_eq!(killed.data["signal"], "SIGKILL");
        assert!(!killed.permanent);
    }

    #[tokio::test]
    async fn a_missing_program_is_permanent_and_named() {
        let o = run(&job(|o| o.command = Some(vec!["mscribe-no-such-program".into()]))).await;
        assert!(o.permanent);
        assert_eq!(
            o.error.as_deref(),
            Some("program \"mscribe-no-such-program\" not found on PATH")
        );
        let o = run(&job(|o| o.command = Some(vec!["/nonexistent/bin/tool".into()]))).await;
        assert!(o.permanent);
        assert!(o.error.unwrap().starts_with("program \"/nonexistent/bin/tool\" not found"));
        let o = run(&job(|o| {
            o.command = Some(vec!["true".into()]);
            o.cwd = Some("/nonexistent-dir".into());
        }))
        .await;
        assert!(o.permanent);
        assert_eq!(o.error.as_deref(), Some("cwd /nonexistent-dir is not a directory"));
    }

    #[tokio::test]
    async fn arguments_are_not_shell_words_and_env_and_cwd_apply() {
        let dir = tempfile::tempdir().unwrap();
        let env_file = dir.path().join("vars.env");
        std::fs::write(&env_file, "# comment\nexport FROM_FILE='file value'\nBOTH=file\n").unwrap();
        let j = job(|o| {
            o.command = Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                "printf '%s|%s|%s|%s|%s' \"$1\" \"$FROM_FILE\" \"$BOTH\" \"$(pwd)\" \"${MSCRIBE_SECRET_OF_SERVER:-unset}\"".into(),
                "sh".into(),
                "$HOME; rm -rf /".into(),
            ]);
            o.env.insert("BOTH".into(), Secret::new("env"));
            o.env_file = Some(env_file.clone());
            o.cwd = Some(dir.path().to_path_buf());
        });
        let out = run(&j).await;
        assert_eq!(out.error, None, "{:?}", out.data);
        let cwd = dir.path().canonicalize().unwrap();
        assert_eq!(
            out.data["stdout"],
            format!("$HOME; rm -rf /|file value|env|{}|unset", cwd.display())
        );
        // The options' Debug shows the names, never the values.
        let debug = format!("{:?}", j.options);
        assert!(debug.contains("BOTH") && !debug.contains("\"env\""), "{debug}");
    }

    #[tokio::test]
    async fn output_keeps_the_last_bytes_up_to_the_limit() {
        let j = job(|o| {
            o.shell = Some("i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done".into());
            o.output_limit = 100;
        });
        let out = run(&j).await;
        let text = out.data["stdout"].as_str().unwrap();
        assert_eq!(text.len(), 100);
        assert!(text.ends_with("line1999\n"), "{text}");
        assert_eq!(out.data["stdout_truncated"], true);
        assert!(out.data["stdout_bytes"].as_u64().unwrap() > 10_000);

        let mut t = Tail::new(4);
        t.push("aé".as_bytes());
        t.push("bcd".as_bytes());
        // "é" is cut in two at the start: its second byte is dropped.
        assert_eq!((t.text().as_str(), t.total), ("bcd", 6));
    }

    /// Cancelling sends SIGTERM to the whole group: the background child
    /// goes too.
    #[tokio::test]
    async fn cancel_terminates_the_group_and_leftovers_are_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        let j = job(|o| {
            o.shell = Some(format!("sleep 300 & echo $! > {}; wait", pid_file.display()));
            o.kill_grace = Duration::from_secs(5);
        });
        let cancel = CancellationToken::new();
        let run = j.execute(&cancel, &[]);
        let pid_file2 = pid_file.clone();
        let token = cancel.clone();
        let canceller = async move {
            while !std::fs::read_to_string(&pid_file2).is_ok_and(|s| s.ends_with('\n')) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            token.cancel();
        };
        let (out, ()) = tokio::join!(run, canceller);
        assert!(
            out.error.as_deref().unwrap().starts_with("cancelled: the process group got SIGTERM")
        );
        assert_gone(&pid_file);

        // A main process that exits leaving a child behind: the child is
        // killed, and the result says so.
        let j = shell(&format!("sleep 300 & echo $! > {}", pid_file.display()));
        let out = run_ok(&j).await;
        assert_eq!(out.data["killed_leftovers"], true);
        assert_gone(&pid_file);
    }

    /// A `kill_grace` past what the clock can add (the config refuses
    /// more than 100 years; a caller of the library may not) waits as long
    /// as it takes, and panics nowhere.
    #[tokio::test]
    async fn a_huge_kill_grace_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        let j = job(|o| {
            o.shell = Some(format!("sleep 300 & echo $! > {}; wait", pid_file.display()));
            o.kill_grace = Duration::MAX;
        });
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let pid_file2 = pid_file.clone();
        let canceller = async move {
            while !std::fs::read_to_string(&pid_file2).is_ok_and(|s| s.ends_with('\n')) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            token.cancel();
        };
        let (out, ()) = tokio::join!(j.execute(&cancel, &[]), canceller);
        assert!(out.error.as_deref().unwrap().starts_with("cancelled"), "{:?}", out.error);
        assert_gone(&pid_file);
        wait_for_group_kills().await;
    }

    /// An attempt dropped by the engine (its timeout, a cancel) leaves its
    /// group to a thread that SIGKILLs it after `kill_grace`: the job's next
    /// attempt starts its process only once that group is gone, never two
    /// attempts' processes at once.
    #[tokio::test]
    async fn the_next_attempt_starts_once_the_dropped_attempts_group_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("first.pid");
        let pid = pid_file.display();
        // The first attempt ignores SIGTERM and runs on; a later one says
        // whether the first is still alive (a zombie is not).
        let script = format!(
            "if [ -f {pid} ]; then s=$(cut -d' ' -f3 /proc/$(cat {pid})/stat 2>/dev/null); \
             case $s in ''|Z|X) echo clear;; *) echo overlap;; esac; exit 0; fi; \
             trap '' TERM; echo $$ > {pid}; while :; do sleep 1; done"
        );
        let j = CommandJob::new(
            "next-attempt-waits",
            CommandOptions {
                shell: Some(script),
                kill_grace: Duration::from_millis(1500),
                ..CommandOptions::default()
            },
        );
        let cancel = CancellationToken::new();
        let first = j.execute(&cancel, &[]);
        let started = async {
            while !std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n')) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            _ = first => panic!("the first attempt ended on its own"),
            () = started => {}
        }
        // The first attempt's future is dropped here, as at a timeout.
        let begun = Instant::now();
        let second = run(&j).await;
        assert_eq!(second.data["stdout"], "clear\n", "{:?}", second.data);
        assert!(begun.elapsed() >= Duration::from_secs(1), "{:?}", begun.elapsed());
        assert_gone(&pid_file);
    }

    /// The process whose pid `pid_file` holds is gone (or a zombie) within
    /// a few seconds: a signal is delivered asynchronously.
    fn assert_gone(pid_file: &Path) {
        let pid: i32 = std::fs::read_to_string(pid_file).unwrap().trim().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(')').map(|(_, r)| r.trim_start().chars().next());
            if !matches!(state, Some(Some(s)) if s != 'Z' && s != 'X') {
                return;
            }
            assert!(Instant::now() < deadline, "process {pid} survived: {stat}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn proc_stat_lines_are_read_past_the_command_name() {
        let line = "4242 (a (weird) name) S 1 4240 4240 0 -1 4194560";
        assert!(live_member(line, 4240));
        assert!(!live_member(line, 4242));
        assert!(!live_member("4242 (zombie) Z 1 4240 4240 0", 4240));
    }

    async fn run_ok(j: &CommandJob) -> OpsOutcome {
        let out = run(j).await;
        assert_eq!(out.error, None, "{:?}", out.data);
        out
    }

    #[test]
    fn env_files_parse_and_errors_name_the_line_not_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e");
        std::fs::write(&p, "A=1\n\n# c\nB = \"two words\"\nC=x=y\n").unwrap();
        let vars = parse_env_file(&p).unwrap();
        assert_eq!(
            vars,
            vec![
                ("A".to_owned(), "1".to_owned()),
                ("B".to_owned(), "two words".to_owned()),
                ("C".to_owned(), "x=y".to_owned())
            ]
        );
        std::fs::write(&p, "A=1\nTOKEN secret-value\n").unwrap();
        let e = parse_env_file(&p).unwrap_err();
        assert_eq!(e, format!("env_file {} line 2: expected KEY=VALUE", p.display()));
        assert!(!e.contains("secret-value"));
        std::fs::write(&p, "1X=secret-value\n").unwrap();
        let e = parse_env_file(&p).unwrap_err();
        assert!(e.contains("line 1") && !e.contains("secret-value"), "{e}");
        let e = parse_env_file(&dir.path().join("missing")).unwrap_err();
        assert!(e.starts_with("env_file ") && e.contains("cannot read it"), "{e}");
    }
}
