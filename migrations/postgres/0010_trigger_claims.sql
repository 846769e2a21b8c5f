-- Triggers claimed like scheduled fires, so that one survives the death of
-- the instance that took it: the claim keeps its kind, and the triggers
-- taken but not yet claimed are indexed to be taken again.
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
