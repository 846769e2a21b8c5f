-- Scheduler instances and their last heartbeat. A running attempt whose
-- instance has no fresh heartbeat is marked abandoned by the next instance
-- that starts.
CREATE TABLE scheduler_instances (
    instance_id   text        PRIMARY KEY,
    heartbeat_at  timestamptz NOT NULL,
    started_at    timestamptz NOT NULL,
    hostname      text
);

COMMENT ON TABLE scheduler_instances IS
    'mscribe-scheduler: live scheduler instances and their last heartbeat';
