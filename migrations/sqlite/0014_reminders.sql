-- Reminders: what to say (sealed: `seal::place("reminders.body", user)`), when next, and for
-- repeating ones the rule (RFC 5545 RRULE subset, read in `time_zone`).
--
-- Same table as migrations/postgres/0014_reminders.sql. A scheduler finds what is due with
-- `status = 'scheduled' AND due_at <= now` on `reminders_due_at_idx`, and marks a firing
-- idempotently by updating the row only while `due_at` still holds the value it read:
-- `last_fired_at` takes that value, then `due_at` moves to the next occurrence (repeating) or
-- `status` becomes 'fired' (once).

CREATE TABLE reminders (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body          TEXT    NOT NULL,
    -- The next time to fire, UTC.
    due_at        TEXT    NOT NULL,
    -- NULL for a one-off reminder, else e.g. FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0.
    recurrence    TEXT,
    -- The IANA zone the rule's wall time is read in (the user's, when it was set).
    time_zone     TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'scheduled'
        CHECK (status IN ('scheduled', 'fired', 'cancelled')),
    last_fired_at TEXT,
    created_at    TEXT    NOT NULL,
    cancelled_at  TEXT
) STRICT;

CREATE INDEX reminders_due_at_idx ON reminders (due_at) WHERE status = 'scheduled';
CREATE INDEX reminders_user_id_status_due_at_idx ON reminders (user_id, status, due_at);
