//! Lexical ranking: Okapi BM25 ([`bm25`]: `k1 = 1.2`, `b = 0.75`, the `bm25` crate's and
//! Lucene's idf) over a tokenizer made for short English and French facts, [`Tokenizer`],
//! which reads both languages in one pass:
//!
//! 1. fold: accents and ligatures to ASCII (`é` → `e`, `œ` → `oe`), lower case;
//! 2. split on anything that is not a letter or a digit (so `j'habite` → `j`, `habite`);
//! 3. times in one form: `8am`, `8 h`, `8h00` → `8h`; `8pm` → `20h`; `8:30` → `8h30`;
//! 4. drop English and French stop words (question words and "remember", "sais", … too: they
//!    say how a question is asked, not what it is about);
//! 5. map words of one meaning across both languages to one concept (`meds`, `pills`,
//!    `médicaments`, `cachets` → `~medication`), so a paraphrase or the other language matches;
//! 6. stem what remains with the user's language's Snowball stemmer (`shifts` → `shift`).
//!
//! A memory keeps its terms as sorted 32-bit ids ([`term_id`]), nothing else: document
//! frequencies and the average length are computed per query over the user's memories.

use std::cell::RefCell;
use std::sync::LazyLock;

use rust_stemmers::{Algorithm, Stemmer};
use rustc_hash::FxHashMap;

use super::text::fold;
use crate::store::Language;

/// BM25's term-frequency saturation (the crate's and Lucene's default).
const K1: f32 = 1.2;
/// BM25's length normalisation (the crate's and Lucene's default).
const B: f32 = 0.75;

/// Splits English and French text into ranking terms (see the module docs).
pub struct Tokenizer {
    language: Language,
    /// Snowball stemmer of the user's language, for words that map to no concept.
    stemmer: Stemmer,
}

/// A term of a text, as [`Tokenizer::each_term`] finds it.
enum Term<'w> {
    /// A time in one form (`8h`, `20h30`).
    Time(String),
    /// A word of one of [`CONCEPTS`]' groups.
    Concept(&'static Concept),
    /// A word to stem.
    Word(&'w str),
}

/// Words the stem cache keeps per language and thread ([`Tokenizer::stem_id`]); emptied
/// when full. A stem is a few hundred nanoseconds of Snowball; a person's facts use a few
/// hundred words, and a node's users share most of them.
const STEMS_KEPT: usize = 4_096;
/// Longer words are stemmed each time: they are rare, and the cache's size stays bounded.
const STEM_KEPT_UP_TO: usize = 24;

thread_local! {
    /// The ids of stemmed words on this thread, English's then French's.
    static STEM_IDS: RefCell<[FxHashMap<Box<str>, TermId>; 2]> = RefCell::default();
}

impl Tokenizer {
    /// A tokenizer stemming as `language` does (both languages' stop words and concepts
    /// apply whatever the language).
    pub fn new(language: Language) -> Self {
        let algorithm = match language {
            Language::En => Algorithm::English,
            Language::Fr => Algorithm::French,
        };
        Self {
            language,
            stemmer: Stemmer::create(algorithm),
        }
    }

    /// The terms of `text`, in order, repeats kept (BM25 counts them).
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut terms = Vec::new();
        self.each_term(text, |term| {
            terms.push(match term {
                Term::Time(time) => time,
                Term::Concept(concept) => format!("~{}", concept.name),
                Term::Word(word) => self.stemmer.stem(word).into_owned(),
            })
        });
        terms
    }

    /// The ids of the terms of `text` ([`term_id`]), in order, repeats kept: a query as
    /// [`bm25`] reads it. The same ids as [`Tokenizer::terms`]' texts have, without making
    /// those texts: a concept's id is computed once, a stemmed word's is cached.
    pub fn term_ids(&self, text: &str) -> Vec<TermId> {
        let mut ids = Vec::new();
        self.each_term(text, |term| {
            ids.push(match term {
                Term::Time(time) => term_id(&time),
                Term::Concept(concept) => concept.id,
                Term::Word(word) => self.stem_id(word),
            })
        });
        ids
    }

    /// The ids of the terms of `text`, sorted, repeats kept: a document as [`bm25`] and
    /// near-duplicate detection read it.
    pub fn sorted_term_ids(&self, text: &str) -> Vec<TermId> {
        let mut ids = self.term_ids(text);
        ids.sort_unstable();
        ids
    }

    /// Calls `found` with each term of `text`, in order (steps 1 to 5 of the module docs;
    /// a [`Term::Word`] is still to be stemmed).
    fn each_term(&self, text: &str, mut found: impl FnMut(Term<'_>)) {
        let mut folded = fold(text);
        // "8:30" is a time: one word, as "8h30".
        if folded.contains(':') {
            let bytes = folded.as_bytes();
            folded = folded
                .char_indices()
                .map(|(i, c)| {
                    let between_digits = i > 0
                        && bytes[i - 1].is_ascii_digit()
                        && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
                    if c == ':' && between_digits { 'h' } else { c }
                })
                .collect();
        }
        let mut words = folded
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .peekable();
        while let Some(word) = words.next() {
            // "8 am", "8 h 30": a number followed by its unit is one time.
            if is_digit(word)
                && let Some(unit) = words.peek()
                && let Some(time) = time_term(&format!("{word}{unit}"))
            {
                found(Term::Time(time));
                words.next();
                continue;
            }
            if let Some(time) = time_term(word) {
                found(Term::Time(time));
                continue;
            }
            match WORDS.get(word) {
                Some(Known::Stop) => {}
                Some(Known::Concept(concept)) => found(Term::Concept(concept)),
                None if word.len() == 1 && !is_digit(word) => {}
                None => found(Term::Word(word)),
            }
        }
    }

    /// The id of `word` stemmed, from this thread's cache when it holds it.
    fn stem_id(&self, word: &str) -> TermId {
        if word.len() > STEM_KEPT_UP_TO {
            return term_id(&self.stemmer.stem(word));
        }
        STEM_IDS.with_borrow_mut(|caches| {
            let cache = match self.language {
                Language::En => &mut caches[0],
                Language::Fr => &mut caches[1],
            };
            if let Some(id) = cache.get(word) {
                return *id;
            }
            let id = term_id(&self.stemmer.stem(word));
            if cache.len() >= STEMS_KEPT {
                cache.clear();
            }
            cache.insert(word.into(), id);
            id
        })
    }
}

fn is_digit(word: &str) -> bool {
    word.bytes().all(|b| b.is_ascii_digit())
}

/// `8am` → `8h`, `8pm` → `20h`, `20h` → `20h`, `8h30` → `8h30`, `12am` → `0h`; `None` for
/// anything else.
fn time_term(word: &str) -> Option<String> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 2 {
        return None;
    }
    let hour: u32 = word[..digits].parse().ok()?;
    let rest = &word[digits..];
    let (hour, minutes) = match rest {
        "am" if (1..=12).contains(&hour) => (hour % 12, ""),
        "pm" if (1..=12).contains(&hour) => (hour % 12 + 12, ""),
        "h" | "h00" if hour < 24 => (hour, ""),
        _ => {
            let minutes = rest.strip_prefix('h')?;
            let ok = minutes.len() == 2 && is_digit(minutes) && minutes < "60";
            if !ok || hour >= 24 {
                return None;
            }
            (hour, minutes)
        }
    };
    Some(format!("{hour}h{minutes}"))
}

/// A term as the index keeps it: a 32-bit hash of its text ([`term_id`]).
pub type TermId = u32;

/// The id of a term: FNV-1a (64-bit) folded to 32 bits, stable across runs and platforms.
///
/// 32 bits are enough here. A query term wrongly matches a memory only when it collides with
/// one of the user's terms: about `vocabulary × query terms / 2³²`, one query in a million for
/// a user with 1,000 distinct terms. Two of the user's own terms colliding (which near-duplicate
/// detection could notice) takes a vocabulary near 10,000 to be likely at all, and then only
/// merges two memories that share ¾ of their other terms too.
pub fn term_id(term: &str) -> TermId {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = term
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    (hash ^ (hash >> 32)) as TermId
}

/// BM25 scores of the documents sharing a term with `query`: `(document index, score)`,
/// best first (equal scores by index). `query` is the query's terms in order, repeats kept
/// (a repeated query term counts each time); `terms` gives a document's terms **sorted**,
/// repeats kept (a term's repeats are its frequency, their number the document's length).
///
/// Okapi BM25 over the documents given (`n` of them, average length `avgdl`):
///
/// ```text
/// idf(t)      = ln(1 + (n − df(t) + 0.5) / (df(t) + 0.5))
/// weight(t,d) = tf(t,d) · (k1 + 1) / (tf(t,d) + k1 · (1 − b + b · |d| / avgdl))
/// bm25(q, d)  = Σ over the terms t of q: idf(t) · weight(t, d)
/// ```
///
/// One pass over the documents' sorted terms finds the matches and the document
/// frequencies: for one user's few hundred memories that is cheaper than keeping an inverted
/// index, and it needs no memory between queries.
pub fn bm25<T>(
    query: &[TermId],
    documents: &[T],
    terms: impl Fn(&T) -> &[TermId],
) -> Vec<(usize, f32)> {
    let mut distinct = query.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.is_empty() || documents.is_empty() {
        return Vec::new();
    }
    let width = distinct.len();
    // For each document sharing a term: its index, its length, then each distinct query
    // term's frequency in it.
    let mut matches: Vec<(usize, usize)> = Vec::new();
    let mut frequencies: Vec<u32> = Vec::new();
    let mut df = vec![0u32; width];
    let mut total_length = 0u64;
    let mut row = vec![0u32; width];
    for (index, document) in documents.iter().enumerate() {
        let document = terms(document);
        total_length += document.len() as u64;
        if !count_shared(&distinct, document, &mut row) {
            continue;
        }
        for (df, &tf) in df.iter_mut().zip(&row) {
            *df += u32::from(tf > 0);
        }
        matches.push((index, document.len()));
        frequencies.extend_from_slice(&row);
    }
    let n = documents.len() as f32;
    let idf: Vec<f32> = df
        .iter()
        .map(|&df| {
            let df = df as f32;
            (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
        })
        .collect();
    let avgdl = match (total_length as f64 / documents.len() as f64) as f32 {
        avgdl if avgdl > 0.0 => avgdl,
        _ => 1.0,
    };
    // Each query term as its column among the distinct ones.
    let columns: Vec<usize> = query
        .iter()
        .filter_map(|t| distinct.binary_search(t).ok())
        .collect();
    let mut scored: Vec<(usize, f32)> = matches
        .iter()
        .zip(frequencies.chunks_exact(width))
        .map(|(&(index, length), tfs)| {
            let norm = K1 * (1.0 - B + B * (length as f32 / avgdl));
            let score = columns
                .iter()
                .map(|&k| {
                    let tf = tfs[k] as f32;
                    idf[k] * (tf * (K1 + 1.0) / (tf + norm))
                })
                .sum::<f32>();
            (index, score)
        })
        .filter(|&(_, score)| score > 0.0)
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored
}

/// Fills `row` with how often each of `distinct` (sorted, no repeats) occurs in `document`
/// (sorted, repeats kept), in one merge of the two; true when any does.
fn count_shared(distinct: &[TermId], document: &[TermId], row: &mut [u32]) -> bool {
    row.fill(0);
    let (mut i, mut j, mut any) = (0, 0, false);
    while i < distinct.len() && j < document.len() {
        match distinct[i].cmp(&document[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                row[i] += 1;
                any = true;
                j += 1;
            }
        }
    }
    any
}

/// A concept (step 5 of the module docs): its name, and the id of its term, `~` and the name.
struct Concept {
    name: &'static str,
    id: TermId,
}

/// What a folded word is known as.
enum Known {
    /// One of [`STOP_WORDS`]: dropped.
    Stop,
    /// A word of one of [`CONCEPTS`]' groups.
    Concept(Concept),
}

/// The stop words and the concepts' words, in one table (a stop word is never a concept).
static WORDS: LazyLock<FxHashMap<&'static str, Known>> = LazyLock::new(|| {
    let mut words: FxHashMap<&'static str, Known> = STOP_WORDS
        .iter()
        .flat_map(|language| language.split_whitespace())
        .map(|word| (word, Known::Stop))
        .collect();
    for (name, group) in CONCEPTS {
        let id = term_id(&format!("~{name}"));
        for word in group.split_whitespace() {
            words
                .entry(word)
                .or_insert(Known::Concept(Concept { name, id }));
        }
    }
    words
});

/// Words that say how something is asked or joined, not what it is about: English's, then
/// French's.
const STOP_WORDS: [&str; 2] = [
    "a an the and or but nor so if then than that this these those there \
        here is are am was were be been being i me my mine myself you your yours yourself we us \
        our he him his she her it its they them their what which who whom whose when where why \
        how to of in on at for with about as by from into onto up down out over under again do \
        does did doing done have has had having can could would should will shall may might must \
        not no yes any some all each every much many more most very just also too only own same \
        s t m re ve ll d don doesn didn isn aren wasn weren won wouldn couldn shouldn haven hasn \
        know knows remember remembers recall tell told say said think thing things something \
        anything stuff please let lets get got",
    "le la les l un une des du de d et ou mais donc car ni que qu qui quoi \
        dont ce cet cette ces c ca cela ceci je j me m moi mon ma mes tu te t toi ton ta tes il \
        elle on nous vous ils elles se s sa son ses leur leurs lui y en au aux a as ai avons \
        avez ont est es suis sommes etes sont etre ete avoir eu dans sur sous pour par avec sans \
        chez vers entre ne n pas plus moins tres trop aussi bien tout tous toute toutes comment \
        quand pourquoi combien quel quelle quels quelles sais sait savoir connais connait \
        souviens souvient rappelles dis dit chose choses truc trucs rien stp svp",
];

/// Folded words of one meaning across English and French, by the concept they map to.
const CONCEPTS: &[(&str, &str)] = &[
    (
        "medication",
        "med meds medication medications medicine medicines pill pills tablet \
            tablets prescription prescriptions medicament medicaments cachet cachets pilule \
            pilules comprime comprimes traitement ordonnance",
    ),
    (
        "work",
        "work works working worked job jobs shift shifts career office travail travaux \
            travaille travailles travaillent travailler boulot taf bosse bosses bosser emploi \
            bureau",
    ),
    (
        "night",
        "night nights overnight nightly nuit nuits nocturne",
    ),
    ("morning", "morning mornings matin matins matinee"),
    ("evening", "evening evenings tonight soir soirs soiree"),
    (
        "sleep",
        "sleep sleeps sleeping asleep slept bed bedtime nap naps dormir dors dort \
            sommeil coucher couche sieste",
    ),
    (
        "wake",
        "wake wakes waking woke awake reveil reveille reveiller",
    ),
    (
        "doctor",
        "doctor doctors doc gp physician psychiatrist therapist therapy medecin \
            medecins docteur psychiatre psy therapeute therapie",
    ),
    ("mother", "mom mum mother mommy mama maman mere"),
    ("father", "dad father daddy papa pere"),
    ("sister", "sister sisters sis soeur soeurs"),
    ("brother", "brother brothers bro frere freres"),
    (
        "partner",
        "partner wife husband girlfriend boyfriend spouse femme mari conjoint \
            conjointe copain copine compagnon compagne",
    ),
    (
        "child",
        "kid kids child children son sons daughter daughters enfant enfants fils \
            fille filles",
    ),
    (
        "friend",
        "friend friends buddy ami amie amis amies pote potes",
    ),
    ("dog", "dog dogs puppy chien chiens chienne chiot"),
    ("cat", "cat cats kitten chat chats chatte chaton"),
    (
        "allergy",
        "allergy allergies allergic allergie allergique allergiques",
    ),
    (
        "food",
        "food eat eats eating meal meals lunch dinner breakfast manger mange repas \
            nourriture dejeuner diner",
    ),
    ("coffee", "coffee espresso cafe cafes"),
    (
        "home",
        "home house apartment flat live lives living maison appartement appart \
            habite habites habiter domicile",
    ),
    ("birthday", "birthday birthdays bday anniversaire anniv"),
    (
        "school",
        "school class classes college university uni ecole cours fac universite \
            lycee",
    ),
    (
        "exercise",
        "exercise gym workout workouts running jog jogging sport sports courir \
            muscu",
    ),
    ("car", "car cars drive driving voiture conduire conduis"),
    (
        "money",
        "money salary paid payday argent salaire paie budget",
    ),
    ("adhd", "adhd tdah"),
    (
        "anxiety",
        "anxiety anxious stress stressed panic anxiete anxieux anxieuse stresse \
            angoisse angoisses",
    ),
    (
        "like",
        "like likes love loves enjoy enjoys favorite favourite prefer prefers aime \
            aimes adore adores prefere preferes favori favorite",
    ),
    (
        "dislike",
        "hate hates dislike dislikes detest deteste detestes horreur",
    ),
    ("monday", "monday mondays lundi lundis"),
    ("tuesday", "tuesday tuesdays mardi mardis"),
    ("wednesday", "wednesday wednesdays mercredi mercredis"),
    ("thursday", "thursday thursdays jeudi jeudis"),
    ("friday", "friday fridays vendredi vendredis"),
    ("saturday", "saturday saturdays samedi samedis"),
    ("sunday", "sunday sundays dimanche dimanches"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accents_case_and_stop_words_do_not_matter() {
        let fr = Tokenizer::new(Language::Fr);
        assert_eq!(
            fr.terms("Je travaille de NUIT"),
            fr.terms("je travaille de nuit")
        );
        assert_eq!(fr.terms("Mes médicaments"), fr.terms("mes medicaments"));
        assert_eq!(
            fr.terms("les œufs"),
            vec![fr.stemmer.stem("oeufs").into_owned()]
        );
        let en = Tokenizer::new(Language::En);
        assert_eq!(en.terms("What do you know about me?"), Vec::<String>::new());
    }

    #[test]
    fn one_meaning_in_either_language_is_one_term() {
        let en = Tokenizer::new(Language::En);
        assert_eq!(en.terms("my pills"), en.terms("mes cachets"));
        assert_eq!(
            en.sorted_term_ids("night shifts"),
            en.sorted_term_ids("travail de nuit")
        );
        assert_eq!(en.terms("my meds"), vec!["~medication"]);
    }

    #[test]
    fn times_are_read_in_one_form() {
        let en = Tokenizer::new(Language::En);
        assert_eq!(en.terms("8am"), vec!["8h"]);
        assert_eq!(en.terms("8 am"), vec!["8h"]);
        assert_eq!(en.terms("à 8h"), vec!["8h"]);
        assert_eq!(en.terms("8pm"), vec!["20h"]);
        assert_eq!(en.terms("20h"), vec!["20h"]);
        assert_eq!(en.terms("8:30"), vec!["8h30"]);
        assert_eq!(en.terms("12am"), vec!["0h"]);
        assert_eq!(en.terms("99h 8h75"), vec!["99h", "8h75"]);
    }

    #[test]
    fn english_words_are_stemmed() {
        let en = Tokenizer::new(Language::En);
        assert_eq!(en.terms("spiders"), en.terms("spider"));
        assert_eq!(en.terms("walking"), en.terms("walks"));
    }

    #[test]
    fn term_ids_are_the_ids_of_the_terms_whether_the_stem_is_cached_or_not() {
        let texts = [
            "My sister Élodie works night shifts at the hospital",
            "Je prends mes médicaments à 8h30, le matin",
            "walking walks walked 8 am 20h 8:30 running jogging",
            "Anticonstitutionnellement incomprehensibilities",
            "",
        ];
        for language in [Language::En, Language::Fr] {
            let tokenizer = Tokenizer::new(language);
            for text in texts {
                let expected: Vec<TermId> =
                    tokenizer.terms(text).iter().map(|t| term_id(t)).collect();
                // The first call stems and caches; the second reads the cache.
                assert_eq!(tokenizer.term_ids(text), expected, "{text}");
                assert_eq!(tokenizer.term_ids(text), expected, "{text}");
            }
        }
        // A language's stems are not the other's.
        let (en, fr) = (Tokenizer::new(Language::En), Tokenizer::new(Language::Fr));
        assert_ne!(en.term_ids("continuing"), fr.term_ids("continuing"));
        assert_eq!(
            fr.term_ids("continuing"),
            vec![term_id(&fr.stemmer.stem("continuing"))]
        );
    }

    #[test]
    fn the_stem_cache_stays_bounded() {
        let en = Tokenizer::new(Language::En);
        for i in 0..STEMS_KEPT + 10 {
            en.term_ids(&format!("word{i}x"));
        }
        let kept = STEM_IDS.with_borrow(|caches| caches[0].len());
        assert!(kept <= STEMS_KEPT, "{kept} words kept");
        assert_eq!(en.term_ids("walking"), vec![term_id("walk")]);
    }

    /// Documents as [`bm25`] reads them.
    fn documents(tokenizer: &Tokenizer, texts: &[&str]) -> Vec<Vec<TermId>> {
        texts.iter().map(|t| tokenizer.sorted_term_ids(t)).collect()
    }

    fn search(tokenizer: &Tokenizer, documents: &[Vec<TermId>], query: &str) -> Vec<(usize, f32)> {
        bm25(&tokenizer.term_ids(query), documents, Vec::as_slice)
    }

    #[test]
    fn the_relevant_document_ranks_first_and_unrelated_ones_not_at_all() {
        let en = Tokenizer::new(Language::En);
        let documents = documents(
            &en,
            &[
                "I work night shifts at the hospital",
                "my meds are at 8am",
                "my sister Julie lives in Lyon",
            ],
        );
        let hits = search(&en, &documents, "when should I take my medication?");
        assert_eq!(hits.first().map(|h| h.0), Some(1));
        assert_eq!(hits.len(), 1);
        let job = search(&en, &documents, "what's my job?");
        assert_eq!(job.first().map(|h| h.0), Some(0));
        assert!(search(&en, &documents, "quantum physics").is_empty());
        assert!(search(&en, &[], "my job").is_empty());
    }

    #[test]
    fn scores_are_okapi_bm25_computed_by_hand() {
        // Terms stand for themselves: a, b, c, d.
        let id = |t: &str| term_id(t);
        let doc = |terms: &[&str]| {
            let mut ids: Vec<TermId> = terms.iter().map(|t| id(t)).collect();
            ids.sort_unstable();
            ids
        };
        let documents = vec![
            doc(&["a", "b", "a"]),
            doc(&["b", "c"]),
            doc(&["c", "d", "d", "d", "b"]),
            doc(&[]),
        ];
        // The query "a b b": b counts twice.
        let query = [id("a"), id("b"), id("b")];
        let hits = bm25(&query, &documents, Vec::as_slice);

        let (k1, b) = (1.2f64, 0.75f64);
        let n = 4.0;
        let avgdl = (3.0 + 2.0 + 5.0 + 0.0) / 4.0;
        let idf = |df: f64| (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
        let weight = |tf: f64, len: f64| tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * len / avgdl));
        let (idf_a, idf_b) = (idf(1.0), idf(3.0));
        let expected = [
            (0, idf_a * weight(2.0, 3.0) + 2.0 * idf_b * weight(1.0, 3.0)),
            (1, 2.0 * idf_b * weight(1.0, 2.0)),
            (2, 2.0 * idf_b * weight(1.0, 5.0)),
        ];
        let mut expected = expected.to_vec();
        expected.sort_by(|x, y| y.1.total_cmp(&x.1));
        assert_eq!(hits.len(), expected.len(), "{hits:?}");
        for ((index, score), (want_index, want)) in hits.iter().zip(&expected) {
            assert_eq!(index, want_index);
            assert!((f64::from(*score) - want).abs() < 1e-5, "{score} ≠ {want}");
        }
    }

    #[test]
    fn term_ids_are_stable_and_tell_terms_apart() {
        // FNV-1a of "" folded: a fixed value, the same on every run and platform.
        assert_eq!(term_id(""), 0xcbf2_9ce4 ^ 0x8422_2325);
        assert_eq!(term_id("~medication"), term_id("~medication"));
        let en = Tokenizer::new(Language::En);
        let words = "night shift hospital meds sister julie lyon phone call text coffee tea \
            dog pixel peanut allergy morning evening work home school car money";
        let mut ids: Vec<TermId> = words.split_whitespace().map(term_id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), words.split_whitespace().count());
        assert_eq!(en.sorted_term_ids("coffee with Sam, coffee"), {
            let mut ids = vec![term_id("~coffee"), term_id("sam"), term_id("~coffee")];
            ids.sort_unstable();
            ids
        });
    }
}
