//! The internal tools as the LLM sees them: thin [`Tool`] wrappers over the domain modules
//! ([`tasks`], [`goals`], [`groceries`], [`expenses`], [`notes`], [`reminders`]), so the
//! model and the offline rules share one implementation.
//!
//! Each tool validates its arguments (the registry refuses unknown fields and wrong types;
//! the domain refuses empty, too long or impossible values) and returns a small typed result:
//! JSON for the model and a one-line summary. Items are pointed at the way the user sees
//! them: by their number in a list (`list_tasks`, `list_goals`, …) or by words of their title.
//! Times are read in the user's zone, as natural English / French or ISO 8601.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::expenses::{self, ExpenseError, ExpenseInput, Period};
use super::goals::{self, GoalError, LinkMiss};
use super::groceries::{self, GroceryError, ItemTarget};
use super::memory;
use super::notes::{self, NoteError};
use super::registry::{Tool, ToolContext, ToolError, ToolOutput, ToolRegistry};
use super::reminders::{self, ReminderError};
use super::tasks::{self, ListFilter, Pick, Target, TaskError};
use super::when::{self, WhenError};
use crate::store::{Due, Priority, Task};

/// Every internal tool.
pub fn registry() -> ToolRegistry {
    ToolRegistry::new()
        .with(AddTasks)
        .with(ListTasks)
        .with(CompleteTask)
        .with(ReopenTask)
        .with(RescheduleTask)
        .with(SetTaskPriority)
        .with(TaskStats)
        .with(BreakDownTask)
        .with(AddGoal)
        .with(ListGoals)
        .with(LinkTaskToGoal)
        .with(GoalProgress)
        .with(AddGroceries)
        .with(ListGroceries)
        .with(memory::Remember)
        .with(memory::Recall)
        .with(memory::Forget)
        .with(CheckOffGroceries)
        .with(ClearGroceries)
        .with(LogExpense)
        .with(ExpenseTotals)
        .with(SaveNote)
        .with(ListNotes)
        .with(SearchNotes)
        .with(DeleteNote)
        .with(CreateReminder)
        .with(ListReminders)
        .with(CancelReminder)
        .with(SetMorningDigest)
}

fn invalid(e: impl ToString) -> ToolError {
    ToolError::InvalidArguments(e.to_string())
}

/// A domain error becomes the caller's mistake (`InvalidArguments`) unless the store failed.
macro_rules! caller_error_from {
    ($($error:ident),+) => {
        $(
            impl From<$error> for ToolError {
                fn from(e: $error) -> Self {
                    match e {
                        $error::Store(e) => ToolError::Store(e),
                        other => invalid(other),
                    }
                }
            }
        )+
    };
}

caller_error_from!(
    TaskError,
    GroceryError,
    GoalError,
    ExpenseError,
    NoteError,
    ReminderError
);

impl From<WhenError> for ToolError {
    fn from(e: WhenError) -> Self {
        invalid(e)
    }
}

fn zone(ctx: &ToolContext<'_>) -> Tz {
    when::zone(&ctx.user.time_zone)
}

/// A number or words naming one item; refused when neither is given.
fn target(number: Option<u32>, words: Option<String>, what: &str) -> Result<Target, ToolError> {
    match (number, words) {
        (Some(0), _) => Err(invalid(format!("{what} numbers start at 1"))),
        (Some(n), _) => Ok(Target::Position(n as usize)),
        (None, Some(w)) if !w.trim().is_empty() => Ok(Target::Title(w)),
        _ => Err(invalid(format!("give the {what}'s number or words of it"))),
    }
}

/// The item a [`Pick`] found, or the error the model can act on.
fn picked<T: tasks::Titled>(pick: Pick<T>, what: &str) -> Result<(usize, T), ToolError> {
    match pick {
        Pick::One(position, item) => Ok((position, item)),
        miss => Err(missed(miss, what)),
    }
}

/// The error the model can act on when a number or words named no single item.
fn missed<T: tasks::Titled>(pick: Pick<T>, what: &str) -> ToolError {
    match pick {
        Pick::NoSuchPosition(list) => ToolError::NotFound(format!(
            "no {what} with that number; there are {}",
            list.len()
        )),
        Pick::Ambiguous(candidates) => {
            let names: Vec<String> = candidates
                .iter()
                .map(|(p, item)| format!("{p}. {}", item.title()))
                .collect();
            invalid(format!(
                "several {what}s match; ask which one: {}",
                names.join("; ")
            ))
        }
        Pick::NoMatch(_) | Pick::One(..) => {
            ToolError::NotFound(format!("no {what} matches those words"))
        }
    }
}

/// A task as the model sees it: its number in the open list and its due date in the user's
/// zone.
#[derive(Debug, Serialize)]
pub struct TaskView {
    /// Position in the open list (0 when the task is done).
    pub number: usize,
    pub title: String,
    pub done: bool,
    /// Local ISO date-time (or date, for a whole day) it is due, in the user's zone.
    pub due: Option<String>,
    pub priority: Priority,
    /// Due dates that passed while it was open.
    pub misses: u32,
    /// True when it has slipped often: offer small first steps (`break_down_task`).
    pub offer_small_steps: bool,
}

fn due_text(due: Option<Due>, tz: Tz) -> Option<String> {
    due.map(|d| {
        let local = d.at.with_timezone(&tz);
        if d.all_day {
            local.format("%Y-%m-%d").to_string()
        } else {
            local.format("%Y-%m-%dT%H:%M").to_string()
        }
    })
}

fn task_view(number: usize, task: &Task, tz: Tz) -> TaskView {
    TaskView {
        number,
        title: task.title.clone(),
        done: task.done,
        due: due_text(task.due, tz),
        priority: task.priority,
        misses: task.misses,
        offer_small_steps: task.misses >= tasks::MISSES_BEFORE_BREAKDOWN,
    }
}

/// Position of a task in the open list, 0 if it is not open.
fn position_in(open: &[Task], id: i64) -> usize {
    open.iter().position(|t| t.id == id).map_or(0, |i| i + 1)
}

// --- tasks ------------------------------------------------------------------------------------

/// Adds tasks to the user's list.
pub struct AddTasks;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTasksArgs {
    /// Task titles, short and concrete (e.g. "call mom"), at most 30.
    pub titles: Vec<String>,
    /// When they are due, in the user's words or ISO 8601 ("friday", "tomorrow 5pm",
    /// "2026-03-12T17:00"). Optional.
    #[serde(default)]
    pub due: Option<String>,
    /// How much they matter (default normal).
    #[serde(default)]
    pub priority: Option<Priority>,
}

#[derive(Serialize)]
struct AddedTasks {
    added: Vec<TaskView>,
    open_count: usize,
}

#[async_trait]
impl Tool for AddTasks {
    type Args = AddTasksArgs;
    const NAME: &'static str = "add_tasks";
    const DESCRIPTION: &'static str = "Add one or more tasks to the user's task list, optionally with a due date and a \
         priority. Break big tasks into small first steps.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: AddTasksArgs,
    ) -> Result<ToolOutput, ToolError> {
        let tz = zone(ctx);
        let due = args
            .due
            .as_deref()
            .map(|text| tasks::read_due(text, ctx.now, tz))
            .transpose()?;
        let priority = args.priority.unwrap_or_default();
        let added =
            tasks::add_many_with(ctx.store, ctx.user.id, &args.titles, due, priority).await?;
        let views = added
            .added
            .iter()
            .map(|t| task_view(position_in(&added.open, t.id), t, tz))
            .collect::<Vec<_>>();
        let titles: Vec<&str> = views.iter().map(|v| v.title.as_str()).collect();
        let summary = format!("added {} task(s): {}", titles.len(), titles.join(", "));
        Ok(ToolOutput::new(
            AddedTasks {
                added: views,
                open_count: added.open.len(),
            },
            summary,
        ))
    }
}

/// Lists tasks, with a filter.
pub struct ListTasks;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTasksArgs {
    /// Which tasks: open (default), overdue, due_today, due_this_week, high_priority.
    #[serde(default)]
    pub filter: Option<ListFilter>,
}

#[derive(Serialize)]
struct TaskList {
    filter: ListFilter,
    /// The open tasks the filter keeps, under their numbers in the whole open list.
    open: Vec<TaskView>,
    open_count: usize,
}

#[async_trait]
impl Tool for ListTasks {
    type Args = ListTasksArgs;
    const NAME: &'static str = "list_tasks";
    const DESCRIPTION: &'static str = "List the user's open tasks (optionally only overdue, due today, due this week or high \
         priority), numbered from 1 oldest first as the user sees them.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: ListTasksArgs,
    ) -> Result<ToolOutput, ToolError> {
        let tz = zone(ctx);
        let filter = args.filter.unwrap_or_default();
        let listing = tasks::list(ctx.store, ctx.user.id, filter, ctx.now, tz).await?;
        let views: Vec<TaskView> = listing
            .tasks
            .iter()
            .map(|n| task_view(n.position, &n.task, tz))
            .collect();
        let summary = match filter {
            ListFilter::Open => format!("{} open task(s)", views.len()),
            ListFilter::Overdue => format!("{} overdue task(s)", views.len()),
            ListFilter::DueToday => format!("{} task(s) due today", views.len()),
            ListFilter::DueThisWeek => format!("{} task(s) due this week", views.len()),
            ListFilter::HighPriority => format!("{} urgent task(s)", views.len()),
        };
        Ok(ToolOutput::new(
            TaskList {
                filter,
                open: views,
                open_count: listing.open_count,
            },
            summary,
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

#[derive(Serialize)]
struct Completed {
    completed: Vec<TaskView>,
    open_count: usize,
    next: Option<String>,
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
        let target = match target(args.number, args.title, "task")? {
            Target::Position(p) => tasks::TaskTarget::Positions(vec![p]),
            Target::Title(t) => tasks::TaskTarget::Title(t),
        };
        match tasks::complete_by_position_or_title(ctx.store, ctx.user.id, &target, ctx.now).await?
        {
            tasks::Completion::Done {
                completed,
                remaining,
                ..
            } => {
                let tz = zone(ctx);
                let summary = format!("completed {} task(s)", completed.len());
                Ok(ToolOutput::new(
                    Completed {
                        completed: completed.iter().map(|t| task_view(0, t, tz)).collect(),
                        open_count: remaining.len(),
                        next: remaining.first().map(|t| t.title.clone()),
                    },
                    summary,
                ))
            }
            tasks::Completion::Ambiguous { candidates } => Err(missed(
                Pick::Ambiguous(
                    candidates
                        .into_iter()
                        .map(|c| (c.position, c.task))
                        .collect(),
                ),
                "task",
            )),
            tasks::Completion::NoSuchPosition { .. } | tasks::Completion::NoMatch { .. } => {
                Err(ToolError::NotFound("no open task matches".into()))
            }
        }
    }
}

/// Reopens a completed task (undo).
pub struct ReopenTask;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReopenTaskArgs {
    /// Words of the title of a task completed in the last 7 days; the latest one if omitted.
    #[serde(default)]
    pub title: Option<String>,
}

#[async_trait]
impl Tool for ReopenTask {
    type Args = ReopenTaskArgs;
    const NAME: &'static str = "reopen_task";
    const DESCRIPTION: &'static str =
        "Put a task completed in the last 7 days back on the open list (undo a completion).";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: ReopenTaskArgs,
    ) -> Result<ToolOutput, ToolError> {
        let title = args
            .title
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        match tasks::reopen(ctx.store, ctx.user.id, title, ctx.now).await? {
            tasks::Reopen::Reopened(task) => {
                let open = ctx.store.open_tasks(ctx.user.id).await?;
                let view = task_view(position_in(&open, task.id), &task, zone(ctx));
                let summary = format!("reopened: {}", view.title);
                Ok(ToolOutput::new(view, summary))
            }
            tasks::Reopen::NothingRecent => Err(ToolError::NotFound(
                "no task was completed in the last 7 days".into(),
            )),
            tasks::Reopen::NoMatch(_) => Err(ToolError::NotFound(
                "no recently completed task matches those words".into(),
            )),
            tasks::Reopen::Ambiguous(candidates) => {
                let names: Vec<&str> = candidates.iter().map(|t| t.title.as_str()).collect();
                Err(invalid(format!(
                    "several completed tasks match; ask which one: {}",
                    names.join("; ")
                )))
            }
        }
    }
}

/// Sets or clears a task's due date.
pub struct RescheduleTask;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleTaskArgs {
    /// The task's number in the open list.
    pub number: Option<u32>,
    /// Or words of its title.
    pub title: Option<String>,
    /// The new due date in the user's words or ISO 8601 ("monday", "demain 9h"); omit to
    /// clear the due date.
    #[serde(default)]
    pub due: Option<String>,
}

#[async_trait]
impl Tool for RescheduleTask {
    type Args = RescheduleTaskArgs;
    const NAME: &'static str = "reschedule_task";
    const DESCRIPTION: &'static str =
        "Move an open task's due date (or clear it). Rescheduling is normal; never scold.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: RescheduleTaskArgs,
    ) -> Result<ToolOutput, ToolError> {
        let target = target(args.number, args.title, "task")?;
        let tz = zone(ctx);
        let due = args
            .due
            .as_deref()
            .map(|text| tasks::read_due(text, ctx.now, tz))
            .transpose()?;
        let pick = tasks::reschedule(ctx.store, ctx.user.id, &target, due).await?;
        let (position, task) = picked(pick, "task")?;
        let summary = format!("rescheduled: {}", task.title);
        Ok(ToolOutput::new(task_view(position, &task, tz), summary))
    }
}

/// Sets a task's priority.
pub struct SetTaskPriority;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetTaskPriorityArgs {
    /// The task's number in the open list.
    pub number: Option<u32>,
    /// Or words of its title.
    pub title: Option<String>,
    /// low, normal or high.
    pub priority: Priority,
}

#[async_trait]
impl Tool for SetTaskPriority {
    type Args = SetTaskPriorityArgs;
    const NAME: &'static str = "set_task_priority";
    const DESCRIPTION: &'static str = "Set an open task's priority to low, normal or high.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: SetTaskPriorityArgs,
    ) -> Result<ToolOutput, ToolError> {
        let target = target(args.number, args.title, "task")?;
        let pick = tasks::set_priority(ctx.store, ctx.user.id, &target, args.priority).await?;
        let (position, task) = picked(pick, "task")?;
        Ok(ToolOutput::new(
            task_view(position, &task, zone(ctx)),
            format!("{} priority: {}", task.priority.as_str(), task.title),
        ))
    }
}

/// How the list is going.
pub struct TaskStats;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[async_trait]
impl Tool for TaskStats {
    type Args = NoArgs;
    const NAME: &'static str = "task_stats";
    const DESCRIPTION: &'static str = "Count tasks done today, this week (since Monday) and last week, and open, overdue and \
         due-today tasks. Celebrate progress; never compare or shame.";

    async fn run(&self, ctx: &ToolContext<'_>, _: NoArgs) -> Result<ToolOutput, ToolError> {
        let stats = tasks::stats(ctx.store, ctx.user.id, ctx.now, zone(ctx)).await?;
        let summary = format!("{} done this week", stats.done_this_week);
        Ok(ToolOutput::new(stats, summary))
    }
}

/// Breaks a task into small first steps.
pub struct BreakDownTask;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakDownTaskArgs {
    /// The task's number in the open list.
    pub number: Option<u32>,
    /// Or words of its title.
    pub title: Option<String>,
    /// Two to five small first steps, each a few minutes long and starting with a verb; a
    /// simple template is used if omitted.
    #[serde(default)]
    pub steps: Option<Vec<String>>,
}

#[derive(Serialize)]
struct BrokenDownView {
    task: TaskView,
    steps: Vec<TaskView>,
}

#[async_trait]
impl Tool for BreakDownTask {
    type Args = BreakDownTaskArgs;
    const NAME: &'static str = "break_down_task";
    const DESCRIPTION: &'static str = "Add small first steps for an open task that keeps slipping (offer_small_steps), as new \
         tasks. The task stays on the list.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: BreakDownTaskArgs,
    ) -> Result<ToolOutput, ToolError> {
        let target = target(args.number, args.title, "task")?;
        if let Some(steps) = &args.steps
            && !(1..=5).contains(&steps.len())
        {
            return Err(invalid("give one to five steps"));
        }
        let pick = tasks::break_down(
            ctx.store,
            ctx.user.id,
            &target,
            args.steps.as_deref(),
            ctx.user.language,
        )
        .await?;
        let (position, broken) = picked(pick, "task")?;
        let tz = zone(ctx);
        let open = ctx.store.open_tasks(ctx.user.id).await?;
        let view = BrokenDownView {
            task: task_view(position, &broken.task, tz),
            steps: broken
                .steps
                .iter()
                .map(|t| task_view(position_in(&open, t.id), t, tz))
                .collect(),
        };
        let summary = format!(
            "added {} small step(s) for: {}",
            view.steps.len(),
            view.task.title
        );
        Ok(ToolOutput::new(view, summary))
    }
}

impl tasks::Titled for tasks::BrokenDown {
    fn title(&self) -> &str {
        &self.task.title
    }
}

// --- goals ------------------------------------------------------------------------------------

/// Adds a goal.
pub struct AddGoal;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddGoalArgs {
    /// What the user works towards (e.g. "run a 10k"), at most 200 characters.
    pub title: String,
}

#[derive(Serialize)]
struct GoalView {
    /// Position in the active goals list.
    number: usize,
    title: String,
    tasks_done: u32,
    tasks_total: u32,
}

fn goal_view(number: usize, goal: &crate::store::Goal) -> GoalView {
    GoalView {
        number,
        title: goal.title.clone(),
        tasks_done: goal.tasks_done,
        tasks_total: goal.tasks_total,
    }
}

#[async_trait]
impl Tool for AddGoal {
    type Args = AddGoalArgs;
    const NAME: &'static str = "add_goal";
    const DESCRIPTION: &'static str =
        "Add a goal the user works towards; link tasks to it with link_task_to_goal.";

    async fn run(&self, ctx: &ToolContext<'_>, args: AddGoalArgs) -> Result<ToolOutput, ToolError> {
        let goal = goals::add(ctx.store, ctx.user.id, &args.title).await?;
        let active = goals::list(ctx.store, ctx.user.id).await?;
        let number = active
            .iter()
            .position(|g| g.id == goal.id)
            .map_or(0, |i| i + 1);
        let summary = format!("added goal: {}", goal.title);
        Ok(ToolOutput::new(goal_view(number, &goal), summary))
    }
}

/// Lists the active goals with progress.
pub struct ListGoals;

#[async_trait]
impl Tool for ListGoals {
    type Args = NoArgs;
    const NAME: &'static str = "list_goals";
    const DESCRIPTION: &'static str =
        "List the user's active goals, numbered from 1, with how many linked tasks are done.";

    async fn run(&self, ctx: &ToolContext<'_>, _: NoArgs) -> Result<ToolOutput, ToolError> {
        let active = goals::list(ctx.store, ctx.user.id).await?;
        let views: Vec<GoalView> = active
            .iter()
            .enumerate()
            .map(|(i, g)| goal_view(i + 1, g))
            .collect();
        let summary = format!("{} goal(s)", views.len());
        Ok(ToolOutput::new(
            serde_json::json!({ "goals": views }),
            summary,
        ))
    }
}

/// Links a task to a goal.
pub struct LinkTaskToGoal;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkTaskToGoalArgs {
    /// The goal's number in `list_goals`.
    pub goal_number: Option<u32>,
    /// Or words of the goal's title.
    pub goal_title: Option<String>,
    /// The task's number in the open list.
    pub task_number: Option<u32>,
    /// Or words of the task's title.
    pub task_title: Option<String>,
}

#[async_trait]
impl Tool for LinkTaskToGoal {
    type Args = LinkTaskToGoalArgs;
    const NAME: &'static str = "link_task_to_goal";
    const DESCRIPTION: &'static str =
        "Link an open task to an active goal, so the goal's progress counts it.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: LinkTaskToGoalArgs,
    ) -> Result<ToolOutput, ToolError> {
        let goal = target(args.goal_number, args.goal_title, "goal")?;
        let task = target(args.task_number, args.task_title, "task")?;
        match goals::link(ctx.store, ctx.user.id, &goal, &task).await? {
            Ok(linked) => Ok(ToolOutput::new(
                serde_json::json!({
                    "goal": goal_view(0, &linked.goal),
                    "task": task_view(0, &linked.task, zone(ctx)),
                }),
                format!("linked {} to {}", linked.task.title, linked.goal.title),
            )),
            Err(LinkMiss::Goal(pick)) => Err(missed(pick, "goal")),
            Err(LinkMiss::Task(pick)) => Err(missed(pick, "task")),
        }
    }
}

/// One goal's progress.
pub struct GoalProgress;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GoalProgressArgs {
    /// The goal's number in `list_goals`.
    pub goal_number: Option<u32>,
    /// Or words of the goal's title.
    pub goal_title: Option<String>,
}

impl tasks::Titled for goals::Progress {
    fn title(&self) -> &str {
        &self.goal.title
    }
}

#[async_trait]
impl Tool for GoalProgress {
    type Args = GoalProgressArgs;
    const NAME: &'static str = "goal_progress";
    const DESCRIPTION: &'static str =
        "Show one goal's progress: its linked tasks, how many are done, and the next open one.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: GoalProgressArgs,
    ) -> Result<ToolOutput, ToolError> {
        let goal = target(args.goal_number, args.goal_title, "goal")?;
        let pick = goals::progress(ctx.store, ctx.user.id, &goal).await?;
        let (position, progress) = picked(pick, "goal")?;
        let tz = zone(ctx);
        Ok(ToolOutput::new(
            serde_json::json!({
                "goal": goal_view(position, &progress.goal),
                "tasks": progress.tasks.iter().map(|t| task_view(0, t, tz)).collect::<Vec<_>>(),
                "next": progress.next.as_ref().map(|t| t.title.clone()),
            }),
            format!(
                "{}/{} done",
                progress.goal.tasks_done, progress.goal.tasks_total
            ),
        ))
    }
}

// --- groceries --------------------------------------------------------------------------------

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
            serde_json::json!({
                "added": added.added.iter().map(|i| &i.name).collect::<Vec<_>>(),
                "already_listed": added.already_listed,
                "total": added.total,
            }),
            format!("added {} item(s)", added.added.len()),
        ))
    }
}

/// Lists the grocery list.
pub struct ListGroceries;

#[derive(Serialize)]
struct ItemView {
    number: usize,
    name: String,
}

fn item_views(items: &[crate::store::GroceryItem]) -> Vec<ItemView> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| ItemView {
            number: i + 1,
            name: item.name.clone(),
        })
        .collect()
}

#[async_trait]
impl Tool for ListGroceries {
    type Args = NoArgs;
    const NAME: &'static str = "list_groceries";
    const DESCRIPTION: &'static str =
        "List the items still to buy on the user's grocery list, numbered from 1.";

    async fn run(&self, ctx: &ToolContext<'_>, _: NoArgs) -> Result<ToolOutput, ToolError> {
        let items = groceries::list(ctx.store, ctx.user.id).await?;
        Ok(ToolOutput::new(
            serde_json::json!({ "items": item_views(&items) }),
            format!("{} item(s) to buy", items.len()),
        ))
    }
}

/// Checks items off the grocery list.
pub struct CheckOffGroceries;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckOffGroceriesArgs {
    /// Item names as the user said them ("milk").
    #[serde(default)]
    pub items: Vec<String>,
    /// Or their numbers in `list_groceries`.
    #[serde(default)]
    pub numbers: Vec<u32>,
}

#[async_trait]
impl Tool for CheckOffGroceries {
    type Args = CheckOffGroceriesArgs;
    const NAME: &'static str = "check_off_groceries";
    const DESCRIPTION: &'static str = "Check bought items off the grocery list, by name or number.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: CheckOffGroceriesArgs,
    ) -> Result<ToolOutput, ToolError> {
        if args.items.is_empty() && args.numbers.is_empty() {
            return Err(invalid("give item names or numbers"));
        }
        if args.items.len() + args.numbers.len() > groceries::MAX_ITEMS_PER_MESSAGE {
            return Err(invalid(format!(
                "at most {} items at once",
                groceries::MAX_ITEMS_PER_MESSAGE
            )));
        }
        let targets: Vec<ItemTarget> = args
            .numbers
            .iter()
            .map(|n| ItemTarget::Position(*n as usize))
            .chain(args.items.into_iter().map(ItemTarget::Name))
            .collect();
        let report = groceries::check_off(ctx.store, ctx.user.id, &targets).await?;
        let not_found: Vec<String> = report
            .not_found
            .iter()
            .map(|t| match t {
                ItemTarget::Name(n) => n.clone(),
                ItemTarget::Position(p) => format!("#{p}"),
            })
            .collect();
        let ambiguous: Vec<String> = report.ambiguous.iter().map(|a| a.name.clone()).collect();
        Ok(ToolOutput::new(
            serde_json::json!({
                "checked": report.checked.iter().map(|i| &i.name).collect::<Vec<_>>(),
                "not_found": not_found,
                "ambiguous": ambiguous,
                "remaining": item_views(&report.remaining),
            }),
            format!("checked off {} item(s)", report.checked.len()),
        ))
    }
}

/// Empties the grocery list.
pub struct ClearGroceries;

#[async_trait]
impl Tool for ClearGroceries {
    type Args = NoArgs;
    const NAME: &'static str = "clear_groceries";
    const DESCRIPTION: &'static str =
        "Remove every item from the user's grocery list. Only when the user asks to clear it.";

    async fn run(&self, ctx: &ToolContext<'_>, _: NoArgs) -> Result<ToolOutput, ToolError> {
        let cleared = groceries::clear(ctx.store, ctx.user.id).await?;
        Ok(ToolOutput::new(
            serde_json::json!({ "cleared": cleared }),
            format!("cleared {cleared} item(s)"),
        ))
    }
}

// --- expenses ---------------------------------------------------------------------------------

/// Logs an expense.
pub struct LogExpense;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogExpenseArgs {
    /// The amount as decimal text, e.g. "12.50" (a plain JSON number is accepted too).
    #[serde(deserialize_with = "decimal_text")]
    #[schemars(with = "String")]
    pub amount: String,
    /// ISO 4217 code (EUR, USD, JPY…); the user's usual currency if omitted.
    #[serde(default)]
    pub currency: Option<String>,
    /// A short category: food, groceries, transport, housing, bills, health, shopping, fun, or
    /// the user's own word. "other" if omitted.
    #[serde(default)]
    pub category: Option<String>,
    /// What it was, in the user's words (stored sealed).
    #[serde(default)]
    pub note: Option<String>,
}

/// Accepts `"12.50"` or `12.5` and keeps the decimal text (a number is printed back exactly as
/// JSON wrote it, never computed with).
fn decimal_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(serde_json::Number),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::Text(t) => t,
        Raw::Number(n) => n.to_string(),
    })
}

#[derive(Serialize)]
struct ExpenseView {
    amount: String,
    currency: String,
    category: String,
    note: Option<String>,
}

#[async_trait]
impl Tool for LogExpense {
    type Args = LogExpenseArgs;
    const NAME: &'static str = "log_expense";
    const DESCRIPTION: &'static str =
        "Log money the user spent: amount, currency, category and a note.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: LogExpenseArgs,
    ) -> Result<ToolOutput, ToolError> {
        let default = expenses::default_currency(
            ctx.store,
            ctx.user.id,
            &ctx.user.time_zone,
            ctx.user.language,
        )
        .await?;
        let input = ExpenseInput {
            amount: args.amount,
            currency: args.currency,
            category: args.category,
            note: args.note,
        };
        let logged = expenses::log(ctx.store, ctx.user.id, &input, &default, ctx.now).await?;
        let amount = expenses::decimal_text(
            logged.amount_minor,
            &logged.currency,
            crate::store::Language::En,
        );
        let summary = format!("logged {amount} {}", logged.currency);
        Ok(ToolOutput::new(
            ExpenseView {
                amount,
                currency: logged.currency,
                category: logged.category,
                note: logged.note,
            },
            summary,
        ))
    }
}

/// Totals of expenses.
pub struct ExpenseTotals;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpenseTotalsArgs {
    /// today, week (since Monday, default) or month (since the 1st), in the user's zone.
    #[serde(default)]
    pub period: Option<Period>,
}

#[async_trait]
impl Tool for ExpenseTotals {
    type Args = ExpenseTotalsArgs;
    const NAME: &'static str = "expense_totals";
    const DESCRIPTION: &'static str =
        "Total the user's expenses for today, this week or this month, per currency and category.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: ExpenseTotalsArgs,
    ) -> Result<ToolOutput, ToolError> {
        let period = args.period.unwrap_or_default();
        let totals = expenses::totals(ctx.store, ctx.user.id, period, ctx.now, zone(ctx)).await?;
        let lang = crate::store::Language::En;
        let view: Vec<serde_json::Value> = totals
            .currencies
            .iter()
            .map(|c| {
                serde_json::json!({
                    "currency": c.currency,
                    "total": expenses::decimal_text(c.amount_minor, &c.currency, lang),
                    "by_category": c.categories.iter().map(|k| serde_json::json!({
                        "category": k.category,
                        "total": expenses::decimal_text(k.amount_minor, &c.currency, lang),
                        "count": k.count,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(ToolOutput::new(
            serde_json::json!({ "period": period, "currencies": view }),
            format!("{} currency total(s)", view.len()),
        ))
    }
}

// --- notes ------------------------------------------------------------------------------------

/// Saves a note.
pub struct SaveNote;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveNoteArgs {
    /// The note, in the user's words, at most 1000 characters (stored sealed).
    pub text: String,
}

#[derive(Serialize)]
struct NoteView {
    /// Position in the newest-first list.
    number: usize,
    text: String,
    saved_at: DateTime<Utc>,
}

#[async_trait]
impl Tool for SaveNote {
    type Args = SaveNoteArgs;
    const NAME: &'static str = "save_note";
    const DESCRIPTION: &'static str = "Save a note for the user to find later with search_notes.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: SaveNoteArgs,
    ) -> Result<ToolOutput, ToolError> {
        let note = notes::save(ctx.store, ctx.user.id, &args.text).await?;
        Ok(ToolOutput::new(
            NoteView {
                number: 1,
                text: note.body,
                saved_at: note.created_at,
            },
            "saved a note",
        ))
    }
}

/// Lists the latest notes.
pub struct ListNotes;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListNotesArgs {
    /// How many of the latest notes (1 to 50, default 10).
    #[serde(default)]
    pub limit: Option<u32>,
}

#[async_trait]
impl Tool for ListNotes {
    type Args = ListNotesArgs;
    const NAME: &'static str = "list_notes";
    const DESCRIPTION: &'static str =
        "List the user's latest notes, newest first, numbered from 1.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: ListNotesArgs,
    ) -> Result<ToolOutput, ToolError> {
        let limit = args.limit.unwrap_or(10);
        if !(1..=50).contains(&limit) {
            return Err(invalid("limit is between 1 and 50"));
        }
        let list = notes::list(ctx.store, ctx.user.id, limit).await?;
        let views: Vec<NoteView> = list
            .into_iter()
            .enumerate()
            .map(|(i, n)| NoteView {
                number: i + 1,
                text: n.body,
                saved_at: n.created_at,
            })
            .collect();
        let summary = format!("{} note(s)", views.len());
        Ok(ToolOutput::new(
            serde_json::json!({ "notes": views }),
            summary,
        ))
    }
}

/// Searches the notes.
pub struct SearchNotes;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchNotesArgs {
    /// Words to look for; every word must appear in a note.
    pub query: String,
}

#[async_trait]
impl Tool for SearchNotes {
    type Args = SearchNotesArgs;
    const NAME: &'static str = "search_notes";
    const DESCRIPTION: &'static str =
        "Find the user's notes containing the given words, best first.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: SearchNotesArgs,
    ) -> Result<ToolOutput, ToolError> {
        let found = notes::search(ctx.store, ctx.user.id, &args.query, 10).await?;
        let texts: Vec<&str> = found.iter().map(|n| n.body.as_str()).collect();
        Ok(ToolOutput::new(
            serde_json::json!({ "notes": texts }),
            format!("{} note(s) found", texts.len()),
        ))
    }
}

/// Deletes a note.
pub struct DeleteNote;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteNoteArgs {
    /// The note's number in `list_notes` (1 = newest).
    pub number: Option<u32>,
    /// Or words of the note.
    pub words: Option<String>,
}

#[async_trait]
impl Tool for DeleteNote {
    type Args = DeleteNoteArgs;
    const NAME: &'static str = "delete_note";
    const DESCRIPTION: &'static str = "Delete one of the user's notes, only when they ask.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: DeleteNoteArgs,
    ) -> Result<ToolOutput, ToolError> {
        let target = target(args.number, args.words, "note")?;
        let (_, note) = picked(
            notes::delete(ctx.store, ctx.user.id, &target).await?,
            "note",
        )?;
        Ok(ToolOutput::new(
            serde_json::json!({ "deleted": note.body }),
            "deleted a note",
        ))
    }
}

// --- reminders --------------------------------------------------------------------------------

/// Creates a reminder.
pub struct CreateReminder;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReminderArgs {
    /// What to remind the user of, short ("take meds"), stored sealed.
    pub text: String,
    /// When, in the user's words or ISO 8601: "in 20 minutes", "tomorrow at 9", "demain à 9h",
    /// "every Monday at 8am", "tous les jours à 8h", "2026-03-12T09:00". A day alone rings at
    /// 9:00.
    pub when: String,
    /// True only when the user says it is urgent: it then rings even inside their quiet
    /// hours (others wait for the end of the quiet window).
    #[serde(default)]
    pub urgent: bool,
}

#[derive(Serialize)]
struct ReminderView {
    number: usize,
    text: String,
    /// Local ISO date-time of the next time it rings, in the user's zone.
    next: String,
    /// The repeat rule (RRULE), for repeating reminders.
    repeats: Option<String>,
    /// Rings even inside quiet hours.
    urgent: bool,
}

fn reminder_view(number: usize, r: &crate::store::Reminder, tz: Tz) -> ReminderView {
    ReminderView {
        number,
        text: r.body.clone(),
        next: r
            .due_at
            .with_timezone(&tz)
            .format("%Y-%m-%dT%H:%M")
            .to_string(),
        repeats: r.recurrence.clone(),
        urgent: r.urgent,
    }
}

#[async_trait]
impl Tool for CreateReminder {
    type Args = CreateReminderArgs;
    const NAME: &'static str = "create_reminder";
    const DESCRIPTION: &'static str =
        "Schedule a reminder (one-off or repeating) at a time in the user's time zone.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: CreateReminderArgs,
    ) -> Result<ToolOutput, ToolError> {
        let scheduled = reminders::create_from_text(
            ctx.store,
            ctx.user.id,
            reminders::Wording {
                text: &args.text,
                urgent: args.urgent,
            },
            &args.when,
            ctx.now,
            &ctx.user.time_zone,
        )
        .await?;
        let list = reminders::list(ctx.store, ctx.user.id).await?;
        let number = list
            .iter()
            .position(|s| s.reminder.id == scheduled.reminder.id)
            .map_or(0, |i| i + 1);
        Ok(ToolOutput::new(
            reminder_view(number, &scheduled.reminder, zone(ctx)),
            "scheduled a reminder",
        ))
    }
}

/// Lists the scheduled reminders.
pub struct ListReminders;

#[async_trait]
impl Tool for ListReminders {
    type Args = NoArgs;
    const NAME: &'static str = "list_reminders";
    const DESCRIPTION: &'static str =
        "List the user's scheduled reminders, soonest first, numbered from 1.";

    async fn run(&self, ctx: &ToolContext<'_>, _: NoArgs) -> Result<ToolOutput, ToolError> {
        let tz = zone(ctx);
        let list = reminders::list(ctx.store, ctx.user.id).await?;
        let views: Vec<ReminderView> = list
            .iter()
            .enumerate()
            .map(|(i, s)| reminder_view(i + 1, &s.reminder, tz))
            .collect();
        let summary = format!("{} reminder(s)", views.len());
        Ok(ToolOutput::new(
            serde_json::json!({ "reminders": views }),
            summary,
        ))
    }
}

/// Cancels a reminder.
pub struct CancelReminder;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelReminderArgs {
    /// The reminder's number in `list_reminders`.
    pub number: Option<u32>,
    /// Or words of its text.
    pub text: Option<String>,
}

#[async_trait]
impl Tool for CancelReminder {
    type Args = CancelReminderArgs;
    const NAME: &'static str = "cancel_reminder";
    const DESCRIPTION: &'static str =
        "Cancel one scheduled reminder, by number or by words of its text.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: CancelReminderArgs,
    ) -> Result<ToolOutput, ToolError> {
        let target = target(args.number, args.text, "reminder")?;
        let pick = reminders::cancel(ctx.store, ctx.user.id, &target).await?;
        let (position, reminder) = picked(pick, "reminder")?;
        Ok(ToolOutput::new(
            reminder_view(position, &reminder, zone(ctx)),
            "cancelled a reminder",
        ))
    }
}

// --- morning digest ---------------------------------------------------------------------------

/// Turns the morning digest on or off, or moves it.
pub struct SetMorningDigest;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMorningDigestArgs {
    /// On: one SMS each morning with the top three tasks and today's reminders.
    pub enabled: bool,
    /// Local time "HH:MM" (24 h) it goes out; unchanged when absent (default 08:00).
    pub time: Option<String>,
}

/// "HH:MM" (24 h) as minutes after midnight.
fn digest_minute(text: &str) -> Result<u16, ToolError> {
    let bad = || {
        invalid(format!(
            "time {text:?} is not HH:MM between 00:00 and 23:59"
        ))
    };
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 || text.trim().len() != 5 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

#[async_trait]
impl Tool for SetMorningDigest {
    type Args = SetMorningDigestArgs;
    const NAME: &'static str = "set_morning_digest";
    const DESCRIPTION: &'static str = "Turn the user's morning digest (one SMS a day with their top three tasks and today's reminders) on or off, optionally at a local time.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: SetMorningDigestArgs,
    ) -> Result<ToolOutput, ToolError> {
        let minute = args.time.as_deref().map(digest_minute).transpose()?;
        let change = crate::store::ProfileChange {
            digest: Some(args.enabled),
            digest_minute: minute,
            ..crate::store::ProfileChange::default()
        };
        let profile = ctx.store.update_profile(ctx.user.id, &change).await?;
        let minute = profile.digest_minute;
        Ok(ToolOutput::new(
            serde_json::json!({
                "enabled": profile.digest_enabled,
                "time": format!("{:02}:{:02}", minute / 60, minute % 60),
            }),
            if profile.digest_enabled {
                "turned the morning digest on"
            } else {
                "turned the morning digest off"
            },
        ))
    }
}
