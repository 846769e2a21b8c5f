-- Whether a failed attempt's handler error was transient (retried per the
-- policy) or permanent (no further attempt): the engine's ErrorKind, as
-- ErrorKind::as_str writes it. NULL when the handler returned no error
-- (success, timeout, cancellation, a skipped fire) and on rows written
-- before this migration. SQLite checks the CHECK against the existing rows
-- (all NULL) when the column is added.
ALTER TABLE scheduled_job_executions
    ADD COLUMN error_kind TEXT
        CHECK (error_kind IS NULL OR error_kind IN ('transient', 'permanent'));
