//! `/api/v1/me/reminders`: what to remind the person of, and when (see [`crud`](super::crud)).
//! `when` is read like the assistant reads it: ISO 8601, or natural English / French
//! ("tomorrow at 9", "every monday at 8", "dans 20 minutes") in the person's time zone.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::crud::{Resource, refused};
use crate::edges::ApiError;
use crate::store::{Reminder, ReminderTime, Store, StoreError, UserId};
use crate::tools::reminders::{ReminderError, Wording, create_from_text, place, validate};
use crate::tools::when::{self, Recurrence};

/// The routes' marker type.
pub struct Reminders;

/// A reminder as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Reminder)]
pub struct ReminderView {
    pub id: i64,
    pub text: String,
    /// The next time it is due.
    pub due_at: DateTime<Utc>,
    /// The repeat rule (an RRULE subset), null for a one-off reminder.
    pub recurrence: Option<String>,
    /// The IANA zone the rule's wall time is read in.
    pub time_zone: String,
    /// `scheduled`, `fired` or `cancelled`.
    pub status: String,
    pub last_fired_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Rings even inside the person's quiet hours; other reminders wait for their end.
    pub urgent: bool,
}

impl From<Reminder> for ReminderView {
    fn from(r: Reminder) -> Self {
        ReminderView {
            id: r.id,
            text: r.body,
            due_at: r.due_at,
            recurrence: r.recurrence,
            time_zone: r.time_zone,
            status: r.status.as_str().to_owned(),
            last_fired_at: r.last_fired_at,
            created_at: r.created_at,
            urgent: r.urgent,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReminderRequest {
    /// 1 to 300 characters.
    pub text: String,
    /// When: ISO 8601 or natural English / French, in the person's time zone.
    pub when: String,
    /// Ring even inside quiet hours (default false).
    #[serde(default)]
    pub urgent: bool,
}

/// Fields to change; absent ones stay. A new `when` schedules the reminder again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReminderUpdate {
    pub text: Option<String>,
    pub when: Option<String>,
    pub urgent: Option<bool>,
}

fn reminder_error(e: ReminderError) -> ApiError {
    match e {
        ReminderError::Store(e) => e.into(),
        ReminderError::When(e) => refused("invalid_when", &e),
        other => refused("invalid_text", &other),
    }
}

#[async_trait]
impl Resource for Reminders {
    const NAME: &'static str = "reminders";
    const FILTERS: &'static [(&'static str, &'static str)] = &[];

    type Item = ReminderView;
    type Create = NewReminderRequest;
    type Update = ReminderUpdate;

    fn id(item: &ReminderView) -> i64 {
        item.id
    }

    async fn list(
        store: &Store,
        user: UserId,
        after: i64,
        limit: u32,
        _filters: &HashMap<&'static str, bool>,
    ) -> Result<Vec<ReminderView>, StoreError> {
        let reminders = store.reminders_page(user, after, limit).await?;
        Ok(reminders.into_iter().map(ReminderView::from).collect())
    }

    async fn create(
        store: &Store,
        user: UserId,
        new: NewReminderRequest,
    ) -> Result<ReminderView, ApiError> {
        let zone = store.profile(user).await?.time_zone;
        let wording = Wording {
            text: &new.text,
            urgent: new.urgent,
        };
        let scheduled = create_from_text(store, user, wording, &new.when, Utc::now(), &zone)
            .await
            .map_err(reminder_error)?;
        Ok(scheduled.reminder.into())
    }

    async fn get(store: &Store, user: UserId, id: i64) -> Result<ReminderView, StoreError> {
        Ok(store.reminder(user, id).await?.into())
    }

    async fn update(
        store: &Store,
        user: UserId,
        id: i64,
        change: ReminderUpdate,
    ) -> Result<ReminderView, ApiError> {
        let text = change
            .text
            .as_deref()
            .map(validate)
            .transpose()
            .map_err(reminder_error)?;
        let time = match change.when.as_deref() {
            Some(text) => {
                let zone = store.profile(user).await?.time_zone;
                let tz = when::zone(&zone);
                let now = Utc::now();
                let (due_at, rule) = when::read(text, now, tz)
                    .and_then(|w| place(w, now, tz))
                    .map_err(|e| refused("invalid_when", &e))?;
                Some(ReminderTime {
                    due_at,
                    recurrence: rule.as_ref().map(Recurrence::to_rrule),
                    time_zone: tz.name().to_owned(),
                })
            }
            None => None,
        };
        Ok(store
            .update_reminder(user, id, text, time.as_ref(), change.urgent)
            .await?
            .into())
    }

    async fn delete(store: &Store, user: UserId, id: i64) -> Result<(), StoreError> {
        store.delete_reminder(user, id).await
    }
}
