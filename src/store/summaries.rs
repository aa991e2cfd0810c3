//! Conversation summaries: each user's rolling summary of the turns folded out of the
//! prompt's recent history. The text is personal, so it is sealed.

use chrono::{DateTime, Utc};

use super::sql::{now, write_error};
use super::{Result, Store, StoreError, UserId, seal, sqlite_reads, with_user};

/// Where summaries are sealed (the associated data names column and user).
pub(super) const PLACE: &str = "conversation_summaries.summary";

/// A user's rolling conversation summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    pub text: String,
    /// The newest message folded in: the prompt's recent turns are the messages after it.
    pub through_message_id: i64,
    /// How many messages were folded in over time.
    pub folded_messages: u64,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(super) struct SummaryRow {
    summary: String,
    through_message_id: i64,
    folded_messages: i64,
    updated_at: DateTime<Utc>,
}

impl SummaryRow {
    /// The row as SQLite's reader threads read it (`sqlite_reads`).
    pub(super) fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            summary: sqlite_reads::column(row, 0, "summary")?,
            through_message_id: sqlite_reads::column(row, 1, "through_message_id")?,
            folded_messages: sqlite_reads::column(row, 2, "folded_messages")?,
            updated_at: sqlite_reads::time(row, 3, "updated_at")?,
        })
    }
}

pub(super) const SUMMARY: &str = "SELECT summary, through_message_id, folded_messages, updated_at \
     FROM conversation_summaries WHERE user_id = $1";
/// Inserts or replaces the user's summary; a fold never moves `through` backwards.
macro_rules! save_summary {
    (head) => {
        "INSERT INTO conversation_summaries \
         (user_id, summary, through_message_id, folded_messages, updated_at) "
    };
    (tail) => {
        " ON CONFLICT (user_id) DO UPDATE SET summary = excluded.summary, \
         through_message_id = excluded.through_message_id, \
         folded_messages = excluded.folded_messages, updated_at = excluded.updated_at \
         WHERE conversation_summaries.through_message_id <= excluded.through_message_id"
    };
}
pub(super) const SAVE_SUMMARY: &str = concat!(
    save_summary!(head),
    "VALUES ($1, $2, $3, $4, $5)",
    save_summary!(tail)
);
/// [`SAVE_SUMMARY`] for many users at once: followed by `VALUES (…), (…)`, then
/// [`SAVE_SUMMARIES_TAIL`] (one row per user: a row may not be upserted twice in a statement).
pub(super) const SAVE_SUMMARIES_HEAD: &str = save_summary!(head);
pub(super) const SAVE_SUMMARIES_TAIL: &str = save_summary!(tail);

impl Store {
    /// The user's rolling summary, if turns were ever folded.
    #[tracing::instrument(skip_all)]
    pub async fn conversation_summary(&self, user: UserId) -> Result<Option<ConversationSummary>> {
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, SummaryRow>(SUMMARY)
                .bind(user.0)
                .fetch_optional(&mut *conn)
                .await?
        });
        row.map(|row| self.open_summary(user, row)).transpose()
    }

    pub(super) fn open_summary(
        &self,
        user: UserId,
        row: SummaryRow,
    ) -> Result<ConversationSummary> {
        let text = self
            .sealer()
            .open(&seal::place(PLACE, user), &row.summary)
            .map_err(|e| StoreError::Corrupt(format!("{PLACE}: {e}")))?;
        Ok(ConversationSummary {
            text,
            through_message_id: row.through_message_id,
            folded_messages: u64::try_from(row.folded_messages)
                .map_err(|e| StoreError::Corrupt(format!("folded_messages: {e}")))?,
            updated_at: row.updated_at,
        })
    }

    /// Stores the user's new summary, folded through `through_message_id` (which must be one
    /// of the user's messages), and returns the summary now stored: a summary folded through
    /// an older message than the stored one is ignored (and the stored one returned), so a
    /// late writer never loses a fold.
    #[tracing::instrument(skip_all)]
    pub async fn save_conversation_summary(
        &self,
        user: UserId,
        text: &str,
        through_message_id: i64,
        folded_messages: u64,
    ) -> Result<ConversationSummary> {
        let sealed = self.sealer().seal(&seal::place(PLACE, user), text);
        let updated_at = now();
        let folded = i64::try_from(folded_messages)
            .map_err(|e| StoreError::Database(sqlx::Error::Encode(e.into())))?;
        let written = with_user!(self, user, conn => {
            let owned: Option<(i64,)> =
                sqlx::query_as("SELECT id FROM messages WHERE user_id = $1 AND id = $2")
                    .bind(user.0)
                    .bind(through_message_id)
                    .fetch_optional(&mut *conn)
                    .await?;
            if owned.is_none() {
                return Err(StoreError::NotFound);
            }
            sqlx::query(SAVE_SUMMARY)
                .bind(user.0)
                .bind(&sealed)
                .bind(through_message_id)
                .bind(folded)
                .bind(updated_at)
                .execute(&mut *conn)
                .await
                .map_err(write_error)?
                .rows_affected()
        });
        if written == 0 {
            // A newer fold is already stored: it stands (read once this transaction is done,
            // so one call never holds two connections).
            return self
                .conversation_summary(user)
                .await?
                .ok_or(StoreError::NotFound);
        }
        Ok(ConversationSummary {
            text: text.to_owned(),
            through_message_id,
            folded_messages,
            updated_at,
        })
    }
}
