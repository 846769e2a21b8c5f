-- Whether a failed attempt's handler error was transient (retried per the
-- policy) or permanent (no further attempt): the engine's ErrorKind, as
-- ErrorKind::as_str writes it. NULL when the handler returned no error
-- (success, timeout, cancellation, a skipped fire) and on rows written
-- before this migration or by the SQL helpers of 0004_sql_helpers.sql.
--
-- A nullable column with no default: adding it rewrites no row. The CHECK
-- is verified against the existing rows, all NULL, in one scan.
--
-- Access needs nothing new: 0003_row_level_security.sql grants privileges
-- on the whole table (no column list), so service_role may read and write
-- the new column and scheduler_admin may read it, and its row-level
-- policies cover every column.
ALTER TABLE scheduled_job_executions
    ADD COLUMN error_kind text
        CONSTRAINT scheduled_job_executions_error_kind_check
        CHECK (error_kind IS NULL OR error_kind IN ('transient', 'permanent'));

COMMENT ON COLUMN scheduled_job_executions.error_kind IS
    'mscribe-scheduler: transient or permanent for a handler error, else NULL';
