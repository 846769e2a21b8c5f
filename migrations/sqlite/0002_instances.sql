-- Scheduler instances and their last heartbeat. A running attempt whose
-- instance has no fresh heartbeat is marked abandoned by the next instance
-- that starts.
CREATE TABLE scheduler_instances (
    instance_id   TEXT PRIMARY KEY NOT NULL,
    heartbeat_at  TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    hostname      TEXT
);
