//! A handler's typed failure: [`JobError`], transient (retried per the
//! policy) or permanent (never retried), and [`JobResultExt`] to mark one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Whether a failed attempt is worth trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// It may pass next time (a timeout, a refused connection, a 5xx): the
    /// retry policy applies. The default.
    #[default]
    Transient,
    /// It will fail again (a missing program, a bad configuration, a 4xx):
    /// the run ends at once, with no further attempt.
    Permanent,
}

impl ErrorKind {
    /// The kind as stored: `transient` or `permanent`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::Permanent => "permanent",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "transient" => Some(ErrorKind::Transient),
            "permanent" => Some(ErrorKind::Permanent),
            _ => None,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A handler's error with its [`ErrorKind`].
///
/// `?` converts any `std::error::Error` into a transient `JobError`, keeping
/// its chain of sources in the message; [`JobError::permanent`] and
/// [`JobResultExt::permanent`] mark one that no retry can fix. Like
/// `anyhow::Error`, it is not itself a `std::error::Error`, so that the
/// conversion from every error type can exist.
///
/// ```
/// use mscribe_scheduler::{JobContext, JobError, JobResultExt};
///
/// async fn backup(_ctx: JobContext) -> Result<(), JobError> {
///     let dir = std::env::var("BACKUP_DIR").permanent()?; // a config error: no retry
///     std::fs::metadata(&dir)?; // an I/O error: transient, retried per policy
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    kind: ErrorKind,
    message: String,
}

impl JobError {
    /// A transient error (retried per the policy) with this message.
    pub fn transient(message: impl fmt::Display) -> Self {
        JobError { kind: ErrorKind::Transient, message: message.to_string() }
    }

    /// A permanent error (no retry) with this message.
    pub fn permanent(message: impl fmt::Display) -> Self {
        JobError { kind: ErrorKind::Permanent, message: message.to_string() }
    }

    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether it is permanent.
    pub fn is_permanent(&self) -> bool {
        self.kind == ErrorKind::Permanent
    }

    /// Its message, as the attempt's row stores it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with another kind.
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    /// A transient error whose message is `e` and its sources, joined by ": ".
    fn from(e: E) -> Self {
        JobError::transient(crate::recorder::error_chain(&e))
    }
}

/// Marks the error of a `Result` as permanent or transient.
///
/// ```
/// use mscribe_scheduler::{ErrorKind, JobResultExt};
///
/// let r: Result<u16, _> = "http://".parse::<u16>().permanent();
/// assert_eq!(r.unwrap_err().kind(), ErrorKind::Permanent);
/// ```
pub trait JobResultExt<T> {
    /// The error, if any, as a permanent [`JobError`]: no retry.
    fn permanent(self) -> Result<T, JobError>;

    /// The error, if any, as a transient [`JobError`]: retried per policy.
    fn transient(self) -> Result<T, JobError>;
}

impl<T, E: Into<JobError>> JobResultExt<T> for Result<T, E> {
    fn permanent(self) -> Result<T, JobError> {
        self.map_err(|e| e.into().with_kind(ErrorKind::Permanent))
    }

    fn transient(self) -> Result<T, JobError> {
        self.map_err(|e| e.into().with_kind(ErrorKind::Transient))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_std_error_converts_to_a_transient_error_keeping_its_sources() {
        fn read() -> Result<(), JobError> {
            Err(Outer(std::io::Error::other("inner")))?;
            Ok(())
        }
        let e = read().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient);
        assert_eq!(e.message(), "outer: inner");
    }

    #[test]
    fn permanent_marks_any_error_and_keeps_its_message() {
        let e = Err::<(), _>(std::io::Error::other("no such program")).permanent().unwrap_err();
        assert!(e.is_permanent());
        assert_eq!(e.to_string(), "no such program");
        let back = Err::<(), _>(e).transient().unwrap_err();
        assert_eq!(back.kind(), ErrorKind::Transient);
        for k in [ErrorKind::Transient, ErrorKind::Permanent] {
            assert_eq!(ErrorKind::parse(k.as_str()), Some(k));
        }
    }
}
