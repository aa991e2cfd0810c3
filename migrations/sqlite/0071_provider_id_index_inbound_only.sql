-- no-transaction
-- The dedupe index of inbound SMS by Twilio's MessageSid holds inbound SMS only.
--
-- Same index as migrations/postgres/0071_provider_id_index_inbound_only.sql.
--
-- It was the table's UNIQUE (user_id, provider_message_id) constraint, which indexed every
-- message, replies and web messages too, under a NULL id: half its entries could never be
-- looked up, and once a user's entries filled more than a page, each turn wrote two leaf
-- pages of it (the user's NULLs sort first, a new SID lands anywhere among the user's SIDs)
-- where it now writes one. NULLs never conflict, so the constraint is the same. Replaying
-- 62-turn group commits on databases the load harness grew with each index (10,000 users,
-- about 510,000 messages): 331 → 295 pages written per commit, and the index a quarter smaller
-- (docs/performance.md, round 13).
--
-- SQLite cannot drop a table's constraint in place, so `messages` is rebuilt by the
-- documented procedure (sqlite.org/lang_altertable.html section 7), as 0040 rebuilt `users`:
-- foreign keys off, outside sqlx's transaction (hence `no-transaction` above), otherwise
-- dropping `messages` would set every usage row's, memory's and model call's message to NULL;
-- then a transaction of its own. The copy uses `SELECT *`, so a column added to `messages` by
-- an earlier migration makes this one fail loudly instead of dropping it silently: add it to
-- `messages_new` below. The sequence of ids is carried over, so that no id is ever reused.

PRAGMA foreign_keys = OFF;

BEGIN;

CREATE TABLE messages_new (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id             BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel             TEXT    NOT NULL CHECK (channel IN ('sms', 'web')),
    direction           TEXT    NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    body                TEXT    NOT NULL,
    -- Twilio's MessageSid of an inbound SMS: the dedupe key of retried webhooks.
    provider_message_id TEXT,
    in_reply_to         INTEGER,
    created_at          TEXT    NOT NULL,
    -- Also the (user_id, id) index of per-user history queries.
    CONSTRAINT messages_user_id_id_key UNIQUE (user_id, id),
    -- A reply answers a message of the same user.
    CONSTRAINT messages_in_reply_to_fkey FOREIGN KEY (user_id, in_reply_to)
        REFERENCES messages (user_id, id)
) STRICT;

INSERT INTO messages_new SELECT * FROM messages;

-- Ids are never reused, not even those of the newest messages if they were deleted.
DELETE FROM sqlite_sequence WHERE name = 'messages_new';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'messages_new', seq FROM sqlite_sequence WHERE name = 'messages';

DROP TABLE messages;

ALTER TABLE messages_new RENAME TO messages;

CREATE UNIQUE INDEX messages_user_id_provider_message_id_key
    ON messages (user_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL;

CREATE INDEX messages_in_reply_to_idx ON messages (in_reply_to, user_id)
    WHERE in_reply_to IS NOT NULL;

COMMIT;

PRAGMA foreign_keys = ON;
