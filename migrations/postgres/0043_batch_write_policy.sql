-- Row-level security for the group-commit writer (src/store/writer.rs).
--
-- The writer stores many users' messages and SMS usage rows in one transaction, with one
-- multi-row statement per table, under the role `nudge_app`. One `app.user_id` cannot name
-- them all, so the transaction sets `app.batch_user_ids` to exactly the users whose rows the
-- batch holds, and these policies let it insert (and read back, for RETURNING and the
-- retried-webhook lookup) rows of those users and no other. Permissive policies add up with
-- `nudge_user_isolation`: without the setting they allow nothing more than it does.

CREATE OR REPLACE FUNCTION nudge_batch_users() RETURNS uuid[]
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(nullif(current_setting('app.batch_user_ids', true), '')::uuid[],
                          '{}'::uuid[]) $$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['messages', 'sms_usage_logs'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                       AND tablename = t AND policyname = 'nudge_batch_insert') THEN
            EXECUTE format('CREATE POLICY nudge_batch_insert ON %I FOR INSERT '
                           'WITH CHECK (user_id = ANY (nudge_batch_users()))', t);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                       AND tablename = t AND policyname = 'nudge_batch_read') THEN
            EXECUTE format('CREATE POLICY nudge_batch_read ON %I FOR SELECT '
                           'USING (user_id = ANY (nudge_batch_users()))', t);
        END IF;
    END LOOP;
END
$$;
