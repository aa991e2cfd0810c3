//! `/api/v1/me/memories`: what the assistant remembers about the person, sealed at rest (see
//! [`crud`](super::crud)). The person can read, correct and delete every memory.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::crud::{Resource, refused};
use crate::edges::ApiError;
use crate::memory::{self, MAX_MEMORY_CHARS};
use crate::store::{Memory, MemoryChange, MemoryKind, Store, StoreError, UserId};
use crate::tools::memory::MemoryError;

/// Most tags on one memory.
pub const MAX_TAGS: usize = 10;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 40;

/// The routes' marker type.
pub struct Memories;

/// A memory as the API shows it, opened.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Memory)]
pub struct MemoryView {
    pub id: i64,
    pub text: String,
    /// `fact`, `preference`, `routine`, `health`, `person`, `work` or `goal`.
    pub kind: String,
    pub tags: Vec<String>,
    /// 0 (trivia) to 1 (never forget).
    pub importance: f32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<Memory> for MemoryView {
    fn from(m: Memory) -> Self {
        MemoryView {
            id: m.id,
            text: m.text,
            kind: m.kind.as_str().to_owned(),
            tags: m.tags,
            importance: m.importance,
            created_at: m.created_at,
            updated_at: m.updated_at,
            last_used_at: m.last_used_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMemoryRequest {
    /// 1 to 500 characters.
    pub text: String,
    /// `fact`, `preference`, `routine`, `health`, `person`, `work` or `goal`; read from the
    /// text if absent.
    pub kind: Option<String>,
    /// Up to 10 short labels; read from the text if absent.
    pub tags: Option<Vec<String>>,
    /// 0 to 1; the kind's default if absent.
    pub importance: Option<f32>,
}

/// Fields to change; absent ones stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryUpdate {
    pub text: Option<String>,
    pub kind: Option<String>,
    pub tags: Option<Vec<String>>,
    pub importance: Option<f32>,
}

fn text(fact: &str) -> Result<String, ApiError> {
    let text = memory::text::tidy(fact);
    if text.is_empty() {
        return Err(refused("invalid_text", &MemoryError::EmptyFact));
    }
    let chars = text.chars().count();
    if chars > MAX_MEMORY_CHARS {
        return Err(refused("invalid_text", &MemoryError::TooLong { chars }));
    }
    Ok(text)
}

fn kind(name: &str) -> Result<MemoryKind, ApiError> {
    name.parse()
        .map_err(|e: String| refused("invalid_kind", &e))
}

fn importance(value: f32) -> Result<f32, ApiError> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(refused("invalid_importance", &MemoryError::BadImportance))
    }
}

/// Tags tidied and lower-cased, duplicates dropped; each 1 to [`MAX_TAG_CHARS`] characters
/// without control characters, at most [`MAX_TAGS`].
fn tags(given: &[String]) -> Result<Vec<String>, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_tags",
            format!(
                "at most {MAX_TAGS} tags of 1 to {MAX_TAG_CHARS} characters, without control characters"
            ),
        )
    };
    if given.len() > MAX_TAGS {
        return Err(bad());
    }
    let mut out: Vec<String> = Vec::with_capacity(given.len());
    for tag in given {
        let tag = tag.trim().to_lowercase();
        if tag.is_empty()
            || tag.chars().count() > MAX_TAG_CHARS
            || tag.chars().any(char::is_control)
        {
            return Err(bad());
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(out)
}

#[async_trait]
impl Resource for Memories {
    const NAME: &'static str = "memories";
    const FILTERS: &'static [(&'static str, &'static str)] = &[];

    type Item = MemoryView;
    type Create = NewMemoryRequest;
    type Update = MemoryUpdate;

    fn id(item: &MemoryView) -> i64 {
        item.id
    }

    async fn list(
        store: &Store,
        user: UserId,
        after: i64,
        limit: u32,
        _filters: &HashMap<&'static str, bool>,
    ) -> Result<Vec<MemoryView>, StoreError> {
        let memories = store.memories_page(user, after, limit).await?;
        Ok(memories.into_iter().map(MemoryView::from).collect())
    }

    async fn create(
        store: &Store,
        user: UserId,
        new: NewMemoryRequest,
    ) -> Result<MemoryView, ApiError> {
        let fact = text(&new.text)?;
        let chosen_kind = new.kind.as_deref().map(kind).transpose()?;
        let chosen_tags = new.tags.as_deref().map(tags).transpose()?;
        let chosen_importance = new.importance.map(importance).transpose()?;
        let language = store.profile(user).await?.language;
        // What the rules read in the text, overridden by what the person says.
        let mut memory = memory::new_memory(&fact, language, true);
        if let Some(kind) = chosen_kind {
            memory.kind = kind;
            memory.importance = memory::extract::default_importance(kind, true);
        }
        if let Some(tags) = chosen_tags {
            memory.tags = tags;
        }
        if let Some(importance) = chosen_importance {
            memory.importance = importance;
        }
        Ok(store.add_memory(user, &memory, Utc::now()).await?.into())
    }

    async fn get(store: &Store, user: UserId, id: i64) -> Result<MemoryView, StoreError> {
        Ok(store.memory(user, id).await?.into())
    }

    async fn update(
        store: &Store,
        user: UserId,
        id: i64,
        change: MemoryUpdate,
    ) -> Result<MemoryView, ApiError> {
        let change = MemoryChange {
            text: change.text.as_deref().map(text).transpose()?,
            kind: change.kind.as_deref().map(kind).transpose()?,
            tags: change.tags.as_deref().map(tags).transpose()?,
            importance: change.importance.map(importance).transpose()?,
        };
        Ok(store
            .update_memory(user, id, &change, Utc::now())
            .await?
            .into())
    }

    async fn delete(store: &Store, user: UserId, id: i64) -> Result<(), StoreError> {
        if store.forget_memories(user, &[id]).await?.is_empty() {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
