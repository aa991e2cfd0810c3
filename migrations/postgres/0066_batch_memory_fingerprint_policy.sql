-- Row-level security for the memory fingerprints the group-commit writer reads.
--
-- A turn's write comes back with its user's long-term-memory fingerprint (count, newest id,
-- latest change), read in the writer's batch transaction, so the user's actor learns whether
-- its memory cache is stale without a query of its own after every turn
-- (src/store/messages.rs, `Committed`). The batch reads `ltm_memories` of exactly its users,
-- under the same `app.batch_user_ids` scope as their messages (see 0043): read only.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                   AND tablename = 'ltm_memories' AND policyname = 'nudge_batch_read') THEN
        CREATE POLICY nudge_batch_read ON ltm_memories FOR SELECT
            USING (user_id = ANY (nudge_batch_users()));
    END IF;
END
$$;
