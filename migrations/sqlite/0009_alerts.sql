-- Alerts (issue 21): the outbox of webhook deliveries, each job's run of
-- failures, and the leases that let one instance at a time check and
-- deliver. Timestamps are UTC text as in 0001_executions.sql; JSON is text.

-- One row per alert raised for the cluster: `dedupe_key` is unique, so an
-- event seen by several instances is enqueued once. A row is pending until
-- delivered (`delivered_at`) or its attempts run out (`gave_up_at`).
-- Pruning never deletes the newest row, so ids keep increasing (the
-- cursor of GET /alerts).
CREATE TABLE alert_outbox (
    id               INTEGER PRIMARY KEY,
    dedupe_key       TEXT    NOT NULL UNIQUE,
    alert            TEXT    NOT NULL,
    event            TEXT    NOT NULL,
    job_id           TEXT,
    body             TEXT    NOT NULL CHECK (json_valid(body)),
    created_at       TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  TEXT,
    last_attempt_at  TEXT,
    last_status      INTEGER,
    last_error       TEXT,
    delivered_at     TEXT,
    gave_up_at       TEXT
);

-- The deliverer reads the pending rows that are due, earliest first.
CREATE INDEX alert_outbox_due ON alert_outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;

-- Each job's failed runs in a row, and the fire counted last (so that a
-- fire two instances both ran counts once).
CREATE TABLE alert_job_state (
    job_id             TEXT    NOT NULL PRIMARY KEY,
    failures_in_a_row  INTEGER NOT NULL CHECK (failures_in_a_row >= 0),
    last_fire_key      TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL
) WITHOUT ROWID;

-- Named leases: the instance that holds `alerts` checks overdue jobs and
-- long pauses and delivers, until `expires_at`.
CREATE TABLE alert_leases (
    name        TEXT NOT NULL PRIMARY KEY,
    owner       TEXT NOT NULL,
    expires_at  TEXT NOT NULL
) WITHOUT ROWID;
