-- Fires claimed by the scheduler instances that share this database
-- (`SchedulerBuilder::claim_fires`): a job's fire at one nominal time runs
-- on the instance whose claim came first. Pruned with the history.
CREATE TABLE fire_claims (
    job_id        text        NOT NULL,
    scheduled_at  timestamptz NOT NULL,
    instance_id   text        NOT NULL,
    claimed_at    timestamptz NOT NULL,
    PRIMARY KEY (job_id, scheduled_at)
);

COMMENT ON TABLE fire_claims IS
    'mscribe-scheduler: which instance took each fire, when several share this database';

-- The same access as the other tables (0003_row_level_security.sql).
ALTER TABLE fire_claims ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON fire_claims FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON fire_claims TO service_role;
GRANT SELECT ON fire_claims TO scheduler_admin;
CREATE POLICY service_role_all ON fire_claims
    FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY scheduler_admin_read ON fire_claims
    FOR SELECT TO scheduler_admin USING (true);
