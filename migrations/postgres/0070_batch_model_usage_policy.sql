-- Row-level security for model usage carried by the group-commit writer.
--
-- A turn's reply now carries the usage of the model calls that wrote it (src/store/messages.rs,
-- `ReplyWrite::model_usage`), so the writer's batch transaction inserts `llm_usage` rows of its
-- batch's users, under the same `app.batch_user_ids` scope as their messages (see 0043). The
-- batch only inserts them (no RETURNING): one policy, limited to the batch's users, reading its
-- scope once per statement as 0069 made every policy do.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                   AND tablename = 'llm_usage' AND policyname = 'nudge_batch_insert') THEN
        CREATE POLICY nudge_batch_insert ON llm_usage FOR INSERT
            WITH CHECK (user_id = ANY ((SELECT nudge_batch_users())::uuid[]));
    END IF;
END
$$;
