-- Tasks gain a due date, a priority and a count of due dates that passed undone.
--
-- Same columns as migrations/postgres/0010_tasks_due_priority_misses.sql. A due date passing
-- while the task is open counts one miss (`misses`), once per due date (`miss_counted` is
-- reset when the task is rescheduled); a task missed repeatedly is offered in small steps.

-- When the task is due, UTC; NULL when it has no due date.
ALTER TABLE tasks ADD COLUMN due_at TEXT;
-- 1 when the due date is a whole day (due_at is then the end of that local day).
ALTER TABLE tasks ADD COLUMN due_all_day INTEGER NOT NULL DEFAULT 0 CHECK (due_all_day IN (0, 1));
ALTER TABLE tasks ADD COLUMN priority TEXT NOT NULL DEFAULT 'normal'
    CHECK (priority IN ('low', 'normal', 'high'));
ALTER TABLE tasks ADD COLUMN misses INTEGER NOT NULL DEFAULT 0 CHECK (misses >= 0);
ALTER TABLE tasks ADD COLUMN miss_counted INTEGER NOT NULL DEFAULT 0 CHECK (miss_counted IN (0, 1));

-- Other tables refer to a task of the same user through (user_id, id).
CREATE UNIQUE INDEX tasks_user_id_id_key ON tasks (user_id, id);
-- Overdue and due-soon lists.
CREATE INDEX tasks_user_id_due_at_idx ON tasks (user_id, due_at);
-- "Done this week" and undo.
CREATE INDEX tasks_user_id_completed_at_idx ON tasks (user_id, completed_at);
