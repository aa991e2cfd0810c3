//! Long-term memory as tools: remember a fact, recall what is known about something, forget.
//!
//! The functions take the calling [`User`] and scope every read and write to `user.id`; the
//! [`Tool`] wrappers ([`Remember`], [`Recall`], [`Forget`]) are what the model calls, and the
//! offline memory commands call the functions directly. Ranking here is lexical (the tool has
//! no vector for its query); the user's actor ranks each message with embeddings too, and
//! picks up what these tools changed after the turn.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::registry::{Tool, ToolContext, ToolError, ToolOutput};
use crate::memory::{self, CachedMemory, MAX_MEMORY_CHARS, MemoryBank, Ranked, Remembered};
use crate::store::{Memory, MemoryKind, Store, StoreError, User};

/// The most memories one recall returns.
pub const MAX_RECALL: usize = 20;
/// How many memories recall returns unless asked otherwise.
pub const DEFAULT_RECALL: usize = 5;
/// "Forget …" by words deletes at most this many memories; more matches ask for precision.
pub const MAX_FORGET: usize = 5;

/// Why a memory tool refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The fact is empty once trimmed.
    #[error("the fact to remember is empty")]
    EmptyFact,
    /// The fact is longer than [`MAX_MEMORY_CHARS`].
    #[error("a fact is {chars} characters long, the limit is {MAX_MEMORY_CHARS}")]
    TooLong {
        /// How long the refused fact was.
        chars: usize,
    },
    /// Importance outside 0 to 1.
    #[error("importance must be between 0 and 1")]
    BadImportance,
    /// The query has no word to search by (empty, or only words like "what" and "the").
    #[error("say what to look for")]
    EmptyQuery,
    /// A limit outside 1 to [`MAX_RECALL`].
    #[error("limit must be between 1 and {MAX_RECALL}")]
    BadLimit,
    /// Neither or both of an id and words to forget by.
    #[error("give either the memory's id or words of it, not both")]
    BadTarget,
    /// More memories match the words than one "forget" deletes; nothing was deleted.
    #[error("{count} memories match; say which one more precisely")]
    TooManyMatches {
        /// How many matched.
        count: usize,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores a fact for `user` (or strengthens / rewords the memory it duplicates). Kind, tags
/// and importance default to what the rules read in the fact.
pub async fn remember(
    store: &Store,
    user: &User,
    fact: &str,
    kind: Option<MemoryKind>,
    importance: Option<f32>,
    at: DateTime<Utc>,
) -> Result<Remembered, MemoryError> {
    let text = memory::text::tidy(fact);
    if text.is_empty() {
        return Err(MemoryError::EmptyFact);
    }
    let chars = text.chars().count();
    if chars > MAX_MEMORY_CHARS {
        return Err(MemoryError::TooLong { chars });
    }
    if importance.is_some_and(|i| !(0.0..=1.0).contains(&i)) {
        return Err(MemoryError::BadImportance);
    }
    let mut new = memory::new_memory(&text, user.language, true);
    if let Some(kind) = kind {
        new.kind = kind;
        new.importance = memory::extract::default_importance(kind, true);
    }
    if let Some(importance) = importance {
        new.importance = importance;
    }
    let mut bank = MemoryBank::load(store, user.id, user.language).await?;
    Ok(memory::remember(store, user.id, &mut bank, &new, at).await?)
}

/// The memories of `user` that best match `query`, best first; they are marked used.
pub async fn recall(
    store: &Store,
    user: &User,
    query: &str,
    limit: usize,
    at: DateTime<Utc>,
) -> Result<Vec<Ranked>, MemoryError> {
    if !(1..=MAX_RECALL).contains(&limit) {
        return Err(MemoryError::BadLimit);
    }
    let bank = MemoryBank::load(store, user.id, user.language).await?;
    if bank.terms_of(query).is_empty() {
        return Err(MemoryError::EmptyQuery);
    }
    let ranked = bank.rank(query, None, at, limit);
    touch(store, user, &ranked, at).await?;
    Ok(ranked)
}

/// How many memories `user` has, and the `limit` that matter most (importance, recency).
pub async fn overview(
    store: &Store,
    user: &User,
    limit: usize,
    at: DateTime<Utc>,
) -> Result<(usize, Vec<Ranked>), MemoryError> {
    let bank = MemoryBank::load(store, user.id, user.language).await?;
    let ranked = bank.overview(at, limit);
    Ok((bank.len(), ranked))
}

async fn touch(
    store: &Store,
    user: &User,
    ranked: &[Ranked],
    at: DateTime<Utc>,
) -> Result<(), MemoryError> {
    let ids: Vec<i64> = ranked.iter().map(|r| r.memory.id).collect();
    if !ids.is_empty() {
        store.touch_memories(user.id, &ids, at).await?;
    }
    Ok(())
}

/// What to forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForgetTarget {
    /// One memory by id.
    Id(i64),
    /// Every memory containing all the words of this text (at most [`MAX_FORGET`]).
    Matching(String),
}

/// Deletes memories of `user`; returns those deleted (none when nothing matched).
pub async fn forget(
    store: &Store,
    user: &User,
    target: &ForgetTarget,
) -> Result<Vec<Memory>, MemoryError> {
    let bank = MemoryBank::load(store, user.id, user.language).await?;
    let matching: Vec<&CachedMemory> = match target {
        ForgetTarget::Id(id) => bank.get(*id).into_iter().collect(),
        ForgetTarget::Matching(words) => {
            let wanted = bank.terms_of(words);
            if wanted.is_empty() {
                return Err(MemoryError::EmptyQuery);
            }
            let key = memory::text::key(words);
            bank.iter()
                .filter(|m| {
                    memory::text::key(m.text()) == key
                        || wanted.iter().all(|w| m.terms().binary_search(w).is_ok())
                })
                .collect()
        }
    };
    if matching.len() > MAX_FORGET {
        return Err(MemoryError::TooManyMatches {
            count: matching.len(),
        });
    }
    let ids: Vec<i64> = matching.iter().map(|m| m.id()).collect();
    let deleted = store.forget_memories(user.id, &ids).await?;
    Ok(matching
        .into_iter()
        .filter(|m| deleted.binary_search(&m.id()).is_ok())
        .map(CachedMemory::to_memory)
        .collect())
}

impl From<MemoryError> for ToolError {
    fn from(e: MemoryError) -> Self {
        match e {
            MemoryError::Store(e) => ToolError::Store(e),
            other => ToolError::InvalidArguments(other.to_string()),
        }
    }
}

fn memory_json(memory: &Memory) -> serde_json::Value {
    json!({
        "id": memory.id,
        "text": memory.text,
        "kind": memory.kind,
        "importance": memory.importance,
    })
}

/// Remembers a lasting fact about the user.
pub struct Remember;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RememberArgs {
    /// The fact, short and in the user's words (e.g. "works night shifts", "meds at 8am").
    pub fact: String,
    /// What sort of fact it is; guessed from the words when left out.
    #[serde(default)]
    #[schemars(schema_with = "kind_schema")]
    pub kind: Option<MemoryKind>,
    /// How much it matters, 0 (trivia) to 1 (never forget); by kind when left out.
    pub importance: Option<f32>,
}

#[async_trait]
impl Tool for Remember {
    type Args = RememberArgs;
    const NAME: &'static str = "remember";
    const DESCRIPTION: &'static str = "Store a lasting fact about the user (routines, health, people, \
        preferences, work) so later conversations know it. Not for tasks or reminders.";

    async fn run(
        &self,
        ctx: &ToolContext<'_>,
        args: RememberArgs,
    ) -> Result<ToolOutput, ToolError> {
        let remembered = remember(
            ctx.store,
            ctx.user,
            &args.fact,
            args.kind,
            args.importance,
            ctx.now,
        )
        .await?;
        let (status, summary) = match &remembered {
            Remembered::Added(_) => ("added", "remembered a new fact"),
            Remembered::AlreadyKnown(_) => ("already_known", "the fact was already known"),
            Remembered::Updated(_) => ("updated", "updated a known fact"),
        };
        let mut data = memory_json(remembered.memory());
        data["status"] = json!(status);
        Ok(ToolOutput::new(data, summary))
    }
}

/// A plain string enum of the kinds (the derived schema would be a `oneOf` Gemini refuses).
fn kind_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let kinds: Vec<&str> = MemoryKind::ALL.iter().map(|k| k.as_str()).collect();
    schemars::json_schema!({ "type": "string", "enum": kinds, "nullable": true })
}

/// Recalls what is known about something.
pub struct Recall;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecallArgs {
    /// What to look for, in words (e.g. "medication", "sister", "work schedule").
    pub query: String,
    /// How many memories at most (1 to 20, default 5).
    pub limit: Option<u8>,
}

#[async_trait]
impl Tool for Recall {
    type Args = RecallArgs;
    const NAME: &'static str = "recall";
    const DESCRIPTION: &'static str =
        "Look up what the user told you before about something: the best-matching memories first.";

    async fn run(&self, ctx: &ToolContext<'_>, args: RecallArgs) -> Result<ToolOutput, ToolError> {
        let limit = args.limit.map_or(DEFAULT_RECALL, usize::from);
        let ranked = recall(ctx.store, ctx.user, &args.query, limit, ctx.now).await?;
        let memories: Vec<_> = ranked
            .iter()
            .map(|r| {
                let mut m = memory_json(&r.memory);
                m["score"] = json!(r.score);
                m
            })
            .collect();
        let summary = format!("{} memorie(s) found", memories.len());
        Ok(ToolOutput::new(json!({ "memories": memories }), summary))
    }
}

/// Forgets memories.
pub struct Forget;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgetArgs {
    /// The memory's id, as `recall` shows it.
    pub id: Option<i64>,
    /// Or words the memory contains; every memory with all of them is forgotten (at most 5).
    pub matching: Option<String>,
}

#[async_trait]
impl Tool for Forget {
    type Args = ForgetArgs;
    const NAME: &'static str = "forget";
    const DESCRIPTION: &'static str = "Delete what the user asks you to forget: one memory by id, or those containing given words.";

    async fn run(&self, ctx: &ToolContext<'_>, args: ForgetArgs) -> Result<ToolOutput, ToolError> {
        let target = match (args.id, args.matching) {
            (Some(id), None) => ForgetTarget::Id(id),
            (None, Some(words)) if !words.trim().is_empty() => ForgetTarget::Matching(words),
            _ => return Err(MemoryError::BadTarget.into()),
        };
        let forgotten = forget(ctx.store, ctx.user, &target).await?;
        if forgotten.is_empty() {
            return Err(ToolError::NotFound("no memory matches".into()));
        }
        let data: Vec<_> = forgotten
            .iter()
            .map(|m| json!({ "id": m.id, "text": m.text }))
            .collect();
        let summary = format!("forgot {} memorie(s)", forgotten.len());
        Ok(ToolOutput::new(json!({ "forgotten": data }), summary))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::memory::testing::now;
    use crate::store::testing::on_each_backend;
    use crate::store::{Channel, Language, NewUser};
    use crate::tools::internal;
    use serde_json::Value;

    /// A user of `language`, numbered `n` (phones differ by `n`).
    pub(crate) async fn user(store: &Store, n: u8, language: Language) -> User {
        store
            .create_user(&NewUser {
                display_name: format!("User {n}"),
                phone: format!("+1555000{n:04}"),
                number: format!("+1555900{n:04}"),
                language,
                time_zone: "Europe/Paris".into(),
            })
            .await
            .unwrap()
    }

    async fn call(
        store: &Store,
        user: &User,
        tool: &str,
        args: Value,
    ) -> Result<ToolOutput, ToolError> {
        let ctx = ToolContext {
            store,
            user,
            now: now(),
            channel: Channel::Sms,
        };
        internal::registry().call(tool, &ctx, args).await
    }

    fn invalid(result: Result<ToolOutput, ToolError>) -> String {
        match result {
            Err(ToolError::InvalidArguments(why)) => why,
            other => panic!("expected invalid arguments, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn remember_stores_a_fact_once_and_recall_finds_it_by_other_words() {
        on_each_backend(|store| async move {
            let ana = user(&store, 1, Language::En).await;
            let added = call(
                &store,
                &ana,
                "remember",
                json!({ "fact": "my meds are at 8am" }),
            )
            .await
            .unwrap();
            assert_eq!(added.data["status"], "added");
            assert_eq!(added.data["kind"], "health");
            assert_eq!(added.data["text"], "my meds are at 8am");
            let again = call(
                &store,
                &ana,
                "remember",
                json!({ "fact": "My meds are at 8am." }),
            )
            .await
            .unwrap();
            assert_eq!(again.data["status"], "already_known");
            assert_eq!(again.data["id"], added.data["id"]);
            call(
                &store,
                &ana,
                "remember",
                json!({ "fact": "I work night shifts", "kind": "work", "importance": 0.4 }),
            )
            .await
            .unwrap();
            let reworded = call(
                &store,
                &ana,
                "remember",
                json!({ "fact": "I work the night shift" }),
            )
            .await
            .unwrap();
            assert_eq!(reworded.data["status"], "updated");
            assert_eq!(store.memories(ana.id).await.unwrap().len(), 2);

            let found = call(
                &store,
                &ana,
                "recall",
                json!({ "query": "when do I take my pills" }),
            )
            .await
            .unwrap();
            let memories = found.data["memories"].as_array().unwrap();
            assert_eq!(memories[0]["text"], "my meds are at 8am");
            assert_eq!(memories.len(), 1);
            let used = store
                .memory(ana.id, memories[0]["id"].as_i64().unwrap())
                .await
                .unwrap();
            assert_eq!(
                used.last_used_at,
                Some(now()),
                "recall marks what it returns as used"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn bad_arguments_are_refused_before_anything_is_stored() {
        on_each_backend(|store| async move {
            let ana = user(&store, 1, Language::En).await;
            let long = "x".repeat(MAX_MEMORY_CHARS + 1);
            for args in [
                json!({}),
                json!({ "fact": "" }),
                json!({ "fact": "   " }),
                json!({ "fact": long }),
                json!({ "fact": "likes tea", "importance": 1.5 }),
                json!({ "fact": "likes tea", "importance": -0.1 }),
                json!({ "fact": "likes tea", "kind": "diary" }),
                json!({ "fact": "likes tea", "user_id": "someone-else" }),
            ] {
                invalid(call(&store, &ana, "remember", args).await);
            }
            assert_eq!(store.memories(ana.id).await.unwrap(), []);
            for args in [
                json!({}),
                json!({ "query": "" }),
                json!({ "query": "what do you know" }),
                json!({ "query": "tea", "limit": 0 }),
                json!({ "query": "tea", "limit": 21 }),
                json!({ "query": "tea", "limit": 300 }),
            ] {
                invalid(call(&store, &ana, "recall", args).await);
            }
            for args in [
                json!({}),
                json!({ "id": 1, "matching": "tea" }),
                json!({ "matching": " " }),
            ] {
                invalid(call(&store, &ana, "forget", args).await);
            }
        })
        .await;
    }

    #[tokio::test]
    async fn forget_deletes_by_id_or_by_words_and_asks_when_too_many_match() {
        on_each_backend(|store| async move {
            let ana = user(&store, 1, Language::Fr).await;
            let dog = remember(&store, &ana, "mon chien s'appelle Pixel", None, None, now())
                .await
                .unwrap();
            remember(&store, &ana, "je travaille de nuit", None, None, now())
                .await
                .unwrap();
            for n in 0..6 {
                remember(
                    &store,
                    &ana,
                    &format!("j'aime le café numéro {n}"),
                    None,
                    None,
                    now(),
                )
                .await
                .unwrap();
            }
            let forgotten = call(&store, &ana, "forget", json!({ "matching": "mon chien" }))
                .await
                .unwrap();
            assert_eq!(forgotten.data["forgotten"][0]["id"], dog.memory().id);
            assert!(matches!(
                call(&store, &ana, "forget", json!({ "id": dog.memory().id })).await,
                Err(ToolError::NotFound(_))
            ));
            let why = invalid(call(&store, &ana, "forget", json!({ "matching": "café" })).await);
            assert!(why.contains("6 memories match"), "{why}");
            assert_eq!(
                store.memories(ana.id).await.unwrap().len(),
                7,
                "nothing deleted"
            );
            let night = call(
                &store,
                &ana,
                "forget",
                json!({ "matching": "travail de nuit" }),
            )
            .await
            .unwrap();
            assert_eq!(night.data["forgotten"].as_array().unwrap().len(), 1);
        })
        .await;
    }

    #[tokio::test]
    async fn one_users_memory_calls_never_read_or_change_another_users_memories() {
        on_each_backend(|store| async move {
            let ana = user(&store, 1, Language::En).await;
            let bob = user(&store, 2, Language::En).await;
            let secret = call(
                &store,
                &ana,
                "remember",
                json!({ "fact": "my locker code is 4312" }),
            )
            .await
            .unwrap();
            let id = secret.data["id"].as_i64().unwrap();

            let found = call(&store, &bob, "recall", json!({ "query": "locker code" }))
                .await
                .unwrap();
            assert_eq!(found.data["memories"], json!([]));
            assert!(matches!(
                call(&store, &bob, "forget", json!({ "id": id })).await,
                Err(ToolError::NotFound(_))
            ));
            assert!(matches!(
                call(&store, &bob, "forget", json!({ "matching": "locker code" })).await,
                Err(ToolError::NotFound(_))
            ));
            let bobs = call(
                &store,
                &bob,
                "remember",
                json!({ "fact": "my locker code is 4312" }),
            )
            .await
            .unwrap();
            assert_eq!(bobs.data["status"], "added", "Bob's memory is his own");
            assert_ne!(bobs.data["id"], json!(id));

            let anas = store.memories(ana.id).await.unwrap();
            assert_eq!(anas.len(), 1);
            assert_eq!(
                anas[0].last_used_at, None,
                "Bob's recall did not touch Ana's memory"
            );
            assert_eq!(store.memories(bob.id).await.unwrap().len(), 1);
        })
        .await;
    }

    #[test]
    fn the_model_sees_the_memory_tools_with_their_kinds() {
        let declarations = internal::registry().declarations();
        let remember = declarations.iter().find(|d| d.name == "remember").unwrap();
        let kinds = &remember.parameters["properties"]["kind"]["enum"];
        assert!(
            kinds
                .as_array()
                .is_some_and(|k| k.contains(&json!("health"))),
            "{}",
            remember.parameters
        );
        assert_eq!(remember.parameters["required"], json!(["fact"]));
        assert!(declarations.iter().any(|d| d.name == "recall"));
        assert!(declarations.iter().any(|d| d.name == "forget"));
    }
}
