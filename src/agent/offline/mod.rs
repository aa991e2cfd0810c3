//! The offline rules engine: Nudge's answer when no model is configured, and the last resort
//! behind the LLM providers.
//!
//! A turn goes through three plain steps, each testable on its own:
//!
//! 1. [`parse`] turns the text into an [`Intent`] without a store or a clock. English and
//!    French are both understood whatever the user's language; case, accents and punctuation
//!    do not matter. Times ("by friday", "dans 2 heures", "tous les lundis") are read by
//!    [`crate::tools::when`] and placed in time only at execution.
//! 2. [`execute`] runs the intent through the tools (tasks, goals, groceries, expenses, notes,
//!    reminders), scoped to the user, at the turn's clock in the user's zone, and returns an
//!    [`Outcome`].
//! 3. [`render`] words the outcome in the user's language, short enough for SMS: at most
//!    [`SMS_MAX_ITEMS`] list items, never more than [`SMS_MAX_CHARS`] characters, one concrete
//!    next step, never blame. English replies keep to GSM-7 characters (and `€`).
//!
//! # Layout
//!
//! | file | holds |
//! | --- | --- |
//! | `mod.rs` | [`OfflineRules`], [`Intent`], [`Outcome`], [`execute`] |
//! | `parse.rs` | the phrase tables and the parser |
//! | `render.rs` | the replies in English and French, [`help_text`], [`fallback_text`] |
//! | `tests.rs` | parsing tables, reply limits, whole conversations over a real store |
//!
//! The engine never logs what the user wrote.

mod parse;
mod render;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use chrono_tz::Tz;

use crate::agent::{AgentError, Reply, TurnEngine, TurnInput};
use crate::store::{Expense, Goal, GroceryItem, Note, Priority, Reminder, Store, Task, User};
use crate::tools::expenses::{self, ExpenseError, ExpenseInput, Period, Totals};
use crate::tools::goals::{self, GoalError, LinkMiss, Linked, Progress};
use crate::tools::groceries::{self, AddedItems, CheckOff, GroceryError, ItemTarget};
use crate::tools::notes::{self, NoteError};
use crate::tools::reminders::{self, ReminderError, Scheduled};
use crate::tools::tasks::{
    self, Added, BrokenDown, Completion, ListFilter, Listing, Pick, Reopen, Target, TaskError,
    TaskStats, TaskTarget,
};
use crate::tools::when::{self, Expr, WhenError};

pub use parse::parse;
pub use render::{SMS_MAX_CHARS, SMS_MAX_ITEMS, fallback_text, help_text, render};

/// The rules engine. Stateless: every turn reads what it needs from the store.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineRules;

#[async_trait]
impl TurnEngine for OfflineRules {
    async fn respond(&self, store: &Store, input: TurnInput<'_>) -> Result<Reply, AgentError> {
        if let Some(intent) = super::memory_rules::parse(input.text) {
            return super::memory_rules::respond(store, &input, intent)
                .await
                .map(Reply::rules);
        }
        let outcome = execute(store, input.user, parse(input.text), input.now).await?;
        Ok(Reply::rules(render(
            &outcome,
            input.user.language,
            input.channel,
        )))
    }

    fn answers_at_once(&self) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Intents
// ---------------------------------------------------------------------------------------------

/// What a message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Add these tasks (empty when the user said "add task" and nothing else).
    AddTasks(Vec<String>),
    /// Show the open tasks.
    ListTasks,
    /// Complete tasks; `None` when the user said only "done".
    CompleteTask(Option<TaskTarget>),
    /// Add these grocery items (empty when none could be read).
    AddGroceries(Vec<String>),
    /// Show the grocery list.
    ListGroceries,
    /// Check these items off the grocery list.
    CheckOffGroceries(Vec<ItemTarget>),
    /// Empty the grocery list.
    ClearGroceries,
    /// Say what Nudge can do.
    Help,
    /// Hello.
    Greeting,
    /// Thanks / ok: acknowledge.
    Thanks,
    /// Add tasks due at a time ("task pay rent by friday", "tâche X pour demain").
    AddTasksDue { titles: Vec<String>, due: Expr },
    /// Show some of the open tasks: overdue, due today, this week, high priority.
    ListTasksFiltered(ListFilter),
    /// How the list is going: done today / this week.
    TaskStats,
    /// Move (or with `None` clear) a task's due date.
    Reschedule { target: Target, due: Option<Expr> },
    /// Set a task's priority.
    Prioritize { target: Target, priority: Priority },
    /// Offer a task in small first steps.
    BreakDown(Target),
    /// Undo a completion: the latest one, or the one named.
    Reopen(Option<String>),
    /// Add a goal.
    AddGoal(String),
    /// Show the active goals.
    ListGoals,
    /// Link a task to a goal.
    LinkToGoal { task: Target, goal: Target },
    /// Show one goal's progress.
    GoalProgress(Target),
    /// Log an expense.
    LogExpense(ExpenseInput),
    /// Totals for a period.
    ExpenseTotals(Period),
    /// Save a note.
    SaveNote(String),
    /// Show the latest notes.
    ListNotes,
    /// Find notes by words.
    SearchNotes(String),
    /// Delete a note.
    DeleteNote(Target),
    /// Schedule a reminder; an urgent one ("urgent: remind me …") rings in quiet hours too.
    CreateReminder {
        text: String,
        when: Expr,
        urgent: bool,
    },
    /// Show the scheduled reminders.
    ListReminders,
    /// Cancel a reminder.
    CancelReminder(Target),
    /// Turn the morning digest on or off ("morning digest on", "résumé du matin off").
    MorningDigest(bool),
    /// Anything else.
    Unknown,
}

/// The turn's clock and the user's zone, for outcomes that show times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    pub now: DateTime<Utc>,
    pub tz: Tz,
}

// ---------------------------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------------------------

/// What running an intent produced: everything [`render`] needs, nothing more.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Tasks were saved.
    TasksAdded(Added),
    /// The result of "done …".
    TasksCompleted(Completion),
    /// "done" with no target: the open tasks to choose from.
    AskWhichTask(Vec<Task>),
    /// Grocery items were saved (or were already there).
    GroceriesAdded(AddedItems),
    /// The unchecked grocery items, oldest first.
    GroceryList(Vec<GroceryItem>),
    /// The result of "got …".
    GroceriesChecked(CheckOff),
    /// The list was cleared; how many items it held.
    GroceriesCleared(u64),
    /// A hello, with the first name to greet and the open tasks.
    Greeting {
        /// The user's first name, possibly empty.
        name: String,
        /// Open tasks, oldest first, to suggest the next one.
        open: Vec<Task>,
    },
    /// The help text.
    Help,
    /// An acknowledgement of thanks.
    Thanks,
    /// The message was not understood.
    Fallback,
    /// Tasks were saved with a due date.
    TasksAddedDue(Added, Clock),
    /// A listing of open tasks (possibly filtered), with tasks to offer in small steps.
    TaskListing(Listing, Clock),
    TaskStats(TaskStats),
    /// A due date was moved (or cleared).
    Rescheduled(Pick<Task>, Clock),
    Prioritized(Pick<Task>),
    BrokenDown(Pick<BrokenDown>),
    Reopened(Reopen),
    /// A goal was added, with its number in the active list.
    GoalAdded(Goal, usize),
    /// The active goals.
    GoalList(Vec<Goal>),
    Linked(Result<Linked, LinkMiss>),
    Progress(Pick<Progress>),
    ExpenseLogged(Expense),
    ExpenseTotals(Totals),
    NoteSaved(Note),
    /// The latest notes, newest first.
    NoteList(Vec<Note>),
    NotesFound(Vec<Note>),
    NoteDeleted(Pick<Note>),
    ReminderSet(Scheduled, Clock),
    /// The scheduled reminders, soonest first.
    ReminderList(Vec<Scheduled>, Clock),
    ReminderCancelled(Pick<Reminder>, Clock),
    /// The morning digest is now on (at this many minutes after local midnight) or off.
    MorningDigest(Option<u16>),
    /// A tool refused the input; nothing was saved.
    Refused(Refusal),
}

/// Why nothing was saved, in words the user can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// "add task" with no title.
    NoTaskTitle,
    /// A title over [`tasks::MAX_TITLE_CHARS`].
    TaskTooLong,
    /// Over [`tasks::MAX_TASKS_PER_MESSAGE`] tasks in one message.
    TooManyTasks,
    /// "buy" with no item.
    NoGroceryItem,
    /// An item name over [`groceries::MAX_NAME_CHARS`].
    ItemTooLong,
    /// Over [`groceries::MAX_ITEMS_PER_MESSAGE`] items in one message.
    TooManyItems,
    /// The time has passed.
    PastTime,
    /// The time could not be read or does not exist.
    BadTime,
    /// A due date cannot repeat.
    RepeatingDue,
    /// A goal, note, reminder or search with no text.
    NoText,
    /// A goal, note or reminder over its limit.
    TextTooLong,
    /// An amount that is not one, or too precise for its currency.
    BadAmount,
    /// A currency that is not ISO 4217.
    UnknownCurrency,
}

fn when_refusal(e: &WhenError) -> Refusal {
    match e {
        WhenError::Past => Refusal::PastTime,
        _ => Refusal::BadTime,
    }
}

fn task_refusal(e: TaskError) -> Result<Outcome, AgentError> {
    Ok(Outcome::Refused(match e {
        TaskError::EmptyTitle => Refusal::NoTaskTitle,
        TaskError::TitleTooLong { .. } => Refusal::TaskTooLong,
        TaskError::TooMany { .. } => Refusal::TooManyTasks,
        TaskError::BadDue(e) => when_refusal(&e),
        TaskError::RepeatingDue => Refusal::RepeatingDue,
        TaskError::Store(e) => return Err(e.into()),
    }))
}

fn grocery_refusal(e: GroceryError) -> Result<Outcome, AgentError> {
    Ok(Outcome::Refused(match e {
        GroceryError::EmptyName => Refusal::NoGroceryItem,
        GroceryError::NameTooLong { .. } => Refusal::ItemTooLong,
        GroceryError::TooMany { .. } => Refusal::TooManyItems,
        GroceryError::Store(e) => return Err(e.into()),
    }))
}

/// Runs an intent for `user` through the tools, at `now` in the user's zone. Every call is
/// scoped to `user.id`.
pub async fn execute(
    store: &Store,
    user: &User,
    intent: Intent,
    now: DateTime<Utc>,
) -> Result<Outcome, AgentError> {
    let id = user.id;
    let tz = when::zone(&user.time_zone);
    let clock = Clock { now, tz };
    let refused = |r| Ok(Outcome::Refused(r));
    let outcome = match intent {
        Intent::AddTasks(titles) => match tasks::add_many(store, id, &titles).await {
            Ok(added) => Outcome::TasksAdded(added),
            Err(e) => return task_refusal(e),
        },
        Intent::CompleteTask(None) => Outcome::AskWhichTask(tasks::list_open(store, id).await?),
        Intent::CompleteTask(Some(target)) => Outcome::TasksCompleted(
            tasks::complete_by_position_or_title(store, id, &target, now).await?,
        ),
        Intent::AddGroceries(names) => match groceries::add_many(store, id, &names).await {
            Ok(added) => Outcome::GroceriesAdded(added),
            Err(e) => return grocery_refusal(e),
        },
        Intent::ListGroceries => Outcome::GroceryList(groceries::list(store, id).await?),
        Intent::CheckOffGroceries(targets) => {
            Outcome::GroceriesChecked(groceries::check_off(store, id, &targets).await?)
        }
        Intent::ClearGroceries => Outcome::GroceriesCleared(groceries::clear(store, id).await?),
        Intent::Greeting => Outcome::Greeting {
            name: user
                .display_name
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned(),
            open: tasks::list_open(store, id).await?,
        },
        Intent::Help => Outcome::Help,
        Intent::Thanks => Outcome::Thanks,
        Intent::Unknown => Outcome::Fallback,
        Intent::AddTasksDue { titles, due } => {
            let due = match tasks::due_of(&due, now, tz) {
                Ok(due) => due,
                Err(e) => return task_refusal(e),
            };
            match tasks::add_many_with(store, id, &titles, Some(due), Priority::Normal).await {
                Ok(added) => Outcome::TasksAddedDue(added, clock),
                Err(e) => return task_refusal(e),
            }
        }
        Intent::ListTasks => Outcome::TaskListing(
            tasks::list(store, id, ListFilter::Open, now, tz).await?,
            clock,
        ),
        Intent::ListTasksFiltered(filter) => {
            Outcome::TaskListing(tasks::list(store, id, filter, now, tz).await?, clock)
        }
        Intent::TaskStats => Outcome::TaskStats(tasks::stats(store, id, now, tz).await?),
        Intent::Reschedule { target, due } => {
            let due = match due.map(|e| tasks::due_of(&e, now, tz)).transpose() {
                Ok(due) => due,
                Err(e) => return task_refusal(e),
            };
            Outcome::Rescheduled(tasks::reschedule(store, id, &target, due).await?, clock)
        }
        Intent::Prioritize { target, priority } => {
            Outcome::Prioritized(tasks::set_priority(store, id, &target, priority).await?)
        }
        Intent::BreakDown(target) => {
            match tasks::break_down(store, id, &target, None, user.language).await {
                Ok(pick) => Outcome::BrokenDown(pick),
                Err(e) => return task_refusal(e),
            }
        }
        Intent::Reopen(title) => {
            Outcome::Reopened(tasks::reopen(store, id, title.as_deref(), now).await?)
        }
        Intent::AddGoal(title) => match goals::add(store, id, &title).await {
            Ok(goal) => {
                let active = goals::list(store, id).await?;
                let number = active
                    .iter()
                    .position(|g| g.id == goal.id)
                    .map_or(0, |i| i + 1);
                Outcome::GoalAdded(goal, number)
            }
            Err(GoalError::EmptyTitle) => return refused(Refusal::NoText),
            Err(GoalError::TitleTooLong { .. }) => return refused(Refusal::TextTooLong),
            Err(GoalError::Store(e)) => return Err(e.into()),
        },
        Intent::ListGoals => Outcome::GoalList(goals::list(store, id).await?),
        Intent::LinkToGoal { task, goal } => {
            Outcome::Linked(goals::link(store, id, &goal, &task).await?)
        }
        Intent::GoalProgress(goal) => Outcome::Progress(goals::progress(store, id, &goal).await?),
        Intent::LogExpense(input) => {
            let default =
                expenses::default_currency(store, id, &user.time_zone, user.language).await?;
            match expenses::log(store, id, &input, &default, now).await {
                Ok(expense) => Outcome::ExpenseLogged(expense),
                Err(ExpenseError::Store(e)) => return Err(e.into()),
                Err(ExpenseError::UnknownCurrency(_)) => return refused(Refusal::UnknownCurrency),
                Err(ExpenseError::NoteTooLong) => return refused(Refusal::TextTooLong),
                Err(_) => return refused(Refusal::BadAmount),
            }
        }
        Intent::ExpenseTotals(period) => {
            Outcome::ExpenseTotals(expenses::totals(store, id, period, now, tz).await?)
        }
        Intent::SaveNote(text) => match notes::save(store, id, &text).await {
            Ok(note) => Outcome::NoteSaved(note),
            Err(NoteError::TooLong { .. }) => return refused(Refusal::TextTooLong),
            Err(NoteError::Store(e)) => return Err(e.into()),
            Err(_) => return refused(Refusal::NoText),
        },
        Intent::ListNotes => Outcome::NoteList(notes::list(store, id, 5).await?),
        Intent::SearchNotes(query) => match notes::search(store, id, &query, 5).await {
            Ok(found) => Outcome::NotesFound(found),
            Err(NoteError::Store(e)) => return Err(e.into()),
            Err(_) => return refused(Refusal::NoText),
        },
        Intent::DeleteNote(target) => {
            Outcome::NoteDeleted(notes::delete(store, id, &target).await?)
        }
        Intent::CreateReminder { text, when, urgent } => {
            let wording = reminders::Wording {
                text: &text,
                urgent,
            };
            match reminders::create(store, id, wording, &when, now, &user.time_zone).await {
                Ok(scheduled) => Outcome::ReminderSet(scheduled, clock),
                Err(ReminderError::When(e)) => return refused(when_refusal(&e)),
                Err(ReminderError::TooLong { .. }) => return refused(Refusal::TextTooLong),
                Err(ReminderError::Empty) => return refused(Refusal::NoText),
                Err(ReminderError::Store(e)) => return Err(e.into()),
            }
        }
        Intent::ListReminders => Outcome::ReminderList(reminders::list(store, id).await?, clock),
        Intent::CancelReminder(target) => {
            Outcome::ReminderCancelled(reminders::cancel(store, id, &target).await?, clock)
        }
        Intent::MorningDigest(on) => {
            let change = crate::store::ProfileChange {
                digest: Some(on),
                ..crate::store::ProfileChange::default()
            };
            let profile = store.update_profile(id, &change).await?;
            Outcome::MorningDigest(profile.digest_enabled.then_some(profile.digest_minute))
        }
    };
    Ok(outcome)
}
