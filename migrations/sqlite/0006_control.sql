-- Schedule state shared by every instance on this database (the control
-- plane): the jobs as registered, their pause state, manual triggers not
-- yet run, cancel requests, and the audit log of control actions.
-- Timestamps are UTC text as in 0001_executions.sql; JSON is text.

-- Each job as an instance registered it (the last registration wins), so
-- that other instances and the CLI can show it. `schedule` is NULL for a
-- trigger-only job; `policies` holds the overlap, retry, timeout, misfire
-- ... settings as a JSON object.
CREATE TABLE job_definitions (
    job_id         TEXT NOT NULL PRIMARY KEY,
    name           TEXT NOT NULL,
    schedule       TEXT,
    timezone       TEXT,
    kind           TEXT NOT NULL,
    policies       TEXT NOT NULL CHECK (json_valid(policies)),
    source         TEXT NOT NULL,
    registered_by  TEXT NOT NULL,
    updated_at     TEXT NOT NULL
) WITHOUT ROWID;

-- Whether each job is paused, with the note, time, source and instance of
-- the last change; `version` grows by one with each change of the job.
-- A job never paused has no row; a resumed job keeps its row (paused = 0).
CREATE TABLE job_pauses (
    job_id       TEXT    NOT NULL PRIMARY KEY,
    paused       INTEGER NOT NULL CHECK (paused IN (0, 1)),
    note         TEXT,
    changed_at   TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    instance_id  TEXT    NOT NULL,
    version      INTEGER NOT NULL CHECK (version > 0)
) WITHOUT ROWID;

-- The sync loop's poll reads the paused jobs only.
CREATE INDEX job_pauses_paused ON job_pauses (job_id) WHERE paused = 1;

-- Manual triggers: pending until an instance that runs the job takes it
-- (`taken_by`), then finished with the run's execution id and outcome.
CREATE TABLE job_triggers (
    id            INTEGER PRIMARY KEY,
    job_id        TEXT NOT NULL,
    requested_at  TEXT NOT NULL,
    source        TEXT NOT NULL,
    requested_by  TEXT NOT NULL,
    note          TEXT,
    taken_by      TEXT,
    taken_at      TEXT,
    execution_id  TEXT,
    outcome       TEXT,
    finished_at   TEXT
);

-- The sync loop's poll reads the untaken triggers only.
CREATE INDEX job_triggers_pending ON job_triggers (job_id, id) WHERE taken_by IS NULL;

-- Requests to cancel one run, handled by the instance that runs it.
CREATE TABLE execution_cancels (
    id            INTEGER PRIMARY KEY,
    execution_id  TEXT NOT NULL,
    requested_at  TEXT NOT NULL,
    source        TEXT NOT NULL,
    requested_by  TEXT NOT NULL,
    note          TEXT,
    handled_by    TEXT,
    handled_at    TEXT,
    outcome       TEXT
);

-- The sync loop's poll reads the unhandled requests only.
CREATE INDEX execution_cancels_pending ON execution_cancels (id) WHERE handled_at IS NULL;

-- Every control action (pause, resume, trigger, cancel, backfill, ...),
-- newest last.
CREATE TABLE control_audit (
    id            INTEGER PRIMARY KEY,
    at            TEXT NOT NULL,
    action        TEXT NOT NULL,
    job_id        TEXT,
    execution_id  TEXT,
    note          TEXT,
    source        TEXT NOT NULL,
    instance_id   TEXT NOT NULL,
    detail        TEXT CHECK (detail IS NULL OR json_valid(detail))
);

-- One job's actions, newest first.
CREATE INDEX control_audit_job ON control_audit (job_id, id);
