//! Notes: free text the user keeps, sealed at rest.
//!
//! The body is sealed to its place (`notes.body:<user>`), so the database holds no plaintext
//! and a body copied into another user's row does not open. Searching therefore happens in the
//! application over one user's opened notes (see `tools::notes`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sql::{now, write_error};
use super::{Result, Store, StoreError, UserId, with_user};

/// Where a note body is sealed.
const BODY_PLACE: &str = "notes.body";

/// One note, opened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Note {
    pub id: i64,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct NoteRow {
    id: i64,
    body: String,
    created_at: DateTime<Utc>,
}

const INSERT_NOTE: &str =
    "INSERT INTO notes (user_id, body, created_at) VALUES ($1, $2, $3) RETURNING id";
const NOTES: &str = "SELECT id, body, created_at FROM notes WHERE user_id = $1 \
     ORDER BY id DESC LIMIT $2";
const DELETE_NOTE: &str = "DELETE FROM notes WHERE user_id = $1 AND id = $2";

impl Store {
    /// Saves a note, sealed to this user.
    #[tracing::instrument(skip_all)]
    pub async fn add_note(&self, user: UserId, body: &str) -> Result<Note> {
        let created_at = now();
        let sealed = self.seal_column(BODY_PLACE, user, body);
        let id: i64 = with_user!(self, user, conn => {
            sqlx::query_scalar(INSERT_NOTE)
                .bind(user.0)
                .bind(&sealed)
                .bind(created_at)
                .fetch_one(&mut *conn)
                .await
                .map_err(write_error)?
        });
        Ok(Note {
            id,
            body: body.to_owned(),
            created_at,
        })
    }

    /// The user's latest notes, newest first, at most `limit`, opened.
    #[tracing::instrument(skip_all)]
    pub async fn notes(&self, user: UserId, limit: u32) -> Result<Vec<Note>> {
        let rows = with_user!(self, user, conn => {
            sqlx::query_as::<_, NoteRow>(NOTES)
                .bind(user.0)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?
        });
        rows.into_iter()
            .map(|row| self.open_note(user, row))
            .collect()
    }

    fn open_note(&self, user: UserId, row: NoteRow) -> Result<Note> {
        Ok(Note {
            id: row.id,
            body: self.open_column(BODY_PLACE, user, &row.body)?,
            created_at: row.created_at,
        })
    }

    /// Deletes one note; `NotFound` if it is not this user's.
    #[tracing::instrument(skip_all)]
    pub async fn delete_note(&self, user: UserId, note_id: i64) -> Result<()> {
        self.delete_owned(DELETE_NOTE, user, note_id).await
    }
}

// What the REST API needs beyond the assistant's own operations: pages, one note, edits.

const NOTES_PAGE: &str = "SELECT id, body, created_at FROM notes \
     WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3";
const NOTE_BY_ID: &str = "SELECT id, body, created_at FROM notes WHERE user_id = $1 AND id = $2";
const UPDATE_NOTE: &str = "UPDATE notes SET body = $3 WHERE user_id = $1 AND id = $2 \
     RETURNING id, body, created_at";

impl Store {
    /// Up to `limit` of the user's notes with ids after `after`, in id order, opened.
    #[tracing::instrument(skip_all)]
    pub async fn notes_page(&self, user: UserId, after: i64, limit: u32) -> Result<Vec<Note>> {
        let rows: Vec<NoteRow> = self.page_of(NOTES_PAGE, user, after, limit).await?;
        rows.into_iter()
            .map(|row| self.open_note(user, row))
            .collect()
    }

    /// One of the user's notes; `NotFound` when it is not theirs.
    #[tracing::instrument(skip_all)]
    pub async fn note(&self, user: UserId, note_id: i64) -> Result<Note> {
        let row = self.owned_row(NOTE_BY_ID, user, note_id).await?;
        self.open_note(user, row)
    }

    /// Replaces a note's body (sealed again); `NotFound` when it is not the user's.
    #[tracing::instrument(skip_all)]
    pub async fn update_note(&self, user: UserId, note_id: i64, body: &str) -> Result<Note> {
        let sealed = self.seal_column(BODY_PLACE, user, body);
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, NoteRow>(UPDATE_NOTE)
                .bind(user.0)
                .bind(note_id)
                .bind(&sealed)
                .fetch_optional(&mut *conn)
                .await
                .map_err(write_error)?
        });
        self.open_note(user, row.ok_or(StoreError::NotFound)?)
    }
}
