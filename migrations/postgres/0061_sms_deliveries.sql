-- Outbound SMS delivery state: one row per message Twilio accepted, keyed by its SID, moved
-- on by the status callbacks Twilio posts to /sms/status (queued → sent → delivered, or
-- undelivered/failed with an error code).
--
-- Same table as migrations/sqlite/0061_sms_deliveries.sql.

CREATE TABLE sms_deliveries (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message_sid TEXT        NOT NULL UNIQUE,
    -- Twilio's MessageStatus, as last reported.
    status      TEXT        NOT NULL,
    error_code  TEXT,
    segments    INTEGER,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX sms_deliveries_user_id_created_at_idx ON sms_deliveries (user_id, created_at);

SELECT nudge_enable_rls();
