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
//! Nothing waits for a batch to fill: a lone write is committed at once, and writes that
//! arrive during a commit form the next batch, so batches grow with the load and latency
//! stays that of one commit when the node is quiet.
//!
//! One faulty write must not fail the others: a retried webhook's copy comes back as
//! [`Written::Duplicate`] without failing the batch, and when a batch fails for any other
//! reason its writes are retried one transaction each, so only the faulty one fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use prometheus::{Histogram, HistogramOpts};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

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
    /// time is how saturated the writer is).
    pub busy_micros: u64,
    /// Time writes waited for their batch to start, summed over writes (over `writes`: how
    /// long a turn queues for the writer before its own commit).
    pub queue_wait_micros: u64,
}

#[derive(Debug)]
struct Counters {
    batches: AtomicU64,
    writes: AtomicU64,
    split_batches: AtomicU64,
    largest_batch: AtomicU64,
    busy_micros: AtomicU64,
    queue_wait_micros: AtomicU64,
    /// How long each batch took to commit: its tail is what a slow disk or a stalled
    /// database adds to a turn, which the sums above average away.
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
    fn new() -> Self {
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
            commit_seconds: histogram(
                "nudge_store_writer_commit_seconds",
                "Time each batch of the group-commit writer took to commit.",
                &COMMIT_BUCKETS,
            ),
            write_seconds: histogram(
                "nudge_store_writer_write_seconds",
                "Time from a write's hand-off to the group-commit writer to its batch's commit.",
                &WRITE_BUCKETS,
            ),
        }
    }
}

/// One write waiting for its batch, with the turn to wake.
struct Pending {
    queued_at: Instant,
    write: MessageWrite,
    done: oneshot::Sender<Result<Committed>>,
}

/// A handle on the writer task: cheap to clone, shared by every user actor.
///
/// The task stops once every handle is dropped and the writes already handed to it are
/// stored.
#[derive(Clone)]
pub struct StoreWriter {
    queue: mpsc::UnboundedSender<Pending>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreWriter")
            .field("stats", &self.stats())
            .finish()
    }
}

impl StoreWriter {
    /// Starts the writer of `store` on the current tokio runtime, batching as suits its
    /// backend.
    pub fn start(store: Store) -> Self {
        let options = WriterOptions::for_backend(store.backend());
        Self::start_with(store, options)
    }

    /// Starts the writer of `store` with the given options (a zero in them counts as 1).
    pub fn start_with(store: Store, options: WriterOptions) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::new());
        tokio::spawn(run(store, receiver, options, counters.clone()));
        Self { queue, counters }
    }

    /// Stores `write` with the next batch and waits until that batch is committed; gives back
    /// what became of it, with its user's memory fingerprint as of that commit.
    pub async fn write(&self, write: MessageWrite) -> Result<Committed> {
        let (done, outcome) = oneshot::channel();
        self.queue
            .send(Pending {
                queued_at: Instant::now(),
                write,
                done,
            })
            .map_err(|_| closed())?;
        outcome.await.map_err(|_| closed())?
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
        let c = &self.counters;
        WriterStats {
            batches: c.batches.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            split_batches: c.split_batches.load(Ordering::Relaxed),
            largest_batch: c.largest_batch.load(Ordering::Relaxed),
            busy_micros: c.busy_micros.load(Ordering::Relaxed),
            queue_wait_micros: c.queue_wait_micros.load(Ordering::Relaxed),
        }
    }
}

/// The writer task is gone (its runtime is shutting down).
fn closed() -> StoreError {
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
    let started = Instant::now();
    // Each write's hand-off: its wait for the batch to start, then its time to the commit.
    let queued: Vec<Instant> = batch.iter().map(|p| p.queued_at).collect();
    let waited: u128 = queued
        .iter()
        .map(|&queued_at| started.saturating_duration_since(queued_at).as_micros())
        .sum();
    let waited = u64::try_from(waited).unwrap_or(u64::MAX);
    counters
        .queue_wait_micros
        .fetch_add(waited, Ordering::Relaxed);
    store_batch(store, batch, counters).await;
    let done = Instant::now();
    let took = done.saturating_duration_since(started);
    counters.commit_seconds.observe(took.as_secs_f64());
    let writes = counters.write_seconds.local();
    for queued_at in queued {
        writes.observe(done.saturating_duration_since(queued_at).as_secs_f64());
    }
    writes.flush();
    let busy = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    counters.busy_micros.fetch_add(busy, Ordering::Relaxed);
}

async fn store_batch(store: &Store, batch: Vec<Pending>, counters: &Counters) {
    let size = batch.len() as u64;
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters.writes.fetch_add(size, Ordering::Relaxed);
    counters.largest_batch.fetch_max(size, Ordering::Relaxed);

    let (writes, waiting): (Vec<MessageWrite>, Vec<_>) =
        batch.into_iter().map(|p| (p.write, p.done)).unzip();
    match store.commit_messages(&writes).await {
        Ok(written) => {
            for (done, written) in waiting.into_iter().zip(written) {
                // The turn may have given up waiting: its rows are stored all the same.
                let _ = done.send(Ok(written));
            }
        }
        Err(error) if writes.len() == 1 => {
            if let Some(done) = waiting.into_iter().next() {
                let _ = done.send(Err(error));
            }
        }
        Err(error) => {
            tracing::warn!(%error, writes = writes.len(), "batch refused; storing its writes one by one");
            counters.split_batches.fetch_add(1, Ordering::Relaxed);
            for (write, done) in writes.into_iter().zip(waiting) {
                let result = store
                    .commit_messages(std::slice::from_ref(&write))
                    .await
                    .and_then(|written| {
                        written.into_iter().next().ok_or_else(|| {
                            StoreError::Corrupt("a write gave back no outcome".into())
                        })
                    });
                let _ = done.send(result);
            }
        }
    }
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
            let written = futures::future::join_all(writes).await;
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
            let busy = stats.busy_micros as f64 / 1e6;
            assert!(
                (commits.get_sample_sum() - busy).abs() < 1e-5,
                "the commit's time is its busy time: {} s, {busy} s",
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
            ])
            .await;
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
