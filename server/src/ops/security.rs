//! `security-scan`: permissions of secrets and the database, token strength.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::{OpsJob, OpsOutcome};
use crate::config::Secret;

/// How bad a finding is. A `high` finding fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Low,
    /// Should be fixed.
    Medium,
    /// Must be fixed: a secret or the data is exposed.
    High,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// Which check: `file_permissions`, `directory_permissions`, `token_strength`, `config_secrets`.
    pub check: &'static str,
    /// The file, if the finding is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Checks the deployment:
///
/// - secret files (the admin token file, `extra_paths`): readable or
///   writable by group or others is `high`;
/// - the SQLite database and its `-wal`/`-shm` files, and every backup:
///   world-readable is `high`, group-readable `medium`;
/// - the config file: group/world-readable is `high` when it holds a
///   secret (`admin_token`, a database password), else `low`;
/// - directories (data, backup, log): world-writable is `high`;
/// - the admin token: shorter than `min_token_length` is `high`, fewer than
///   8 distinct characters `medium`.
///
/// Missing files are not findings. The run fails when any finding is high,
/// permanently: what the scan found stays until someone fixes it, so a
/// retry would only find it again.
#[derive(Debug, Clone)]
pub struct SecurityScan {
    /// The config file read at start.
    pub config_file: Option<PathBuf>,
    /// The SQLite database file.
    pub database_file: Option<PathBuf>,
    /// Files holding secrets.
    pub secret_files: Vec<PathBuf>,
    /// Directories that must not be world-writable.
    pub directories: Vec<PathBuf>,
    /// Where backups are (each file is checked like the database).
    pub backup_dir: Option<PathBuf>,
    /// The admin token in use.
    pub admin_token: Option<Secret>,
    /// The shortest acceptable token.
    pub min_token_length: usize,
}

fn mode_of(p: &Path) -> Option<u32> {
    std::fs::symlink_metadata(p).ok().map(|m| m.permissions().mode() & 0o7777)
}

impl SecurityScan {
    /// Runs every check; returns the findings and the files checked.
    pub fn scan(&self) -> (Vec<Finding>, Vec<PathBuf>) {
        let mut findings = Vec::new();
        let mut checked = Vec::new();
        let mut file = |findings: &mut Vec<Finding>, p: &Path, kind: &str, secret: bool| {
            let Some(mode) = mode_of(p) else { return };
            checked.push(p.to_path_buf());
            let fix = format!("run `chmod 600 {}`", p.display());
            if secret && mode & 0o077 != 0 {
                findings.push(Finding {
                    severity: Severity::High,
                    check: "file_permissions",
                    path: Some(p.to_path_buf()),
                    message: format!(
                        "{kind} is accessible by group or others (mode {mode:04o}); {fix}"
                    ),
                });
            } else if !secret && mode & 0o004 != 0 {
                findings.push(Finding {
                    severity: Severity::High,
                    check: "file_permissions",
                    path: Some(p.to_path_buf()),
                    message: format!("{kind} is world-readable (mode {mode:04o}); {fix}"),
                });
            } else if !secret && mode & 0o040 != 0 {
                findings.push(Finding {
                    severity: Severity::Medium,
                    check: "file_permissions",
                    path: Some(p.to_path_buf()),
                    message: format!("{kind} is group-readable (mode {mode:04o}); {fix}"),
                });
            }
        };
        for p in &self.secret_files {
            file(&mut findings, p, "secret file", true);
        }
        if let Some(db) = &self.database_file {
            file(&mut findings, db, "database file", false);
            for suffix in ["-wal", "-shm"] {
                let mut s = db.clone().into_os_string();
                s.push(suffix);
                file(&mut findings, Path::new(&s), "database file", false);
            }
        }
        if let Some(dir) = &self.backup_dir
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            let mut backups: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("mscribe-"))
                })
                .collect();
            backups.sort();
            for b in backups {
                file(&mut findings, &b, "backup file", false);
            }
        }
        if let Some(cfg) = &self.config_file {
            let text = std::fs::read_to_string(cfg).unwrap_or_default();
            let has_secret = config_has_secret(&text);
            if let Some(mode) = mode_of(cfg) {
                checked.push(cfg.clone());
                if mode & 0o044 != 0 {
                    findings.push(Finding {
                        severity: if has_secret { Severity::High } else { Severity::Low },
                        check: "config_secrets",
                        path: Some(cfg.clone()),
                        message: if has_secret {
                            format!(
                                "config file holds a secret (admin_token or a database password) and is readable by group or others (mode {mode:04o}); run `chmod 600 {}` or move the secret to MSCRIBE_ADMIN_TOKEN / MSCRIBE_DATABASE_URL",
                                cfg.display()
                            )
                        } else {
                            format!("config file is readable by group or others (mode {mode:04o}); it holds no secret")
                        },
                    });
                }
            }
        }
        let dirs: BTreeSet<&PathBuf> = self.directories.iter().collect();
        for d in dirs {
            let Some(mode) = mode_of(d) else { continue };
            checked.push(d.clone());
            if mode & 0o002 != 0 && mode & 0o1000 == 0 {
                findings.push(Finding {
                    severity: Severity::High,
                    check: "directory_permissions",
                    path: Some(d.clone()),
                    message: format!(
                        "directory is world-writable (mode {mode:04o}): anyone can replace its files; run `chmod o-w {}`",
                        d.display()
                    ),
                });
            }
        }
        match &self.admin_token {
            None => findings.push(Finding {
                severity: Severity::Medium,
                check: "token_strength",
                path: None,
                message: "no admin token is configured".to_owned(),
            }),
            Some(t) => {
                let len = t.expose().chars().count();
                let distinct = t.expose().chars().collect::<BTreeSet<_>>().len();
                if len < self.min_token_length {
                    findings.push(Finding {
                        severity: Severity::High,
                        check: "token_strength",
                        path: None,
                        message: format!(
                            "admin token is {len} characters long, shorter than {}; unset admin_token to have one generated, or set a longer one",
                            self.min_token_length
                        ),
                    });
                } else if distinct < 8 {
                    findings.push(Finding {
                        severity: Severity::Medium,
                        check: "token_strength",
                        path: None,
                        message: format!("admin token uses only {distinct} distinct characters; use a random token"),
                    });
                }
            }
        }
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        (findings, checked)
    }
}

/// Whether config text holds a secret: `admin_token`, or a database URL
/// with a password.
fn config_has_secret(text: &str) -> bool {
    let Ok(table) = text.parse::<toml::Table>() else { return false };
    if table.get("admin_token").is_some() {
        return true;
    }
    table
        .get("database_url")
        .and_then(|v| v.as_str())
        .and_then(|u| u.split_once("://"))
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(""))
        .is_some_and(|auth| auth.rsplit_once('@').is_some_and(|(user, _)| user.contains(':')))
}

#[async_trait]
impl OpsJob for SecurityScan {
    async fn run_at(&self, _now: DateTime<Utc>) -> OpsOutcome {
        let (findings, checked) = self.scan();
        let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
        let (high, medium, low) =
            (count(Severity::High), count(Severity::Medium), count(Severity::Low));
        for f in &findings {
            match f.severity {
                Severity::High => {
                    tracing::error!(
                        check = f.check,
                        path = f.path.as_ref().map(|p| display(p.display())),
                        "security: {}",
                        f.message
                    )
                }
                Severity::Medium => {
                    tracing::warn!(
                        check = f.check,
                        path = f.path.as_ref().map(|p| display(p.display())),
                        "security: {}",
                        f.message
                    )
                }
                Severity::Low => {
                    tracing::info!(
                        check = f.check,
                        path = f.path.as_ref().map(|p| display(p.display())),
                        "security: {}",
                        f.message
                    )
                }
            }
        }
        let data = json!({
            "findings": findings,
            "high": high,
            "medium": medium,
            "low": low,
            "checked": checked,
        });
        let out = if high > 0 {
            // A finding is a property of the deployment (a file's mode, the
            // token): it stays until someone fixes it, so retrying the scan
            // finds it again. Permanent.
            OpsOutcome::failed_permanently(
                data,
                format!("{high} high-severity security finding(s); see the result"),
            )
        } else {
            OpsOutcome::ok(data)
        };
        out.metric("high", high as f64).metric("medium", medium as f64).metric("low", low as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn scan_of(dir: &Path, token: &str) -> SecurityScan {
        SecurityScan {
            config_file: Some(dir.join("mscribe.toml")),
            database_file: Some(dir.join("mscribe.db")),
            secret_files: vec![dir.join("data/admin_token")],
            directories: vec![dir.join("data"), dir.join("backups")],
            backup_dir: Some(dir.join("backups")),
            admin_token: Some(Secret::new(token)),
            min_token_length: crate::token::MIN_TOKEN_BYTES,
        }
    }

    #[tokio::test]
    async fn a_tight_deployment_passes_and_a_loose_one_fails() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("data")).unwrap();
        std::fs::create_dir_all(d.join("backups")).unwrap();
        chmod(&d.join("data"), 0o700);
        chmod(&d.join("backups"), 0o700);
        for (f, text) in [
            ("mscribe.toml", "admin_token = \"abc\"\n"),
            ("mscribe.db", "db"),
            ("data/admin_token", "t"),
            ("backups/mscribe-20260101T020000.000Z.db", "b"),
        ] {
            std::fs::write(d.join(f), text).unwrap();
            chmod(&d.join(f), 0o600);
        }
        let token = "0123456789abcdef0123456789abcdef";
        let out = scan_of(d, token).run_at(Utc::now()).await;
        assert_eq!(out.error, None, "{}", out.data);
        assert!(!out.permanent);
        assert_eq!(out.data["findings"], json!([]));
        assert_eq!(out.data["checked"].as_array().unwrap().len(), 6);

        chmod(&d.join("data/admin_token"), 0o640);
        chmod(&d.join("mscribe.db"), 0o640);
        chmod(&d.join("backups/mscribe-20260101T020000.000Z.db"), 0o644);
        chmod(&d.join("mscribe.toml"), 0o644);
        chmod(&d.join("backups"), 0o777);
        let out = scan_of(d, "short").run_at(Utc::now()).await;
        assert!(out.error.as_deref().unwrap().starts_with("5 high-severity"), "{:?}", out.error);
        let findings: Vec<(String, String)> = out.data["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["severity"].as_str().unwrap().to_owned(),
                    f["check"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            findings,
            vec![
                s("high", "file_permissions"), // token file 0640
                s("high", "file_permissions"), // backup world-readable
                s("high", "config_secrets"),   // config with a token, 0644
                s("high", "directory_permissions"),
                s("high", "token_strength"),
                s("medium", "file_permissions"), // database group-readable
            ]
        );
        assert_eq!(out.data["high"], 5);
        assert_eq!(out.data["medium"], 1);
    }

    #[tokio::test]
    async fn a_high_finding_fails_the_scan_permanently_and_a_medium_one_passes() {
        let dir = tempfile::tempdir().unwrap();
        let mut scan = scan_of(dir.path(), "short");
        let out = scan.run_at(Utc::now()).await;
        assert!(out.error.as_deref().unwrap().starts_with("1 high-severity"), "{:?}", out.error);
        assert!(out.permanent, "a retry would find the same short token");
        assert_eq!(
            out.into_job_result().error_kind(),
            Some(mscribe_scheduler::ErrorKind::Permanent)
        );
        scan.admin_token = None; // medium: no token configured
        let out = scan.run_at(Utc::now()).await;
        assert_eq!((out.error, out.permanent), (None, false));
        assert_eq!(out.data["medium"], 1);
    }

    #[test]
    fn secrets_in_config_text() {
        assert!(config_has_secret("admin_token = \"x\""));
        assert!(config_has_secret("database_url = \"postgres://u:pw@h/db\""));
        assert!(!config_has_secret("database_url = \"postgres://u@h/db\""));
        assert!(!config_has_secret("listen = \"127.0.0.1:1\""));
    }
}
