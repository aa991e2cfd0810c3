//! The internal tools as the LLM sees them: thin [`Tool`] wrappers over the domain modules
//! ([`tasks`], [`groceries`]), so the model and the offline rules share one implementation.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::registry::{Tool, ToolContext, ToolError, ToolOutput, ToolRegistry};
use super::{groceries, memory, tasks};

/// Every internal tool.
pub fn registry() -> ToolRegistry {
    ToolRegistry::new()
        .with(AddTasks)
        .with(ListTasks)
        .with(CompleteTask)
        .with(AddGroceries)
        .with(ListGroceries)
        .with(memory::Remember)
        .with(memory::Recall)
        .with(memory::Forget)
}

impl From<tasks::TaskError> for ToolError {
    fn from(e: tasks::TaskError) -> Self {
        match e {
            tasks::TaskError::Store(e) => ToolError::Store(e),
            other => ToolError::InvalidArguments(other.to_string()),
        }
    }
}

impl From<groceries::GroceryError> for ToolError {
    fn from(e: groceries::GroceryError) -> Self {
        match e {
            groceries::GroceryError::Store(e) => ToolError::Store(e),
            other => ToolError::InvalidArguments(other.to_string()),
        }
    }
}

/// Adds tasks to the user's list.
pub struct AddTasks;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTasksArgs {
    /// Task titles, short and concrete (e.g. "call mom"), at most 30.
    pub titles: Vec<String>,
}

#[async_trait]
impl Tool for AddTasks {
    type Args = AddTasksArgs;
    const NAME: &'static str = "add_tasks";
    const DESCRIPTION: &'static str =
        "Add one or more tasks to the user's task list. Break big tasks into small first steps.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: AddTasksArgs,
    ) -> Result<ToolOutput, ToolError> {
        let added = tasks::add_many(ctx.store, ctx.user.id, &args.titles).await?;
        let titles: Vec<&str> = added.added.iter().map(|t| t.title.as_str()).collect();
        Ok(ToolOutput::new(
            json!({ "added": added.added, "open_count": added.open.len() }),
            format!("added {} task(s): {}", titles.len(), titles.join(", ")),
        ))
    }
}

/// Lists the open tasks.
pub struct ListTasks;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[async_trait]
impl Tool for ListTasks {
    type Args = NoArgs;
    const NAME: &'static str = "list_tasks";
    const DESCRIPTION: &'static str =
        "List the user's open tasks, oldest first, numbered from 1 as the user sees them.";

    async fn run(&self, ctx: &ToolContext<'_>, _: NoArgs) -> Result<ToolOutput, ToolError> {
        let open = tasks::list_open(ctx.store, ctx.user.id).await?;
        let numbered: Vec<_> = open
            .iter()
            .enumerate()
            .map(|(i, t)| json!({ "number": i + 1, "id": t.id, "title": t.title }))
            .collect();
        Ok(ToolOutput::new(
            json!({ "open": numbered }),
            format!("{} open task(s)", open.len()),
        ))
    }
}

/// Marks a task done.
pub struct CompleteTask;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteTaskArgs {
    /// The task's number in the open list (1 = oldest), as `list_tasks` shows it.
    pub number: Option<u32>,
    /// Or words of the task's title, when the number is not known.
    pub title: Option<String>,
}

#[async_trait]
impl Tool for CompleteTask {
    type Args = CompleteTaskArgs;
    const NAME: &'static str = "complete_task";
    const DESCRIPTION: &'static str =
        "Mark one open task as done, by its number in the open list or by words of its title.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: CompleteTaskArgs,
    ) -> Result<ToolOutput, ToolError> {
        let target = match (args.number, args.title) {
            (Some(n), _) => tasks::TaskTarget::Positions(vec![n as usize]),
            (None, Some(title)) if !title.trim().is_empty() => tasks::TaskTarget::Title(title),
            _ => {
                return Err(ToolError::InvalidArguments(
                    "give the task's number or words of its title".into(),
                ));
            }
        };
        match tasks::complete_by_position_or_title(ctx.store, ctx.user.id, &target).await? {
            tasks::Completion::Done {
                completed,
                remaining,
                ..
            } => Ok(ToolOutput::new(
                json!({ "completed": completed, "open_count": remaining.len() }),
                format!("completed {} task(s)", completed.len()),
            )),
            tasks::Completion::Ambiguous { candidates } => {
                let names: Vec<_> = candidates
                    .iter()
                    .map(|c| json!({ "number": c.position, "title": c.task.title }))
                    .collect();
                Err(ToolError::InvalidArguments(format!(
                    "several open tasks match; ask which one: {}",
                    serde_json::Value::Array(names)
                )))
            }
            tasks::Completion::NoSuchPosition { .. } | tasks::Completion::NoMatch { .. } => {
                Err(ToolError::NotFound("no open task matches".into()))
            }
        }
    }
}

/// Adds items to the grocery list.
pub struct AddGroceries;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddGroceriesArgs {
    /// Item names (e.g. "milk"), at most 30.
    pub items: Vec<String>,
}

#[async_trait]
impl Tool for AddGroceries {
    type Args = AddGroceriesArgs;
    const NAME: &'static str = "add_groceries";
    const DESCRIPTION: &'static str = "Add items to the user's grocery list.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: AddGroceriesArgs,
    ) -> Result<ToolOutput, ToolError> {
        let added = groceries::add_many(ctx.store, ctx.user.id, &args.items).await?;
        Ok(ToolOutput::new(
            json!({ "added": added.added, "already_listed": added.already_listed, "total": added.total }),
            format!("added {} item(s)", added.added.len()),
        ))
    }
}

/// Lists the grocery list.
pub struct ListGroceries;

#[async_trait]
impl Tool for ListGroceries {
    type Args = NoArgs;
    const NAME: &'static str = "list_groceries";
    const DESCRIPTION: &'static str = "List the items still to buy on the user's grocery list.";

    async fn run(&self, ctx: &ToolContext<'_>, _: NoArgs) -> Result<ToolOutput, ToolError> {
        let items = groceries::list(ctx.store, ctx.user.id).await?;
        Ok(ToolOutput::new(
            json!({ "items": items }),
            format!("{} item(s) to buy", items.len()),
        ))
    }
}
