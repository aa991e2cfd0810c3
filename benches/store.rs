//! Durable writes of SMS turns, per backend: committing each turn's writes on their own
//! against the group-commit [`StoreWriter`]. A turn writes an inbound message with its usage
//! row, then a reply with its usage row; 64 turns run at once, over a population of 10,240
//! users (no two at once for the same user, as their actors would have it). Criterion's
//! "thrpt" is turns per second.
//!
//! - `three commits per turn`: the path before the writer (insert the message, record its
//!   usage, then the reply and its usage in a transaction);
//! - `two commits per turn`: the writer's statements, one transaction per write, no batching;
//! - `group commit`: the same writes through the writer, batched with other users' writes;
//! - `group commit, one write per turn`: the inbound message carries its reply, so a turn is
//!   one write of the writer's batch (what a turn answered at once does).
//!
//! `SQLite, batches on the pool` runs the last path with the writer's batches handed to the
//! pool statement by statement instead of to their own thread (`src/store/sqlite_batch.rs`).
//!
//! `store/person reads` lists a user's open tasks (one person's read, as the offline rules
//! make on "what's next?"), or reads what their actor starts from (`activation`: the user,
//! summary, recent messages and 20 memories), 16 callers at once over 64 users (and the open
//! tasks by one caller, as on a quiet node), on a SQLite file as a node reads it (the open
//! tasks on the caller's thread, an activation on a reader thread: `src/store/sqlite_reads.rs`)
//! against the same reads on sqlx's pool (`SQLite, calls on the pool`), which pings each
//! connection as it is given back; and on PostgreSQL's scoped connections
//! (`src/store/pg_conns.rs`: the scope, then the statements). Criterion's "thrpt" is reads
//! per second.
//!
//! SQLite runs on a file in WAL mode with `synchronous=FULL` (as `nudge serve` does); the
//! PostgreSQL variants run when `NUDGE_TEST_POSTGRES_URL` names a server (a fresh database is
//! created and dropped).
//!
//! Run with: `cargo bench --bench store` (after `eval "$(scripts/services.sh start)"` for
//! PostgreSQL)

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nudge::actors::user::RECENT_TURNS;
use nudge::loadgen::population;
use nudge::store::{
    self, Channel, Direction, MessageWrite, NewMessage, NewSmsUsage, ReplyWrite, Sealer,
    SmsEncoding, Store, StoreWriter, UserId,
};
use tokio::runtime::Runtime;

/// SQLite with the writer's batches run on the pool, statement by statement (as before they
/// had a thread of their own): the same-run baseline of the batch thread.
const POOLED: &str = "SQLite, batches on the pool";

/// Turns in flight at once.
const CONCURRENT_USERS: u64 = 64;
/// Users the turns go to in turn: many, so that each user's rows stay few, as in production
/// (a few hot users with long histories make every insert slower); a multiple of 64.
const POPULATION: u64 = 10_240;

#[derive(Clone, Copy)]
enum Path {
    ThreeCommits,
    TwoCommits,
    GroupCommit,
    GroupCommitOneWrite,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::ThreeCommits => "three commits per turn",
            Path::TwoCommits => "two commits per turn",
            Path::GroupCommit => "group commit",
            Path::GroupCommitOneWrite => "group commit, one write per turn",
        }
    }
}

fn usage(direction: Direction) -> NewSmsUsage {
    NewSmsUsage {
        direction,
        segments: 1,
        encoding: SmsEncoding::Gsm7,
        estimated_cost_micros: 7_900,
    }
}

fn inbound(n: u64) -> NewMessage {
    NewMessage {
        channel: Channel::Sms,
        direction: Direction::Inbound,
        body: "what's next?".into(),
        provider_message_id: Some(format!(
            "SM{:032x}",
            u128::from(n) << 64 | u128::from(rand_u64())
        )),
        in_reply_to: None,
    }
}

fn rand_u64() -> u64 {
    rand::random()
}

fn reply(to: i64) -> NewMessage {
    NewMessage {
        channel: Channel::Sms,
        direction: Direction::Outbound,
        body: "You have 3 open tasks - next up: pay rent.".into(),
        provider_message_id: None,
        in_reply_to: Some(to),
    }
}

/// One turn's writes for `user` along `path`.
async fn turn(store: &Store, writer: &StoreWriter, path: Path, user: UserId, n: u64) {
    let result = match path {
        Path::ThreeCommits => {
            async {
                let question = store.insert_message(user, &inbound(n)).await?;
                store
                    .record_sms_usage(user, Some(question.id), &usage(Direction::Inbound))
                    .await?;
                store
                    .insert_reply(user, &reply(question.id), &[usage(Direction::Outbound)])
                    .await
                    .map(drop)
            }
            .await
        }
        Path::TwoCommits | Path::GroupCommit => {
            async {
                let write = |message, direction| MessageWrite {
                    user,
                    message,
                    usage: vec![usage(direction)],
                    model_usage: Vec::new(),
                    summary: None,
                    reply: None,
                };
                let question = match path {
                    Path::GroupCommit => {
                        writer
                            .write(write(inbound(n), Direction::Inbound))
                            .await?
                            .written
                    }
                    _ => one(store, write(inbound(n), Direction::Inbound)).await?,
                }
                .into_message();
                let answer = write(reply(question.id), Direction::Outbound);
                match path {
                    Path::GroupCommit => writer.write(answer).await.map(drop),
                    _ => one(store, answer).await.map(drop),
                }
            }
            .await
        }
        Path::GroupCommitOneWrite => writer
            .write(MessageWrite {
                user,
                message: inbound(n),
                usage: vec![usage(Direction::Inbound)],
                model_usage: Vec::new(),
                summary: None,
                reply: Some(ReplyWrite {
                    message: reply(0),
                    usage: vec![usage(Direction::Outbound)],
                    model_usage: Vec::new(),
                }),
            })
            .await
            .map(drop),
    };
    if let Err(error) = result {
        panic!("a benchmark write failed: {error}");
    }
}

async fn one(store: &Store, write: MessageWrite) -> store::Result<store::Written> {
    let mut written = store.write_messages(&[write]).await?;
    written
        .pop()
        .ok_or_else(|| store::StoreError::Corrupt("no outcome".into()))
}

/// Runs `turns` turns spread over [`CONCURRENT_USERS`] concurrent users; the time they took.
async fn run(
    store: &Store,
    writer: &StoreWriter,
    path: Path,
    users: &Arc<Vec<UserId>>,
    turns: u64,
) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENT_USERS)
        .map(|k| {
            let (store, writer, users) = (store.clone(), writer.clone(), users.clone());
            let share = turns / CONCURRENT_USERS + u64::from(k < turns % CONCURRENT_USERS);
            tokio::spawn(async move {
                for i in 0..share {
                    // Task k serves users k, k + 64, k + 128, …: never one user twice at once.
                    let user = users[((k + i * CONCURRENT_USERS) % POPULATION) as usize];
                    turn(&store, &writer, path, user, i).await;
                }
            })
        })
        .collect();
    for task in tasks {
        if task.await.is_err() {
            panic!("a benchmark task panicked");
        }
    }
    start.elapsed()
}

async fn open(url: &str) -> (Store, Arc<Vec<UserId>>) {
    let store = store::connect(url, Sealer::generate())
        .await
        .expect("open the store");
    let population: Vec<_> = (0..POPULATION).map(population::new_user).collect();
    let users = store.create_users(&population).await.expect("create users");
    (store, Arc::new(users))
}

fn writes(c: &mut Criterion) {
    let runtime = Runtime::new().expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut backends = vec![
        (
            "SQLite".to_owned(),
            format!("sqlite:{}", dir.path().join("bench.db").display()),
        ),
        (
            POOLED.to_owned(),
            format!("sqlite:{}", dir.path().join("pooled.db").display()),
        ),
    ];
    let postgres = runtime.block_on(store::testing::fresh_postgres_url());
    if let Some(url) = &postgres {
        backends.push(("PostgreSQL".to_owned(), url.clone()));
    }

    let mut group = c.benchmark_group("store/turn writes");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));
    for (backend, url) in &backends {
        let (store, users) = runtime.block_on(open(url));
        let pooled = backend == POOLED;
        let store = if pooled {
            store.with_batches_on_the_pool()
        } else {
            store
        };
        let writer = runtime.block_on(async { StoreWriter::start(store.clone()) });
        let paths: &[Path] = if pooled {
            &[Path::GroupCommitOneWrite]
        } else {
            &[
                Path::ThreeCommits,
                Path::TwoCommits,
                Path::GroupCommit,
                Path::GroupCommitOneWrite,
            ]
        };
        for &path in paths {
            group.bench_function(BenchmarkId::new(path.name(), backend), |b| {
                b.to_async(&runtime).iter_custom(|turns| {
                    let (store, writer, users) = (store.clone(), writer.clone(), users.clone());
                    async move { run(&store, &writer, path, &users, turns).await }
                })
            });
        }
        let stats = writer.stats();
        if stats.batches > 0 {
            eprintln!(
                "{backend}: group commit took {:.1} writes per transaction (largest {})",
                stats.writes as f64 / stats.batches as f64,
                stats.largest_batch
            );
        }
    }
    group.finish();
    if let Some(url) = postgres {
        runtime.block_on(store::testing::drop_postgres_database(&url));
    }
}

/// Callers reading at once in `store/person reads`.
const READERS: u64 = 16;
/// Users they read, each with a few open tasks and long-term memories.
const READ_USERS: u64 = 64;
/// Long-term memories of each of those users.
const MEMORIES: usize = 20;

fn person_reads(c: &mut Criterion) {
    let runtime = Runtime::new().expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite:{}", dir.path().join("reads.db").display());
    let postgres = runtime.block_on(store::testing::fresh_postgres_url());
    // Each backend's own users, the same count, each with the same few open tasks.
    let seeded = |url: &str| {
        runtime.block_on(async {
            let (store, users) = open(url).await;
            let users: Arc<Vec<UserId>> =
                Arc::new(users.iter().take(READ_USERS as usize).copied().collect());
            let now = chrono::Utc::now();
            for user in users.iter() {
                let tasks = ["pay rent", "call mum", "water plants"].map(store::NewTask::titled);
                store.add_tasks(*user, &tasks).await.expect("tasks");
                for n in 0..MEMORIES {
                    let fact = store::NewMemory {
                        text: format!("fact {n}: prefers mornings for hard tasks"),
                        kind: store::MemoryKind::Preference,
                        tags: vec!["routine".into()],
                        importance: 0.5,
                        source_message_id: None,
                    };
                    store.add_memory(*user, &fact, now).await.expect("memory");
                }
            }
            (store, users)
        })
    };
    let (sqlite, sqlite_users) = seeded(&url);
    let mut cases = vec![
        ("SQLite", sqlite.clone(), sqlite_users.clone()),
        (
            "SQLite, calls on the pool",
            sqlite.with_person_calls_on_the_pool(),
            sqlite_users,
        ),
    ];
    if let Some(url) = &postgres {
        let (store, users) = seeded(url);
        cases.push(("PostgreSQL", store, users));
    }

    let mut group = c.benchmark_group("store/person reads");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(5));
    // One caller's reads, as on a quiet node: nothing else reads or waits meanwhile.
    let reads = [
        ("open tasks", READERS, Read::OpenTasks),
        ("open tasks, one caller", 1, Read::OpenTasks),
        ("activation", READERS, Read::Activation),
    ];
    for (name, store, users) in cases {
        for (what, callers, read) in reads {
            group.bench_function(BenchmarkId::new(what, name), |b| {
                b.to_async(&runtime).iter_custom(|count| {
                    read_all(store.clone(), users.clone(), count, callers, read)
                })
            });
        }
    }
    group.finish();
    if let Some(url) = postgres {
        runtime.block_on(store::testing::drop_postgres_database(&url));
    }
}

/// What a caller of `store/person reads` reads.
#[derive(Clone, Copy)]
enum Read {
    OpenTasks,
    Activation,
}

/// `reads` reads by `callers` callers at once, each over the users in turn.
async fn read_all(
    store: Store,
    users: Arc<Vec<UserId>>,
    reads: u64,
    callers: u64,
    what: Read,
) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|k| {
            let (store, users) = (store.clone(), users.clone());
            let share = reads / callers + u64::from(k < reads % callers);
            tokio::spawn(async move {
                for i in 0..share {
                    let user = users[((k + i * callers) % READ_USERS) as usize];
                    match what {
                        Read::OpenTasks => {
                            store.open_tasks(user).await.expect("open tasks");
                        }
                        Read::Activation => {
                            store
                                .activation(user, RECENT_TURNS as u32)
                                .await
                                .expect("activation");
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        if task.await.is_err() {
            panic!("a benchmark task panicked");
        }
    }
    start.elapsed()
}

criterion_group!(benches, writes, person_reads);
criterion_main!(benches);
