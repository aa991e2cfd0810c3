//! What a user's actor loads when it starts, in one store call.

use rusqlite::OptionalExtension;

use super::memories::{FINGERPRINT, FingerprintRow, MEMORIES, MemoryRow};
use super::messages::{MessageRow, RECENT_MESSAGES};
use super::summaries::{SUMMARY, SummaryRow};
use super::users::{USER_BY_ID, UserRow};
use super::{
    ConversationSummary, Memory, MemoryFingerprint, Message, Result, Store, StoreError, User,
    UserId, with_user,
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
    /// Read with the rest, or `None`: the fingerprint of `memories` as read.
    fingerprint: Option<MemoryFingerprint>,
    memories: Vec<MemoryRow>,
}

impl Store {
    /// The user's state for their actor to start from (`NotFound` for no such user): what
    /// [`Store::user`], [`Store::conversation_summary`], [`Store::recent_messages`],
    /// [`Store::memory_fingerprint`] and [`Store::memories`] read, in one call.
    ///
    /// On a SQLite file the five statements run together on a reader thread, in one read
    /// transaction (see `sqlite_reads`). On PostgreSQL four run on one scoped connection
    /// (`pg_conns`): the scope's round trip, then the statements, each its own snapshot; the
    /// fingerprint is that of the memories as read, which saves a round trip and cannot fall
    /// behind them. Only this user's actor writes their messages and summary, and it is not
    /// running yet; a memory added meanwhile shows in the next write's fingerprint, which
    /// brings the cache up to date. (SQLite keeps the statement: its `MAX` of stored text
    /// may differ from the newest time stamp read, and the thread runs it in the same
    /// hand-off.)
    #[tracing::instrument(skip_all)]
    pub async fn activation(&self, user: UserId, recent: u32) -> Result<Activation> {
        let rows = match &self.readers {
            Some(readers) => readers.run(move |tx| read(tx, user, recent)).await?,
            None => with_user!(self, user, conn => Rows {
                user: sqlx::query_as::<_, UserRow>(USER_BY_ID)
                    .bind(user.0)
                    .fetch_optional(&mut *conn)
                    .await?,
                summary: sqlx::query_as::<_, SummaryRow>(SUMMARY)
                    .bind(user.0)
                    .fetch_optional(&mut *conn)
                    .await?,
                recent: sqlx::query_as::<_, MessageRow>(RECENT_MESSAGES)
                    .bind(user.0)
                    .bind(i64::from(recent))
                    .fetch_all(&mut *conn)
                    .await?,
                memories: sqlx::query_as::<_, MemoryRow>(MEMORIES)
                    .bind(user.0)
                    .fetch_all(&mut *conn)
                    .await?,
                fingerprint: None,
            }),
        };
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
            fingerprint: rows
                .fingerprint
                .unwrap_or_else(|| MemoryRow::fingerprint(&rows.memories)),
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
    let user_row = tx
        .prepare_cached(USER_BY_ID)?
        .query_row([id], UserRow::from_sqlite)
        .optional()?;
    let summary = tx
        .prepare_cached(SUMMARY)?
        .query_row([id], SummaryRow::from_sqlite)
        .optional()?;
    let recent = tx
        .prepare_cached(RECENT_MESSAGES)?
        .query_map(
            rusqlite::params![id, i64::from(recent)],
            MessageRow::from_sqlite,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let fingerprint: MemoryFingerprint = tx
        .prepare_cached(FINGERPRINT)?
        .query_row([id], FingerprintRow::from_sqlite)?
        .into();
    let memories = tx
        .prepare_cached(MEMORIES)?
        .query_map([id], MemoryRow::from_sqlite)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Rows {
        user: user_row,
        summary,
        recent,
        fingerprint: Some(fingerprint),
        memories,
    })
}
