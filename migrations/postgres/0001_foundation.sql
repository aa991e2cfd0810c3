-- Foundation: users and their dedicated numbers, the conversation, SMS usage, tasks, groceries.
--
-- Same tables and columns as migrations/sqlite/0001_foundation.sql. Constraint names are
-- spelled out: the store maps unique violations to `StoreError::Conflict` by them.

CREATE TABLE users (
    id            UUID        PRIMARY KEY,
    display_name  TEXT        NOT NULL,
    -- The user's own phone, E.164.
    phone         TEXT        NOT NULL,
    language      TEXT        NOT NULL CHECK (language IN ('en', 'fr')),
    time_zone     TEXT        NOT NULL,
    role          TEXT        NOT NULL DEFAULT 'standard' CHECK (role IN ('standard', 'premium', 'admin')),
    sms_opted_out BOOLEAN     NOT NULL DEFAULT false,
    created_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT users_phone_key UNIQUE (phone)
);

-- The dedicated Twilio number each user texts (one per user for now).
CREATE TABLE user_phone_numbers (
    number     TEXT        NOT NULL,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT user_phone_numbers_pkey PRIMARY KEY (number)
);

CREATE INDEX user_phone_numbers_user_id_idx ON user_phone_numbers (user_id);

CREATE TABLE messages (
    id                  BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id             UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel             TEXT        NOT NULL CHECK (channel IN ('sms', 'web')),
    direction           TEXT        NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    body                TEXT        NOT NULL,
    -- Twilio's MessageSid of an inbound SMS: the dedupe key of retried webhooks.
    provider_message_id TEXT,
    in_reply_to         BIGINT,
    created_at          TIMESTAMPTZ NOT NULL,
    CONSTRAINT messages_user_id_provider_message_id_key UNIQUE (user_id, provider_message_id),
    -- Also the (user_id, id) index of per-user history queries.
    CONSTRAINT messages_user_id_id_key UNIQUE (user_id, id),
    -- A reply answers a message of the same user.
    CONSTRAINT messages_in_reply_to_fkey FOREIGN KEY (user_id, in_reply_to)
        REFERENCES messages (user_id, id)
);

CREATE INDEX messages_in_reply_to_idx ON messages (user_id, in_reply_to)
    WHERE in_reply_to IS NOT NULL;

CREATE TABLE sms_usage_logs (
    id                    BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id               UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message_id            BIGINT      REFERENCES messages (id) ON DELETE SET NULL,
    direction             TEXT        NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    segments              INTEGER     NOT NULL CHECK (segments > 0),
    encoding              TEXT        NOT NULL CHECK (encoding IN ('GSM-7', 'UCS-2')),
    estimated_cost_micros BIGINT      NOT NULL CHECK (estimated_cost_micros >= 0),
    created_at            TIMESTAMPTZ NOT NULL
);

CREATE INDEX sms_usage_logs_user_id_id_idx ON sms_usage_logs (user_id, id);

CREATE TABLE tasks (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title        TEXT        NOT NULL,
    done         BOOLEAN     NOT NULL DEFAULT false,
    created_at   TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ
);

CREATE INDEX tasks_user_id_done_id_idx ON tasks (user_id, done, id);

CREATE TABLE grocery_items (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT        NOT NULL,
    checked    BOOLEAN     NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX grocery_items_user_id_checked_id_idx ON grocery_items (user_id, checked, id);
