-- Row-level security that reads its scope once per statement, not once per row.
--
-- The policies compared each row's user_id with `nudge_current_user()` or
-- `nudge_batch_users()`. Both are STABLE SQL functions that PostgreSQL inlines into the
-- policy's expression, so every row checked parsed the setting again: for the group-commit
-- writer, the whole `app.batch_user_ids` list of UUIDs, for every message and usage row
-- inserted (the WITH CHECK of its INSERT) and again for RETURNING (the SELECT policy). Under
-- load that parsing was a third of the database's CPU, and grew with the square of a batch.
--
-- Wrapped in a scalar subquery, the scope becomes an InitPlan: evaluated once when the
-- statement starts, its value reused for every row. The comparison and the rows each policy
-- admits are unchanged.

DO $$
DECLARE
    p record;
    col text;
BEGIN
    FOR p IN
        SELECT tablename, policyname, cmd FROM pg_policies
        WHERE schemaname = current_schema()
          AND policyname IN ('nudge_user_isolation', 'nudge_batch_insert', 'nudge_batch_read',
                             'nudge_batch_update')
    LOOP
        col := CASE WHEN p.tablename = 'users' THEN 'id' ELSE 'user_id' END;
        IF p.policyname = 'nudge_user_isolation' THEN
            EXECUTE format('ALTER POLICY %I ON %I USING (%I = (SELECT nudge_current_user())) '
                           'WITH CHECK (%I = (SELECT nudge_current_user()))',
                           p.policyname, p.tablename, col, col);
        ELSIF p.cmd = 'INSERT' THEN
            EXECUTE format('ALTER POLICY %I ON %I WITH CHECK (%I = ANY ((SELECT nudge_batch_users())::uuid[]))',
                           p.policyname, p.tablename, col);
        ELSIF p.cmd = 'SELECT' THEN
            EXECUTE format('ALTER POLICY %I ON %I USING (%I = ANY ((SELECT nudge_batch_users())::uuid[]))',
                           p.policyname, p.tablename, col);
        ELSE
            EXECUTE format('ALTER POLICY %I ON %I USING (%I = ANY ((SELECT nudge_batch_users())::uuid[])) '
                           'WITH CHECK (%I = ANY ((SELECT nudge_batch_users())::uuid[]))',
                           p.policyname, p.tablename, col, col);
        END IF;
    END LOOP;
END
$$;

-- Tables added later get the same form (see 0041_row_level_security.sql for the rest of it).
CREATE OR REPLACE FUNCTION nudge_enable_rls() RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    t text;
    app_role boolean := EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nudge_app');
BEGIN
    FOR t IN
        SELECT c.table_name::text
        FROM information_schema.columns c
        JOIN information_schema.tables tb
          ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name
        WHERE c.table_schema = current_schema() AND c.column_name = 'user_id'
          AND tb.table_type = 'BASE TABLE'
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        IF NOT EXISTS (SELECT 1 FROM pg_policies
                       WHERE schemaname = current_schema() AND tablename = t
                         AND policyname = 'nudge_user_isolation') THEN
            EXECUTE format(
                'CREATE POLICY nudge_user_isolation ON %I '
                'USING (user_id = (SELECT nudge_current_user())) '
                'WITH CHECK (user_id = (SELECT nudge_current_user()))', t);
        END IF;
        IF app_role THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO nudge_app', t);
        END IF;
    END LOOP;

    ALTER TABLE users ENABLE ROW LEVEL SECURITY;
    IF NOT EXISTS (SELECT 1 FROM pg_policies
                   WHERE schemaname = current_schema() AND tablename = 'users'
                     AND policyname = 'nudge_user_isolation') THEN
        CREATE POLICY nudge_user_isolation ON users
            USING (id = (SELECT nudge_current_user()))
            WITH CHECK (id = (SELECT nudge_current_user()));
    END IF;

    IF app_role THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO nudge_app', current_schema());
        GRANT SELECT, INSERT, UPDATE, DELETE ON users TO nudge_app;
        EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO nudge_app',
                       current_schema());
        -- The security log is append-only for the application role, and shows it nothing.
        GRANT INSERT ON audit_events TO nudge_app;
    END IF;
END
$$;
