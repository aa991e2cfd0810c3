//! Long-term memory retrieval over 10,000 memories of one user.
//!
//! - `substring_scan`: the baseline, a linear scan of the folded texts for the query's words;
//! - `bm25_rank`: [`MemoryBank::rank`] without vectors (the offline path);
//! - `cosine_scan`: cosine of a 256-d query against 10,000 × 256-d vectors (norms kept, as the
//!   bank keeps them), nothing else;
//! - `hybrid_rank`: [`MemoryBank::rank`] with vectors (BM25 + cosine + blend);
//! - `bank_build`: building the bank (what activating a user's actor costs);
//! - `consolidate_plan`: a full consolidation plan.
//!
//! Run with: `cargo bench --bench retrieval` (or `-- --quick` for a short run).

use std::hint::black_box;

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use nudge::memory::{MemoryBank, consolidate, dot, norm, text};
use nudge::store::{Language, Memory, MemoryEmbedding, MemoryKind};

const MEMORIES: usize = 10_000;
const DIMENSIONS: usize = 256;
const MODEL: &str = "gemini-embedding-001@256";
const QUERIES: [&str; 4] = [
    "when do I take my pills?",
    "what's my sister's name",
    "qu'est-ce que tu sais sur mon travail ?",
    "do I like jazz on sundays",
];

/// A small deterministic generator (xorshift), so every run ranks the same corpus.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[(self.next() % words.len() as u64) as usize]
    }

    fn unit(&mut self) -> f32 {
        (self.next() % 2_000_001) as f32 / 1_000_000.0 - 1.0
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn vector(rng: &mut Rng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIMENSIONS).map(|_| rng.unit()).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// 10,000 varied English and French facts, each with a 256-d vector.
fn corpus() -> Vec<Memory> {
    let subjects = [
        "my sister",
        "my boss",
        "my meds",
        "my dog",
        "I",
        "my partner",
        "mon frère",
        "ma mère",
        "je",
        "mes médicaments",
        "my therapist",
        "my neighbour",
        "mon chat",
        "my kid",
    ];
    let verbs = [
        "likes",
        "works",
        "lives",
        "starts",
        "hates",
        "travaille",
        "habite",
        "aime",
        "prefers",
        "takes",
        "plays",
        "visits",
        "calls",
        "déteste",
    ];
    let objects = [
        "night shifts",
        "jazz",
        "coffee",
        "at 8am",
        "in Lyon",
        "on Mondays",
        "the gym",
        "à 20h",
        "le thé",
        "tomatoes",
        "spiders",
        "the piano",
        "Montreal",
        "le dimanche",
        "tennis",
        "early mornings",
        "spicy food",
        "la montagne",
        "video games",
        "long walks",
    ];
    let names = [
        "Julie", "Sam", "Pixel", "Paul", "Nora", "Élodie", "Max", "Inès",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..MEMORIES)
        .map(|i| {
            let text = format!(
                "{} {} {} with {} ({})",
                rng.pick(&subjects),
                rng.pick(&verbs),
                rng.pick(&objects),
                rng.pick(&names),
                i
            );
            let at = now() - Duration::days((rng.next() % 400) as i64);
            Memory {
                id: i as i64 + 1,
                text,
                kind: MemoryKind::ALL[(rng.next() % 7) as usize],
                tags: Vec::new(),
                importance: (rng.next() % 100) as f32 / 100.0,
                source_message_id: None,
                created_at: at,
                updated_at: at,
                last_used_at: None,
                embedding: Some(MemoryEmbedding {
                    model: MODEL.to_owned(),
                    values: vector(&mut rng),
                }),
            }
        })
        .collect()
}

fn retrieval(c: &mut Criterion) {
    let memories = corpus();
    let folded: Vec<String> = memories.iter().map(|m| text::key(&m.text)).collect();
    let vectors: Vec<(Vec<f32>, f32)> = memories
        .iter()
        .filter_map(|m| {
            m.embedding
                .as_ref()
                .map(|e| (e.values.clone(), norm(&e.values)))
        })
        .collect();
    let bank = MemoryBank::new(Language::En, memories.clone());
    let mut rng = Rng(42);
    let query_vector = vector(&mut rng);

    let mut group = c.benchmark_group("retrieval_10k");
    group.bench_function("substring_scan", |b| {
        b.iter(|| {
            for query in QUERIES {
                let words: Vec<String> = text::key(query)
                    .split(' ')
                    .filter(|w| w.len() > 3)
                    .map(str::to_owned)
                    .collect();
                let hits = folded
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| words.iter().any(|w| t.contains(w.as_str())))
                    .count();
                black_box(hits);
            }
        })
    });
    group.bench_function("bm25_rank", |b| {
        b.iter(|| {
            for query in QUERIES {
                black_box(bank.rank(black_box(query), None, now(), 5));
            }
        })
    });
    group.bench_function("cosine_scan", |b| {
        b.iter(|| {
            for _ in QUERIES {
                let query_norm = norm(&query_vector);
                let best = vectors
                    .iter()
                    .map(|(v, n)| dot(&query_vector, v) / (query_norm * n))
                    .fold(f32::MIN, f32::max);
                black_box(best);
            }
        })
    });
    group.bench_function("hybrid_rank", |b| {
        b.iter(|| {
            for query in QUERIES {
                black_box(bank.rank(black_box(query), Some((MODEL, &query_vector)), now(), 5));
            }
        })
    });
    group.sample_size(10);
    group.bench_function("bank_build", |b| {
        b.iter(|| black_box(MemoryBank::new(Language::En, memories.clone())))
    });
    group.bench_function("consolidate_plan", |b| {
        b.iter(|| black_box(consolidate::plan(&bank, now(), None)))
    });
    group.finish();
}

criterion_group!(benches, retrieval);
criterion_main!(benches);
