-- Hourly metrics per job, kept by mscribe-server's metrics-aggregation job
-- and pruned by its history-retention job: per job and hour of the nominal
-- fire time, the runs that ended (a run counts once, by its last attempt),
-- how many succeeded and failed, the fires skipped, the success rate and
-- the p50/p95 duration of the runs' last attempts. Rows are upserted by
-- (job_id, hour_start), so a rerun rewrites the same rows. Timestamps are
-- UTC text as in 0001_executions.sql.
--
-- IF NOT EXISTS: servers before this migration created the table (the same
-- definition) themselves when they opened the database; such a database
-- keeps its table and rows.
CREATE TABLE IF NOT EXISTS job_metrics_hourly (
    job_id        TEXT    NOT NULL,
    hour_start    TEXT    NOT NULL,
    runs          INTEGER NOT NULL,
    successes     INTEGER NOT NULL,
    failures      INTEGER NOT NULL,
    skipped       INTEGER NOT NULL,
    success_rate  REAL,
    p50_ms        INTEGER,
    p95_ms        INTEGER,
    updated_at    TEXT    NOT NULL,
    PRIMARY KEY (job_id, hour_start)
);

-- Pruning by age.
CREATE INDEX IF NOT EXISTS job_metrics_hourly_hour ON job_metrics_hourly (hour_start);
