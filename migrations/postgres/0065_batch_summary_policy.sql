-- Row-level security for rolling-summary folds carried by the group-commit writer.
--
-- A user actor's fold rides with the user's next message write (src/store/messages.rs,
-- `SummaryWrite`), so the writer's batch transaction upserts `conversation_summaries` rows
-- of its batch's users, under the same `app.batch_user_ids` scope as their messages (see
-- 0043). An upsert needs to insert, read the conflicting row and update it: one policy each,
-- limited to the batch's users.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                   AND tablename = 'conversation_summaries' AND policyname = 'nudge_batch_insert') THEN
        CREATE POLICY nudge_batch_insert ON conversation_summaries FOR INSERT
            WITH CHECK (user_id = ANY (nudge_batch_users()));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                   AND tablename = 'conversation_summaries' AND policyname = 'nudge_batch_read') THEN
        CREATE POLICY nudge_batch_read ON conversation_summaries FOR SELECT
            USING (user_id = ANY (nudge_batch_users()));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                   AND tablename = 'conversation_summaries' AND policyname = 'nudge_batch_update') THEN
        CREATE POLICY nudge_batch_update ON conversation_summaries FOR UPDATE
            USING (user_id = ANY (nudge_batch_users()))
            WITH CHECK (user_id = ANY (nudge_batch_users()));
    END IF;
END
$$;
