//! Long-term memory (LTM): what Nudge keeps knowing about a user between conversations
//! ("works night shifts", "meds at 8am"), and how it finds the few facts that matter for a
//! message.
//!
//! # Layout
//!
//! | file | what it holds |
//! | --- | --- |
//! | `mod.rs` | [`MemoryBank`] (one user's memories, indexed), ranking, [`remember`] |
//! | `cached.rs` | [`CachedMemory`]: a memory as the bank keeps it, compact |
//! | `lexical.rs` | the English/French tokenizer, term ids, BM25 |
//! | `consolidate.rs` | near-duplicates merged, stale low-importance memories decayed and pruned |
//! | `extract.rs` | the [`Extractor`] hook and its offline, rules-based implementation |
//! | `text.rs` | accent-blind prefix matching, the same-text key |
//!
//! # Ranking
//!
//! For a message `q` and each memory `m`:
//!
//! ```text
//! lexical(q, m)  = bm25(q, m) / max over memories of bm25(q, ·)         in [0, 1]
//! semantic(q, m) = clamp((cos(q, m) − 0.30) / (1 − 0.30), 0, 1)         when both have vectors
//!                                                                       of the same model
//! relevance      = max(lexical, semantic)
//! recency        = 0.5 ^ (days since m was last created, changed or used / 30)
//! score          = 0.70 · relevance + 0.20 · importance′ + 0.10 · recency
//! ```
//!
//! where `importance′` is the importance after decay ([`consolidate::effective_importance`]).
//! Only memories with `relevance ≥ 0.05` are candidates: importance and recency order the
//! relevant memories, they never bring an unrelated one in. Without an embedding model (or
//! before a memory's vector is computed) `semantic` is 0 and ranking is lexical.

pub mod cached;
pub mod consolidate;
pub mod extract;
pub mod lexical;
pub mod text;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::llm::embeddings::EmbeddingClient;
use crate::store::{
    Language, Memory, MemoryEmbedding, MemoryKind, MergedMemory, NewMemory, Result, Store, UserId,
};
pub use cached::CachedMemory;
pub use extract::{Extractor, Fact, RulesExtractor};
use lexical::{TermId, Tokenizer};

/// Weight of relevance in a memory's score.
pub const RELEVANCE_WEIGHT: f32 = 0.70;
/// Weight of (decayed) importance in a memory's score.
pub const IMPORTANCE_WEIGHT: f32 = 0.20;
/// Weight of recency in a memory's score.
pub const RECENCY_WEIGHT: f32 = 0.10;
/// Recency halves every this many days without use.
pub const RECENCY_HALF_LIFE_DAYS: f32 = 30.0;
/// Cosine similarity at or below which two texts count as unrelated.
pub const COSINE_FLOOR: f32 = 0.30;
/// Least relevance a memory needs to be retrieved at all.
pub const MIN_RELEVANCE: f32 = 0.05;
/// How many memories a turn is given.
pub const TURN_MEMORIES: usize = 5;
/// The longest memory kept, in characters.
pub const MAX_MEMORY_CHARS: usize = 500;

/// What the memory machinery of a user actor needs: optional embeddings, an extractor, and
/// how long a turn may wait for its message's vector.
#[derive(Clone)]
pub struct MemoryServices {
    /// Set when an embedding model is configured; ranking is lexical without it.
    pub embedder: Option<EmbeddingClient>,
    /// Finds durable facts in each turn.
    pub extractor: Arc<dyn Extractor>,
    /// The longest a turn waits for its message's vector before ranking lexically.
    pub query_budget: Duration,
}

impl Default for MemoryServices {
    fn default() -> Self {
        Self {
            embedder: None,
            extractor: Arc::new(RulesExtractor),
            query_budget: Duration::from_millis(300),
        }
    }
}

/// A memory ranked for a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// The memory itself (a copy: the bank keeps its own).
    pub memory: Memory,
    /// How well it matches the message, 0 to 1.
    pub relevance: f32,
    /// The blended score (see the module docs); higher is better.
    pub score: f32,
}

/// One user's memories in memory, indexed for ranking. Owned by the user's actor (its LTM
/// cache) or built for one call from the store.
pub struct MemoryBank {
    /// The user's language: which stemmer reads the memories.
    language: Language,
    /// Reads memories and queries into terms.
    tokenizer: Tokenizer,
    /// Every memory, by id (so oldest first), each with its terms: the whole BM25 index
    /// ([`lexical::bm25`] derives document frequencies and the average length per query).
    memories: Vec<CachedMemory>,
}

impl MemoryBank {
    /// A bank of `memories`, tokenized in `language`.
    pub fn new(language: Language, mut memories: Vec<Memory>) -> Self {
        let tokenizer = Tokenizer::new(language);
        memories.sort_unstable_by_key(|m| m.id);
        memories.dedup_by_key(|m| m.id);
        // Into a vector of its own: collecting would reuse the larger `Vec<Memory>`
        // allocation in place, and keep its size for as long as the bank lives.
        let mut cached = Vec::with_capacity(memories.len());
        cached.extend(memories.into_iter().map(|memory| {
            let terms = tokenizer.sorted_term_ids(&memory.text);
            CachedMemory::new(memory, terms)
        }));
        Self {
            language,
            tokenizer,
            memories: cached,
        }
    }

    /// Loads a user's memories from the store.
    pub async fn load(store: &Store, user: UserId, language: Language) -> Result<Self> {
        Ok(Self::new(language, store.memories(user).await?))
    }

    pub fn language(&self) -> Language {
        self.language
    }

    pub fn len(&self) -> usize {
        self.memories.len()
    }

    pub fn is_empty(&self) -> bool {
        self.memories.is_empty()
    }

    fn position(&self, id: i64) -> std::result::Result<usize, usize> {
        self.memories.binary_search_by_key(&id, CachedMemory::id)
    }

    pub fn get(&self, id: i64) -> Option<&CachedMemory> {
        self.position(id).ok().map(|i| &self.memories[i])
    }

    /// Every memory, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &CachedMemory> {
        self.memories.iter()
    }

    /// The term ids of `text`, sorted, repeats kept: what near-duplicate detection compares
    /// with [`CachedMemory::terms`].
    pub fn terms_of(&self, text: &str) -> Vec<TermId> {
        self.tokenizer.sorted_term_ids(text)
    }

    /// The term ids of a memory of the bank, sorted, repeats kept (empty for an unknown id).
    pub fn terms(&self, id: i64) -> &[TermId] {
        self.get(id).map_or(&[], CachedMemory::terms)
    }

    /// Adds a memory or replaces the one with its id.
    pub fn upsert(&mut self, memory: Memory) {
        let terms = self.tokenizer.sorted_term_ids(&memory.text);
        let memory = CachedMemory::new(memory, terms);
        match self.position(memory.id()) {
            Ok(i) => self.memories[i] = memory,
            Err(i) => {
                // One more slot, not a doubling: the bank lives as long as the actor.
                self.memories.reserve_exact(1);
                self.memories.insert(i, memory);
            }
        }
    }

    pub fn remove(&mut self, id: i64) {
        if let Ok(i) = self.position(id) {
            self.memories.remove(i);
        }
    }

    /// Records a vector computed for the text as of `computed_for`; ignored when the memory is
    /// gone or its text changed since.
    pub fn set_embedding(
        &mut self,
        id: i64,
        computed_for: DateTime<Utc>,
        embedding: MemoryEmbedding,
    ) -> bool {
        match self.position(id) {
            Ok(i) if self.memories[i].updated_at() == computed_for => {
                self.memories[i].set_vector(embedding);
                true
            }
            _ => false,
        }
    }

    /// Marks memories as used at `at`.
    pub fn touch(&mut self, ids: &[i64], at: DateTime<Utc>) {
        for id in ids {
            if let Ok(i) = self.position(*id) {
                self.memories[i].set_last_used(at);
            }
        }
    }

    /// Memories without a vector of `model`, oldest first.
    pub fn missing_embeddings(&self, model: &str) -> Vec<&CachedMemory> {
        self.iter()
            .filter(|m| m.vector().is_none_or(|v| &*v.model != model))
            .collect()
    }

    /// Whether any memory has a vector of `model` (else a query vector would be useless).
    pub fn has_embeddings(&self, model: &str) -> bool {
        self.iter()
            .any(|m| m.vector().is_some_and(|v| &*v.model == model))
    }

    /// The memory stored under the same text, if any ([`text::key`]).
    pub fn same_text(&self, text: &str) -> Option<&CachedMemory> {
        let key = text::key(text);
        self.iter().find(|m| text::key(m.text()) == key)
    }

    /// The best `limit` memories for `query` (see the module docs). `vector` is the query's
    /// vector and the model that computed it, when there is one.
    pub fn rank(
        &self,
        query: &str,
        vector: Option<(&str, &[f32])>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Vec<Ranked> {
        let hits = lexical::bm25(
            &self.tokenizer.term_ids(query),
            &self.memories,
            CachedMemory::terms,
        );
        // Lexical relevance: BM25 over the best match's.
        let best = hits.first().map_or(0.0, |h| h.1);
        let hits = hits
            .iter()
            .filter(|_| best > 0.0)
            .map(|&(i, s)| (i, s / best));
        // (index in the bank, relevance, score)
        let mut scored: Vec<(usize, f32, f32)> = Vec::new();
        let mut push = |i: usize, relevance: f32| {
            if relevance >= MIN_RELEVANCE {
                scored.push((i, relevance, blend(relevance, &self.memories[i], now)));
            }
        };
        match vector {
            // Every memory may be close in meaning: one pass over all of them.
            Some((model, query_vector)) => {
                let mut lexical = vec![0.0f32; self.memories.len()];
                for (i, relevance) in hits {
                    lexical[i] = relevance;
                }
                let query_norm = norm(query_vector);
                for (i, memory) in self.memories.iter().enumerate() {
                    let semantic = match memory.vector() {
                        Some(v)
                            if &*v.model == model
                                && v.values.len() == query_vector.len()
                                && v.norm > 0.0
                                && query_norm > 0.0 =>
                        {
                            let cosine = dot(query_vector, &v.values) / (query_norm * v.norm);
                            semantic_relevance(cosine)
                        }
                        _ => 0.0,
                    };
                    push(i, lexical[i].max(semantic));
                }
            }
            // Only memories sharing a term with the query can be relevant.
            None => {
                for (i, relevance) in hits {
                    push(i, relevance);
                }
            }
        }
        self.best(&mut scored, limit)
    }

    /// The `limit` best of `(index, relevance, score)`, copied out of the bank (only those);
    /// equal scores, newest first.
    fn best(&self, scored: &mut [(usize, f32, f32)], limit: usize) -> Vec<Ranked> {
        scored.sort_by(|a, b| b.2.total_cmp(&a.2).then(b.0.cmp(&a.0)));
        scored
            .iter()
            .take(limit)
            .map(|&(i, relevance, score)| Ranked {
                memory: self.memories[i].to_memory(),
                relevance,
                score,
            })
            .collect()
    }

    /// The memories that matter most regardless of a message (importance, then recency): what
    /// "what do you know about me" shows.
    pub fn overview(&self, now: DateTime<Utc>, limit: usize) -> Vec<Ranked> {
        let mut scored: Vec<(usize, f32, f32)> = self
            .iter()
            .enumerate()
            .map(|(i, memory)| (i, 0.0, blend(0.0, memory, now)))
            .collect();
        self.best(&mut scored, limit)
    }
}

/// The blended score of a memory of `relevance` at `now`.
pub fn blend(relevance: f32, memory: &CachedMemory, now: DateTime<Utc>) -> f32 {
    let touched = memory.last_touched();
    RELEVANCE_WEIGHT * relevance
        + IMPORTANCE_WEIGHT * consolidate::effective_importance(memory.importance(), touched, now)
        + RECENCY_WEIGHT * recency(touched, now)
}

/// 1 for a memory touched (created, changed or used) now, halving every
/// [`RECENCY_HALF_LIFE_DAYS`].
pub fn recency(last_touched: DateTime<Utc>, now: DateTime<Utc>) -> f32 {
    0.5f32.powf(days_between(last_touched, now) / RECENCY_HALF_LIFE_DAYS)
}

/// Whole and fractional days from `from` to `to` (0 when `to` is earlier).
pub fn days_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f32 {
    ((to - from).num_seconds().max(0) as f32) / 86_400.0
}

/// Cosine similarity of two vectors (0 when either has no length).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (norm_a, norm_b) = (norm(a), norm(b));
    if norm_a == 0.0 || norm_b == 0.0 {
        return 0.0;
    }
    dot(a, b) / (norm_a * norm_b)
}

/// The length of a vector.
pub fn norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt()
}

/// The dot product of two vectors (over the shorter length), in eight independent lanes so
/// the compiler keeps them in SIMD registers.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0.0f32; LANES];
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in chunks_a.zip(chunks_b) {
        if let (Ok(x), Ok(y)) = (<&[f32; LANES]>::try_from(x), <&[f32; LANES]>::try_from(y)) {
            for lane in 0..LANES {
                lanes[lane] += x[lane] * y[lane];
            }
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// A cosine similarity as relevance: 0 at or below [`COSINE_FLOOR`], 1 for the same direction.
pub fn semantic_relevance(cosine: f32) -> f32 {
    ((cosine - COSINE_FLOOR) / (1.0 - COSINE_FLOOR)).clamp(0.0, 1.0)
}

/// What [`remember`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Remembered {
    /// A new memory.
    Added(Memory),
    /// The same text was already known; its importance was raised if the new one was higher.
    AlreadyKnown(Memory),
    /// A near-duplicate was updated to the new wording (it keeps its id and age).
    Updated(Memory),
}

impl Remembered {
    pub fn memory(&self) -> &Memory {
        match self {
            Remembered::Added(m) | Remembered::AlreadyKnown(m) | Remembered::Updated(m) => m,
        }
    }
}

/// Stores a fact for a user, unless the bank already knows it: the same text raises the
/// known memory's importance (if lower); a near-duplicate of the same kind
/// ([`consolidate::is_near_duplicate`]) takes the new wording. The bank is kept in step.
pub async fn remember(
    store: &Store,
    user: UserId,
    bank: &mut MemoryBank,
    new: &NewMemory,
    at: DateTime<Utc>,
) -> Result<Remembered> {
    if let Some(known) = bank.same_text(&new.text).map(CachedMemory::to_memory) {
        if new.importance > known.importance {
            let raised = store
                .set_memory_importance(user, known.id, new.importance, at)
                .await?;
            bank.upsert(raised.clone());
            return Ok(Remembered::AlreadyKnown(raised));
        }
        return Ok(Remembered::AlreadyKnown(known));
    }
    let terms = bank.terms_of(&new.text);
    let similar = bank
        .iter()
        .find(|m| m.kind() == new.kind && consolidate::is_near_duplicate(&terms, m.terms()));
    if let Some(old) = similar {
        let merged = MergedMemory {
            text: new.text.clone(),
            tags: consolidate::union_tags(old.tags().chain(new.tags.iter().map(String::as_str))),
            importance: old.importance().max(new.importance),
        };
        let old = old.id();
        let updated = store.merge_memories(user, old, &merged, &[], at).await?;
        bank.upsert(updated.clone());
        return Ok(Remembered::Updated(updated));
    }
    let added = store.add_memory(user, new, at).await?;
    bank.upsert(added.clone());
    Ok(Remembered::Added(added))
}

/// A new memory with the kind, tags and default importance the rules give `text`.
pub fn new_memory(text: &str, language: Language, explicit: bool) -> NewMemory {
    let kind = extract::classify(text, language);
    NewMemory {
        text: text::tidy(text),
        kind,
        tags: extract::tags(text, language),
        importance: extract::default_importance(kind, explicit),
        source_message_id: None,
    }
}

/// The kinds a memory can be, for prompts and tool descriptions.
pub fn kinds() -> impl Iterator<Item = MemoryKind> {
    MemoryKind::ALL.into_iter()
}

/// What the memory tests share: a fixed clock and memories made on it.
#[cfg(test)]
pub(crate) mod testing {
    use chrono::{DateTime, Duration, TimeZone, Utc};

    use crate::store::{Memory, MemoryKind};

    /// The fixed clock of memory tests.
    pub fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
            .single()
            .expect("a valid date")
    }

    /// A memory of `kind` created `age_days` before [`now`], never used, without a vector.
    pub fn memory(id: i64, text: &str, kind: MemoryKind, importance: f32, age_days: i64) -> Memory {
        let at = now() - Duration::days(age_days);
        Memory {
            id,
            text: text.to_owned(),
            kind,
            tags: vec![format!("t{id}")],
            importance,
            source_message_id: None,
            created_at: at,
            updated_at: at,
            last_used_at: None,
            embedding: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::now;
    use super::*;
    use chrono::Duration as Days;

    fn memory(id: i64, text: &str, importance: f32, age_days: i64) -> Memory {
        testing::memory(id, text, MemoryKind::Fact, importance, age_days)
    }

    fn bank(language: Language) -> MemoryBank {
        MemoryBank::new(
            language,
            vec![
                memory(1, "I work night shifts at the hospital", 0.6, 10),
                memory(2, "My meds are at 8am", 0.9, 40),
                memory(3, "My sister Julie lives in Lyon", 0.5, 5),
                memory(4, "I hate phone calls, text me instead", 0.5, 2),
                memory(5, "Je suis allergique aux arachides", 0.9, 100),
                memory(6, "Mon chien s'appelle Pixel", 0.4, 3),
            ],
        )
    }

    fn first(bank: &MemoryBank, query: &str) -> Option<i64> {
        bank.rank(query, None, now(), 3)
            .first()
            .map(|r| r.memory.id)
    }

    #[test]
    fn the_relevant_memory_ranks_first_for_paraphrased_questions() {
        let bank = bank(Language::En);
        for (query, expected) in [
            ("when do I take my pills?", 2),
            ("what time is my medication", 2),
            ("remind me about my medicine", 2),
            ("what's my job again?", 1),
            ("do I work overnight this week?", 1),
            ("how's my sister doing", 3),
            ("should I call you?", 4),
            ("can I eat peanuts? allergic", 5),
            ("what's my dog called", 6),
        ] {
            assert_eq!(first(&bank, query), Some(expected), "{query}");
        }
    }

    #[test]
    fn french_questions_find_french_and_english_memories() {
        let bank = bank(Language::Fr);
        for (query, expected) in [
            ("à quelle heure sont mes médicaments ?", 2),
            ("je prends mes cachets quand ?", 2),
            ("est-ce que je travaille de nuit ?", 1),
            ("comment va ma sœur ?", 3),
            ("je suis allergique à quoi ?", 5),
            ("comment s'appelle mon chien", 6),
        ] {
            assert_eq!(first(&bank, query), Some(expected), "{query}");
        }
    }

    #[test]
    fn a_bank_keeps_no_spare_slots() {
        let mut bank = bank(Language::En);
        assert_eq!(bank.memories.capacity(), bank.len());
        bank.upsert(memory(9, "I play the piano", 0.5, 1));
        bank.upsert(memory(0, "I sing", 0.5, 1));
        assert_eq!(bank.memories.capacity(), bank.len());
        let ids: Vec<i64> = bank.iter().map(CachedMemory::id).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6, 9]);
        bank.remove(4);
        assert!(bank.get(4).is_none());
        assert_eq!(
            bank.get(9).map(CachedMemory::text),
            Some("I play the piano")
        );
    }

    #[test]
    fn unrelated_messages_retrieve_nothing() {
        let bank = bank(Language::En);
        assert!(bank.rank("hello there", None, now(), 5).is_empty());
        assert!(bank.rank("add task buy stamps", None, now(), 5).is_empty());
    }

    #[test]
    fn importance_and_recency_order_equally_relevant_memories() {
        let bank = MemoryBank::new(
            Language::En,
            vec![
                memory(1, "coffee with Sam", 0.3, 200),
                memory(2, "coffee with Sam", 0.9, 200),
                memory(3, "coffee with Sam", 0.3, 1),
            ],
        );
        let ids: Vec<i64> = bank
            .rank("coffee", None, now(), 3)
            .iter()
            .map(|r| r.memory.id)
            .collect();
        assert_eq!(ids, [2, 3, 1]);
        let overview: Vec<i64> = bank
            .overview(now(), 2)
            .iter()
            .map(|r| r.memory.id)
            .collect();
        assert_eq!(overview, [2, 3]);
    }

    #[test]
    fn vectors_of_the_same_model_rank_a_paraphrase_with_no_shared_word() {
        let mut bank = MemoryBank::new(
            Language::En,
            vec![
                memory(1, "I'm terrified of spiders", 0.5, 1),
                memory(2, "I love gardening", 0.5, 1),
            ],
        );
        let at = bank.get(1).unwrap().updated_at();
        assert!(bank.set_embedding(
            1,
            at,
            MemoryEmbedding {
                model: "m@2".into(),
                values: vec![1.0, 0.0]
            }
        ));
        assert!(bank.set_embedding(
            2,
            at,
            MemoryEmbedding {
                model: "m@2".into(),
                values: vec![0.0, 1.0]
            }
        ));
        let query = "which creepy crawlies scare me";
        assert!(
            bank.rank(query, None, now(), 3).is_empty(),
            "no shared word"
        );
        let ranked = bank.rank(query, Some(("m@2", &[0.96, 0.28])), now(), 3);
        assert_eq!(ranked.first().map(|r| r.memory.id), Some(1));
        // Another model's vectors are never compared.
        assert!(
            bank.rank(query, Some(("other@2", &[0.96, 0.28])), now(), 3)
                .is_empty()
        );
        assert_eq!(bank.missing_embeddings("m@2").len(), 0);
        assert_eq!(bank.missing_embeddings("other@2").len(), 2);
        // A vector for an older text is ignored.
        assert!(!bank.set_embedding(
            1,
            at - Days::days(1),
            MemoryEmbedding {
                model: "m@2".into(),
                values: vec![0.0, 1.0]
            }
        ));
    }

    #[test]
    fn cosine_matches_the_textbook_formula_at_any_length() {
        let a: Vec<f32> = (0..13).map(|i| (i as f32 * 0.7).sin()).collect();
        let b: Vec<f32> = (0..13).map(|i| (i as f32 * 0.3).cos()).collect();
        let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let expected = dot / (norm(&a) * norm(&b));
        assert!((cosine(&a, &b) - expected).abs() < 1e-5);
    }

    #[test]
    fn cosine_and_semantic_relevance_are_bounded() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert_eq!(semantic_relevance(1.0), 1.0);
        assert_eq!(semantic_relevance(0.1), 0.0);
        assert_eq!(semantic_relevance(-1.0), 0.0);
    }
}
