//! `/api/v1/me/tasks`: the person's to-do list (see [`crud`](super::crud) for the routes).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::crud::Resource;
use crate::edges::ApiError;
use crate::store::{Store, StoreError, Task, UserId};

/// Longest task title, in characters.
pub const MAX_TITLE: usize = 500;

/// The routes' marker type.
pub struct Tasks;

/// A task as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Task)]
pub struct TaskView {
    pub id: i64,
    pub title: String,
    pub done: bool,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<Task> for TaskView {
    fn from(t: Task) -> Self {
        TaskView {
            id: t.id,
            title: t.title,
            done: t.done,
            created_at: t.created_at,
            completed_at: t.completed_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// 1 to 500 characters.
    pub title: String,
}

/// Fields to change; absent ones stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskUpdate {
    pub title: Option<String>,
    /// true completes the task, false reopens it.
    pub done: Option<bool>,
}

/// A title trimmed, non-empty, without control characters, at most [`MAX_TITLE`].
pub fn title(text: &str) -> Result<String, ApiError> {
    let text = text.trim();
    if text.is_empty()
        || text.chars().count() > MAX_TITLE
        || text.chars().any(|c| c.is_control() && c != '\t')
    {
        return Err(ApiError::bad_request(
            "invalid_title",
            format!("title must be 1 to {MAX_TITLE} characters, without control characters"),
        ));
    }
    Ok(text.to_owned())
}

#[async_trait]
impl Resource for Tasks {
    const NAME: &'static str = "tasks";
    const FILTERS: &'static [(&'static str, &'static str)] =
        &[("done", "only done (true) or only open (false) tasks")];

    type Item = TaskView;
    type Create = NewTask;
    type Update = TaskUpdate;

    fn id(item: &TaskView) -> i64 {
        item.id
    }

    async fn list(
        store: &Store,
        user: UserId,
        after: i64,
        limit: u32,
        filters: &HashMap<&'static str, bool>,
    ) -> Result<Vec<TaskView>, StoreError> {
        let tasks = store
            .tasks_page(user, after, limit, filters.get("done").copied())
            .await?;
        Ok(tasks.into_iter().map(TaskView::from).collect())
    }

    async fn create(store: &Store, user: UserId, new: NewTask) -> Result<TaskView, ApiError> {
        Ok(store.add_task(user, &title(&new.title)?).await?.into())
    }

    async fn get(store: &Store, user: UserId, id: i64) -> Result<TaskView, StoreError> {
        Ok(store.task(user, id).await?.into())
    }

    async fn update(
        store: &Store,
        user: UserId,
        id: i64,
        change: TaskUpdate,
    ) -> Result<TaskView, ApiError> {
        let new_title = change.title.as_deref().map(title).transpose()?;
        Ok(store
            .update_task(user, id, new_title.as_deref(), change.done)
            .await?
            .into())
    }

    async fn delete(store: &Store, user: UserId, id: i64) -> Result<(), StoreError> {
        store.delete_task(user, id).await
    }
}
