-- Goals, and the tasks that move each one forward.
--
-- Same tables as migrations/postgres/0011_goals.sql. A task serves at most one goal; the
-- link refers to the goal and the task through (user_id, id), so it can only join rows of
-- one user.

CREATE TABLE goals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'achieved')),
    created_at  TEXT    NOT NULL,
    achieved_at TEXT,
    CONSTRAINT goals_user_id_id_key UNIQUE (user_id, id)
) STRICT;

CREATE TABLE goal_tasks (
    user_id   BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    task_id   INTEGER NOT NULL,
    goal_id   INTEGER NOT NULL,
    linked_at TEXT    NOT NULL,
    PRIMARY KEY (user_id, task_id),
    CONSTRAINT goal_tasks_goal_fkey FOREIGN KEY (user_id, goal_id)
        REFERENCES goals (user_id, id) ON DELETE CASCADE,
    CONSTRAINT goal_tasks_task_fkey FOREIGN KEY (user_id, task_id)
        REFERENCES tasks (user_id, id) ON DELETE CASCADE
) STRICT;

CREATE INDEX goal_tasks_user_id_goal_id_idx ON goal_tasks (user_id, goal_id);
