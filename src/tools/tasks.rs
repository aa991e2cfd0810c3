//! The task list: add tasks (with due dates and priorities), list them with filters, complete,
//! reopen, reschedule and reprioritise them, count what got done, and offer small first steps
//! for a task whose due date keeps slipping.
//!
//! Every function takes the [`UserId`] whose list it touches and passes it to the store, so a
//! call can never see or change another user's tasks. Numbers are 1-based positions in the open
//! tasks ordered oldest first: the order [`list_open`] returns and the user sees them numbered in.
//!
//! ADHD-aware: a due date that passes while the task is open counts one miss; once a task has
//! [`MISSES_BEFORE_BREAKDOWN`] misses, listings flag it so the reply can offer to break it into
//! small first steps ([`breakdown_template`] offline, or steps the model writes).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::store::{Due, Language, NewTask, Priority, Store, StoreError, Task, UserId};
use crate::tools::when::{self, When, WhenError};

/// Misses after which a task is offered in small first steps.
pub const MISSES_BEFORE_BREAKDOWN: u32 = 3;
/// How far back "undo" / reopen looks for a completed task.
pub const REOPEN_WINDOW_DAYS: i64 = 7;

/// The longest task title accepted, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// The most tasks one message may add.
pub const MAX_TASKS_PER_MESSAGE: usize = 30;

/// Why a task tool refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The title is empty once trimmed (or no title was given at all).
    #[error("the task has no title")]
    EmptyTitle,
    /// The title is longer than [`MAX_TITLE_CHARS`].
    #[error("a task title is {chars} characters long, the limit is {MAX_TITLE_CHARS}")]
    TitleTooLong {
        /// How long the refused title was, so a reply can say so.
        chars: usize,
    },
    /// More than [`MAX_TASKS_PER_MESSAGE`] titles in one call.
    #[error("{count} tasks in one message, the limit is {MAX_TASKS_PER_MESSAGE}")]
    TooMany {
        /// How many titles were given.
        count: usize,
    },
    /// The due date could not be read or placed.
    #[error("due date: {0}")]
    BadDue(#[from] WhenError),
    /// A due date cannot repeat ("every monday"); that is a reminder.
    #[error("a task's due date cannot repeat; use a reminder for that")]
    RepeatingDue,
    /// The store failed; nothing about the input was wrong.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a user points at when completing tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskTarget {
    /// 1-based positions in the open list, oldest first ("done 2", "done 1 and 3").
    Positions(Vec<usize>),
    /// Part of a title, matched case- and accent-insensitively ("finished call mom").
    Title(String),
}

/// An open task together with the number the user sees it under.
#[derive(Debug, Clone, PartialEq)]
pub struct Numbered {
    /// 1-based position in the open list, oldest first.
    pub position: usize,
    /// The task itself.
    pub task: Task,
}

/// The result of adding tasks: what was saved and the open list afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct Added {
    /// The tasks just created, in the order given.
    pub added: Vec<Task>,
    /// Every open task after the add, oldest first (to name what is next up).
    pub open: Vec<Task>,
}

/// The result of a completion request.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// At least one task was completed.
    Done {
        /// The tasks now marked done, in the order asked.
        completed: Vec<Task>,
        /// Positions asked for that had no open task (reported, never fatal).
        missing: Vec<usize>,
        /// The open tasks left, oldest first.
        remaining: Vec<Task>,
    },
    /// No position asked for exists; nothing changed.
    NoSuchPosition {
        /// The positions asked for.
        positions: Vec<usize>,
        /// The open list, so the reply can show the right numbers.
        open: Vec<Task>,
    },
    /// No open task title contains the text; nothing changed.
    NoMatch {
        /// The open list, so the reply can show it.
        open: Vec<Task>,
    },
    /// Several open tasks match the text equally well; nothing changed.
    Ambiguous {
        /// The candidates with the numbers the user can answer with.
        candidates: Vec<Numbered>,
    },
}

/// Trims a title and checks it against the limits.
pub fn validate_title(title: &str) -> Result<&str, TaskError> {
    let title = title.trim();
    if title.is_empty() {
        return Err(TaskError::EmptyTitle);
    }
    let chars = title.chars().count();
    if chars > MAX_TITLE_CHARS {
        return Err(TaskError::TitleTooLong { chars });
    }
    Ok(title)
}

/// Adds one task.
pub async fn add(store: &Store, user: UserId, title: &str) -> Result<Task, TaskError> {
    let title = validate_title(title)?;
    Ok(store.add_task(user, title).await?)
}

/// Adds several tasks in the order given, after validating all of them (nothing is saved if
/// any title is refused), and returns them with the open list afterwards.
pub async fn add_many(store: &Store, user: UserId, titles: &[String]) -> Result<Added, TaskError> {
    if titles.is_empty() {
        return Err(TaskError::EmptyTitle);
    }
    if titles.len() > MAX_TASKS_PER_MESSAGE {
        return Err(TaskError::TooMany {
            count: titles.len(),
        });
    }
    add_many_with(store, user, titles, None, Priority::Normal).await
}

/// Adds several tasks sharing a due date and a priority, in one statement, after validating
/// all of them (nothing is saved if any title is refused).
pub async fn add_many_with(
    store: &Store,
    user: UserId,
    titles: &[String],
    due: Option<Due>,
    priority: Priority,
) -> Result<Added, TaskError> {
    if titles.is_empty() {
        return Err(TaskError::EmptyTitle);
    }
    if titles.len() > MAX_TASKS_PER_MESSAGE {
        return Err(TaskError::TooMany {
            count: titles.len(),
        });
    }
    let new = titles
        .iter()
        .map(|t| {
            validate_title(t).map(|title| NewTask {
                title: title.to_owned(),
                due,
                priority,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let added = store.add_tasks(user, &new).await?;
    let open = store.open_tasks(user).await?;
    Ok(Added { added, open })
}

/// Turns a read time into a due date: a day is due by its end in the user's zone.
pub fn due_from(when: When, tz: Tz) -> Result<Due, TaskError> {
    match when {
        When::At(at) => Ok(Due { at, all_day: false }),
        When::Day(date) => Ok(Due {
            at: end_of_day(date, tz),
            all_day: true,
        }),
        When::Every { .. } => Err(TaskError::RepeatingDue),
    }
}

/// A due date from a read time, refused when it has already passed.
pub fn future_due(when: When, now: DateTime<Utc>, tz: Tz) -> Result<Due, TaskError> {
    let due = due_from(when, tz)?;
    if due.at <= now {
        return Err(TaskError::BadDue(WhenError::Past));
    }
    Ok(due)
}

/// Places a parsed time expression as a due date (refused when past or repeating).
pub fn due_of(expr: &when::Expr, now: DateTime<Utc>, tz: Tz) -> Result<Due, TaskError> {
    future_due(expr.resolve(now, tz)?, now, tz)
}

/// Reads a due date as a person or a model writes it ("friday", "demain 17h", ISO 8601).
pub fn read_due(text: &str, now: DateTime<Utc>, tz: Tz) -> Result<Due, TaskError> {
    future_due(when::read(text, now, tz)?, now, tz)
}

fn end_of_day(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let last = NaiveTime::from_hms_opt(23, 59, 0).unwrap_or(NaiveTime::MIN);
    when::resolve_local(tz, date.and_time(last))
}

/// Which tasks a listing shows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ListFilter {
    /// Every open task.
    #[default]
    Open,
    /// Open tasks whose due date has passed.
    Overdue,
    /// Open tasks due by the end of today.
    DueToday,
    /// Open tasks due within the next seven days (overdue ones included).
    DueThisWeek,
    /// Open tasks of high priority.
    HighPriority,
}

/// A listing: the tasks asked for, under the numbers of the open list, and the open tasks
/// missed often enough to offer them in small steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub filter: ListFilter,
    pub tasks: Vec<Numbered>,
    /// How many tasks are open in all.
    pub open_count: usize,
    /// Open tasks with at least [`MISSES_BEFORE_BREAKDOWN`] misses.
    pub needs_breakdown: Vec<Numbered>,
}

/// Counts the misses of due dates that passed by `now`, then lists the open tasks `filter`
/// keeps, numbered as in the open list.
pub async fn list(
    store: &Store,
    user: UserId,
    filter: ListFilter,
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<Listing, StoreError> {
    let open = store.open_tasks_counting_misses(user, now).await?;
    let today_end = end_of_day(now.with_timezone(&tz).date_naive(), tz);
    let week_end = now + Duration::days(7);
    let keep = |t: &Task| match filter {
        ListFilter::Open => true,
        ListFilter::Overdue => t.due.is_some_and(|d| d.at <= now),
        ListFilter::DueToday => t.due.is_some_and(|d| d.at <= today_end),
        ListFilter::DueThisWeek => t.due.is_some_and(|d| d.at <= week_end),
        ListFilter::HighPriority => t.priority == Priority::High,
    };
    let numbered: Vec<Numbered> = open
        .iter()
        .enumerate()
        .map(|(i, t)| Numbered {
            position: i + 1,
            task: t.clone(),
        })
        .collect();
    let needs_breakdown = numbered
        .iter()
        .filter(|n| n.task.misses >= MISSES_BEFORE_BREAKDOWN)
        .cloned()
        .collect();
    Ok(Listing {
        filter,
        open_count: open.len(),
        tasks: numbered.into_iter().filter(|n| keep(&n.task)).collect(),
        needs_breakdown,
    })
}

/// One thing a user points at: a position in a list or words of a title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// 1-based position.
    Position(usize),
    /// Words of the title, matched ignoring case and accents.
    Title(String),
}

/// What pointing at one item of a list found.
#[derive(Debug, Clone, PartialEq)]
pub enum Pick<T> {
    /// The item and its position.
    One(usize, T),
    /// The list has no such position (the list is given to show it).
    NoSuchPosition(Vec<T>),
    /// No title matched (the list is given to show it).
    NoMatch(Vec<T>),
    /// Several titles matched equally well, with their positions.
    Ambiguous(Vec<(usize, T)>),
}

/// Picks one item of `items` (numbered from 1 in that order) by position or title.
pub(crate) fn pick<T: Titled + Clone>(items: &[T], target: &Target) -> Pick<T> {
    match target {
        Target::Position(p) => match p.checked_sub(1).and_then(|i| items.get(i)) {
            Some(item) => Pick::One(*p, item.clone()),
            None => Pick::NoSuchPosition(items.to_vec()),
        },
        Target::Title(query) => match best_matches(items, query) {
            Matches::None => Pick::NoMatch(items.to_vec()),
            Matches::One(i) => Pick::One(i + 1, items[i].clone()),
            Matches::Many(indexes) => Pick::Ambiguous(
                indexes
                    .into_iter()
                    .map(|i| (i + 1, items[i].clone()))
                    .collect(),
            ),
        },
    }
}

/// Picks one open task, then applies `change` to it.
async fn change_open<F, Fut>(
    store: &Store,
    user: UserId,
    target: &Target,
    change: F,
) -> Result<Pick<Task>, StoreError>
where
    F: FnOnce(i64) -> Fut,
    Fut: std::future::Future<Output = Result<Task, StoreError>>,
{
    let open = store.open_tasks(user).await?;
    Ok(match pick(&open, target) {
        Pick::One(position, task) => Pick::One(position, change(task.id).await?),
        other => other,
    })
}

/// Sets (or with `None` clears) the due date of one open task.
pub async fn reschedule(
    store: &Store,
    user: UserId,
    target: &Target,
    due: Option<Due>,
) -> Result<Pick<Task>, StoreError> {
    change_open(store, user, target, |id| {
        store.reschedule_task(user, id, due)
    })
    .await
}

/// Sets the priority of one open task.
pub async fn set_priority(
    store: &Store,
    user: UserId,
    target: &Target,
    priority: Priority,
) -> Result<Pick<Task>, StoreError> {
    change_open(store, user, target, |id| {
        store.set_task_priority(user, id, priority)
    })
    .await
}

/// A task broken into small first steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrokenDown {
    /// The task, its misses forgotten (it stays on the list).
    pub task: Task,
    /// The steps, added as tasks after it.
    pub steps: Vec<Task>,
}

/// Small first steps for a task, in the user's language: the offline answer when no model
/// writes better ones. Each step takes minutes and starts with a verb.
pub fn breakdown_template(title: &str, lang: Language) -> Vec<String> {
    let t = clip_chars(title, MAX_TITLE_CHARS - 40);
    match lang {
        Language::En => vec![
            format!("2 min: get out what you need for {t}"),
            format!("10 min: start {t}, just the first bit"),
            format!("2 min: note the next tiny step for {t}"),
        ],
        Language::Fr => vec![
            format!("2 min : sortir ce qu'il faut pour {t}"),
            format!("10 min : commencer {t}, juste le début"),
            format!("2 min : noter la prochaine mini-étape de {t}"),
        ],
    }
}

fn clip_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max.saturating_sub(3)).collect();
    format!("{}...", kept.trim_end())
}

/// Breaks one open task into small first steps: `steps` when given (a model wrote them), the
/// template otherwise. The steps are added as tasks; the task's misses are forgotten.
pub async fn break_down(
    store: &Store,
    user: UserId,
    target: &Target,
    steps: Option<&[String]>,
    lang: Language,
) -> Result<Pick<BrokenDown>, TaskError> {
    let open = store.open_tasks(user).await?;
    let (position, task) = match pick(&open, target) {
        Pick::One(position, task) => (position, task),
        Pick::NoSuchPosition(l) => {
            return Ok(Pick::NoSuchPosition(l.into_iter().map(unbroken).collect()));
        }
        Pick::NoMatch(l) => return Ok(Pick::NoMatch(l.into_iter().map(unbroken).collect())),
        Pick::Ambiguous(c) => {
            return Ok(Pick::Ambiguous(
                c.into_iter().map(|(p, t)| (p, unbroken(t))).collect(),
            ));
        }
    };
    let steps = match steps {
        Some(steps) => steps.to_vec(),
        None => breakdown_template(&task.title, lang),
    };
    let added = add_many_with(store, user, &steps, None, task.priority).await?;
    let task = store.reset_task_misses(user, task.id).await?;
    Ok(Pick::One(
        position,
        BrokenDown {
            task,
            steps: added.added,
        },
    ))
}

fn unbroken(task: Task) -> BrokenDown {
    BrokenDown {
        task,
        steps: Vec::new(),
    }
}

/// What reopening a completed task found.
#[derive(Debug, Clone, PartialEq)]
pub enum Reopen {
    /// The task is open again.
    Reopened(Task),
    /// Nothing was completed in the last [`REOPEN_WINDOW_DAYS`] days.
    NothingRecent,
    /// No recently completed task matches the words.
    NoMatch(Vec<Task>),
    /// Several recently completed tasks match.
    Ambiguous(Vec<Task>),
}

/// Puts a recently completed task back on the list (undo): the latest one, or the one whose
/// title the words name.
pub async fn reopen(
    store: &Store,
    user: UserId,
    title: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Reopen, StoreError> {
    let since = now - Duration::days(REOPEN_WINDOW_DAYS);
    let recent = store.completed_tasks_since(user, since, 20).await?;
    let chosen = match (title, recent.first()) {
        (_, None) => return Ok(Reopen::NothingRecent),
        (None, Some(latest)) => latest.clone(),
        (Some(query), Some(_)) => match best_matches(&recent, query) {
            Matches::None => return Ok(Reopen::NoMatch(recent)),
            Matches::One(i) => recent[i].clone(),
            Matches::Many(ix) => {
                return Ok(Reopen::Ambiguous(
                    ix.into_iter().map(|i| recent[i].clone()).collect(),
                ));
            }
        },
    };
    Ok(Reopen::Reopened(store.reopen_task(user, chosen.id).await?))
}

/// How the list is going: counts people find encouraging, never a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TaskStats {
    /// Completed since midnight, in the user's zone.
    pub done_today: u64,
    /// Completed since Monday 00:00, in the user's zone.
    pub done_this_week: u64,
    /// Completed in the week before.
    pub done_last_week: u64,
    pub open: usize,
    pub overdue: usize,
    /// Open and due by the end of today (overdue included).
    pub due_today: usize,
}

/// Counts what got done today and this week (weeks start on Monday in the user's zone) and
/// what is open, overdue and due today.
pub async fn stats(
    store: &Store,
    user: UserId,
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<TaskStats, StoreError> {
    let listing = list(store, user, ListFilter::Open, now, tz).await?;
    let today = now.with_timezone(&tz).date_naive();
    let midnight = |d: NaiveDate| when::resolve_local(tz, d.and_time(NaiveTime::MIN));
    let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let week_start = midnight(monday);
    let last_week_start = midnight(monday - Duration::days(7));
    let tomorrow = midnight(today + Duration::days(1));
    let today_end = end_of_day(today, tz);
    Ok(TaskStats {
        done_today: store
            .count_completed_tasks(user, midnight(today), tomorrow)
            .await?,
        done_this_week: store
            .count_completed_tasks(user, week_start, tomorrow)
            .await?,
        done_last_week: store
            .count_completed_tasks(user, last_week_start, week_start)
            .await?,
        open: listing.open_count,
        overdue: listing
            .tasks
            .iter()
            .filter(|n| n.task.due.is_some_and(|d| d.at <= now))
            .count(),
        due_today: listing
            .tasks
            .iter()
            .filter(|n| n.task.due.is_some_and(|d| d.at <= today_end))
            .count(),
    })
}

/// The user's open tasks, oldest first.
pub async fn list_open(store: &Store, user: UserId) -> Result<Vec<Task>, StoreError> {
    store.open_tasks(user).await
}

/// Completes the tasks a user points at, by position in the open list or by title.
///
/// Positions are all resolved against one snapshot of the open list, so "done 1 and 2" means
/// the first two tasks the user was shown. A title picks the one open task whose title equals
/// it (ignoring case, accents and punctuation), else the one whose title contains it; several
/// candidates give [`Completion::Ambiguous`] and change nothing.
pub async fn complete_by_position_or_title(
    store: &Store,
    user: UserId,
    target: &TaskTarget,
    now: DateTime<Utc>,
) -> Result<Completion, StoreError> {
    let open = store.open_tasks(user).await?;
    let chosen: Vec<i64> = match target {
        TaskTarget::Positions(positions) => {
            let mut ids = Vec::new();
            let mut missing = Vec::new();
            for &p in positions {
                match p.checked_sub(1).and_then(|i| open.get(i)) {
                    Some(task) if !ids.contains(&task.id) => ids.push(task.id),
                    Some(_) => {}
                    None if !missing.contains(&p) => missing.push(p),
                    None => {}
                }
            }
            if ids.is_empty() {
                return Ok(Completion::NoSuchPosition {
                    positions: positions.clone(),
                    open,
                });
            }
            return finish(store, user, &ids, missing, now).await;
        }
        TaskTarget::Title(query) => match best_matches(&open, query) {
            Matches::None => return Ok(Completion::NoMatch { open }),
            Matches::One(i) => vec![open[i].id],
            Matches::Many(indexes) => {
                let candidates = indexes
                    .into_iter()
                    .map(|i| Numbered {
                        position: i + 1,
                        task: open[i].clone(),
                    })
                    .collect();
                return Ok(Completion::Ambiguous { candidates });
            }
        },
    };
    finish(store, user, &chosen, Vec::new(), now).await
}

async fn finish(
    store: &Store,
    user: UserId,
    ids: &[i64],
    missing: Vec<usize>,
    now: DateTime<Utc>,
) -> Result<Completion, StoreError> {
    let mut completed = Vec::with_capacity(ids.len());
    for &id in ids {
        completed.push(store.complete_task_at(user, id, now).await?);
    }
    let remaining = store.open_tasks(user).await?;
    Ok(Completion::Done {
        completed,
        missing,
        remaining,
    })
}

/// How a text matched a list of titles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Matches {
    None,
    /// Index of the single best match.
    One(usize),
    /// Indexes of equally good matches, in list order.
    Many(Vec<usize>),
}

/// Finds which titles a query names: exact key matches win over containment, and a query
/// without its leading article ("the report") is tried when the full query finds nothing.
pub(crate) fn best_matches<T: Titled>(items: &[T], query: &str) -> Matches {
    let key = match_key(query);
    if key.is_empty() {
        return Matches::None;
    }
    let found = match_in(items, &key);
    if found != Matches::None {
        return found;
    }
    let stripped = strip_article_key(&key);
    if stripped != key && !stripped.is_empty() {
        return match_in(items, stripped);
    }
    Matches::None
}

fn match_in<T: Titled>(items: &[T], key: &str) -> Matches {
    let keys: Vec<String> = items.iter().map(|t| match_key(t.title())).collect();
    let singular = singular_key(key);
    let tiers: [&dyn Fn(&str) -> bool; 3] = [
        &|k: &str| k == key,
        &|k: &str| singular_key(k) == singular,
        &|k: &str| k.contains(key) || k.contains(singular.as_str()),
    ];
    for tier in tiers {
        let hits: Vec<usize> = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| tier(k))
            .map(|(i, _)| i)
            .collect();
        match hits.len() {
            0 => continue,
            1 => return Matches::One(hits[0]),
            _ => return Matches::Many(hits),
        }
    }
    Matches::None
}

/// Drops a plural `s` / `x` from each word (len > 3), so "eggs" finds "egg".
fn singular_key(key: &str) -> String {
    key.split(' ')
        .map(|w| {
            if w.chars().count() > 3 && (w.ends_with('s') || w.ends_with('x')) {
                &w[..w.len() - 1]
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn strip_article_key(key: &str) -> &str {
    const ARTICLES: [&str; 14] = [
        "the ", "my ", "a ", "an ", "some ", "le ", "la ", "les ", "l'", "mon ", "ma ", "mes ",
        "du ", "des ",
    ];
    for a in ARTICLES {
        if let Some(rest) = key.strip_prefix(a) {
            return rest.trim_start();
        }
    }
    key
}

/// Something with a title a user may name: a task or a grocery item.
pub(crate) trait Titled {
    fn title(&self) -> &str;
}

impl Titled for Task {
    fn title(&self) -> &str {
        &self.title
    }
}

/// Folds one character for comparison: lower case, no accent, typographic apostrophes made
/// plain. Ligatures fold to two letters.
pub fn fold_char(c: char, out: &mut String) {
    let folded = match c {
        'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' | 'À' | 'Á' | 'Â' | 'Ä' | 'Ã' | 'Å' => 'a',
        'ç' | 'Ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => 'i',
        'ñ' | 'Ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'ö' | 'õ' | 'Ò' | 'Ó' | 'Ô' | 'Ö' | 'Õ' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => 'u',
        'ý' | 'ÿ' | 'Ý' | 'Ÿ' => 'y',
        'œ' | 'Œ' => {
            out.push_str("oe");
            return;
        }
        'æ' | 'Æ' => {
            out.push_str("ae");
            return;
        }
        'ß' => {
            out.push_str("ss");
            return;
        }
        '\u{2018}' | '\u{2019}' | '\u{02BC}' | '`' | '\u{00B4}' => '\'',
        c => {
            out.extend(c.to_lowercase());
            return;
        }
    };
    out.push(folded);
}

/// Lower-cases and strips accents (`"Tâche"` → `"tache"`, `"Œufs"` → `"oeufs"`).
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        fold_char(c, &mut out);
    }
    out
}

/// The key two names are compared by: folded, punctuation turned into spaces (apostrophes
/// kept), whitespace collapsed. `"Call Mom!"` and `"call  mom"` share the key `"call mom"`.
pub fn match_key(text: &str) -> String {
    let folded = fold(text);
    let cleaned: String = folded
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn task(id: i64, title: &str) -> Task {
        Task {
            id,
            title: title.to_owned(),
            done: false,
            created_at: Utc::now(),
            completed_at: None,
            due: None,
            priority: crate::store::Priority::Normal,
            misses: 0,
        }
    }

    #[test]
    fn match_key_ignores_case_accents_and_punctuation() {
        assert_eq!(match_key("  Appeler   MAMAN ! "), "appeler maman");
        assert_eq!(match_key("Tâche: Œufs"), "tache oeufs");
        assert_eq!(match_key("l\u{2019}huile"), "l'huile");
    }

    #[test]
    fn an_empty_or_blank_title_is_refused() {
        assert!(matches!(validate_title("   "), Err(TaskError::EmptyTitle)));
    }

    #[test]
    fn a_title_of_exactly_the_limit_is_accepted_and_one_more_is_refused() {
        let ok = "é".repeat(MAX_TITLE_CHARS);
        assert!(validate_title(&ok).is_ok());
        let long = "a".repeat(MAX_TITLE_CHARS + 1);
        assert!(matches!(
            validate_title(&long),
            Err(TaskError::TitleTooLong { chars: 201 })
        ));
    }

    #[test]
    fn an_exact_title_wins_over_titles_that_only_contain_it() {
        let tasks = [task(1, "call mom about dinner"), task(2, "Call Mom")];
        assert_eq!(best_matches(&tasks, "call mom"), Matches::One(1));
    }

    #[test]
    fn a_substring_shared_by_two_titles_is_ambiguous() {
        let tasks = [
            task(1, "call mom"),
            task(2, "pay rent"),
            task(3, "call dentist"),
        ];
        assert_eq!(best_matches(&tasks, "call"), Matches::Many(vec![0, 2]));
    }

    #[test]
    fn a_title_is_found_without_accents_or_with_a_leading_article() {
        let tasks = [task(1, "Appeler maman"), task(2, "write report")];
        assert_eq!(best_matches(&tasks, "APPELER MAMAN"), Matches::One(0));
        assert_eq!(best_matches(&tasks, "the report"), Matches::One(1));
        assert_eq!(best_matches(&tasks, "rent"), Matches::None);
    }

    mod over_a_store {
        use super::super::*;
        use crate::store::{Language, NewUser, Store, connect};

        async fn store_and_user() -> (Store, UserId) {
            let store = connect("sqlite::memory:", crate::store::Sealer::generate())
                .await
                .expect("store");
            let user = store
                .create_user(&NewUser {
                    display_name: "T".into(),
                    phone: "+15550000101".into(),
                    number: "+15559990101".into(),
                    language: Language::En,
                    time_zone: "UTC".into(),
                })
                .await
                .expect("user");
            (store, user.id)
        }

        fn titles(tasks: &[Task]) -> Vec<&str> {
            tasks.iter().map(|t| t.title.as_str()).collect()
        }

        #[tokio::test]
        async fn several_positions_are_resolved_against_one_snapshot_of_the_list() {
            let (store, user) = store_and_user().await;
            let names = ["a", "b", "c", "d"].map(String::from);
            add_many(&store, user, &names).await.expect("add");
            let c = complete_by_position_or_title(
                &store,
                user,
                &TaskTarget::Positions(vec![1, 3, 3, 9]),
                Utc::now(),
            )
            .await
            .expect("complete");
            let Completion::Done {
                completed,
                missing,
                remaining,
            } = c
            else {
                panic!("expected Done, got {c:?}");
            };
            assert_eq!(titles(&completed), ["a", "c"]);
            assert_eq!(missing, [9]);
            assert_eq!(titles(&remaining), ["b", "d"]);
        }

        #[tokio::test]
        async fn one_bad_title_among_many_saves_nothing() {
            let (store, user) = store_and_user().await;
            let names = ["ok".to_owned(), " ".to_owned()];
            let err = add_many(&store, user, &names).await;
            assert!(matches!(err, Err(TaskError::EmptyTitle)), "{err:?}");
            assert!(list_open(&store, user).await.expect("list").is_empty());
        }

        #[tokio::test]
        async fn an_unknown_title_changes_nothing_and_returns_the_open_list() {
            let (store, user) = store_and_user().await;
            add(&store, user, "call mom").await.expect("add");
            let c = complete_by_position_or_title(
                &store,
                user,
                &TaskTarget::Title("taxes".into()),
                Utc::now(),
            )
            .await
            .expect("complete");
            assert!(
                matches!(&c, Completion::NoMatch { open } if open.len() == 1),
                "{c:?}"
            );
        }
    }
}
