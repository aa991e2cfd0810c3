//! Tasks: the user's to-do list.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sql::{now, write_error};
use super::{Result, Store, StoreError, UserId, with_pool, with_user};

/// A task on the user's list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    pub id: i64,
    pub title: String,
    pub done: bool,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct TaskRow {
    id: i64,
    title: String,
    done: bool,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

impl From<TaskRow> for Task {
    fn from(row: TaskRow) -> Self {
        Task {
            id: row.id,
            title: row.title,
            done: row.done,
            created_at: row.created_at,
            completed_at: row.completed_at,
        }
    }
}

macro_rules! task_columns {
    () => {
        "id, title, done, created_at, completed_at"
    };
}

const INSERT_TASK: &str = concat!(
    "INSERT INTO tasks (user_id, title, done, created_at) VALUES ($1, $2, $3, $4) \
     RETURNING ",
    task_columns!()
);
const TASKS_BY_DONE: &str = concat!(
    "SELECT ",
    task_columns!(),
    " FROM tasks WHERE user_id = $1 AND done = $2 ORDER BY id"
);
/// Completing twice keeps the first completion time.
const COMPLETE_TASK: &str = concat!(
    "UPDATE tasks SET done = $3, completed_at = COALESCE(completed_at, $4) \
     WHERE user_id = $1 AND id = $2 RETURNING ",
    task_columns!()
);

impl Store {
    #[tracing::instrument(skip_all)]
    pub async fn add_task(&self, user: UserId, title: &str) -> Result<Task> {
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, TaskRow>(INSERT_TASK)
                .bind(user.0)
                .bind(title)
                .bind(false)
                .bind(now())
                .fetch_one(pool)
                .await
                .map_err(write_error)?
        });
        Ok(row.into())
    }

    /// Open tasks, oldest first (the order the user sees them numbered in).
    #[tracing::instrument(skip_all)]
    pub async fn open_tasks(&self, user: UserId) -> Result<Vec<Task>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, TaskRow>(TASKS_BY_DONE)
                .bind(user.0)
                .bind(false)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(Task::from).collect())
    }

    /// Marks a task done; `NotFound` if it is not this user's.
    #[tracing::instrument(skip_all)]
    pub async fn complete_task(&self, user: UserId, task_id: i64) -> Result<Task> {
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, TaskRow>(COMPLETE_TASK)
                .bind(user.0)
                .bind(task_id)
                .bind(true)
                .bind(now())
                .fetch_optional(pool)
                .await?
        });
        Ok(row.ok_or(StoreError::NotFound)?.into())
    }
}

// What the REST API needs beyond the assistant's own operations: pages, one task, edits.

const TASKS_PAGE: &str = concat!(
    "SELECT ",
    task_columns!(),
    " FROM tasks WHERE user_id = $1 AND id > $2 AND ($3 IS NULL OR done = $3) \
     ORDER BY id LIMIT $4"
);
const TASK_BY_ID: &str = concat!(
    "SELECT ",
    task_columns!(),
    " FROM tasks WHERE user_id = $1 AND id = $2"
);
/// Reopening a task clears its completion time; completing keeps the first one.
const UPDATE_TASK: &str = concat!(
    "UPDATE tasks SET title = COALESCE($3, title), done = COALESCE($4, done), \
     completed_at = CASE WHEN $4 IS NULL THEN completed_at \
     WHEN $4 THEN COALESCE(completed_at, $5) ELSE NULL END \
     WHERE user_id = $1 AND id = $2 RETURNING ",
    task_columns!()
);
const DELETE_TASK: &str = "DELETE FROM tasks WHERE user_id = $1 AND id = $2";

impl Store {
    /// Up to `limit` of the user's tasks with ids after `after`, in id order, optionally
    /// only open (`done = Some(false)`) or done ones.
    #[tracing::instrument(skip_all)]
    pub async fn tasks_page(
        &self,
        user: UserId,
        after: i64,
        limit: u32,
        done: Option<bool>,
    ) -> Result<Vec<Task>> {
        let rows = with_user!(self, user, conn => {
            sqlx::query_as::<_, TaskRow>(TASKS_PAGE)
                .bind(user.0)
                .bind(after)
                .bind(done)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?
        });
        Ok(rows.into_iter().map(Task::from).collect())
    }

    /// One of the user's tasks; `NotFound` when it is not theirs.
    #[tracing::instrument(skip_all)]
    pub async fn task(&self, user: UserId, task_id: i64) -> Result<Task> {
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, TaskRow>(TASK_BY_ID)
                .bind(user.0)
                .bind(task_id)
                .fetch_optional(&mut *conn)
                .await?
        });
        Ok(row.ok_or(StoreError::NotFound)?.into())
    }

    /// Renames and/or completes or reopens a task; `NotFound` when it is not the user's.
    #[tracing::instrument(skip_all)]
    pub async fn update_task(
        &self,
        user: UserId,
        task_id: i64,
        title: Option<&str>,
        done: Option<bool>,
    ) -> Result<Task> {
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, TaskRow>(UPDATE_TASK)
                .bind(user.0)
                .bind(task_id)
                .bind(title)
                .bind(done)
                .bind(now())
                .fetch_optional(&mut *conn)
                .await
                .map_err(write_error)?
        });
        Ok(row.ok_or(StoreError::NotFound)?.into())
    }

    /// Deletes a task; `NotFound` when it is not the user's.
    #[tracing::instrument(skip_all)]
    pub async fn delete_task(&self, user: UserId, task_id: i64) -> Result<()> {
        let deleted = with_user!(self, user, conn => {
            sqlx::query(DELETE_TASK)
                .bind(user.0)
                .bind(task_id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
