//! The LLM agent over real HTTP on loopback: the actor tree with its `LlmSupervisor`, the
//! planner and the real Gemini / OpenAI-compatible clients, against fake servers that speak
//! those wire formats. Request bodies are asserted as the servers recorded them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use nudge::actors::llm::{LlmHandle, LlmSetup};
use nudge::actors::notifier::NotifierArgs;
use nudge::actors::user::InboundTurn;
use nudge::actors::{ActorSystem, SystemOptions, TurnDeps};
use nudge::agent::planner::{Budget, Planner};
use nudge::llm::Provider;
use nudge::llm::circuit::{CircuitPolicy, CircuitState, ManualClock};
use nudge::llm::gemini::GeminiClient;
use nudge::llm::openai::OpenAiClient;
use nudge::llm::retry::RetryPolicy;
use nudge::store::{self, Channel, Language, NewUser, Sealer, Store, UserId};
use secrecy::SecretString;
use serde_json::json;
use tokio_util::task::TaskTracker;
use url::Url;
use wiremock::{MockServer, ResponseTemplate};

use crate::fakes::{self, Script, bodies, gemini_call, gemini_text, openai_call, openai_text};

const GEMINI_KEY: &str = "test-gemini-key";

fn gemini_client(server: &MockServer) -> Arc<dyn Provider> {
    let base = Url::parse(&server.uri()).unwrap();
    Arc::new(GeminiClient::new(&base, SecretString::from(GEMINI_KEY), "gemini-2.5-flash").unwrap())
}

fn openai_client(server: &MockServer) -> Arc<dyn Provider> {
    let base = Url::parse(&format!("{}/v1", server.uri())).unwrap();
    Arc::new(
        OpenAiClient::new(&base, Some(SecretString::from("fallback-key")), "llama3.1").unwrap(),
    )
}

/// Quick retries so tests do not wait for production backoffs.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(10),
        max_delay: Duration::from_secs(2),
    }
}

struct Agent {
    actors: ActorSystem,
    store: Store,
    user: UserId,
    _dir: tempfile::TempDir,
}

impl Agent {
    async fn start(
        providers: Vec<Arc<dyn Provider>>,
        budget: Budget,
        circuit: CircuitPolicy,
        clock: Arc<ManualClock>,
    ) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("nudge.db").display());
        let store = store::connect(&url, Sealer::generate()).await.unwrap();
        let user = store
            .create_user(&NewUser {
                display_name: "Ana".into(),
                phone: "+14155550101".into(),
                number: "+14155559001".into(),
                language: Language::En,
                time_zone: "America/Los_Angeles".into(),
            })
            .await
            .unwrap()
            .id;
        let setup = LlmSetup {
            providers,
            circuit,
            retry: fast_retry(),
            workers: 2,
            clock,
        };
        let handle = LlmHandle::new(&setup);
        let planner = Planner::new(
            Arc::new(handle.clone()),
            nudge::tools::internal::registry(),
            budget,
            None,
        );
        let actors = ActorSystem::start_with_llm(
            TurnDeps {
                store: store.clone(),
                writer: nudge::store::StoreWriter::start(store.clone()),
                engine: Arc::new(planner),
                idle_passivate: Duration::from_secs(600),
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
            Some((setup, handle)),
        )
        .await
        .unwrap();
        Agent {
            actors,
            store,
            user,
            _dir: dir,
        }
    }

    async fn say(&self, body: &str) -> String {
        let turn = InboundTurn {
            channel: Channel::Sms,
            body: body.into(),
            provider_message_id: Some(nudge::sms::twilio::new_message_sid()),
            segments: None,
            received_at: Utc::now(),
        };
        let outcome = self
            .actors
            .turn(self.user, turn, Duration::from_secs(30))
            .await
            .expect("the turn completes");
        outcome.reply.expect("a reply")
    }

    async fn open_tasks(&self) -> Vec<String> {
        self.store
            .open_tasks(self.user)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.title)
            .collect()
    }

    async fn circuit(&self, provider: usize) -> CircuitState {
        self.actors.llm_circuits().await[provider].state
    }
}

fn default_agent_parts() -> (Budget, CircuitPolicy, Arc<ManualClock>) {
    (
        Budget::default(),
        CircuitPolicy::default(),
        Arc::new(ManualClock::new()),
    )
}

#[tokio::test]
async fn a_gemini_turn_with_two_tool_calls_echoes_thought_signatures_and_ends_in_an_answer() {
    let gemini = fakes::gemini(Script::new(vec![
        gemini_call("add_tasks", json!({ "titles": ["call mom"] }), "sig-A"),
        gemini_call("list_tasks", json!({}), "sig-B"),
        gemini_text("Saved: call mom. It's your only task - dial her now?"),
    ]))
    .await;
    let (budget, circuit, clock) = default_agent_parts();
    let agent = Agent::start(vec![gemini_client(&gemini)], budget, circuit, clock).await;

    let reply = agent.say("remind me to call mom").await;
    assert_eq!(
        reply,
        "Saved: call mom. It's your only task - dial her now?"
    );
    assert_eq!(agent.open_tasks().await, ["call mom"]);

    let requests = gemini.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    assert!(
        requests
            .iter()
            .all(|r| r.headers.get("x-goog-api-key").unwrap() == GEMINI_KEY)
    );
    assert!(
        requests
            .iter()
            .all(|r| !r.url.as_str().contains(GEMINI_KEY)),
        "key not in URL"
    );
    assert!(
        requests[0]
            .url
            .path()
            .ends_with("/models/gemini-2.5-flash:generateContent")
    );

    let bodies = bodies(&gemini).await;
    let first = &bodies[0];
    let system = first["systemInstruction"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(system.contains("for Ana, who has ADHD"), "{system}");
    assert!(system.contains("America/Los_Angeles"), "{system}");
    assert_eq!(first["contents"][0]["role"], "user");
    assert_eq!(
        first["contents"][0]["parts"][0]["text"],
        "remind me to call mom"
    );
    let declared: Vec<&str> = first["tools"][0]["functionDeclarations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(
        declared.contains(&"add_tasks") && declared.contains(&"list_tasks"),
        "{declared:?}"
    );
    assert_eq!(first["toolConfig"]["functionCallingConfig"]["mode"], "AUTO");

    // The model's parts come back verbatim, each followed by its function's response.
    let third = &bodies[2]["contents"];
    assert_eq!(third[1]["role"], "model");
    assert_eq!(
        third[1]["parts"][0],
        json!({ "functionCall": { "name": "add_tasks", "args": { "titles": ["call mom"] } }, "thoughtSignature": "sig-A" })
    );
    let added = &third[2]["parts"][0]["functionResponse"];
    assert_eq!(added["name"], "add_tasks");
    assert_eq!(added["response"]["result"]["added"][0]["title"], "call mom");
    assert_eq!(third[3]["parts"][0]["thoughtSignature"], "sig-B");
    let listed = &third[4]["parts"][0]["functionResponse"];
    assert_eq!(listed["name"], "list_tasks");
    assert_eq!(listed["response"]["result"]["open"][0]["title"], "call mom");

    let usage = agent.store.llm_usage(agent.user).await.unwrap();
    assert_eq!(usage.len(), 3);
    assert!(
        usage
            .iter()
            .all(|u| u.provider == "gemini" && u.total_tokens == 132 && !u.cached)
    );
    assert!(
        usage.iter().all(|u| u.message_id.is_some()),
        "usage rows point at the reply"
    );
}

#[tokio::test]
async fn an_openai_compatible_turn_normalises_arguments_and_missing_ids() {
    let fallback = fakes::openai(Script::new(vec![
        // Arguments as a JSON string, with an id.
        openai_call(
            "add_tasks",
            json!("{\"titles\":[\"pay rent\"]}"),
            Some("call_1"),
        ),
        // Arguments as an object and no id, as some servers send.
        openai_call("list_tasks", json!({}), None),
        openai_text("Saved: pay rent. Next: open your bank app."),
    ]))
    .await;
    let (budget, circuit, clock) = default_agent_parts();
    let agent = Agent::start(vec![openai_client(&fallback)], budget, circuit, clock).await;

    let reply = agent.say("pay rent").await;
    assert_eq!(reply, "Saved: pay rent. Next: open your bank app.");
    assert_eq!(agent.open_tasks().await, ["pay rent"]);

    let requests = fallback.received_requests().await.unwrap();
    assert_eq!(
        requests[0].headers.get("authorization").unwrap(),
        "Bearer fallback-key"
    );
    let bodies = bodies(&fallback).await;
    assert_eq!(bodies.len(), 3);
    assert_eq!(bodies[0]["model"], "llama3.1");
    assert_eq!(bodies[0]["tool_choice"], "auto");
    assert_eq!(bodies[0]["tools"][0]["type"], "function");
    let messages = bodies[2]["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "tool", "assistant", "tool"]
    );
    assert_eq!(messages[2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(messages[3]["tool_call_id"], "call_1");
    let made_up = messages[4]["tool_calls"][0]["id"].as_str().unwrap();
    assert!(!made_up.is_empty());
    assert_eq!(messages[5]["tool_call_id"], made_up);
    assert_eq!(messages[4]["tool_calls"][0]["function"]["arguments"], "{}");
    let listed: serde_json::Value =
        serde_json::from_str(messages[5]["content"].as_str().unwrap()).unwrap();
    assert_eq!(listed["result"]["open"][0]["title"], "pay rent");
}

#[tokio::test]
async fn the_budget_stops_a_model_that_keeps_calling_tools() {
    let gemini = fakes::gemini(Script::new(vec![gemini_call(
        "add_tasks",
        json!({ "titles": ["one more thing"] }),
        "sig",
    )]))
    .await;
    let budget = Budget {
        max_llm_calls: 4,
        max_tool_calls: 3,
        ..Budget::default()
    };
    let (_, circuit, clock) = default_agent_parts();
    let agent = Agent::start(vec![gemini_client(&gemini)], budget, circuit, clock).await;

    let reply = agent.say("plan my whole week").await;
    assert!(
        reply.starts_with("Here's what I did: added 1 task(s): one more thing;"),
        "{reply}"
    );
    assert_eq!(
        agent.open_tasks().await.len(),
        3,
        "three tool calls ran, no more"
    );
    let bodies = bodies(&gemini).await;
    assert_eq!(bodies.len(), 4, "the model was called max_llm_calls times");
    for body in &bodies[..3] {
        assert_eq!(body["toolConfig"]["functionCallingConfig"]["mode"], "AUTO");
    }
    let last = &bodies[3];
    assert_eq!(last["toolConfig"]["functionCallingConfig"]["mode"], "NONE");
    let texts = fakes::gemini_texts(last);
    assert!(
        texts.last().unwrap().contains("budget is used up"),
        "{texts:?}"
    );
    assert_eq!(agent.store.llm_usage(agent.user).await.unwrap().len(), 4);
}

#[tokio::test]
async fn invalid_tool_arguments_are_rejected_without_running_the_tool() {
    let gemini = fakes::gemini(Script::new(vec![
        gemini_call(
            "add_tasks",
            json!({ "title": "call mom", "user_id": "someone-else" }),
            "s1",
        ),
        gemini_text("Sorry, that didn't save. Want me to add 'call mom'?"),
    ]))
    .await;
    let (budget, circuit, clock) = default_agent_parts();
    let agent = Agent::start(vec![gemini_client(&gemini)], budget, circuit, clock).await;

    let reply = agent.say("call mom").await;
    assert_eq!(reply, "Sorry, that didn't save. Want me to add 'call mom'?");
    assert!(agent.open_tasks().await.is_empty(), "the tool never ran");
    let bodies = bodies(&gemini).await;
    assert_eq!(bodies.len(), 2);
    let response = &bodies[1]["contents"][2]["parts"][0]["functionResponse"];
    assert_eq!(response["name"], "add_tasks");
    let error = response["response"]["error"].as_str().unwrap();
    assert!(error.starts_with("invalid arguments"), "{error}");
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_the_asked_wait() {
    let gemini = fakes::gemini(Script::new(vec![
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "1")
            .set_body_json(json!({ "error": { "code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED" } })),
        gemini_text("Hi Ana! What's one thing for today?"),
    ]))
    .await;
    let (budget, circuit, clock) = default_agent_parts();
    let agent = Agent::start(vec![gemini_client(&gemini)], budget, circuit, clock).await;

    let started = Instant::now();
    let reply = agent.say("hi").await;
    assert_eq!(reply, "Hi Ana! What's one thing for today?");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    let bodies = bodies(&gemini).await;
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0], bodies[1], "the same request is sent again");
    assert_eq!(agent.circuit(0).await, CircuitState::Closed);
}

#[tokio::test]
async fn gemini_failing_opens_its_circuit_the_fallback_answers_then_offline_then_recovery() {
    let gemini_script = Script::new(vec![gemini_text("Gemini is back. What's next?")]);
    let fallback_script = Script::new(vec![openai_text("Fallback here. One step: drink water.")]);
    let gemini = fakes::gemini(gemini_script.clone()).await;
    let fallback = fakes::openai(fallback_script.clone()).await;
    let clock = Arc::new(ManualClock::new());
    let circuit = CircuitPolicy {
        window: Duration::from_secs(60),
        min_calls: 3,
        failure_rate: 0.5,
        open_for: Duration::from_secs(30),
        max_probes: 1,
        probe_successes: 2,
    };
    let agent = Agent::start(
        vec![gemini_client(&gemini), openai_client(&fallback)],
        Budget::default(),
        circuit,
        clock.clone(),
    )
    .await;
    gemini_script.set_failing(true);

    // Three failed attempts (retried) open Gemini's circuit; the fallback answers.
    let reply = agent.say("hello").await;
    assert_eq!(reply, "Fallback here. One step: drink water.");
    assert_eq!(bodies(&gemini).await.len(), 3);
    assert_eq!(agent.circuit(0).await, CircuitState::Open);
    assert_eq!(agent.circuit(1).await, CircuitState::Closed);

    // Open: Gemini is not called at all.
    let reply = agent.say("still there?").await;
    assert_eq!(reply, "Fallback here. One step: drink water.");
    assert_eq!(bodies(&gemini).await.len(), 3, "fail fast");
    let fallback_calls = bodies(&fallback).await;
    assert_eq!(fallback_calls.len(), 2);
    assert_eq!(
        fallback_calls[1]["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["content"],
        "still there?"
    );

    // Both down: the offline rules answer, and say so.
    fallback_script.set_failing(true);
    let reply = agent.say("add task pay rent").await;
    assert!(
        reply.starts_with("Offline mode: Added: pay rent."),
        "{reply}"
    );
    assert_eq!(agent.open_tasks().await, ["pay rent"]);
    assert_eq!(
        bodies(&gemini).await.len(),
        3,
        "Gemini's circuit is still open"
    );

    // After the open period Gemini is probed; it has recovered; two good probes close it.
    gemini_script.set_failing(false);
    clock.advance(Duration::from_secs(31));
    assert_eq!(agent.circuit(0).await, CircuitState::HalfOpen);
    let reply = agent.say("back?").await;
    assert_eq!(reply, "Gemini is back. What's next?");
    assert_eq!(agent.circuit(0).await, CircuitState::HalfOpen);
    let reply = agent.say("great").await;
    assert_eq!(reply, "Gemini is back. What's next?");
    assert_eq!(agent.circuit(0).await, CircuitState::Closed);
    let circuits = agent.actors.llm_circuits().await;
    assert_eq!(circuits[0].provider, "gemini");
    assert_eq!(circuits[0].opened_total, 1);

    let usage = agent.store.llm_usage(agent.user).await.unwrap();
    let providers: Vec<&str> = usage.iter().map(|u| u.provider.as_str()).collect();
    assert_eq!(providers, ["fallback", "fallback", "gemini", "gemini"]);
}
