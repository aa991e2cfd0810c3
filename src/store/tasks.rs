//! Tasks: the user's to-do list, with due dates, priorities and missed due dates.

use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::{Database, QueryBuilder};

use super::sql::{ROWS_PER_STATEMENT, now, parse, write_error};
use super::sqlite_reads;
use super::{Result, Store, StoreError, UserId, with_user};

/// How much a task matters; the list shows high-priority tasks first in its hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

impl FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "low" => Ok(Priority::Low),
            "normal" => Ok(Priority::Normal),
            "high" => Ok(Priority::High),
            other => Err(format!("unknown priority {other:?}")),
        }
    }
}

/// When a task is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Due {
    /// The moment it is due; for a whole day, the end of that day in the user's zone.
    pub at: DateTime<Utc>,
    /// True when the user named a day, not a time ("by friday").
    pub all_day: bool,
}

/// A task on the user's list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    pub id: i64,
    pub title: String,
    pub done: bool,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// When it is due, if the user said.
    pub due: Option<Due>,
    pub priority: Priority,
    /// How many due dates passed while it was open: the cue to offer smaller first steps.
    pub misses: u32,
}

/// A task to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub title: String,
    pub due: Option<Due>,
    pub priority: Priority,
}

impl NewTask {
    /// A task with only a title.
    pub fn titled(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            due: None,
            priority: Priority::Normal,
        }
    }
}

/// A task as stored; goals read it through their join too.
#[derive(sqlx::FromRow)]
pub(super) struct TaskRow {
    id: i64,
    title: String,
    done: bool,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
    due_at: Option<DateTime<Utc>>,
    due_all_day: bool,
    priority: String,
    misses: i32,
}

/// An open task and whether a miss of its due date is still to be counted.
#[derive(sqlx::FromRow)]
struct FlaggedTaskRow {
    #[sqlx(flatten)]
    task: TaskRow,
    newly_missed: bool,
}

impl TaskRow {
    /// The row as SQLite's reader threads read it (`sqlite_reads`).
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: sqlite_reads::column(row, 0, "id")?,
            title: sqlite_reads::column(row, 1, "title")?,
            done: sqlite_reads::column(row, 2, "done")?,
            created_at: sqlite_reads::time(row, 3, "created_at")?,
            completed_at: sqlite_reads::optional_time(row, 4, "completed_at")?,
            due_at: sqlite_reads::optional_time(row, 5, "due_at")?,
            due_all_day: sqlite_reads::column(row, 6, "due_all_day")?,
            priority: sqlite_reads::column(row, 7, "priority")?,
            misses: sqlite_reads::column(row, 8, "misses")?,
        })
    }
}

impl FlaggedTaskRow {
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            task: TaskRow::from_sqlite(row)?,
            newly_missed: sqlite_reads::column(row, 9, "newly_missed")?,
        })
    }
}

impl TryFrom<TaskRow> for Task {
    type Error = StoreError;
    fn try_from(row: TaskRow) -> Result<Self> {
        Ok(Task {
            id: row.id,
            title: row.title,
            done: row.done,
            created_at: row.created_at,
            completed_at: row.completed_at,
            due: row.due_at.map(|at| Due {
                at,
                all_day: row.due_all_day,
            }),
            priority: parse("tasks.priority", &row.priority)?,
            misses: u32::try_from(row.misses).unwrap_or(0),
        })
    }
}

fn tasks(rows: Vec<TaskRow>) -> Result<Vec<Task>> {
    rows.into_iter().map(Task::try_from).collect()
}

macro_rules! task_columns {
    () => {
        "id, title, done, created_at, completed_at, due_at, due_all_day, priority, misses"
    };
}

/// Followed by `VALUES (…), (…)` built per batch, then [`TASK_RETURNING`].
const INSERT_TASK_ROWS: &str =
    "INSERT INTO tasks (user_id, title, done, created_at, due_at, due_all_day, priority) ";
const TASK_RETURNING: &str = concat!(" RETURNING ", task_columns!());
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
const REOPEN_TASK: &str = concat!(
    "UPDATE tasks SET done = $3, completed_at = NULL WHERE user_id = $1 AND id = $2 RETURNING ",
    task_columns!()
);
/// A new due date may be missed again: the miss of the old one is already counted.
const RESCHEDULE_TASK: &str = concat!(
    "UPDATE tasks SET due_at = $3, due_all_day = $4, miss_counted = $5 \
     WHERE user_id = $1 AND id = $2 RETURNING ",
    task_columns!()
);
const SET_PRIORITY: &str = concat!(
    "UPDATE tasks SET priority = $3 WHERE user_id = $1 AND id = $2 RETURNING ",
    task_columns!()
);
const RESET_MISSES: &str = concat!(
    "UPDATE tasks SET misses = 0 WHERE user_id = $1 AND id = $2 RETURNING ",
    task_columns!()
);
/// A task's due date passed by `$2` and its miss is not counted yet (`$3` is false).
macro_rules! newly_missed {
    () => {
        "miss_counted = $3 AND due_at IS NOT NULL AND due_at <= $2"
    };
}
/// Counts one miss for each open task of user `$1` whose due date passed by `$2` and was not
/// counted yet (`$3` is false).
const COUNT_MISSES: &str = concat!(
    "UPDATE tasks SET misses = misses + 1, miss_counted = NOT $3 \
     WHERE user_id = $1 AND done = $3 AND ",
    newly_missed!()
);
/// The open tasks of user `$1`, each saying whether [`COUNT_MISSES`] would count it: one read
/// when nothing was newly missed, the usual case.
const OPEN_TASKS_FLAGGING_MISSES: &str = concat!(
    "SELECT ",
    task_columns!(),
    ", (",
    newly_missed!(),
    ") AS newly_missed FROM tasks WHERE user_id = $1 AND done = $3 ORDER BY id"
);
const COMPLETED_SINCE: &str = concat!(
    "SELECT ",
    task_columns!(),
    " FROM tasks WHERE user_id = $1 AND done = $2 AND completed_at >= $3 \
     ORDER BY completed_at DESC, id DESC LIMIT $4"
);
const COUNT_COMPLETED_BETWEEN: &str = "SELECT COUNT(*) FROM tasks \
     WHERE user_id = $1 AND done = $2 AND completed_at >= $3 AND completed_at < $4";

impl Store {
    /// Adds one task with only a title.
    #[tracing::instrument(skip_all)]
    pub async fn add_task(&self, user: UserId, title: &str) -> Result<Task> {
        let added = self.add_tasks(user, &[NewTask::titled(title)]).await?;
        added.into_iter().next().ok_or(StoreError::NotFound)
    }

    /// Adds several tasks, in the order given, with one multi-row statement (one transaction
    /// when they need more than one statement).
    #[tracing::instrument(skip_all)]
    pub async fn add_tasks(&self, user: UserId, new: &[NewTask]) -> Result<Vec<Task>> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        Ok(with_user!(self, user, conn, Db => {
            async fn insert(
                conn: &mut <Db as Database>::Connection,
                user: UserId,
                new: &[NewTask],
            ) -> Result<Vec<Task>> {
                let created_at = now();
                let mut added = Vec::with_capacity(new.len());
                for chunk in new.chunks(ROWS_PER_STATEMENT) {
                    let mut statement = QueryBuilder::<Db>::new(INSERT_TASK_ROWS);
                    statement.push_values(chunk, |mut row, task| {
                        row.push_bind(user.0)
                            .push_bind(task.title.as_str())
                            .push_bind(false)
                            .push_bind(created_at)
                            .push_bind(task.due.map(|d| d.at))
                            .push_bind(task.due.is_some_and(|d| d.all_day))
                            .push_bind(task.priority.as_str());
                    });
                    statement.push(TASK_RETURNING);
                    let mut rows = statement
                        .build_query_as::<TaskRow>()
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(write_error)?;
                    rows.sort_by_key(|row| row.id);
                    added.extend(tasks(rows)?);
                }
                Ok(added)
            }

            if new.len() <= ROWS_PER_STATEMENT {
                insert(&mut *conn, user, new).await?
            } else {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                let added = insert(&mut tx, user, new).await?;
                tx.commit().await?;
                added
            }
        }))
    }

    /// Open tasks, oldest first (the order the user sees them numbered in). On a SQLite file
    /// it runs on the caller's thread, on a connection kept for that (see `sqlite_reads`).
    #[tracing::instrument(skip_all)]
    pub async fn open_tasks(&self, user: UserId) -> Result<Vec<Task>> {
        if let Some(readers) = &self.readers {
            let rows = readers
                .run_here(move |tx| {
                    tx.prepare_cached(TASKS_BY_DONE)?
                        .query_map(
                            rusqlite::named_params! { "$1": user.0.as_bytes(), "$2": false },
                            TaskRow::from_sqlite,
                        )?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .await?;
            return tasks(rows);
        }
        let rows = with_user!(self, user, conn => {
            sqlx::query_as::<_, TaskRow>(TASKS_BY_DONE)
                .bind(user.0)
                .bind(false)
                .fetch_all(&mut *conn)
                .await?
        });
        tasks(rows)
    }

    /// Marks a task done now; `NotFound` if it is not this user's.
    #[tracing::instrument(skip_all)]
    pub async fn complete_task(&self, user: UserId, task_id: i64) -> Result<Task> {
        self.complete_task_at(user, task_id, now()).await
    }

    /// Marks a task done at `at` (the turn's clock); `NotFound` if it is not this user's.
    #[tracing::instrument(skip_all)]
    pub async fn complete_task_at(
        &self,
        user: UserId,
        task_id: i64,
        at: DateTime<Utc>,
    ) -> Result<Task> {
        let at = at.trunc_subsecs(6);
        self.update_task_with(COMPLETE_TASK, user, task_id, |q| q.bind(true).bind(at))
            .await
    }

    /// Puts a done task back on the open list (undo); `NotFound` if it is not this user's.
    #[tracing::instrument(skip_all)]
    pub async fn reopen_task(&self, user: UserId, task_id: i64) -> Result<Task> {
        self.update_task_with(REOPEN_TASK, user, task_id, |q| q.bind(false))
            .await
    }

    /// Sets or clears a task's due date; its next passing counts as a new miss.
    #[tracing::instrument(skip_all)]
    pub async fn reschedule_task(
        &self,
        user: UserId,
        task_id: i64,
        due: Option<Due>,
    ) -> Result<Task> {
        self.update_task_with(RESCHEDULE_TASK, user, task_id, |q| {
            q.bind(due.map(|d| d.at))
                .bind(due.is_some_and(|d| d.all_day))
                .bind(false)
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    pub async fn set_task_priority(
        &self,
        user: UserId,
        task_id: i64,
        priority: Priority,
    ) -> Result<Task> {
        self.update_task_with(SET_PRIORITY, user, task_id, |q| q.bind(priority.as_str()))
            .await
    }

    /// Forgets a task's misses (it was just broken into smaller steps).
    #[tracing::instrument(skip_all)]
    pub async fn reset_task_misses(&self, user: UserId, task_id: i64) -> Result<Task> {
        self.update_task_with(RESET_MISSES, user, task_id, |q| q)
            .await
    }

    /// The open tasks, oldest first, once a miss is counted for each whose due date passed by
    /// `now` and was not counted yet (idempotent: a due date counts once). One read in the
    /// usual case, when no due date was newly missed; the miss is written only when one was,
    /// so a listing takes no write lock otherwise (on SQLite, a write outside the
    /// group-commit writer waits for it and makes it wait).
    #[tracing::instrument(skip_all)]
    pub async fn open_tasks_counting_misses(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Task>> {
        // On a SQLite file, read first, where the caller runs (`sqlite_reads`): nothing to
        // count, nothing to write.
        if let Some(readers) = &self.readers {
            let flagged = readers
                .run_here(move |tx| {
                    tx.prepare_cached(OPEN_TASKS_FLAGGING_MISSES)?
                        .query_map(
                            rusqlite::named_params! {
                                "$1": user.0.as_bytes(),
                                "$2": sqlite_reads::time_param(now),
                                "$3": false,
                            },
                            FlaggedTaskRow::from_sqlite,
                        )?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .await?;
            if !flagged.iter().any(|row| row.newly_missed) {
                return tasks(flagged.into_iter().map(|row| row.task).collect());
            }
        }
        let rows = with_user!(self, user, conn => {
            let flagged = sqlx::query_as::<_, FlaggedTaskRow>(OPEN_TASKS_FLAGGING_MISSES)
                .bind(user.0)
                .bind(now)
                .bind(false)
                .fetch_all(&mut *conn)
                .await?;
            if flagged.iter().any(|row| row.newly_missed) {
                sqlx::query(COUNT_MISSES)
                    .bind(user.0)
                    .bind(now)
                    .bind(false)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query_as::<_, TaskRow>(TASKS_BY_DONE)
                    .bind(user.0)
                    .bind(false)
                    .fetch_all(&mut *conn)
                    .await?
            } else {
                flagged.into_iter().map(|row| row.task).collect()
            }
        });
        tasks(rows)
    }

    /// Tasks completed at or after `since`, most recent first, at most `limit`.
    #[tracing::instrument(skip_all)]
    pub async fn completed_tasks_since(
        &self,
        user: UserId,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Task>> {
        let rows = with_user!(self, user, conn => {
            sqlx::query_as::<_, TaskRow>(COMPLETED_SINCE)
                .bind(user.0)
                .bind(true)
                .bind(since)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?
        });
        tasks(rows)
    }

    /// How many tasks were completed in `[from, to)`.
    #[tracing::instrument(skip_all)]
    pub async fn count_completed_tasks(
        &self,
        user: UserId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<u64> {
        let count: i64 = with_user!(self, user, conn => {
            sqlx::query_scalar(COUNT_COMPLETED_BETWEEN)
                .bind(user.0)
                .bind(true)
                .bind(from)
                .bind(to)
                .fetch_one(&mut *conn)
                .await?
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Runs a one-row `UPDATE … WHERE user_id = $1 AND id = $2 RETURNING` with further
    /// parameters bound by `bind`; `NotFound` when no row of this user has that id.
    async fn update_task_with<F>(
        &self,
        statement: &'static str,
        user: UserId,
        task_id: i64,
        bind: F,
    ) -> Result<Task>
    where
        F: FnOnce(TaskUpdate) -> TaskUpdate,
    {
        let mut params = TaskUpdate::default();
        params = bind(params);
        let row = with_user!(self, user, conn => {
            let mut query = sqlx::query_as::<_, TaskRow>(statement).bind(user.0).bind(task_id);
            for value in params.values {
                query = match value {
                    Value::Bool(b) => query.bind(b),
                    Value::Text(t) => query.bind(t),
                    Value::Time(t) => query.bind(t),
                };
            }
            query.fetch_optional(&mut *conn).await?
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }
}

/// The further parameters of a task update, in order; bound the same way on both backends.
#[derive(Default)]
struct TaskUpdate {
    values: Vec<Value>,
}

enum Value {
    Bool(bool),
    Text(&'static str),
    Time(Option<DateTime<Utc>>),
}

impl TaskUpdate {
    fn bind<V: Into<Value>>(mut self, value: V) -> Self {
        self.values.push(value.into());
        self
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<&'static str> for Value {
    fn from(t: &'static str) -> Self {
        Value::Text(t)
    }
}

impl From<DateTime<Utc>> for Value {
    fn from(t: DateTime<Utc>) -> Self {
        Value::Time(Some(t))
    }
}

impl From<Option<DateTime<Utc>>> for Value {
    fn from(t: Option<DateTime<Utc>>) -> Self {
        Value::Time(t)
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
        tasks(rows)
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
        row.ok_or(StoreError::NotFound)?.try_into()
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
        row.ok_or(StoreError::NotFound)?.try_into()
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
