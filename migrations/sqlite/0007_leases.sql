-- Leases on claimed fires (`ExecutionStore::claim_fires`): the instance that
-- claims a fire holds it until `lease_expires_at`, renewing it while the run
-- goes on; once the lease has run out without the fire ending, another
-- instance may take the fire over (`retake_fire`), with the next fencing
-- token. Events carry the token of the lease they were written under; a
-- store refuses those whose token is no longer the fire's (`fence`).
--
-- (0006 is left to the control tables, which land separately: the runner
-- applies whatever is missing, in order of number, and a gap is allowed.)
--
--   execution_id      the run's id as the claimer gave it (moves to the
--                     taker's id on a take-over); NULL on claims made before
--                     this migration
--   fence             the fencing token: 1 for the claimer, one more per
--                     take-over
--   lease_expires_at  when the lease runs out (UTC text as in
--                     0001_executions.sql); NULL: the claim holds no lease
--   ended             1 once the fire's last event was written (or it was
--                     claimed only to be recorded skipped): no lease any more
ALTER TABLE fire_claims ADD COLUMN execution_id TEXT;
ALTER TABLE fire_claims ADD COLUMN fence INTEGER NOT NULL DEFAULT 1 CHECK (fence >= 1);
ALTER TABLE fire_claims ADD COLUMN lease_expires_at TEXT;
ALTER TABLE fire_claims ADD COLUMN ended INTEGER NOT NULL DEFAULT 0 CHECK (ended IN (0, 1));

-- Claims made before leases existed hold none: they are over.
UPDATE fire_claims SET ended = 1 WHERE lease_expires_at IS NULL;

-- Only claims not ended are indexed, a handful at a time: the leases that
-- ran out, oldest first (`expired_leases`), and a job's live leases
-- (`max_running`; without it, the count would scan every claim of the job
-- kept since the last prune).
CREATE INDEX IF NOT EXISTS fire_claims_open_leases
    ON fire_claims (lease_expires_at)
    WHERE ended = 0;
CREATE INDEX IF NOT EXISTS fire_claims_open_leases_by_job
    ON fire_claims (job_id, lease_expires_at)
    WHERE ended = 0;

-- What made each fire (`FireKind`), and the fencing token of the lease its
-- row was written under (NULL when the fire was not claimed).
ALTER TABLE scheduled_job_executions
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'schedule'
        CHECK (kind IN ('schedule', 'manual', 'backfill'));
ALTER TABLE scheduled_job_executions
    ADD COLUMN fence INTEGER CHECK (fence IS NULL OR fence >= 1);
