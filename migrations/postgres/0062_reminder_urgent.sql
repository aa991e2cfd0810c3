-- Urgent reminders: an urgent reminder fires inside the user's quiet hours; any other waits
-- for their end (see src/actors/reminders.rs).
--
-- Same column as migrations/sqlite/0062_reminder_urgent.sql.

ALTER TABLE reminders ADD COLUMN urgent BOOLEAN NOT NULL DEFAULT false;
