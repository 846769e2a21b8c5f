//! `log-rotation`: rotates `*.log` files by size or age, gzips, keeps the last N.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use mscribe_scheduler::JobError;

use super::{OpsJob, OpsOutcome, file_stamp, io_job_error, parse_file_stamp};
use crate::config::LogRotationOptions;

type Hook = Arc<dyn Fn() + Send + Sync>;

/// Rotates every regular `*.log` file directly in `log_dir` that is at
/// least `max_size` long, or non-empty with a current segment older than
/// `max_age` (the segment starts at the last rotation, or at the file's
/// creation). A rotated file is renamed `NAME.log.<UTC time>`, the writer
/// is told to reopen (the `on_rotated` hook), and the renamed file is
/// gzipped to `NAME.log.<UTC time>.gz` (mode 0600). Then only the newest
/// `keep` rotated files of each log are kept. Symlinks are ignored.
///
/// A missing `log_dir` is nothing to do. One that cannot be listed (a
/// file, or no permission) fails the run permanently: no retry fixes it.
/// A log that cannot be rotated or pruned fails it transiently.
#[derive(Clone)]
pub struct LogRotation {
    dir: PathBuf,
    options: LogRotationOptions,
    on_rotated: Option<Hook>,
}

impl std::fmt::Debug for LogRotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogRotation")
            .field("dir", &self.dir)
            .field("options", &self.options)
            .field("on_rotated", &self.on_rotated.is_some())
            .finish()
    }
}

impl LogRotation {
    /// Rotation of the logs in `dir`.
    pub fn new(dir: PathBuf, options: LogRotationOptions) -> Self {
        LogRotation { dir, options, on_rotated: None }
    }

    /// Calls `hook` after renaming a log, so its writer reopens the path.
    pub fn on_rotated(self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_rotated_opt(Some(Arc::new(hook)))
    }

    /// [`on_rotated`](Self::on_rotated) with an optional shared hook.
    pub fn on_rotated_opt(mut self, hook: Option<Arc<dyn Fn() + Send + Sync>>) -> Self {
        self.on_rotated = hook;
        self
    }

    /// The work, blocking. An error comes with the report so far.
    fn rotate_all(&self, now: DateTime<Utc>) -> Result<Value, (Value, JobError)> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(
                    json!({ "rotated": [], "deleted": [], "note": "log_dir does not exist" }),
                );
            }
            Err(e) => {
                // log_dir is there but cannot be listed: a file, or no
                // permission, is a configuration error that no retry fixes.
                let message = format!("cannot list log_dir {}: {e}", self.dir.display());
                return Err((json!({ "error": message }), io_job_error(&message, &e)));
            }
        };
        let mut logs: Vec<(String, std::fs::Metadata)> = Vec::new();
        for e in entries.filter_map(Result::ok) {
            let Ok(name) = e.file_name().into_string() else { continue };
            if !name.ends_with(".log") {
                continue;
            }
            // symlink_metadata: a symlinked "log" is not ours to rotate.
            match std::fs::symlink_metadata(e.path()) {
                Ok(m) if m.file_type().is_file() => logs.push((name, m)),
                _ => {}
            }
        }
        logs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut rotated = Vec::new();
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for (name, meta) in logs {
            let archives = self.archives(&name).map_err(|e| {
                let message = format!("cannot list {}: {e}", self.dir.display());
                (json!({ "error": message }), JobError::transient(message))
            })?;
            let segment_start = archives
                .last()
                .and_then(|(_, t)| *t)
                .or_else(|| meta.created().ok().map(DateTime::<Utc>::from));
            let age = segment_start.map(|s| (now - s).to_std().unwrap_or_default());
            let by_size = meta.len() >= self.options.max_size;
            let by_age = meta.len() > 0 && age.is_some_and(|a| a >= self.options.max_age);
            if by_size || by_age {
                match self.rotate_one(&name, now) {
                    Ok(archive) => rotated.push(json!({
                        "log": name,
                        "archive": archive,
                        "bytes": meta.len(),
                        "reason": if by_size { "size" } else { "age" },
                    })),
                    Err(e) => errors.push(e),
                }
            }
            match self.prune(&name) {
                Ok(d) => deleted.extend(d),
                Err(e) => errors.push(format!("pruning archives of {name}: {e}")),
            }
        }
        let failed = !errors.is_empty();
        let data = json!({ "rotated": rotated, "deleted": deleted, "errors": errors });
        if failed {
            Err((data, JobError::transient("log rotation failed; see errors in the result")))
        } else {
            Ok(data)
        }
    }

    /// Rotated files of `log`, oldest first, with their time.
    fn archives(&self, log: &str) -> std::io::Result<Vec<(String, Option<DateTime<Utc>>)>> {
        let prefix = format!("{log}.");
        let mut out: Vec<(String, Option<DateTime<Utc>>)> = std::fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| {
                let rest = n.strip_prefix(&prefix)?;
                let stamp = rest.strip_suffix(".gz").unwrap_or(rest);
                let t = parse_file_stamp(stamp)?;
                Some((n.clone(), Some(t)))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn rotate_one(&self, name: &str, now: DateTime<Utc>) -> Result<String, String> {
        let src = self.dir.join(name);
        let mut stamp = file_stamp(now);
        let mut n = 0;
        while self.dir.join(format!("{name}.{stamp}")).exists()
            || self.dir.join(format!("{name}.{stamp}.gz")).exists()
        {
            n += 1;
            stamp = file_stamp(now + chrono::Duration::milliseconds(n));
        }
        let renamed = self.dir.join(format!("{name}.{stamp}"));
        std::fs::rename(&src, &renamed).map_err(|e| format!("cannot rename {name}: {e}"))?;
        if let Some(h) = &self.on_rotated {
            h();
        }
        if !self.options.compress {
            return Ok(file_name(&renamed));
        }
        let gz = self.dir.join(format!("{name}.{stamp}.gz"));
        gzip(&renamed, &gz).map_err(|e| format!("cannot compress {}: {e}", renamed.display()))?;
        std::fs::remove_file(&renamed)
            .map_err(|e| format!("cannot remove {}: {e}", renamed.display()))?;
        Ok(file_name(&gz))
    }

    fn prune(&self, log: &str) -> std::io::Result<Vec<String>> {
        let archives = self.archives(log)?;
        let cut = archives.len().saturating_sub(self.options.keep);
        let mut deleted = Vec::new();
        for (n, _) in &archives[..cut] {
            std::fs::remove_file(self.dir.join(n))?;
            deleted.push(n.clone());
        }
        Ok(deleted)
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Gzips `src` to `dest` (through a `.partial` file, mode 0600).
fn gzip(src: &Path, dest: &Path) -> std::io::Result<()> {
    let partial = dest.with_extension("gz.partial");
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)?;
    let mut enc = GzEncoder::new(BufWriter::new(out), Compression::default());
    std::io::copy(&mut BufReader::new(File::open(src)?), &mut enc)?;
    let mut w = enc.finish()?;
    w.flush()?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&partial, dest)
}

#[async_trait]
impl OpsJob for LogRotation {
    async fn run_at(&self, now: DateTime<Utc>) -> OpsOutcome {
        let this = self.clone();
        let res = tokio::task::spawn_blocking(move || this.rotate_all(now)).await;
        match res {
            Ok(Ok(data)) => {
                let n = data["rotated"].as_array().map_or(0, Vec::len);
                if n > 0 {
                    tracing::info!(rotated = n, "logs rotated");
                }
                OpsOutcome::ok(data).metric("rotated", n as f64)
            }
            Ok(Err((data, e))) => OpsOutcome::from_error(data, e),
            Err(e) => OpsOutcome::failed(json!({}), format!("log rotation task failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    fn opts(max_size: u64, keep: usize) -> LogRotationOptions {
        LogRotationOptions { max_size, keep, ..LogRotationOptions::default() }
    }

    #[tokio::test]
    async fn rotates_by_size_compresses_and_keeps_last_n() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("mscribe.log");
        let reopened = Arc::new(AtomicUsize::new(0));
        let r2 = reopened.clone();
        let job = LogRotation::new(dir.path().to_owned(), opts(100, 2)).on_rotated(move || {
            r2.fetch_add(1, Ordering::SeqCst);
        });
        std::fs::write(dir.path().join("small.log"), b"tiny").unwrap();
        std::fs::write(dir.path().join("notes.txt"), vec![b'x'; 500]).unwrap();
        let t0 = Utc::now();
        for i in 0..3 {
            std::fs::write(&log, format!("line {i}\n").repeat(20)).unwrap();
            let out = job.run_at(t0 + chrono::Duration::hours(i)).await;
            assert_eq!(out.error, None, "{:?}", out.data);
            assert_eq!(out.data["rotated"].as_array().unwrap().len(), 1);
        }
        assert_eq!(reopened.load(Ordering::SeqCst), 3);
        let left = names(dir.path());
        let archives: Vec<&String> =
            left.iter().filter(|n| n.starts_with("mscribe.log.")).collect();
        assert_eq!(archives.len(), 2, "{left:?}");
        assert!(archives.iter().all(|n| n.ends_with(".gz")));
        assert!(left.contains(&"small.log".to_owned()) && left.contains(&"notes.txt".to_owned()));
        assert!(!log.exists());
        // The newest archive holds the last content, compressed.
        let mut s = String::new();
        flate2::read::GzDecoder::new(File::open(dir.path().join(archives[1])).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        assert!(s.starts_with("line 2\n"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(archives[1])).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[tokio::test]
    async fn rotates_by_age_but_not_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.log"), b"some lines\n").unwrap();
        std::fs::write(dir.path().join("empty.log"), b"").unwrap();
        let job = LogRotation::new(dir.path().to_owned(), opts(1 << 20, 5));
        let now = Utc::now();
        let out = job.run_at(now).await;
        assert_eq!(out.data["rotated"].as_array().unwrap().len(), 0);
        let out = job.run_at(now + chrono::Duration::days(2)).await;
        let rotated = out.data["rotated"].as_array().unwrap();
        assert_eq!(rotated.len(), 1);
        assert_eq!(rotated[0]["log"], "a.log");
        assert_eq!(rotated[0]["reason"], "age");
        // The new segment starts at the rotation: not old yet a day later.
        std::fs::write(dir.path().join("a.log"), b"more\n").unwrap();
        let out = job.run_at(now + chrono::Duration::days(2) + chrono::Duration::hours(12)).await;
        assert_eq!(out.data["rotated"].as_array().unwrap().len(), 0);
    }

    #[tokio::test]
    async fn symlinked_logs_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("other.log");
        std::fs::write(&target, vec![b'x'; 1000]).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("link.log")).unwrap();
        let job = LogRotation::new(dir.path().to_owned(), opts(10, 5));
        let out = job.run_at(Utc::now()).await;
        assert_eq!(out.data["rotated"].as_array().unwrap().len(), 0);
        assert!(target.exists());
    }

    #[tokio::test]
    async fn a_log_dir_that_cannot_be_listed_fails_permanently() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("logs");
        std::fs::write(&file, b"a file where log_dir should be").unwrap();
        let out = LogRotation::new(file.clone(), opts(10, 5)).run_at(Utc::now()).await;
        assert!(out.permanent, "{:?}", out.error);
        let error = out.error.unwrap();
        assert!(error.starts_with(&format!("cannot list log_dir {}: ", file.display())), "{error}");
        assert_eq!(out.data["error"], error.as_str());
        // A missing log_dir is nothing to do.
        let out =
            LogRotation::new(dir.path().join("missing"), opts(10, 5)).run_at(Utc::now()).await;
        assert_eq!((out.error, out.permanent), (None, false));
    }
}
