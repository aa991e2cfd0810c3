//! SQLite's group commits on a thread of their own, with a connection of their own.
//!
//! sqlx-sqlite runs each statement on its connection's thread and hands the rows back through
//! a channel: every statement of a batch (`BEGIN`, the messages, the replies, the usage rows
//! and model usage rows, the summaries, the fingerprints, `COMMIT`) cost two thread wake-ups,
//! and the writer waited for each in turn. Here each turn seals and encodes its own write for
//! the group-commit [writer](super::writer) and hands it straight to this thread, which takes
//! everything waiting (up to a batch), runs it start to commit on its own connection with
//! statements prepared once and reused, one row at a time (a cached statement per row costs
//! less than preparing a multi-row one), and wakes each waiting turn with how its write was
//! stored; the turn builds its outcome from that. So the thread every write waits for does
//! SQLite's work alone. While a batch commits, the next piles up in the queue and is taken
//! without a wake-up: under load a write's path from its turn to the disk and back crosses no
//! other thread and no runtime queue. A batch refused as a whole is retried here one write per
//! transaction, so only the faulty write fails. The statements are the store's own one-row
//! forms (`messages`, `summaries`, `memories`), not copies.
//!
//! Direct calls of [`Store::write_messages`](super::Store::write_messages) come here too, as
//! one transaction of their own, all or nothing; every other store call keeps the pool. The
//! connection is the pool's database file, opened with the same settings (WAL, foreign keys
//! on, the same busy timeout), so the two take SQLite's one write lock in turn like any two
//! connections. The thread ends once the last clone of the [`Store`](super::Store) and the
//! last writer on it are dropped and what was handed to it is stored.
//!
//! Two threads beside it take work off the thread every write waits for, work SQLite would do
//! inside the commits: a sync thread syncs the WAL after the commits and only then wakes their
//! turns (see [`Syncs`]: a turn hears its write is stored once it is durable, as at
//! `synchronous=FULL`), and a checkpoint thread copies the WAL into the database file (see
//! [`Checkpoints`]).

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::c_int;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, LazyLock, mpsc};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::config::DbConfig;
use rusqlite::hooks::Wal;
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::llm_usage::INSERT_LLM_USAGE_ROW;
use super::memories::{FINGERPRINT, FingerprintRow};
use super::messages::{
    BODY_COLUMN, INSERT_MESSAGE_ROW, INSERT_SMS_USAGE_ROWS, MESSAGE_BY_PROVIDER_ID, MessageRow,
    Stored, fold_columns, newest_folds, split_usage, written,
};
use super::sql::{now, segments_column};
use super::summaries::SAVE_SUMMARY;
use super::writer::{self, Counters, Pending};
use super::{
    Committed, MemoryFingerprint, MessageWrite, NewLlmUsage, NewMessage, NewSmsUsage, Result,
    Sealer, StoreError, UserId, Written,
};

/// A message row of a batch, its body sealed.
#[derive(Debug)]
struct RowMessage {
    channel: &'static str,
    direction: &'static str,
    body: String,
    provider_message_id: Option<String>,
    in_reply_to: Option<i64>,
    /// The message's own SMS usage, stored on its row (`sms_segments`, `sms_encoding`,
    /// `sms_cost_micros`) instead of as a usage row of its own.
    usage: Option<RowUsage>,
}

/// A usage row of a batch, for the message it comes with.
#[derive(Debug)]
struct RowUsage {
    direction: &'static str,
    segments: i32,
    encoding: &'static str,
    estimated_cost_micros: i64,
}

/// A message of a batch with the rows that point at it: its SMS usage that is not on its own
/// row, and the usage of the model calls that wrote it.
#[derive(Debug)]
struct Entry {
    message: RowMessage,
    usage: Vec<RowUsage>,
    model_usage: Vec<NewLlmUsage>,
}

/// A summary fold as it is stored: the sealed text, the newest message folded in, how many
/// messages were folded.
#[derive(Debug)]
struct SummaryRow {
    sealed: String,
    through: i64,
    folded: i64,
}

/// One write as the thread runs it, sealed and encoded by its caller (off the thread, which
/// every write waits for): a message, the reply that answers it if any, and a summary fold.
#[derive(Debug)]
pub(super) struct Encoded {
    user: Uuid,
    message: Entry,
    /// The reply, stored pointing at the message (its `in_reply_to` is ignored).
    reply: Option<Entry>,
    summary: Option<SummaryRow>,
    /// The usage of the model calls that wrote the fold, pointing at no message (every fold's,
    /// though only each user's newest fold of a batch is stored).
    fold_usage: Vec<NewLlmUsage>,
}

/// What became of one write of a transaction: how it was stored, when, and its user's memory
/// fingerprint as the transaction saw it (the default, empty one when not asked for or
/// when the user has no memories).
#[derive(Debug)]
pub(super) struct Landed {
    stored: Stored,
    created_at: DateTime<Utc>,
    memories: MemoryFingerprint,
}

/// What the batch thread's outcomes come back through.
type Done = oneshot::Sender<Result<Vec<Landed>>>;

#[allow(
    clippy::large_enum_variant,
    reason = "the writer's writes are the hot path: boxing them would allocate once per write"
)]
enum Job {
    /// A caller's writes: all of them in one transaction, or none.
    Together {
        writes: Vec<Encoded>,
        fingerprints: bool,
        done: Done,
    },
    /// One write of the group-commit writer's, committed with whatever else is waiting.
    Grouped(Pending<Encoded, Landed>),
}

/// The batch thread's door: hand it writes, wait for their outcome.
#[derive(Debug)]
pub(super) struct BatchThread {
    jobs: mpsc::Sender<Job>,
    sealer: Sealer,
    counters: Arc<Counters>,
}

impl BatchThread {
    /// Opens a connection to the database file at `path` (migrated already) and starts the
    /// thread that runs batches on it, made of the writer's writes as `batching` says; writes
    /// are sealed with `sealer`, and the WAL copied into the database file within `bounds`.
    pub(super) fn start(
        path: &Path,
        busy_timeout: Duration,
        sealer: Sealer,
        batching: Batching,
        bounds: CheckpointBounds,
    ) -> Result<Self> {
        // The pool's settings (`sqlite::connect`), but for the commits' sync: the sync thread
        // syncs the log after them (`Syncs`). SQLite still syncs the log before each
        // checkpoint and the database file after it.
        let connection = open(
            path,
            busy_timeout,
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
            BATCH_STATEMENTS,
        )?;
        let (jobs, receiver) = mpsc::channel::<Job>();
        let counters = Arc::new(Counters::new());
        let syncs = Syncs::start(&connection, path, counters.clone())?;
        let checkpoints =
            Checkpoints::start(&connection, path, busy_timeout, bounds, counters.clone())?;
        let committer = Committer {
            connection,
            counters: counters.clone(),
            batching: Batching {
                max: batching.max.max(1),
                ..batching
            },
            checkpoints,
            syncs,
        };
        std::thread::Builder::new()
            .name(BATCH_THREAD_NAME.into())
            .spawn(move || committer.serve(receiver))?;
        Ok(Self {
            jobs,
            sealer,
            counters,
        })
    }

    /// Stores `writes` in one transaction and gives back what became of each once committed,
    /// with their users' memory fingerprints if `fingerprints` (users without memories are
    /// absent: theirs is the default, empty one).
    pub(super) async fn store(
        &self,
        writes: &[MessageWrite],
        fingerprints: bool,
    ) -> Result<(Vec<Written>, HashMap<UserId, MemoryFingerprint>)> {
        let encoded = writes
            .iter()
            .map(|write| encode(&self.sealer, write))
            .collect::<Result<Vec<_>>>()?;
        let (done, outcome) = oneshot::channel();
        self.jobs
            .send(Job::Together {
                writes: encoded,
                fingerprints,
                done,
            })
            .map_err(|_| writer::closed())?;
        let landed = outcome.await.map_err(|_| crashed())??;
        let created_at = landed.first().map_or_else(now, |l| l.created_at);
        let mut prints = HashMap::new();
        let mut stored = Vec::with_capacity(landed.len());
        for (write, landed) in writes.iter().zip(landed) {
            if landed.memories.count > 0 {
                prints.insert(write.user, landed.memories);
            }
            stored.push(landed.stored);
        }
        Ok((written(&self.sealer, writes, stored, created_at)?, prints))
    }

    /// Commits `write` with the next batch of the group-commit writer's and gives back what
    /// became of it once committed, with its user's memory fingerprint as of that commit.
    pub(super) async fn commit(&self, write: MessageWrite) -> Result<Committed> {
        let encoded = encode(&self.sealer, &write)?;
        let (done, outcome) = oneshot::channel();
        self.jobs
            .send(Job::Grouped(Pending::new(encoded, done)))
            .map_err(|_| writer::closed())?;
        let landed = outcome.await.map_err(|_| crashed())??;
        let written = writer::only(written(
            &self.sealer,
            std::slice::from_ref(&write),
            vec![landed.stored],
            landed.created_at,
        ))?;
        Ok(Committed {
            written,
            memories: landed.memories,
        })
    }

    /// The counters of the writer's batches committed here.
    pub(super) fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }
}

/// The thread is gone: it ended with a panic, which only a bug can cause.
fn crashed() -> StoreError {
    StoreError::Database(sqlx::Error::WorkerCrashed)
}

/// A rusqlite connection of our own to the database file at `path` (WAL is the file's own,
/// set when it was created), with `pragmas` run on it and room for `statements` prepared
/// statements.
///
/// Its query plans never depend on the values bound (SQLite's query planner stability
/// guarantee). Otherwise a statement whose plan may use a bound value, such as a `LIMIT $2`,
/// is compiled again each time it runs with new bindings: the recent messages' statement,
/// once per actor's activation (round 20 of `docs/performance.md`).
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
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    connection.execute_batch(pragmas)?;
    connection.set_prepared_statement_cache_capacity(statements);
    Ok(connection)
}

/// The name of the thread every write of the group-commit writer waits for (Linux shows its
/// first 15 bytes, `nudge-sqlite-ba`).
pub const BATCH_THREAD_NAME: &str = "nudge-sqlite-batches";

/// The prepared statements the batch connection keeps: a message's, a copy's and a model
/// call's rows, the summary save, the fingerprint read, and the usage rows' statement of each
/// size in [`USAGE_ROWS_PER_STATEMENT`].
const BATCH_STATEMENTS: usize = 12;

/// What the thread owns.
struct Committer {
    connection: Connection,
    counters: Arc<Counters>,
    batching: Batching,
    checkpoints: Checkpoints,
    syncs: Syncs,
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
                    let outcome = self.land(&writes, fingerprints);
                    self.syncs.after(Unsynced::Together { outcome, done });
                }
                Job::Grouped(first) => {
                    let batch = self.take_batch(first, &jobs, &mut next);
                    self.commit(batch);
                }
            }
            // Once the transaction is handed to the sync thread.
            self.checkpoints.after_commit(&self.connection);
        }
        // Every commit synced and its callers woken before the connection closes.
        self.syncs.finish();
    }

    /// The batch that `first` begins: the writer's writes waiting behind it, gathered for a
    /// while if there are few (see [`Batching`]), up to a batch's most. A caller's own
    /// transaction met on the way is left in `next`, and ends the batch.
    fn take_batch(
        &self,
        first: Pending<Encoded, Landed>,
        jobs: &mpsc::Receiver<Job>,
        next: &mut Option<Job>,
    ) -> Vec<Pending<Encoded, Landed>> {
        let oldest = first.queued_at();
        let mut batch = Vec::with_capacity(64.min(self.batching.max));
        batch.push(first);
        let mut gathered = false;
        loop {
            while batch.len() < self.batching.max {
                match jobs.try_recv() {
                    Ok(Job::Grouped(write)) => batch.push(write),
                    Ok(other) => {
                        *next = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
            if gathered || next.is_some() || batch.len() >= self.batching.enough {
                return batch;
            }
            let waited = oldest.elapsed();
            if waited >= self.batching.gather_for {
                return batch;
            }
            // Asleep, not waiting on the queue: the writes that come meanwhile wake nobody.
            std::thread::sleep(self.batching.gather_for - waited);
            gathered = true;
        }
    }

    /// Commits a batch of the writer's writes and wakes their turns; on a failure of the
    /// whole batch, stores each write on its own so that only the faulty one fails.
    fn commit(&mut self, batch: Vec<Pending<Encoded, Landed>>) {
        let taken = writer::Taken::new(batch);
        let whole = self.land(&taken.writes, true);
        let outcomes = match writer::as_a_whole(taken.writes.len(), whole) {
            Ok(outcomes) => outcomes,
            Err(error) => {
                writer::splitting(&error, taken.writes.len(), &self.counters);
                taken
                    .writes
                    .iter()
                    .map(|write| writer::only(self.land(std::slice::from_ref(write), true)))
                    .collect()
            }
        };
        self.syncs.after(Unsynced::Grouped {
            taken,
            committed: Instant::now(),
            outcomes,
        });
    }

    /// Stores `writes` in one transaction; with `fingerprints`, reads their users' memory
    /// fingerprints in it too.
    fn land(&mut self, writes: &[Encoded], fingerprints: bool) -> Result<Vec<Landed>> {
        let created_at = now();
        let outcome = run_batch(&mut self.connection, writes, fingerprints, created_at)?;
        if outcome.stored.len() != writes.len() {
            return Err(StoreError::Corrupt("a batch gave back too few rows".into()));
        }
        let prints: HashMap<Uuid, MemoryFingerprint> = outcome.fingerprints.into_iter().collect();
        Ok(outcome
            .stored
            .into_iter()
            .zip(writes)
            .map(|(stored, write)| Landed {
                stored,
                created_at,
                memories: prints.get(&write.user).copied().unwrap_or_default(),
            })
            .collect())
    }
}

/// A transaction committed on the batch thread, its outcome waiting for the log to be synced.
enum Unsynced {
    /// A batch of the writer's writes, committed at `committed`.
    Grouped {
        taken: writer::Taken<Encoded, Landed>,
        committed: Instant,
        outcomes: Vec<Result<Landed>>,
    },
    /// A caller's writes, stored together (or not at all).
    Together {
        outcome: Result<Vec<Landed>>,
        done: Done,
    },
}

/// The syncs of the WAL after the batch thread's commits, on a thread of their own.
///
/// `synchronous=FULL` syncs the log inside each commit, on the thread every write waits for:
/// on a grown database about a third of that thread's CPU went to the `fsync` (writing the
/// log's pages back, and the virtual disk's notifications), while the next batch waited. Here
/// the batch connection commits at `synchronous=NORMAL`, which in WAL mode writes the log
/// without syncing it, and hands each committed transaction to the sync thread; that thread
/// syncs the log (one `fdatasync` for every transaction committed before it starts) and only
/// then wakes the transaction's callers, while the batch thread commits the next. A turn's
/// rows are thus durable before it hears they are stored, as at `synchronous=FULL`. What
/// changes is that other connections may read a transaction in the short while between its
/// commit and its sync; a crash in that while loses it as it loses a commit not yet
/// acknowledged, and never corrupts the database (SQLite's guarantee at `NORMAL`).
struct Syncs {
    /// What hands committed transactions to the sync thread (dropped to end it), and that
    /// thread; `None` once it has ended.
    running: Option<(mpsc::Sender<Unsynced>, std::thread::JoinHandle<()>)>,
}

impl Syncs {
    /// Starts the sync thread on the WAL of `batches`, the batch connection to the database at
    /// `path`, counting its batches in `counters`.
    fn start(batches: &Connection, path: &Path, counters: Arc<Counters>) -> Result<Self> {
        // A read opens the log, creating it if the database has none yet. SQLite removes it
        // only when the last connection closes, and the batch connection outlives this thread.
        batches.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
        let mut log = path.as_os_str().to_owned();
        log.push("-wal");
        let log = std::fs::File::open(&log)?;
        let (unsynced, committed) = mpsc::channel::<Unsynced>();
        let thread = std::thread::Builder::new()
            .name("nudge-sqlite-syncs".into())
            .spawn(move || sync_after_commits(|| log.sync_data(), &committed, &counters))?;
        Ok(Self {
            running: Some((unsynced, thread)),
        })
    }

    /// Hands a committed transaction to the sync thread, which wakes its callers once synced.
    fn after(&self, transaction: Unsynced) {
        if let Some((unsynced, _)) = &self.running {
            // The sync thread ends only when this sender is dropped, or with a panic, which
            // drops the callers' senders: they then hear that the store crashed.
            let _ = unsynced.send(transaction);
        }
    }

    /// Waits for the sync thread to sync and deliver everything handed to it.
    fn finish(&mut self) {
        if let Some((unsynced, thread)) = self.running.take() {
            drop(unsynced);
            let _ = thread.join();
        }
    }
}

/// The sync thread: for each group of transactions committed since its last sync, syncs the
/// log once (`sync`), then wakes their callers. After a failed sync nothing is acknowledged
/// any more: the kernel may have dropped the pages it could not write, and a later sync that
/// succeeds does not bring them back.
fn sync_after_commits(
    mut sync: impl FnMut() -> std::io::Result<()>,
    committed: &mpsc::Receiver<Unsynced>,
    counters: &Counters,
) {
    let not_synced = |error: &std::io::Error| {
        StoreError::from(std::io::Error::new(
            error.kind(),
            format!("the log could not be synced: {error}"),
        ))
    };
    let mut failed: Option<std::io::Error> = None;
    let mut group = Vec::new();
    while let Ok(first) = committed.recv() {
        group.push(first);
        group.extend(committed.try_iter());
        if failed.is_none()
            && let Err(error) = sync()
        {
            tracing::error!(
                %error,
                "the SQLite WAL could not be synced; no write is acknowledged from now on"
            );
            failed = Some(error);
        }
        for transaction in group.drain(..) {
            match transaction {
                Unsynced::Grouped {
                    taken,
                    committed,
                    mut outcomes,
                } => {
                    if let Some(error) = &failed {
                        outcomes = outcomes
                            .into_iter()
                            .map(|_| Err(not_synced(error)))
                            .collect();
                    }
                    taken.finish_synced(committed, outcomes, counters);
                }
                Unsynced::Together { outcome, done } => {
                    let outcome = match &failed {
                        Some(error) => Err(not_synced(error)),
                        None => outcome,
                    };
                    // The caller may have stopped waiting: stored (or not) all the same.
                    let _ = done.send(outcome);
                }
            }
        }
    }
}

/// How the batch thread makes its batches of the writer's writes.
///
/// A transaction costs the same for one write as for twenty, on top of each write's rows: it
/// takes SQLite's write lock, and writes a frame of the WAL for every page it changed, the
/// pages every write shares (the tables' last leaves, the indexes that grow at their end, the
/// sequence of ids) as well as each write's own; then the sync thread syncs the log once for
/// it, and both threads are woken for it. Under load the next batch piles up while one
/// commits, so batches are large; at half the peak they held 3 writes, and the batch thread
/// spent half the time committing. So an idle thread woken by a write lets it gather others
/// for a moment before starting its batch (round 22 of `docs/performance.md`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Batching {
    /// The most writes a batch holds.
    pub(super) max: usize,
    /// How long the oldest write of a batch waits for others, counted from its hand-off,
    /// unless the batch holds [`Self::enough`] writes first. The thread sleeps meanwhile
    /// rather than wait on its queue, so the writes that come do not wake it one by one.
    pub(super) gather_for: Duration,
    /// A batch of this many writes starts without waiting for more.
    pub(super) enough: usize,
}

impl Batching {
    /// Up to `max` writes a batch, the oldest gathering others for a millisecond unless there
    /// are 16 already.
    pub(super) const fn up_to(max: usize) -> Self {
        Self {
            max,
            gather_for: Duration::from_millis(1),
            enough: 16,
        }
    }
}

/// When the WAL the batch thread's commits grow is copied into the database file.
#[derive(Debug, Clone, Copy)]
pub(super) struct CheckpointBounds {
    /// Frames the commits add before the checkpoint thread is asked to copy them (SQLite's
    /// own automatic checkpoint comes at 1,000).
    pub(super) every: c_int,
    /// The WAL's size, in frames, past which the batch thread checkpoints itself after each
    /// of its commits, once the checkpoint thread is idle (at once past twice this), until
    /// the log restarts from its beginning.
    pub(super) catch_up: c_int,
}

impl CheckpointBounds {
    /// A checkpoint every 1,000 frames (4 MiB of pages), the log restarted past 16,000
    /// (64 MiB): each restart stalls the batch thread for a few milliseconds, about once a
    /// second at the peak on two cores (round 24 of `docs/performance.md`).
    pub(super) const DEFAULT: Self = Self {
        every: 1_000,
        catch_up: 16_000,
    };
}

thread_local! {
    /// The WAL's size in frames after this thread's last commit, as SQLite's WAL hook gave it.
    static WAL_FRAMES: Cell<c_int> = const { Cell::new(0) };
}

/// The batch connection's WAL hook: notes the log's size for [`Checkpoints::after_commit`].
fn note_wal_frames(_: &Wal, frames: c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(frames);
    Ok(())
}

/// The checkpoints of the batch thread's commits, which copy the WAL's pages into the database
/// file on a thread of their own.
///
/// SQLite's automatic checkpoint runs inside the commit that takes the log past 1,000 frames:
/// the committing thread reads each page back from the log, writes it into the database file
/// and syncs that, while the batch's turns wait and the next batch piles up. On a grown
/// database that was a fifth of the batch thread's CPU, and every write waits for that
/// thread. Here the copy goes to the checkpoint thread, which runs beside it. A checkpoint
/// copies what was committed when it began, but the log only restarts from its beginning when
/// a write begins with nothing left to copy, which steady commits on another thread never
/// leave; so past [`CheckpointBounds::catch_up`] the batch thread copies the rest itself
/// between two of its commits, once the checkpoint thread is idle.
///
/// That catch-up is what every write waits for, so the checkpoint thread leaves it little to
/// do. SQLite syncs the database file only after a checkpoint that left nothing to copy, which
/// the batch thread's commits during the copy prevent: the pages the checkpoint thread copied
/// piled up unsynced, and the catch-up's sync wrote them all out, 10 to 16 ms at the peak on
/// the machine of round 24 of `docs/performance.md`. So the checkpoint thread syncs the file
/// after each of its checkpoints, and checkpoints again while the commits made meanwhile are
/// many, so that the catch-up copies and syncs only the last few.
struct Checkpoints {
    /// Asks the checkpoint thread for a checkpoint; dropped with the batch thread, which ends
    /// the checkpoint thread.
    ask: mpsc::SyncSender<()>,
    bounds: CheckpointBounds,
    /// The WAL's size when the checkpoint thread was last asked.
    asked_at: c_int,
    /// What the checkpoint thread and the batch thread share.
    progress: Arc<Progress>,
    /// Where the log's restarts and the batch thread's own checkpoints are counted.
    counters: Arc<Counters>,
}

/// What the batch thread tells the checkpoint thread, and back.
#[derive(Debug, Default)]
struct Progress {
    /// The WAL's size, in frames, after the batch thread's latest commit.
    frames: AtomicI32,
    /// Whether the checkpoint thread was asked and has not finished.
    running: AtomicBool,
}

/// The most checkpoints the checkpoint thread runs for one ask.
const ROUNDS_PER_ASK: usize = 4;

impl Checkpoints {
    /// Has `batches`, the batch thread's connection, note the WAL's size at each commit
    /// instead of checkpointing it (a WAL hook replaces SQLite's automatic checkpoint on it),
    /// and starts the checkpoint thread on a connection of its own to the database at `path`.
    fn start(
        batches: &Connection,
        path: &Path,
        busy_timeout: Duration,
        bounds: CheckpointBounds,
        counters: Arc<Counters>,
    ) -> Result<Self> {
        batches.wal_hook(Some(note_wal_frames));
        let connection = open(path, busy_timeout, "PRAGMA synchronous = FULL;", 1)?;
        let database = std::fs::File::open(path)?;
        let progress = Arc::new(Progress::default());
        let shared = progress.clone();
        // Little enough for the batch thread to copy and sync between two commits.
        let few = (bounds.every / 8).max(1);
        let (ask, asked) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("nudge-sqlite-checkpoints".into())
            .spawn(move || {
                while asked.recv().is_ok() {
                    for _ in 0..ROUNDS_PER_ASK {
                        let Some(copied_to) = checkpoint(&connection) else {
                            break;
                        };
                        if let Err(error) = database.sync_data() {
                            tracing::warn!(%error, "the SQLite database file could not be synced");
                            break;
                        }
                        // Frames committed during the copy (none if the log restarted).
                        let since = shared
                            .frames
                            .load(Ordering::Acquire)
                            .saturating_sub(copied_to);
                        if since < few {
                            break;
                        }
                    }
                    shared.running.store(false, Ordering::Release);
                }
            })?;
        Ok(Self {
            ask,
            bounds,
            asked_at: 0,
            progress,
            counters,
        })
    }

    /// After each of the batch thread's transactions on `connection`, once its turns are
    /// woken: asks for a checkpoint every [`CheckpointBounds::every`] frames; past
    /// [`CheckpointBounds::catch_up`] checkpoints on `connection` so that the log restarts,
    /// once the checkpoint thread is done (or at once past twice that bound).
    fn after_commit(&mut self, connection: &Connection) {
        let frames = WAL_FRAMES.get();
        let before = self.progress.frames.swap(frames, Ordering::AcqRel);
        if frames < before {
            // The log restarted from its beginning.
            self.counters.log_restarted();
            self.asked_at = 0;
        }
        let running = self.progress.running.load(Ordering::Acquire);
        if frames >= self.bounds.catch_up {
            if !running || frames / 2 >= self.bounds.catch_up {
                let started = Instant::now();
                checkpoint(connection);
                self.counters.caught_up(started.elapsed());
            }
        } else if !running && frames >= self.asked_at.saturating_add(self.bounds.every) {
            self.asked_at = frames;
            self.progress.running.store(true, Ordering::Release);
            if self.ask.try_send(()).is_err() {
                self.progress.running.store(false, Ordering::Release);
            }
        }
    }
}

/// Copies the WAL's committed pages into the database file without waiting for readers or
/// writers (SQLite syncs the file if that left nothing to copy), and gives back the log's
/// size it copied up to; `None` if another connection's checkpoint was running, or on an
/// error.
fn checkpoint(connection: &Connection) -> Option<c_int> {
    let outcome = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get::<_, c_int>(0)?, row.get::<_, c_int>(1)?))
    });
    match outcome {
        Ok((0, log)) => Some(log),
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(%error, "a checkpoint of the SQLite WAL failed");
            None
        }
    }
}

/// A write as [`run_batch`] runs it: bodies and its summary sealed, every value encoded as
/// sqlx would bind it.
fn encode(sealer: &Sealer, write: &MessageWrite) -> Result<Encoded> {
    let usage_row = |u: &NewSmsUsage| -> Result<RowUsage> {
        Ok(RowUsage {
            direction: u.direction.as_str(),
            segments: segments_column(u.segments)?,
            encoding: u.encoding.as_str(),
            estimated_cost_micros: u.estimated_cost_micros,
        })
    };
    let user = write.user;
    let entry =
        |m: &NewMessage, usage: &[NewSmsUsage], model_usage: &[NewLlmUsage]| -> Result<Entry> {
            let (on_row, rows) = split_usage(m, usage);
            Ok(Entry {
                message: RowMessage {
                    channel: m.channel.as_str(),
                    direction: m.direction.as_str(),
                    body: sealer.seal_column(BODY_COLUMN, user, &m.body),
                    provider_message_id: m.provider_message_id.clone(),
                    in_reply_to: m.in_reply_to,
                    usage: on_row.map(usage_row).transpose()?,
                },
                usage: rows.iter().map(usage_row).collect::<Result<_>>()?,
                model_usage: model_usage.to_vec(),
            })
        };
    let reply = match &write.reply {
        Some(r) => Some(entry(&r.message, &r.usage, &r.model_usage)?),
        None => None,
    };
    let summary = match &write.summary {
        Some(fold) => {
            let (sealed, folded) = fold_columns(sealer, user, fold)?;
            Some(SummaryRow {
                sealed,
                through: fold.through_message_id,
                folded,
            })
        }
        None => None,
    };
    Ok(Encoded {
        user: user.0,
        message: entry(&write.message, &write.usage, &write.model_usage)?,
        reply,
        summary,
        fold_usage: write
            .summary
            .as_ref()
            .map(|fold| fold.model_usage.clone())
            .unwrap_or_default(),
    })
}

/// What became of a batch.
#[derive(Debug)]
struct BatchOutcome {
    /// Per write, how it was stored.
    stored: Vec<Stored>,
    /// The memory fingerprint of each user with memories.
    fingerprints: Vec<(Uuid, MemoryFingerprint)>,
}

/// Runs `writes` in one transaction, stamped `created_at`; with `fingerprints`, reads their
/// users' memory fingerprints in it too.
fn run_batch<'a>(
    connection: &mut Connection,
    writes: &'a [Encoded],
    fingerprints: bool,
    created_at: DateTime<Utc>,
) -> rusqlite::Result<BatchOutcome> {
    // As sqlx encodes a time stamp for SQLite (RFC 3339 text).
    let created_at = created_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
    // IMMEDIATE: take the write lock at BEGIN (waiting up to the busy timeout), so that no
    // statement of the batch meets a lock it cannot wait for.
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcome = BatchOutcome {
        stored: Vec::with_capacity(writes.len()),
        fingerprints: Vec::new(),
    };
    {
        let mut insert = tx.prepare_cached(INSERT_MESSAGE_ROW)?;
        let mut model_usage = tx.prepare_cached(INSERT_LLM_USAGE_ROW)?;
        let created_at = created_at.as_str();
        // The new row's id, or `None` for a copy the conflict clause skipped.
        let mut insert_message =
            |user: &[u8], m: &RowMessage, in_reply_to: Option<i64>| -> rusqlite::Result<_> {
                let usage = m.usage.as_ref();
                let inserted = insert.execute(params![
                    user,
                    m.channel,
                    m.direction,
                    m.body,
                    m.provider_message_id,
                    in_reply_to,
                    created_at,
                    usage.map(|u| u.segments),
                    usage.map(|u| u.encoding),
                    usage.map(|u| u.estimated_cost_micros)
                ])?;
                Ok((inserted == 1).then(|| tx.last_insert_rowid()))
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
        // SMS usage rows go in after the messages, a few statements for them all.
        let mut usage_rows: Vec<UsageRow<'_>> = Vec::with_capacity(2 * writes.len());
        let mut insert_usage =
            |user: &'a [u8], message_id: i64, entry: &'a Entry| -> rusqlite::Result<()> {
                usage_rows.extend(entry.usage.iter().map(|usage| UsageRow {
                    user,
                    message_id,
                    usage,
                }));
                for u in &entry.model_usage {
                    insert_model_usage(user, Some(message_id), u)?;
                }
                Ok(())
            };
        for row in writes {
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
        insert_usage_rows(&tx, &usage_rows, created_at)?;
        for write in writes {
            for u in &write.fold_usage {
                insert_model_usage(write.user.as_bytes().as_slice(), None, u)?;
            }
        }
        let folds = newest_folds(
            writes
                .iter()
                .filter_map(|w| w.summary.as_ref().map(|s| (w.user, s))),
            |fold: &SummaryRow| fold.through,
        );
        if !folds.is_empty() {
            let mut save = tx.prepare_cached(SAVE_SUMMARY)?;
            for (user, fold) in folds {
                save.execute(params![
                    user.as_bytes().as_slice(),
                    fold.sealed,
                    fold.through,
                    fold.folded,
                    created_at
                ])?;
            }
        }
        if fingerprints {
            let mut users: Vec<Uuid> = writes.iter().map(|w| w.user).collect();
            users.sort_unstable();
            users.dedup();
            let mut read = tx.prepare_cached(FINGERPRINT)?;
            for user in &users {
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

/// An SMS usage row of a batch, for the message `message_id` of `user`'s.
struct UsageRow<'a> {
    user: &'a [u8],
    message_id: i64,
    usage: &'a RowUsage,
}

/// How many SMS usage rows go in one statement, largest first. Each statement opens the
/// table's indexes and reads and writes back its `AUTOINCREMENT` sequence once, whatever its
/// rows: one statement per row did all of that for each.
const USAGE_ROWS_PER_STATEMENT: [usize; 3] = [32, 8, 1];
/// The values of a usage row, in [`INSERT_SMS_USAGE_ROWS`]' order.
const USAGE_COLUMNS: usize = 7;

/// The statements inserting [`USAGE_ROWS_PER_STATEMENT`] usage rows each.
static INSERT_USAGE_ROWS: LazyLock<[String; 3]> = LazyLock::new(|| {
    let row = format!("({})", ["?"; USAGE_COLUMNS].join(", "));
    USAGE_ROWS_PER_STATEMENT.map(|rows| {
        let values = vec![row.as_str(); rows].join(", ");
        format!("{INSERT_SMS_USAGE_ROWS}VALUES {values}")
    })
});

/// Inserts `rows`, stamped `created_at`, in the fewest statements of
/// [`USAGE_ROWS_PER_STATEMENT`] rows, in their order.
fn insert_usage_rows(
    tx: &rusqlite::Transaction<'_>,
    rows: &[UsageRow<'_>],
    created_at: &str,
) -> rusqlite::Result<()> {
    let mut rest = rows;
    for (size, sql) in USAGE_ROWS_PER_STATEMENT
        .iter()
        .zip(INSERT_USAGE_ROWS.iter())
    {
        while rest.len() >= *size {
            let (chunk, tail) = rest.split_at(*size);
            let mut statement = tx.prepare_cached(sql)?;
            for (i, row) in chunk.iter().enumerate() {
                let at = i * USAGE_COLUMNS;
                statement.raw_bind_parameter(at + 1, row.user)?;
                statement.raw_bind_parameter(at + 2, row.message_id)?;
                statement.raw_bind_parameter(at + 3, row.usage.direction)?;
                statement.raw_bind_parameter(at + 4, row.usage.segments)?;
                statement.raw_bind_parameter(at + 5, row.usage.encoding)?;
                statement.raw_bind_parameter(at + 6, row.usage.estimated_cost_micros)?;
                statement.raw_bind_parameter(at + 7, created_at)?;
            }
            statement.raw_execute()?;
            rest = tail;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use super::super::tests::{create, note, turn};
    use super::*;
    use crate::store::{Direction, SmsEncoding, Store, connect};

    /// A frame of the WAL: its header and a page.
    const FRAME: u64 = 24 + 4096;

    /// A migrated database file in `dir` with a user and an empty log, and a batch thread of
    /// its own on that file (beside the store's, which stays idle), checkpointing within
    /// `bounds`.
    async fn batch_thread(dir: &Path, bounds: CheckpointBounds) -> (Store, BatchThread, UserId) {
        batch_thread_making(dir, Batching::up_to(8), bounds).await
    }

    /// As [`batch_thread`], its batches made as `batching` says.
    async fn batch_thread_making(
        dir: &Path,
        batching: Batching,
        bounds: CheckpointBounds,
    ) -> (Store, BatchThread, UserId) {
        let path = dir.join("nudge.db");
        let store = connect(&format!("sqlite://{}", path.display()), Sealer::generate())
            .await
            .expect("the store opens");
        let user = create(&store, 1).await.id;
        // The migrations' frames copied out and the log emptied, so that what follows is the
        // batch thread's alone.
        let setup = Connection::open(&path).expect("a connection");
        setup
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("the log is emptied");
        let thread = BatchThread::start(
            &path,
            Duration::from_secs(5),
            Sealer::generate(),
            batching,
            bounds,
        )
        .expect("the batch thread starts");
        (store, thread, user)
    }

    /// Commits `count` writes of `user`'s one after the other, each its own batch.
    async fn commit(thread: &BatchThread, user: UserId, count: usize) {
        for n in 0..count {
            let write = note(user, &format!("{n}: {}", "a long note ".repeat(80)));
            thread.commit(write).await.expect("the write commits");
        }
    }

    /// As [`batch_thread`], the oldest write of a batch gathering others for `gather_for`
    /// unless there are `enough`.
    async fn gathering_thread(
        dir: &Path,
        gather_for: Duration,
        enough: usize,
    ) -> (Store, BatchThread, UserId) {
        let batching = Batching {
            max: 8,
            gather_for,
            enough,
        };
        batch_thread_making(dir, batching, CheckpointBounds::DEFAULT).await
    }

    #[tokio::test]
    async fn a_write_that_wakes_the_thread_gathers_others_before_its_batch_starts() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (_store, thread, user) =
            gathering_thread(dir.path(), Duration::from_millis(300), 16).await;
        let first = thread.commit(note(user, "first"));
        let second = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            thread.commit(note(user, "second")).await
        };
        let (first, second) = tokio::join!(first, second);
        first.expect("the first write commits");
        second.expect("the second write commits");
        let stats = thread.counters().stats();
        assert_eq!(
            (stats.batches, stats.writes),
            (1, 2),
            "a write handed off 50 ms after the first joins its batch: {stats:?}"
        );
    }

    #[tokio::test]
    async fn a_batch_with_enough_writes_starts_without_gathering() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (_store, thread, user) = gathering_thread(dir.path(), Duration::from_secs(60), 1).await;
        tokio::time::timeout(Duration::from_secs(10), thread.commit(note(user, "alone")))
            .await
            .expect("one write is enough: its batch does not wait a minute")
            .expect("the write commits");
    }

    #[tokio::test]
    async fn a_batchs_usage_rows_are_stored_in_order_whatever_their_number() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (store, thread, ana) = batch_thread(dir.path(), CheckpointBounds::DEFAULT).await;
        drop(thread);
        let bob = create(&store, 2).await.id;
        let sealer = Sealer::generate();
        let usage = |direction, segments| NewSmsUsage {
            direction,
            segments,
            encoding: SmsEncoding::Gsm7,
            estimated_cost_micros: 7_900,
        };
        // 41 turns of two users. Each inbound message carries its usage on its own row; each
        // reply went out as two SMS, so its usage is two usage rows: 82 rows, which go in by
        // 32, 8 and 1.
        let writes: Vec<Encoded> = (0..41u32)
            .map(|n| {
                let write = turn(
                    if n % 2 == 0 { ana } else { bob },
                    (
                        &format!("turn {n}"),
                        &format!("SM{n:032}"),
                        vec![usage(Direction::Inbound, n + 1)],
                    ),
                    (
                        &format!("reply {n}"),
                        vec![
                            usage(Direction::Outbound, 100 + n),
                            usage(Direction::Outbound, 200 + n),
                        ],
                    ),
                );
                encode(&sealer, &write).expect("the write encodes")
            })
            .collect();
        let path = dir.path().join("nudge.db");
        let mut connection = open(
            &path,
            Duration::from_secs(5),
            "PRAGMA foreign_keys = ON;",
            BATCH_STATEMENTS,
        )
        .expect("a connection");
        let outcome = run_batch(&mut connection, &writes, false, Utc::now()).expect("it commits");

        for (user, first) in [(ana, 0), (bob, 1)] {
            let rows = store.sms_usage(user).await.expect("the usage reads");
            let expected: Vec<(Option<i64>, Direction, u32)> = (first..41)
                .step_by(2)
                .flat_map(|n| {
                    let Stored::New(message, Some(reply)) = outcome.stored[n as usize] else {
                        panic!("turn {n} was stored with its reply");
                    };
                    [
                        (Some(message), Direction::Inbound, n + 1),
                        (Some(reply), Direction::Outbound, 100 + n),
                        (Some(reply), Direction::Outbound, 200 + n),
                    ]
                })
                .collect();
            let stored: Vec<_> = rows
                .iter()
                .map(|row| (row.message_id, row.direction, row.segments))
                .collect();
            assert_eq!(stored, expected, "each row points at its message, in order");
        }
        let count = |sql: &str| -> i64 {
            connection
                .query_row(sql, [], |row| row.get(0))
                .expect("a count")
        };
        assert_eq!(count("SELECT COUNT(*) FROM sms_usage_logs"), 82);
        assert_eq!(
            count("SELECT COUNT(*) FROM messages WHERE sms_segments IS NOT NULL"),
            41,
            "the inbound messages carry theirs"
        );
    }

    fn size(path: PathBuf) -> u64 {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }

    #[tokio::test]
    async fn the_checkpoint_thread_copies_the_log_into_the_database_file() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // The batch thread never checkpoints itself: only the checkpoint thread can.
        let bounds = CheckpointBounds {
            every: 8,
            catch_up: c_int::MAX,
        };
        let (_store, thread, user) = batch_thread(dir.path(), bounds).await;
        let before = size(dir.path().join("nudge.db"));
        commit(&thread, user, 40).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while size(dir.path().join("nudge.db")) <= before {
            assert!(
                Instant::now() < deadline,
                "the database file grows with the pages copied out of the log"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn the_batch_thread_restarts_a_log_that_keeps_growing() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // The checkpoint thread is never asked: only the batch thread's own checkpoints
        // restart the log.
        let bounds = CheckpointBounds {
            every: c_int::MAX,
            catch_up: 32,
        };
        let (_store, thread, user) = batch_thread(dir.path(), bounds).await;
        // Each write is a commit of a few frames: 300 of them would leave well over a
        // thousand frames in a log that never restarts.
        commit(&thread, user, 300).await;
        let wal = size(dir.path().join("nudge.db-wal"));
        assert!(
            wal <= 32 + 96 * FRAME,
            "the log restarts once past 32 frames, so it never holds many more: {wal} bytes"
        );
        let stats = thread.counters().stats();
        assert!(
            stats.log_restarts >= 5,
            "well over a thousand frames in logs of a few dozen: {stats:?}"
        );
        assert!(
            stats.catch_up_checkpoints >= stats.log_restarts,
            "every restart follows a checkpoint of the batch thread's: {stats:?}"
        );
    }

    #[tokio::test]
    async fn a_log_stays_within_twice_its_catch_up_bound_while_the_checkpoint_thread_works() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let bounds = CheckpointBounds {
            every: 8,
            catch_up: 32,
        };
        let (_store, thread, user) = batch_thread(dir.path(), bounds).await;
        commit(&thread, user, 300).await;
        let wal = size(dir.path().join("nudge.db-wal"));
        assert!(
            wal <= 32 + (2 * 32 + 96) * FRAME,
            "past twice the bound the batch thread catches up without waiting: {wal} bytes"
        );
        let stats = thread.counters().stats();
        assert!(stats.log_restarts >= 5, "{stats:?}");
    }

    /// Runs [`sync_after_commits`] on a thread whose syncs each report that they started and
    /// wait to be released, then give the next of `results` (success once those run out).
    fn sync_thread(
        results: Vec<std::io::Result<()>>,
    ) -> (
        mpsc::Sender<Unsynced>,
        mpsc::Receiver<()>,
        mpsc::SyncSender<()>,
        std::thread::JoinHandle<()>,
    ) {
        let (unsynced, committed) = mpsc::channel();
        let (started, syncing) = mpsc::channel();
        let (release, released) = mpsc::sync_channel(16);
        let mut results = results.into_iter();
        let thread = std::thread::spawn(move || {
            let sync = || {
                let _ = started.send(());
                released
                    .recv_timeout(Duration::from_secs(10))
                    .expect("the test releases each sync");
                results.next().unwrap_or(Ok(()))
            };
            sync_after_commits(sync, &committed, &Counters::new());
        });
        (unsynced, syncing, release, thread)
    }

    /// A transaction of a caller's that committed, and what its caller hears.
    fn together() -> (Unsynced, oneshot::Receiver<Result<Vec<Landed>>>) {
        let (done, outcome) = oneshot::channel();
        let outcome_of_commit = Ok(Vec::new());
        (
            Unsynced::Together {
                outcome: outcome_of_commit,
                done,
            },
            outcome,
        )
    }

    const WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn a_commit_is_acknowledged_only_once_the_log_is_synced_after_it() {
        let (unsynced, syncing, release, thread) = sync_thread(Vec::new());
        let (first, mut first_heard) = together();
        unsynced.send(first).expect("the sync thread runs");
        syncing.recv_timeout(WAIT).expect("a sync starts");
        // Committed while that sync runs: the next sync is for it.
        let (second, mut second_heard) = together();
        unsynced.send(second).expect("the sync thread runs");
        std::thread::sleep(Duration::from_millis(50));
        assert!(first_heard.try_recv().is_err(), "not before its sync ends");

        release.send(()).expect("the sync waits");
        let deadline = Instant::now() + WAIT;
        let first_outcome = loop {
            match first_heard.try_recv() {
                Ok(outcome) => break outcome,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => panic!("the first commit is acknowledged once synced"),
            }
        };
        assert!(first_outcome.is_ok());
        syncing.recv_timeout(WAIT).expect("a second sync starts");
        assert!(
            second_heard.try_recv().is_err(),
            "a commit made during a sync waits for the next one"
        );
        release.send(()).expect("the sync waits");
        drop(unsynced);
        thread
            .join()
            .expect("the sync thread ends once nothing is handed to it");
        assert!(matches!(second_heard.try_recv(), Ok(Ok(_))));
    }

    #[test]
    fn after_a_failed_sync_no_write_is_acknowledged() {
        let failure = std::io::Error::other("the disk is gone");
        let (unsynced, syncing, release, thread) = sync_thread(vec![Err(failure)]);
        // A batch of the writer's, its write committed.
        let write = note(UserId(Uuid::from_u128(7)), "buy milk");
        let encoded = encode(&Sealer::generate(), &write).expect("the write encodes");
        let (done, mut batch_heard) = oneshot::channel();
        let taken = writer::Taken::new(vec![Pending::new(encoded, done)]);
        let landed = Landed {
            stored: Stored::New(1, None),
            created_at: Utc::now(),
            memories: MemoryFingerprint::default(),
        };
        unsynced
            .send(Unsynced::Grouped {
                taken,
                committed: Instant::now(),
                outcomes: vec![Ok(landed)],
            })
            .expect("the sync thread runs");
        syncing.recv_timeout(WAIT).expect("a sync starts");
        release.send(()).expect("the sync waits");
        // Committed after the failure: a later sync would succeed, but is not even tried.
        let (later, mut later_heard) = together();
        unsynced.send(later).expect("the sync thread runs");
        drop(unsynced);
        thread
            .join()
            .expect("the sync thread ends once nothing is handed to it");

        let error = batch_heard
            .try_recv()
            .expect("the batch's turn hears")
            .expect_err("its write is not acknowledged");
        assert!(error.to_string().contains("could not be synced"), "{error}");
        assert!(
            matches!(later_heard.try_recv(), Ok(Err(_))),
            "nor is any write committed after"
        );
        assert!(
            syncing.try_recv().is_err(),
            "no sync is tried after a failed one"
        );
    }
}
