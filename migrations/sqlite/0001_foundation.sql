-- Foundation: users and their dedicated numbers, the conversation, SMS usage, tasks, groceries.
--
-- Same tables and columns as migrations/postgres/0001_foundation.sql, in SQLite's types:
-- user ids are UUIDs as 16-byte BLOBs (sqlx's `Uuid` encoding), timestamps are TEXT written by
-- the application in UTC, booleans are 0/1 INTEGERs. STRICT tables refuse values of the wrong
-- type instead of storing them silently.

CREATE TABLE users (
    id            BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    display_name  TEXT    NOT NULL,
    -- The user's own phone, E.164.
    phone         TEXT    NOT NULL,
    language      TEXT    NOT NULL CHECK (language IN ('en', 'fr')),
    time_zone     TEXT    NOT NULL,
    role          TEXT    NOT NULL DEFAULT 'standard' CHECK (role IN ('standard', 'premium', 'admin')),
    sms_opted_out INTEGER NOT NULL DEFAULT 0 CHECK (sms_opted_out IN (0, 1)),
    created_at    TEXT    NOT NULL,
    CONSTRAINT users_phone_key UNIQUE (phone)
) STRICT;

-- The dedicated Twilio number each user texts (one per user for now).
CREATE TABLE user_phone_numbers (
    number     TEXT NOT NULL PRIMARY KEY,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL
) STRICT;

CREATE INDEX user_phone_numbers_user_id_idx ON user_phone_numbers (user_id);

CREATE TABLE messages (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id             BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel             TEXT    NOT NULL CHECK (channel IN ('sms', 'web')),
    direction           TEXT    NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    body                TEXT    NOT NULL,
    -- Twilio's MessageSid of an inbound SMS: the dedupe key of retried webhooks.
    provider_message_id TEXT,
    in_reply_to         INTEGER,
    created_at          TEXT    NOT NULL,
    CONSTRAINT messages_user_id_provider_message_id_key UNIQUE (user_id, provider_message_id),
    -- Also the (user_id, id) index of per-user history queries.
    CONSTRAINT messages_user_id_id_key UNIQUE (user_id, id),
    -- A reply answers a message of the same user.
    CONSTRAINT messages_in_reply_to_fkey FOREIGN KEY (user_id, in_reply_to)
        REFERENCES messages (user_id, id)
) STRICT;

CREATE INDEX messages_in_reply_to_idx ON messages (user_id, in_reply_to)
    WHERE in_reply_to IS NOT NULL;

CREATE TABLE sms_usage_logs (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id               BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message_id            INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    direction             TEXT    NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    segments              INTEGER NOT NULL CHECK (segments > 0),
    encoding              TEXT    NOT NULL CHECK (encoding IN ('GSM-7', 'UCS-2')),
    estimated_cost_micros INTEGER NOT NULL CHECK (estimated_cost_micros >= 0),
    created_at            TEXT    NOT NULL
) STRICT;

CREATE INDEX sms_usage_logs_user_id_id_idx ON sms_usage_logs (user_id, id);

CREATE TABLE tasks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title        TEXT    NOT NULL,
    done         INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)),
    created_at   TEXT    NOT NULL,
    completed_at TEXT
) STRICT;

CREATE INDEX tasks_user_id_done_id_idx ON tasks (user_id, done, id);

CREATE TABLE grocery_items (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    checked    INTEGER NOT NULL DEFAULT 0 CHECK (checked IN (0, 1)),
    created_at TEXT    NOT NULL
) STRICT;

CREATE INDEX grocery_items_user_id_checked_id_idx ON grocery_items (user_id, checked, id);
