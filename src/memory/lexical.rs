//! Lexical ranking: BM25 over a tokenizer made for short English and French facts.
//!
//! The ranking itself is the `bm25` crate's (`Scorer`: an inverted index, Okapi BM25 with
//! `k1 = 1.2`, `b = 0.75`, idf from the live document count; `Embedder`: term weights with
//! the corpus's average length). Its own tokenizer is one fixed language at a time, so it is
//! replaced here by [`Tokenizer`], which reads both languages in one pass:
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
//! Token ids are 64-bit hashes (the crate's `u64` embedder): collisions are negligible at a
//! user's vocabulary size, where the default 32-bit ids would collide once in ~100 users.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use bm25::{Embedder, EmbedderBuilder, Scorer};
use rust_stemmers::{Algorithm, Stemmer};

use super::text::fold_with_offsets;
use crate::store::Language;

/// BM25's term-frequency saturation (the crate's and Lucene's default).
const K1: f32 = 1.2;
/// BM25's length normalisation (the crate's and Lucene's default).
const B: f32 = 0.75;

/// Splits English and French text into ranking terms (see the module docs).
pub struct Tokenizer {
    /// Snowball stemmer of the user's language, for words that map to no concept.
    stemmer: Stemmer,
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
            stemmer: Stemmer::create(algorithm),
        }
    }

    /// The terms of `text`, in order, repeats kept (BM25 counts them).
    pub fn terms(&self, text: &str) -> Vec<String> {
        let (folded, _) = fold_with_offsets(text);
        // "8:30" is a time: one word, as "8h30".
        let bytes = folded.as_bytes();
        let folded: String = folded
            .char_indices()
            .map(|(i, c)| {
                let between_digits = i > 0
                    && bytes[i - 1].is_ascii_digit()
                    && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
                if c == ':' && between_digits { 'h' } else { c }
            })
            .collect();
        let words: Vec<&str> = folded
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let mut terms = Vec::with_capacity(words.len());
        let mut i = 0;
        while i < words.len() {
            let word = words[i];
            // "8 am", "8 h 30": a number followed by its unit is one time.
            if word.bytes().all(|b| b.is_ascii_digit())
                && let Some(unit) = words.get(i + 1)
                && let Some(time) = time_term(&format!("{word}{unit}"))
            {
                terms.push(time);
                i += 2;
                continue;
            }
            i += 1;
            if let Some(time) = time_term(word) {
                terms.push(time);
            } else if STOP_WORDS.contains(word) || (word.len() == 1 && !is_digit(word)) {
                continue;
            } else if let Some(concept) = CONCEPTS.get(word) {
                terms.push(format!("~{concept}"));
            } else {
                terms.push(self.stemmer.stem(word).into_owned());
            }
        }
        terms
    }

    /// The distinct terms of `text`, sorted: what near-duplicate detection compares.
    pub fn term_set(&self, text: &str) -> Vec<String> {
        let mut terms = self.terms(text);
        terms.sort_unstable();
        terms.dedup();
        terms
    }
}

impl bm25::Tokenizer for Tokenizer {
    fn tokenize(&self, input_text: &str) -> Vec<String> {
        self.terms(input_text)
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

/// BM25 over one user's memories, kept up to date as memories come and go.
pub struct LexicalIndex {
    /// Turns a text into BM25 term weights (tokenizer, `k1`, `b`, average length).
    embedder: Embedder<u64, Tokenizer>,
    /// The inverted index and the documents' weights, by memory id.
    scorer: Scorer<i64, u64>,
}

impl LexicalIndex {
    /// An index of `documents` (id, text), its average length fit to them.
    pub fn new<'a>(
        language: Language,
        documents: impl IntoIterator<Item = (i64, &'a str)>,
    ) -> Self {
        let documents: Vec<(i64, &str)> = documents.into_iter().collect();
        let texts: Vec<&str> = documents.iter().map(|(_, text)| *text).collect();
        let embedder = EmbedderBuilder::<u64, Tokenizer>::with_tokenizer_and_fit_to_corpus(
            Tokenizer::new(language),
            &texts,
        )
        .k1(K1)
        .b(B)
        .build();
        let mut index = Self {
            embedder,
            scorer: Scorer::new(),
        };
        for (id, text) in documents {
            index.upsert(id, text);
        }
        index
    }

    /// Adds or replaces a document. (The average length stays as fit; the bank refits it when
    /// it rebuilds.)
    pub fn upsert(&mut self, id: i64, text: &str) {
        let embedding = self.embedder.embed(text);
        self.scorer.upsert(&id, embedding);
    }

    pub fn remove(&mut self, id: i64) {
        self.scorer.remove(&id);
    }

    /// Every document sharing a term with `query`, with its BM25 score, best first.
    pub fn search(&self, query: &str) -> Vec<(i64, f32)> {
        let query = self.embedder.embed(query);
        self.scorer
            .matches(&query)
            .into_iter()
            .filter(|m| m.score > 0.0)
            .map(|m| (m.id, m.score))
            .collect()
    }
}

/// Words that say how something is asked or joined, not what it is about.
static STOP_WORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    const ENGLISH: &str = "a an the and or but nor so if then than that this these those there \
        here is are am was were be been being i me my mine myself you your yours yourself we us \
        our he him his she her it its they them their what which who whom whose when where why \
        how to of in on at for with about as by from into onto up down out over under again do \
        does did doing done have has had having can could would should will shall may might must \
        not no yes any some all each every much many more most very just also too only own same \
        s t m re ve ll d don doesn didn isn aren wasn weren won wouldn couldn shouldn haven hasn \
        know knows remember remembers recall tell told say said think thing things something \
        anything stuff please let lets get got";
    const FRENCH: &str = "le la les l un une des du de d et ou mais donc car ni que qu qui quoi \
        dont ce cet cette ces c ca cela ceci je j me m moi mon ma mes tu te t toi ton ta tes il \
        elle on nous vous ils elles se s sa son ses leur leurs lui y en au aux a as ai avons \
        avez ont est es suis sommes etes sont etre ete avoir eu dans sur sous pour par avec sans \
        chez vers entre ne n pas plus moins tres trop aussi bien tout tous toute toutes comment \
        quand pourquoi combien quel quelle quels quelles sais sait savoir connais connait \
        souviens souvient rappelles dis dit chose choses truc trucs rien stp svp";
    ENGLISH
        .split_whitespace()
        .chain(FRENCH.split_whitespace())
        .collect()
});

/// Folded words of one meaning across English and French, mapped to one concept.
static CONCEPTS: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| {
    const GROUPS: &[(&str, &str)] = &[
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
    GROUPS
        .iter()
        .flat_map(|(concept, words)| words.split_whitespace().map(move |w| (w, *concept)))
        .collect()
});

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
        assert_eq!(en.term_set("night shifts"), en.term_set("travail de nuit"));
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
    fn the_relevant_document_ranks_first_and_unrelated_ones_not_at_all() {
        let index = LexicalIndex::new(
            Language::En,
            [
                (1, "I work night shifts at the hospital"),
                (2, "my meds are at 8am"),
                (3, "my sister Julie lives in Lyon"),
            ],
        );
        let hits = index.search("when should I take my medication?");
        assert_eq!(hits.first().map(|h| h.0), Some(2));
        assert_eq!(hits.len(), 1);
        assert_eq!(index.search("what's my job?").first().map(|h| h.0), Some(1));
        assert!(index.search("quantum physics").is_empty());
    }

    #[test]
    fn documents_can_be_replaced_and_removed() {
        let mut index = LexicalIndex::new(Language::En, [(1, "I love coffee")]);
        assert_eq!(index.search("coffee").len(), 1);
        index.upsert(1, "I love tea");
        assert!(index.search("coffee").is_empty());
        index.remove(1);
        assert!(index.search("tea").is_empty());
    }
}
