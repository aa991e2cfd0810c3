//! SQLite's message batches on a thread of their own, with a connection of their own.
//!
//! sqlx-sqlite runs each statement on its connection's thread and hands the rows back through
//! a channel: every statement of a batch (`BEGIN`, the messages, the replies, the usage rows
//! and model usage rows, the summaries, the fingerprints, `COMMIT`) cost two thread wake-ups, a fresh prepare when
//! the batch's size gave its multi-row statement a text not seen before, and the group-commit
//! writer waited for each in turn. Here the whole batch is one hand-off: the writer sends it
//! to this thread, which runs it start to commit on its own connection with statements
//! prepared once and reused, one row at a time (a cached statement per row costs less than
//! preparing a multi-row one), and wakes the writer with the ids. The statements are the
//! store's own one-row forms (`messages`, `summaries`, `memories`), not copies.
//!
//! Only the group-commit writer's batches come here; every other store call keeps the pool.
//! The connection is the pool's database file, opened with the same settings (WAL,
//! `synchronous=FULL`, foreign keys on, the same busy timeout), so the two take SQLite's one
//! write lock in turn like any two connections. The thread ends when the last clone of the
//! [`Store`](super::Store) is dropped.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::llm_usage::INSERT_LLM_USAGE_ROW;
use super::memories::{FINGERPRINT, FingerprintRow};
use super::messages::{INSERT_MESSAGE_ROW, INSERT_SMS_USAGE_ROW, StoredIds};
use super::summaries::SAVE_SUMMARY;
use super::{MemoryFingerprint, NewLlmUsage, Result, StoreError};

/// A message row of a batch, its body sealed.
#[derive(Debug)]
pub(super) struct RowMessage {
    pub channel: &'static str,
    pub direction: &'static str,
    pub body: String,
    pub provider_message_id: Option<String>,
    pub in_reply_to: Option<i64>,
}

/// A usage row of a batch, for the message it comes with.
#[derive(Debug)]
pub(super) struct RowUsage {
    pub direction: &'static str,
    pub segments: i32,
    pub encoding: &'static str,
    pub estimated_cost_micros: i64,
}

/// A message of a batch with the rows that point at it: its SMS usage, and the usage of the
/// model calls that wrote it.
#[derive(Debug)]
pub(super) struct Entry {
    pub message: RowMessage,
    pub usage: Vec<RowUsage>,
    pub model_usage: Vec<NewLlmUsage>,
}

/// One write of a batch: a message, and the reply that answers it if any.
#[derive(Debug)]
pub(super) struct BatchRow {
    pub user: Uuid,
    pub message: Entry,
    /// The reply, stored pointing at the message (its `in_reply_to` is ignored).
    pub reply: Option<Entry>,
}

/// A batch as the thread runs it: every value already encoded as sqlx would bind it.
#[derive(Debug)]
pub(super) struct Batch {
    pub rows: Vec<BatchRow>,
    /// `(user, sealed summary, through message id, folded messages)`, one per user.
    pub summaries: Vec<(Uuid, String, i64, i64)>,
    /// The usage of the model calls that wrote the batch's folds, pointing at no message.
    pub fold_usage: Vec<(Uuid, NewLlmUsage)>,
    /// The batch's users (sorted, distinct), whose memory fingerprints to read.
    pub fingerprints_of: Vec<Uuid>,
    /// The rows' `created_at`, as sqlx encodes a time stamp for SQLite (RFC 3339 text).
    pub created_at: String,
}

/// What became of a batch.
#[derive(Debug)]
pub(super) struct BatchOutcome {
    /// Per row, the ids it was stored under.
    pub ids: Vec<StoredIds>,
    /// The memory fingerprint of each user with memories.
    pub fingerprints: Vec<(Uuid, MemoryFingerprint)>,
}

struct Job {
    batch: Batch,
    done: oneshot::Sender<Result<BatchOutcome>>,
}

/// The batch thread's door: send a batch, wait for its outcome.
#[derive(Debug)]
pub(super) struct BatchThread {
    jobs: mpsc::Sender<Job>,
}

impl BatchThread {
    /// Opens a connection to the database file at `path` (migrated already) and starts the
    /// thread that runs batches on it.
    pub(super) fn start(path: &Path, busy_timeout: Duration) -> Result<Self> {
        // The pool's settings (`sqlite::connect`).
        let connection = open(
            path,
            busy_timeout,
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
            8,
        )?;
        let (jobs, receiver) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("nudge-sqlite-batches".into())
            .spawn(move || serve(connection, receiver))
            .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        Ok(Self { jobs })
    }

    /// Runs `batch` in one transaction and gives back its outcome once committed.
    pub(super) async fn run(&self, batch: Batch) -> Result<BatchOutcome> {
        let (done, outcome) = oneshot::channel();
        self.jobs
            .send(Job { batch, done })
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?;
        outcome
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
    }
}

/// A rusqlite connection of our own to the database file at `path` (WAL is the file's own,
/// set when it was created), with `pragmas` run on it and room for `statements` prepared
/// statements.
pub(super) fn open(
    path: &Path,
    busy_timeout: Duration,
    pragmas: &str,
    statements: usize,
) -> Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(busy_timeout)?;
    connection.execute_batch(pragmas)?;
    connection.set_prepared_statement_cache_capacity(statements);
    Ok(connection)
}

/// The thread: one batch at a time, until every sender is gone.
fn serve(mut connection: Connection, jobs: mpsc::Receiver<Job>) {
    while let Ok(Job { batch, done }) = jobs.recv() {
        let outcome = run_batch(&mut connection, &batch).map_err(StoreError::from);
        // The writer may have stopped waiting: the batch is committed (or not) all the same.
        let _ = done.send(outcome);
    }
}

fn run_batch(connection: &mut Connection, batch: &Batch) -> rusqlite::Result<BatchOutcome> {
    // IMMEDIATE: take the write lock at BEGIN (waiting up to the busy timeout), so that no
    // statement of the batch meets a lock it cannot wait for.
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcome = BatchOutcome {
        ids: Vec::with_capacity(batch.rows.len()),
        fingerprints: Vec::new(),
    };
    {
        let mut insert = tx.prepare_cached(INSERT_MESSAGE_ROW)?;
        let mut usage = tx.prepare_cached(INSERT_SMS_USAGE_ROW)?;
        let mut model_usage = tx.prepare_cached(INSERT_LLM_USAGE_ROW)?;
        let created_at = batch.created_at.as_str();
        let mut insert_message =
            |user: &[u8], m: &RowMessage, in_reply_to: Option<i64>| -> rusqlite::Result<_> {
                insert
                    .query_row(
                        params![
                            user,
                            m.channel,
                            m.direction,
                            m.body,
                            m.provider_message_id,
                            in_reply_to,
                            created_at
                        ],
                        |row| row.get::<_, i64>(0),
                    )
                    .optional()
            };
        let mut insert_model_usage =
            |user: &[u8], message_id: Option<i64>, u: &NewLlmUsage| -> rusqlite::Result<()> {
                model_usage.execute(params![
                    user,
                    message_id,
                    u.provider,
                    u.model,
                    u.prompt_tokens,
                    u.output_tokens,
                    u.total_tokens,
                    u.cached,
                    created_at
                ])?;
                Ok(())
            };
        let mut insert_usage =
            |user: &[u8], message_id: i64, entry: &Entry| -> rusqlite::Result<()> {
                for u in &entry.usage {
                    usage.execute(params![
                        user,
                        message_id,
                        u.direction,
                        u.segments,
                        u.encoding,
                        u.estimated_cost_micros,
                        created_at
                    ])?;
                }
                for u in &entry.model_usage {
                    insert_model_usage(user, Some(message_id), u)?;
                }
                Ok(())
            };
        for row in &batch.rows {
            let user = row.user.as_bytes().as_slice();
            let message = &row.message.message;
            let Some(id) = insert_message(user, message, message.in_reply_to)? else {
                outcome.ids.push(None);
                continue;
            };
            insert_usage(user, id, &row.message)?;
            let reply = match &row.reply {
                Some(reply) => {
                    // A reply has no provider id yet, so nothing can make its insert skip it.
                    let reply_id = insert_message(user, &reply.message, Some(id))?
                        .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                    insert_usage(user, reply_id, reply)?;
                    Some(reply_id)
                }
                None => None,
            };
            outcome.ids.push(Some((id, reply)));
        }
        for (user, u) in &batch.fold_usage {
            insert_model_usage(user.as_bytes().as_slice(), None, u)?;
        }
        if !batch.summaries.is_empty() {
            let mut save = tx.prepare_cached(SAVE_SUMMARY)?;
            for (user, sealed, through, folded) in &batch.summaries {
                save.execute(params![
                    user.as_bytes().as_slice(),
                    sealed,
                    through,
                    folded,
                    created_at
                ])?;
            }
        }
        if !batch.fingerprints_of.is_empty() {
            let mut read = tx.prepare_cached(FINGERPRINT)?;
            for user in &batch.fingerprints_of {
                let print: MemoryFingerprint = read
                    .query_row([user.as_bytes().as_slice()], FingerprintRow::from_sqlite)?
                    .into();
                if print.count > 0 {
                    outcome.fingerprints.push((*user, print));
                }
            }
        }
    }
    tx.commit()?;
    Ok(outcome)
}
