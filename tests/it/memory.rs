//! Long-term memory end to end: SMS conversations through the real binary (offline, English
//! and French) remember, recall and forget; memories are sealed in the database file; with an
//! embedding model (a fake Gemini on loopback), vectors are computed in the background, turns
//! never wait on the API, and a paraphrase with no shared word reaches the engine first.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use nudge::actors::notifier::NotifierArgs;
use nudge::actors::user::InboundTurn;
use nudge::actors::{ActorSystem, SystemOptions, TurnDeps};
use nudge::agent::{AgentError, RecalledMemory, Reply, TurnEngine, TurnInput};
use nudge::llm::embeddings::{EmbeddingClient, RetryPolicy};
use nudge::memory::MemoryServices;
use nudge::store::{
    self, Channel, Language, MemoryKind, NewMemory, NewUser, Sealer, Store, UserId,
};
use secrecy::SecretString;
use serde_json::Value;
use tokio_util::task::TaskTracker;
use wiremock::matchers::{header, method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{Server, add_user, databases, sid};

const ANA_PHONE: &str = "+14155550101";
const ANA_NUMBER: &str = "+14155559001";
const BOB_PHONE: &str = "+33612345678";
const BOB_NUMBER: &str = "+33755559002";
const KEY: &str = "fake-gemini-key";
/// How long polls for background work wait at most.
const POLL_FOR: Duration = Duration::from_secs(15);

fn user_id(text: &str) -> UserId {
    text.parse().expect("admin user add prints a user id")
}

#[tokio::test]
async fn sms_conversations_remember_recall_and_forget_in_english_and_french() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let data = db.data_dir(dir.path());
        let ana = user_id(&add_user(&data, &db, "Ana", ANA_PHONE, ANA_NUMBER, "en"));
        let bob = user_id(&add_user(&data, &db, "Bob", BOB_PHONE, BOB_NUMBER, "fr"));
        let server = Server::start(&data, &db, &[]);
        let ana_says = |body: &'static str| server.text_owned(ANA_PHONE, ANA_NUMBER, body);
        let bob_says = |body: &'static str| server.text_owned(BOB_PHONE, BOB_NUMBER, body);

        let reply = ana_says("remember that my meds are at 8am").await;
        assert!(
            reply.contains("I'll remember") && reply.contains("8am"),
            "[{}] {reply}",
            db.label
        );
        // A plain statement is extracted after the turn.
        ana_says("I work night shifts").await;
        let reply = ana_says("what do you remember about my pills?").await;
        assert!(
            reply.contains("my meds are at 8am"),
            "[{}] {reply}",
            db.label
        );
        assert!(!reply.contains("night"), "[{}] {reply}", db.label);
        let reply = ana_says("What do you know about me?").await;
        assert!(
            reply.contains("I remember 2 things") && reply.contains("I work night shifts"),
            "[{}] {reply}",
            db.label
        );
        let reply = ana_says("forget that I work night shifts").await;
        assert!(reply.starts_with("Forgotten"), "[{}] {reply}", db.label);

        let reply = bob_says("souviens-toi que je travaille de nuit").await;
        assert!(reply.starts_with("C'est noté"), "[{}] {reply}", db.label);
        let reply = bob_says("Mes médicaments sont à 20h").await;
        assert!(!reply.is_empty());
        let reply = bob_says("qu'est-ce que tu sais sur mon boulot ?").await;
        assert!(
            reply.contains("je travaille de nuit"),
            "[{}] {reply}",
            db.label
        );
        let reply = bob_says("à quelle heure je prends mes cachets ?").await;
        assert!(!reply.is_empty());
        let reply = bob_says("qu'est-ce que tu sais sur moi ?").await;
        assert!(
            reply.contains("Je retiens 2 choses"),
            "[{}] {reply}",
            db.label
        );
        assert!(
            !reply.contains("8am"),
            "Ana's memories stay hers [{}] {reply}",
            db.label
        );
        let reply = bob_says("oublie que je travaille de nuit").await;
        assert!(reply.starts_with("C'est oublié"), "[{}] {reply}", db.label);

        let server = server.restart();
        let reply = server
            .text_owned(ANA_PHONE, ANA_NUMBER, "what do you know about me")
            .await;
        assert!(
            reply.contains("I remember 1 thing")
                && reply.contains("8am")
                && !reply.contains("night"),
            "[{}] {reply}",
            db.label
        );

        let store = server.store().await;
        let anas: Vec<String> = store
            .memories(ana)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(anas, ["my meds are at 8am"], "[{}]", db.label);
        let bobs = store.memories(bob).await.unwrap();
        assert_eq!(bobs.len(), 1, "[{}]", db.label);
        assert_eq!(bobs[0].text, "Mes médicaments sont à 20h");
        assert_eq!(bobs[0].kind, MemoryKind::Health);
        assert!(
            bobs[0].source_message_id.is_some(),
            "extracted from a message"
        );
        assert!(bobs[0].last_used_at.is_some(), "retrieved for a later turn");
        server.stop();
    }
}

#[tokio::test]
async fn the_database_file_holds_no_memory_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let data = db.data_dir(dir.path());
    let ana = user_id(&add_user(&data, &db, "Ana", ANA_PHONE, ANA_NUMBER, "en"));
    let marker = "zanzibar-locker-code-4312";
    {
        let store = store::connect(&db.url, crate::helpers::sealer())
            .await
            .unwrap();
        let new = NewMemory {
            text: format!("my {marker}"),
            kind: MemoryKind::Fact,
            tags: vec!["zanzibar-tag".into()],
            importance: 0.9,
            source_message_id: None,
        };
        store.add_memory(ana, &new, Utc::now()).await.unwrap();
        assert_eq!(
            store.memories(ana).await.unwrap()[0].text,
            format!("my {marker}")
        );
    }
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(&data)
        .unwrap()
        .chain(std::fs::read_dir(dir.path()).unwrap())
    {
        let path = entry.unwrap().path();
        if path.is_file() && path.to_string_lossy().contains("nudge.db") {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(!bytes.is_empty(), "the database files were read");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains("zanzibar"),
        "a memory is readable in the database file"
    );
}

/// A fake Gemini embedding endpoint: one dimension per meaning (so paraphrases with no shared
/// word land close), other words hashed into the remaining dimensions; 256 dimensions.
struct FakeGemini;

const MEANINGS: &[&[&str]] = &[
    &[
        "spider",
        "spiders",
        "crawlies",
        "arachnids",
        "creepy",
        "scare",
        "terrified",
    ],
    &["garden", "gardening", "plants", "flowers", "tomatoes"],
    &["coffee", "espresso", "caffeine", "latte"],
];

fn fake_vector(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; 256];
    for word in text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        match MEANINGS.iter().position(|group| group.contains(&word)) {
            Some(dim) => v[dim] += 1.0,
            None => {
                let hash = word
                    .bytes()
                    .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
                v[MEANINGS.len() + (hash as usize % (256 - MEANINGS.len()))] += 0.2;
            }
        }
    }
    v
}

impl Respond for FakeGemini {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return ResponseTemplate::new(400);
        };
        let text_of = |r: &Value| {
            r["content"]["parts"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        if let Some(requests) = body["requests"].as_array() {
            let embeddings: Vec<Value> = requests
                .iter()
                .map(|r| serde_json::json!({ "values": fake_vector(&text_of(r)) }))
                .collect();
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({ "embeddings": embeddings }))
        } else {
            ResponseTemplate::new(200).set_body_json(
                serde_json::json!({ "embedding": { "values": fake_vector(&text_of(&body)) } }),
            )
        }
    }
}

/// Replies "ok" and keeps the memories each turn was given.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Vec<RecalledMemory>>>>);

#[async_trait]
impl TurnEngine for Recorder {
    async fn respond(&self, _store: &Store, input: TurnInput<'_>) -> Result<Reply, AgentError> {
        self.0.lock().unwrap().push(input.memories.to_vec());
        Ok(Reply::rules("ok".into()))
    }
}

fn turn(body: &str) -> InboundTurn {
    InboundTurn {
        channel: Channel::Web,
        body: body.into(),
        provider_message_id: None,
        segments: None,
        received_at: Utc::now(),
    }
}

#[tokio::test]
async fn with_embeddings_a_paraphrase_with_no_shared_word_reaches_the_engine_first() {
    let gemini = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(
            r"^/v1beta/models/gemini-embedding-001:(embedContent|batchEmbedContents)$",
        ))
        .and(header("x-goog-api-key", KEY))
        .respond_with(FakeGemini)
        .mount(&gemini)
        .await;
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let store = store::connect(&db.url, Sealer::generate()).await.unwrap();
        let user = store
            .create_user(&NewUser {
                display_name: "Ana".into(),
                phone: ANA_PHONE.into(),
                number: ANA_NUMBER.into(),
                language: Language::En,
                time_zone: "Europe/Paris".into(),
            })
            .await
            .unwrap()
            .id;
        for text in [
            "I'm terrified of spiders",
            "I love gardening",
            "Espresso keeps me up",
        ] {
            let new = nudge::memory::new_memory(text, Language::En, false);
            store.add_memory(user, &new, Utc::now()).await.unwrap();
        }
        let recorder = Recorder::default();
        let client = EmbeddingClient::builder(SecretString::from(KEY))
            .base_url(gemini.uri())
            .retry(RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            })
            .build()
            .unwrap();
        let actors = ActorSystem::start(
            TurnDeps {
                store: store.clone(),
                writer: nudge::store::StoreWriter::start(store.clone()),
                engine: Arc::new(recorder.clone()),
                idle_passivate: Duration::from_secs(600),
                memory: MemoryServices {
                    embedder: Some(client),
                    query_budget: Duration::from_secs(2),
                    ..MemoryServices::default()
                },
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
        .unwrap();

        let question = "which creepy crawlies scare me";
        actors.turn(user, turn(question), POLL_FOR).await.unwrap();
        assert_eq!(
            recorder.0.lock().unwrap()[0],
            [],
            "[{}] no shared word: lexical finds nothing",
            db.label
        );

        // The vectors are computed in the background, stored, and handed to the actor.
        let deadline = tokio::time::Instant::now() + POLL_FOR;
        loop {
            let snapshot = actors.inspect(user).await.expect("active");
            if snapshot.embedded_memories == 3 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "[{}] vectors never arrived",
                db.label
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for memory in store.memories(user).await.unwrap() {
            let embedding = memory.embedding.expect("stored with the memory");
            assert_eq!(embedding.model, "gemini-embedding-001@256");
            assert_eq!(embedding.values.len(), 256);
        }

        actors.turn(user, turn(question), POLL_FOR).await.unwrap();
        let given = recorder.0.lock().unwrap()[1].clone();
        assert_eq!(
            given.first().map(|m| m.text.as_str()),
            Some("I'm terrified of spiders"),
            "[{}] {given:?}",
            db.label
        );
        actors
            .turn(user, turn("any tips for my tomatoes?"), POLL_FOR)
            .await
            .unwrap();
        let given = recorder.0.lock().unwrap()[2].clone();
        assert_eq!(
            given.first().map(|m| m.text.as_str()),
            Some("I love gardening"),
            "[{}]",
            db.label
        );
        actors.shutdown(POLL_FOR).await;
    }
    let requests = gemini.received_requests().await.unwrap();
    let tasks: Vec<String> = requests
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .map(|b| b.to_string())
        .collect();
    assert!(tasks.iter().any(|b| b.contains("RETRIEVAL_DOCUMENT")));
    assert!(tasks.iter().any(|b| b.contains("RETRIEVAL_QUERY")));
    assert!(requests.iter().all(|r| !r.url.as_str().contains(KEY)));
}

#[tokio::test]
async fn through_the_binary_vectors_are_stored_and_a_stalled_embedding_api_never_holds_a_turn() {
    let gemini = MockServer::start().await;
    // Documents embed at once; queries stall far longer than any turn may wait.
    Mock::given(method("POST"))
        .and(path_regex(r":batchEmbedContents$"))
        .and(header("x-goog-api-key", KEY))
        .respond_with(FakeGemini)
        .mount(&gemini)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r":embedContent$"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .mount(&gemini)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let data = db.data_dir(dir.path());
    let ana = user_id(&add_user(&data, &db, "Ana", ANA_PHONE, ANA_NUMBER, "en"));
    let base = gemini.uri();
    let server = Server::start(
        &data,
        &db,
        &[
            ("GEMINI_API_KEY", KEY),
            ("NUDGE_GEMINI_BASE_URL", base.as_str()),
            ("NUDGE_EMBEDDING_QUERY_BUDGET_MS", "200"),
        ],
    );
    let reply = server
        .text_owned(
            ANA_PHONE,
            ANA_NUMBER,
            "remember that I'm terrified of spiders",
        )
        .await;
    assert!(reply.contains("I'll remember"), "{reply}");

    let store = server.store().await;
    let deadline = tokio::time::Instant::now() + POLL_FOR;
    loop {
        let memories = store.memories(ana).await.unwrap();
        if memories.iter().all(|m| m.embedding.is_some()) && !memories.is_empty() {
            assert_eq!(
                memories[0].embedding.as_ref().unwrap().model,
                "gemini-embedding-001@256"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the vector was never stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The message's vector never comes (60 s): the turn answers from lexical ranking within the
    // HTTP client's 30 s timeout, i.e. without waiting for the API.
    let reply = server
        .text_owned(ANA_PHONE, ANA_NUMBER, "what do you remember about spiders")
        .await;
    assert!(reply.contains("terrified of spiders"), "{reply}");
    server.stop();
}

impl Server {
    /// Sends one SMS with a fresh message id and returns the reply's text.
    async fn text_owned(&self, from: &str, to: &str, body: &str) -> String {
        self.text(&sid(), from, to, body).await
    }
}
