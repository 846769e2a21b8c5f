-- What runs once per cluster, also when an instance dies: triggers are
-- claimed like scheduled fires (the claim keeps its kind, and the triggers
-- taken but not yet claimed are indexed to be taken again), and one
-- backfill of a job runs at a time (`backfill_locks`).
--
-- What made each claimed fire (`FireKind`): `schedule`, or `manual` for a
-- trigger. Kept in the claim so that an instance that takes over a fire
-- whose owner stopped renewing its lease runs it as what it was: a manual
-- trigger is run again whatever the job's misfire policy, a scheduled fire
-- only within it. Claims made before this migration were all scheduled.
--
-- Taken only when the column is missing, so the file applies again over
-- itself unchanged (see 0009_leases.sql); a constant default rewrites no
-- row. Access needs nothing new: the grants of 0005_fire_claims.sql are on
-- the whole table.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                   WHERE attrelid = 'fire_claims'::regclass
                     AND attname = 'kind' AND NOT attisdropped) THEN
        ALTER TABLE fire_claims ADD COLUMN kind text NOT NULL DEFAULT 'schedule'
            CONSTRAINT fire_claims_kind_check CHECK (kind IN ('schedule', 'manual', 'backfill'));
    END IF;
    -- A trigger is run as the manual fire at its `requested_at`, claimed
    -- like any fire. One taken by an instance that then died before the
    -- claim was written is taken again (`ControlStore::take_triggers`);
    -- these are the triggers to look at: taken, and not known to have been
    -- claimed or run.
    IF to_regclass('job_triggers_unsettled') IS NULL THEN
        CREATE INDEX job_triggers_unsettled ON job_triggers (taken_at)
            WHERE taken_by IS NOT NULL AND (finished_at IS NULL OR outcome = 'pending');
    END IF;
END
$$;

COMMENT ON COLUMN fire_claims.kind IS
    'What made the fire: schedule, manual (a trigger) or backfill; a take-over runs it as that';

-- One backfill of a job at a time in the cluster (`ControlStore::
-- lock_backfill`): its holder renews the lock while the backfill runs; a
-- lock whose holder died runs out at `expires_at` and may be taken. Access
-- as for the other control tables (0008_control.sql).
CREATE TABLE IF NOT EXISTS backfill_locks (
    job_id       text        NOT NULL PRIMARY KEY,
    holder       text        NOT NULL,
    acquired_at  timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);

COMMENT ON TABLE backfill_locks IS
    'mscribe-scheduler: one backfill of a job at a time in the cluster';

ALTER TABLE backfill_locks ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON backfill_locks FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON backfill_locks TO service_role;
GRANT SELECT ON backfill_locks TO scheduler_admin;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policies
                   WHERE tablename = 'backfill_locks' AND policyname = 'service_role_all') THEN
        CREATE POLICY service_role_all ON backfill_locks
            FOR ALL TO service_role USING (true) WITH CHECK (true);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policies
                   WHERE tablename = 'backfill_locks' AND policyname = 'scheduler_admin_read') THEN
        CREATE POLICY scheduler_admin_read ON backfill_locks
            FOR SELECT TO scheduler_admin USING (true);
    END IF;
END
$$;
