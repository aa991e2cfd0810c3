//! The simulated population: user `i` (from 0) texts from its own phone to its own dedicated
//! number, both derived from `i`, so the seeder and the load generator agree without sharing
//! anything but the count.
//!
//! The numbers live in the North American area codes 999 (phones) and 998 (dedicated
//! numbers), which are reserved and never assigned: a benchmark population cannot collide
//! with a real person.

use crate::store::{self, Channel, Direction, MessageWrite, NewMessage, Store, UserId, Written};
use crate::store::{Language, MemoryKind, NewMemory, NewUser};

/// Most users a population can have: the seven digits after the area code.
pub const MAX_USERS: u64 = 10_000_000;

/// The phone user `i` texts from.
pub fn phone(i: u64) -> String {
    format!("+1999{i:07}")
}

/// The dedicated number of user `i`.
pub fn number(i: u64) -> String {
    format!("+1998{i:07}")
}

/// User `i` as the seeder creates it. Every tenth user speaks French, so both languages'
/// replies are exercised.
pub fn new_user(i: u64) -> NewUser {
    NewUser {
        display_name: format!("Load {i}"),
        phone: phone(i),
        number: number(i),
        language: if i % 10 == 9 {
            Language::Fr
        } else {
            Language::En
        },
        time_zone: "America/New_York".to_owned(),
    }
}

/// Messages stored per transaction of [`store_history`].
const HISTORY_BATCH: usize = 1_000;

/// Stores `messages` of conversation history for each of `users`: a question, its reply,
/// and so on, oldest first, of typical SMS lengths.
pub async fn store_history(store: &Store, users: &[UserId], messages: u32) -> store::Result<()> {
    let pairs = messages.div_ceil(2);
    let per_batch = (HISTORY_BATCH / 2).max(1);
    for chunk in users.chunks(per_batch) {
        for pair in 0..pairs {
            let questions: Vec<MessageWrite> = chunk
                .iter()
                .map(|user| MessageWrite {
                    user: *user,
                    message: NewMessage {
                        channel: Channel::Sms,
                        direction: Direction::Inbound,
                        body: format!("remind me to call the pharmacy about the refill ({pair})"),
                        provider_message_id: None,
                        in_reply_to: None,
                    },
                    usage: Vec::new(),
                    model_usage: Vec::new(),
                    summary: None,
                    reply: None,
                })
                .collect();
            let asked = store.write_messages(&questions).await?;
            if pair * 2 + 1 >= messages {
                continue; // An odd count ends on a question.
            }
            let replies: Vec<MessageWrite> = asked
                .into_iter()
                .map(Written::into_message)
                .map(|question| MessageWrite {
                    user: question.user_id,
                    message: NewMessage {
                        channel: Channel::Sms,
                        direction: Direction::Outbound,
                        body: "Added \"call the pharmacy about the refill\". You have 3 open \
                               tasks - next up: pay rent."
                            .to_owned(),
                        provider_message_id: None,
                        in_reply_to: Some(question.id),
                    },
                    usage: Vec::new(),
                    model_usage: Vec::new(),
                    summary: None,
                    reply: None,
                })
                .collect();
            store.write_messages(&replies).await?;
        }
    }
    Ok(())
}

/// Who or what a typical user's memories are about, and what they say of it: each memory
/// pairs one of each, so a user's first 50 are distinct facts that consolidation does not
/// merge (a bank of near-copies would collapse into a few at the first turn).
const MEMORY_SUBJECTS: [&str; 10] = [
    "Sister Marie",
    "Dr Okafor the dentist",
    "Coach Priya",
    "Tom next door",
    "Mr Greene the landlord",
    "Li at the pharmacy",
    "Dana my manager",
    "Jules my friend",
    "Dr Ruiz my therapist",
    "Cousin Ana in Lyon",
];
const MEMORY_FACTS: [&str; 5] = [
    "prefers a text in the morning over a call",
    "has a birthday on the 14th of March",
    "expects the refill form back at the start of each month",
    "works best in 25-minute blocks with a short walk between",
    "gets upset when plans change at the last minute",
];

/// Memory `n` of a seeded user.
fn memory_text(n: u32) -> String {
    let subject = MEMORY_SUBJECTS[n as usize % MEMORY_SUBJECTS.len()];
    let fact = MEMORY_FACTS[(n as usize / MEMORY_SUBJECTS.len()) % MEMORY_FACTS.len()];
    let round = n as usize / (MEMORY_SUBJECTS.len() * MEMORY_FACTS.len());
    if round == 0 {
        format!("{subject} {fact}")
    } else {
        format!("{subject} {fact} ({round})")
    }
}

/// Users whose memories are stored per transaction of [`store_memories`].
const MEMORY_USERS_PER_BATCH: usize = 100;

/// Stores `memories` long-term memories for each of `users`, of typical lengths.
pub async fn store_memories(store: &Store, users: &[UserId], memories: u32) -> store::Result<()> {
    if memories == 0 {
        return Ok(());
    }
    let now = chrono::Utc::now();
    for chunk in users.chunks(MEMORY_USERS_PER_BATCH) {
        let batch: Vec<(UserId, NewMemory)> = chunk
            .iter()
            .flat_map(|user| {
                (0..memories).map(move |n| {
                    let memory = NewMemory {
                        text: memory_text(n),
                        kind: MemoryKind::Preference,
                        tags: vec!["routine".to_owned()],
                        importance: 0.5,
                        source_message_id: None,
                    };
                    (*user, memory)
                })
            })
            .collect();
        store.add_memories(&batch, now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::is_e164;

    #[test]
    fn phones_and_numbers_are_valid_distinct_and_derived_from_the_index() {
        for i in [0, 1, 9_999, MAX_USERS - 1] {
            assert!(is_e164(&phone(i)), "{}", phone(i));
            assert!(is_e164(&number(i)), "{}", number(i));
            assert_ne!(phone(i), number(i));
        }
        assert_eq!(phone(42), "+19990000042");
        assert_eq!(number(42), "+19980000042");
        assert_eq!(new_user(19).language, Language::Fr);
        assert_eq!(new_user(18).language, Language::En);
    }

    #[tokio::test]
    async fn history_alternates_questions_and_replies_to_them() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("h.db").display());
        let store = store::connect(&url, store::Sealer::generate())
            .await
            .unwrap();
        let users = store
            .create_users(&[new_user(0), new_user(1)])
            .await
            .unwrap();
        store_history(&store, &users, 5).await.unwrap();
        for user in users {
            let history = store.recent_messages(user, 50).await.unwrap();
            assert_eq!(history.len(), 5);
            assert_eq!(history[0].direction, Direction::Inbound);
            assert_eq!(history[1].in_reply_to, Some(history[0].id));
            assert_eq!(history[4].direction, Direction::Inbound);
            assert!(history.iter().all(|m| m.user_id == user));
        }
    }

    #[tokio::test]
    async fn memories_are_stored_for_each_user_and_readable_by_that_user_only() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("m.db").display());
        let store = store::connect(&url, store::Sealer::generate())
            .await
            .unwrap();
        let users = store
            .create_users(&[new_user(0), new_user(1), new_user(2)])
            .await
            .unwrap();
        store_memories(&store, &users[..2], 50).await.unwrap();
        for user in &users[..2] {
            let memories = store.memories(*user).await.unwrap();
            assert_eq!(memories.len(), 50);
            assert_eq!(
                memories[6].text,
                "Dana my manager prefers a text in the morning over a call"
            );
            // Fifty distinct facts: consolidation finds nothing to merge among them.
            let bank = crate::memory::MemoryBank::load(&store, *user, Language::En)
                .await
                .unwrap();
            let plan = crate::memory::consolidate::plan(&bank, chrono::Utc::now(), None);
            assert!(plan.merges.is_empty(), "{:?}", plan.merges);
        }
        assert!(store.memories(users[2]).await.unwrap().is_empty());
    }
}
