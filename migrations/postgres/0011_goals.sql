-- Goals, and the tasks that move each one forward.
--
-- Same tables as migrations/sqlite/0011_goals.sql. A task serves at most one goal; the link
-- refers to the goal and the task through (user_id, id), so it can only join rows of one user.

CREATE TABLE goals (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       TEXT        NOT NULL,
    status      TEXT        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'achieved')),
    created_at  TIMESTAMPTZ NOT NULL,
    achieved_at TIMESTAMPTZ,
    CONSTRAINT goals_user_id_id_key UNIQUE (user_id, id)
);

CREATE TABLE goal_tasks (
    user_id   UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    task_id   BIGINT      NOT NULL,
    goal_id   BIGINT      NOT NULL,
    linked_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT goal_tasks_pkey PRIMARY KEY (user_id, task_id),
    CONSTRAINT goal_tasks_goal_fkey FOREIGN KEY (user_id, goal_id)
        REFERENCES goals (user_id, id) ON DELETE CASCADE,
    CONSTRAINT goal_tasks_task_fkey FOREIGN KEY (user_id, task_id)
        REFERENCES tasks (user_id, id) ON DELETE CASCADE
);

CREATE INDEX goal_tasks_user_id_goal_id_idx ON goal_tasks (user_id, goal_id);
