-- One row per attempt of a job, or per fire that was skipped.
CREATE TABLE scheduled_job_executions (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id        text        NOT NULL,
    execution_id  uuid        NOT NULL,
    attempt       integer     NOT NULL CHECK (attempt >= 0),
    status        text        NOT NULL CHECK (status IN (
                      'running', 'succeeded', 'failed', 'timed_out', 'cancelled',
                      'retries_exhausted', 'abandoned', 'skipped')),
    scheduled_at  timestamptz NOT NULL,
    started_at    timestamptz NOT NULL,
    completed_at  timestamptz,
    duration_ms   bigint      CHECK (duration_ms >= 0),
    error         text,
    result        jsonb,
    -- Named numbers; null stands for a value that was not finite.
    metrics       jsonb       CHECK (
                      metrics IS NULL
                      OR (jsonb_typeof(metrics) = 'object'
                          AND NOT jsonb_path_exists(
                              metrics, '$.* ? (@.type() != "number" && @.type() != "null")'))),
    instance_id   text        NOT NULL,
    -- Writes are idempotent: a repeated start is ignored, an end updates by key.
    CONSTRAINT scheduled_job_executions_execution_attempt UNIQUE (execution_id, attempt)
);

COMMENT ON TABLE scheduled_job_executions IS
    'mscribe-scheduler: one row per job attempt (or skipped fire)';

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
