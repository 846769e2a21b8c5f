//! The admin token: from the config, else from `data_dir/admin_token`,
//! else generated there at first start (32 random bytes as 64 hex digits,
//! file mode 0600). The token itself is never logged.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

use crate::config::{Config, Secret};

/// Where the admin token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `admin_token` in the config file or `MSCRIBE_ADMIN_TOKEN`.
    Config,
    /// Read from this file.
    File(PathBuf),
    /// Generated now into this file.
    Generated(PathBuf),
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token file could not be read or written.
    #[error("admin token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The token file is empty.
    #[error("admin token file {0} is empty; delete it to have a new token generated")]
    Empty(PathBuf),
    /// No random bytes.
    #[error("cannot generate an admin token: {0}")]
    Random(String),
}

/// The shortest admin token `serve` takes without a warning (and the
/// security scan without a `high` finding): 32 bytes.
pub const MIN_TOKEN_BYTES: usize = 32;

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Config => f.write_str("config (admin_token or MSCRIBE_ADMIN_TOKEN)"),
            TokenSource::File(p) => write!(f, "file {}", p.display()),
            TokenSource::Generated(p) => write!(f, "generated into {}", p.display()),
        }
    }
}

/// A new token: 32 random bytes from the OS, as 64 lowercase hex digits.
pub fn generate_token() -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The admin token per the config (see the module docs); a generated one is
/// written to `data_dir/admin_token` (the directory is created).
pub fn resolve_admin_token(cfg: &Config) -> Result<(Secret, TokenSource), TokenError> {
    if let Some(t) = &cfg.admin_token {
        return Ok((t.clone(), TokenSource::Config));
    }
    load_or_generate(&cfg.token_file())
}

/// The token in `path`, or a new one written there with mode 0600.
pub fn load_or_generate(path: &Path) -> Result<(Secret, TokenSource), TokenError> {
    let io = |source| TokenError::Io { path: path.to_owned(), source };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let t = text.trim();
            if t.is_empty() {
                return Err(TokenError::Empty(path.to_owned()));
            }
            if let Ok(m) = std::fs::metadata(path)
                && m.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(path = %path.display(), mode = format!("{:04o}", m.permissions().mode() & 0o7777), "admin token file is accessible by group or others; run chmod 600");
            }
            Ok((Secret::new(t), TokenSource::File(path.to_owned())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let token = generate_token()?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            f.write_all(format!("{token}\n").as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            tracing::info!(path = %path.display(), "admin token generated (mode 0600); read it from this file");
            Ok((Secret::new(token), TokenSource::Generated(path.to_owned())))
        }
        Err(e) => Err(io(e)),
    }
}

/// Whether an `Authorization` header carries `Bearer <token>` with the
/// right token; the comparison takes the same time wherever they differ.
pub fn bearer_matches(header: Option<&str>, token: &Secret) -> bool {
    let Some(h) = header else { return false };
    let h = h.trim();
    let Some((scheme, given)) = h.split_once(' ') else { return false };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    tokens_match(given.trim(), token.expose())
}

/// Constant-time equality of two tokens (the length may leak, the content
/// does not).
pub fn tokens_match(given: &str, expected: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_read_back_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/admin_token");
        let (t1, s1) = load_or_generate(&path).unwrap();
        assert_eq!(s1, TokenSource::Generated(path.clone()));
        assert_eq!(t1.expose().len(), 64);
        assert!(t1.expose().chars().all(|c| c.is_ascii_hexdigit()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (t2, s2) = load_or_generate(&path).unwrap();
        assert_eq!(t1, t2);
        assert_eq!(s2, TokenSource::File(path.clone()));
        assert_ne!(generate_token().unwrap(), generate_token().unwrap());
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(load_or_generate(&path), Err(TokenError::Empty(_))));
    }

    #[test]
    fn bearer_parsing() {
        let t = Secret::new("abc123");
        assert!(bearer_matches(Some("Bearer abc123"), &t));
        assert!(bearer_matches(Some("bearer  abc123 "), &t));
        assert!(!bearer_matches(Some("Bearer abc124"), &t));
        assert!(!bearer_matches(Some("Bearer abc1234"), &t));
        assert!(!bearer_matches(Some("Basic abc123"), &t));
        assert!(!bearer_matches(Some("abc123"), &t));
        assert!(!bearer_matches(None, &t));
    }
}
