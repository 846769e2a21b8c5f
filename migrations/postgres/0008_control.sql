-- Schedule state shared by every instance on this database (the control
-- plane): the jobs as registered, their pause state, manual triggers not
-- yet run, cancel requests, and the audit log of control actions. Each
-- change made through mscribe-storage also sends
-- pg_notify('mscribe_control', ..) in its transaction, which wakes the
-- other instances.

-- Each job as an instance registered it (the last registration wins), so
-- that other instances and the CLI can show it. `schedule` is NULL for a
-- trigger-only job; `policies` holds the overlap, retry, timeout, misfire
-- ... settings as a JSON object.
CREATE TABLE job_definitions (
    job_id         text        PRIMARY KEY,
    name           text        NOT NULL,
    schedule       text,
    timezone       text,
    kind           text        NOT NULL,
    policies       jsonb       NOT NULL,
    source         text        NOT NULL,
    registered_by  text        NOT NULL,
    updated_at     timestamptz NOT NULL
);

COMMENT ON TABLE job_definitions IS
    'mscribe-scheduler: each job as registered (schedule, time zone, kind, policies)';

-- Whether each job is paused, with the note, time, source and instance of
-- the last change; `version` grows by one with each change of the job.
-- A job never paused has no row; a resumed job keeps its row (paused false).
CREATE TABLE job_pauses (
    job_id       text        PRIMARY KEY,
    paused       boolean     NOT NULL,
    note         text,
    changed_at   timestamptz NOT NULL,
    source       text        NOT NULL,
    instance_id  text        NOT NULL,
    version      bigint      NOT NULL CHECK (version > 0)
);

COMMENT ON TABLE job_pauses IS
    'mscribe-scheduler: pause state per job, shared by every instance';

-- The sync loop's poll reads the paused jobs only.
CREATE INDEX job_pauses_paused ON job_pauses (job_id) WHERE paused;

-- Manual triggers: pending until an instance that runs the job takes it
-- (`taken_by`), then finished with the run's execution id and outcome.
CREATE TABLE job_triggers (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id        text        NOT NULL,
    requested_at  timestamptz NOT NULL,
    source        text        NOT NULL,
    requested_by  text        NOT NULL,
    note          text,
    taken_by      text,
    taken_at      timestamptz,
    execution_id  text,
    outcome       text,
    finished_at   timestamptz
);

COMMENT ON TABLE job_triggers IS
    'mscribe-scheduler: manual triggers, each taken and run by one instance';

-- The sync loop's poll reads the untaken triggers only.
CREATE INDEX job_triggers_pending ON job_triggers (job_id, id) WHERE taken_by IS NULL;

-- Requests to cancel one run, handled by the instance that runs it.
CREATE TABLE execution_cancels (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id  text        NOT NULL,
    requested_at  timestamptz NOT NULL,
    source        text        NOT NULL,
    requested_by  text        NOT NULL,
    note          text,
    handled_by    text,
    handled_at    timestamptz,
    outcome       text
);

COMMENT ON TABLE execution_cancels IS
    'mscribe-scheduler: requests to cancel one run, handled by the instance that runs it';

-- The sync loop's poll reads the unhandled requests only.
CREATE INDEX execution_cancels_pending ON execution_cancels (id) WHERE handled_at IS NULL;

-- Every control action (pause, resume, trigger, cancel, backfill, ...).
CREATE TABLE control_audit (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            timestamptz NOT NULL,
    action        text        NOT NULL,
    job_id        text,
    execution_id  text,
    note          text,
    source        text        NOT NULL,
    instance_id   text        NOT NULL,
    detail        jsonb
);

COMMENT ON TABLE control_audit IS
    'mscribe-scheduler: every control action (pause, resume, trigger, cancel, backfill, ...)';

-- One job's actions, newest first.
CREATE INDEX control_audit_job ON control_audit (job_id, id);

-- The same access as the other tables (0003_row_level_security.sql).
ALTER TABLE job_definitions ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_pauses ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_triggers ENABLE ROW LEVEL SECURITY;
ALTER TABLE execution_cancels ENABLE ROW LEVEL SECURITY;
ALTER TABLE control_audit ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON job_definitions, job_pauses, job_triggers, execution_cancels, control_audit
    FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON job_definitions, job_pauses, job_triggers, execution_cancels, control_audit
    TO service_role;
GRANT USAGE, SELECT ON SEQUENCE job_triggers_id_seq, execution_cancels_id_seq, control_audit_id_seq
    TO service_role;
GRANT SELECT ON job_definitions, job_pauses, job_triggers, execution_cancels, control_audit
    TO scheduler_admin;

CREATE POLICY service_role_all ON job_definitions
    FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY service_role_all ON job_pauses
    FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY service_role_all ON job_triggers
    FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY service_role_all ON execution_cancels
    FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY service_role_all ON control_audit
    FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY scheduler_admin_read ON job_definitions
    FOR SELECT TO scheduler_admin USING (true);
CREATE POLICY scheduler_admin_read ON job_pauses
    FOR SELECT TO scheduler_admin USING (true);
CREATE POLICY scheduler_admin_read ON job_triggers
    FOR SELECT TO scheduler_admin USING (true);
CREATE POLICY scheduler_admin_read ON execution_cancels
    FOR SELECT TO scheduler_admin USING (true);
CREATE POLICY scheduler_admin_read ON control_audit
    FOR SELECT TO scheduler_admin USING (true);
