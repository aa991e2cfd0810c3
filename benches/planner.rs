//! The planner's own cost per turn, model latency excluded: a zero-latency in-process model
//! answers at once, so what is measured is prompt building, request assembly, argument
//! validation, the tool's store work and the loop, against the offline rules doing the same
//! store work in the same run.
//!
//! Run with: `cargo bench --bench planner` (add `-- --quick` for a short run). It ends by
//! printing the planner / offline-rules ratio measured in the same process.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use criterion::{Criterion, criterion_group};
use nudge::agent::offline::OfflineRules;
use nudge::agent::planner::{Budget, Planner};
use nudge::agent::{LanguageModel, ModelUnavailable, TurnEngine, TurnInput};
use nudge::llm::{ChatRequest, Finish, Generation, Item, ModelTurn, ToolCall, Usage};
use nudge::store::{Channel, Language, NewUser, Sealer, Store, User, connect};
use serde_json::json;
use tokio::runtime::Runtime;

/// Answers at once: a `list_tasks` call for a new message, a text once results came back.
struct InstantModel;

#[async_trait]
impl LanguageModel for InstantModel {
    async fn generate(
        &self,
        request: &ChatRequest,
        _deadline: tokio::time::Instant,
    ) -> Result<Generation, ModelUnavailable> {
        let turn = match request.items.last() {
            Some(Item::ToolResults(_)) => ModelTurn {
                text: Some("You have 3 open tasks. Start with pay rent: 2 minutes.".into()),
                calls: vec![],
                raw: None,
            },
            _ => ModelTurn {
                text: None,
                calls: vec![ToolCall {
                    id: None,
                    name: "list_tasks".into(),
                    args: json!({}),
                }],
                raw: None,
            },
        };
        Ok(Generation {
            turn,
            usage: Usage {
                prompt_tokens: 500,
                output_tokens: 20,
                total_tokens: 520,
            },
            finish: Finish::Stop,
            provider: "bench".into(),
            model: "instant".into(),
        })
    }
}

struct Fixture {
    runtime: Runtime,
    store: Store,
    user: User,
    planner: Planner,
}

fn fixture() -> Fixture {
    let runtime = Runtime::new().expect("tokio runtime");
    let (store, user) = runtime.block_on(async {
        let store = connect("sqlite::memory:", Sealer::generate())
            .await
            .expect("store");
        let user = store
            .create_user(&NewUser {
                display_name: "Ana".into(),
                phone: "+14155550101".into(),
                number: "+14155559001".into(),
                language: Language::En,
                time_zone: "America/Los_Angeles".into(),
            })
            .await
            .expect("user");
        for title in ["pay rent", "call mom", "book dentist"] {
            store.add_task(user.id, title).await.expect("task");
        }
        (store, user)
    });
    let planner = Planner::new(
        Arc::new(InstantModel),
        nudge::tools::internal::registry(),
        Budget::default(),
        None,
    );
    Fixture {
        runtime,
        store,
        user,
        planner,
    }
}

fn input<'a>(user: &'a User, text: &'a str) -> TurnInput<'a> {
    TurnInput {
        user,
        text,
        channel: Channel::Sms,
        now: Utc::now(),
        recent: &[],
        memories: &[],
        summary: None,
    }
}

async fn planner_turn(f: &Fixture) -> String {
    f.planner
        .respond(&f.store, input(&f.user, "what's on my list?"))
        .await
        .expect("planner turn")
        .text
}

async fn offline_turn(f: &Fixture) -> String {
    OfflineRules
        .respond(&f.store, input(&f.user, "tasks"))
        .await
        .expect("offline turn")
        .text
}

fn turns(c: &mut Criterion) {
    let f = fixture();
    let mut group = c.benchmark_group("turn");
    group.bench_function("offline_rules/list_tasks", |b| {
        b.to_async(&f.runtime)
            .iter(|| async { black_box(offline_turn(&f).await) })
    });
    group.bench_function("planner/list_tasks_then_answer", |b| {
        b.to_async(&f.runtime)
            .iter(|| async { black_box(planner_turn(&f).await) })
    });
    group.finish();
}

criterion_group!(benches, turns);

/// Mean time of `n` sequential turns.
fn mean<F: std::future::Future<Output = String>>(
    runtime: &Runtime,
    n: u32,
    mut turn: impl FnMut() -> F,
) -> Duration {
    runtime.block_on(async {
        let started = Instant::now();
        for _ in 0..n {
            black_box(turn().await);
        }
        started.elapsed() / n
    })
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();

    let f = fixture();
    let n = 2_000;
    // Warm both paths first (connections, caches).
    mean(&f.runtime, 200, || offline_turn(&f));
    mean(&f.runtime, 200, || planner_turn(&f));
    let offline = mean(&f.runtime, n, || offline_turn(&f));
    let planner = mean(&f.runtime, n, || planner_turn(&f));
    println!(
        "planner turn {planner:?} vs offline rules turn {offline:?}: ratio {:.2} \
         (planner overhead {:?} per turn, zero-latency model, {n} turns each)",
        planner.as_secs_f64() / offline.as_secs_f64(),
        planner.saturating_sub(offline),
    );
}
