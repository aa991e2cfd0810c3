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

use super::{MemoryBank, cosine, days_between};
use crate::store::{Memory, MergedMemory, Result, Store, UserId};

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

/// A memory's importance after decay at `now` (see the module docs).
pub fn effective_importance(memory: &Memory, now: DateTime<Utc>) -> f32 {
    if memory.importance >= DECAY_BELOW {
        return memory.importance;
    }
    let idle = days_between(memory.last_touched(), now);
    let decaying = (idle - STALE_AFTER_DAYS).max(0.0);
    memory.importance * 0.5f32.powf(decaying / DECAY_HALF_LIFE_DAYS)
}

/// Whether two sorted term sets overlap enough to be the same fact.
pub fn is_near_duplicate(a: &[String], b: &[String]) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    let shared = a.iter().filter(|t| b.binary_search(t).is_ok()).count();
    jaccard(shared, a.len(), b.len()) >= DUPLICATE_JACCARD
}

fn jaccard(shared: usize, a: usize, b: usize) -> f32 {
    let union = a + b - shared;
    if union == 0 {
        0.0
    } else {
        shared as f32 / union as f32
    }
}

/// Tags of several memories, once each, in first-seen order, at most [`MAX_TAGS`].
pub fn union_tags<'a>(lists: impl IntoIterator<Item = &'a [String]>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    lists
        .into_iter()
        .flatten()
        .filter(|t| seen.insert(t.as_str()))
        .take(MAX_TAGS)
        .cloned()
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
    let memories: Vec<&Memory> = bank.iter().collect();
    let index: HashMap<i64, usize> = memories
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id, i))
        .collect();
    let mut parent: Vec<usize> = (0..memories.len()).collect();

    // Candidate pairs share a term that is not too common; they merge on terms or vectors.
    let mut postings: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, memory) in memories.iter().enumerate() {
        for term in bank.terms(memory.id) {
            postings.entry(term.as_str()).or_default().push(i);
        }
    }
    let in_focus = |i: usize| focus.is_none_or(|f| f.contains(&memories[i].id));
    let mut shared = vec![0usize; memories.len()];
    for i in 0..memories.len() {
        let mut touched = Vec::new();
        for term in bank.terms(memories[i].id) {
            let Some(list) = postings.get(term.as_str()) else {
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
            if !(in_focus(i) || in_focus(j)) || memories[i].kind != memories[j].kind {
                continue;
            }
            let (a, b) = (bank.terms(memories[i].id), bank.terms(memories[j].id));
            if jaccard(count, a.len(), b.len()) >= DUPLICATE_JACCARD
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
                    && memories[i].kind == memories[j].kind
                    && same_by_vector(memories[i], memories[j])
                {
                    union(&mut parent, i, j);
                }
            }
        }
    }

    let mut groups: BTreeMap<usize, Vec<&Memory>> = BTreeMap::new();
    for (i, memory) in memories.iter().enumerate() {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(memory);
    }
    let mut merges = Vec::new();
    let mut merged_ids = BTreeSet::new();
    for group in groups.into_values().filter(|g| g.len() > 1) {
        merged_ids.extend(group.iter().map(|m| m.id));
        merges.push(merge_group(&group));
    }
    let prunes = memories
        .iter()
        .filter(|m| !merged_ids.contains(&m.id))
        .filter(|m| effective_importance(m, now) < PRUNE_FLOOR)
        .map(|m| m.id)
        .collect();
    Plan { merges, prunes }
}

fn same_by_vector(a: &Memory, b: &Memory) -> bool {
    match (&a.embedding, &b.embedding) {
        (Some(x), Some(y)) if x.model == y.model && x.values.len() == y.values.len() => {
            cosine(&x.values, &y.values) >= DUPLICATE_COSINE
        }
        _ => false,
    }
}

/// Oldest survives; newest wording; union of tags; highest importance plus the boost.
fn merge_group(group: &[&Memory]) -> Merge {
    let oldest = group
        .iter()
        .min_by_key(|m| (m.created_at, m.id))
        .copied()
        .unwrap_or(group[0]);
    let newest = group
        .iter()
        .max_by_key(|m| (m.updated_at.max(m.created_at), m.id))
        .copied()
        .unwrap_or(group[0]);
    let importance = group.iter().map(|m| m.importance).fold(0.0, f32::max);
    Merge {
        keep: oldest.id,
        absorbed: group
            .iter()
            .map(|m| m.id)
            .filter(|id| *id != oldest.id)
            .collect(),
        merged: MergedMemory {
            text: newest.text.clone(),
            tags: union_tags(
                std::iter::once(newest.tags.as_slice())
                    .chain(group.iter().map(|m| m.tags.as_slice())),
            ),
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
    use crate::memory::testing::{memory, now};
    use crate::store::{Language, MemoryEmbedding, MemoryKind};
    use chrono::Duration as Days;

    #[test]
    fn decay_spares_important_and_recent_memories_and_halves_the_rest_every_sixty_days() {
        let important = memory(1, "meds at 8am", MemoryKind::Health, 0.9, 400);
        assert_eq!(effective_importance(&important, now()), 0.9);
        let fresh = memory(2, "likes tea", MemoryKind::Preference, 0.4, 29);
        assert_eq!(effective_importance(&fresh, now()), 0.4);
        let stale = memory(3, "likes tea", MemoryKind::Preference, 0.4, 90);
        assert!((effective_importance(&stale, now()) - 0.2).abs() < 1e-4);
        let mut used = stale.clone();
        used.last_used_at = Some(now() - Days::days(1));
        assert_eq!(effective_importance(&used, now()), 0.4, "use resets decay");
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

    #[test]
    fn term_overlap_decides_near_duplicates() {
        let set = |terms: &[&str]| terms.iter().map(|t| t.to_string()).collect::<Vec<_>>();
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
    }
}
