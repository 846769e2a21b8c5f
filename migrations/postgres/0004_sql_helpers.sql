-- SQL helpers so that other services can record their own runs in the same
-- history, from plain SQL:
--
--   SELECT log_job_start('nightly-export', '0b7c...-uuid', 1);
--   SELECT log_job_complete('0b7c...-uuid', 'succeeded', NULL,
--                           '{"rows": 1200}', '{"seconds": 4.2}');
--
-- SECURITY INVOKER, on purpose (it is also the default): the helpers run
-- with the caller's rights, so the row-level security and grants of
-- 0003_row_level_security.sql stay the only gate. service_role can log;
-- scheduler_admin and everyone else cannot write through them either. A
-- SECURITY DEFINER helper would run as its owner (usually a superuser, who
-- bypasses RLS) and would let anyone with EXECUTE write rows, a second
-- access path to audit and a classic escalation route when its search_path
-- can be hijacked. EXECUTE is still granted to service_role only, for
-- defence in depth and a clear "permission denied for function" error.
--
-- search_path is pinned to the one in force when the migration ran (the
-- schema holding the tables), so the helpers find them whatever the
-- caller's search_path is.

-- Records that an instance is alive (what the scheduler's heartbeat does).
CREATE FUNCTION log_heartbeat(p_instance_id text)
RETURNS void
LANGUAGE sql
SECURITY INVOKER
SET search_path FROM CURRENT
AS $$
    INSERT INTO scheduler_instances (instance_id, heartbeat_at, started_at)
    VALUES (p_instance_id, now(), now())
    ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at;
$$;

-- Records the start of an attempt as a 'running' row, scheduled and started
-- now. Idempotent: returns false when (execution_id, attempt) already
-- exists. The instance defaults to 'sql:<session user>' and gets a heartbeat
-- now; a service whose runs last longer than the scheduler's staleness
-- window must call log_heartbeat(instance) meanwhile, or a scheduler that
-- starts will mark its open rows 'abandoned'.
CREATE FUNCTION log_job_start(
    p_job_id       text,
    p_execution_id uuid,
    p_attempt      integer DEFAULT 1,
    p_instance_id  text DEFAULT NULL,
    p_scheduled_at timestamptz DEFAULT NULL
)
RETURNS boolean
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_instance text := coalesce(p_instance_id, 'sql:' || session_user);
    v_inserted integer;
BEGIN
    IF p_job_id IS NULL OR p_execution_id IS NULL OR p_attempt IS NULL THEN
        RAISE EXCEPTION 'log_job_start: job_id, execution_id and attempt are required'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM log_heartbeat(v_instance);
    INSERT INTO scheduled_job_executions
        (job_id, execution_id, attempt, status, scheduled_at, started_at, instance_id)
    VALUES
        (p_job_id, p_execution_id, p_attempt, 'running',
         coalesce(p_scheduled_at, now()), now(), v_instance)
    ON CONFLICT (execution_id, attempt) DO NOTHING;
    GET DIAGNOSTICS v_inserted = ROW_COUNT;
    RETURN v_inserted > 0;
END
$$;

-- Completes the latest attempt of an execution with a final status
-- (succeeded, failed, timed_out, cancelled, retries_exhausted, abandoned).
-- Returns the attempt number it completed; raises when the execution has no
-- row.
CREATE FUNCTION log_job_complete(
    p_execution_id uuid,
    p_status       text,
    p_error        text DEFAULT NULL,
    p_result       jsonb DEFAULT NULL,
    p_metrics      jsonb DEFAULT NULL
)
RETURNS integer
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_attempt integer;
BEGIN
    IF p_status IS NULL OR p_status NOT IN (
        'succeeded', 'failed', 'timed_out', 'cancelled', 'retries_exhausted', 'abandoned')
    THEN
        RAISE EXCEPTION 'log_job_complete: invalid final status "%"', p_status
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'one of succeeded, failed, timed_out, cancelled, retries_exhausted, abandoned';
    END IF;
    UPDATE scheduled_job_executions e
    SET status       = p_status,
        completed_at = now(),
        duration_ms  = greatest(0, floor(extract(epoch FROM (now() - e.started_at)) * 1000))::bigint,
        error        = p_error,
        result       = p_result,
        metrics      = p_metrics
    WHERE e.id = (
        SELECT x.id FROM scheduled_job_executions x
        WHERE x.execution_id = p_execution_id
        ORDER BY x.attempt DESC
        LIMIT 1)
    RETURNING e.attempt INTO v_attempt;
    IF v_attempt IS NULL THEN
        RAISE EXCEPTION 'log_job_complete: execution % has no started attempt', p_execution_id
            USING ERRCODE = 'no_data_found';
    END IF;
    RETURN v_attempt;
END
$$;

REVOKE ALL ON FUNCTION log_heartbeat(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION log_job_start(text, uuid, integer, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION log_job_complete(uuid, text, text, jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION log_heartbeat(text) TO service_role;
GRANT EXECUTE ON FUNCTION log_job_start(text, uuid, integer, text, timestamptz) TO service_role;
GRANT EXECUTE ON FUNCTION log_job_complete(uuid, text, text, jsonb, jsonb) TO service_role;
