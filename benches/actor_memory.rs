//! What an active user actor costs in memory: the resident set of this process grown by
//! 100,000 actors of each kind, divided by 100,000. Not a criterion benchmark (criterion
//! measures time); it prints its figures.
//!
//! - a bare ractor actor that does nothing (the floor every actor pays);
//! - a user actor activated through the Directory with its state loaded, for users with no
//!   history (the user row only);
//! - the same for users with a typical history (the last 20 messages loaded);
//! - the same for users with a typical state: 20 messages and 50 long-term memories (their
//!   retrieval index built at activation).
//!
//! It also times activation itself: 10,000 users with a typical state (a tenth as many under
//! `cargo test --benches`), not active (as after passivation), activated one at a time (route,
//! user row, recent messages, summary, memories and their index), as percentiles.
//!
//! Run with: `cargo bench --bench actor_memory` (about a minute; SQLite in a temporary
//! directory)

use std::sync::Arc;
use std::time::{Duration, Instant};

use nudge::actors::notifier::NotifierArgs;
use nudge::actors::{ActorSystem, SystemOptions, TurnDeps};
use nudge::agent::offline::OfflineRules;
use nudge::loadgen::{population, procstat, recorder};
use nudge::store::{self, Sealer, StoreWriter, UserId};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::RactorMessage;
use tokio_util::task::TaskTracker;

/// Actors of each kind under `cargo bench`.
const ACTORS: u64 = 100_000;
/// Actors of each kind when run as a test (`cargo test --benches`): a quick check that it works.
const ACTORS_IN_TESTS: u64 = 500;
const WAIT: Duration = Duration::from_secs(30);

/// Does nothing: the cost of being an actor.
struct Idle;

#[derive(RactorMessage)]
enum IdleMsg {}

impl Actor for Idle {
    type Msg = IdleMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<IdleMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

fn rss() -> u64 {
    match procstat::sample_path(std::path::Path::new("/proc/self")) {
        Ok(sample) => sample.rss_bytes,
        Err(error) => panic!("cannot read /proc/self: {error}"),
    }
}

fn report(what: &str, actors: u64, before: u64, after: u64, took: Duration) {
    let per = (after.saturating_sub(before)) as f64 / actors as f64;
    println!(
        "{what}: {:.1} KiB each ({actors} actors: RSS {:.0} → {:.0} MiB, {:.1} s)",
        per / 1024.0,
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        took.as_secs_f64()
    );
}

/// A population of `count` users with `history` messages each, and the actor tree.
async fn users(
    dir: &std::path::Path,
    name: &str,
    count: u64,
    history: u32,
    memories: u32,
) -> (ActorSystem, Vec<UserId>) {
    let url = format!("sqlite:{}", dir.join(name).display());
    let store = store::connect(&url, Sealer::generate())
        .await
        .expect("open the store");
    let mut ids = Vec::new();
    for start in (0..count).step_by(50_000) {
        let end = (start + 50_000).min(count);
        let batch: Vec<_> = (start..end).map(population::new_user).collect();
        let created = store.create_users(&batch).await.expect("create users");
        population::store_history(&store, &created, history)
            .await
            .expect("store history");
        population::store_memories(&store, &created, memories)
            .await
            .expect("store memories");
        ids.extend(created);
    }
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
            store,
            twilio: None,
            status_callback: None,
            tasks: TaskTracker::new(),
            circuit: Default::default(),
        },
        SystemOptions::default(),
    )
    .await
    .expect("start the actor tree");
    (actors, ids)
}

/// Activates every user, 64 at a time, with their state loaded.
async fn warm_all(actors: &ActorSystem, ids: &[UserId]) {
    for chunk in ids.chunks(64) {
        let warmed = futures::future::join_all(chunk.iter().map(|id| actors.warm(*id, WAIT))).await;
        if let Some(Err(error)) = warmed.into_iter().find(Result::is_err) {
            panic!("activation failed: {error}");
        }
    }
}

/// What one process measures.
#[derive(Clone, Copy)]
enum Kind {
    Bare,
    Empty,
    History,
    Typical,
    Activation,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Bare => "bare",
            Kind::Empty => "empty",
            Kind::History => "history",
            Kind::Typical => "typical",
            Kind::Activation => "activation",
        }
    }
}

/// Each measurement runs in a process of its own (this binary again, with `--kind`), so that
/// memory one leaves with the allocator does not hide the next one's growth.
fn main() {
    // As the `nudge` binary runs: its heap on 4 KiB pages (`nudge::small_pages_only`).
    nudge::small_pages_only().expect("transparent huge pages turned off");
    let args: Vec<String> = std::env::args().collect();
    // Test runners list tests first: there are none to list.
    if args.iter().any(|a| a == "--list") {
        return;
    }
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`), a quick check.
    let count = if args.iter().any(|a| a == "--bench") {
        ACTORS
    } else {
        ACTORS_IN_TESTS
    };
    let kind = args.iter().find_map(|a| match a.strip_prefix("--kind=") {
        Some("bare") => Some(Kind::Bare),
        Some("empty") => Some(Kind::Empty),
        Some("history") => Some(Kind::History),
        Some("typical") => Some(Kind::Typical),
        Some("activation") => Some(Kind::Activation),
        _ => None,
    });
    match kind {
        Some(kind) => measure(kind, count),
        None => {
            let me = std::env::current_exe().expect("this program's path");
            for kind in [
                Kind::Bare,
                Kind::Empty,
                Kind::History,
                Kind::Typical,
                Kind::Activation,
            ] {
                let mut child = std::process::Command::new(&me);
                child.arg(format!("--kind={}", kind.name()));
                if count == ACTORS {
                    child.arg("--bench");
                }
                let status = child.status().expect("run a measurement");
                assert!(status.success(), "the {} measurement failed", kind.name());
            }
        }
    }
}

fn measure(kind: Kind, count: u64) {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("a temporary directory");
        match kind {
            Kind::Bare => {
                let before = rss();
                let start = Instant::now();
                let mut idle = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    idle.push(Actor::spawn(None, Idle, ()).await.expect("spawn").0);
                }
                report("bare ractor actor", count, before, rss(), start.elapsed());
            }
            Kind::Activation => {
                let (actors, ids) = users(dir.path(), "users.db", count / 10, 20, 50).await;
                let mut latency = recorder::latency_histogram();
                let start = Instant::now();
                for id in &ids {
                    let began = Instant::now();
                    actors.warm(*id, WAIT).await.expect("activation");
                    recorder::record_latency(&mut latency, began.elapsed());
                }
                let took = start.elapsed();
                let summary = recorder::LatencySummary::of(&latency);
                println!(
                    "activation, typical state: p50 {:.3} ms, p99 {:.3} ms, max {:.1} ms \
                     ({} users one at a time, {:.1} s)",
                    summary.p50_ms,
                    summary.p99_ms,
                    summary.max_ms,
                    ids.len(),
                    took.as_secs_f64()
                );
                actors.shutdown(WAIT).await;
            }
            Kind::Empty | Kind::History | Kind::Typical => {
                let (name, history, memories) = match kind {
                    Kind::Empty => ("no history (the user row)", 0, 0),
                    Kind::History => ("20 messages of history", 20, 0),
                    _ => ("typical: 20 messages, 50 memories", 20, 50),
                };
                let (actors, ids) = users(dir.path(), "users.db", count, history, memories).await;
                let before = rss();
                let start = Instant::now();
                warm_all(&actors, &ids).await;
                assert_eq!(actors.active_users().await, count as usize);
                report(
                    &format!("user actor, state loaded, {name}"),
                    count,
                    before,
                    rss(),
                    start.elapsed(),
                );
                actors.shutdown(WAIT).await;
            }
        }
    });
}
