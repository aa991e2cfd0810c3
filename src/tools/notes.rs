//! Notes: save, list, search and delete the user's notes.
//!
//! Bodies are sealed at rest, so search runs here, over one user's opened notes: every word of
//! the query (ignoring case, accents and small words) must appear; notes with more matching
//! words rank first, then newer ones. Notes are numbered 1, 2, … newest first, as [`list`]
//! returns them.

use crate::store::{Note, Store, StoreError, UserId};
use crate::tools::tasks::{Target, Titled, match_key};

/// The longest note accepted, in characters.
pub const MAX_NOTE_CHARS: usize = 1_000;
/// How many of the latest notes search and delete look through.
pub const SEARCH_WINDOW: u32 = 2_000;

/// Why a note tool refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    #[error("the note is empty")]
    Empty,
    #[error("the note is {chars} characters long, the limit is {MAX_NOTE_CHARS}")]
    TooLong { chars: usize },
    #[error("the search has no words")]
    EmptyQuery,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Titled for Note {
    fn title(&self) -> &str {
        &self.body
    }
}

/// A note body trimmed, non-empty and at most [`MAX_NOTE_CHARS`].
pub fn note_body(body: &str) -> Result<&str, NoteError> {
    let body = body.trim();
    if body.is_empty() {
        return Err(NoteError::Empty);
    }
    let chars = body.chars().count();
    if chars > MAX_NOTE_CHARS {
        return Err(NoteError::TooLong { chars });
    }
    Ok(body)
}

/// Saves a note.
pub async fn save(store: &Store, user: UserId, body: &str) -> Result<Note, NoteError> {
    Ok(store.add_note(user, note_body(body)?).await?)
}

/// The latest notes, newest first.
pub async fn list(store: &Store, user: UserId, limit: u32) -> Result<Vec<Note>, StoreError> {
    store.notes(user, limit).await
}

/// Words too common to search by.
const SMALL_WORDS: &[&str] = &[
    "a", "an", "the", "my", "of", "for", "about", "on", "in", "to", "and", "is", "le", "la", "les",
    "l'", "de", "des", "du", "d'", "mon", "ma", "mes", "sur", "pour", "et", "un", "une",
];

/// Notes whose text holds the query's words, best first, at most `limit`.
pub async fn search(
    store: &Store,
    user: UserId,
    query: &str,
    limit: usize,
) -> Result<Vec<Note>, NoteError> {
    let words: Vec<String> = match_key(query)
        .split(' ')
        .filter(|w| !w.is_empty() && !SMALL_WORDS.contains(w))
        .map(str::to_owned)
        .collect();
    if words.is_empty() {
        return Err(NoteError::EmptyQuery);
    }
    let notes = store.notes(user, SEARCH_WINDOW).await?;
    let mut scored: Vec<(usize, usize, Note)> = notes
        .into_iter()
        .enumerate()
        .filter_map(|(age, note)| {
            let key = match_key(&note.body);
            let found = words.iter().filter(|w| contains_word(&key, w)).count();
            (found == words.len()).then_some((found, age, note))
        })
        .collect();
    // More matching words first, then newer (lower age).
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    Ok(scored.into_iter().take(limit).map(|(_, _, n)| n).collect())
}

/// Whether a word of `key` starts with `word` ("pass" finds "password").
fn contains_word(key: &str, word: &str) -> bool {
    key.split(' ').any(|w| w.starts_with(word))
}

/// Deletes one note by its number in the newest-first list or by its words.
pub async fn delete(
    store: &Store,
    user: UserId,
    target: &Target,
) -> Result<crate::tools::tasks::Pick<Note>, StoreError> {
    let notes = store.notes(user, SEARCH_WINDOW).await?;
    let picked = crate::tools::tasks::pick(&notes, target);
    if let crate::tools::tasks::Pick::One(_, note) = &picked {
        store.delete_note(user, note.id).await?;
    }
    Ok(picked)
}
