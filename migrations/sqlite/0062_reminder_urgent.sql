-- Urgent reminders: an urgent reminder fires inside the user's quiet hours; any other waits
-- for their end (see src/actors/reminders.rs).
--
-- Same column as migrations/postgres/0062_reminder_urgent.sql.

ALTER TABLE reminders ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0 CHECK (urgent IN (0, 1));
