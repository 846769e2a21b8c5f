-- Hourly metrics per job, kept by mscribe-server's metrics-aggregation job
-- and pruned by its history-retention job: per job and hour of the nominal
-- fire time, the runs that ended (a run counts once, by its last attempt),
-- how many succeeded and failed, the fires skipped, the success rate and
-- the p50/p95 duration of the runs' last attempts. Rows are upserted by
-- (job_id, hour_start), so a rerun rewrites the same rows.
--
-- Servers before this migration created the table (the same definition)
-- themselves when they opened the database: such a database keeps its
-- table and rows, and gets the access rules below. The check comes first,
-- rather than CREATE .. IF NOT EXISTS, which would report "already exists,
-- skipping" to the client.
DO $$
BEGIN
    IF to_regclass('job_metrics_hourly') IS NULL THEN
        CREATE TABLE job_metrics_hourly (
            job_id        text             NOT NULL,
            hour_start    timestamptz      NOT NULL,
            runs          bigint           NOT NULL,
            successes     bigint           NOT NULL,
            failures      bigint           NOT NULL,
            skipped       bigint           NOT NULL,
            success_rate  double precision,
            p50_ms        bigint,
            p95_ms        bigint,
            updated_at    timestamptz      NOT NULL,
            PRIMARY KEY (job_id, hour_start)
        );
    END IF;
    -- Pruning by age.
    IF to_regclass('job_metrics_hourly_hour') IS NULL THEN
        CREATE INDEX job_metrics_hourly_hour ON job_metrics_hourly (hour_start);
    END IF;
END
$$;

COMMENT ON TABLE job_metrics_hourly IS
    'mscribe-server: runs, successes, failures, skips, success rate and p50/p95 duration per job and hour';

-- The same access as the other tables (0003_row_level_security.sql).
ALTER TABLE job_metrics_hourly ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON job_metrics_hourly FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON job_metrics_hourly TO service_role;
GRANT SELECT ON job_metrics_hourly TO scheduler_admin;
CREATE POLICY service_role_all ON job_metrics_hourly
    FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY scheduler_admin_read ON job_metrics_hourly
    FOR SELECT TO scheduler_admin USING (true);
