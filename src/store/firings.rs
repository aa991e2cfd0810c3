//! Reminder firings: the durable half of "a reminder always fires, once".
//!
//! The scheduler finds due reminders across all users ([`Store::due_reminders`], on the
//! partial index of scheduled rows), then [`Store::claim_firing`] in one transaction moves the
//! reminder on (to its next occurrence, or to 'fired') and inserts the firing keyed by
//! (reminder id, due instant) as 'sending'. Only the claim that moved the row wins, so two
//! schedulers, or a retry after a crash, never claim the same occurrence twice. After the send
//! the firing is marked ([`Store::finish_firing`]); firings still 'sending' at start-up are
//! listed by [`Store::unsent_firings`] and sent again.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::sql::{now, parse, write_error};
use super::{Result, Store, StoreError, UserId, with_pool, with_user};

/// Where a reminder's text is sealed (the reminders table's own place).
const BODY_PLACE: &str = "reminders.body";

/// A scheduled reminder whose time has come (or is about to), without its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueReminder {
    pub id: i64,
    pub user_id: UserId,
    /// The occurrence due: with `id`, the key of its firing.
    pub due_at: DateTime<Utc>,
    /// The repeat rule, `None` for a one-off reminder.
    pub recurrence: Option<String>,
    /// The IANA zone the rule is read in.
    pub time_zone: String,
    /// Fires even inside the user's quiet hours.
    pub urgent: bool,
}

/// Where a firing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FiringStatus {
    /// Claimed; the send has not been acknowledged yet.
    Sending,
    /// Delivered to the user's channels.
    Sent,
    /// Not sent: the user cannot be reached (opted out, no phone, no number).
    Skipped,
}

impl FiringStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FiringStatus::Sending => "sending",
            FiringStatus::Sent => "sent",
            FiringStatus::Skipped => "skipped",
        }
    }
}

impl FromStr for FiringStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sending" => Ok(FiringStatus::Sending),
            "sent" => Ok(FiringStatus::Sent),
            "skipped" => Ok(FiringStatus::Skipped),
            other => Err(format!("unknown firing status {other:?}")),
        }
    }
}

/// One firing of a reminder, with the reminder's text opened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Firing {
    pub id: i64,
    #[serde(skip)]
    pub user_id: UserId,
    pub reminder_id: i64,
    /// The occurrence it is for.
    pub due_at: DateTime<Utc>,
    pub status: FiringStatus,
    /// Fired later than due (missed while the service was down); the nudge says so.
    pub late: bool,
    /// The reminder's text.
    pub body: String,
    /// When it was claimed: a send for it cannot have reached Twilio before.
    pub claimed_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct DueRow {
    id: i64,
    user_id: Uuid,
    due_at: DateTime<Utc>,
    recurrence: Option<String>,
    time_zone: String,
    urgent: bool,
}

#[derive(sqlx::FromRow)]
struct FiringRow {
    id: i64,
    user_id: Uuid,
    reminder_id: i64,
    due_at: DateTime<Utc>,
    status: String,
    late: bool,
    body: String,
    claimed_at: DateTime<Utc>,
}

const DUE: &str = "SELECT id, user_id, due_at, recurrence, time_zone, urgent FROM reminders \
     WHERE status = 'scheduled' AND due_at <= $1 ORDER BY due_at, id LIMIT $2";
const ADVANCE: &str = "UPDATE reminders SET last_fired_at = $3, due_at = $4, status = $5 \
     WHERE id = $1 AND user_id = $2 AND status = 'scheduled' AND due_at = $3";
const DEFER: &str = "UPDATE reminders SET due_at = $4 \
     WHERE id = $1 AND user_id = $2 AND status = 'scheduled' AND due_at = $3";
const INSERT_FIRING: &str = "INSERT INTO reminder_firings \
     (user_id, reminder_id, due_at, status, late, claimed_at) VALUES ($1, $2, $3, $4, $5, $6) \
     RETURNING id";
macro_rules! firing_select {
    () => {
        "SELECT f.id, f.user_id, f.reminder_id, f.due_at, f.status, f.late, r.body, f.claimed_at \
         FROM reminder_firings f JOIN reminders r ON r.id = f.reminder_id AND r.user_id = f.user_id"
    };
}
const FIRING: &str = concat!(firing_select!(), " WHERE f.user_id = $1 AND f.id = $2");
const UNSENT: &str = concat!(
    firing_select!(),
    " WHERE f.status = 'sending' ORDER BY f.id"
);
const LAST_SENT: &str = concat!(
    firing_select!(),
    " WHERE f.user_id = $1 AND f.status = 'sent' AND f.answer IS NULL ORDER BY f.id DESC LIMIT 1"
);
const FINISH: &str =
    "UPDATE reminder_firings SET status = $2, sent_at = $3 WHERE id = $1 AND status = 'sending'";

const ANSWER: &str = "UPDATE reminder_firings SET answer = $3 \
     WHERE user_id = $1 AND id = $2 AND answer IS NULL";

/// The user's answer to a nudge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FiringAnswer {
    Done,
    Snoozed,
}

impl FiringAnswer {
    pub fn as_str(self) -> &'static str {
        match self {
            FiringAnswer::Done => "done",
            FiringAnswer::Snoozed => "snoozed",
        }
    }
}

impl Store {
    /// Scheduled reminders of every user due at or before `until`, soonest first, at most
    /// `limit`: the scheduler's next window.
    #[tracing::instrument(skip_all)]
    pub async fn due_reminders(
        &self,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DueReminder>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, DueRow>(DUE)
                .bind(until)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|row| DueReminder {
                id: row.id,
                user_id: UserId(row.user_id),
                due_at: row.due_at,
                recurrence: row.recurrence,
                time_zone: row.time_zone,
                urgent: row.urgent,
            })
            .collect())
    }

    /// Claims the firing of `due`: in one transaction, moves the reminder to `next` (its next
    /// occurrence; `None` marks a one-off reminder 'fired') and records the firing as
    /// 'sending'. `None` when the reminder no longer waits for that occurrence (cancelled,
    /// moved, or already claimed): nothing is to be sent then.
    #[tracing::instrument(skip_all)]
    pub async fn claim_firing(
        &self,
        due: &DueReminder,
        next: Option<DateTime<Utc>>,
        late: bool,
    ) -> Result<Option<Firing>> {
        let (next_due, status) = match next {
            Some(at) => (at, "scheduled"),
            None => (due.due_at, "fired"),
        };
        let id: i64 = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let moved = sqlx::query(ADVANCE)
                .bind(due.id)
                .bind(due.user_id.0)
                .bind(due.due_at)
                .bind(next_due)
                .bind(status)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if moved == 0 {
                return Ok(None);
            }
            let id = sqlx::query_scalar(INSERT_FIRING)
                .bind(due.user_id.0)
                .bind(due.id)
                .bind(due.due_at)
                .bind(FiringStatus::Sending.as_str())
                .bind(late)
                .bind(now())
                .fetch_one(&mut *tx)
                .await
                .map_err(write_error)?;
            tx.commit().await?;
            id
        });
        self.firing(due.user_id, id).await.map(Some)
    }

    /// Moves a due occurrence to `to` without firing it (quiet hours); `false` when the
    /// reminder no longer waits for that occurrence.
    #[tracing::instrument(skip_all)]
    pub async fn defer_reminder(&self, due: &DueReminder, to: DateTime<Utc>) -> Result<bool> {
        let moved = with_pool!(self, pool => {
            sqlx::query(DEFER)
                .bind(due.id)
                .bind(due.user_id.0)
                .bind(due.due_at)
                .bind(to)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(moved == 1)
    }

    /// One firing of this user's.
    #[tracing::instrument(skip_all)]
    pub async fn firing(&self, user: UserId, id: i64) -> Result<Firing> {
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, FiringRow>(FIRING)
                .bind(user.0)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
        });
        self.open_firing(row.ok_or(StoreError::NotFound)?)
    }

    /// Firings claimed but never marked, oldest first: a process stopped between claim and
    /// mark. The scheduler sends them again at start-up.
    #[tracing::instrument(skip_all)]
    pub async fn unsent_firings(&self) -> Result<Vec<Firing>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, FiringRow>(UNSENT).fetch_all(pool).await?
        });
        rows.into_iter().map(|row| self.open_firing(row)).collect()
    }

    /// The user's last firing that reached them and that they have not answered yet: what
    /// "snooze" and "done" replies act on.
    #[tracing::instrument(skip_all)]
    pub async fn last_sent_firing(&self, user: UserId) -> Result<Option<Firing>> {
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, FiringRow>(LAST_SENT)
                .bind(user.0)
                .fetch_optional(&mut *conn)
                .await?
        });
        row.map(|row| self.open_firing(row)).transpose()
    }

    /// Marks a 'sending' firing `Sent` or `Skipped`; `false` when it was already marked.
    #[tracing::instrument(skip_all)]
    pub async fn finish_firing(&self, id: i64, status: FiringStatus) -> Result<bool> {
        self.finish_claimed(FINISH, id, status).await
    }

    /// Runs `finish` (`$1` the claim's id, `$2` its new status, `$3` now) on a claim still
    /// 'sending', of a reminder or a digest; `false` when it was already marked.
    pub(super) async fn finish_claimed(
        &self,
        finish: &'static str,
        id: i64,
        status: FiringStatus,
    ) -> Result<bool> {
        let done = with_pool!(self, pool => {
            sqlx::query(finish)
                .bind(id)
                .bind(status.as_str())
                .bind(now())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Records the user's answer to a firing (`"done"` or `"snoozed"`); `false` when it is not
    /// this user's or was answered already.
    #[tracing::instrument(skip_all)]
    pub async fn answer_firing(&self, user: UserId, id: i64, answer: FiringAnswer) -> Result<bool> {
        let done = with_user!(self, user, conn => {
            sqlx::query(ANSWER)
                .bind(user.0)
                .bind(id)
                .bind(answer.as_str())
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    fn open_firing(&self, row: FiringRow) -> Result<Firing> {
        let user = UserId(row.user_id);
        Ok(Firing {
            id: row.id,
            user_id: user,
            reminder_id: row.reminder_id,
            due_at: row.due_at,
            status: parse("reminder_firings.status", &row.status)?,
            late: row.late,
            body: self.open_column(BODY_PLACE, user, &row.body)?,
            claimed_at: row.claimed_at,
        })
    }
}
