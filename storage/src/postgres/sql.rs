//! The Postgres store's SQL text, every statement as a constant.
//!
//! Timestamps are bound as `timestamptz` (chrono values, see
//! [`time`](super::time)); `$N` are parameters, arrays for the multi-row
//! statements (`UNNEST`).

use crate::codec::failure_statuses_sql;

// ------------------------------------------------------------- migrations

/// Taken before anything is read, for the migrating transaction.
pub(crate) const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock($1)";

pub(crate) const MIGRATIONS_TABLE_EXISTS: &str =
    "SELECT to_regclass('mscribe_migrations') IS NOT NULL";

/// The runner's own table: which migrations were applied.
pub(crate) const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS mscribe_migrations (
    version     bigint PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)";

pub(crate) const APPLIED_MIGRATIONS: &str =
    "SELECT version, name, checksum FROM mscribe_migrations ORDER BY version";

pub(crate) const RECORD_MIGRATION: &str =
    "INSERT INTO mscribe_migrations (version, name, checksum) VALUES ($1, $2, $3)";

/// The newest migration applied: the health probe's query.
pub(crate) const SCHEMA_VERSION: &str = "SELECT max(version) FROM mscribe_migrations";

// ------------------------------------------------------------- executions

/// The columns of an execution row as the store decodes them (by name).
macro_rules! columns {
    () => {
        "job_id, execution_id::text AS execution_id, attempt, status, scheduled_at, \
         started_at, completed_at, duration_ms, error, error_kind, result::text AS result, \
         metrics::text AS metrics, instance_id"
    };
}

/// Rows from arrays, one per column; existing keys are left alone.
macro_rules! insert_rows {
    () => {
        "INSERT INTO scheduled_job_executions
    (job_id, execution_id, attempt, status, scheduled_at, started_at, completed_at,
     duration_ms, error, error_kind, result, metrics, instance_id)
    SELECT * FROM UNNEST(
        $1::text[], $2::uuid[], $3::int4[], $4::text[], $5::timestamptz[], $6::timestamptz[],
        $7::timestamptz[], $8::int8[], $9::text[], $10::text[], $11::jsonb[], $12::jsonb[],
        $13::text[])
    ON CONFLICT (execution_id, attempt) DO NOTHING"
    };
}

pub(crate) const INSERT_ROWS: &str = insert_rows!();

/// [`INSERT_ROWS`], answering the keys it inserted.
pub(crate) const INSERT_ROWS_RETURNING: &str =
    concat!(insert_rows!(), " RETURNING execution_id::text, attempt");

/// The end fields of existing rows, from arrays keyed by
/// `(execution_id, attempt)`.
pub(crate) const UPDATE_ENDS: &str = "UPDATE scheduled_job_executions AS e
    SET status = v.status, completed_at = v.completed_at, duration_ms = v.duration_ms,
        error = v.error, error_kind = v.error_kind, result = v.result, metrics = v.metrics
    FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::timestamptz[], $5::int8[],
                $6::text[], $7::text[], $8::jsonb[], $9::jsonb[])
         AS v(execution_id, attempt, status, completed_at, duration_ms, error, error_kind,
              result, metrics)
    WHERE e.execution_id = v.execution_id AND e.attempt = v.attempt";

/// A job's rows, newest first: `$1` job, `$2` limit.
pub(crate) const HISTORY: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM scheduled_job_executions WHERE job_id = $1
    ORDER BY started_at DESC, attempt DESC, execution_id DESC LIMIT $2"
);

/// A job's rows of one status, newest first: `$1` job, `$2` status, `$3` limit.
pub(crate) const HISTORY_BY_STATUS: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM scheduled_job_executions WHERE job_id = $1 AND status = $2
    ORDER BY started_at DESC, attempt DESC, execution_id DESC LIMIT $3"
);

pub(crate) const LAST_FIRE: &str =
    "SELECT max(scheduled_at) FROM scheduled_job_executions WHERE job_id = $1";

pub(crate) const LAST_FIRES: &str = "SELECT job_id, max(scheduled_at) FROM scheduled_job_executions
     WHERE job_id = ANY($1) GROUP BY job_id";

/// `$1` instance, `$2` now, `$3` host name.
pub(crate) const HEARTBEAT: &str =
    "INSERT INTO scheduler_instances (instance_id, heartbeat_at, started_at, hostname)
     VALUES ($1, $2, $2, $3)
     ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at";

/// Marks the running rows of other instances (`$1` is this one) without a
/// heartbeat since `$3` abandoned at `$2`, answering them.
pub(crate) const MARK_ABANDONED: &str = concat!(
    "WITH changed AS (
         UPDATE scheduled_job_executions AS e
         SET status = 'abandoned',
             completed_at = $2,
             duration_ms = greatest(0, floor(extract(epoch FROM ($2 - e.started_at)) * 1000))::bigint,
             error = 'instance ' || e.instance_id || ' stopped while the attempt ran'
         WHERE e.status = 'running' AND e.instance_id <> $1
           AND NOT EXISTS (
               SELECT 1 FROM scheduler_instances AS i
               WHERE i.instance_id = e.instance_id AND i.heartbeat_at >= $3)
         RETURNING e.*)
     SELECT ",
    columns!(),
    " FROM changed ORDER BY id"
);

/// Finished rows started before `$1`, failures before `$2` when it is not
/// NULL; never a running row.
pub(crate) const PRUNE: &str = concat!(
    "DELETE FROM scheduled_job_executions
     WHERE status <> 'running'
       AND started_at < CASE
           WHEN $2::timestamptz IS NOT NULL AND status IN ",
    failure_statuses_sql!(),
    " THEN $2
           ELSE $1 END"
);

/// Instances silent since before `$1` that own no `running` row (see
/// `ExecutionStore::prune`).
pub(crate) const FORGET_SILENT_INSTANCES: &str = "DELETE FROM scheduler_instances AS i
     WHERE heartbeat_at < $1
       AND NOT EXISTS (SELECT 1 FROM scheduled_job_executions AS e
                       WHERE e.instance_id = i.instance_id AND e.status = 'running')";

pub(crate) const PRUNE_CLAIMS: &str = "DELETE FROM fire_claims WHERE scheduled_at < $1";

/// A batch of fires (`$1` jobs, `$2` nominal times) for instance `$3` at
/// `$4`, in key order; answers the fires this batch won.
pub(crate) const CLAIM_FIRES: &str =
    "INSERT INTO fire_claims (job_id, scheduled_at, instance_id, claimed_at)
     SELECT f.job_id, f.scheduled_at, $3, $4
     FROM UNNEST($1::text[], $2::timestamptz[]) AS f(job_id, scheduled_at)
     ORDER BY f.job_id, f.scheduled_at
     ON CONFLICT DO NOTHING
     RETURNING job_id, scheduled_at";

// ---------------------------------------------------------- hourly metrics

/// The attempt rows whose nominal fire time is in `[$1, $2)`.
pub(crate) const ATTEMPTS_BETWEEN: &str =
    "SELECT job_id, execution_id::text, attempt, status, scheduled_at, duration_ms
     FROM scheduled_job_executions
     WHERE scheduled_at >= $1 AND scheduled_at < $2";

pub(crate) const UPSERT_HOURLY: &str = "INSERT INTO job_metrics_hourly
       (job_id, hour_start, runs, successes, failures, skipped,
        success_rate, p50_ms, p95_ms, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (job_id, hour_start) DO UPDATE SET
       runs = excluded.runs, successes = excluded.successes,
       failures = excluded.failures, skipped = excluded.skipped,
       success_rate = excluded.success_rate, p50_ms = excluded.p50_ms,
       p95_ms = excluded.p95_ms, updated_at = excluded.updated_at";

/// The rows of job `$1`, or of every job when it is NULL, oldest first.
pub(crate) const HOURLY: &str = "SELECT job_id, hour_start, runs, successes, failures, skipped,
            success_rate, p50_ms, p95_ms
     FROM job_metrics_hourly WHERE $1::text IS NULL OR job_id = $1
     ORDER BY hour_start, job_id";

pub(crate) const PRUNE_HOURLY: &str = "DELETE FROM job_metrics_hourly WHERE hour_start < $1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_names_the_engines_failure_statuses() {
        assert!(PRUNE.contains(crate::codec::FAILURE_STATUSES_SQL), "{PRUNE}");
    }
}
