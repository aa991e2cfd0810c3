//! `/api/v1/me/goals`: what the person works towards (see [`crud`](super::crud)).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::crud::{Resource, refused};
use crate::edges::ApiError;
use crate::store::{Goal, GoalStatus, Store, StoreError, UserId};
use crate::tools::goals::{GoalError, goal_title};

/// The routes' marker type.
pub struct Goals;

/// Where a goal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GoalState {
    Active,
    Achieved,
}

impl From<GoalStatus> for GoalState {
    fn from(s: GoalStatus) -> Self {
        match s {
            GoalStatus::Active => GoalState::Active,
            GoalStatus::Achieved => GoalState::Achieved,
        }
    }
}

impl From<GoalState> for GoalStatus {
    fn from(s: GoalState) -> Self {
        match s {
            GoalState::Active => GoalStatus::Active,
            GoalState::Achieved => GoalStatus::Achieved,
        }
    }
}

/// A goal as the API shows it, with how far its linked tasks have come.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Goal)]
pub struct GoalView {
    pub id: i64,
    pub title: String,
    pub status: GoalState,
    pub created_at: DateTime<Utc>,
    pub achieved_at: Option<DateTime<Utc>>,
    /// Linked tasks that are done.
    pub tasks_done: u32,
    /// All linked tasks.
    pub tasks_total: u32,
}

impl From<Goal> for GoalView {
    fn from(g: Goal) -> Self {
        GoalView {
            id: g.id,
            title: g.title,
            status: g.status.into(),
            created_at: g.created_at,
            achieved_at: g.achieved_at,
            tasks_done: g.tasks_done,
            tasks_total: g.tasks_total,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGoal {
    /// 1 to 200 characters.
    pub title: String,
}

/// Fields to change; absent ones stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GoalUpdate {
    pub title: Option<String>,
    /// `achieved` marks it reached, `active` reopens it.
    pub status: Option<GoalState>,
}

fn title(text: &str) -> Result<&str, ApiError> {
    goal_title(text).map_err(goal_error)
}

fn goal_error(e: GoalError) -> ApiError {
    match e {
        GoalError::Store(e) => e.into(),
        other => refused("invalid_title", &other),
    }
}

#[async_trait]
impl Resource for Goals {
    const NAME: &'static str = "goals";
    const FILTERS: &'static [(&'static str, &'static str)] = &[(
        "achieved",
        "only achieved (true) or only active (false) goals",
    )];

    type Item = GoalView;
    type Create = NewGoal;
    type Update = GoalUpdate;

    fn id(item: &GoalView) -> i64 {
        item.id
    }

    async fn list(
        store: &Store,
        user: UserId,
        after: i64,
        limit: u32,
        filters: &HashMap<&'static str, bool>,
    ) -> Result<Vec<GoalView>, StoreError> {
        let status = filters.get("achieved").map(|achieved| {
            if *achieved {
                GoalStatus::Achieved
            } else {
                GoalStatus::Active
            }
        });
        let goals = store.goals_page(user, after, limit, status).await?;
        Ok(goals.into_iter().map(GoalView::from).collect())
    }

    async fn create(store: &Store, user: UserId, new: NewGoal) -> Result<GoalView, ApiError> {
        Ok(store.add_goal(user, title(&new.title)?).await?.into())
    }

    async fn get(store: &Store, user: UserId, id: i64) -> Result<GoalView, StoreError> {
        Ok(store.goal(user, id).await?.into())
    }

    async fn update(
        store: &Store,
        user: UserId,
        id: i64,
        change: GoalUpdate,
    ) -> Result<GoalView, ApiError> {
        let new_title = change.title.as_deref().map(title).transpose()?;
        Ok(store
            .update_goal(user, id, new_title, change.status.map(GoalStatus::from))
            .await?
            .into())
    }

    async fn delete(store: &Store, user: UserId, id: i64) -> Result<(), StoreError> {
        store.delete_goal(user, id).await
    }
}
