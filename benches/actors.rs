//! The actor tree's own costs: a message round trip to an actor, and the Directory's
//! activation (spawn a user actor and load its state: the user and their last 20 turns, on
//! SQLite) and passivation of a user.
//!
//! Activation latency is also recorded per call, and its p50 / p99 / max printed at the end
//! (criterion reports means; the target is on the p99).
//!
//! Run with: `cargo bench --bench actors`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use hdrhistogram::Histogram;
use nudge::actors::notifier::NotifierArgs;
use nudge::actors::{ActorSystem, SystemOptions, TurnDeps};
use nudge::agent::offline::OfflineRules;
use nudge::loadgen::population;
use nudge::loadgen::recorder::{LatencySummary, latency_histogram, record_latency};
use nudge::store::{self, Sealer, Store, StoreWriter, UserId};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use tokio::runtime::Runtime;
use tokio_util::task::TaskTracker;

/// Users with a history, activated in turn.
const USERS: u64 = 1_000;
/// Messages each user has stored: a full window of recent turns.
const HISTORY: u32 = 20;
const WAIT: Duration = Duration::from_secs(10);

/// An actor that answers each message with its number: the cheapest possible round trip.
struct Echo;

#[derive(RactorMessage)]
enum EchoMsg {
    Ping(u64, RpcReplyPort<u64>),
}

impl Actor for Echo {
    type Msg = EchoMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<EchoMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<EchoMsg>,
        message: EchoMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let EchoMsg::Ping(n, reply) = message;
        let _ = reply.send(n);
        Ok(())
    }
}

fn round_trip(c: &mut Criterion) {
    let runtime = Runtime::new().expect("a tokio runtime");
    let (echo, _) = runtime
        .block_on(Actor::spawn(None, Echo, ()))
        .expect("spawn the echo actor");
    c.bench_function(
        "actors/round trip (ractor call to an actor and back)",
        |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let echo = echo.clone();
                on_runtime(async move {
                    let start = Instant::now();
                    for n in 0..iters {
                        let _ = echo.call(|reply| EchoMsg::Ping(n, reply), None).await;
                    }
                    start.elapsed()
                })
            })
        },
    );
    echo.stop(None);
}

/// A SQLite store with [`USERS`] users of [`HISTORY`] messages each, and the actor tree over it.
async fn populated(dir: &std::path::Path) -> (Store, ActorSystem, Vec<UserId>) {
    let url = format!("sqlite:{}", dir.join("bench.db").display());
    let store = store::connect(&url, Sealer::generate())
        .await
        .expect("open the store");
    let population: Vec<_> = (0..USERS).map(population::new_user).collect();
    let users = store.create_users(&population).await.expect("create users");
    population::store_history(&store, &users, HISTORY)
        .await
        .expect("store history");
    let actors = ActorSystem::start(
        TurnDeps {
            store: store.clone(),
            writer: StoreWriter::start(store.clone()),
            engine: Arc::new(OfflineRules),
            idle_passivate: Duration::from_secs(3_600),
            memory: Default::default(),
            live: Default::default(),
        },
        NotifierArgs {
            store: store.clone(),
            twilio: None,
            status_callback: None,
            tasks: TaskTracker::new(),
            circuit: Default::default(),
        },
        SystemOptions::default(),
    )
    .await
    .expect("start the actor tree");
    (store, actors, users)
}

fn activation(c: &mut Criterion) {
    let runtime = Runtime::new().expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (_store, actors, users) = runtime.block_on(populated(dir.path()));
    let users = Arc::new(users);
    let activations = Arc::new(Mutex::new(latency_histogram()));
    let mut group = c.benchmark_group("directory");

    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    group.bench_function(
        "activate a passivated user (spawn, load user and 20 turns)",
        |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let (actors, users, next, activations) = (
                    actors.clone(),
                    users.clone(),
                    next.clone(),
                    activations.clone(),
                );
                on_runtime(async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let user = users[i % users.len()];
                        actors.passivate(user).await;
                        let start = Instant::now();
                        if let Err(error) = actors.warm(user, WAIT).await {
                            panic!("activation failed: {error}");
                        }
                        let took = start.elapsed();
                        total += took;
                        record(&activations, took);
                    }
                    total
                })
            })
        },
    );

    group.bench_function(
        "passivate an active user (until the Directory forgets it)",
        |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let (actors, users, next) = (actors.clone(), users.clone(), next.clone());
                on_runtime(async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let user = users[i % users.len()];
                        if let Err(error) = actors.warm(user, WAIT).await {
                            panic!("activation failed: {error}");
                        }
                        let start = Instant::now();
                        actors.passivate(user).await;
                        let gone = actors.lookup(user).await.is_none();
                        total += start.elapsed();
                        assert!(gone, "the user is passivated");
                    }
                    total
                })
            })
        },
    );

    group.bench_function(
        "round trip to an active user actor (Directory lookup, then the actor)",
        |b| {
            let user = users[0];
            runtime.block_on(async {
                actors.warm(user, WAIT).await.expect("activate");
            });
            b.to_async(&runtime).iter_custom(|iters| {
                let actors = actors.clone();
                on_runtime(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let _ = actors.inspect(user).await.map(|s| s.turns_handled);
                    }
                    start.elapsed()
                })
            })
        },
    );
    group.finish();

    let histogram = activations
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let summary = LatencySummary::of(&histogram);
    eprintln!(
        "activation of a passivated user on SQLite, {} calls: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        summary.count, summary.p50_ms, summary.p99_ms, summary.max_ms
    );
    runtime.block_on(actors.shutdown(WAIT));
}

/// Runs a measured loop as a task on the runtime's workers, as the server's own callers run,
/// rather than on the thread criterion blocks on (whose every wake-up crosses threads).
async fn on_runtime(
    measured: impl std::future::Future<Output = Duration> + Send + 'static,
) -> Duration {
    match tokio::spawn(measured).await {
        Ok(took) => took,
        Err(error) => panic!("a measured loop failed: {error}"),
    }
}

fn record(histogram: &Mutex<Histogram<u64>>, took: Duration) {
    let mut histogram = histogram
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    record_latency(&mut histogram, took);
}

criterion_group!(benches, round_trip, activation);
criterion_main!(benches);
