//! The planner's own cost per turn, model latency excluded: a zero-latency in-process model
//! answers at once (one tool call, then the answer), so what is measured is prompt building,
//! request assembly, argument validation, running the tool and the loop — next to the
//! offline rules answering a comparable message in the same run.
//!
//! Two pairs:
//! - `turn_store`: "what's on my list?" through the planner (`list_tasks`) vs "tasks" through
//!   the offline rules: the same SQLite read on both sides.
//! - `turn_cpu`: the planner calling a tool that touches no store vs the offline rules
//!   answering "help": no I/O on either side, so the planner's CPU overhead shows alone.
//!
//! `offline_parse`: the offline rules' parser alone on the load harness's four messages and
//! on four longer ones (a task with a due date, a grocery list, an expense, a French reminder).
//!
//! And `model_request`, what each model call of a turn costs besides the call: the first
//! request built (system prompt, 12 recent turns, 5 memories, every tool's declaration), its
//! Gemini body serialized (and the OpenAI-compatible fallback's), its response-cache key, and its outcome recorded by the provider's
//! circuit breaker while the window holds a busy node's calls (2,000 a second for 60 s).
//!
//! Run with: `cargo bench --bench planner` (add `-- --quick` for a short run). It ends by
//! printing the planner / offline-rules ratio of each pair, from this run's medians.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chrono::Utc;
use criterion::{Criterion, criterion_group};
use nudge::agent::cache::ResponseCache;
use nudge::agent::offline::OfflineRules;
use nudge::agent::planner::{Budget, Planner};
use nudge::agent::{LanguageModel, ModelUnavailable, RecalledMemory, Said, TurnEngine, TurnInput};
use nudge::llm::circuit::{CircuitBreaker, CircuitPolicy, Outcome};
use nudge::llm::{
    ChatRequest, Finish, Generation, Item, ModelTurn, ToolCall, Usage, gemini, openai,
};
use nudge::store::{Channel, Direction, Language, Message, NewUser, Sealer, Store, User, connect};
use nudge::tools::{Tool, ToolContext, ToolError, ToolOutput};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use tokio::runtime::Runtime;

/// Answers at once: a call to `tool` for a new message, a text once results came back.
struct InstantModel {
    tool: &'static str,
}

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
                    name: self.tool.into(),
                    args: json!({ "text": "ready" }),
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

/// A tool that touches no store: says its text back.
struct Echo;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EchoArgs {
    /// What to say back.
    text: String,
}

#[async_trait]
impl Tool for Echo {
    type Args = EchoArgs;
    const NAME: &'static str = "echo";
    const DESCRIPTION: &'static str = "Says the text back.";

    async fn run(&self, _ctx: &ToolContext<'_>, args: EchoArgs) -> Result<ToolOutput, ToolError> {
        Ok(ToolOutput::new(json!({ "text": args.text }), "echoed"))
    }
}

/// `list_tasks` takes no arguments: the model's `text` would be refused, so it gets none.
struct ListTasksModel(InstantModel);

#[async_trait]
impl LanguageModel for ListTasksModel {
    async fn generate(
        &self,
        request: &ChatRequest,
        deadline: tokio::time::Instant,
    ) -> Result<Generation, ModelUnavailable> {
        let mut generation = self.0.generate(request, deadline).await?;
        for call in &mut generation.turn.calls {
            call.args = json!({});
        }
        Ok(generation)
    }
}

struct Fixture {
    runtime: Runtime,
    store: Store,
    user: User,
    /// Calls `list_tasks` (a store read).
    store_planner: Planner,
    /// Calls `echo` (no I/O).
    cpu_planner: Planner,
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
    let store_planner = Planner::new(
        Arc::new(ListTasksModel(InstantModel { tool: "list_tasks" })),
        nudge::tools::internal::registry(),
        Budget::default(),
        None,
    );
    let cpu_planner = Planner::new(
        Arc::new(InstantModel { tool: "echo" }),
        nudge::tools::internal::registry().with(Echo),
        Budget::default(),
        None,
    );
    Fixture {
        runtime,
        store,
        user,
        store_planner,
        cpu_planner,
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

async fn turn(engine: &dyn TurnEngine, f: &Fixture, text: &str) -> String {
    engine
        .respond(&f.store, input(&f.user, text))
        .await
        .expect("turn")
        .text
}

fn turns(c: &mut Criterion) {
    let f = fixture();
    let mut group = c.benchmark_group("turn_store");
    group.bench_function("offline_rules", |b| {
        b.to_async(&f.runtime)
            .iter(|| async { black_box(turn(&OfflineRules, &f, "tasks").await) })
    });
    group.bench_function("planner", |b| {
        b.to_async(&f.runtime)
            .iter(|| async { black_box(turn(&f.store_planner, &f, "what's on my list?").await) })
    });
    group.finish();

    let mut group = c.benchmark_group("turn_cpu");
    group.bench_function("offline_rules", |b| {
        b.to_async(&f.runtime)
            .iter(|| async { black_box(turn(&OfflineRules, &f, "help").await) })
    });
    group.bench_function("planner", |b| {
        b.to_async(&f.runtime)
            .iter(|| async { black_box(turn(&f.cpu_planner, &f, "say ready").await) })
    });
    group.finish();
}

/// The parser of the offline rules, which reads every message a node answers without a model.
fn offline_parse(c: &mut Criterion) {
    const HARNESS: [&str; 4] = ["hi", "what's next?", "thanks", "I feel stuck today"];
    const LONGER: [&str; 4] = [
        "add task renew my passport by friday, it's urgent",
        "add milk, eggs, 2 lemons and oat milk to the grocery list",
        "spent 12.50 on lunch with Sam yesterday",
        "rappelle-moi d'appeler le dentiste demain à 9h s'il te plaît",
    ];
    let mut group = c.benchmark_group("offline_parse");
    group.bench_function("the harness's four messages", |b| {
        b.iter(|| {
            for text in HARNESS {
                black_box(nudge::agent::offline::parse(black_box(text)));
            }
        })
    });
    group.bench_function("four longer messages", |b| {
        b.iter(|| {
            for text in LONGER {
                black_box(nudge::agent::offline::parse(black_box(text)));
            }
        })
    });
    group.finish();
}

/// A turn well into a conversation: 12 recent turns, 5 recalled memories, a summary.
fn model_requests(c: &mut Criterion) {
    let f = fixture();
    let recent: Vec<Said> = (0..12)
        .map(|i| {
            let inbound = i % 2 == 0;
            Said::from(Message {
                id: i + 1,
                user_id: f.user.id,
                channel: Channel::Sms,
                direction: if inbound {
                    Direction::Inbound
                } else {
                    Direction::Outbound
                },
                body: if inbound {
                    format!("I still need to sort the boxes in room {i} before Friday")
                } else {
                    "Start with one box: open it and sort it into keep and give, 5 minutes.".into()
                },
                provider_message_id: None,
                in_reply_to: None,
                created_at: Utc::now(),
            })
        })
        .collect();
    let memories: Vec<RecalledMemory> = (0..5)
        .map(|i| RecalledMemory {
            id: i,
            text: format!("Prefers short steps in the morning; fact number {i}"),
            kind: "preference".into(),
            score: 0.5,
        })
        .collect();
    let input = TurnInput {
        recent: &recent,
        memories: &memories,
        summary: Some("Sam is moving house on Friday and keeps putting off the packing."),
        ..input(&f.user, "ok what do I do first?")
    };
    let request = f.store_planner.first_request(&input);
    let mut group = c.benchmark_group("model_request");
    group.bench_function("first request", |b| {
        b.iter(|| black_box(f.store_planner.first_request(black_box(&input))))
    });
    group.bench_function("gemini body", |b| {
        b.iter(|| {
            black_box(serde_json::to_vec(&gemini::request_body(black_box(
                &request,
            ))))
        })
    });
    group.bench_function("fallback body", |b| {
        b.iter(|| {
            black_box(serde_json::to_vec(&openai::request_body(
                black_box(&request),
                "llama3",
            )))
        })
    });
    group.bench_function("cache key", |b| {
        b.iter(|| black_box(ResponseCache::key(f.user.id, black_box(&request))))
    });
    let mut breaker = CircuitBreaker::new(CircuitPolicy::default());
    let start = std::time::Instant::now();
    let calls = 120_000_u32;
    for n in 0..calls {
        // One failure in a hundred, half a millisecond apart: 60 s of a busy node.
        let outcome = if n % 100 == 0 {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        breaker.record(start + Duration::from_micros(500) * n, outcome);
    }
    let now = start + Duration::from_micros(500) * calls;
    group.bench_function("circuit record, 120,000 calls in the window", |b| {
        b.iter(|| breaker.record(black_box(now), Outcome::Success))
    });
    group.finish();
}

criterion_group!(benches, turns, offline_parse, model_requests);

/// Where criterion writes its estimates: `CRITERION_HOME`, else `criterion/` in the target
/// directory this bench binary was built into (`<target>/release/deps/planner-…`).
fn criterion_home() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(home.into());
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("criterion"))
}

/// The median point estimate, in nanoseconds, of one benchmark measured since `started`
/// (`--list` and `--test` runs measure nothing, so an older file is not this run's).
fn median_ns(id: &str, started: SystemTime) -> Option<f64> {
    let path = criterion_home()?
        .join(id)
        .join("new")
        .join("estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < started {
        return None;
    }
    let estimates: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

fn main() {
    let started = SystemTime::now();
    benches();
    Criterion::default().configure_from_args().final_summary();

    // The ratios of this run's medians.
    for group in ["turn_store", "turn_cpu"] {
        if let (Some(offline), Some(planner)) = (
            median_ns(&format!("{group}/offline_rules"), started),
            median_ns(&format!("{group}/planner"), started),
        ) {
            println!(
                "{group}: planner {:.1} µs vs offline rules {:.1} µs per turn (medians): \
                 ratio {:.2}",
                planner / 1e3,
                offline / 1e3,
                planner / offline,
            );
        }
    }
}
