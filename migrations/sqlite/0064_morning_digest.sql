-- The morning digest (opt-in): at digest_minute (minutes after local midnight, default 08:00)
-- each day, one SMS with today's top three tasks and today's reminders. digest_next_at is the
-- next instant it is due, UTC; NULL while it is off, or until the scheduler computes it after
-- a change (of the setting, its time or the user's zone).
--
-- digest_firings is the idempotency key: one row per (user, local date), claimed 'sending' in
-- the transaction that moves digest_next_at on, marked 'sent' (or 'skipped': nothing to say,
-- or unreachable) after the send. A restart never sends a day's digest twice; a row left
-- 'sending' is reconciled with Twilio at start-up and sent only if it never reached it, like
-- a reminder firing.
--
-- Same as migrations/postgres/0064_morning_digest.sql.

ALTER TABLE users ADD COLUMN digest_enabled INTEGER NOT NULL DEFAULT 0 CHECK (digest_enabled IN (0, 1));
ALTER TABLE users ADD COLUMN digest_minute INTEGER NOT NULL DEFAULT 480
    CHECK (digest_minute BETWEEN 0 AND 1439);
ALTER TABLE users ADD COLUMN digest_next_at TEXT;

CREATE INDEX users_digest_next_at_idx ON users (digest_next_at) WHERE digest_enabled;

CREATE TABLE digest_firings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The user's local date the digest is for, YYYY-MM-DD.
    local_date  TEXT    NOT NULL,
    -- The text sent (sealed: `seal::place("digest_firings.body", user)`), composed before the
    -- claim so a resend after a crash is the same text, and can be matched in Twilio's list.
    body        TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'sending'
        CHECK (status IN ('sending', 'sent', 'skipped')),
    claimed_at  TEXT    NOT NULL,
    sent_at     TEXT,
    UNIQUE (user_id, local_date)
) STRICT;

CREATE INDEX digest_firings_sending_idx ON digest_firings (claimed_at) WHERE status = 'sending';
