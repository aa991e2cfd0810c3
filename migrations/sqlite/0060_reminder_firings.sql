-- Reminder firings: one row per (reminder, due instant), the key that makes delivery
-- idempotent. The scheduler inserts it as 'sending' in the same transaction that moves the
-- reminder on (next occurrence, or 'fired'), sends, then marks it 'sent' (or 'skipped' when the
-- user cannot be reached by SMS). Rows still 'sending' at start-up were claimed by a process
-- that stopped before it could mark them: they are sent again (see src/actors/reminders.rs).
--
-- Same table as migrations/postgres/0060_reminder_firings.sql.

CREATE TABLE reminder_firings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reminder_id INTEGER NOT NULL REFERENCES reminders (id) ON DELETE CASCADE,
    -- The occurrence this firing is for, UTC: with reminder_id, the idempotency key.
    due_at      TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'sending'
        CHECK (status IN ('sending', 'sent', 'skipped')),
    -- 1 when it fired more than a minute after it was due (missed while down); the nudge says so.
    late        INTEGER NOT NULL DEFAULT 0 CHECK (late IN (0, 1)),
    claimed_at  TEXT    NOT NULL,
    -- The user's reply to the nudge by SMS: 'done', or 'snoozed' (a new one-off reminder
    -- was made); NULL until then. Replies act on the last sent firing without an answer.
    answer      TEXT    CHECK (answer IN ('done', 'snoozed')),
    sent_at     TEXT,
    UNIQUE (reminder_id, due_at)
) STRICT;

CREATE INDEX reminder_firings_user_id_claimed_at_idx ON reminder_firings (user_id, claimed_at);
CREATE INDEX reminder_firings_sending_idx ON reminder_firings (claimed_at) WHERE status = 'sending';
