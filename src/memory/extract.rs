//! Extraction: the durable facts in a turn, stored after it so later turns know them.
//!
//! [`Extractor`] is the hook: the user's actor calls it after every answered turn. The
//! offline implementation, [`RulesExtractor`], reads English and French:
//!
//! - explicit requests: "remember that …", "don't forget that …", "souviens-toi que …",
//!   "n'oublie pas que …", "retiens que …" ([`explicit_request`]);
//! - first-person statements of lasting facts, sentence by sentence: "I work night shifts",
//!   "my meds are at 8am", "I'm allergic to nuts", "je travaille de nuit", "mes médicaments
//!   sont à 8h", "j'habite à Lyon".
//!
//! It keeps out questions, passing states ("I'm tired", "je suis crevé"), events that belong
//! to reminders ("I have a meeting tomorrow") and requests ("I need to call mom"). An LLM
//! extractor can replace it without touching the actor: implement [`Extractor`].

use async_trait::async_trait;

use super::lexical::Tokenizer;
use super::text::{fold, strip_prefix, tidy};
use super::{MAX_MEMORY_CHARS, new_memory};
use crate::store::{Language, MemoryKind};

/// A fact found in a turn, ready to be remembered.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub text: String,
    pub kind: MemoryKind,
    pub importance: f32,
    pub tags: Vec<String>,
}

/// What an extractor reads: one answered turn.
#[derive(Debug, Clone, Copy)]
pub struct TurnText<'a> {
    /// What the user wrote.
    pub message: &'a str,
    /// What Nudge answered.
    pub reply: &'a str,
    /// The user's language.
    pub language: Language,
}

/// Finds the durable facts of a turn. Called off the reply's path, after the reply is sent.
#[async_trait]
pub trait Extractor: Send + Sync + 'static {
    async fn extract(&self, turn: &TurnText<'_>) -> Vec<Fact>;
}

/// The offline extractor (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct RulesExtractor;

#[async_trait]
impl Extractor for RulesExtractor {
    async fn extract(&self, turn: &TurnText<'_>) -> Vec<Fact> {
        extract(turn.message, turn.language)
    }
}

/// "Remember that …" in English or French: what is to be remembered, as typed.
pub fn explicit_request(text: &str) -> Option<&str> {
    const PREFIXES: &[&str] = &[
        "remember that",
        "remember",
        "please remember that",
        "please remember",
        "don't forget that",
        "do not forget that",
        "dont forget that",
        "keep in mind that",
        "note that",
        "souviens toi que",
        "souviens toi de ca",
        "souvenez vous que",
        "rappelle toi que",
        "retiens que",
        "retiens bien que",
        "n'oublie pas que",
        "n'oubliez pas que",
        "garde en tete que",
        "note que",
    ];
    let (_, rest) = strip_prefix(text, PREFIXES)?;
    let rest = rest.trim_end_matches(['.', '!', ' ']);
    // "remember to call mom" is a reminder, not a fact.
    let folded = fold(rest);
    let reminder = ["to ", "de ", "d'"].iter().any(|p| folded.starts_with(p));
    (!rest.is_empty() && !reminder && !folded.ends_with('?')).then_some(rest)
}

/// Facts in one message (see the module docs).
pub fn extract(message: &str, language: Language) -> Vec<Fact> {
    if let Some(fact) = explicit_request(message) {
        return fact_from(fact, language, true).into_iter().collect();
    }
    sentences(message)
        .filter(|s| is_lasting_statement(s))
        .filter_map(|s| fact_from(s, language, false))
        .collect()
}

fn fact_from(text: &str, language: Language, explicit: bool) -> Option<Fact> {
    let text = tidy(text);
    if text.chars().count() < 3 || text.chars().count() > MAX_MEMORY_CHARS {
        return None;
    }
    let new = new_memory(&text, language, explicit);
    Some(Fact {
        text: new.text,
        kind: new.kind,
        importance: new.importance,
        tags: new.tags,
    })
}

/// Sentences, split on `.`, `!`, `?`, `;` and line breaks; a question keeps its `?`.
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive(['.', '!', '?', ';', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// First-person openings of lasting facts, folded.
const STATEMENTS: &[&str] = &[
    "i work",
    "i live",
    "i have adhd",
    "i have a",
    "i have an",
    "i have two",
    "i have three",
    "i take",
    "i prefer",
    "i like",
    "i love",
    "i hate",
    "i don't like",
    "i do not like",
    "i can't stand",
    "i'm allergic",
    "i am allergic",
    "i'm a",
    "i am a",
    "i'm an",
    "i am an",
    "i'm vegetarian",
    "i am vegetarian",
    "i'm vegan",
    "i am vegan",
    "i'm diabetic",
    "i am diabetic",
    "i usually",
    "i always",
    "i never",
    "i wake up",
    "i get up",
    "i go to bed",
    "i go to the gym",
    "my",
    "je travaille",
    "je bosse",
    "j'habite",
    "je vis",
    "j'ai un",
    "j'ai une",
    "j'ai deux",
    "j'ai trois",
    "j'ai le tdah",
    "je prends",
    "je prefere",
    "j'aime",
    "j'adore",
    "je deteste",
    "je n'aime pas",
    "je ne supporte pas",
    "je suis allergique",
    "je suis un",
    "je suis une",
    "je suis vegetarien",
    "je suis vegetarienne",
    "je suis vegan",
    "je suis vegane",
    "je suis diabetique",
    "d'habitude",
    "je me leve",
    "je me reveille",
    "je me couche",
    "mon",
    "ma",
    "mes",
];

/// Verbs that make "my …" / "mon …" a statement ("my meds are at 8am", not "my bad").
const POSSESSIVE_VERBS: &[&str] = &[
    "is",
    "are",
    "'s",
    "was",
    "were",
    "has",
    "have",
    "lives",
    "works",
    "starts",
    "takes",
    "est",
    "sont",
    "a",
    "ont",
    "habite",
    "travaille",
    "commence",
    "s'appelle",
    "c'est",
];

/// Words of passing states, events and requests: a sentence with one is not a lasting fact.
const TRANSIENT: &[&str] = &[
    "today",
    "tonight",
    "tomorrow",
    "yesterday",
    "now",
    "right now",
    "this morning",
    "this week",
    "this weekend",
    "at the moment",
    "currently",
    "need",
    "want",
    "have to",
    "has to",
    "should",
    "meeting",
    "appointment",
    "tired",
    "hungry",
    "late",
    "busy",
    "sorry",
    "sick",
    "aujourd'hui",
    "ce soir",
    "demain",
    "hier",
    "maintenant",
    "en ce moment",
    "cette semaine",
    "ce week end",
    "besoin",
    "veux",
    "voudrais",
    "dois",
    "doit",
    "faut",
    "rendez vous",
    "rdv",
    "reunion",
    "fatigue",
    "fatiguee",
    "creve",
    "crevee",
    "faim",
    "en retard",
    "occupe",
    "occupee",
    "desole",
    "desolee",
    "malade",
];

fn is_lasting_statement(sentence: &str) -> bool {
    if sentence.ends_with('?') || sentence.chars().count() > MAX_MEMORY_CHARS {
        return false;
    }
    // The opening first: most sentences have none, and it looks at their first words only.
    let Some((opening, rest)) = strip_prefix(sentence, STATEMENTS) else {
        return false;
    };
    let folded = fold(sentence);
    let words = format!(
        " {} ",
        folded.replace(|c: char| !c.is_ascii_alphanumeric() && c != '\'', " ")
    );
    if TRANSIENT.iter().any(|t| has_words(&words, t)) {
        return false;
    }
    if matches!(opening, "my" | "mon" | "ma" | "mes") {
        let rest = fold(rest);
        let rest = format!(" {} ", rest.replace("'s", " 's"));
        return POSSESSIVE_VERBS.iter().any(|v| has_words(&rest, v));
    }
    !rest.is_empty()
}

/// Whether `padded` (words, with a space before and after each) holds `phrase` as whole
/// words: what `padded.contains(&format!(" {phrase} "))` says, without building the pattern
/// (this runs for every word list on every message).
fn has_words(padded: &str, phrase: &str) -> bool {
    padded
        .match_indices(phrase)
        .any(|(at, _)| padded[..at].ends_with(' ') && padded[at + phrase.len()..].starts_with(' '))
}

/// The kind of a fact, from the concepts it mentions.
pub fn classify(text: &str, language: Language) -> MemoryKind {
    let tags = tags(text, language);
    let has = |concepts: &[&str]| tags.iter().any(|t| concepts.contains(&t.as_str()));
    // Folded only when the tags said nothing, and then once.
    let mentions = |words: &[&str]| {
        let folded = fold(text);
        words.iter().any(|w| folded.contains(w))
    };
    if has(&["medication", "doctor", "allergy", "adhd", "anxiety"]) {
        MemoryKind::Health
    } else if has(&["work", "school"]) {
        MemoryKind::Work
    } else if has(&[
        "mother", "father", "sister", "brother", "partner", "child", "friend",
    ]) {
        MemoryKind::Person
    } else if has(&["like", "dislike"]) {
        MemoryKind::Preference
    } else if has(&[
        "morning",
        "evening",
        "night",
        "sleep",
        "wake",
        "exercise",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ]) {
        MemoryKind::Routine
    } else if mentions(&["goal", "objectif"]) {
        MemoryKind::Goal
    } else {
        MemoryKind::Fact
    }
}

/// The concepts a text mentions, as tags ("medication", "morning").
pub fn tags(text: &str, language: Language) -> Vec<String> {
    let mut tags: Vec<String> = Tokenizer::new(language)
        .terms(text)
        .into_iter()
        .filter_map(|t| t.strip_prefix('~').map(str::to_owned))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    tags.retain(|t| seen.insert(t.clone()));
    tags
}

/// How much a fact of `kind` matters by default; asked-for facts matter more.
pub fn default_importance(kind: MemoryKind, explicit: bool) -> f32 {
    let base = match kind {
        MemoryKind::Health => 0.8,
        MemoryKind::Person | MemoryKind::Work | MemoryKind::Routine | MemoryKind::Goal => 0.6,
        MemoryKind::Preference | MemoryKind::Fact => 0.5,
    };
    if explicit {
        (base + 0.2f32).min(1.0)
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(message: &str, language: Language) -> Vec<String> {
        extract(message, language)
            .into_iter()
            .map(|f| f.text)
            .collect()
    }

    #[test]
    fn english_statements_of_lasting_facts_are_extracted() {
        for (message, expected) in [
            ("I work night shifts", "I work night shifts"),
            ("my meds are at 8am.", "my meds are at 8am"),
            ("I'm allergic to peanuts!", "I'm allergic to peanuts"),
            ("I live in Montreal", "I live in Montreal"),
            ("My sister's name is Julie", "My sister's name is Julie"),
            ("I hate phone calls", "I hate phone calls"),
        ] {
            assert_eq!(texts(message, Language::En), [expected], "{message}");
        }
        let two = texts("Hi! I work night shifts. My meds are at 8am.", Language::En);
        assert_eq!(two, ["I work night shifts", "My meds are at 8am"]);
    }

    #[test]
    fn french_statements_of_lasting_facts_are_extracted() {
        for (message, expected) in [
            ("je travaille de nuit", "je travaille de nuit"),
            ("Mes médicaments sont à 8h", "Mes médicaments sont à 8h"),
            ("J'habite à Lyon.", "J'habite à Lyon"),
            ("je suis allergique aux noix", "je suis allergique aux noix"),
            ("mon chien s'appelle Pixel", "mon chien s'appelle Pixel"),
        ] {
            assert_eq!(texts(message, Language::Fr), [expected], "{message}");
        }
    }

    #[test]
    fn explicit_requests_are_extracted_and_weigh_more() {
        let facts = extract("remember that my locker code is 4312", Language::En);
        assert_eq!(facts.len(), 1);
        assert_eq!(facts[0].text, "my locker code is 4312");
        assert_eq!(facts[0].importance, 0.7);
        let facts = extract("N'oublie pas que je travaille de nuit", Language::Fr);
        assert_eq!(facts[0].text, "je travaille de nuit");
        assert_eq!(facts[0].kind, MemoryKind::Work);
        assert_eq!(
            texts("souviens-toi que Paul est mon frère", Language::Fr),
            ["Paul est mon frère"]
        );
        assert_eq!(explicit_request("remember to call mom"), None);
        assert_eq!(explicit_request("n'oublie pas de sortir le chien"), None);
    }

    #[test]
    fn questions_passing_states_events_and_requests_are_not_facts() {
        for message in [
            "do I work tomorrow?",
            "I'm tired",
            "I have a meeting tomorrow",
            "I need to call mom",
            "my bad",
            "add task call mom",
            "je suis crevé",
            "je dois appeler maman",
            "j'ai un rdv demain",
            "hello",
            "my meds?",
        ] {
            assert_eq!(
                texts(message, Language::En),
                Vec::<String>::new(),
                "{message}"
            );
        }
    }

    #[test]
    fn kinds_and_tags_follow_the_concepts_mentioned() {
        assert_eq!(
            classify("my meds are at 8am", Language::En),
            MemoryKind::Health
        );
        assert_eq!(tags("my meds are at 8am", Language::En), ["medication"]);
        assert_eq!(
            classify("je travaille de nuit", Language::Fr),
            MemoryKind::Work
        );
        assert_eq!(
            classify("My sister lives in Lyon", Language::En),
            MemoryKind::Person
        );
        assert_eq!(
            classify("I love jazz", Language::En),
            MemoryKind::Preference
        );
        assert_eq!(
            classify("I go to the gym on Mondays", Language::En),
            MemoryKind::Routine
        );
        assert_eq!(
            classify("I live in Montreal", Language::En),
            MemoryKind::Fact
        );
    }

    #[test]
    fn whole_words_match_as_the_padded_pattern_does() {
        let padded = " i 'm tired right now at work ";
        for phrase in [
            "tired",
            "right now",
            "i 'm",
            "work",
            "ork",
            "now at",
            "tire",
            "i",
            "at work ",
        ] {
            assert_eq!(
                has_words(padded, phrase),
                padded.contains(&format!(" {phrase} ")),
                "{phrase:?}"
            );
        }
    }
}
