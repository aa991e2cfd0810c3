//! What a user's actor loads when it starts, in one store call.

use super::memories::{FINGERPRINT, MEMORIES, MemoryRow};
use super::messages::{MessageRow, RECENT_MESSAGES};
use super::sqlite_reads::stored_time;
use super::summaries::{SUMMARY, SummaryRow};
use super::users::{USER_BY_ID, UserRow};
use super::{
    ConversationSummary, Memory, MemoryFingerprint, Message, Result, Store, StoreError, User,
    UserId,
};

/// A user's state as their actor starts: who they are, their rolling summary, their most
/// recent messages, and their long-term memories with the fingerprint they match.
#[derive(Debug, Clone, PartialEq)]
pub struct Activation {
    pub user: User,
    pub summary: Option<ConversationSummary>,
    /// The newest messages, oldest first.
    pub recent: Vec<Message>,
    pub fingerprint: MemoryFingerprint,
    /// Every memory, oldest first.
    pub memories: Vec<Memory>,
}

/// [`Activation`]'s rows as read, before their sealed columns are opened.
struct Rows {
    user: Option<UserRow>,
    summary: Option<SummaryRow>,
    recent: Vec<MessageRow>,
    fingerprint: MemoryFingerprint,
    memories: Vec<MemoryRow>,
}

impl Store {
    /// The user's state for their actor to start from (`NotFound` for no such user).
    ///
    /// On a SQLite file the five reads run together on a reader thread, in one read
    /// transaction (see `sqlite_reads`); elsewhere they are the single-purpose calls
    /// ([`Store::user`], [`Store::conversation_summary`], [`Store::recent_messages`],
    /// [`Store::memory_fingerprint`], [`Store::memories`]) in turn, which is what this reads
    /// in any case.
    #[tracing::instrument(skip_all)]
    pub async fn activation(&self, user: UserId, recent: u32) -> Result<Activation> {
        let Some(readers) = &self.readers else {
            return Ok(Activation {
                user: self.user(user).await?,
                summary: self.conversation_summary(user).await?,
                recent: self.recent_messages(user, recent).await?,
                fingerprint: self.memory_fingerprint(user).await?,
                memories: self.memories(user).await?,
            });
        };
        let rows = readers.run(move |tx| read(tx, user, recent)).await?;
        Ok(Activation {
            user: rows.user.ok_or(StoreError::NotFound)?.try_into()?,
            summary: rows
                .summary
                .map(|row| self.open_summary(user, row))
                .transpose()?,
            recent: rows
                .recent
                .into_iter()
                .rev()
                .map(|row| self.open_message(row))
                .collect::<Result<_>>()?,
            fingerprint: rows.fingerprint,
            memories: rows
                .memories
                .into_iter()
                .map(|row| self.open_memory(user, row))
                .collect::<Result<_>>()?,
        })
    }
}

/// The five reads, each scoped to `user` by its statement as in the single-purpose calls.
fn read(tx: &rusqlite::Transaction<'_>, user: UserId, recent: u32) -> rusqlite::Result<Rows> {
    let id = user.0.as_bytes().as_slice();
    let user_row = {
        let mut statement = tx.prepare_cached(USER_BY_ID)?;
        let mut rows = statement.query([id])?;
        rows.next()?.map(UserRow::from_sqlite).transpose()?
    };
    let summary = {
        let mut statement = tx.prepare_cached(SUMMARY)?;
        let mut rows = statement.query([id])?;
        rows.next()?.map(SummaryRow::from_sqlite).transpose()?
    };
    let recent = tx
        .prepare_cached(RECENT_MESSAGES)?
        .query_map(rusqlite::params![id, i64::from(recent)], |row| {
            MessageRow::from_sqlite(row)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let fingerprint = tx.prepare_cached(FINGERPRINT)?.query_row([id], |row| {
        let updated: Option<String> = row.get("max_updated_at")?;
        Ok(MemoryFingerprint {
            count: row.get("count")?,
            max_id: row.get("max_id")?,
            max_updated_at: updated.as_deref().and_then(stored_time),
        })
    })?;
    let memories = tx
        .prepare_cached(MEMORIES)?
        .query_map([id], MemoryRow::from_sqlite)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Rows {
        user: user_row,
        summary,
        recent,
        fingerprint,
        memories,
    })
}
