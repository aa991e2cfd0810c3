//! A memory as a [`MemoryBank`](super::MemoryBank) keeps it: what ranking, consolidation and
//! the memory tools read, with its terms, in a compact form. An active user's actor holds
//! every memory of the user this way, so its size is paid once per memory per active user:
//! text and tags in one boxed string (no spare capacity, one allocation), the vector only when
//! there is one (its model, values and length behind one box), the terms as 32-bit ids shared
//! by BM25 and near-duplicate detection. [`CachedMemory::to_memory`] gives back the store's
//! [`Memory`].

use std::num::NonZeroI64;

use chrono::{DateTime, Utc};

use super::lexical::TermId;
use super::norm;
use crate::store::{Memory, MemoryEmbedding, MemoryKind};

/// One memory of a bank.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedMemory {
    id: i64,
    /// The text, then each tag (short labels, as stored) after a [`TAG_SEPARATOR`]: one
    /// allocation for both.
    text_and_tags: Box<str>,
    /// Where the text ends in `text_and_tags`.
    text_len: usize,
    /// The text's term ids, sorted, repeats kept: a term's repeats are its frequency (BM25),
    /// their number the text's length (BM25), the distinct ones its term set (near-duplicates).
    terms: Box<[TermId]>,
    /// The memory's vector, when one was computed.
    vector: Option<Box<Vector>>,
    /// The message the fact was learnt from (store ids start at 1).
    source_message_id: Option<NonZeroI64>,
    created_at: Stamp,
    /// Compared with the time a vector's text was read at, so a vector never lands on a
    /// changed text.
    updated_at: Stamp,
    /// Recency and decay count from it.
    /// [`Stamp::NEVER`] until the memory is used.
    last_used_at: Stamp,
    importance: f32,
    kind: MemoryKind,
}

/// Comes before each tag in [`CachedMemory::text_and_tags`]. Tags never hold control
/// characters (the API refuses them; the rules make tags of concept names); one that did
/// would read back as two.
const TAG_SEPARATOR: char = '\u{1f}';

/// A time in 8 bytes (a `DateTime<Utc>` takes 12, 16 as an `Option`): nanoseconds since
/// 1970, exact from 1677 to 2262 (the times a store holds), clamped outside. Also what the
/// recent conversation of a user actor keeps its times as ([`crate::agent::history`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(i64);

impl Stamp {
    /// "Never used": below every time.
    const NEVER: Stamp = Stamp(i64::MIN);

    pub fn new(at: DateTime<Utc>) -> Self {
        match at.timestamp_nanos_opt() {
            Some(nanos) => Stamp(nanos.max(i64::MIN + 1)),
            None if at.timestamp() < 0 => Stamp(i64::MIN + 1),
            None => Stamp(i64::MAX),
        }
    }

    pub fn time(self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.0)
    }
}

/// A memory's vector, with its length so that ranking computes dot products only.
#[derive(Debug, Clone, PartialEq)]
pub struct Vector {
    /// The model that computed it: only a query vector of the same model is compared.
    pub model: Box<str>,
    pub values: Box<[f32]>,
    /// The length of `values`.
    pub norm: f32,
}

impl Vector {
    fn new(embedding: MemoryEmbedding) -> Box<Self> {
        Box::new(Self {
            norm: norm(&embedding.values),
            model: embedding.model.into_boxed_str(),
            values: embedding.values.into_boxed_slice(),
        })
    }
}

impl CachedMemory {
    /// `memory` with the ids of its terms (sorted, repeats kept).
    pub(super) fn new(memory: Memory, terms: Vec<TermId>) -> Self {
        // Exactly the bytes needed: the allocator keeps slack it cannot split off.
        let text_len = memory.text.len();
        let tags_len: usize = memory.tags.iter().map(|t| 1 + t.len()).sum();
        let mut text_and_tags = String::with_capacity(text_len + tags_len);
        text_and_tags.push_str(&memory.text);
        for tag in &memory.tags {
            text_and_tags.push(TAG_SEPARATOR);
            text_and_tags.push_str(tag);
        }
        Self {
            id: memory.id,
            text_and_tags: text_and_tags.into_boxed_str(),
            text_len,
            // A copy of exactly its length: shrinking `terms` where it lies would keep the
            // vector's spare capacity, which the allocator does not split off.
            terms: Box::from(terms.as_slice()),
            vector: memory.embedding.map(Vector::new),
            source_message_id: memory.source_message_id.and_then(NonZeroI64::new),
            created_at: Stamp::new(memory.created_at),
            updated_at: Stamp::new(memory.updated_at),
            last_used_at: memory.last_used_at.map_or(Stamp::NEVER, Stamp::new),
            importance: memory.importance,
            kind: memory.kind,
        }
    }

    /// The memory as the store gives it.
    pub fn to_memory(&self) -> Memory {
        Memory {
            id: self.id,
            text: self.text().to_owned(),
            kind: self.kind,
            tags: self.tags().map(str::to_owned).collect(),
            importance: self.importance,
            source_message_id: self.source_message_id.map(NonZeroI64::get),
            created_at: self.created_at(),
            updated_at: self.updated_at(),
            last_used_at: self.last_used_at(),
            embedding: self.vector.as_ref().map(|v| MemoryEmbedding {
                model: v.model.to_string(),
                values: v.values.to_vec(),
            }),
        }
    }

    pub fn id(&self) -> i64 {
        self.id
    }

    pub fn text(&self) -> &str {
        &self.text_and_tags[..self.text_len]
    }

    pub fn kind(&self) -> MemoryKind {
        self.kind
    }

    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.text_and_tags[self.text_len..]
            .split(TAG_SEPARATOR)
            .skip(1)
    }

    pub fn importance(&self) -> f32 {
        self.importance
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at.time()
    }

    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at.time()
    }

    pub fn last_used_at(&self) -> Option<DateTime<Utc>> {
        (self.last_used_at != Stamp::NEVER).then(|| self.last_used_at.time())
    }

    /// The later of creation, change and use: what recency and decay count from.
    pub fn last_touched(&self) -> DateTime<Utc> {
        // NEVER is the least stamp: the max of the three is right without a case for it.
        self.updated_at
            .max(self.created_at)
            .max(self.last_used_at)
            .time()
    }

    /// The memory's vector, if it has one.
    pub fn vector(&self) -> Option<&Vector> {
        self.vector.as_deref()
    }

    /// The ids of the text's terms, sorted, repeats kept.
    pub fn terms(&self) -> &[TermId] {
        &self.terms
    }

    pub(super) fn set_vector(&mut self, embedding: MemoryEmbedding) {
        self.vector = Some(Vector::new(embedding));
    }

    pub(super) fn set_last_used(&mut self, at: DateTime<Utc>) {
        self.last_used_at = Stamp::new(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::testing::{memory, now};

    #[test]
    fn a_cached_memory_gives_back_the_memory_it_was_made_of() {
        let mut stored = memory(7, "Meds at 8am", MemoryKind::Health, 0.9, 3);
        stored.tags = vec!["medication".into(), "morning".into()];
        stored.source_message_id = Some(42);
        stored.last_used_at = Some(now());
        stored.embedding = Some(MemoryEmbedding {
            model: "m@2".into(),
            values: vec![3.0, 4.0],
        });
        let cached = CachedMemory::new(stored.clone(), vec![1, 2, 2]);
        assert_eq!(cached.to_memory(), stored);
        assert_eq!(cached.text(), "Meds at 8am");
        assert_eq!(cached.tags().collect::<Vec<_>>(), ["medication", "morning"]);
        assert_eq!(cached.vector().map(|v| v.norm), Some(5.0));
        assert_eq!(cached.last_touched(), now());
        assert_eq!(cached.terms(), [1, 2, 2]);
    }

    #[test]
    fn no_tags_and_empty_tags_read_back_as_stored() {
        for tags in [
            vec![],
            vec![String::new()],
            vec!["a".into(), String::new(), "b".into()],
        ] {
            let mut stored = memory(1, "", MemoryKind::Fact, 0.5, 1);
            stored.tags = tags;
            assert_eq!(
                CachedMemory::new(stored.clone(), Vec::new()).to_memory(),
                stored
            );
        }
    }

    #[test]
    fn times_read_back_to_the_nanosecond_and_never_used_stays_apart() {
        let mut stored = memory(1, "tea", MemoryKind::Fact, 0.5, 1);
        stored.created_at = now() + chrono::Duration::nanoseconds(123_456_789);
        stored.updated_at = stored.created_at + chrono::Duration::nanoseconds(1);
        let mut cached = CachedMemory::new(stored.clone(), Vec::new());
        assert_eq!(cached.to_memory(), stored);
        assert_eq!(cached.last_used_at(), None);
        assert_eq!(cached.last_touched(), stored.updated_at);
        let epoch = DateTime::from_timestamp_nanos(0);
        cached.set_last_used(epoch);
        assert_eq!(cached.last_used_at(), Some(epoch));
        assert_eq!(cached.last_touched(), stored.updated_at);
    }

    #[test]
    fn a_cached_memory_is_smaller_than_a_memory() {
        assert!(
            size_of::<CachedMemory>() <= 120,
            "{}",
            size_of::<CachedMemory>()
        );
        assert!(size_of::<CachedMemory>() < size_of::<Memory>());
    }
}
