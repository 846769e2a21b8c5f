//! Mapping rusqlite errors to the engine's and the crate's errors.

use std::fmt;
use std::sync::Arc;

use mscribe_scheduler::StoreError;
use rusqlite::ErrorCode;

use crate::error::Error;

/// Whether a failure may go away by itself: a lock held too long, I/O,
/// a full disk, a file that cannot be opened or written right now.
pub(crate) fn is_transient(e: &rusqlite::Error) -> bool {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => matches!(
            f.code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::OutOfMemory
                | ErrorCode::ReadOnly
        ),
        _ => false,
    }
}

/// An operation on an open store failed.
pub(crate) fn store_error(what: &str, e: rusqlite::Error) -> StoreError {
    let message = format!("sqlite {what} failed: {e}");
    if is_transient(&e) {
        StoreError::unavailable(message, e)
    } else {
        StoreError::rejected(message, e)
    }
}

/// The same error for every writer of a group whose commit failed.
pub(crate) fn shared_store_error(what: &str, e: &Arc<rusqlite::Error>) -> StoreError {
    let message = format!("sqlite {what} failed: {e}");
    let source = SharedError(e.clone());
    if is_transient(e) {
        StoreError::unavailable(message, source)
    } else {
        StoreError::rejected(message, source)
    }
}

/// Opening the database failed.
pub(crate) fn open_error(target: &str, e: rusqlite::Error) -> Error {
    let message = match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::NotADatabase => {
            "the file exists but is not a SQLite database".to_owned()
        }
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::CannotOpen => {
            "the file cannot be opened or created (does its directory exist and is it writable?)"
                .to_owned()
        }
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ReadOnly => {
            "the database is read-only".to_owned()
        }
        other => other.to_string(),
    };
    let busy = matches!(
        &e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    );
    let target = target.to_owned();
    if busy {
        Error::Connect { target, message, source: Some(Box::new(e)) }
    } else {
        Error::Open { target, message, source: Some(Box::new(e)) }
    }
}

/// A step of applying the migrations (`step`, e.g. "reading
/// mscribe_migrations") failed: classified as [`open_error`] does (a busy or
/// locked database may clear), its message led by the step and holding
/// SQLite's own text.
pub(crate) fn migration_step_error(target: &str, step: &str, e: rusqlite::Error) -> Error {
    step_error(target, "migrating", step, e)
}

/// A step of `doing` (migrating, checking the schema) at open failed:
/// classified and worded as [`migration_step_error`] says; a file that is
/// not a database says so.
pub(crate) fn step_error(target: &str, doing: &str, step: &str, e: rusqlite::Error) -> Error {
    let message = match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::NotADatabase => {
            format!("{doing}: {step}: the file exists but is not a SQLite database")
        }
        _ => format!("{doing}: {step}: {e}"),
    };
    let busy = matches!(
        &e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    );
    let target = target.to_owned();
    if busy {
        Error::Connect { target, message, source: Some(Box::new(e)) }
    } else {
        Error::Open { target, message, source: Some(Box::new(e)) }
    }
}

/// A rusqlite error shared by several replies.
#[derive(Debug, Clone)]
pub(crate) struct SharedError(pub(crate) Arc<rusqlite::Error>);

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}
