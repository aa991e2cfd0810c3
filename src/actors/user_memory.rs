//! The long-term-memory cache of a [`UserActor`](super::user::UserActor): the user's memories,
//! loaded with the rest of its state, ranked for every message, kept in step with the store.
//!
//! - **Before a turn**: [`LtmCache::recall`] ranks the memories for the message. With an
//!   embedding model, the message's vector is asked for and waited for at most the query
//!   budget (300 ms by default); past it, or when the API failed recently, ranking is lexical.
//!   A turn never waits longer on the embedding API.
//! - **After the reply is sent** ([`LtmCache::after_turn`]): the retrieved memories are marked
//!   used; changes made during the turn (memory tools, offline memory commands) are picked up by
//!   comparing the store's [`MemoryFingerprint`]; the extractor's facts are remembered;
//!   consolidation runs on what changed (all of it once a day and on activation); memories
//!   without a vector get one from a background task, which writes it to the store and sends
//!   it back to the actor ([`UserMsg::MemoriesEmbedded`](super::user::UserMsg)).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::ActorRef;
use tokio::time::Instant;

use super::user::UserMsg;
use crate::agent::RecalledMemory;
use crate::llm::embeddings::{EmbeddingClient, MAX_BATCH, TaskType};
use crate::memory::consolidate;
use crate::memory::extract::TurnText;
use crate::memory::{MemoryBank, MemoryServices, Ranked, TURN_MEMORIES, remember};
use crate::store::{Memory, MemoryEmbedding, MemoryFingerprint, NewMemory, Result, Store, User};

/// How often a full consolidation runs while the actor stays active.
const CONSOLIDATE_EVERY: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// How long embedding waits after the API failed (the client already retried).
const EMBEDDING_COOL_DOWN: Duration = Duration::from_secs(300);

/// Vectors computed by a background task, as it hands them back to the actor.
#[derive(Debug, Clone)]
pub struct EmbeddedMemories {
    /// `(memory id, updated_at the text was read at, vector)` for each one stored.
    pub stored: Vec<(i64, DateTime<Utc>, MemoryEmbedding)>,
    /// False when the API failed: the actor waits before asking again.
    pub ok: bool,
}

/// What a turn leaves for [`LtmCache::after_turn`].
#[derive(Debug, Clone)]
pub struct PostTurn {
    /// The inbound message: the source of facts extracted from it.
    pub message_id: i64,
    pub message: String,
    pub reply: String,
    pub now: DateTime<Utc>,
    /// Memories retrieved for the turn, to mark as used.
    pub used: Vec<i64>,
    /// The store's memory fingerprint as of the turn's commit (read in the group-commit
    /// writer's transaction): changes made during the turn show in it.
    pub memories: MemoryFingerprint,
}

/// The user's memories and the bookkeeping around them.
#[derive(Default)]
pub struct LtmCache {
    /// `None` until the user's state is loaded.
    bank: Option<MemoryBank>,
    /// The store's fingerprint the bank matches.
    fingerprint: MemoryFingerprint,
    /// When the last full consolidation ran (`None`: not since activation).
    consolidated_at: Option<DateTime<Utc>>,
    /// One background embedding task at a time.
    embedding_in_flight: bool,
    /// After an API failure, no embedding request before this.
    embedding_paused_until: Option<Instant>,
}

impl LtmCache {
    /// Loads the user's memories.
    pub async fn load(&mut self, store: &Store, user: &User) -> Result<()> {
        let fingerprint = store.memory_fingerprint(user.id).await?;
        self.fill(fingerprint, store.memories(user.id).await?, user);
        Ok(())
    }

    /// Fills the cache with `memories`, read at `fingerprint` (as [`Store::activation`]
    /// reads them).
    pub fn fill(&mut self, fingerprint: MemoryFingerprint, memories: Vec<Memory>, user: &User) {
        self.fingerprint = fingerprint;
        self.bank = Some(MemoryBank::new(user.language, memories));
    }

    /// How many memories are cached, and how many of them have a vector of the model.
    pub fn counts(&self, services: &MemoryServices) -> (usize, usize) {
        let Some(bank) = &self.bank else {
            return (0, 0);
        };
        let embedded = match &services.embedder {
            Some(client) => bank.len() - bank.missing_embeddings(&client.model_id()).len(),
            None => 0,
        };
        (bank.len(), embedded)
    }

    /// The best memories for `text` (see the module docs).
    pub async fn recall(
        &mut self,
        services: &MemoryServices,
        text: &str,
        now: DateTime<Utc>,
    ) -> Vec<Ranked> {
        let may_embed = self.may_embed();
        let Some(bank) = self.bank.as_ref().filter(|b| !b.is_empty()) else {
            return Vec::new();
        };
        let vector = match &services.embedder {
            Some(client) if may_embed && bank.has_embeddings(&client.model_id()) => {
                match query_vector(client, text, services.query_budget).await {
                    Ok(vector) => vector,
                    Err(()) => {
                        self.embedding_paused_until = Some(Instant::now() + EMBEDDING_COOL_DOWN);
                        None
                    }
                }
            }
            _ => None,
        };
        let Some(bank) = self.bank.as_ref() else {
            return Vec::new();
        };
        let model = services.embedder.as_ref().map(EmbeddingClient::model_id);
        let vector = model.as_deref().zip(vector.as_deref());
        bank.rank(text, vector, now, TURN_MEMORIES)
    }

    fn may_embed(&self) -> bool {
        self.embedding_paused_until
            .is_none_or(|until| Instant::now() >= until)
    }

    /// The after-turn work (see the module docs). Errors are the store's; the caller logs them.
    pub async fn after_turn(
        &mut self,
        services: &MemoryServices,
        store: &Store,
        user: &User,
        myself: &ActorRef<UserMsg>,
        turn: PostTurn,
    ) -> Result<()> {
        if self.bank.is_none() {
            self.load(store, user).await?;
        }
        if !turn.used.is_empty() {
            store.touch_memories(user.id, &turn.used, turn.now).await?;
        }
        let mut changed = self.pick_up_changes(store, user, turn.memories).await?;
        let bank = self
            .bank
            .get_or_insert_with(|| MemoryBank::new(user.language, Vec::new()));
        bank.touch(&turn.used, turn.now);

        let facts = services
            .extractor
            .extract(&TurnText {
                message: &turn.message,
                reply: &turn.reply,
                language: user.language,
            })
            .await;
        // Whether this work wrote memories: only then has the store's fingerprint moved on
        // from the one just read.
        let mut wrote = !facts.is_empty();
        for fact in facts {
            let new = NewMemory {
                text: fact.text,
                kind: fact.kind,
                tags: fact.tags,
                importance: fact.importance,
                source_message_id: Some(turn.message_id),
            };
            let remembered = remember(store, user.id, bank, &new, turn.now).await?;
            changed.insert(remembered.memory().id);
        }

        let full = self
            .consolidated_at
            .is_none_or(|at| turn.now - at >= CONSOLIDATE_EVERY);
        if full || !changed.is_empty() {
            let plan = consolidate::plan(bank, turn.now, (!full).then_some(&changed));
            if !plan.is_empty() {
                wrote = true;
                let applied = consolidate::apply(store, user.id, bank, &plan, turn.now).await?;
                tracing::debug!(user = %user.id, merged = applied.merged, pruned = applied.pruned, "memories consolidated");
            }
            if full {
                self.consolidated_at = Some(turn.now);
            }
        }
        if wrote {
            self.fingerprint = store.memory_fingerprint(user.id).await?;
        }
        self.embed_missing(services, store, user, myself);
        Ok(())
    }

    /// Reloads the bank when the store's fingerprint (`now_print`) says it changed behind it;
    /// returns the ids added or changed.
    async fn pick_up_changes(
        &mut self,
        store: &Store,
        user: &User,
        now_print: MemoryFingerprint,
    ) -> Result<BTreeSet<i64>> {
        if now_print == self.fingerprint && self.bank.is_some() {
            return Ok(BTreeSet::new());
        }
        let before = self.fingerprint;
        let bank = MemoryBank::load(store, user.id, user.language).await?;
        let changed = bank
            .iter()
            .filter(|m| {
                m.id() > before.max_id || before.max_updated_at.is_none_or(|at| m.updated_at() > at)
            })
            .map(|m| m.id())
            .collect();
        self.bank = Some(bank);
        self.fingerprint = now_print;
        Ok(changed)
    }

    /// Starts a background task embedding up to [`MAX_BATCH`] memories that have no vector,
    /// unless one runs already, the API failed recently, or no model is configured.
    pub fn embed_missing(
        &mut self,
        services: &MemoryServices,
        store: &Store,
        user: &User,
        myself: &ActorRef<UserMsg>,
    ) {
        let (Some(client), Some(bank)) = (&services.embedder, &self.bank) else {
            return;
        };
        if self.embedding_in_flight || !self.may_embed() {
            return;
        }
        let model = client.model_id();
        let batch: Vec<(i64, DateTime<Utc>, String)> = bank
            .missing_embeddings(&model)
            .into_iter()
            .take(MAX_BATCH)
            .map(|m| (m.id(), m.updated_at(), m.text().to_owned()))
            .collect();
        if batch.is_empty() {
            return;
        }
        self.embedding_in_flight = true;
        let (client, store, user_id, myself) =
            (client.clone(), store.clone(), user.id, myself.clone());
        tokio::spawn(async move {
            let texts: Vec<&str> = batch.iter().map(|(_, _, text)| text.as_str()).collect();
            let result = match client
                .embed_batch(&texts, TaskType::RetrievalDocument)
                .await
            {
                Ok(vectors) => {
                    let embedded: Vec<(i64, DateTime<Utc>, MemoryEmbedding)> = batch
                        .iter()
                        .zip(vectors)
                        .map(|((id, computed_for, _), values)| {
                            let embedding = MemoryEmbedding {
                                model: model.clone(),
                                values,
                            };
                            (*id, *computed_for, embedding)
                        })
                        .collect();
                    // One transaction for the batch: a commit per vector would take the
                    // database's write lock once per memory.
                    let stored = match store.set_memory_embeddings(user_id, &embedded).await {
                        Ok(stored) => embedded
                            .into_iter()
                            .zip(stored)
                            .filter_map(|(vector, stored)| stored.then_some(vector))
                            .collect(),
                        Err(error) => {
                            tracing::warn!(user = %user_id, %error, "storing memory vectors failed");
                            Vec::new()
                        }
                    };
                    EmbeddedMemories { stored, ok: true }
                }
                Err(error) => {
                    tracing::warn!(user = %user_id, %error, "embedding memories failed");
                    EmbeddedMemories {
                        stored: Vec::new(),
                        ok: false,
                    }
                }
            };
            // The actor may have been passivated meanwhile: the vectors are stored anyway.
            let _ = myself.cast(UserMsg::MemoriesEmbedded(result));
        });
    }

    /// Takes vectors from the background task into the bank, merges what they show to be
    /// duplicates, and asks for the next batch.
    pub async fn embedded(
        &mut self,
        services: &MemoryServices,
        store: &Store,
        user: &User,
        myself: &ActorRef<UserMsg>,
        result: EmbeddedMemories,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.embedding_in_flight = false;
        if !result.ok {
            self.embedding_paused_until = Some(Instant::now() + EMBEDDING_COOL_DOWN);
            return Ok(());
        }
        let Some(bank) = self.bank.as_mut() else {
            return Ok(());
        };
        let mut focus = BTreeSet::new();
        for (id, computed_for, embedding) in result.stored {
            if bank.set_embedding(id, computed_for, embedding) {
                focus.insert(id);
            }
        }
        if !focus.is_empty() {
            let plan = consolidate::plan(bank, now, Some(&focus));
            if !plan.is_empty() {
                consolidate::apply(store, user.id, bank, &plan, now).await?;
                self.fingerprint = store.memory_fingerprint(user.id).await?;
            }
        }
        self.embed_missing(services, store, user, myself);
        Ok(())
    }
}

/// The message's vector; `None` past `budget` (the request is dropped); `Err` when the API
/// failed. Ranking is lexical without a vector.
async fn query_vector(
    client: &EmbeddingClient,
    text: &str,
    budget: Duration,
) -> Result<Option<Vec<f32>>, ()> {
    if text.trim().is_empty() || budget.is_zero() {
        return Ok(None);
    }
    match tokio::time::timeout(budget, client.embed(text, TaskType::RetrievalQuery)).await {
        Ok(Ok(vector)) => Ok(Some(vector)),
        Ok(Err(error)) => {
            tracing::warn!(%error, "embedding a message failed; ranking lexically");
            Err(())
        }
        Err(_) => {
            tracing::debug!("a message's vector took longer than the budget; ranking lexically");
            Ok(None)
        }
    }
}

/// A ranked memory as the turn engine is given it.
pub fn recalled(ranked: &Ranked) -> RecalledMemory {
    RecalledMemory {
        id: ranked.memory.id,
        text: ranked.memory.text.clone(),
        kind: ranked.memory.kind.as_str().to_owned(),
        score: ranked.score,
    }
}
