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
ALTER TABLE fire_claims
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'schedule'
        CHECK (kind IN ('schedule', 'manual', 'backfill'));

-- A trigger is run as the manual fire at its `requested_at`, claimed like
-- any fire. One taken by an instance that then died before the claim was
-- written is taken again (`ControlStore::take_triggers`); these are the
-- triggers to look at: taken, and not known to have been claimed or run.
CREATE INDEX IF NOT EXISTS job_triggers_unsettled
    ON job_triggers (taken_at)
    WHERE taken_by IS NOT NULL AND (finished_at IS NULL OR outcome = 'pending');

-- One backfill of a job at a time in the cluster (`ControlStore::
-- lock_backfill`): its holder renews the lock while the backfill runs; a
-- lock whose holder died runs out at `expires_at` and may be taken.
CREATE TABLE IF NOT EXISTS backfill_locks (
    job_id       TEXT NOT NULL PRIMARY KEY,
    holder       TEXT NOT NULL,
    acquired_at  TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
