//! `temp-cleanup`: deletes old files under configured directories.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;

use mscribe_scheduler::JobError;

use super::{OpsJob, OpsOutcome, io_error_is_permanent, time_before};

/// Deletes files (and symlinks, as links) not modified for `max_age` under
/// each directory, recursively, then (optionally) the subdirectories left
/// empty. It never follows a symlink: entries are read with
/// `symlink_metadata`, a symlinked directory is removed as a link only
/// when old and never entered, and a configured directory that is itself
/// a symlink is refused. A missing directory is skipped.
///
/// A configured directory that cannot be cleaned at all (a symlink, not a
/// directory, a file system root, or unreadable for lack of permission)
/// fails the run permanently: no retry fixes it. Entries inside that
/// cannot be deleted fail it transiently.
#[derive(Debug, Clone)]
pub struct TempCleanup {
    dirs: Vec<PathBuf>,
    max_age: Duration,
    remove_empty_dirs: bool,
}

#[derive(Debug, Default)]
struct Tally {
    files: u64,
    bytes: u64,
    dirs: u64,
    errors: Vec<String>,
    /// Configured directories that cannot be cleaned as configured (not a
    /// directory, a symlink, a file system root, unreadable): no retry
    /// fixes them.
    refused: usize,
}

impl TempCleanup {
    /// Cleanup of `dirs`, deleting what is older than `max_age`.
    pub fn new(dirs: Vec<PathBuf>, max_age: Duration, remove_empty_dirs: bool) -> Self {
        TempCleanup { dirs, max_age, remove_empty_dirs }
    }

    fn clean(&self, now: DateTime<Utc>) -> Result<serde_json::Value, JobError> {
        let cutoff = time_before(now, self.max_age, "[jobs.temp-cleanup] max_age")?;
        let mut tally = Tally::default();
        let mut per_dir = Vec::new();
        for root in &self.dirs {
            let meta = match std::fs::symlink_metadata(root) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    per_dir.push(json!({ "dir": root, "skipped": "does not exist" }));
                    continue;
                }
                Err(e) => {
                    tally.refused += usize::from(io_error_is_permanent(&e));
                    tally.errors.push(format!("{}: {e}", root.display()));
                    continue;
                }
            };
            if !meta.file_type().is_dir() {
                tally.refused += 1;
                tally.errors.push(format!(
                    "{}: not a directory (a symlink is refused: cleanup never follows links)",
                    root.display()
                ));
                continue;
            }
            if root.parent().is_none() {
                tally.refused += 1;
                tally
                    .errors
                    .push(format!("{}: refusing to clean a file system root", root.display()));
                continue;
            }
            let entries = match std::fs::read_dir(root) {
                Ok(e) => e,
                Err(e) => {
                    tally.refused += usize::from(io_error_is_permanent(&e));
                    tally.errors.push(format!("{}: {e}", root.display()));
                    continue;
                }
            };
            let before = (tally.files, tally.bytes);
            // The configured directory itself is never removed, only
            // emptied: a directory is removed by the walk of its parent.
            self.clean_entries(root, entries, cutoff, &mut tally);
            per_dir.push(json!({
                "dir": root,
                "deleted_files": tally.files - before.0,
                "deleted_bytes": tally.bytes - before.1,
            }));
        }
        Ok(json!({
            "cutoff": cutoff,
            "dirs": per_dir,
            "deleted_files": tally.files,
            "deleted_bytes": tally.bytes,
            "removed_dirs": tally.dirs,
            "errors": tally.errors,
            "refused_dirs": tally.refused,
        }))
    }

    /// Cleans `dir` (already known to be a real directory); returns whether
    /// it is empty afterwards.
    fn walk(&self, dir: &Path, cutoff: DateTime<Utc>, t: &mut Tally) -> bool {
        match std::fs::read_dir(dir) {
            Ok(entries) => self.clean_entries(dir, entries, cutoff, t),
            Err(e) => {
                t.errors.push(format!("{}: {e}", dir.display()));
                false
            }
        }
    }

    /// Cleans the `entries` of `dir`; returns whether `dir` is empty afterwards.
    fn clean_entries(
        &self,
        dir: &Path,
        entries: std::fs::ReadDir,
        cutoff: DateTime<Utc>,
        t: &mut Tally,
    ) -> bool {
        let mut empty = true;
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    t.errors.push(format!("{}: {e}", dir.display()));
                    empty = false;
                    continue;
                }
            };
            let path = entry.path();
            // Never follow links: lstat, and decide on the link itself.
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    t.errors.push(format!("{}: {e}", path.display()));
                    empty = false;
                    continue;
                }
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                if !self.walk(&path, cutoff, t) || !self.remove_empty_dirs {
                    empty = false;
                    continue;
                }
                match std::fs::remove_dir(&path) {
                    Ok(()) => t.dirs += 1,
                    Err(e) => {
                        t.errors.push(format!("{}: {e}", path.display()));
                        empty = false;
                    }
                }
                continue;
            }
            let modified = meta.modified().ok().map(DateTime::<Utc>::from);
            if modified.is_some_and(|m| m < cutoff) {
                // remove_file on a symlink removes the link, not its target.
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        t.files += 1;
                        if ft.is_file() {
                            t.bytes += meta.len();
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        t.errors.push(format!("{}: {e}", path.display()));
                        empty = false;
                    }
                }
            } else {
                empty = false;
            }
        }
        empty
    }
}

#[async_trait]
impl OpsJob for TempCleanup {
    async fn run_at(&self, now: DateTime<Utc>) -> OpsOutcome {
        let this = self.clone();
        let data = match tokio::task::spawn_blocking(move || this.clean(now)).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return OpsOutcome::from_error(json!({}), e),
            Err(e) => return OpsOutcome::failed(json!({}), format!("cleanup task failed: {e}")),
        };
        let files = data["deleted_files"].as_u64().unwrap_or(0);
        let bytes = data["deleted_bytes"].as_u64().unwrap_or(0);
        let errors = data["errors"].as_array().map_or(0, Vec::len);
        let refused = data["refused_dirs"].as_u64().unwrap_or(0);
        tracing::info!(files, bytes, errors, "temp cleanup done");
        let out = if refused > 0 {
            // A configured directory that cannot be cleaned stays so until
            // the configuration or the file system changes: no retry.
            OpsOutcome::failed_permanently(
                data,
                format!(
                    "{refused} configured directories cannot be cleaned; see errors in the result"
                ),
            )
        } else if errors > 0 {
            OpsOutcome::failed(
                data,
                format!("{errors} entries could not be cleaned; see errors in the result"),
            )
        } else {
            OpsOutcome::ok(data)
        };
        out.metric("deleted_files", files as f64).metric("deleted_bytes", bytes as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{File, FileTimes};
    use std::time::SystemTime;

    fn age(path: &Path, days: u64) {
        let t = SystemTime::now() - Duration::from_secs(days * 86_400);
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_times(FileTimes::new().set_modified(t))
            .unwrap();
    }

    #[tokio::test]
    async fn deletes_old_files_and_never_follows_symlinks_out() {
        let root = tempfile::tempdir().unwrap();
        let tmp = root.path().join("tmp");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(tmp.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(tmp.join("fresh")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let old_outside = outside.join("precious.txt");
        std::fs::write(&old_outside, b"keep me").unwrap();
        age(&old_outside, 30);
        std::fs::create_dir_all(outside.join("dir")).unwrap();
        let old_in_outside_dir = outside.join("dir/also-precious");
        std::fs::write(&old_in_outside_dir, b"keep").unwrap();
        age(&old_in_outside_dir, 30);

        let old = tmp.join("old.bin");
        std::fs::write(&old, vec![0u8; 100]).unwrap();
        age(&old, 10);
        let deep_old = tmp.join("sub/deeper/old.txt");
        std::fs::write(&deep_old, b"12345").unwrap();
        age(&deep_old, 10);
        let new = tmp.join("fresh/new.txt");
        std::fs::write(&new, b"new").unwrap();
        // Links to a file and to a directory outside: the links are fresh,
        // so they stay; their targets are never touched or entered.
        std::os::unix::fs::symlink(&old_outside, tmp.join("link-to-file")).unwrap();
        std::os::unix::fs::symlink(outside.join("dir"), tmp.join("link-to-dir")).unwrap();

        let job = TempCleanup::new(
            vec![tmp.clone(), root.path().join("missing")],
            Duration::from_secs(7 * 86_400),
            true,
        );
        let out = job.run_at(Utc::now()).await;
        assert_eq!(out.error, None, "{}", out.data);
        assert_eq!(out.data["deleted_files"], 2);
        assert_eq!(out.data["deleted_bytes"], 105);
        assert_eq!(out.data["removed_dirs"], 2); // sub/deeper, then sub
        assert!(!old.exists() && !deep_old.exists() && !tmp.join("sub").exists());
        assert!(new.exists());
        assert!(old_outside.exists() && old_in_outside_dir.exists());
        assert!(tmp.join("link-to-file").symlink_metadata().is_ok());
        assert!(tmp.join("link-to-dir").symlink_metadata().is_ok());
        assert_eq!(out.data["dirs"][1]["skipped"], "does not exist");

        // Much later, the links themselves are old: removed as links only.
        let out = job.run_at(Utc::now() + chrono::Duration::days(30)).await;
        assert_eq!(out.error, None, "{}", out.data);
        assert!(tmp.join("link-to-file").symlink_metadata().is_err());
        assert!(tmp.join("link-to-dir").symlink_metadata().is_err());
        assert!(old_outside.exists() && old_in_outside_dir.exists());
        assert!(tmp.exists(), "the configured directory itself stays");
    }

    #[tokio::test]
    async fn a_symlinked_root_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let real = root.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let f = real.join("old");
        std::fs::write(&f, b"x").unwrap();
        age(&f, 30);
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let out =
            TempCleanup::new(vec![link], Duration::from_secs(1), true).run_at(Utc::now()).await;
        assert!(out.error.is_some());
        assert!(out.permanent, "a refused directory stays refused: no retry");
        assert!(f.exists());
        assert!(out.data["errors"][0].as_str().unwrap().contains("never follows links"));
    }

    #[tokio::test]
    async fn a_configured_directory_that_cannot_be_cleaned_fails_permanently() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let ok = root.path().join("ok");
        std::fs::create_dir(&ok).unwrap();
        let old = ok.join("old");
        std::fs::write(&old, b"x").unwrap();
        age(&old, 30);
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&ok, &link).unwrap();
        let dirs = vec![file.clone(), link, ok.clone(), root.path().join("missing")];
        let out = TempCleanup::new(dirs, Duration::from_secs(1), true).run_at(Utc::now()).await;
        assert!(out.permanent, "{:?}", out.error);
        assert_eq!(
            out.error.as_deref(),
            Some("2 configured directories cannot be cleaned; see errors in the result")
        );
        assert_eq!(out.data["refused_dirs"], 2);
        assert!(!old.exists(), "the usable directory is still cleaned");
        assert!(file.exists());
        // A missing directory alone is nothing to do, not an error.
        let out = TempCleanup::new(vec![root.path().join("missing")], Duration::from_secs(1), true)
            .run_at(Utc::now())
            .await;
        assert_eq!((out.error, out.permanent), (None, false));
    }

    #[tokio::test]
    async fn the_configured_directory_is_emptied_but_never_removed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cache");
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        let f = dir.join("a/b/old");
        std::fs::write(&f, b"x").unwrap();
        age(&f, 30);
        let out = TempCleanup::new(vec![dir.clone()], Duration::from_secs(86_400), true)
            .run_at(Utc::now())
            .await;
        assert_eq!(out.error, None, "{}", out.data);
        assert_eq!(
            (out.data["deleted_files"].as_u64(), out.data["removed_dirs"].as_u64()),
            (Some(1), Some(2))
        );
        assert!(dir.is_dir(), "the configured directory stays, empty");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_max_age_reaching_before_the_earliest_time_fails_permanently() {
        let root = tempfile::tempdir().unwrap();
        let forever = Duration::from_secs(1_000_000 * 366 * 86_400);
        let out =
            TempCleanup::new(vec![root.path().to_owned()], forever, true).run_at(Utc::now()).await;
        assert!(out.permanent, "{:?}", out.error);
        assert!(out.error.unwrap().starts_with("[jobs.temp-cleanup] max_age = "));
    }
}
