//! Goals: add them, list them with progress, link tasks to them, see one goal's progress.
//!
//! Goals are numbered 1, 2, … in the order of the active list, oldest first, as [`list`]
//! returns them; tasks by their position in the open task list.

use serde::Serialize;

use crate::store::{Goal, GoalStatus, Store, StoreError, Task, UserId};
use crate::tools::tasks::{Pick, Target, Titled, pick};

/// The longest goal title accepted, in characters.
pub const MAX_GOAL_CHARS: usize = 200;

/// Why a goal tool refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum GoalError {
    #[error("the goal has no title")]
    EmptyTitle,
    #[error("a goal title is {chars} characters long, the limit is {MAX_GOAL_CHARS}")]
    TitleTooLong { chars: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Titled for Goal {
    fn title(&self) -> &str {
        &self.title
    }
}

/// A goal with its linked tasks and the next open one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub goal: Goal,
    pub tasks: Vec<Task>,
    /// The oldest open linked task: the next step.
    pub next: Option<Task>,
}

/// A task linked to a goal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Linked {
    pub goal: Goal,
    pub task: Task,
}

/// A goal title trimmed, non-empty and at most [`MAX_GOAL_CHARS`].
pub fn goal_title(title: &str) -> Result<&str, GoalError> {
    let title = title.trim();
    if title.is_empty() {
        return Err(GoalError::EmptyTitle);
    }
    let chars = title.chars().count();
    if chars > MAX_GOAL_CHARS {
        return Err(GoalError::TitleTooLong { chars });
    }
    Ok(title)
}

/// Adds an active goal.
pub async fn add(store: &Store, user: UserId, title: &str) -> Result<Goal, GoalError> {
    Ok(store.add_goal(user, goal_title(title)?).await?)
}

/// The active goals with their progress, oldest first.
pub async fn list(store: &Store, user: UserId) -> Result<Vec<Goal>, StoreError> {
    store.goals(user, Some(GoalStatus::Active)).await
}

/// Links one open task to one active goal.
pub async fn link(
    store: &Store,
    user: UserId,
    goal: &Target,
    task: &Target,
) -> Result<Result<Linked, LinkMiss>, StoreError> {
    let goals = list(store, user).await?;
    let goal = match pick(&goals, goal) {
        Pick::One(_, g) => g,
        other => return Ok(Err(LinkMiss::Goal(other))),
    };
    let open = store.open_tasks(user).await?;
    let task = match pick(&open, task) {
        Pick::One(_, t) => t,
        other => return Ok(Err(LinkMiss::Task(other))),
    };
    store.link_task_to_goal(user, goal.id, task.id).await?;
    let goal = store.goal(user, goal.id).await?;
    Ok(Ok(Linked { goal, task }))
}

/// Which side of a link could not be found.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkMiss {
    Goal(Pick<Goal>),
    Task(Pick<Task>),
}

/// One active goal's progress.
pub async fn progress(
    store: &Store,
    user: UserId,
    goal: &Target,
) -> Result<Pick<Progress>, StoreError> {
    let goals = list(store, user).await?;
    let (position, goal) = match pick(&goals, goal) {
        Pick::One(p, g) => (p, g),
        Pick::NoSuchPosition(l) => {
            return Ok(Pick::NoSuchPosition(l.into_iter().map(bare).collect()));
        }
        Pick::NoMatch(l) => return Ok(Pick::NoMatch(l.into_iter().map(bare).collect())),
        Pick::Ambiguous(c) => {
            return Ok(Pick::Ambiguous(
                c.into_iter().map(|(p, g)| (p, bare(g))).collect(),
            ));
        }
    };
    let tasks = store.goal_tasks(user, goal.id).await?;
    let next = tasks.iter().find(|t| !t.done).cloned();
    Ok(Pick::One(position, Progress { goal, tasks, next }))
}

fn bare(goal: Goal) -> Progress {
    Progress {
        goal,
        tasks: Vec::new(),
        next: None,
    }
}
