-- Alerts (issue 21): the outbox of webhook deliveries, each job's run of
-- failures, and the leases that let one instance at a time check and
-- deliver.

-- One row per alert raised for the cluster: `dedupe_key` is unique, so an
-- event seen by several instances is enqueued once. A row is pending until
-- delivered (`delivered_at`) or its attempts run out (`gave_up_at`).
CREATE TABLE alert_outbox (
    id               bigserial   PRIMARY KEY,
    dedupe_key       text        NOT NULL UNIQUE,
    alert            text        NOT NULL,
    event            text        NOT NULL,
    job_id           text,
    body             jsonb       NOT NULL,
    created_at       timestamptz NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz,
    last_attempt_at  timestamptz,
    last_status      integer,
    last_error       text,
    delivered_at     timestamptz,
    gave_up_at       timestamptz
);

COMMENT ON TABLE alert_outbox IS
    'mscribe-scheduler: alerts raised for the cluster and their webhook deliveries';

-- The deliverer reads the pending rows that are due, earliest first.
CREATE INDEX alert_outbox_due ON alert_outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;

-- Each job's failed runs in a row, and the fire counted last (so that a
-- fire two instances both ran counts once).
CREATE TABLE alert_job_state (
    job_id             text        PRIMARY KEY,
    failures_in_a_row  integer     NOT NULL CHECK (failures_in_a_row >= 0),
    last_fire_key      text        NOT NULL,
    updated_at         timestamptz NOT NULL
);

-- Named leases: the instance that holds `alerts` checks overdue jobs and
-- long pauses and delivers, until `expires_at`.
CREATE TABLE alert_leases (
    name        text        PRIMARY KEY,
    owner       text        NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- The same access as the other tables (0003_row_level_security.sql).
ALTER TABLE alert_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_job_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_leases ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON alert_outbox, alert_job_state, alert_leases FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON alert_outbox, alert_job_state, alert_leases
    TO service_role;
GRANT USAGE, SELECT ON SEQUENCE alert_outbox_id_seq TO service_role;
GRANT SELECT ON alert_outbox, alert_job_state, alert_leases TO scheduler_admin;

CREATE POLICY service_role_all ON alert_outbox
    FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY service_role_all ON alert_job_state
    FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY service_role_all ON alert_leases
    FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY scheduler_admin_read ON alert_outbox
    FOR SELECT TO scheduler_admin USING (true);
CREATE POLICY scheduler_admin_read ON alert_job_state
    FOR SELECT TO scheduler_admin USING (true);
CREATE POLICY scheduler_admin_read ON alert_leases
    FOR SELECT TO scheduler_admin USING (true);
