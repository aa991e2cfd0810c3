//! Goals: what the user is working towards, and the tasks that move each one forward.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sql::{now, parse, write_error};
use super::tasks::{Task, TaskRow};
use super::{Result, Store, StoreError, UserId, with_user};

/// Where a goal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GoalStatus {
    Active,
    Achieved,
}

impl GoalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GoalStatus::Active => "active",
            GoalStatus::Achieved => "achieved",
        }
    }
}

impl FromStr for GoalStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(GoalStatus::Active),
            "achieved" => Ok(GoalStatus::Achieved),
            other => Err(format!("unknown goal status {other:?}")),
        }
    }
}

/// A goal, with how far its linked tasks have come.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Goal {
    pub id: i64,
    pub title: String,
    pub status: GoalStatus,
    pub created_at: DateTime<Utc>,
    pub achieved_at: Option<DateTime<Utc>>,
    /// Linked tasks that are done.
    pub tasks_done: u32,
    /// All linked tasks.
    pub tasks_total: u32,
}

#[derive(sqlx::FromRow)]
struct GoalRow {
    id: i64,
    title: String,
    status: String,
    created_at: DateTime<Utc>,
    achieved_at: Option<DateTime<Utc>>,
    tasks_done: i64,
    tasks_total: i64,
}

impl TryFrom<GoalRow> for Goal {
    type Error = StoreError;
    fn try_from(row: GoalRow) -> Result<Self> {
        Ok(Goal {
            id: row.id,
            title: row.title,
            status: parse("goals.status", &row.status)?,
            created_at: row.created_at,
            achieved_at: row.achieved_at,
            tasks_done: u32::try_from(row.tasks_done).unwrap_or(0),
            tasks_total: u32::try_from(row.tasks_total).unwrap_or(0),
        })
    }
}

const INSERT_GOAL: &str = "INSERT INTO goals (user_id, title, status, created_at) \
     VALUES ($1, $2, $3, $4) RETURNING id";
/// Goals with their progress; `$2` filters on status unless NULL.
const GOALS_WITH_PROGRESS: &str = "SELECT g.id, g.title, g.status, g.created_at, g.achieved_at, \
     COALESCE(SUM(CASE WHEN t.done THEN 1 ELSE 0 END), 0) AS tasks_done, \
     COUNT(t.id) AS tasks_total \
     FROM goals g \
     LEFT JOIN goal_tasks gt ON gt.user_id = g.user_id AND gt.goal_id = g.id \
     LEFT JOIN tasks t ON t.user_id = gt.user_id AND t.id = gt.task_id \
     WHERE g.user_id = $1 AND ($2 IS NULL OR g.status = $2) AND ($3 IS NULL OR g.id = $3) \
     GROUP BY g.id, g.title, g.status, g.created_at, g.achieved_at \
     ORDER BY g.id";
/// A task serves one goal: linking it again moves it.
const LINK_TASK: &str = "INSERT INTO goal_tasks (user_id, task_id, goal_id, linked_at) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (user_id, task_id) DO UPDATE SET goal_id = excluded.goal_id, \
     linked_at = excluded.linked_at";
const GOAL_TASKS: &str = "SELECT t.id, t.title, t.done, t.created_at, t.completed_at, t.due_at, \
     t.due_all_day, t.priority, t.misses \
     FROM goal_tasks gt JOIN tasks t ON t.user_id = gt.user_id AND t.id = gt.task_id \
     WHERE gt.user_id = $1 AND gt.goal_id = $2 ORDER BY t.id";
const SET_GOAL_STATUS: &str = "UPDATE goals SET status = $3, achieved_at = $4 \
     WHERE user_id = $1 AND id = $2";

impl Store {
    /// Adds an active goal.
    #[tracing::instrument(skip_all)]
    pub async fn add_goal(&self, user: UserId, title: &str) -> Result<Goal> {
        let created_at = now();
        let id: i64 = with_user!(self, user, conn => {
            sqlx::query_scalar(INSERT_GOAL)
                .bind(user.0)
                .bind(title)
                .bind(GoalStatus::Active.as_str())
                .bind(created_at)
                .fetch_one(&mut *conn)
                .await
                .map_err(write_error)?
        });
        Ok(Goal {
            id,
            title: title.to_owned(),
            status: GoalStatus::Active,
            created_at,
            achieved_at: None,
            tasks_done: 0,
            tasks_total: 0,
        })
    }

    /// The user's goals with their progress, oldest first; only those of `status` if given.
    #[tracing::instrument(skip_all)]
    pub async fn goals(&self, user: UserId, status: Option<GoalStatus>) -> Result<Vec<Goal>> {
        self.goals_where(user, status, None).await
    }

    /// One goal with its progress; `NotFound` if it is not this user's.
    #[tracing::instrument(skip_all)]
    pub async fn goal(&self, user: UserId, goal_id: i64) -> Result<Goal> {
        let goals = self.goals_where(user, None, Some(goal_id)).await?;
        goals.into_iter().next().ok_or(StoreError::NotFound)
    }

    async fn goals_where(
        &self,
        user: UserId,
        status: Option<GoalStatus>,
        goal_id: Option<i64>,
    ) -> Result<Vec<Goal>> {
        let rows = with_user!(self, user, conn => {
            sqlx::query_as::<_, GoalRow>(GOALS_WITH_PROGRESS)
                .bind(user.0)
                .bind(status.map(GoalStatus::as_str))
                .bind(goal_id)
                .fetch_all(&mut *conn)
                .await?
        });
        rows.into_iter().map(Goal::try_from).collect()
    }

    /// Links a task to a goal (moving it from another goal of this user). `NotFound` when the
    /// goal or the task is not this user's.
    #[tracing::instrument(skip_all)]
    pub async fn link_task_to_goal(&self, user: UserId, goal_id: i64, task_id: i64) -> Result<()> {
        with_user!(self, user, conn => {
            sqlx::query(LINK_TASK)
                .bind(user.0)
                .bind(task_id)
                .bind(goal_id)
                .bind(now())
                .execute(&mut *conn)
                .await
                .map_err(write_error)?;
        });
        Ok(())
    }

    /// The tasks linked to a goal of this user, oldest first (empty for another user's goal).
    #[tracing::instrument(skip_all)]
    pub async fn goal_tasks(&self, user: UserId, goal_id: i64) -> Result<Vec<Task>> {
        let ids = with_user!(self, user, conn => {
            sqlx::query_as::<_, TaskRow>(GOAL_TASKS)
                .bind(user.0)
                .bind(goal_id)
                .fetch_all(&mut *conn)
                .await?
        });
        ids.into_iter().map(Task::try_from).collect()
    }

    /// Marks a goal achieved (or active again); `NotFound` if it is not this user's.
    #[tracing::instrument(skip_all)]
    pub async fn set_goal_status(
        &self,
        user: UserId,
        goal_id: i64,
        status: GoalStatus,
    ) -> Result<Goal> {
        let achieved_at = (status == GoalStatus::Achieved).then(now);
        let changed = with_user!(self, user, conn => {
            sqlx::query(SET_GOAL_STATUS)
                .bind(user.0)
                .bind(goal_id)
                .bind(status.as_str())
                .bind(achieved_at)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        self.goal(user, goal_id).await
    }
}

// What the REST API needs beyond the assistant's own operations: pages, edits, deletion.

/// Like [`GOALS_WITH_PROGRESS`], a page: ids after `$3`, at most `$4`.
const GOALS_PAGE: &str = "SELECT g.id, g.title, g.status, g.created_at, g.achieved_at, \
     COALESCE(SUM(CASE WHEN t.done THEN 1 ELSE 0 END), 0) AS tasks_done, \
     COUNT(t.id) AS tasks_total \
     FROM goals g \
     LEFT JOIN goal_tasks gt ON gt.user_id = g.user_id AND gt.goal_id = g.id \
     LEFT JOIN tasks t ON t.user_id = gt.user_id AND t.id = gt.task_id \
     WHERE g.user_id = $1 AND ($2 IS NULL OR g.status = $2) AND g.id > $3 \
     GROUP BY g.id, g.title, g.status, g.created_at, g.achieved_at \
     ORDER BY g.id LIMIT $4";
/// Achieving keeps the first achievement time; reactivating clears it.
const UPDATE_GOAL: &str = "UPDATE goals SET title = COALESCE($3, title), \
     status = COALESCE($4, status), \
     achieved_at = CASE WHEN $4 IS NULL THEN achieved_at \
     WHEN $4 = 'achieved' THEN COALESCE(achieved_at, $5) ELSE NULL END \
     WHERE user_id = $1 AND id = $2";
const DELETE_GOAL: &str = "DELETE FROM goals WHERE user_id = $1 AND id = $2";

impl Store {
    /// Up to `limit` of the user's goals with ids after `after`, in id order, with their
    /// progress; only those of `status` if given.
    #[tracing::instrument(skip_all)]
    pub async fn goals_page(
        &self,
        user: UserId,
        after: i64,
        limit: u32,
        status: Option<GoalStatus>,
    ) -> Result<Vec<Goal>> {
        let rows = with_user!(self, user, conn => {
            sqlx::query_as::<_, GoalRow>(GOALS_PAGE)
                .bind(user.0)
                .bind(status.map(GoalStatus::as_str))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?
        });
        rows.into_iter().map(Goal::try_from).collect()
    }

    /// Renames a goal and/or changes its status; `NotFound` when it is not the user's.
    #[tracing::instrument(skip_all)]
    pub async fn update_goal(
        &self,
        user: UserId,
        goal_id: i64,
        title: Option<&str>,
        status: Option<GoalStatus>,
    ) -> Result<Goal> {
        let changed = with_user!(self, user, conn => {
            sqlx::query(UPDATE_GOAL)
                .bind(user.0)
                .bind(goal_id)
                .bind(title)
                .bind(status.map(GoalStatus::as_str))
                .bind(now())
                .execute(&mut *conn)
                .await
                .map_err(write_error)?
                .rows_affected()
        });
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        self.goal(user, goal_id).await
    }

    /// Deletes a goal (its task links go with it, the tasks stay); `NotFound` when it is not
    /// the user's.
    #[tracing::instrument(skip_all)]
    pub async fn delete_goal(&self, user: UserId, goal_id: i64) -> Result<()> {
        self.delete_scoped(DELETE_GOAL, user, goal_id).await
    }
}
