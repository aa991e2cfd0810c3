//! Reminders: a sealed text, the next time it is due, and for repeating ones the rule.
//!
//! Rows only: firing belongs to the scheduler, which finds what is due through the partial
//! index on `due_at` of scheduled rows and records each firing in `last_fired_at` (see
//! `migrations/*/0014_reminders.sql`).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sql::{now, parse, write_error};
use super::{Result, Store, StoreError, UserId, with_user};

/// Where a reminder's text is sealed.
const BODY_PLACE: &str = "reminders.body";

/// Where a reminder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReminderStatus {
    /// Waiting for `due_at`.
    Scheduled,
    /// A one-off reminder that was delivered.
    Fired,
    /// Cancelled by the user.
    Cancelled,
}

impl ReminderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReminderStatus::Scheduled => "scheduled",
            ReminderStatus::Fired => "fired",
            ReminderStatus::Cancelled => "cancelled",
        }
    }
}

impl FromStr for ReminderStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "scheduled" => Ok(ReminderStatus::Scheduled),
            "fired" => Ok(ReminderStatus::Fired),
            "cancelled" => Ok(ReminderStatus::Cancelled),
            other => Err(format!("unknown reminder status {other:?}")),
        }
    }
}

/// One reminder, its text opened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reminder {
    pub id: i64,
    pub body: String,
    /// The next time it is due.
    pub due_at: DateTime<Utc>,
    /// The repeat rule (RRULE subset), `None` for a one-off reminder.
    pub recurrence: Option<String>,
    /// The IANA zone the rule's wall time is read in.
    pub time_zone: String,
    pub status: ReminderStatus,
    /// When it last fired (set by the scheduler).
    pub last_fired_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Fires even inside the user's quiet hours (others wait for their end).
    pub urgent: bool,
}

/// A reminder to schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReminder {
    pub body: String,
    pub due_at: DateTime<Utc>,
    pub recurrence: Option<String>,
    pub time_zone: String,
    /// Fires even inside the user's quiet hours.
    pub urgent: bool,
}

#[derive(sqlx::FromRow)]
struct ReminderRow {
    id: i64,
    body: String,
    due_at: DateTime<Utc>,
    recurrence: Option<String>,
    time_zone: String,
    status: String,
    last_fired_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    urgent: bool,
}

macro_rules! reminder_columns {
    () => {
        "id, body, due_at, recurrence, time_zone, status, last_fired_at, created_at, urgent"
    };
}

const INSERT_REMINDER: &str = concat!(
    "INSERT INTO reminders \
     (user_id, body, due_at, recurrence, time_zone, status, created_at, urgent) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ",
    reminder_columns!()
);
const SCHEDULED: &str = concat!(
    "SELECT ",
    reminder_columns!(),
    " FROM reminders WHERE user_id = $1 AND status = $2 ORDER BY due_at, id"
);
const CANCEL: &str = concat!(
    "UPDATE reminders SET status = $3, cancelled_at = $4 \
     WHERE user_id = $1 AND id = $2 AND status = $5 RETURNING ",
    reminder_columns!()
);

impl Store {
    /// Changes whenever this process (through this store or a clone of it) adds or changes a
    /// reminder, or a morning-digest setting: the scheduler waits on it to see a reminder due
    /// before its next poll at once.
    /// Writes by other processes are seen at the poll.
    pub fn reminder_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reminder_changes.subscribe()
    }

    pub(super) fn reminder_written(&self) {
        self.reminder_changes
            .send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Schedules a reminder, its text sealed to this user.
    #[tracing::instrument(skip_all)]
    pub async fn add_reminder(&self, user: UserId, new: &NewReminder) -> Result<Reminder> {
        let sealed = self.seal_column(BODY_PLACE, user, &new.body);
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, ReminderRow>(INSERT_REMINDER)
                .bind(user.0)
                .bind(&sealed)
                .bind(new.due_at)
                .bind(new.recurrence.as_deref())
                .bind(&new.time_zone)
                .bind(ReminderStatus::Scheduled.as_str())
                .bind(now())
                .bind(new.urgent)
                .fetch_one(&mut *conn)
                .await
                .map_err(write_error)?
        });
        self.reminder_written();
        self.open_reminder(user, row)
    }

    /// The user's scheduled reminders, soonest first.
    #[tracing::instrument(skip_all)]
    pub async fn scheduled_reminders(&self, user: UserId) -> Result<Vec<Reminder>> {
        let rows = with_user!(self, user, conn => {
            sqlx::query_as::<_, ReminderRow>(SCHEDULED)
                .bind(user.0)
                .bind(ReminderStatus::Scheduled.as_str())
                .fetch_all(&mut *conn)
                .await?
        });
        rows.into_iter()
            .map(|row| self.open_reminder(user, row))
            .collect()
    }

    /// Cancels a scheduled reminder; `NotFound` if it is not this user's or not scheduled.
    #[tracing::instrument(skip_all)]
    pub async fn cancel_reminder(&self, user: UserId, reminder_id: i64) -> Result<Reminder> {
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, ReminderRow>(CANCEL)
                .bind(user.0)
                .bind(reminder_id)
                .bind(ReminderStatus::Cancelled.as_str())
                .bind(now())
                .bind(ReminderStatus::Scheduled.as_str())
                .fetch_optional(&mut *conn)
                .await?
        });
        self.open_reminder(user, row.ok_or(StoreError::NotFound)?)
    }

    fn open_reminder(&self, user: UserId, row: ReminderRow) -> Result<Reminder> {
        let body = self.open_column(BODY_PLACE, user, &row.body)?;
        Ok(Reminder {
            id: row.id,
            body,
            due_at: row.due_at,
            recurrence: row.recurrence,
            time_zone: row.time_zone,
            status: parse("reminders.status", &row.status)?,
            last_fired_at: row.last_fired_at,
            created_at: row.created_at,
            urgent: row.urgent,
        })
    }
}

/// A reminder's new time: where it is due next, its rule, and the zone the rule is read in.
#[derive(Debug, Clone, PartialEq)]
pub struct ReminderTime {
    pub due_at: DateTime<Utc>,
    pub recurrence: Option<String>,
    pub time_zone: String,
}

// What the REST API needs beyond the assistant's own operations: pages, one reminder, edits.

const REMINDERS_PAGE: &str = concat!(
    "SELECT ",
    reminder_columns!(),
    " FROM reminders WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3"
);
const REMINDER_BY_ID: &str = concat!(
    "SELECT ",
    reminder_columns!(),
    " FROM reminders WHERE user_id = $1 AND id = $2"
);
/// A new time (`$8` true) schedules the reminder again, whatever it was.
const UPDATE_REMINDER: &str = concat!(
    "UPDATE reminders SET body = COALESCE($3, body), \
     due_at = CASE WHEN $8 THEN $4 ELSE due_at END, \
     recurrence = CASE WHEN $8 THEN $5 ELSE recurrence END, \
     time_zone = CASE WHEN $8 THEN $6 ELSE time_zone END, \
     status = CASE WHEN $8 THEN $7 ELSE status END, \
     cancelled_at = CASE WHEN $8 THEN NULL ELSE cancelled_at END, \
     urgent = COALESCE($9, urgent) \
     WHERE user_id = $1 AND id = $2 RETURNING ",
    reminder_columns!()
);
const DELETE_REMINDER: &str = "DELETE FROM reminders WHERE user_id = $1 AND id = $2";

impl Store {
    /// Up to `limit` of the user's reminders (any status) with ids after `after`, in id order.
    #[tracing::instrument(skip_all)]
    pub async fn reminders_page(
        &self,
        user: UserId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Reminder>> {
        let rows: Vec<ReminderRow> = self.page_of(REMINDERS_PAGE, user, after, limit).await?;
        rows.into_iter()
            .map(|row| self.open_reminder(user, row))
            .collect()
    }

    /// One of the user's reminders; `NotFound` when it is not theirs.
    #[tracing::instrument(skip_all)]
    pub async fn reminder(&self, user: UserId, reminder_id: i64) -> Result<Reminder> {
        let row = self.owned_row(REMINDER_BY_ID, user, reminder_id).await?;
        self.open_reminder(user, row)
    }

    /// Changes a reminder's text, time (a new time schedules it again) and/or urgency;
    /// `NotFound` when it is not the user's.
    #[tracing::instrument(skip_all)]
    pub async fn update_reminder(
        &self,
        user: UserId,
        reminder_id: i64,
        body: Option<&str>,
        time: Option<&ReminderTime>,
        urgent: Option<bool>,
    ) -> Result<Reminder> {
        let sealed = body.map(|b| self.seal_column(BODY_PLACE, user, b));
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, ReminderRow>(UPDATE_REMINDER)
                .bind(user.0)
                .bind(reminder_id)
                .bind(sealed.as_deref())
                .bind(time.map(|t| t.due_at))
                .bind(time.and_then(|t| t.recurrence.as_deref()))
                .bind(time.map(|t| t.time_zone.as_str()))
                .bind(ReminderStatus::Scheduled.as_str())
                .bind(time.is_some())
                .bind(urgent)
                .fetch_optional(&mut *conn)
                .await
                .map_err(write_error)?
        });
        let row = row.ok_or(StoreError::NotFound)?;
        self.reminder_written();
        self.open_reminder(user, row)
    }

    /// Deletes a reminder; `NotFound` when it is not the user's.
    #[tracing::instrument(skip_all)]
    pub async fn delete_reminder(&self, user: UserId, reminder_id: i64) -> Result<()> {
        self.delete_scoped(DELETE_REMINDER, user, reminder_id).await
    }
}
