-- The agent: token usage of model calls (cost metrics) and each user's rolling conversation
-- summary (older turns folded, so a restart keeps the conversation's thread).
--
-- Same tables and columns as migrations/sqlite/0030_agent.sql.

CREATE TABLE llm_usage (
    id            BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The reply the call served; NULL for a summary fold.
    message_id    BIGINT      REFERENCES messages (id) ON DELETE SET NULL,
    -- Which provider answered (gemini, fallback) and its model.
    provider      TEXT        NOT NULL,
    model         TEXT        NOT NULL,
    prompt_tokens BIGINT      NOT NULL CHECK (prompt_tokens >= 0),
    output_tokens BIGINT      NOT NULL CHECK (output_tokens >= 0),
    total_tokens  BIGINT      NOT NULL CHECK (total_tokens >= 0),
    -- True when the answer came from the response cache: no tokens were spent on it.
    cached        BOOLEAN     NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE INDEX llm_usage_user_id_id_idx ON llm_usage (user_id, id);
CREATE INDEX llm_usage_provider_created_at_idx ON llm_usage (provider, created_at);

CREATE TABLE conversation_summaries (
    user_id            UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Sealed (AES-256-GCM, place conversation_summaries.summary:<user id>).
    summary            TEXT        NOT NULL,
    -- The newest message folded into it: the prompt's recent turns start after it.
    through_message_id BIGINT      NOT NULL,
    folded_messages    BIGINT      NOT NULL CHECK (folded_messages >= 0),
    updated_at         TIMESTAMPTZ NOT NULL,
    CONSTRAINT conversation_summaries_pkey PRIMARY KEY (user_id)
);
