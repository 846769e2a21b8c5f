//! Build script: stamps the git commit into the binary as
//! `MSCRIBE_BUILD_COMMIT`, read by `mscribe_build_info{version,commit}`.
//!
//! The commit is `$MSCRIBE_BUILD_COMMIT` when set (a packager that builds
//! outside git), else `git rev-parse --short=12 HEAD`, else `unknown` (a
//! source package, or no git on PATH). A build never fails for it.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=MSCRIBE_BUILD_COMMIT");
    let commit = match std::env::var("MSCRIBE_BUILD_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_owned(),
        _ => {
            // Rebuild when HEAD moves: HEAD itself, the branch it points to,
            // and packed refs (paths from git, so a worktree works too).
            if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
                println!("cargo:rerun-if-changed={}", Path::new(&dir).join("HEAD").display());
            }
            if let (Some(common), Some(reference)) = (
                git(&["rev-parse", "--git-common-dir"]),
                git(&["rev-parse", "--symbolic-full-name", "HEAD"]),
            ) {
                let common = Path::new(&common);
                for p in [common.join(&reference), common.join("packed-refs")] {
                    if p.exists() {
                        println!("cargo:rerun-if-changed={}", p.display());
                    }
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
        }
    };
    // Label values are free text, but keep the stamp to one printable line.
    let commit: String = commit.chars().filter(|c| !c.is_control()).take(64).collect();
    println!("cargo:rustc-env=MSCRIBE_BUILD_COMMIT={commit}");
}
