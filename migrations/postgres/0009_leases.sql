-- Leases on claimed fires (`ExecutionStore::claim_fires`): the instance that
-- claims a fire holds it until `lease_expires_at`, renewing it while the run
-- goes on; once the lease has run out without the fire ending, another
-- instance may take the fire over (`retake_fire`), with the next fencing
-- token. Events carry the token of the lease they were written under; a
-- store refuses those whose token is no longer the fire's (`fence`).
--
-- (0008 is left to the control tables, which land separately: the runner
-- applies whatever is missing, in order of number, and a gap is allowed.)
--
--   execution_id      the run's id as the claimer gave it (moves to the
--                     taker's id on a take-over); NULL on claims made before
--                     this migration
--   fence             the fencing token: 1 for the claimer, one more per
--                     take-over
--   lease_expires_at  when the lease runs out; NULL: the claim holds no lease
--   ended             true once the fire's last event was written (or it was
--                     claimed only to be recorded skipped): no lease any more
--
-- Each step is taken only when its object is missing (rather than ADD
-- COLUMN IF NOT EXISTS, which reports "already exists, skipping" to the
-- client), so the file applies again over itself unchanged. Columns with a
-- constant default or none rewrite no row; the CHECKs are verified in one
-- scan each.
--
-- Access needs nothing new: 0003_row_level_security.sql and
-- 0005_fire_claims.sql grant privileges on whole tables (no column list),
-- so service_role may read and write the new columns (and lock claim rows
-- with SELECT .. FOR UPDATE, which needs UPDATE) and scheduler_admin may
-- read them; the row-level policies cover every column.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                   WHERE attrelid = 'fire_claims'::regclass
                     AND attname = 'execution_id' AND NOT attisdropped) THEN
        ALTER TABLE fire_claims ADD COLUMN execution_id uuid;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                   WHERE attrelid = 'fire_claims'::regclass
                     AND attname = 'fence' AND NOT attisdropped) THEN
        ALTER TABLE fire_claims ADD COLUMN fence bigint NOT NULL DEFAULT 1
            CONSTRAINT fire_claims_fence_check CHECK (fence >= 1);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                   WHERE attrelid = 'fire_claims'::regclass
                     AND attname = 'lease_expires_at' AND NOT attisdropped) THEN
        ALTER TABLE fire_claims ADD COLUMN lease_expires_at timestamptz;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                   WHERE attrelid = 'fire_claims'::regclass
                     AND attname = 'ended' AND NOT attisdropped) THEN
        ALTER TABLE fire_claims ADD COLUMN ended boolean NOT NULL DEFAULT false;
        -- Claims made before leases existed hold none: they are over.
        UPDATE fire_claims SET ended = true WHERE lease_expires_at IS NULL;
    END IF;
    -- Only claims not ended are indexed, a handful at a time: the leases
    -- that ran out, oldest first (`expired_leases`), and a job's live
    -- leases (`max_running`; without it, the count would scan every claim
    -- of the job kept since the last prune).
    IF to_regclass('fire_claims_open_leases') IS NULL THEN
        CREATE INDEX fire_claims_open_leases
            ON fire_claims (lease_expires_at)
            WHERE NOT ended;
    END IF;
    IF to_regclass('fire_claims_open_leases_by_job') IS NULL THEN
        CREATE INDEX fire_claims_open_leases_by_job
            ON fire_claims (job_id, lease_expires_at)
            WHERE NOT ended;
    END IF;

    -- What made each fire (`FireKind`), and the fencing token of the lease
    -- its row was written under (NULL when the fire was not claimed).
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                   WHERE attrelid = 'scheduled_job_executions'::regclass
                     AND attname = 'kind' AND NOT attisdropped) THEN
        ALTER TABLE scheduled_job_executions
            ADD COLUMN kind text NOT NULL DEFAULT 'schedule'
                CONSTRAINT scheduled_job_executions_kind_check
                CHECK (kind IN ('schedule', 'manual', 'backfill'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                   WHERE attrelid = 'scheduled_job_executions'::regclass
                     AND attname = 'fence' AND NOT attisdropped) THEN
        ALTER TABLE scheduled_job_executions
            ADD COLUMN fence bigint
                CONSTRAINT scheduled_job_executions_fence_check
                CHECK (fence IS NULL OR fence >= 1);
    END IF;
END
$$;

COMMENT ON COLUMN fire_claims.execution_id IS
    'mscribe-scheduler: the run''s id (the taker''s after a take-over); NULL on claims from before leases';
COMMENT ON COLUMN fire_claims.fence IS
    'mscribe-scheduler: the fencing token of the lease, 1 for the claimer, one more per take-over';
COMMENT ON COLUMN fire_claims.lease_expires_at IS
    'mscribe-scheduler: when the lease runs out unless renewed; NULL: no lease';
COMMENT ON COLUMN fire_claims.ended IS
    'mscribe-scheduler: the fire''s last event was written: no lease any more';
COMMENT ON COLUMN scheduled_job_executions.kind IS
    'mscribe-scheduler: what made the fire: schedule, manual or backfill';
COMMENT ON COLUMN scheduled_job_executions.fence IS
    'mscribe-scheduler: the fencing token of the lease the row was written under, NULL when not claimed';
