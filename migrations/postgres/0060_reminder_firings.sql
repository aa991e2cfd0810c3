-- Reminder firings: one row per (reminder, due instant), the key that makes delivery
-- idempotent. The scheduler inserts it as 'sending' in the same transaction that moves the
-- reminder on (next occurrence, or 'fired'), sends, then marks it 'sent' (or 'skipped' when the
-- user cannot be reached by SMS). Rows still 'sending' at start-up were claimed by a process
-- that stopped before it could mark them: they are sent again (see src/actors/reminders.rs).
--
-- Same table as migrations/sqlite/0060_reminder_firings.sql.

CREATE TABLE reminder_firings (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reminder_id BIGINT      NOT NULL REFERENCES reminders (id) ON DELETE CASCADE,
    -- The occurrence this firing is for: with reminder_id, the idempotency key.
    due_at      TIMESTAMPTZ NOT NULL,
    status      TEXT        NOT NULL DEFAULT 'sending'
        CHECK (status IN ('sending', 'sent', 'skipped')),
    -- True when it fired after the grace-period catch-up at start-up (and said so).
    late        BOOLEAN     NOT NULL DEFAULT false,
    claimed_at  TIMESTAMPTZ NOT NULL,
    -- The user's reply to the nudge by SMS: 'done', or 'snoozed' (a new one-off reminder
    -- was made); NULL until then. Replies act on the last sent firing without an answer.
    answer      TEXT        CHECK (answer IN ('done', 'snoozed')),
    sent_at     TIMESTAMPTZ,
    UNIQUE (reminder_id, due_at)
);

CREATE INDEX reminder_firings_user_id_claimed_at_idx ON reminder_firings (user_id, claimed_at);
CREATE INDEX reminder_firings_sending_idx ON reminder_firings (claimed_at) WHERE status = 'sending';
SELECT nudge_enable_rls();
