-- Fires claimed by the scheduler instances that share this database
-- (`SchedulerBuilder::claim_fires`): a job's fire at one nominal time runs
-- on the instance whose claim came first. Pruned with the history.
CREATE TABLE fire_claims (
    job_id        TEXT NOT NULL,
    scheduled_at  TEXT NOT NULL,
    instance_id   TEXT NOT NULL,
    claimed_at    TEXT NOT NULL,
    PRIMARY KEY (job_id, scheduled_at)
) WITHOUT ROWID;
