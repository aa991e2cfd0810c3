//! Reminders: create one from natural time in the user's zone, list them, cancel one.
//!
//! Only rows are written here; firing them is the scheduler's job. A reminder for a day with
//! no time ("friday") is set for [`DEFAULT_HOUR`] that day. Reminders are numbered 1, 2, …
//! soonest first, as [`list`] returns them.

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::store::{NewReminder, Reminder, Store, StoreError, UserId};
use crate::tools::tasks::{Pick, Target, Titled, pick};
use crate::tools::when::{self, Expr, Recurrence, When, WhenError};

/// The longest reminder text accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 300;
/// The hour a reminder for a whole day rings at.
pub const DEFAULT_HOUR: u32 = 9;

/// Why a reminder tool refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ReminderError {
    #[error("the reminder has no text")]
    Empty,
    #[error("the reminder text is {chars} characters long, the limit is {MAX_TEXT_CHARS}")]
    TooLong { chars: usize },
    #[error("when: {0}")]
    When(#[from] WhenError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Titled for Reminder {
    fn title(&self) -> &str {
        &self.body
    }
}

/// A scheduled reminder and its rule read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scheduled {
    pub reminder: Reminder,
    /// The repeat rule, for repeating reminders.
    #[serde(skip)]
    pub rule: Option<Recurrence>,
}

impl Scheduled {
    fn from_row(reminder: Reminder) -> Self {
        let rule = reminder
            .recurrence
            .as_deref()
            .and_then(|r| Recurrence::from_rrule(r).ok());
        Self { reminder, rule }
    }
}

/// A reminder text trimmed, non-empty and at most [`MAX_TEXT_CHARS`].
pub fn validate(text: &str) -> Result<&str, ReminderError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ReminderError::Empty);
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(ReminderError::TooLong { chars });
    }
    Ok(text)
}

/// Places a parsed time for a reminder: a whole day rings at [`DEFAULT_HOUR`].
pub fn place(
    when: When,
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<(DateTime<Utc>, Option<Recurrence>), WhenError> {
    match when {
        When::At(at) if at > now => Ok((at, None)),
        When::At(_) => Err(WhenError::Past),
        When::Day(date) => {
            let time = NaiveTime::from_hms_opt(DEFAULT_HOUR, 0, 0).unwrap_or(NaiveTime::MIN);
            let at = when::resolve_local(tz, date.and_time(time));
            if at <= now {
                return Err(WhenError::Past);
            }
            Ok((at, None))
        }
        When::Every { first, rule } => Ok((first, Some(rule))),
    }
}

/// What a new reminder says and whether it may break through quiet hours.
#[derive(Debug, Clone, Copy)]
pub struct Wording<'a> {
    pub text: &'a str,
    /// Fires even inside the user's quiet hours.
    pub urgent: bool,
}

impl<'a> Wording<'a> {
    /// A reminder that respects quiet hours.
    pub fn plain(text: &'a str) -> Self {
        Self {
            text,
            urgent: false,
        }
    }
}

/// Creates a reminder from a parsed time expression.
pub async fn create(
    store: &Store,
    user: UserId,
    wording: Wording<'_>,
    expr: &Expr,
    now: DateTime<Utc>,
    time_zone: &str,
) -> Result<Scheduled, ReminderError> {
    let tz = when::zone(time_zone);
    create_at(store, user, wording, expr.resolve(now, tz)?, now, time_zone).await
}

/// Creates a reminder from a time as a person or a model writes it (natural English / French,
/// or ISO 8601).
pub async fn create_from_text(
    store: &Store,
    user: UserId,
    wording: Wording<'_>,
    when_text: &str,
    now: DateTime<Utc>,
    time_zone: &str,
) -> Result<Scheduled, ReminderError> {
    let tz = when::zone(time_zone);
    let when = when::read(when_text, now, tz)?;
    create_at(store, user, wording, when, now, time_zone).await
}

async fn create_at(
    store: &Store,
    user: UserId,
    wording: Wording<'_>,
    when: When,
    now: DateTime<Utc>,
    time_zone: &str,
) -> Result<Scheduled, ReminderError> {
    let text = validate(wording.text)?;
    let tz = when::zone(time_zone);
    let (due_at, rule) = place(when, now, tz)?;
    let reminder = store
        .add_reminder(
            user,
            &NewReminder {
                body: text.to_owned(),
                due_at,
                recurrence: rule.as_ref().map(Recurrence::to_rrule),
                time_zone: tz.name().to_owned(),
                urgent: wording.urgent,
            },
        )
        .await?;
    Ok(Scheduled { reminder, rule })
}

/// The scheduled reminders, soonest first.
pub async fn list(store: &Store, user: UserId) -> Result<Vec<Scheduled>, StoreError> {
    Ok(store
        .scheduled_reminders(user)
        .await?
        .into_iter()
        .map(Scheduled::from_row)
        .collect())
}

/// Cancels one scheduled reminder by its number or its words.
pub async fn cancel(
    store: &Store,
    user: UserId,
    target: &Target,
) -> Result<Pick<Reminder>, StoreError> {
    let scheduled = store.scheduled_reminders(user).await?;
    Ok(match pick(&scheduled, target) {
        Pick::One(position, reminder) => {
            Pick::One(position, store.cancel_reminder(user, reminder.id).await?)
        }
        other => other,
    })
}
