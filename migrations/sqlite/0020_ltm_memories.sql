-- Long-term memory: durable facts about each user ("works night shifts", "meds at 8am"),
-- retrieved for every message and blended by relevance, importance and recency.
--
-- Same table as migrations/postgres/0020_ltm_memories.sql, in SQLite's types. `text` and `tags`
-- hold values sealed with AES-256-GCM (store/seal.rs): the file never holds a memory in clear.
-- `embedding` is the memory's vector as little-endian f32s (4 bytes per dimension), written
-- by a background task after the memory is stored; `embedding_model` names the model that made
-- it, so vectors of another model (or dimension) are never compared with a query's.

CREATE TABLE ltm_memories (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id           BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    text              TEXT    NOT NULL,
    kind              TEXT    NOT NULL
        CHECK (kind IN ('fact', 'preference', 'routine', 'health', 'person', 'work', 'goal')),
    tags              TEXT    NOT NULL,
    importance        REAL    NOT NULL CHECK (importance >= 0 AND importance <= 1),
    -- The message the fact was learnt from; kept when that message is deleted.
    source_message_id INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    created_at        TEXT    NOT NULL,
    -- Changes with the text, tags or importance (not with use or embedding): the cache of a
    -- user's actor compares it to know whether to reload.
    updated_at        TEXT    NOT NULL,
    last_used_at      TEXT,
    embedding         BLOB CHECK (embedding IS NULL OR length(embedding) % 4 = 0),
    embedding_model   TEXT,
    CHECK ((embedding IS NULL) = (embedding_model IS NULL))
) STRICT;

CREATE INDEX ltm_memories_user_id_id_idx ON ltm_memories (user_id, id);
