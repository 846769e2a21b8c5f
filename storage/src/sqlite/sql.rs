//! The SQLite store's SQL text, every statement as a constant.
//!
//! Timestamps are bound as text ([`ts_text`](super::time::ts_text)); `?N`
//! are positional parameters.

use crate::codec::failure_statuses_sql;

// ---------------------------------------------------------------- opening

/// Switches a file to write-ahead logging; answers the mode now in force.
pub(crate) const JOURNAL_MODE_WAL: &str = "PRAGMA journal_mode = WAL";
/// `PRAGMA synchronous`, per [`Synchronous`](super::Synchronous).
pub(crate) const SYNCHRONOUS_NORMAL: &str = "PRAGMA synchronous = NORMAL";
/// `PRAGMA synchronous`, per [`Synchronous`](super::Synchronous).
pub(crate) const SYNCHRONOUS_FULL: &str = "PRAGMA synchronous = FULL";
/// The writer's page cache, 32 MiB (SQLite's default is 2 MiB): each
/// execution row goes into five B-trees, and with a small cache the pages a
/// transaction touches are evicted and read back before its commit. Pages
/// are allocated as they are used.
pub(crate) const CACHE_SIZE: &str = "PRAGMA cache_size = -32768";
/// Checkpoint the WAL into the database every 10,000 pages (40 MiB) rather
/// than SQLite's 1,000: a page rewritten by many commits is copied and
/// synced once per checkpoint, and a checkpoint's sync stalls the writer
/// ten times less often (30–40% more rows a second in the store bench).
pub(crate) const WAL_AUTOCHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 10000";
/// Reader connections never write.
pub(crate) const QUERY_ONLY: &str = "PRAGMA query_only = 1";

// ------------------------------------------------------------- migrations

/// The runner's own table: which migrations were applied.
pub(crate) const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS mscribe_migrations (
    version     INTEGER PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    checksum    TEXT NOT NULL,
    applied_at  TEXT NOT NULL
)";

/// Whether the runner's table exists (one row, 0 or 1).
pub(crate) const MIGRATIONS_TABLE_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM sqlite_master
    WHERE type = 'table' AND name = 'mscribe_migrations')";

pub(crate) const APPLIED_MIGRATIONS: &str =
    "SELECT version, name, checksum FROM mscribe_migrations ORDER BY version";

pub(crate) const RECORD_MIGRATION: &str =
    "INSERT INTO mscribe_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)";

/// The newest migration applied: the health probe's query.
pub(crate) const SCHEMA_VERSION: &str = "SELECT max(version) FROM mscribe_migrations";

// ------------------------------------------------------------- executions

/// The columns of an execution row, in the order rows are decoded.
macro_rules! columns {
    () => {
        "job_id, execution_id, attempt, status, scheduled_at, started_at, completed_at, \
         duration_ms, error, error_kind, result, metrics, instance_id, kind, fence"
    };
}

/// A start or a skip: insert the whole row, ignore a conflict.
pub(crate) const INSERT_IGNORE: &str = concat!(
    "INSERT INTO scheduled_job_executions (",
    columns!(),
    ")
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
    ON CONFLICT (execution_id, attempt) DO NOTHING"
);

/// A row whose key is expected new: a key already there fails the
/// statement (`SQLITE_CONSTRAINT_UNIQUE`), which then changes nothing.
pub(crate) const INSERT_NEW: &str = concat!(
    "INSERT INTO scheduled_job_executions (",
    columns!(),
    ")
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
);

/// The end fields of the row a start left, by key (`?8`, `?9`); changes
/// nothing when there is none.
pub(crate) const UPDATE_END: &str = "UPDATE scheduled_job_executions
    SET status = ?1, completed_at = ?2, duration_ms = ?3, error = ?4, error_kind = ?5,
        result = ?6, metrics = ?7
    WHERE execution_id = ?8 AND attempt = ?9";

/// An end: insert the whole row, or on conflict set its end fields (the
/// start's kind and fence stay).
pub(crate) const UPSERT_END: &str = concat!(
    "INSERT INTO scheduled_job_executions (",
    columns!(),
    ")
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
    ON CONFLICT (execution_id, attempt) DO UPDATE SET
        status = excluded.status,
        completed_at = excluded.completed_at,
        duration_ms = excluded.duration_ms,
        error = excluded.error,
        error_kind = excluded.error_kind,
        result = excluded.result,
        metrics = excluded.metrics"
);

/// The history order, newest first (`HistoryPosition`'s, descending).
macro_rules! history_order {
    () => {
        " ORDER BY started_at DESC, attempt DESC, execution_id DESC"
    };
}

/// The rows strictly older than a position (`?A` started_at, `?B` attempt,
/// `?C` execution id, as the macro's arguments): a range on
/// `(job_id, started_at)` of the index `scheduled_job_executions_job_started`
/// (`started_at <=`), the rows of that very time filtered by the rest of
/// the key. Execution ids are fixed-width lowercase hex text, so text order
/// is id order.
macro_rules! older_than {
    ($t:literal, $a:literal, $id:literal) => {
        concat!(
            " AND started_at <= ",
            $t,
            " AND (started_at < ",
            $t,
            " OR attempt < ",
            $a,
            " OR (attempt = ",
            $a,
            " AND execution_id < ",
            $id,
            "))"
        )
    };
}

/// A job's rows, newest first: `?1` job, `?2` limit.
pub(crate) const HISTORY: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM scheduled_job_executions WHERE job_id = ?1",
    history_order!(),
    " LIMIT ?2"
);

/// A job's rows of one status, newest first: `?1` job, `?2` status, `?3` limit.
pub(crate) const HISTORY_BY_STATUS: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM scheduled_job_executions WHERE job_id = ?1 AND status = ?2",
    history_order!(),
    " LIMIT ?3"
);

/// A job's rows older than a position, newest first: `?1` job, `?2`
/// started_at, `?3` attempt, `?4` execution id, `?5` limit.
pub(crate) const HISTORY_BEFORE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM scheduled_job_executions WHERE job_id = ?1",
    older_than!("?2", "?3", "?4"),
    history_order!(),
    " LIMIT ?5"
);

/// A job's rows of one status older than a position, newest first: `?1`
/// job, `?2` status, `?3` started_at, `?4` attempt, `?5` execution id, `?6`
/// limit.
pub(crate) const HISTORY_BY_STATUS_BEFORE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM scheduled_job_executions WHERE job_id = ?1 AND status = ?2",
    older_than!("?3", "?4", "?5"),
    history_order!(),
    " LIMIT ?6"
);

/// The newest nominal time of job `?1`'s rows, of any kind.
pub(crate) const LAST_FIRE: &str =
    "SELECT max(scheduled_at) FROM scheduled_job_executions WHERE job_id = ?1";

/// The newest nominal time of job `?1`'s rows of its schedule's fires (not
/// of triggers or backfills): where misfire planning starts. Read down the
/// `(job_id, scheduled_at DESC)` index to the first such row.
pub(crate) const LAST_SCHEDULED_FIRE: &str = "SELECT scheduled_at FROM scheduled_job_executions
     WHERE job_id = ?1 AND kind = 'schedule' ORDER BY scheduled_at DESC LIMIT 1";

/// `?1` instance, `?2` now, `?3` host name.
pub(crate) const HEARTBEAT: &str =
    "INSERT INTO scheduler_instances (instance_id, heartbeat_at, started_at, hostname)
     VALUES (?1, ?2, ?2, ?3)
     ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at";

/// The attempts of one run, the first first: `?1` job, `?2` execution id
/// (the unique `(execution_id, attempt)` index).
pub(crate) const ATTEMPTS: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM scheduled_job_executions WHERE execution_id = ?2 AND job_id = ?1 ORDER BY attempt"
);

/// The instances with a heartbeat at or after `?1`, the latest first.
pub(crate) const INSTANCES: &str =
    "SELECT instance_id, heartbeat_at, started_at, hostname FROM scheduler_instances
     WHERE heartbeat_at >= ?1 ORDER BY heartbeat_at DESC, instance_id";

/// Running rows of other instances (`?1` is this one) without a heartbeat
/// since `?2`, with their `id`.
pub(crate) const STALE_RUNNING: &str = concat!(
    "SELECT ",
    columns!(),
    ", id FROM scheduled_job_executions AS e
     WHERE e.status = 'running' AND e.instance_id <> ?1
       AND NOT EXISTS (
           SELECT 1 FROM scheduler_instances AS i
           WHERE i.instance_id = e.instance_id AND i.heartbeat_at >= ?2)
     ORDER BY e.id"
);

/// The running rows of instance `?1` (`ExecutionStore::abandon_own`).
pub(crate) const OWN_RUNNING: &str = concat!(
    "SELECT ",
    columns!(),
    ", id FROM scheduled_job_executions AS e
     WHERE e.status = 'running' AND e.instance_id = ?1
     ORDER BY e.id"
);

/// `?1` id, `?2` completed_at, `?3` duration_ms, `?4` error.
pub(crate) const MARK_ABANDONED: &str = "UPDATE scheduled_job_executions
     SET status = 'abandoned', completed_at = ?2, duration_ms = ?3, error = ?4
     WHERE id = ?1";

/// Finished rows started before `?1`, failures before `?2` when it is not
/// NULL; never a running row.
pub(crate) const PRUNE: &str = concat!(
    "DELETE FROM scheduled_job_executions
     WHERE status <> 'running'
       AND started_at < CASE
           WHEN ?2 IS NOT NULL AND status IN ",
    failure_statuses_sql!(),
    " THEN ?2
           ELSE ?1 END"
);

/// Instances silent since before `?1` that own no `running` row (see
/// `ExecutionStore::prune`).
pub(crate) const FORGET_SILENT_INSTANCES: &str = "DELETE FROM scheduler_instances AS i
     WHERE heartbeat_at < ?1
       AND NOT EXISTS (SELECT 1 FROM scheduled_job_executions AS e
                       WHERE e.instance_id = i.instance_id AND e.status = 'running')";

pub(crate) const PRUNE_CLAIMS: &str = "DELETE FROM fire_claims WHERE scheduled_at < ?1";

/// The fires of job `?1` recorded in a final status (run or skipped) with a
/// nominal time in `[?2, ?3]`, ascending, each once.
pub(crate) const RECORDED_FIRES: &str = "SELECT DISTINCT scheduled_at FROM scheduled_job_executions
     WHERE job_id = ?1 AND scheduled_at >= ?2 AND scheduled_at <= ?3 AND status <> 'running'
     ORDER BY scheduled_at";

// ------------------------------------------------------- claims and leases

/// One fire: `?1` job, `?2` nominal time, `?3` instance, `?4` now, `?5`
/// execution id, `?6` lease expiry, `?7` ended (1 for a fire claimed only
/// to be recorded skipped), `?8` kind; changes one row when this claim won.
/// Fence 1.
pub(crate) const CLAIM_FIRE: &str = "INSERT INTO fire_claims
       (job_id, scheduled_at, instance_id, claimed_at, execution_id, fence, lease_expires_at,
        ended, kind)
     VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8) ON CONFLICT DO NOTHING";

/// How many fires of job `?1` hold live leases at `?2` (not ended, not
/// expired): the partial index `fire_claims_open_leases_by_job`.
pub(crate) const LIVE_LEASES: &str = "SELECT count(*) FROM fire_claims
     WHERE job_id = ?1 AND ended = 0 AND lease_expires_at > ?2";

/// Extends the lease of job `?1`'s fire at `?2` held by instance `?3` with
/// fence `?4` to `?5` (never shortening it); changes one row when it was
/// still held.
pub(crate) const RENEW_LEASE: &str = "UPDATE fire_claims
     SET lease_expires_at = CASE WHEN lease_expires_at >= ?5 THEN lease_expires_at ELSE ?5 END
     WHERE job_id = ?1 AND scheduled_at = ?2 AND instance_id = ?3 AND fence = ?4 AND ended = 0";

/// Up to `?2` leases that ran out by `?1` without their fire ending, oldest
/// first (the partial index `fire_claims_open_leases`).
pub(crate) const EXPIRED_LEASES: &str =
    "SELECT job_id, scheduled_at, execution_id, fence, instance_id, lease_expires_at, kind
     FROM fire_claims
     WHERE ended = 0 AND lease_expires_at <= ?1
     ORDER BY lease_expires_at, job_id, scheduled_at LIMIT ?2";

/// Takes over job `?1`'s fire at `?2` for instance `?3`, with execution id
/// `?4` and a lease to `?5`, if it has not ended and still has fence `?6`
/// and a lease run out by `?7`: answers the new fence, or no row.
pub(crate) const RETAKE_CLAIM: &str = "UPDATE fire_claims
     SET fence = fence + 1, instance_id = ?3, execution_id = ?4, lease_expires_at = ?5
     WHERE job_id = ?1 AND scheduled_at = ?2 AND ended = 0 AND fence = ?6
       AND lease_expires_at <= ?7
     RETURNING fence";

/// The rows of execution `?1`, to move: id, attempt, status, started_at.
pub(crate) const RUN_ROWS: &str = "SELECT id, attempt, status, started_at
     FROM scheduled_job_executions WHERE execution_id = ?1";

/// Moves the rows of execution `?1` to execution id `?2`.
pub(crate) const MOVE_RUN: &str =
    "UPDATE scheduled_job_executions SET execution_id = ?2 WHERE execution_id = ?1";

/// Ends the lease of job `?1`'s fire at `?2`.
pub(crate) const END_CLAIM: &str =
    "UPDATE fire_claims SET ended = 1 WHERE job_id = ?1 AND scheduled_at = ?2";

/// Whether job `?1`'s fire at `?2` has fence `?3`: a row when it has.
pub(crate) const FENCE_IS_CURRENT: &str =
    "SELECT 1 FROM fire_claims WHERE job_id = ?1 AND scheduled_at = ?2 AND fence = ?3";

/// Ends the lease of job `?1`'s fire at `?2` if its fence is `?3`; changes
/// one row when the fence was current (a row already ended included).
pub(crate) const END_LEASE_IF_CURRENT: &str = "UPDATE fire_claims SET ended = 1
     WHERE job_id = ?1 AND scheduled_at = ?2 AND fence = ?3";

// ---------------------------------------------------------- hourly metrics

/// The attempt rows whose nominal fire time is in `[?1, ?2)`.
pub(crate) const ATTEMPTS_BETWEEN: &str =
    "SELECT job_id, execution_id, attempt, status, scheduled_at, duration_ms
     FROM scheduled_job_executions
     WHERE scheduled_at >= ?1 AND scheduled_at < ?2";

pub(crate) const UPSERT_HOURLY: &str = "INSERT INTO job_metrics_hourly
       (job_id, hour_start, runs, successes, failures, skipped,
        success_rate, p50_ms, p95_ms, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
     ON CONFLICT (job_id, hour_start) DO UPDATE SET
       runs = excluded.runs, successes = excluded.successes,
       failures = excluded.failures, skipped = excluded.skipped,
       success_rate = excluded.success_rate, p50_ms = excluded.p50_ms,
       p95_ms = excluded.p95_ms, updated_at = excluded.updated_at";

/// The rows of job `?1`, or of every job when it is NULL, oldest first.
pub(crate) const HOURLY: &str = "SELECT job_id, hour_start, runs, successes, failures, skipped,
            success_rate, p50_ms, p95_ms
     FROM job_metrics_hourly WHERE ?1 IS NULL OR job_id = ?1
     ORDER BY hour_start, job_id";

pub(crate) const PRUNE_HOURLY: &str = "DELETE FROM job_metrics_hourly WHERE hour_start < ?1";

// ------------------------------------------------------- a file, verified

/// `ok` on one row when the file is sound.
pub(crate) const INTEGRITY_CHECK: &str = "PRAGMA integrity_check";

pub(crate) const COUNT_EXECUTIONS: &str = "SELECT count(*) FROM scheduled_job_executions";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_names_the_engines_failure_statuses() {
        assert!(PRUNE.contains(crate::codec::FAILURE_STATUSES_SQL), "{PRUNE}");
    }
}
