-- One row per attempt of a job, or per fire that was skipped.
-- Timestamps are UTC text in a fixed, sortable format
-- (YYYY-MM-DDTHH:MM:SS.ffffffZ, microsecond precision), so they compare
-- correctly as text and SQLite's date functions read them.
CREATE TABLE scheduled_job_executions (
    id            INTEGER PRIMARY KEY,
    job_id        TEXT    NOT NULL,
    execution_id  TEXT    NOT NULL,
    attempt       INTEGER NOT NULL CHECK (attempt >= 0),
    status        TEXT    NOT NULL CHECK (status IN (
                      'running', 'succeeded', 'failed', 'timed_out', 'cancelled',
                      'retries_exhausted', 'abandoned', 'skipped')),
    scheduled_at  TEXT    NOT NULL,
    started_at    TEXT    NOT NULL,
    completed_at  TEXT,
    duration_ms   INTEGER CHECK (duration_ms >= 0),
    error         TEXT,
    result        TEXT    CHECK (result IS NULL OR json_valid(result)),
    metrics       TEXT    CHECK (metrics IS NULL OR json_type(metrics) = 'object'),
    instance_id   TEXT    NOT NULL,
    -- Writes are idempotent: a repeated start is ignored, an end updates by key.
    UNIQUE (execution_id, attempt)
);

-- Recent runs of a job (history), newest first.
CREATE INDEX scheduled_job_executions_job_started
    ON scheduled_job_executions (job_id, started_at DESC, attempt DESC);

-- The last nominal fire of a job (misfire planning at start).
CREATE INDEX scheduled_job_executions_job_scheduled
    ON scheduled_job_executions (job_id, scheduled_at DESC);

-- Pruning by age.
CREATE INDEX scheduled_job_executions_started
    ON scheduled_job_executions (started_at);

-- Open attempts, for the abandoned-run sweep at start.
CREATE INDEX scheduled_job_executions_running
    ON scheduled_job_executions (instance_id)
    WHERE status = 'running';
