//! Mapping sqlx errors to the engine's and the crate's errors.

use mscribe_scheduler::StoreError;

use crate::error::Error;

/// SQLSTATEs that may clear by themselves: connection exceptions (08),
/// insufficient resources (53), operator intervention such as a shutdown or
/// a cancelled statement (57), serialization failures and deadlocks, a lock
/// not available.
fn transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57")
        || matches!(code, "40001" | "40P01" | "55P03")
}

/// Whether retrying later may succeed.
pub(crate) fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| transient_sqlstate(&c)),
        _ => false,
    }
}

pub(crate) fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_owned(),
        },
        sqlx::Error::PoolTimedOut => {
            "no connection available in time (server down or unreachable, or pool exhausted)"
                .to_owned()
        }
        other => other.to_string(),
    }
}

/// [`describe`] plus the server's DETAIL and HINT when it sent them (what
/// `psql` prints under an error), for errors of migrations.
pub(crate) fn describe_in_full(e: &sqlx::Error) -> String {
    let mut message = describe(e);
    if let Some(pg) = e
        .as_database_error()
        .and_then(|db| db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
    {
        if let Some(detail) = pg.detail() {
            message.push_str("; detail: ");
            message.push_str(detail);
        }
        if let Some(hint) = pg.hint() {
            message.push_str("; hint: ");
            message.push_str(hint);
        }
    }
    message
}

/// A step of applying the migrations (`step`, e.g. "taking the migration
/// lock") failed: the error [`connect_error`] gives, its message led by the
/// step and holding the server's own text.
pub(crate) fn migration_step_error(target: &str, step: &str, e: sqlx::Error) -> Error {
    step_error(target, "migrating", step, e)
}

/// A step of `doing` (migrating, checking the schema) at open failed:
/// classified and worded as [`migration_step_error`] says.
pub(crate) fn step_error(target: &str, doing: &str, step: &str, e: sqlx::Error) -> Error {
    let message = format!("{doing}: {step}: {}", describe_in_full(&e));
    let target = target.to_owned();
    match &e {
        sqlx::Error::Configuration(_) => {
            Error::Config { message: format!("{target}: {message}"), source: Some(Box::new(e)) }
        }
        _ if is_transient(&e) => Error::Connect { target, message, source: Some(Box::new(e)) },
        _ => Error::Open { target, message, source: Some(Box::new(e)) },
    }
}

/// Applying one migration (or recording it) failed.
pub(crate) fn migration_failed(migration: String, e: sqlx::Error) -> Error {
    Error::MigrationFailed { migration, message: describe_in_full(&e), source: Some(Box::new(e)) }
}

/// An operation on an open store failed.
pub(crate) fn store_error(target: &str, what: &str, e: sqlx::Error) -> StoreError {
    let message = format!("{target}: {what} failed: {}", describe(&e));
    if is_transient(&e) {
        StoreError::unavailable(message, e)
    } else {
        StoreError::rejected(message, e)
    }
}

/// An operation did not finish within its timeout.
pub(crate) fn timeout_error(target: &str, what: &str, after: std::time::Duration) -> StoreError {
    StoreError::Unavailable {
        message: format!("{target}: {what} timed out after {after:?}"),
        source: None,
    }
}

/// Connecting (at open) failed.
pub(crate) fn connect_error(target: &str, e: sqlx::Error) -> Error {
    let message = describe(&e);
    let target = target.to_owned();
    match &e {
        sqlx::Error::Configuration(_) => {
            Error::Config { message: format!("{target}: {message}"), source: Some(Box::new(e)) }
        }
        _ if is_transient(&e) => Error::Connect { target, message, source: Some(Box::new(e)) },
        _ => Error::Open { target, message, source: Some(Box::new(e)) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates() {
        for c in ["08006", "08001", "53300", "57P01", "57014", "40001", "40P01", "55P03"] {
            assert!(transient_sqlstate(c), "{c}");
        }
        for c in ["23505", "42501", "42P01", "22021", "28P01", "3D000"] {
            assert!(!transient_sqlstate(c), "{c}");
        }
    }
}
