//! SQLite's group commits on a thread of their own, with a connection of their own.
//!
//! sqlx-sqlite runs each statement on its connection's thread and hands the rows back through
//! a channel: every statement of a batch (`BEGIN`, the messages, the replies, the usage rows
//! and model usage rows, the summaries, the fingerprints, `COMMIT`) cost two thread wake-ups,
//! and the writer waited for each in turn. Here the group-commit [writer](super::writer)'s
//! writes come straight to this thread, which takes everything waiting (up to a batch), seals
//! it, runs it start to commit on its own connection with statements prepared once and reused,
//! one row at a time (a cached statement per row costs less than preparing a multi-row one),
//! and wakes each waiting turn with what became of its write. While a batch commits, the next
//! piles up in the queue and is taken without a wake-up: under load a write's path from its
//! turn to the disk and back crosses no other thread and no runtime queue. A batch refused as a
//! whole is retried here one write per transaction, so only the faulty write fails. The
//! statements are the store's own one-row forms (`messages`, `summaries`, `memories`), not
//! copies.
//!
//! Direct calls of [`Store::write_messages`](super::Store::write_messages) come here too, as
//! one transaction of their own, all or nothing; every other store call keeps the pool. The
//! connection is the pool's database file, opened with the same settings (WAL,
//! `synchronous=FULL`, foreign keys on, the same busy timeout), so the two take SQLite's one
//! write lock in turn like any two connections. The thread ends once the last clone of the
//! [`Store`](super::Store) and the last writer on it are dropped and what was handed to it is
//! stored.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::llm_usage::INSERT_LLM_USAGE_ROW;
use super::memories::{FINGERPRINT, FingerprintRow};
use super::messages::{
    BODY_COLUMN, INSERT_MESSAGE_ROW, INSERT_SMS_USAGE_ROW, MESSAGE_BY_PROVIDER_ID, MessageRow,
    Stored, committed, fold_usage, summary_rows, written,
};
use super::sql::{now, segments_column};
use super::summaries::SAVE_SUMMARY;
use super::writer::{self, Counters, Pending};
use super::{
    MemoryFingerprint, MessageWrite, NewLlmUsage, NewMessage, NewSmsUsage, Result, Sealer,
    StoreError, UserId, Written,
};

/// A message row of a batch, its body sealed.
#[derive(Debug)]
struct RowMessage {
    pub channel: &'static str,
    pub direction: &'static str,
    pub body: String,
    pub provider_message_id: Option<String>,
    pub in_reply_to: Option<i64>,
}

/// A usage row of a batch, for the message it comes with.
#[derive(Debug)]
struct RowUsage {
    pub direction: &'static str,
    pub segments: i32,
    pub encoding: &'static str,
    pub estimated_cost_micros: i64,
}

/// A message of a batch with the rows that point at it: its SMS usage, and the usage of the
/// model calls that wrote it.
#[derive(Debug)]
struct Entry {
    pub message: RowMessage,
    pub usage: Vec<RowUsage>,
    pub model_usage: Vec<NewLlmUsage>,
}

/// One write of a batch: a message, and the reply that answers it if any.
#[derive(Debug)]
struct BatchRow {
    pub user: Uuid,
    pub message: Entry,
    /// The reply, stored pointing at the message (its `in_reply_to` is ignored).
    pub reply: Option<Entry>,
}

/// A batch as the thread runs it: every value already encoded as sqlx would bind it.
#[derive(Debug)]
struct Batch {
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
struct BatchOutcome {
    /// Per row, how it was stored.
    stored: Vec<Stored>,
    /// The memory fingerprint of each user with memories.
    fingerprints: Vec<(Uuid, MemoryFingerprint)>,
}

/// What became of each write of a transaction, with the memory fingerprints of its users
/// that have memories.
type Outcome = (Vec<Written>, HashMap<UserId, MemoryFingerprint>);

#[allow(
    clippy::large_enum_variant,
    reason = "the writer's writes are the hot path: boxing them would allocate once per write"
)]
enum Job {
    /// A caller's writes: all of them in one transaction, or none.
    Together {
        writes: Vec<MessageWrite>,
        fingerprints: bool,
        done: oneshot::Sender<Result<Outcome>>,
    },
    /// One write of the group-commit writer's, committed with whatever else is waiting.
    Grouped(Pending),
}

/// The batch thread's door: hand it writes, wait for their outcome.
#[derive(Debug)]
pub(super) struct BatchThread {
    jobs: mpsc::Sender<Job>,
    counters: Arc<Counters>,
}

impl BatchThread {
    /// Opens a connection to the database file at `path` (migrated already) and starts the
    /// thread that runs batches on it, sealing with `sealer` and committing up to
    /// `max_batch` of the writer's writes at a time.
    pub(super) fn start(
        path: &Path,
        busy_timeout: Duration,
        sealer: Sealer,
        max_batch: usize,
    ) -> Result<Self> {
        // The pool's settings (`sqlite::connect`).
        let connection = open(
            path,
            busy_timeout,
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
            8,
        )?;
        let (jobs, receiver) = mpsc::channel::<Job>();
        let counters = Arc::new(Counters::new());
        let committer = Committer {
            connection,
            sealer,
            counters: counters.clone(),
            max_batch: max_batch.max(1),
        };
        std::thread::Builder::new()
            .name("nudge-sqlite-batches".into())
            .spawn(move || committer.serve(receiver))
            .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        Ok(Self { jobs, counters })
    }

    /// Stores `writes` in one transaction and gives back what became of each once committed,
    /// with their users' memory fingerprints if `fingerprints`.
    pub(super) async fn store(
        &self,
        writes: Vec<MessageWrite>,
        fingerprints: bool,
    ) -> Result<Outcome> {
        let (done, outcome) = oneshot::channel();
        self.jobs
            .send(Job::Together {
                writes,
                fingerprints,
                done,
            })
            .map_err(|_| writer::closed())?;
        outcome
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
    }

    /// Hands one of the group-commit writer's writes over, to be committed with the next
    /// batch; its turn is woken through the write's own channel.
    pub(super) fn hand_off(&self, write: Pending) -> Result<()> {
        self.jobs
            .send(Job::Grouped(write))
            .map_err(|_| writer::closed())
    }

    /// The counters of the writer's batches committed here.
    pub(super) fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
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

/// What the thread owns.
struct Committer {
    connection: Connection,
    sealer: Sealer,
    counters: Arc<Counters>,
    max_batch: usize,
}

impl Committer {
    /// The thread: one transaction at a time, until every sender is gone and nothing waits.
    fn serve(mut self, jobs: mpsc::Receiver<Job>) {
        // A caller's own transaction met while taking the writer's waiting writes: it runs
        // after their batch.
        let mut next = None;
        loop {
            let job = match next.take() {
                Some(job) => job,
                None => match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
            };
            match job {
                Job::Together {
                    writes,
                    fingerprints,
                    done,
                } => {
                    // The caller may have stopped waiting: stored (or not) all the same.
                    let _ = done.send(self.store(&writes, fingerprints));
                }
                Job::Grouped(first) => {
                    let mut batch = Vec::with_capacity(64.min(self.max_batch));
                    batch.push(first);
                    while batch.len() < self.max_batch {
                        match jobs.try_recv() {
                            Ok(Job::Grouped(write)) => batch.push(write),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit(batch);
                }
            }
        }
    }

    /// Commits a batch of the writer's writes and wakes their turns; on a failure of the
    /// whole batch, stores each write on its own so that only the faulty one fails.
    fn commit(&mut self, batch: Vec<Pending>) {
        let taken = writer::Taken::new(batch);
        let outcomes = match writer::as_a_whole(&taken.writes, self.store_committed(&taken.writes))
        {
            Ok(outcomes) => outcomes,
            Err(error) => {
                writer::splitting(&error, taken.writes.len(), &self.counters);
                taken
                    .writes
                    .iter()
                    .map(|write| writer::only(self.store_committed(std::slice::from_ref(write))))
                    .collect()
            }
        };
        taken.finish(outcomes, &self.counters);
    }

    fn store_committed(&mut self, writes: &[MessageWrite]) -> Result<Vec<super::Committed>> {
        let (written, prints) = self.store(writes, true)?;
        Ok(committed(writes, written, &prints))
    }

    /// Stores `writes` in one transaction: sealed and encoded here, run, and what became of
    /// each assembled.
    fn store(&mut self, writes: &[MessageWrite], fingerprints: bool) -> Result<Outcome> {
        let created_at = now();
        let batch = encode(&self.sealer, writes, fingerprints, created_at)?;
        let outcome = run_batch(&mut self.connection, &batch)?;
        let written = written(&self.sealer, writes, outcome.stored, created_at)?;
        let prints = outcome
            .fingerprints
            .into_iter()
            .map(|(user, print)| (UserId(user), print))
            .collect();
        Ok((written, prints))
    }
}

/// A batch as [`run_batch`] runs it: bodies and summaries sealed, every value encoded as sqlx
/// would bind it.
fn encode(
    sealer: &Sealer,
    writes: &[MessageWrite],
    fingerprints: bool,
    created_at: chrono::DateTime<chrono::Utc>,
) -> Result<Batch> {
    let usage_rows = |usage: &[NewSmsUsage]| -> Result<Vec<RowUsage>> {
        usage
            .iter()
            .map(|u| {
                Ok(RowUsage {
                    direction: u.direction.as_str(),
                    segments: segments_column(u.segments)?,
                    encoding: u.encoding.as_str(),
                    estimated_cost_micros: u.estimated_cost_micros,
                })
            })
            .collect()
    };
    let entry = |user: UserId,
                 m: &NewMessage,
                 usage: &[NewSmsUsage],
                 model_usage: &[NewLlmUsage]|
     -> Result<Entry> {
        Ok(Entry {
            message: RowMessage {
                channel: m.channel.as_str(),
                direction: m.direction.as_str(),
                body: sealer.seal_column(BODY_COLUMN, user, &m.body),
                provider_message_id: m.provider_message_id.clone(),
                in_reply_to: m.in_reply_to,
            },
            usage: usage_rows(usage)?,
            model_usage: model_usage.to_vec(),
        })
    };
    let rows = writes
        .iter()
        .map(|w| {
            let reply = match &w.reply {
                Some(r) => Some(entry(w.user, &r.message, &r.usage, &r.model_usage)?),
                None => None,
            };
            Ok(BatchRow {
                user: w.user.0,
                message: entry(w.user, &w.message, &w.usage, &w.model_usage)?,
                reply,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut fingerprints_of = Vec::new();
    if fingerprints {
        fingerprints_of = writes.iter().map(|w| w.user.0).collect();
        fingerprints_of.sort_unstable();
        fingerprints_of.dedup();
    }
    Ok(Batch {
        rows,
        summaries: summary_rows(sealer, writes)?
            .into_iter()
            .map(|(user, sealed, through, folded)| (user.0, sealed, through, folded))
            .collect(),
        fold_usage: fold_usage(writes)
            .map(|(user, u)| (user.0, u.clone()))
            .collect(),
        fingerprints_of,
        created_at: created_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
    })
}

fn run_batch(connection: &mut Connection, batch: &Batch) -> rusqlite::Result<BatchOutcome> {
    // IMMEDIATE: take the write lock at BEGIN (waiting up to the busy timeout), so that no
    // statement of the batch meets a lock it cannot wait for.
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcome = BatchOutcome {
        stored: Vec::with_capacity(batch.rows.len()),
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
                // A copy of a message its user already has: that one is given back, read in
                // this transaction.
                let copy = tx.prepare_cached(MESSAGE_BY_PROVIDER_ID)?.query_row(
                    params![user, message.provider_message_id],
                    MessageRow::from_sqlite,
                )?;
                outcome.stored.push(Stored::Copy(copy));
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
            outcome.stored.push(Stored::New(id, reply));
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
