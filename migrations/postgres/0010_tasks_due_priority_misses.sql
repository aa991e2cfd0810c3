-- Tasks gain a due date, a priority and a count of due dates that passed undone.
--
-- Same columns as migrations/sqlite/0010_tasks_due_priority_misses.sql. A due date passing
-- while the task is open counts one miss (`misses`), once per due date (`miss_counted` is
-- reset when the task is rescheduled); a task missed repeatedly is offered in small steps.

ALTER TABLE tasks
    -- When the task is due; NULL when it has no due date.
    ADD COLUMN due_at       TIMESTAMPTZ,
    -- True when the due date is a whole day (due_at is then the end of that local day).
    ADD COLUMN due_all_day  BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN priority     TEXT    NOT NULL DEFAULT 'normal'
        CHECK (priority IN ('low', 'normal', 'high')),
    ADD COLUMN misses       INTEGER NOT NULL DEFAULT 0 CHECK (misses >= 0),
    ADD COLUMN miss_counted BOOLEAN NOT NULL DEFAULT false;

-- Other tables refer to a task of the same user through (user_id, id).
ALTER TABLE tasks ADD CONSTRAINT tasks_user_id_id_key UNIQUE (user_id, id);
-- Overdue and due-soon lists.
CREATE INDEX tasks_user_id_due_at_idx ON tasks (user_id, due_at);
-- "Done this week" and undo.
CREATE INDEX tasks_user_id_completed_at_idx ON tasks (user_id, completed_at);
