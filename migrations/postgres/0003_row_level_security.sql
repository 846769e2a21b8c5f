-- Who may touch the scheduler's tables.
--
--   service_role     full access (the scheduler itself, other services)
--   scheduler_admin  read only (dashboards, on-call)
--   anyone else      sees no row and can write none, even when granted
--                    table privileges (as Supabase grants anon and
--                    authenticated by default)
--
-- Roles are cluster-wide: they are created only when missing, so the same
-- migration runs on plain Postgres and on Supabase (which ships
-- service_role). Two databases migrated at the same moment may race to
-- create a role; the loser's duplicate error is caught. NOLOGIN: a login
-- user is granted membership (GRANT service_role TO app_user) or connects as
-- a role that already exists.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['service_role', 'scheduler_admin'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- created concurrently by another migration
            END;
        END IF;
    END LOOP;
END
$$;

ALTER TABLE scheduled_job_executions ENABLE ROW LEVEL SECURITY;
ALTER TABLE scheduler_instances ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON scheduled_job_executions, scheduler_instances FROM PUBLIC;

GRANT SELECT, INSERT, UPDATE, DELETE ON scheduled_job_executions, scheduler_instances
    TO service_role;
GRANT USAGE, SELECT ON SEQUENCE scheduled_job_executions_id_seq TO service_role;
GRANT SELECT ON scheduled_job_executions, scheduler_instances
    TO scheduler_admin;

CREATE POLICY service_role_all ON scheduled_job_executions
    FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY service_role_all ON scheduler_instances
    FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY scheduler_admin_read ON scheduled_job_executions
    FOR SELECT TO scheduler_admin USING (true);
CREATE POLICY scheduler_admin_read ON scheduler_instances
    FOR SELECT TO scheduler_admin USING (true);

-- The runner's own table, mscribe_migrations (which migrations were
-- applied), gets the same rules, read only, when it exists: mscribe's
-- runner creates it before the first migration; a database migrated with
-- plain `psql -f` or an SQL editor (as Supabase users do) has none, and
-- this file applies there all the same. (Until this block, the file named
-- the table outright and failed without the runner; the runner still
-- accepts that earlier text's checksum, see storage/src/migrate.rs.)
DO $$
BEGIN
    IF to_regclass('mscribe_migrations') IS NOT NULL THEN
        ALTER TABLE mscribe_migrations ENABLE ROW LEVEL SECURITY;
        REVOKE ALL ON mscribe_migrations FROM PUBLIC;
        GRANT SELECT ON mscribe_migrations TO service_role;
        GRANT SELECT ON mscribe_migrations TO scheduler_admin;
        CREATE POLICY service_role_read ON mscribe_migrations
            FOR SELECT TO service_role USING (true);
        CREATE POLICY scheduler_admin_read ON mscribe_migrations
            FOR SELECT TO scheduler_admin USING (true);
    END IF;
END
$$;
