//! Consolidation: a user's memories stay few and true.
//!
//! - **Near-duplicates merge.** Two memories of the same kind are near-duplicates when their
//!   term sets overlap by a Jaccard index of at least [`DUPLICATE_JACCARD`], or when both have
//!   vectors of the same model with a cosine of at least [`DUPLICATE_COSINE`]. A group of them
//!   becomes one memory: the oldest survives (its id and age), with the newest wording, the
//!   union of the tags, and the highest importance plus [`MERGE_BOOST`] (saying a thing twice
//!   makes it matter more).
//! - **Stale, low-importance memories decay.** A memory under [`DECAY_BELOW`] importance that
//!   has not been created, changed or used for [`STALE_AFTER_DAYS`] loses half its importance
//!   every [`DECAY_HALF_LIFE_DAYS`] after that:
//!   `importance′ = importance × 0.5 ^ (max(0, idle_days − 30) / 60)`.
//!   Decay is computed, not stored, so it is the same however often it runs; using a memory
//!   resets it. Important memories (meds, allergies) never decay.
//! - **Pruned below a floor.** A memory whose decayed importance falls under [`PRUNE_FLOOR`]
//!   is deleted (a 0.3 memory unused for about 125 days).
//!
//! [`plan`] is pure (a fixed `now` in tests); [`apply`] writes the plan to the store and the
//! bank. The user's actor runs it when it activates, daily while active, and on the memories
//! a turn changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::lexical::TermId;
use super::{CachedMemory, MemoryBank, cosine, days_between};
use crate::store::{MergedMemory, Result, Store, UserId};

/// Jaccard index of term sets at or above which two memories are near-duplicates.
pub const DUPLICATE_JACCARD: f32 = 0.75;
/// Cosine similarity at or above which two memories are near-duplicates.
pub const DUPLICATE_COSINE: f32 = 0.93;
/// Importance added to a merged memory (capped at 1).
pub const MERGE_BOOST: f32 = 0.05;
/// Memories at or above this importance never decay.
pub const DECAY_BELOW: f32 = 0.5;
/// Days without creation, change or use before decay starts.
pub const STALE_AFTER_DAYS: f32 = 30.0;
/// Once stale, importance halves every this many days.
pub const DECAY_HALF_LIFE_DAYS: f32 = 60.0;
/// Memories whose decayed importance falls below this are deleted.
pub const PRUNE_FLOOR: f32 = 0.1;
/// Terms shared by more memories than this are too common to find duplicates by.
const MAX_POSTINGS: usize = 256;
/// Tags kept on a merged memory.
const MAX_TAGS: usize = 8;

/// The importance after decay at `now` of a memory of `importance` last created, changed or
/// used at `last_touched` (see the module docs).
pub fn effective_importance(
    importance: f32,
    last_touched: DateTime<Utc>,
    now: DateTime<Utc>,
) -> f32 {
    if importance >= DECAY_BELOW {
        return importance;
    }
    let idle = days_between(last_touched, now);
    let decaying = (idle - STALE_AFTER_DAYS).max(0.0);
    importance * 0.5f32.powf(decaying / DECAY_HALF_LIFE_DAYS)
}

/// Whether two texts' term ids (each sorted, repeats allowed) overlap enough to be the same
/// fact: the Jaccard index of their distinct terms.
pub fn is_near_duplicate(a: &[TermId], b: &[TermId]) -> bool {
    let (a, b) = (distinct(a), distinct(b));
    if a.clone().next().is_none() || b.clone().next().is_none() {
        return false;
    }
    let (mut a, mut b) = (a.peekable(), b.peekable());
    let (mut shared, mut only_a, mut only_b) = (0, 0, 0);
    loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x == y => {
                shared += 1;
                a.next();
                b.next();
            }
            (Some(x), Some(y)) if x < y => {
                only_a += 1;
                a.next();
            }
            (_, Some(_)) => {
                only_b += 1;
                b.next();
            }
            (Some(_), None) => {
                only_a += 1;
                a.next();
            }
            (None, None) => break,
        }
    }
    jaccard(shared, shared + only_a, shared + only_b) >= DUPLICATE_JACCARD
}

/// The distinct terms of sorted term ids.
fn distinct(terms: &[TermId]) -> impl Iterator<Item = TermId> + Clone + '_ {
    terms.chunk_by(|a, b| a == b).map(|run| run[0])
}

fn jaccard(shared: usize, a: usize, b: usize) -> f32 {
    let union = a + b - shared;
    if union == 0 {
        0.0
    } else {
        shared as f32 / union as f32
    }
}

/// Tags of several memories (one after the other), once each, in first-seen order, at most
/// [`MAX_TAGS`].
pub fn union_tags<'a>(tags: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    tags.into_iter()
        .filter(|t| seen.insert(*t))
        .take(MAX_TAGS)
        .map(str::to_owned)
        .collect()
}

/// One group of near-duplicates folded into its oldest member.
#[derive(Debug, Clone, PartialEq)]
pub struct Merge {
    pub keep: i64,
    pub absorbed: Vec<i64>,
    pub merged: MergedMemory,
}

/// What consolidation will change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub merges: Vec<Merge>,
    /// Memories to delete, decayed below [`PRUNE_FLOOR`].
    pub prunes: Vec<i64>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.merges.is_empty() && self.prunes.is_empty()
    }
}

/// What [`apply`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    pub merged: usize,
    pub pruned: usize,
}

/// Plans consolidation of the bank at `now`. With `focus`, only pairs involving one of those
/// memories are compared (the ones a turn added or changed); without, every candidate pair.
pub fn plan(bank: &MemoryBank, now: DateTime<Utc>, focus: Option<&BTreeSet<i64>>) -> Plan {
    let memories: Vec<&CachedMemory> = bank.iter().collect();
    let index: HashMap<i64, usize> = memories
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id(), i))
        .collect();
    let mut parent: Vec<usize> = (0..memories.len()).collect();

    // Candidate pairs share a term that is not too common; they merge on terms or vectors.
    let mut postings: HashMap<TermId, Vec<usize>> = HashMap::new();
    let mut sizes = Vec::with_capacity(memories.len());
    for (i, memory) in memories.iter().enumerate() {
        let mut size = 0;
        for term in distinct(memory.terms()) {
            postings.entry(term).or_default().push(i);
            size += 1;
        }
        sizes.push(size);
    }
    let in_focus = |i: usize| focus.is_none_or(|f| f.contains(&memories[i].id()));
    let mut shared = vec![0usize; memories.len()];
    for i in 0..memories.len() {
        let mut touched = Vec::new();
        for term in distinct(memories[i].terms()) {
            let Some(list) = postings.get(&term) else {
                continue;
            };
            if list.len() > MAX_POSTINGS {
                continue;
            }
            for &j in list.iter().filter(|&&j| j > i) {
                if shared[j] == 0 {
                    touched.push(j);
                }
                shared[j] += 1;
            }
        }
        for j in touched {
            let count = std::mem::take(&mut shared[j]);
            if !(in_focus(i) || in_focus(j)) || memories[i].kind() != memories[j].kind() {
                continue;
            }
            if jaccard(count, sizes[i], sizes[j]) >= DUPLICATE_JACCARD
                || same_by_vector(memories[i], memories[j])
            {
                union(&mut parent, i, j);
            }
        }
    }
    // Vectors find duplicates with no shared term: compared for the focused memories only
    // (all pairs of a large bank would cost n² dot products).
    if let Some(focus) = focus {
        for id in focus {
            let Some(&i) = index.get(id) else { continue };
            for j in 0..memories.len() {
                if j != i
                    && memories[i].kind() == memories[j].kind()
                    && same_by_vector(memories[i], memories[j])
                {
                    union(&mut parent, i, j);
                }
            }
        }
    }

    let mut groups: BTreeMap<usize, Vec<&CachedMemory>> = BTreeMap::new();
    for (i, memory) in memories.iter().enumerate() {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(memory);
    }
    let mut merges = Vec::new();
    let mut merged_ids = BTreeSet::new();
    for group in groups.into_values().filter(|g| g.len() > 1) {
        merged_ids.extend(group.iter().map(|m| m.id()));
        merges.push(merge_group(&group));
    }
    let prunes = memories
        .iter()
        .filter(|m| !merged_ids.contains(&m.id()))
        .filter(|m| effective_importance(m.importance(), m.last_touched(), now) < PRUNE_FLOOR)
        .map(|m| m.id())
        .collect();
    Plan { merges, prunes }
}

fn same_by_vector(a: &CachedMemory, b: &CachedMemory) -> bool {
    match (a.vector(), b.vector()) {
        (Some(x), Some(y)) if x.model == y.model && x.values.len() == y.values.len() => {
            cosine(&x.values, &y.values) >= DUPLICATE_COSINE
        }
        _ => false,
    }
}

/// Oldest survives; newest wording; union of tags; highest importance plus the boost.
fn merge_group(group: &[&CachedMemory]) -> Merge {
    let oldest = group
        .iter()
        .min_by_key(|m| (m.created_at(), m.id()))
        .copied()
        .unwrap_or(group[0]);
    let newest = group
        .iter()
        .max_by_key(|m| (m.updated_at().max(m.created_at()), m.id()))
        .copied()
        .unwrap_or(group[0]);
    let importance = group.iter().map(|m| m.importance()).fold(0.0, f32::max);
    Merge {
        keep: oldest.id(),
        absorbed: group
            .iter()
            .map(|m| m.id())
            .filter(|id| *id != oldest.id())
            .collect(),
        merged: MergedMemory {
            text: newest.text().to_owned(),
            tags: union_tags(newest.tags().chain(group.iter().flat_map(|m| m.tags()))),
            importance: (importance + MERGE_BOOST).min(1.0),
        },
    }
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

fn union(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        parent[ra.max(rb)] = ra.min(rb);
    }
}

/// Writes `plan` to the store for `user`, and keeps the bank in step.
pub async fn apply(
    store: &Store,
    user: UserId,
    bank: &mut MemoryBank,
    plan: &Plan,
    at: DateTime<Utc>,
) -> Result<Applied> {
    let mut applied = Applied::default();
    for merge in &plan.merges {
        let kept = store
            .merge_memories(user, merge.keep, &merge.merged, &merge.absorbed, at)
            .await?;
        for id in &merge.absorbed {
            bank.remove(*id);
        }
        bank.upsert(kept);
        applied.merged += merge.absorbed.len();
    }
    if !plan.prunes.is_empty() {
        let pruned = store.forget_memories(user, &plan.prunes).await?;
        for id in &pruned {
            bank.remove(*id);
        }
        applied.pruned = pruned.len();
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::lexical::term_id;
    use crate::memory::testing::{memory, now};
    use crate::store::{Language, Memory, MemoryEmbedding, MemoryKind};
    use chrono::Duration as Days;

    fn decayed(memory: &Memory) -> f32 {
        effective_importance(memory.importance, memory.last_touched(), now())
    }

    #[test]
    fn decay_spares_important_and_recent_memories_and_halves_the_rest_every_sixty_days() {
        let important = memory(1, "meds at 8am", MemoryKind::Health, 0.9, 400);
        assert_eq!(decayed(&important), 0.9);
        let fresh = memory(2, "likes tea", MemoryKind::Preference, 0.4, 29);
        assert_eq!(decayed(&fresh), 0.4);
        let stale = memory(3, "likes tea", MemoryKind::Preference, 0.4, 90);
        assert!((decayed(&stale) - 0.2).abs() < 1e-4);
        let mut used = stale.clone();
        used.last_used_at = Some(now() - Days::days(1));
        assert_eq!(decayed(&used), 0.4, "use resets decay");
    }

    #[test]
    fn stale_trivia_is_pruned_below_the_floor_and_nothing_else() {
        let bank = MemoryBank::new(
            Language::En,
            vec![
                memory(1, "meds at 8am", MemoryKind::Health, 0.9, 400),
                memory(2, "saw a red car", MemoryKind::Fact, 0.3, 124),
                memory(3, "likes jazz", MemoryKind::Preference, 0.3, 126),
            ],
        );
        assert_eq!(plan(&bank, now(), None).prunes, [3]);
        let later = now() + Days::days(10);
        assert_eq!(plan(&bank, later, None).prunes, [2, 3]);
    }

    #[test]
    fn near_duplicates_of_one_kind_merge_into_the_oldest_with_the_newest_wording() {
        let bank = MemoryBank::new(
            Language::En,
            vec![
                memory(1, "I work night shifts", MemoryKind::Work, 0.6, 50),
                memory(2, "I work the night shift", MemoryKind::Work, 0.7, 20),
                memory(3, "I work night shifts!", MemoryKind::Work, 0.5, 5),
                memory(4, "night shift", MemoryKind::Routine, 0.5, 1),
                memory(5, "I work from home on Fridays", MemoryKind::Work, 0.5, 1),
            ],
        );
        let plan = plan(&bank, now(), None);
        assert_eq!(plan.prunes, Vec::<i64>::new());
        assert_eq!(plan.merges.len(), 1, "{plan:?}");
        let merge = &plan.merges[0];
        assert_eq!(merge.keep, 1);
        assert_eq!(merge.absorbed, [2, 3]);
        assert_eq!(merge.merged.text, "I work night shifts!");
        assert!((merge.merged.importance - 0.75).abs() < 1e-6);
        assert_eq!(merge.merged.tags, ["t3", "t1", "t2"]);
    }

    #[test]
    fn vectors_find_duplicates_with_no_shared_word_for_the_focused_memories() {
        let vector = |values: Vec<f32>| MemoryEmbedding {
            model: "m@2".into(),
            values,
        };
        let mut a = memory(1, "I'm scared of spiders", MemoryKind::Fact, 0.5, 10);
        a.embedding = Some(vector(vec![1.0, 0.0]));
        let mut b = memory(2, "arachnophobia", MemoryKind::Fact, 0.5, 1);
        b.embedding = Some(vector(vec![0.99, 0.1]));
        let mut c = memory(3, "I love gardening", MemoryKind::Fact, 0.5, 1);
        c.embedding = Some(vector(vec![0.0, 1.0]));
        let bank = MemoryBank::new(Language::En, vec![a, b, c]);
        assert!(plan(&bank, now(), None).merges.is_empty(), "no shared term");
        let focus = BTreeSet::from([2]);
        let plan = plan(&bank, now(), Some(&focus));
        assert_eq!(plan.merges.len(), 1);
        assert_eq!(
            (plan.merges[0].keep, plan.merges[0].absorbed.clone()),
            (1, vec![2])
        );
    }

    /// Sorted term ids of `terms`.
    fn set(terms: &[&str]) -> Vec<TermId> {
        let mut ids: Vec<TermId> = terms.iter().map(|t| term_id(t)).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn term_overlap_decides_near_duplicates() {
        assert!(is_near_duplicate(
            &set(&["a", "b", "c", "d"]),
            &set(&["a", "b", "c", "d"])
        ));
        assert!(is_near_duplicate(
            &set(&["a", "b", "c", "d"]),
            &set(&["a", "b", "c", "d", "e"])
        ));
        assert!(!is_near_duplicate(&set(&["a", "b"]), &set(&["a", "c"])));
        assert!(!is_near_duplicate(&[], &[]));
        assert!(!is_near_duplicate(&set(&["a"]), &[]));
    }

    #[test]
    fn repeated_terms_count_once_for_near_duplicates() {
        // {a, b, c} against {a, b, c, d}: 3 shared of 4.
        assert!(is_near_duplicate(
            &set(&["a", "a", "a", "b", "c"]),
            &set(&["a", "b", "c", "d", "d", "d"])
        ));
        // {a, b} against {a, c}: 1 of 3, however often a repeats.
        assert!(!is_near_duplicate(
            &set(&["a", "a", "a", "a", "b"]),
            &set(&["a", "a", "a", "a", "c"])
        ));
    }
}
