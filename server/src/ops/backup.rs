//! `database-backup`: SQLite online backup, or `pg_dump` for Postgres.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use mscribe_scheduler::JobError;

use super::{OpsJob, OpsOutcome, file_stamp, io_job_error};
use crate::config::BackupOptions;
use crate::db::Database;

const PREFIX: &str = "mscribe-";

/// Backs the database up into `backup_dir` as `mscribe-<UTC time>.db`
/// (SQLite, through the online backup API: a consistent copy while the
/// store keeps writing) or `mscribe-<UTC time>.pgdump` (`pg_dump
/// --format=custom`; without `pg_dump` on the PATH the run fails, naming
/// the program it looked for: a backup job that cannot back up must not
/// look like one that did). Each backup is verified
/// (SQLite: opened read-only and `PRAGMA integrity_check` must say `ok`;
/// Postgres: `pg_restore --list` must read it) before the oldest beyond
/// `keep` are deleted. Files are created with mode 0600.
///
/// Failures no retry can fix end the run at once (permanent): `pg_dump`
/// not found or not runnable, a `pg_dump` older than the server, a
/// `backup_dir` that cannot be created or written (a file in the way, no
/// permission, a read-only file system). The rest (the database busy or
/// unreachable, a full disk, a failed verification) are retried per the
/// job's `retry` policy.
#[derive(Debug, Clone)]
pub struct DatabaseBackup {
    db: Database,
    dir: PathBuf,
    options: BackupOptions,
}

impl DatabaseBackup {
    /// A backup of `db` into `dir`.
    pub fn new(db: Database, dir: PathBuf, options: BackupOptions) -> Self {
        DatabaseBackup { db, dir, options }
    }

    async fn sqlite(&self, src: PathBuf, now: DateTime<Utc>) -> OpsOutcome {
        let file = self.dir.join(format!("{PREFIX}{}.db", file_stamp(now)));
        let (dest, verify) = (file.clone(), self.options.verify);
        let res = tokio::task::spawn_blocking(move || -> Result<Value, JobError> {
            let bytes = backup_sqlite(&src, &dest)?;
            let mut data = json!({ "file": dest, "bytes": bytes });
            if verify {
                match verify_sqlite_backup(&dest) {
                    Ok(rows) => {
                        data["verified"] = json!(true);
                        data["integrity_check"] = json!("ok");
                        data["executions"] = json!(rows);
                    }
                    Err(e) => {
                        let bad = dest.with_extension("db.corrupt");
                        let _ = std::fs::rename(&dest, &bad);
                        return Err(JobError::transient(format!(
                            "backup {} failed verification: {e}; kept as {}",
                            dest.display(),
                            bad.display()
                        )));
                    }
                }
            }
            Ok(data)
        })
        .await;
        let data = match res {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return OpsOutcome::from_error(json!({ "file": file }), e),
            Err(e) => {
                return OpsOutcome::failed(
                    json!({ "file": file }),
                    format!("backup task failed: {e}"),
                );
            }
        };
        self.finish(data, ".db")
    }

    async fn postgres(&self, url: &str, now: DateTime<Utc>) -> OpsOutcome {
        let Some(pg_dump) = find_program(&self.options.pg_dump) else {
            // Installing a program is no retry's business: permanent.
            return OpsOutcome::failed_permanently(
                json!({ "pg_dump": self.options.pg_dump }),
                format!(
                    "{} not found on PATH: no backup was made; install the PostgreSQL client \
                     tools, or set [jobs.database-backup] pg_dump to its path",
                    self.options.pg_dump
                ),
            );
        };
        let file = self.dir.join(format!("{PREFIX}{}.pgdump", file_stamp(now)));
        let partial = file.with_extension("pgdump.partial");
        // Create the file 0600 first; pg_dump writes into it.
        if let Err(e) = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
        {
            let message = format!("cannot create {}: {e}", partial.display());
            return OpsOutcome::from_error(json!({ "file": file }), io_job_error(message, &e));
        }
        let (url_no_pw, password) = split_password(url);
        let mut cmd = tokio::process::Command::new(&pg_dump);
        cmd.arg("--format=custom")
            .arg("--no-password")
            .arg(format!("--file={}", partial.display()))
            .arg(format!("--dbname={url_no_pw}"))
            .kill_on_drop(true);
        if let Some(pw) = password {
            cmd.env("PGPASSWORD", pw);
        }
        let out = match cmd.output().await {
            Ok(o) => o,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                let message = format!("cannot run {}: {e}", pg_dump.display());
                // Not there any more, not executable, not a program: the
                // configured pg_dump is unusable until someone fixes it.
                let unusable = matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) || e.raw_os_error() == Some(nix::errno::Errno::ENOEXEC as i32);
                return if unusable {
                    OpsOutcome::failed_permanently(json!({ "file": file }), message)
                } else {
                    OpsOutcome::failed(json!({ "file": file }), message)
                };
            }
        };
        if !out.status.success() {
            let _ = std::fs::remove_file(&partial);
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            let data = json!({ "file": file, "pg_dump": pg_dump });
            let message = format!("pg_dump failed ({}): {stderr}", out.status);
            // A pg_dump older than the server refuses to dump it, every
            // time: the client tools need an upgrade. Anything else (the
            // server down or restarting, a lock, ...) may pass next time.
            return if stderr.contains("server version mismatch") {
                OpsOutcome::failed_permanently(data, message)
            } else {
                OpsOutcome::failed(data, message)
            };
        }
        let mut data = json!({ "file": file, "pg_dump": pg_dump });
        if self.options.verify {
            match verify_pg_dump(&partial, &pg_dump).await {
                Ok(how) => {
                    data["verified"] = json!(true);
                    data["verified_with"] = json!(how);
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return OpsOutcome::failed(data, format!("backup failed verification: {e}"));
                }
            }
        }
        if let Err(e) = std::fs::rename(&partial, &file) {
            return OpsOutcome::failed(data, format!("cannot rename {}: {e}", partial.display()));
        }
        data["bytes"] = json!(std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0));
        self.finish(data, ".pgdump")
    }

    /// Deletes the oldest backups beyond `keep` and completes the report.
    fn finish(&self, mut data: Value, ext: &str) -> OpsOutcome {
        match prune_backups(&self.dir, ext, self.options.keep) {
            Ok((kept, deleted)) => {
                data["kept"] = json!(kept);
                data["deleted"] = json!(deleted);
                let bytes = data["bytes"].as_u64().unwrap_or(0) as f64;
                tracing::info!(
                    file = data["file"].as_str().unwrap_or_default(),
                    kept,
                    deleted = deleted.len(),
                    "database backed up"
                );
                OpsOutcome::ok(data).metric("bytes", bytes).metric("kept", kept as f64)
            }
            Err(e) => OpsOutcome::failed(
                data,
                format!("backup written, but pruning old backups failed: {e}"),
            ),
        }
    }
}

#[async_trait]
impl OpsJob for DatabaseBackup {
    async fn run_at(&self, now: DateTime<Utc>) -> OpsOutcome {
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            // A file in the way, no permission, a read-only file system: a
            // configuration error, permanent. A full disk may clear.
            let message = format!("cannot create backup_dir {}: {e}", self.dir.display());
            return OpsOutcome::from_error(json!({}), io_job_error(message, &e));
        }
        match &self.db {
            Database::Sqlite { path: Some(p), .. } => self.sqlite(p.clone(), now).await,
            Database::Sqlite { path: None, .. } => OpsOutcome::ok(json!({
                "skipped": true,
                "reason": "the database is in memory; there is no file to back up",
            })),
            Database::Postgres { url, .. } => self.postgres(url, now).await,
        }
    }
}

/// Copies the SQLite database `src` to `dest` with the online backup API
/// (one step: a consistent snapshot even while another connection
/// writes). `dest` is created with mode 0600 and written through a
/// `.partial` file renamed at the end. Returns its size.
pub fn backup_sqlite_file(src: &Path, dest: &Path) -> Result<u64, String> {
    backup_sqlite(src, dest).map_err(|e| e.message().to_owned())
}

/// [`backup_sqlite_file`] with the kind of its error: a `.partial` file
/// that cannot be created for lack of permission (or on a read-only file
/// system) is permanent, the rest transient.
fn backup_sqlite(src: &Path, dest: &Path) -> Result<u64, JobError> {
    let partial = dest.with_extension("db.partial");
    let _ = std::fs::remove_file(&partial);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| io_job_error(format!("cannot create {}: {e}", partial.display()), &e))?;
    let run = || -> rusqlite::Result<()> {
        let from = rusqlite::Connection::open_with_flags(
            src,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        from.busy_timeout(Duration::from_secs(10))?;
        let mut to = rusqlite::Connection::open(&partial)?;
        {
            // All pages in one step: one read transaction on the source, so
            // the copy is a consistent snapshot. Busy/locked: try again.
            let b = rusqlite::backup::Backup::new(&from, &mut to)?;
            let mut tries = 0;
            loop {
                match b.step(-1)? {
                    rusqlite::backup::StepResult::Done => break,
                    rusqlite::backup::StepResult::More if tries < 1000 => {}
                    _ if tries < 1000 => std::thread::sleep(Duration::from_millis(10)),
                    other => {
                        return Err(rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                            Some(format!("backup did not complete: {other:?}")),
                        ));
                    }
                }
                tries += 1;
            }
        }
        // The copy keeps the source's WAL mode; a backup is one plain file.
        to.pragma_update(None, "journal_mode", "DELETE")?;
        Ok(())
    };
    if let Err(e) = run() {
        let _ = std::fs::remove_file(&partial);
        return Err(JobError::transient(format!("backup of {} failed: {e}", src.display())));
    }
    std::fs::rename(&partial, dest)
        .map_err(|e| JobError::transient(format!("cannot rename {}: {e}", partial.display())))?;
    Ok(std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0))
}

/// Opens a SQLite backup read-only and runs `PRAGMA integrity_check`;
/// returns how many execution rows it holds (the storage crate's
/// [`verify_sqlite_file`](mscribe_storage::verify_sqlite_file)).
pub fn verify_sqlite_backup(path: &Path) -> Result<i64, String> {
    mscribe_storage::verify_sqlite_file(path)
}

async fn verify_pg_dump(file: &Path, pg_dump: &Path) -> Result<&'static str, String> {
    let mut magic = [0u8; 5];
    std::fs::File::open(file)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    if &magic != b"PGDMP" {
        return Err(format!("{} is not a pg_dump custom-format archive", file.display()));
    }
    let pg_restore = pg_dump.with_file_name("pg_restore");
    let pg_restore =
        if pg_restore.is_file() { Some(pg_restore) } else { find_program("pg_restore") };
    let Some(pg_restore) = pg_restore else { return Ok("header") };
    let out = tokio::process::Command::new(&pg_restore)
        .arg("--list")
        .arg(file)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", pg_restore.display()))?;
    if !out.status.success() {
        return Err(format!(
            "pg_restore --list failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok("pg_restore --list")
}

/// Deletes all but the newest `keep` backups with extension `ext`; returns
/// how many remain and the deleted names.
fn prune_backups(dir: &Path, ext: &str, keep: usize) -> std::io::Result<(usize, Vec<String>)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            n.strip_prefix(PREFIX)
                .and_then(|r| r.strip_suffix(ext))
                .is_some_and(|stamp| super::parse_file_stamp(stamp).is_some())
        })
        .collect();
    names.sort();
    let cut = names.len().saturating_sub(keep);
    let deleted: Vec<String> = names.drain(..cut).collect();
    for n in &deleted {
        std::fs::remove_file(dir.join(n))?;
    }
    Ok((names.len(), deleted))
}

/// Finds a program: a path with a slash as is, else on `PATH`.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()))
}

/// Splits the password out of `postgres://user:pw@host/db`, so it goes to
/// `pg_dump` through `PGPASSWORD` instead of its command line.
fn split_password(url: &str) -> (String, Option<String>) {
    let Some(scheme_end) = url.find("://") else { return (url.to_owned(), None) };
    let rest = &url[scheme_end + 3..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..auth_end].rfind('@') else { return (url.to_owned(), None) };
    let userinfo = &rest[..at];
    let Some((user, pw)) = userinfo.split_once(':') else { return (url.to_owned(), None) };
    (format!("{}{user}{}", &url[..scheme_end + 3], &rest[at..]), Some(pw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_goes_to_the_environment() {
        assert_eq!(
            split_password("postgres://u:s3cret@h:5432/db?sslmode=disable"),
            ("postgres://u@h:5432/db?sslmode=disable".to_owned(), Some("s3cret".to_owned()))
        );
        assert_eq!(split_password("postgres://u@h/db"), ("postgres://u@h/db".to_owned(), None));
    }

    #[test]
    fn prune_keeps_the_newest_and_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "mscribe-20260101T020000.000Z.db",
            "mscribe-20260102T020000.000Z.db",
            "mscribe-20260103T020000.000Z.db",
            "mscribe-20260103T020000.000Z.db.corrupt",
            "notes.db",
            "mscribe-20260101T020000.000Z.pgdump",
        ] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let (kept, deleted) = prune_backups(dir.path(), ".db", 2).unwrap();
        assert_eq!(kept, 2);
        assert_eq!(deleted, vec!["mscribe-20260101T020000.000Z.db"]);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left.len(), 5);
    }
}
