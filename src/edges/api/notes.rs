//! `/api/v1/me/notes`: the person's notes, sealed at rest (see [`crud`](super::crud)).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::crud::{Resource, refused};
use crate::edges::ApiError;
use crate::store::{Note, Store, StoreError, UserId};
use crate::tools::notes::{NoteError, note_body};

/// The routes' marker type.
pub struct Notes;

/// A note as the API shows it, opened.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Note)]
pub struct NoteView {
    pub id: i64,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

impl From<Note> for NoteView {
    fn from(n: Note) -> Self {
        NoteView {
            id: n.id,
            body: n.body,
            created_at: n.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    /// 1 to 1000 characters.
    pub body: String,
}

/// Fields to change; absent ones stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteUpdate {
    /// 1 to 1000 characters.
    pub body: Option<String>,
}

fn body(text: &str) -> Result<&str, ApiError> {
    note_body(text).map_err(|e| match e {
        NoteError::Store(e) => e.into(),
        other => refused("invalid_body", &other),
    })
}

#[async_trait]
impl Resource for Notes {
    const NAME: &'static str = "notes";
    const FILTERS: &'static [(&'static str, &'static str)] = &[];

    type Item = NoteView;
    type Create = NewNote;
    type Update = NoteUpdate;

    fn id(item: &NoteView) -> i64 {
        item.id
    }

    async fn list(
        store: &Store,
        user: UserId,
        after: i64,
        limit: u32,
        _filters: &HashMap<&'static str, bool>,
    ) -> Result<Vec<NoteView>, StoreError> {
        let notes = store.notes_page(user, after, limit).await?;
        Ok(notes.into_iter().map(NoteView::from).collect())
    }

    async fn create(store: &Store, user: UserId, new: NewNote) -> Result<NoteView, ApiError> {
        Ok(store.add_note(user, body(&new.body)?).await?.into())
    }

    async fn get(store: &Store, user: UserId, id: i64) -> Result<NoteView, StoreError> {
        Ok(store.note(user, id).await?.into())
    }

    async fn update(
        store: &Store,
        user: UserId,
        id: i64,
        change: NoteUpdate,
    ) -> Result<NoteView, ApiError> {
        let note = match change.body.as_deref() {
            Some(text) => store.update_note(user, id, body(text)?).await?,
            None => store.note(user, id).await?,
        };
        Ok(note.into())
    }

    async fn delete(store: &Store, user: UserId, id: i64) -> Result<(), StoreError> {
        store.delete_note(user, id).await
    }
}
