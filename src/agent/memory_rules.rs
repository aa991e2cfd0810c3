//! Offline memory commands, English and French: "remember that …", "what do you know about
//! me", "what do you remember about X", "forget that …", "souviens-toi que …", "qu'est-ce que
//! tu sais sur …", "oublie …".
//!
//! Three plain steps, like the rest of the offline rules: [`parse`] reads the intent (case,
//! accents and punctuation do not matter; the fact is kept as typed), [`execute`] runs it
//! through the memory tools for the user, [`render`] words the outcome in the user's language,
//! SMS-sized. Nothing here logs what the user wrote.

use chrono::{DateTime, Utc};

use super::offline::{SMS_MAX_CHARS, SMS_MAX_ITEMS};
use super::{AgentError, TurnInput};
use crate::memory::Remembered;
use crate::memory::extract::explicit_request;
use crate::memory::text::{fold, strip_prefix};
use crate::store::{Channel, Language, Store, User};
use crate::tools::memory::{self, ForgetTarget, MemoryError};

/// What a memory command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryIntent {
    /// Keep this fact.
    Remember(String),
    /// What is known about this topic.
    Recall(String),
    /// What is known about the user, most important first.
    Overview,
    /// Delete the memories about this.
    Forget(String),
}

/// What running an intent gave.
#[derive(Debug, Clone, PartialEq)]
pub enum MemoryOutcome {
    Remembered(Remembered),
    /// The memories found about a topic (texts, best first).
    Recalled {
        topic: String,
        found: Vec<String>,
    },
    /// How many memories there are, and the texts of the most important.
    Overview {
        total: usize,
        top: Vec<String>,
    },
    /// The texts of the memories deleted (empty: nothing matched).
    Forgotten {
        what: String,
        forgotten: Vec<String>,
    },
    /// Too many memories match the words to forget; nothing was deleted.
    TooManyToForget {
        what: String,
        count: usize,
    },
    /// The fact is empty or too long, or the question names nothing to look for.
    Refused(Refusal),
}

/// Why a command was not carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    EmptyFact,
    TooLong { chars: usize },
    NothingToLookFor,
}

const POLITE: &[&str] = &[
    "please",
    "pls",
    "hey nudge",
    "hi nudge",
    "nudge",
    "hey",
    "ok",
    "stp",
    "svp",
    "s'il te plait",
    "s'il vous plait",
];
const OVERVIEW: &[&str] = &[
    "what do you know about me",
    "what do you remember about me",
    "what do you know of me",
    "what do you remember",
    "what do you know",
    "what have you remembered",
    "what did i tell you",
    "tell me what you know about me",
    "tell me what you remember",
    "qu'est ce que tu sais sur moi",
    "qu'est ce que tu sais de moi",
    "qu'est ce que tu sais",
    "qu'est ce que tu te rappelles",
    "qu'est ce que tu retiens",
    "que sais tu sur moi",
    "que sais tu de moi",
    "que sais tu",
    "tu sais quoi sur moi",
    "tu sais quoi de moi",
    "de quoi tu te souviens",
    "tu te souviens de quoi",
];
const RECALL: &[&str] = &[
    "what do you remember about",
    "what do you remember of",
    "what do you know about",
    "what do you know of",
    "do you remember",
    "what did i tell you about",
    "what did i say about",
    "recall",
    "qu'est ce que tu sais sur",
    "qu'est ce que tu sais de",
    "qu'est ce que tu sais du",
    "qu'est ce que tu sais des",
    "qu'est ce que tu sais d'",
    "qu'est ce que tu sais a propos de",
    "qu'est ce que tu te rappelles de",
    "qu'est ce que tu te rappelles sur",
    "que sais tu sur",
    "que sais tu de",
    "que sais tu du",
    "que sais tu des",
    "que sais tu d'",
    "tu sais quoi sur",
    "tu sais quoi de",
    "tu te souviens de",
    "tu te souviens du",
    "tu te souviens des",
    "tu te souviens d'",
    "te souviens tu de",
    "te souviens tu du",
    "te souviens tu des",
    "tu te rappelles de",
    "tu te rappelles",
];
const FORGET: &[&str] = &[
    "forget that",
    "forget about",
    "forget",
    "oublie que",
    "oublie",
    "oubliez que",
    "oubliez",
];
/// "forget it", "oublie ça": a change of mind, not a memory to delete.
const FORGET_NOTHING: &[&str] = &[
    "",
    "it",
    "that",
    "this",
    "about it",
    "everything",
    "all",
    "ca",
    "cela",
    "tout",
    "le",
    "la",
    "les",
    "c'est pas grave",
];
const ME: &[&str] = &["me", "myself", "moi", "moi meme"];

/// Reads a memory command; `None` for any other message.
pub fn parse(text: &str) -> Option<MemoryIntent> {
    let text = text.trim().trim_end_matches(['?', '!', '.', ' ']);
    let text = strip_prefix(text, POLITE).map_or(text, |(_, rest)| rest);
    let folded = fold(text);
    if OVERVIEW.contains(&folded.as_str()) {
        return Some(MemoryIntent::Overview);
    }
    if let Some((_, topic)) = strip_prefix(text, RECALL) {
        let topic = topic.trim_start_matches('\'').trim();
        let folded_topic = fold(topic);
        return Some(if topic.is_empty() || ME.contains(&folded_topic.as_str()) {
            MemoryIntent::Overview
        } else {
            MemoryIntent::Recall(topic.to_owned())
        });
    }
    if let Some((_, what)) = strip_prefix(text, FORGET) {
        let folded_what = fold(what);
        return (!FORGET_NOTHING.contains(&folded_what.as_str()))
            .then(|| MemoryIntent::Forget(what.to_owned()));
    }
    explicit_request(text).map(|fact| MemoryIntent::Remember(fact.to_owned()))
}

/// Runs a memory command for the turn's user and words the answer.
pub async fn respond(
    store: &Store,
    input: &TurnInput<'_>,
    intent: MemoryIntent,
) -> Result<String, AgentError> {
    let outcome = execute(store, input.user, intent, input.now).await?;
    Ok(render(&outcome, input.user.language, input.channel))
}

/// Runs a memory command for `user` through the memory tools.
pub async fn execute(
    store: &Store,
    user: &User,
    intent: MemoryIntent,
    now: DateTime<Utc>,
) -> Result<MemoryOutcome, AgentError> {
    let outcome = match intent {
        MemoryIntent::Remember(fact) => memory::remember(store, user, &fact, None, None, now)
            .await
            .map(MemoryOutcome::Remembered),
        MemoryIntent::Recall(topic) => {
            memory::recall(store, user, &topic, SMS_MAX_ITEMS.min(3), now)
                .await
                .map(|ranked| MemoryOutcome::Recalled {
                    topic,
                    found: ranked.into_iter().map(|r| r.memory.text).collect(),
                })
        }
        MemoryIntent::Overview => {
            memory::overview(store, user, SMS_MAX_ITEMS, now)
                .await
                .map(|(total, top)| MemoryOutcome::Overview {
                    total,
                    top: top.into_iter().map(|r| r.memory.text).collect(),
                })
        }
        MemoryIntent::Forget(what) => {
            match memory::forget(store, user, &ForgetTarget::Matching(what.clone())).await {
                Err(MemoryError::TooManyMatches { count }) => {
                    Ok(MemoryOutcome::TooManyToForget { what, count })
                }
                other => other.map(|gone| MemoryOutcome::Forgotten {
                    what,
                    forgotten: gone.into_iter().map(|m| m.text).collect(),
                }),
            }
        }
    };
    match outcome {
        Ok(outcome) => Ok(outcome),
        Err(MemoryError::EmptyFact) => Ok(MemoryOutcome::Refused(Refusal::EmptyFact)),
        Err(MemoryError::TooLong { chars }) => {
            Ok(MemoryOutcome::Refused(Refusal::TooLong { chars }))
        }
        Err(MemoryError::EmptyQuery) => Ok(MemoryOutcome::Refused(Refusal::NothingToLookFor)),
        Err(MemoryError::Store(e)) => Err(AgentError::Store(e)),
        // The offline commands never pass a bad importance, limit or target.
        Err(other) => Err(AgentError::Store(crate::store::StoreError::Corrupt(
            other.to_string(),
        ))),
    }
}

/// Words an outcome in `lang`, within [`SMS_MAX_CHARS`] on SMS.
pub fn render(outcome: &MemoryOutcome, lang: Language, channel: Channel) -> String {
    let fr = lang == Language::Fr;
    let text = match outcome {
        MemoryOutcome::Remembered(Remembered::Added(m)) => {
            if fr {
                format!("C'est noté, je m'en souviendrai : {}.", quote(&m.text))
            } else {
                format!("Got it, I'll remember: {}.", quote(&m.text))
            }
        }
        MemoryOutcome::Remembered(Remembered::AlreadyKnown(m)) => {
            if fr {
                format!("Je le sais déjà : {}.", quote(&m.text))
            } else {
                format!("I already know that: {}.", quote(&m.text))
            }
        }
        MemoryOutcome::Remembered(Remembered::Updated(m)) => {
            if fr {
                format!("Mis à jour : {}.", quote(&m.text))
            } else {
                format!("Updated: {}.", quote(&m.text))
            }
        }
        MemoryOutcome::Recalled { topic, found } if found.is_empty() => {
            if fr {
                format!(
                    "Je ne sais rien sur {topic} pour l'instant. Dis-moi \"souviens-toi que ...\" pour me l'apprendre."
                )
            } else {
                format!(
                    "I don't remember anything about {topic} yet. Say \"remember that ...\" to teach me."
                )
            }
        }
        MemoryOutcome::Recalled { topic, found } => {
            if fr {
                format!("Sur {topic}, je sais : {}.", list(found, channel, fr))
            } else {
                format!("About {topic}, I remember: {}.", list(found, channel, fr))
            }
        }
        MemoryOutcome::Overview { total: 0, .. } => {
            if fr {
                "Je ne sais encore rien de toi. Dis-moi \"souviens-toi que ...\" et je le retiendrai.".to_owned()
            } else {
                "I don't know much about you yet. Say \"remember that ...\" and I'll keep it."
                    .to_owned()
            }
        }
        MemoryOutcome::Overview { total, top } => {
            if fr {
                let things = if *total == 1 { "chose" } else { "choses" };
                format!(
                    "Je retiens {total} {things} sur toi : {}.",
                    list(top, channel, fr)
                )
            } else {
                let things = if *total == 1 { "thing" } else { "things" };
                format!(
                    "I remember {total} {things} about you: {}.",
                    list(top, channel, fr)
                )
            }
        }
        MemoryOutcome::Forgotten { what, forgotten } if forgotten.is_empty() => {
            if fr {
                format!("Je ne trouve aucun souvenir sur {}.", quote(what))
            } else {
                format!("I couldn't find a memory about {}.", quote(what))
            }
        }
        MemoryOutcome::Forgotten { forgotten, .. } => {
            if fr {
                format!("C'est oublié : {}.", list(forgotten, channel, fr))
            } else {
                format!("Forgotten: {}.", list(forgotten, channel, fr))
            }
        }
        MemoryOutcome::TooManyToForget { what, count } => {
            if fr {
                format!(
                    "{count} souvenirs parlent de {}. Lequel ? Donne-moi quelques mots de plus.",
                    quote(what)
                )
            } else {
                format!(
                    "{count} memories mention {}. Which one? Give me a few more words.",
                    quote(what)
                )
            }
        }
        MemoryOutcome::Refused(Refusal::EmptyFact) => {
            if fr {
                "Je retiens quoi ? Dis \"souviens-toi que ...\".".to_owned()
            } else {
                "What should I remember? Say \"remember that ...\".".to_owned()
            }
        }
        MemoryOutcome::Refused(Refusal::TooLong { chars }) => {
            if fr {
                format!(
                    "C'est un peu long à retenir ({chars} caractères, 500 max). Tu peux raccourcir ?"
                )
            } else {
                format!(
                    "That's a bit long to remember ({chars} characters, 500 max). Can you shorten it?"
                )
            }
        }
        MemoryOutcome::Refused(Refusal::NothingToLookFor) => {
            if fr {
                "Je cherche quoi ? Par exemple : \"qu'est-ce que tu sais sur mon travail\"."
                    .to_owned()
            } else {
                "What should I look for? For example: \"what do you remember about my work\"."
                    .to_owned()
            }
        }
    };
    match channel {
        Channel::Sms => clip(&text, SMS_MAX_CHARS),
        Channel::Web => text,
    }
}

/// A memory in straight quotes (curly ones would make an SMS UCS-2), cut to fit a list.
fn quote(text: &str) -> String {
    format!("\"{}\"", clip(text, 90))
}

/// Quoted texts joined, at most [`SMS_MAX_ITEMS`] on SMS, "+N more" after.
fn list(texts: &[String], channel: Channel, fr: bool) -> String {
    let shown = match channel {
        Channel::Sms => texts.len().min(SMS_MAX_ITEMS),
        Channel::Web => texts.len(),
    };
    let mut out = texts[..shown]
        .iter()
        .map(|t| quote(t))
        .collect::<Vec<_>>()
        .join("; ");
    if shown < texts.len() {
        let more = texts.len() - shown;
        out.push_str(&if fr {
            format!(" (+{more} autres)")
        } else {
            format!(" (+{more} more)")
        });
    }
    out
}

/// `text` cut to `max` characters, ending with "..." when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(3)).collect();
    cut.truncate(cut.trim_end().len());
    cut.push_str("...");
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::testing::now;
    use crate::store::testing::on_each_backend;
    use crate::tools::memory::tests::user;

    fn intent(text: &str) -> Option<MemoryIntent> {
        parse(text)
    }

    #[test]
    fn english_memory_commands_are_read() {
        use MemoryIntent::*;
        for (text, expected) in [
            (
                "remember that I work night shifts",
                Remember("I work night shifts".into()),
            ),
            (
                "Please remember: my meds are at 8am.",
                Remember("my meds are at 8am".into()),
            ),
            (
                "don't forget that Sam is allergic to cats",
                Remember("Sam is allergic to cats".into()),
            ),
            ("What do you know about me?", Overview),
            ("what do you remember", Overview),
            (
                "What do you remember about my sister?",
                Recall("my sister".into()),
            ),
            (
                "do you remember my locker code",
                Recall("my locker code".into()),
            ),
            (
                "forget that I work night shifts",
                Forget("I work night shifts".into()),
            ),
            ("Forget about my sister", Forget("my sister".into())),
        ] {
            assert_eq!(intent(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn french_memory_commands_are_read() {
        use MemoryIntent::*;
        for (text, expected) in [
            (
                "souviens-toi que je travaille de nuit",
                Remember("je travaille de nuit".into()),
            ),
            (
                "N'oublie pas que mes médicaments sont à 8h",
                Remember("mes médicaments sont à 8h".into()),
            ),
            (
                "retiens que Paul est mon frère",
                Remember("Paul est mon frère".into()),
            ),
            ("qu'est-ce que tu sais sur moi ?", Overview),
            ("Que sais-tu de moi", Overview),
            (
                "qu'est-ce que tu sais sur mon travail ?",
                Recall("mon travail".into()),
            ),
            ("tu te souviens de ma sœur ?", Recall("ma sœur".into())),
            ("qu'est-ce que tu sais d'Élodie", Recall("Élodie".into())),
            (
                "oublie que je travaille de nuit",
                Forget("je travaille de nuit".into()),
            ),
            ("oublie mon chien", Forget("mon chien".into())),
        ] {
            assert_eq!(intent(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn other_messages_are_left_to_the_other_rules() {
        for text in [
            "remember to call mom",
            "n'oublie pas de sortir le chien",
            "forget it",
            "oublie ça",
            "qu'est-ce que tu sais faire",
            "add task call mom",
            "tasks",
            "I forgot my keys",
            "what do you think",
        ] {
            assert_eq!(intent(text), None, "{text}");
        }
    }

    #[tokio::test]
    async fn a_conversation_remembers_recalls_and_forgets() {
        on_each_backend(|store| async move {
            let user = user(&store, 1, Language::En).await;
            let say = |text: &'static str| {
                let store = store.clone();
                let user = user.clone();
                async move {
                    let outcome = execute(&store, &user, parse(text).unwrap(), now())
                        .await
                        .unwrap();
                    render(&outcome, Language::En, Channel::Sms)
                }
            };
            assert!(
                say("what do you know about me")
                    .await
                    .contains("don't know much")
            );
            assert_eq!(
                say("remember that my meds are at 8am").await,
                "Got it, I'll remember: \"my meds are at 8am\"."
            );
            assert!(
                say("remember that my meds are at 8am")
                    .await
                    .starts_with("I already know")
            );
            say("remember that I work night shifts").await;
            let recalled = say("what do you remember about my pills").await;
            assert!(
                recalled.contains("my meds are at 8am") && !recalled.contains("night"),
                "{recalled}"
            );
            let overview = say("what do you know about me").await;
            assert!(
                overview.starts_with("I remember 2 things about you"),
                "{overview}"
            );
            assert!(
                say("forget that my meds are at 8am")
                    .await
                    .starts_with("Forgotten: \"my meds")
            );
            assert!(
                say("what do you remember about my meds")
                    .await
                    .contains("don't remember anything")
            );
            assert!(say("forget my cat").await.contains("couldn't find"));
            let long = render(
                &MemoryOutcome::Overview {
                    total: 40,
                    top: vec!["x".repeat(200); 5],
                },
                Language::Fr,
                Channel::Sms,
            );
            assert!(long.chars().count() <= SMS_MAX_CHARS, "{long}");
        })
        .await;
    }
}
