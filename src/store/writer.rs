//! The group-commit writer: many turns' messages in one transaction.
//!
//! A turn is durable before its reply leaves, but committing each turn on its own caps a node
//! at a few percent of what its HTTP layer can do: every commit pays a sync to disk (SQLite)
//! or a round trip and a WAL flush (PostgreSQL), and sqlx-sqlite hands every statement to its
//! worker thread. So turns hand their rows to one [`StoreWriter`] task, which takes everything
//! waiting (up to [`WriterOptions::max_batch`] writes), stores it with
//! [`Store::commit_messages`] (one transaction, one multi-row statement per table), then wakes
//! each waiting turn with its own result.
//!
//! On a SQLite file database each turn hands its write straight to the store's batch thread,
//! which batches, commits and wakes the turns itself (see `sqlite_batch`): a write then
//! crosses no runtime queue on its way to the disk and back. Elsewhere (PostgreSQL, an
//! in-memory database) a task of the runtime takes them.
//!
//! Nothing waits for a batch to fill: a lone write is committed at once, and writes that
//! arrive during a commit form the next batch, so batches grow with the load and latency
//! stays that of one commit when the node is quiet.
//!
//! One faulty write must not fail the others: a retried webhook's copy comes back as
//! [`Written::Duplicate`] without failing the batch, and when a batch fails for any other
//! reason its writes are retried one transaction each, so only the faulty one fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus::{Histogram, HistogramOpts};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use super::sqlite_batch::BatchThread;
use super::{Backend, Committed, MessageWrite, Result, Store, StoreError};

/// How the writer batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// Most writes one transaction takes.
    pub max_batch: usize,
    /// Transactions committing at once. SQLite has one writer at a time whatever the number
    /// of connections, so 1. PostgreSQL commits several in parallel, each on a connection;
    /// two keep one batch filling while the other commits, where four split the same load
    /// into smaller batches that cost the database more per turn (docs/performance.md,
    /// round 6).
    pub concurrent_batches: usize,
}

impl WriterOptions {
    /// The options that suit a backend.
    pub fn for_backend(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self {
                max_batch: 1_000,
                concurrent_batches: 1,
            },
            Backend::Postgres => Self {
                max_batch: 1_000,
                concurrent_batches: 2,
            },
        }
    }
}

/// Counters of the writer's work since it started, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed (or failed) with more than zero writes.
    pub batches: u64,
    /// Writes handled, whatever their outcome.
    pub writes: u64,
    /// Batches that failed as a whole and were retried one write at a time.
    pub split_batches: u64,
    /// The largest batch so far.
    pub largest_batch: u64,
    /// Time spent committing, summed over batches (with one committer, busy time over wall
    /// time is how saturated the writer is). On SQLite the log's sync that makes a batch
    /// durable comes after, on another thread, and is not counted here.
    pub busy_micros: u64,
    /// Time writes waited for their batch to start, summed over writes (over `writes`: how
    /// long a turn queues for the writer before its own commit).
    pub queue_wait_micros: u64,
    /// SQLite only: times the WAL restarted from its beginning, after being copied whole into
    /// the database file.
    pub log_restarts: u64,
    /// SQLite only: checkpoints the batch thread ran itself, between two of its commits, to
    /// get a long log restarted.
    pub catch_up_checkpoints: u64,
    /// SQLite only: time those checkpoints took, while the next batch waited.
    pub catch_up_micros: u64,
}

#[derive(Debug)]
pub(super) struct Counters {
    batches: AtomicU64,
    writes: AtomicU64,
    split_batches: AtomicU64,
    largest_batch: AtomicU64,
    busy_micros: AtomicU64,
    queue_wait_micros: AtomicU64,
    log_restarts: AtomicU64,
    catch_up_checkpoints: AtomicU64,
    catch_up_micros: AtomicU64,
    /// How long each batch took to commit, until its rows were durable: its tail is what a
    /// slow disk or a stalled database adds to a turn, which the sums above average away.
    commit_seconds: Histogram,
    /// How long each write took from its hand-off to its batch's commit: what the writer adds
    /// to a turn. Weighted by writes, not batches, so a slow commit counts once for each turn
    /// that waited on it (its own batch's and the next's, which piled up behind it).
    write_seconds: Histogram,
}

/// Bounds of the commit-time histogram's buckets, in seconds: a quiet commit takes about a
/// millisecond (an `fsync`, or a round trip and a WAL flush), a loaded one a few.
const COMMIT_BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5,
];

/// Bounds of the write-time histogram's buckets, in seconds: a write waits for the batch
/// committing before its own, then for its own, and a turn's reply is due within 20 ms at half
/// the node's peak.
const WRITE_BUCKETS: [f64; 14] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5,
];

impl Counters {
    pub(super) fn new() -> Self {
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
                .expect("a fixed name, help and increasing buckets")
        };
        Self {
            batches: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            split_batches: AtomicU64::new(0),
            largest_batch: AtomicU64::new(0),
            busy_micros: AtomicU64::new(0),
            queue_wait_micros: AtomicU64::new(0),
            log_restarts: AtomicU64::new(0),
            catch_up_checkpoints: AtomicU64::new(0),
            catch_up_micros: AtomicU64::new(0),
            commit_seconds: histogram(
                "nudge_store_writer_commit_seconds",
                "Time each batch of the group-commit writer took to commit, until its rows were durable.",
                &COMMIT_BUCKETS,
            ),
            write_seconds: histogram(
                "nudge_store_writer_write_seconds",
                "Time from a write's hand-off to the group-commit writer to its batch's commit.",
                &WRITE_BUCKETS,
            ),
        }
    }

    /// What they count so far.
    pub(super) fn stats(&self) -> WriterStats {
        WriterStats {
            batches: self.batches.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            split_batches: self.split_batches.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
            busy_micros: self.busy_micros.load(Ordering::Relaxed),
            queue_wait_micros: self.queue_wait_micros.load(Ordering::Relaxed),
            log_restarts: self.log_restarts.load(Ordering::Relaxed),
            catch_up_checkpoints: self.catch_up_checkpoints.load(Ordering::Relaxed),
            catch_up_micros: self.catch_up_micros.load(Ordering::Relaxed),
        }
    }

    /// Counts a restart of SQLite's WAL from its beginning.
    pub(super) fn log_restarted(&self) {
        self.log_restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a checkpoint the batch thread ran itself, which took `took`.
    pub(super) fn caught_up(&self, took: Duration) {
        self.catch_up_checkpoints.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.catch_up_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts a batch whose writes were handed off at `queued`, which started at `started`,
    /// was committed (or refused) at `committed`, and was durable at `done`: the committer was
    /// busy with it until `committed`, its turns waited until `done`.
    fn record(&self, queued: &[Instant], started: Instant, committed: Instant, done: Instant) {
        let size = queued.len() as u64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(size, Ordering::Relaxed);
        self.largest_batch.fetch_max(size, Ordering::Relaxed);
        let waited: u128 = queued
            .iter()
            .map(|&queued_at| started.saturating_duration_since(queued_at).as_micros())
            .sum();
        let waited = u64::try_from(waited).unwrap_or(u64::MAX);
        self.queue_wait_micros.fetch_add(waited, Ordering::Relaxed);
        let took = done.saturating_duration_since(started);
        self.commit_seconds.observe(took.as_secs_f64());
        let writes = self.write_seconds.local();
        for &queued_at in queued {
            writes.observe(done.saturating_duration_since(queued_at).as_secs_f64());
        }
        writes.flush();
        let busy = committed.saturating_duration_since(started);
        let busy = u64::try_from(busy.as_micros()).unwrap_or(u64::MAX);
        self.busy_micros.fetch_add(busy, Ordering::Relaxed);
    }
}

/// One write waiting for its batch, with the turn to wake.
pub(super) struct Pending<W = MessageWrite, O = Committed> {
    queued_at: Instant,
    write: W,
    done: oneshot::Sender<Result<O>>,
}

impl<W, O> Pending<W, O> {
    /// `write`, handed off now, its outcome to go through `done`.
    pub(super) fn new(write: W, done: oneshot::Sender<Result<O>>) -> Self {
        Self {
            queued_at: Instant::now(),
            write,
            done,
        }
    }

    /// When the write was handed off.
    pub(super) fn queued_at(&self) -> Instant {
        self.queued_at
    }
}

/// A batch taken from the queue: its writes, when each was handed off, and whom to wake.
pub(super) struct Taken<W, O> {
    started: Instant,
    queued: Vec<Instant>,
    pub(super) writes: Vec<W>,
    waiting: Vec<oneshot::Sender<Result<O>>>,
}

impl<W, O> Taken<W, O> {
    /// Takes `batch`, its commit starting now.
    pub(super) fn new(batch: Vec<Pending<W, O>>) -> Self {
        let mut taken = Self {
            started: Instant::now(),
            queued: Vec::with_capacity(batch.len()),
            writes: Vec::with_capacity(batch.len()),
            waiting: Vec::with_capacity(batch.len()),
        };
        for pending in batch {
            taken.queued.push(pending.queued_at);
            taken.writes.push(pending.write);
            taken.waiting.push(pending.done);
        }
        taken
    }

    /// Counts the batch, its commit done, and wakes each turn with its write's outcome
    /// (`outcomes` in the writes' order).
    pub(super) fn finish(self, outcomes: Vec<Result<O>>, counters: &Counters) {
        self.finish_synced(Instant::now(), outcomes, counters);
    }

    /// Counts the batch, committed at `committed` and durable now (its log synced by another
    /// thread than the one that committed it), and wakes each turn with its write's outcome.
    pub(super) fn finish_synced(
        self,
        committed: Instant,
        outcomes: Vec<Result<O>>,
        counters: &Counters,
    ) {
        counters.record(&self.queued, self.started, committed, Instant::now());
        for (waiting, outcome) in self.waiting.into_iter().zip(outcomes) {
            // The turn may have given up waiting: its rows are stored all the same.
            let _ = waiting.send(outcome);
        }
    }
}

/// Each write's outcome from its batch's transaction; or, when that transaction failed and
/// held several writes, its error: the writes are then stored one by one.
pub(super) fn as_a_whole<O>(
    writes: usize,
    result: Result<Vec<O>>,
) -> std::result::Result<Vec<Result<O>>, StoreError> {
    match result {
        Ok(outcomes) => Ok(outcomes.into_iter().map(Ok).collect()),
        Err(error) if writes == 1 => Ok(vec![Err(error)]),
        Err(error) => Err(error),
    }
}

/// Logs and counts a batch refused as a whole, whose writes are to be stored one by one.
pub(super) fn splitting(error: &StoreError, writes: usize, counters: &Counters) {
    tracing::warn!(%error, writes, "batch refused; storing its writes one by one");
    counters.split_batches.fetch_add(1, Ordering::Relaxed);
}

/// The outcome of a write stored in a transaction of its own.
pub(super) fn only<O>(result: Result<Vec<O>>) -> Result<O> {
    result.and_then(|outcomes| {
        outcomes
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt("a write gave back no outcome".into()))
    })
}

/// A handle on the group-commit writer (its task, or SQLite's batch thread): cheap to clone,
/// shared by every user actor.
///
/// The task stops once every handle is dropped and the writes already handed to it are
/// stored; the batch thread, once the store is dropped too.
#[derive(Clone)]
pub struct StoreWriter {
    route: Route,
    counters: Arc<Counters>,
}

/// Where the writes go.
#[derive(Clone)]
enum Route {
    /// To the writer task, which commits them through the store.
    Task(mpsc::UnboundedSender<Pending>),
    /// Straight to a SQLite file database's batch thread, which commits them itself.
    Thread(Arc<BatchThread>),
}

impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreWriter")
            .field("stats", &self.stats())
            .finish()
    }
}

impl StoreWriter {
    /// Starts the writer of `store`, batching as suits its backend: on a SQLite file
    /// database, its batch thread; elsewhere, a task on the current tokio runtime.
    pub fn start(store: Store) -> Self {
        if let Some(thread) = store.batch_thread() {
            return Self {
                counters: thread.counters(),
                route: Route::Thread(thread),
            };
        }
        let options = WriterOptions::for_backend(store.backend());
        let (queue, receiver) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::new());
        tokio::spawn(run(store, receiver, options, counters.clone()));
        Self {
            route: Route::Task(queue),
            counters,
        }
    }

    /// Stores `write` with the next batch and waits until that batch is committed; gives back
    /// what became of it, with its user's memory fingerprint as of that commit.
    pub async fn write(&self, write: MessageWrite) -> Result<Committed> {
        match &self.route {
            Route::Task(queue) => {
                let (done, outcome) = oneshot::channel();
                queue
                    .send(Pending::new(write, done))
                    .map_err(|_| closed())?;
                outcome.await.map_err(|_| closed())?
            }
            Route::Thread(thread) => thread.commit(write).await,
        }
    }

    /// The histogram of its commits' durations, for a metrics registry to collect.
    pub fn commit_seconds(&self) -> Histogram {
        self.counters.commit_seconds.clone()
    }

    /// The histogram of its writes' times from hand-off to commit, for a metrics registry.
    pub fn write_seconds(&self) -> Histogram {
        self.counters.write_seconds.clone()
    }

    /// What the writer has done so far.
    pub fn stats(&self) -> WriterStats {
        self.counters.stats()
    }
}

/// The writer is gone: its runtime is shutting down, or the store's batch thread has ended.
pub(super) fn closed() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}

/// Takes whatever is waiting, up to a batch, each time a committer is free.
async fn run(
    store: Store,
    mut receiver: mpsc::UnboundedReceiver<Pending>,
    options: WriterOptions,
    counters: Arc<Counters>,
) {
    let max_batch = options.max_batch.max(1);
    let committers = Arc::new(Semaphore::new(options.concurrent_batches.max(1)));
    let mut running = JoinSet::new();
    loop {
        // Wait for a free committer first: meanwhile, writes pile up into the next batch.
        let Ok(permit) = committers.clone().acquire_owned().await else {
            break;
        };
        let mut batch = Vec::with_capacity(max_batch.min(64));
        if receiver.recv_many(&mut batch, max_batch).await == 0 {
            break; // Every handle is gone and nothing waits.
        }
        let store = store.clone();
        let counters = counters.clone();
        running.spawn(async move {
            commit(&store, batch, &counters).await;
            drop(permit);
        });
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}

/// Stores a batch and wakes its writers; on a failure of the whole batch, stores each write
/// on its own so that only the faulty one fails.
async fn commit(store: &Store, batch: Vec<Pending>, counters: &Counters) {
    let taken = Taken::new(batch);
    let whole = store.commit_messages(&taken.writes).await;
    let outcomes = match as_a_whole(taken.writes.len(), whole) {
        Ok(outcomes) => outcomes,
        Err(error) => {
            splitting(&error, taken.writes.len(), counters);
            let mut outcomes = Vec::with_capacity(taken.writes.len());
            for write in &taken.writes {
                outcomes.push(only(
                    store.commit_messages(std::slice::from_ref(write)).await,
                ));
            }
            outcomes
        }
    };
    taken.finish(outcomes, counters);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::on_each_backend;
    use crate::store::tests::{assert_not_found, create, inbound, reply, usage};
    use crate::store::{Message, NewMessage, NewSmsUsage, UserId, Written};

    fn write(user: UserId, message: NewMessage, usage: Vec<NewSmsUsage>) -> MessageWrite {
        MessageWrite {
            user,
            message,
            usage,
            model_usage: Vec::new(),
            summary: None,
            reply: None,
        }
    }

    /// Awaits `writes`, futures of the writer's writes that each hand their write off when
    /// first polled, having made sure they all wait for one batch. The writer task runs on
    /// this test's one thread, so it cannot take any before all are handed off. SQLite's batch
    /// thread can, so it is first held behind SQLite's write lock, in a transaction of the
    /// store's own, until all of them are queued behind that transaction.
    async fn in_one_batch<T>(store: &Store, writes: impl Future<Output = T>) -> T {
        let (Some(_), crate::store::Pool::Sqlite(pool)) = (store.batch_thread(), &store.pool)
        else {
            return writes.await;
        };
        let mut lock = pool.acquire().await.expect("a connection");
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *lock)
            .await
            .expect("the write lock");
        let mut held = std::pin::pin!(store.write_messages(&[]));
        assert!(
            futures::poll!(held.as_mut()).is_pending(),
            "held by the lock"
        );
        let mut writes = std::pin::pin!(writes);
        assert!(
            futures::poll!(writes.as_mut()).is_pending(),
            "all handed off"
        );
        sqlx::query("ROLLBACK")
            .execute(&mut *lock)
            .await
            .expect("the lock released");
        held.await.expect("the holding transaction");
        writes.await
    }

    fn stored(written: Written) -> Message {
        match written {
            Written::Stored(message) => message,
            other => panic!("expected a stored message, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_batch_stores_many_users_messages_in_order_with_their_usage_rows() {
        on_each_backend(|store| async move {
            let alice = create(&store, 1).await.id;
            let bob = create(&store, 2).await.id;
            let writes = vec![
                write(alice, inbound("a1", Some("SMa1")), vec![usage(1)]),
                write(bob, inbound("b1", None), vec![usage(2), usage(1)]),
                write(alice, inbound("a2", Some("SMa2")), vec![]),
            ];
            let written = store.write_messages(&writes).await.expect("batch");
            let messages: Vec<Message> = written.into_iter().map(stored).collect();
            assert!(messages[0].id < messages[1].id && messages[1].id < messages[2].id);
            assert_eq!(messages[1].user_id, bob);
            assert_eq!(messages[2].provider_message_id.as_deref(), Some("SMa2"));

            let history = store.recent_messages(alice, 10).await.expect("history");
            assert_eq!(history, [messages[0].clone(), messages[2].clone()]);
            let bobs = store.sms_usage(bob).await.expect("usage");
            assert_eq!(bobs.len(), 2);
            assert!(bobs.iter().all(|u| u.message_id == Some(messages[1].id)));
            let alices = store.sms_usage(alice).await.expect("usage");
            assert_eq!(alices.len(), 1);
            assert_eq!(alices[0].message_id, Some(messages[0].id));

            // A reply in a later batch points at its question.
            let answer = write(alice, reply("ok", &messages[0]), vec![usage(1)]);
            let answer = stored(
                store
                    .write_messages(&[answer])
                    .await
                    .expect("reply")
                    .remove(0),
            );
            let found = store
                .reply_to(alice, messages[0].id)
                .await
                .expect("reply_to");
            assert_eq!(found, Some(answer));
        })
        .await;
    }

    #[tokio::test]
    async fn batched_bodies_are_sealed_at_rest() {
        on_each_backend(|store| async move {
            let alice = create(&store, 1).await.id;
            store
                .write_messages(&[write(alice, inbound("meds at 8am", Some("SM9")), vec![])])
                .await
                .expect("write");
            let raw: Vec<String> = crate::store::with_pool!(store, pool => {
                sqlx::query_scalar("SELECT body FROM messages")
                    .fetch_all(pool)
                    .await
                    .expect("raw bodies")
            });
            assert_eq!(raw.len(), 1);
            assert!(
                raw[0].starts_with("v1.") && !raw[0].contains("meds"),
                "{raw:?}"
            );
            let history = store.recent_messages(alice, 1).await.expect("history");
            assert_eq!(history[0].body, "meds at 8am");
        })
        .await;
    }

    #[tokio::test]
    async fn a_retried_provider_id_comes_back_as_the_stored_message_without_failing_the_batch() {
        on_each_backend(|store| async move {
            let alice = create(&store, 1).await.id;
            let bob = create(&store, 2).await.id;
            let first = store
                .write_messages(&[write(alice, inbound("first", Some("SM1")), vec![usage(1)])])
                .await
                .expect("first");
            let first = stored(first.into_iter().next().expect("one outcome"));

            let writes = vec![
                write(alice, inbound("retry", Some("SM1")), vec![usage(1)]),
                write(bob, inbound("same sid, other user", Some("SM1")), vec![]),
                write(alice, inbound("new", Some("SM2")), vec![]),
                write(alice, inbound("new again", Some("SM2")), vec![usage(1)]),
            ];
            let written = store.write_messages(&writes).await.expect("batch");
            assert_eq!(written[0], Written::Duplicate(first.clone()));
            let bobs = stored(written[1].clone());
            assert_eq!(bobs.user_id, bob);
            let new = stored(written[2].clone());
            assert_eq!(written[3], Written::Duplicate(new.clone()));

            let history = store.recent_messages(alice, 10).await.expect("history");
            assert_eq!(history, [first, new]);
            assert_eq!(
                store.sms_usage(alice).await.expect("usage").len(),
                1,
                "duplicates add no usage"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn the_writer_commits_concurrent_writes_in_one_batch_and_wakes_each() {
        on_each_backend(|store| async move {
            let users = [create(&store, 1).await.id, create(&store, 2).await.id];
            let writer = StoreWriter::start(store.clone());
            let writes = (0..20).map(|i| {
                let user = users[i % 2];
                let body = format!("message {i}");
                writer.write(write(user, inbound(&body, None), vec![usage(1)]))
            });
            let written = in_one_batch(&store, futures::future::join_all(writes)).await;
            for (i, written) in written.into_iter().enumerate() {
                let message = stored(written.expect("stored").written);
                assert_eq!(message.body, format!("message {i}"));
                assert_eq!(message.user_id, users[i % 2]);
            }
            let stats = writer.stats();
            assert_eq!(stats.writes, 20);
            assert_eq!(stats.batches, 1, "all twenty waited together: {stats:?}");
            assert_eq!(stats.largest_batch, 20);
            let commits = writer.commit_seconds();
            assert_eq!(commits.get_sample_count(), 1, "one commit timed");
            // The commit is timed until its rows are durable; the writer is busy with it until
            // it is committed, which on SQLite comes before the log's sync (on another thread).
            let busy = stats.busy_micros as f64 / 1e6;
            assert!(
                busy > 0.0 && commits.get_sample_sum() - busy > -1e-5,
                "the commit's time is at least its busy time: {} s, {busy} s",
                commits.get_sample_sum()
            );
            // Each write is timed from its hand-off, which came before its batch's commit.
            let writes = writer.write_seconds();
            assert_eq!(writes.get_sample_count(), 20, "every write timed");
            assert!(
                writes.get_sample_sum() >= 20.0 * commits.get_sample_sum(),
                "each write waited for the whole commit at least: {} s, {} s",
                writes.get_sample_sum(),
                commits.get_sample_sum()
            );
            for user in users {
                assert_eq!(
                    store
                        .recent_messages(user, 50)
                        .await
                        .expect("history")
                        .len(),
                    10
                );
                assert_eq!(store.sms_usage(user).await.expect("usage").len(), 10);
            }
        })
        .await;
    }

    #[tokio::test]
    async fn a_caller_s_own_batch_queued_among_the_writer_s_writes_commits_on_its_own_in_turn() {
        on_each_backend(|store| async move {
            let alice = create(&store, 1).await.id;
            let writer = StoreWriter::start(store.clone());
            let own = [write(alice, inbound("own", None), vec![])];
            let (first, own, last) = in_one_batch(
                &store,
                futures::future::join3(
                    futures::future::join_all([
                        writer.write(write(alice, inbound("one", None), vec![])),
                        writer.write(write(alice, inbound("two", Some("SM2")), vec![])),
                    ]),
                    store.write_messages(&own),
                    // A copy of a write of the first batch, stored by now.
                    writer.write(write(alice, inbound("two again", Some("SM2")), vec![])),
                ),
            )
            .await;
            let first: Vec<Message> = first
                .into_iter()
                .map(|c| stored(c.expect("stored").written))
                .collect();
            let own = stored(own.expect("the caller's batch").remove(0));
            let last = last.expect("the copy").written;
            assert_eq!(last, Written::Duplicate(first[1].clone()));
            let history = store.recent_messages(alice, 10).await.expect("history");
            assert_eq!(history.len(), 3, "{history:?}");
            for message in [&first[0], &first[1], &own] {
                assert!(history.contains(message), "{message:?} in {history:?}");
            }
            let stats = writer.stats();
            assert_eq!(
                stats.writes, 3,
                "the caller's own write is not the writer's"
            );
            if store.batch_thread().is_some() {
                // The thread took the first two together, stopped at the caller's batch, and
                // committed the copy after it.
                assert_eq!(history, [first[0].clone(), first[1].clone(), own]);
                assert_eq!(stats.batches, 2, "{stats:?}");
            }
        })
        .await;
    }

    #[tokio::test]
    async fn a_faulty_write_fails_alone_and_the_rest_of_its_batch_is_stored() {
        on_each_backend(|store| async move {
            let alice = create(&store, 1).await.id;
            let bob = create(&store, 2).await.id;
            let question = stored(
                store
                    .write_messages(&[write(alice, inbound("private", None), vec![])])
                    .await
                    .expect("question")
                    .remove(0),
            );
            let writer = StoreWriter::start(store.clone());
            let outcomes = futures::future::join_all([
                writer.write(write(alice, inbound("fine", None), vec![usage(1)])),
                // A zero-segment usage row breaks a CHECK constraint.
                writer.write(write(alice, inbound("bad usage", None), vec![usage(0)])),
                // Bob cannot reply into Alice's conversation.
                writer.write(write(bob, reply("hijack", &question), vec![])),
                writer.write(write(bob, inbound("also fine", Some("SMb")), vec![])),
            ]);
            let outcomes = in_one_batch(&store, outcomes).await;
            let mut outcomes = outcomes.into_iter();
            let fine = stored(
                outcomes
                    .next()
                    .expect("1")
                    .expect("the first write is stored")
                    .written,
            );
            assert!(
                outcomes.next().expect("2").is_err(),
                "the bad usage row fails"
            );
            assert_not_found(outcomes.next().expect("3"));
            let also_fine = stored(
                outcomes
                    .next()
                    .expect("4")
                    .expect("the last write is stored")
                    .written,
            );
            assert_eq!(writer.stats().split_batches, 1);

            let history = store.recent_messages(alice, 10).await.expect("history");
            assert_eq!(history, [question, fine]);
            assert_eq!(store.sms_usage(alice).await.expect("usage").len(), 1);
            assert_eq!(
                store.recent_messages(bob, 10).await.expect("history"),
                [also_fine]
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_write_to_a_user_that_does_not_exist_is_not_found() {
        on_each_backend(|store| async move {
            let writer = StoreWriter::start(store.clone());
            let nobody = UserId::new();
            let outcome = writer
                .write(write(nobody, inbound("hi", None), vec![]))
                .await;
            assert_not_found(outcome);
        })
        .await;
    }
}
