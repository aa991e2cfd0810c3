-- Row-level security: a second wall behind the store's `WHERE user_id = $1`.
--
-- Every table with a `user_id` column (and `users` by its id) gets the policy
-- `nudge_user_isolation`: a row is visible, and may be written, only when its user is the one
-- named by the transaction's `app.user_id` setting. Without the setting a query sees nothing.
--
-- The policies bind every role but the tables' owner (ENABLE, not FORCE) and BYPASSRLS
-- roles. `nudge_app` holds the grants: the store switches to it, with `app.user_id` set, for
-- the requests people make through the REST API (`with_user!` in src/store/mod.rs), or, with
-- NUDGE_DATABASE_API_URL, uses a login role that is a member of it and cannot become the
-- owner. The owner role, which migrates the schema and serves the assistant, the SMS edge and
-- operator tasks, is not bound.
--
-- `nudge_enable_rls()` is idempotent: a later migration that adds a user table calls it again
-- (`SELECT nudge_enable_rls();`) to cover it. Creating the role needs CREATEROLE; without it
-- the policies are still created and an operator creates the role (see README).

CREATE OR REPLACE FUNCTION nudge_current_user() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;

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
                'USING (user_id = nudge_current_user()) '
                'WITH CHECK (user_id = nudge_current_user())', t);
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
            USING (id = nudge_current_user())
            WITH CHECK (id = nudge_current_user());
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

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nudge_app') THEN
        IF EXISTS (SELECT 1 FROM pg_roles
                   WHERE rolname = current_user AND (rolsuper OR rolcreaterole)) THEN
            BEGIN
                CREATE ROLE nudge_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- another database of the cluster created it meanwhile
            END;
        ELSE
            RAISE NOTICE 'role nudge_app is missing and % cannot create it: '
                'row-level security policies exist but the REST API runs unrestricted', current_user;
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nudge_app')
       AND NOT pg_has_role(current_user, 'nudge_app', 'MEMBER') THEN
        BEGIN
            EXECUTE format('GRANT nudge_app TO %I', current_user);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE '% cannot be granted nudge_app: grant it as an administrator', current_user;
        END;
    END IF;
END
$$;

SELECT nudge_enable_rls();
