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
         metrics::text AS metrics, instance_id, kind, fence"
    };
}

/// The columns an execution row is written with, in the arrays' order.
macro_rules! row_columns {
    () => {
        "job_id, execution_id, attempt, status, scheduled_at, started_at, completed_at, \
         duration_ms, error, error_kind, result, metrics, instance_id, kind, fence"
    };
}

/// Rows from arrays, one per column, with a conflict clause to follow.
macro_rules! insert_rows {
    () => {
        concat!(
            "INSERT INTO scheduled_job_executions (",
            row_columns!(),
            ") SELECT * FROM UNNEST(
        $1::text[], $2::uuid[], $3::int4[], $4::text[], $5::timestamptz[], $6::timestamptz[],
        $7::timestamptz[], $8::int8[], $9::text[], $10::text[], $11::jsonb[], $12::jsonb[],
        $13::text[], $14::text[], $15::int8[])"
        )
    };
}

/// Rows from arrays; existing keys are left alone.
pub(crate) const INSERT_ROWS: &str =
    concat!(insert_rows!(), " ON CONFLICT (execution_id, attempt) DO NOTHING");

/// [`INSERT_ROWS`], answering the keys it inserted.
pub(crate) const INSERT_ROWS_RETURNING: &str = concat!(
    insert_rows!(),
    " ON CONFLICT (execution_id, attempt) DO NOTHING RETURNING execution_id, attempt"
);

/// On a key's conflict, its end fields from the new row.
macro_rules! set_ends {
    () => {
        " ON CONFLICT (execution_id, attempt) DO UPDATE SET \
         status = excluded.status, completed_at = excluded.completed_at, \
         duration_ms = excluded.duration_ms, error = excluded.error, \
         error_kind = excluded.error_kind, result = excluded.result, \
         metrics = excluded.metrics"
    };
}

/// The end fields of a row `e` from the row `v` (an update's).
macro_rules! set_ends_from_v {
    () => {
        "SET status = v.status, completed_at = v.completed_at, duration_ms = v.duration_ms, \
         error = v.error, error_kind = v.error_kind, result = v.result, metrics = v.metrics"
    };
}

/// Ends from arrays, each key at most once: the whole row, or on conflict
/// its end fields (the start's kind and fence stay).
pub(crate) const UPSERT_ENDS: &str = concat!(insert_rows!(), set_ends!());

/// The head of an insert of rows whose keys are expected new, to be
/// followed by a [`Shaped`](super::shaped::Shaped) select: a key already
/// there fails the statement (`unique_violation`), having written nothing.
pub(crate) const INSERT_NEW_INTO: &str =
    concat!("INSERT INTO scheduled_job_executions (", row_columns!(), ") ");

/// The rows of a [`Shaped`](super::shaped::Shaped) select with a flag (its
/// `{}`) as the table `v`, read once, and the insert of those whose flag is
/// false, left open for a conflict clause.
macro_rules! flagged_starts {
    () => {
        concat!(
            "WITH v AS MATERIALIZED ({}), starts AS (INSERT INTO scheduled_job_executions (",
            row_columns!(),
            ") SELECT ",
            row_columns!(),
            " FROM v WHERE NOT v.flag"
        )
    };
}

/// A batch of distinct keys as they are expected to be, from `select` (a
/// [`Shaped`](super::shaped::Shaped) one with a flag): rows whose flag is
/// false are inserted (a key already there fails the statement), the
/// others set the end fields of the row their start left; the count of
/// rows affected is the count of those found.
pub(crate) fn write_expected(select: &str) -> String {
    format!(
        concat!(
            flagged_starts!(),
            ") UPDATE scheduled_job_executions AS e ",
            set_ends_from_v!(),
            " FROM v WHERE v.flag AND e.execution_id = v.execution_id AND e.attempt = v.attempt"
        ),
        select
    )
}

/// A batch of distinct keys in one statement, from `select` as in
/// [`write_expected`]: rows whose flag is false are inserted and a conflict
/// ignored (starts, skips), the others are [`UPSERT_ENDS`]. The two inserts
/// cannot meet, since no key comes twice.
pub(crate) fn write_distinct(select: &str) -> String {
    format!(
        concat!(
            flagged_starts!(),
            " ON CONFLICT (execution_id, attempt) DO NOTHING) INSERT INTO scheduled_job_executions (",
            row_columns!(),
            ") SELECT ",
            row_columns!(),
            " FROM v WHERE v.flag",
            set_ends!()
        ),
        select
    )
}

/// The end fields of existing rows, from arrays keyed by
/// `(execution_id, attempt)` (the start's kind and fence stay).
pub(crate) const UPDATE_ENDS: &str = concat!(
    "UPDATE scheduled_job_executions AS e ",
    set_ends_from_v!(),
    " FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::timestamptz[], $5::int8[],
                $6::text[], $7::text[], $8::jsonb[], $9::jsonb[])
         AS v(execution_id, attempt, status, completed_at, duration_ms, error, error_kind,
              result, metrics)
    WHERE e.execution_id = v.execution_id AND e.attempt = v.attempt"
);

/// The history order, newest first (`HistoryPosition`'s, descending), on
/// the table's columns (`execution_id` alone would name the text the
/// select list makes of it).
macro_rules! history_order {
    () => {
        " ORDER BY e.started_at DESC, e.attempt DESC, e.execution_id DESC"
    };
}

/// The rows strictly older than a position (`$A` started_at, `$B` attempt,
/// `$C` execution id as text, the macro's arguments): a row comparison, whose
/// `(started_at, attempt)` prefix bounds the scan of the index
/// `scheduled_job_executions_job_started` (job_id, started_at DESC, attempt
/// DESC); uuids compare as their 128 bits.
macro_rules! older_than {
    ($t:literal, $a:literal, $id:literal) => {
        concat!(
            " AND (e.started_at, e.attempt, e.execution_id) < (",
            $t,
            "::timestamptz, ",
            $a,
            "::int4, ",
            $id,
            "::uuid)"
        )
    };
}

/// A job's rows, newest first: `$1` job, `$2` limit.
pub(crate) const HISTORY: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM scheduled_job_executions AS e WHERE e.job_id = $1",
    history_order!(),
    " LIMIT $2"
);

/// A job's rows of one status, newest first: `$1` job, `$2` status, `$3` limit.
pub(crate) const HISTORY_BY_STATUS: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM scheduled_job_executions AS e WHERE e.job_id = $1 AND e.status = $2",
    history_order!(),
    " LIMIT $3"
);

/// A job's rows older than a position, newest first: `$1` job, `$2`
/// started_at, `$3` attempt, `$4` execution id, `$5` limit.
pub(crate) const HISTORY_BEFORE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM scheduled_job_executions AS e WHERE e.job_id = $1",
    older_than!("$2", "$3", "$4"),
    history_order!(),
    " LIMIT $5"
);

/// A job's rows of one status older than a position, newest first: `$1`
/// job, `$2` status, `$3` started_at, `$4` attempt, `$5` execution id, `$6`
/// limit.
pub(crate) const HISTORY_BY_STATUS_BEFORE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM scheduled_job_executions AS e WHERE e.job_id = $1 AND e.status = $2",
    older_than!("$3", "$4", "$5"),
    history_order!(),
    " LIMIT $6"
);

/// The newest nominal time of job `$1`'s rows, of any kind.
pub(crate) const LAST_FIRE: &str =
    "SELECT max(scheduled_at) FROM scheduled_job_executions WHERE job_id = $1";

/// [`LAST_FIRE`] of each job of `$1`.
pub(crate) const LAST_FIRES: &str = "SELECT job_id, max(scheduled_at) FROM scheduled_job_executions
     WHERE job_id = ANY($1) GROUP BY job_id";

/// The newest nominal time of each job of `$1` among the rows of its
/// schedule's fires (not of triggers or backfills): where misfire planning
/// starts.
pub(crate) const LAST_SCHEDULED_FIRES: &str =
    "SELECT job_id, max(scheduled_at) FROM scheduled_job_executions
     WHERE job_id = ANY($1) AND kind = 'schedule' GROUP BY job_id";

/// `$1` instance, `$2` now, `$3` host name.
pub(crate) const HEARTBEAT: &str =
    "INSERT INTO scheduler_instances (instance_id, heartbeat_at, started_at, hostname)
     VALUES ($1, $2, $2, $3)
     ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at";

/// The attempts of one run, the first first: `$1` job, `$2` execution id
/// (the unique `(execution_id, attempt)` index).
pub(crate) const ATTEMPTS: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM scheduled_job_executions AS e WHERE e.execution_id = $2::uuid AND e.job_id = $1 \
     ORDER BY e.attempt"
);

/// The instances with a heartbeat at or after `$1`, the latest first.
pub(crate) const INSTANCES: &str =
    "SELECT instance_id, heartbeat_at, started_at, hostname FROM scheduler_instances
     WHERE heartbeat_at >= $1 ORDER BY heartbeat_at DESC, instance_id";

/// Marks the running rows that also match `$cond` abandoned at `$2`,
/// answering them: the one statement of `MARK_ABANDONED` and `ABANDON_OWN`.
macro_rules! abandon_where {
    ($cond:literal) => {
        concat!(
            "WITH changed AS (
         UPDATE scheduled_job_executions AS e
         SET status = 'abandoned',
             completed_at = $2,
             duration_ms = greatest(0, floor(extract(epoch FROM ($2 - e.started_at)) * 1000))::bigint,
             error = 'instance ' || e.instance_id || ' stopped while the attempt ran'
         WHERE e.status = 'running' AND ",
            $cond,
            "
         RETURNING e.*)
     SELECT ",
            columns!(),
            " FROM changed ORDER BY id"
        )
    };
}

/// Marks the running rows of other instances (`$1` is this one) without a
/// heartbeat since `$3` abandoned at `$2`, answering them.
pub(crate) const MARK_ABANDONED: &str = abandon_where!(
    "e.instance_id <> $1
           AND NOT EXISTS (
               SELECT 1 FROM scheduler_instances AS i
               WHERE i.instance_id = e.instance_id AND i.heartbeat_at >= $3)"
);

/// Marks the running rows of instance `$1` abandoned at `$2`, answering
/// them (`ExecutionStore::abandon_own`).
pub(crate) const ABANDON_OWN: &str = abandon_where!("e.instance_id = $1");

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

/// The fires of job `$1` recorded in a final status (run or skipped) with a
/// nominal time in `[$2, $3]`, ascending, each once.
pub(crate) const RECORDED_FIRES: &str = "SELECT DISTINCT scheduled_at FROM scheduled_job_executions
     WHERE job_id = $1 AND scheduled_at >= $2 AND scheduled_at <= $3 AND status <> 'running'
     ORDER BY scheduled_at";

// ------------------------------------------------------- claims and leases

/// A batch of fires (`$1` jobs, `$2` nominal times, `$3` execution ids, `$4`
/// ended, `$8` kinds), each listed once, for instance `$5` at `$6` with
/// leases to `$7`, in key order; answers the fires this batch won. Fence 1.
pub(crate) const CLAIM_FIRES: &str = "INSERT INTO fire_claims
       (job_id, scheduled_at, instance_id, claimed_at, execution_id, fence, lease_expires_at,
        ended, kind)
     SELECT f.job_id, f.scheduled_at, $5, $6, f.execution_id, 1, $7, f.ended, f.kind
     FROM UNNEST($1::text[], $2::timestamptz[], $3::uuid[], $4::bool[], $8::text[])
          AS f(job_id, scheduled_at, execution_id, ended, kind)
     ORDER BY f.job_id, f.scheduled_at
     ON CONFLICT DO NOTHING
     RETURNING job_id, scheduled_at";

/// Takes the transaction-level advisory lock of each job in `$1` (jobs
/// whose claims count live leases), in one order for every caller, so that
/// two instances claiming fires of one job count one after the other.
/// `hashtext` keys in the lock class 0x6d736372 ("mscr"); the migration
/// lock is a one-key lock, a space of its own.
pub(crate) const LOCK_JOBS: &str = "SELECT count(pg_advisory_xact_lock(1836278642, k.key))
     FROM (SELECT DISTINCT hashtext(j) AS key FROM UNNEST($1::text[]) AS j
           ORDER BY 1 OFFSET 0) AS k";

/// For a batch of fires (`$1` jobs, `$2` nominal times): the claims that
/// exist among them (a job and a time), and per job of `$4` the number of
/// its live leases at `$3` (a job and a count; the partial index
/// `fire_claims_open_leases_by_job`).
pub(crate) const CLAIMS_AND_LIVE_LEASES: &str = "SELECT c.job_id, c.scheduled_at, NULL::int8
     FROM fire_claims AS c
     JOIN UNNEST($1::text[], $2::timestamptz[]) AS f(job_id, scheduled_at)
       ON c.job_id = f.job_id AND c.scheduled_at = f.scheduled_at
     UNION ALL
     SELECT job_id, NULL::timestamptz, count(*) FROM fire_claims
     WHERE NOT ended AND lease_expires_at > $3 AND job_id = ANY($4)
     GROUP BY job_id";

/// Extends to `$5` (never shortening) the leases of instance `$4` on the
/// fires `$1` jobs, `$2` nominal times, with fences `$3`, that have not
/// ended, locking them in key order; answers the leases renewed.
pub(crate) const RENEW_LEASES: &str = "WITH held AS (
         SELECT c.job_id, c.scheduled_at FROM fire_claims AS c
         JOIN UNNEST($1::text[], $2::timestamptz[], $3::int8[]) AS l(job_id, scheduled_at, fence)
           ON c.job_id = l.job_id AND c.scheduled_at = l.scheduled_at AND c.fence = l.fence
         WHERE c.instance_id = $4 AND NOT c.ended
         ORDER BY c.job_id, c.scheduled_at
         FOR UPDATE OF c)
     UPDATE fire_claims AS c SET lease_expires_at = greatest(c.lease_expires_at, $5)
     FROM held WHERE c.job_id = held.job_id AND c.scheduled_at = held.scheduled_at
     RETURNING c.job_id, c.scheduled_at, c.fence";

/// Up to `$2` leases that ran out by `$1` without their fire ending, oldest
/// first (the partial index `fire_claims_open_leases`).
pub(crate) const EXPIRED_LEASES: &str = "SELECT job_id, scheduled_at, execution_id::text,
            fence, instance_id, lease_expires_at, kind
     FROM fire_claims
     WHERE NOT ended AND lease_expires_at <= $1
     ORDER BY lease_expires_at, job_id, scheduled_at LIMIT $2";

/// The claim of job `$1`'s fire at `$2`, locked until the transaction ends:
/// its fence, expiry and whether it ended.
pub(crate) const LOCK_CLAIM: &str = "SELECT fence, lease_expires_at, ended FROM fire_claims
     WHERE job_id = $1 AND scheduled_at = $2 FOR UPDATE";

/// Takes over the (locked) claim of job `$1`'s fire at `$2` for instance
/// `$3`: fence one up, execution id `$4`, lease to `$5`; moves the rows of
/// execution `$8` to `$4`, the `running` ones abandoned at `$6` with error
/// `$7`; ends the claim when `$9` (no rerun) and the run had rows. Answers
/// the new fence, the run's last attempt and how many rows moved. Run after
/// [`LOCK_CLAIM`], in its transaction, so that this statement's snapshot
/// holds every row written before the lock was had.
pub(crate) const RETAKE_FIRE: &str = "WITH moved AS (
         UPDATE scheduled_job_executions AS e
         SET execution_id = $4::uuid,
             status = CASE WHEN e.status = 'running' THEN 'abandoned' ELSE e.status END,
             completed_at = CASE WHEN e.status = 'running' THEN $6::timestamptz
                                 ELSE e.completed_at END,
             duration_ms = CASE WHEN e.status = 'running'
                 THEN greatest(0, floor(extract(epoch FROM ($6::timestamptz - e.started_at)) * 1000))::bigint
                 ELSE e.duration_ms END,
             error = CASE WHEN e.status = 'running' THEN $7 ELSE e.error END
         WHERE e.execution_id = $8::uuid
         RETURNING e.attempt),
     claim AS (
         UPDATE fire_claims
         SET fence = fence + 1, instance_id = $3, execution_id = $4::uuid,
             lease_expires_at = $5,
             ended = ($9 AND EXISTS (SELECT 1 FROM moved))
         WHERE job_id = $1 AND scheduled_at = $2
         RETURNING fence)
     SELECT (SELECT fence FROM claim), (SELECT max(attempt) FROM moved),
            (SELECT count(*) FROM moved)";

/// The claims of the fires `$1` jobs, `$2` nominal times, locked in key
/// order until the write's transaction ends (a take-over waits, or is
/// waited for): their current fences.
pub(crate) const LOCK_FENCES: &str = "SELECT c.job_id, c.scheduled_at, c.fence
     FROM fire_claims AS c
     JOIN (SELECT DISTINCT * FROM UNNEST($1::text[], $2::timestamptz[])) AS f(job_id, scheduled_at)
       ON c.job_id = f.job_id AND c.scheduled_at = f.scheduled_at
     ORDER BY c.job_id, c.scheduled_at
     FOR NO KEY UPDATE OF c";

/// Ends the leases of the fires `$1` jobs, `$2` nominal times, whose fence
/// is `$3` (written with the rows of their last events).
pub(crate) const END_LEASES: &str = "UPDATE fire_claims AS c SET ended = true
     FROM UNNEST($1::text[], $2::timestamptz[], $3::int8[]) AS l(job_id, scheduled_at, fence)
     WHERE c.job_id = l.job_id AND c.scheduled_at = l.scheduled_at AND c.fence = l.fence";

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
