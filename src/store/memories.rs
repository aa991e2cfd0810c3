//! Long-term memories: durable facts about a user, sealed at rest.
//!
//! The text and tags of a memory are sealed ([`seal`](super::seal)) for the place
//! `ltm_memories.text:<user>` / `ltm_memories.tags:<user>`, so a copy of the database shows no
//! memory and a value moved into another user's row fails to open. The embedding is stored as
//! little-endian `f32`s (a `BLOB` / `BYTEA`): 1 KiB for 256 dimensions against ~3 KiB as JSON,
//! read back without parsing text, and exact to the bit. It is not sealed: a vector is not the
//! text, but it is derived from it, so backups are to be kept as private as the database.
//!
//! Every method is scoped by the user's id; ids of another user's memories behave as if they
//! did not exist.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Database, QueryBuilder};

use super::seal::place;
use super::sql::{ROWS_PER_STATEMENT, parse, write_error};
use super::{Result, Store, StoreError, UserId, sqlite_reads, with_pool, with_user};

/// The sealing place of a memory's text.
const TEXT_COLUMN: &str = "ltm_memories.text";
/// The sealing place of a memory's tags (a JSON array of strings).
const TAGS_COLUMN: &str = "ltm_memories.tags";

/// What sort of fact a memory is; the model reads it, consolidation never merges across kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MemoryKind {
    /// Anything that fits no other kind.
    #[default]
    Fact,
    /// Likes, dislikes, how the user wants to be spoken to.
    Preference,
    /// Habits and schedules ("gym on Mondays").
    Routine,
    /// Medication, conditions, allergies: kept longest.
    Health,
    /// People in the user's life.
    Person,
    /// Job, shifts, colleagues.
    Work,
    /// What the user is working towards.
    Goal,
}

impl MemoryKind {
    /// Every kind, in the order documented to the model.
    pub const ALL: [MemoryKind; 7] = [
        MemoryKind::Fact,
        MemoryKind::Preference,
        MemoryKind::Routine,
        MemoryKind::Health,
        MemoryKind::Person,
        MemoryKind::Work,
        MemoryKind::Goal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MemoryKind::Fact => "fact",
            MemoryKind::Preference => "preference",
            MemoryKind::Routine => "routine",
            MemoryKind::Health => "health",
            MemoryKind::Person => "person",
            MemoryKind::Work => "work",
            MemoryKind::Goal => "goal",
        }
    }
}

impl fmt::Display for MemoryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MemoryKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MemoryKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| format!("unknown memory kind {s:?}"))
    }
}

/// A memory's vector and the model that computed it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEmbedding {
    /// The embedding model's name (e.g. `gemini-embedding-001@256`); vectors are compared
    /// only with a query embedded by the same model.
    pub model: String,
    /// Unit-length vector.
    pub values: Vec<f32>,
}

/// One stored memory, opened.
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    pub id: i64,
    pub text: String,
    pub kind: MemoryKind,
    /// Short labels ("meds", "work"), lower case.
    pub tags: Vec<String>,
    /// 0 (trivia) to 1 (never forget); blended into ranking, and the decay rule spares the
    /// important ones.
    pub importance: f32,
    /// The message the fact was learnt from, if any.
    pub source_message_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// Last change of text, tags or importance.
    pub updated_at: DateTime<Utc>,
    /// Last time the memory was retrieved for a turn or recalled.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Computed after the memory is stored, off the turn's path; `None` until then.
    pub embedding: Option<MemoryEmbedding>,
}

impl Memory {
    /// The later of creation, change and use: what recency and decay count from.
    pub fn last_touched(&self) -> DateTime<Utc> {
        let changed = self.updated_at.max(self.created_at);
        self.last_used_at.map_or(changed, |used| used.max(changed))
    }
}

/// A memory about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMemory {
    pub text: String,
    pub kind: MemoryKind,
    pub tags: Vec<String>,
    pub importance: f32,
    pub source_message_id: Option<i64>,
}

/// A cheap summary of a user's memories that changes whenever one is added, changed or
/// removed (not when one is used or embedded): a cache compares it to know it is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryFingerprint {
    pub count: i64,
    pub max_id: i64,
    pub max_updated_at: Option<DateTime<Utc>>,
}

/// How a merge rewrites the memory that survives it.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedMemory {
    pub text: String,
    pub tags: Vec<String>,
    pub importance: f32,
}

#[derive(sqlx::FromRow)]
pub(super) struct MemoryRow {
    id: i64,
    text: String,
    kind: String,
    tags: String,
    importance: f64,
    source_message_id: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    embedding: Option<Vec<u8>>,
    embedding_model: Option<String>,
}

impl MemoryRow {
    /// The fingerprint of a user's memories, all of them as read: what [`FINGERPRINT`]
    /// computes from the table.
    pub(super) fn fingerprint(rows: &[MemoryRow]) -> MemoryFingerprint {
        MemoryFingerprint {
            count: i64::try_from(rows.len()).unwrap_or(i64::MAX),
            max_id: rows.iter().map(|r| r.id).max().unwrap_or(0),
            max_updated_at: rows.iter().map(|r| r.updated_at).max(),
        }
    }

    /// The row as SQLite's reader threads read it (`sqlite_reads`).
    pub(super) fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: sqlite_reads::column(row, 0, "id")?,
            text: sqlite_reads::column(row, 1, "text")?,
            kind: sqlite_reads::column(row, 2, "kind")?,
            tags: sqlite_reads::column(row, 3, "tags")?,
            importance: sqlite_reads::column(row, 4, "importance")?,
            source_message_id: sqlite_reads::column(row, 5, "source_message_id")?,
            created_at: sqlite_reads::time(row, 6, "created_at")?,
            updated_at: sqlite_reads::time(row, 7, "updated_at")?,
            last_used_at: sqlite_reads::optional_time(row, 8, "last_used_at")?,
            embedding: sqlite_reads::column(row, 9, "embedding")?,
            embedding_model: sqlite_reads::column(row, 10, "embedding_model")?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct FingerprintRow {
    count: i64,
    max_id: i64,
    max_updated_at: Option<DateTime<Utc>>,
}

impl FingerprintRow {
    /// The row as SQLite's own connections read it (`sqlite_reads`, `sqlite_batch`). A newest
    /// update in any text but a time stamp reads as none: the fingerprint then differs from
    /// the cache's, which reloads (the safe way to be wrong).
    pub(super) fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        let updated: Option<String> = sqlite_reads::column(row, 2, "max_updated_at")?;
        Ok(Self {
            count: sqlite_reads::column(row, 0, "count")?,
            max_id: sqlite_reads::column(row, 1, "max_id")?,
            max_updated_at: updated.as_deref().and_then(sqlite_reads::stored_time),
        })
    }
}

impl From<FingerprintRow> for MemoryFingerprint {
    fn from(row: FingerprintRow) -> Self {
        MemoryFingerprint {
            count: row.count,
            max_id: row.max_id,
            max_updated_at: row.max_updated_at,
        }
    }
}

macro_rules! memory_columns {
    () => {
        "id, text, kind, tags, importance, source_message_id, created_at, updated_at, \
         last_used_at, embedding, embedding_model"
    };
}

/// A memory without a source message, for [`Store::add_memories`].
const INSERT_MEMORY_ONLY: &str = "INSERT INTO ltm_memories \
     (user_id, text, kind, tags, importance, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $6)";
/// Inserts nothing when `$6` names a message that is not this user's.
const INSERT_MEMORY: &str = concat!(
    "INSERT INTO ltm_memories \
     (user_id, text, kind, tags, importance, source_message_id, created_at, updated_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $7 \
     WHERE $6 IS NULL OR EXISTS (SELECT 1 FROM messages WHERE user_id = $1 AND id = $6) \
     RETURNING ",
    memory_columns!()
);
pub(super) const MEMORIES: &str = concat!(
    "SELECT ",
    memory_columns!(),
    " FROM ltm_memories WHERE user_id = $1 ORDER BY id"
);
const MEMORY: &str = concat!(
    "SELECT ",
    memory_columns!(),
    " FROM ltm_memories WHERE user_id = $1 AND id = $2"
);
const SET_IMPORTANCE: &str = concat!(
    "UPDATE ltm_memories SET importance = $3, updated_at = $4 \
     WHERE user_id = $1 AND id = $2 RETURNING ",
    memory_columns!()
);
/// Only while the text is the one the vector was computed from (`updated_at` unchanged).
const SET_EMBEDDING: &str = "UPDATE ltm_memories SET embedding = $3, embedding_model = $4 \
     WHERE user_id = $1 AND id = $2 AND updated_at = $5";
const MERGE_INTO: &str = concat!(
    "UPDATE ltm_memories SET text = $3, tags = $4, importance = $5, updated_at = $6, \
     embedding = NULL, embedding_model = NULL \
     WHERE user_id = $1 AND id = $2 RETURNING ",
    memory_columns!()
);
pub(super) const FINGERPRINT: &str = "SELECT COUNT(*) AS count, COALESCE(MAX(id), 0) AS max_id, \
     MAX(updated_at) AS max_updated_at FROM ltm_memories WHERE user_id = $1";

/// Times as stored: microseconds, PostgreSQL's precision, so a write and a read agree.
fn stored_time(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

fn encode_vector(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn decode_vector(bytes: &[u8]) -> Result<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(StoreError::Corrupt(format!(
            "ltm_memories.embedding: {} bytes is not a whole number of f32s",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

impl Store {
    fn seal_memory(&self, user: UserId, text: &str, tags: &[String]) -> (String, String) {
        let tags = serde_json::to_string(tags).unwrap_or_else(|_| "[]".to_owned());
        (
            self.sealer.seal(&place(TEXT_COLUMN, user), text),
            self.sealer.seal(&place(TAGS_COLUMN, user), &tags),
        )
    }

    pub(super) fn open_memory(&self, user: UserId, row: MemoryRow) -> Result<Memory> {
        let corrupt = |column: &str, e: &dyn fmt::Display| {
            StoreError::Corrupt(format!("{column} of memory {}: {e}", row.id))
        };
        let text = self
            .sealer
            .open(&place(TEXT_COLUMN, user), &row.text)
            .map_err(|e| corrupt(TEXT_COLUMN, &e))?;
        let tags = self
            .sealer
            .open(&place(TAGS_COLUMN, user), &row.tags)
            .map_err(|e| corrupt(TAGS_COLUMN, &e))?;
        let tags: Vec<String> =
            serde_json::from_str(&tags).map_err(|e| corrupt(TAGS_COLUMN, &e))?;
        let embedding = match (row.embedding, row.embedding_model) {
            (Some(bytes), Some(model)) => Some(MemoryEmbedding {
                model,
                values: decode_vector(&bytes)?,
            }),
            _ => None,
        };
        Ok(Memory {
            id: row.id,
            text,
            kind: parse("ltm_memories.kind", &row.kind)?,
            tags,
            importance: row.importance as f32,
            source_message_id: row.source_message_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
            last_used_at: row.last_used_at,
            embedding,
        })
    }

    /// Stores a memory learnt at `at`. `NotFound` when the source message is not this user's.
    #[tracing::instrument(skip_all)]
    pub async fn add_memory(
        &self,
        user: UserId,
        memory: &NewMemory,
        at: DateTime<Utc>,
    ) -> Result<Memory> {
        let (text, tags) = self.seal_memory(user, &memory.text, &memory.tags);
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, MemoryRow>(INSERT_MEMORY)
                .bind(user.0)
                .bind(&text)
                .bind(memory.kind.as_str())
                .bind(&tags)
                .bind(f64::from(memory.importance))
                .bind(memory.source_message_id)
                .bind(stored_time(at))
                .fetch_optional(&mut *conn)
                .await
                .map_err(write_error)?
        });
        self.open_memory(user, row.ok_or(StoreError::NotFound)?)
    }

    /// Stores many users' memories learnt at `at`, in one transaction (seeding a benchmark
    /// population), without their source messages (`source_message_id` is not stored).
    /// Returns how many were stored. Spans users, so it runs as the owner, outside row-level
    /// security.
    #[tracing::instrument(skip_all)]
    pub async fn add_memories(
        &self,
        memories: &[(UserId, NewMemory)],
        at: DateTime<Utc>,
    ) -> Result<u64> {
        let sealed: Vec<_> = memories
            .iter()
            .map(|(user, memory)| {
                (
                    user,
                    memory,
                    self.seal_memory(*user, &memory.text, &memory.tags),
                )
            })
            .collect();
        let stored = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut stored = 0;
            for (user, memory, (text, tags)) in &sealed {
                stored += sqlx::query(INSERT_MEMORY_ONLY)
                    .bind(user.0)
                    .bind(text)
                    .bind(memory.kind.as_str())
                    .bind(tags)
                    .bind(f64::from(memory.importance))
                    .bind(stored_time(at))
                    .execute(&mut *tx)
                    .await
                    .map_err(write_error)?
                    .rows_affected();
            }
            tx.commit().await?;
            stored
        });
        Ok(stored)
    }

    /// Every memory of the user, oldest first.
    #[tracing::instrument(skip_all)]
    pub async fn memories(&self, user: UserId) -> Result<Vec<Memory>> {
        let rows = with_user!(self, user, conn => {
            sqlx::query_as::<_, MemoryRow>(MEMORIES)
                .bind(user.0)
                .fetch_all(&mut *conn)
                .await?
        });
        rows.into_iter()
            .map(|row| self.open_memory(user, row))
            .collect()
    }

    /// One memory; `NotFound` if it is not this user's.
    #[tracing::instrument(skip_all)]
    pub async fn memory(&self, user: UserId, id: i64) -> Result<Memory> {
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, MemoryRow>(MEMORY)
                .bind(user.0)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
        });
        self.open_memory(user, row.ok_or(StoreError::NotFound)?)
    }

    /// Changes a memory's importance (0 to 1); `NotFound` if it is not this user's.
    #[tracing::instrument(skip_all)]
    pub async fn set_memory_importance(
        &self,
        user: UserId,
        id: i64,
        importance: f32,
        at: DateTime<Utc>,
    ) -> Result<Memory> {
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, MemoryRow>(SET_IMPORTANCE)
                .bind(user.0)
                .bind(id)
                .bind(f64::from(importance))
                .bind(stored_time(at))
                .fetch_optional(&mut *conn)
                .await
                .map_err(write_error)?
        });
        self.open_memory(user, row.ok_or(StoreError::NotFound)?)
    }

    /// Marks memories as used at `at` (retrieved for a turn, or recalled); ids that are not
    /// this user's are skipped. Returns how many were marked.
    #[tracing::instrument(skip_all)]
    pub async fn touch_memories(
        &self,
        user: UserId,
        ids: &[i64],
        at: DateTime<Utc>,
    ) -> Result<u64> {
        let at = stored_time(at);
        let mut touched = 0;
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            touched += with_user!(self, user, conn, Db => {
                let mut statement = QueryBuilder::<Db>::new("UPDATE ltm_memories SET last_used_at = ");
                statement.push_bind(at).push(" WHERE user_id = ").push_bind(user.0);
                statement.push(" AND id IN (");
                let mut list = statement.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                statement.push(")");
                statement.build().execute(&mut *conn).await.map_err(write_error)?.rows_affected()
            });
        }
        Ok(touched)
    }

    /// Stores a memory's vector, unless its text changed since `computed_for` (the
    /// `updated_at` the text was read at): a stale vector is dropped. Returns whether it was
    /// stored.
    pub async fn set_memory_embedding(
        &self,
        user: UserId,
        id: i64,
        computed_for: DateTime<Utc>,
        embedding: &MemoryEmbedding,
    ) -> Result<bool> {
        let stored = self
            .set_memory_embeddings(user, &[(id, computed_for, embedding.clone())])
            .await?;
        Ok(stored.first().copied().unwrap_or(false))
    }

    /// Stores memories' vectors, `(id, computed_for, vector)`, in one transaction: each as
    /// [`Store::set_memory_embedding`] stores one, so one commit for a whole embedding batch
    /// instead of one per memory. Returns, per vector, whether it was stored.
    #[tracing::instrument(skip_all, fields(vectors = vectors.len()))]
    pub async fn set_memory_embeddings(
        &self,
        user: UserId,
        vectors: &[(i64, DateTime<Utc>, MemoryEmbedding)],
    ) -> Result<Vec<bool>> {
        if vectors.is_empty() {
            return Ok(Vec::new());
        }
        let encoded: Vec<Vec<u8>> = vectors
            .iter()
            .map(|(_, _, embedding)| encode_vector(&embedding.values))
            .collect();
        let stored = with_user!(self, user, atomic conn => {
            let mut stored = Vec::with_capacity(vectors.len());
            for ((id, computed_for, embedding), bytes) in vectors.iter().zip(&encoded) {
                let updated = sqlx::query(SET_EMBEDDING)
                    .bind(user.0)
                    .bind(*id)
                    .bind(bytes.as_slice())
                    .bind(&embedding.model)
                    .bind(*computed_for)
                    .execute(&mut *conn)
                    .await
                    .map_err(write_error)?
                    .rows_affected();
                stored.push(updated == 1);
            }
            stored
        });
        Ok(stored)
    }

    /// Deletes memories; ids that are not this user's are skipped. Returns the ids deleted.
    #[tracing::instrument(skip_all)]
    pub async fn forget_memories(&self, user: UserId, ids: &[i64]) -> Result<Vec<i64>> {
        let mut forgotten = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let deleted: Vec<i64> = with_user!(self, user, conn, Db => {
                let mut statement = QueryBuilder::<Db>::new("DELETE FROM ltm_memories WHERE user_id = ");
                statement.push_bind(user.0).push(" AND id IN (");
                let mut list = statement.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                statement.push(") RETURNING id");
                statement
                    .build_query_scalar::<i64>()
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(write_error)?
            });
            forgotten.extend(deleted);
        }
        forgotten.sort_unstable();
        Ok(forgotten)
    }

    /// Folds `absorbed` memories into `keep` in one transaction: `keep` takes the merged text,
    /// tags and importance (its vector is dropped, to be recomputed), the others are deleted.
    /// `NotFound` (and nothing changes) when `keep` is not this user's; absorbed ids that are
    /// not this user's are skipped.
    #[tracing::instrument(skip_all)]
    pub async fn merge_memories(
        &self,
        user: UserId,
        keep: i64,
        merged: &MergedMemory,
        absorbed: &[i64],
        at: DateTime<Utc>,
    ) -> Result<Memory> {
        let (text, tags) = self.seal_memory(user, &merged.text, &merged.tags);
        let absorbed: Vec<i64> = absorbed.iter().copied().filter(|id| *id != keep).collect();
        let row = with_user!(self, user, atomic conn, Db => {
            /// Deletes the absorbed memories on the merge's transaction.
            async fn delete_absorbed(
                conn: &mut <Db as Database>::Connection,
                user: UserId,
                absorbed: &[i64],
            ) -> Result<()> {
                for chunk in absorbed.chunks(ROWS_PER_STATEMENT) {
                    let mut statement =
                        QueryBuilder::<Db>::new("DELETE FROM ltm_memories WHERE user_id = ");
                    statement.push_bind(user.0).push(" AND id IN (");
                    let mut list = statement.separated(", ");
                    for id in chunk {
                        list.push_bind(*id);
                    }
                    statement.push(")");
                    statement.build().execute(&mut *conn).await.map_err(write_error)?;
                }
                Ok(())
            }
            let row = sqlx::query_as::<_, MemoryRow>(MERGE_INTO)
                .bind(user.0)
                .bind(keep)
                .bind(&text)
                .bind(&tags)
                .bind(f64::from(merged.importance))
                .bind(stored_time(at))
                .fetch_optional(&mut *conn)
                .await
                .map_err(write_error)?;
            let Some(row) = row else {
                // Dropping the transaction rolls it back; nothing was written anyway.
                return Err(StoreError::NotFound);
            };
            delete_absorbed(&mut *conn, user, &absorbed).await?;
            row
        });
        self.open_memory(user, row)
    }

    /// The user's [`MemoryFingerprint`]: one indexed aggregate.
    #[tracing::instrument(skip_all)]
    pub async fn memory_fingerprint(&self, user: UserId) -> Result<MemoryFingerprint> {
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, FingerprintRow>(FINGERPRINT)
                .bind(user.0)
                .fetch_one(&mut *conn)
                .await?
        });
        Ok(row.into())
    }
}

/// Fields of a memory to change; `None` keeps one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryChange {
    /// A new text drops the embedding (it was computed from the old one).
    pub text: Option<String>,
    pub kind: Option<MemoryKind>,
    pub tags: Option<Vec<String>>,
    pub importance: Option<f32>,
}

// What the REST API needs beyond the assistant's own operations: pages and edits.

const MEMORIES_PAGE: &str = concat!(
    "SELECT ",
    memory_columns!(),
    " FROM ltm_memories WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3"
);
const UPDATE_MEMORY: &str = concat!(
    "UPDATE ltm_memories SET text = COALESCE($3, text), kind = COALESCE($4, kind), \
     tags = COALESCE($5, tags), importance = COALESCE($6, importance), updated_at = $7, \
     embedding = CASE WHEN $3 IS NULL THEN embedding ELSE NULL END, \
     embedding_model = CASE WHEN $3 IS NULL THEN embedding_model ELSE NULL END \
     WHERE user_id = $1 AND id = $2 RETURNING ",
    memory_columns!()
);

impl Store {
    /// Up to `limit` of the user's memories with ids after `after`, in id order, opened.
    #[tracing::instrument(skip_all)]
    pub async fn memories_page(&self, user: UserId, after: i64, limit: u32) -> Result<Vec<Memory>> {
        let rows: Vec<MemoryRow> = self.page_of(MEMORIES_PAGE, user, after, limit).await?;
        rows.into_iter()
            .map(|row| self.open_memory(user, row))
            .collect()
    }

    /// Changes the fields given at `at` (text and tags sealed again); `NotFound` when it is not
    /// the user's.
    #[tracing::instrument(skip_all)]
    pub async fn update_memory(
        &self,
        user: UserId,
        id: i64,
        change: &MemoryChange,
        at: DateTime<Utc>,
    ) -> Result<Memory> {
        let text = change
            .text
            .as_deref()
            .map(|t| self.sealer.seal(&place(TEXT_COLUMN, user), t));
        let tags = change.tags.as_deref().map(|tags| {
            let json = serde_json::to_string(tags).unwrap_or_else(|_| "[]".to_owned());
            self.sealer.seal(&place(TAGS_COLUMN, user), &json)
        });
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, MemoryRow>(UPDATE_MEMORY)
                .bind(user.0)
                .bind(id)
                .bind(text.as_deref())
                .bind(change.kind.map(MemoryKind::as_str))
                .bind(tags.as_deref())
                .bind(change.importance.map(f64::from))
                .bind(stored_time(at))
                .fetch_optional(&mut *conn)
                .await
                .map_err(write_error)?
        });
        self.open_memory(user, row.ok_or(StoreError::NotFound)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::on_each_backend;
    use crate::store::tests::create;
    use crate::store::{Channel, Direction, NewMessage};
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 9, 30, 0)
            .single()
            .expect("a valid date")
    }

    fn fact(text: &str) -> NewMemory {
        NewMemory {
            text: text.to_owned(),
            kind: MemoryKind::Work,
            tags: vec!["work".to_owned()],
            importance: 0.6,
            source_message_id: None,
        }
    }

    #[tokio::test]
    async fn memories_are_added_listed_changed_and_forgotten() {
        on_each_backend(|store| async move {
            let user = create(&store, 1).await.id;
            let said = store
                .insert_message(
                    user,
                    &NewMessage {
                        channel: Channel::Sms,
                        direction: Direction::Inbound,
                        body: "I work night shifts".into(),
                        provider_message_id: None,
                        in_reply_to: None,
                    },
                )
                .await
                .expect("message");
            let mut new = fact("I work night shifts");
            new.source_message_id = Some(said.id);
            let shifts = store.add_memory(user, &new, at(1)).await.expect("add");
            assert_eq!(shifts.text, "I work night shifts");
            assert_eq!(shifts.kind, MemoryKind::Work);
            assert_eq!(shifts.tags, ["work"]);
            assert_eq!(shifts.source_message_id, Some(said.id));
            assert_eq!(shifts.created_at, at(1));
            assert_eq!(shifts.updated_at, at(1));
            assert_eq!(shifts.last_used_at, None);
            assert_eq!(shifts.embedding, None);

            let meds = store
                .add_memory(user, &fact("my meds are at 8am"), at(2))
                .await
                .expect("add");
            assert_eq!(
                store.memories(user).await.expect("list"),
                [shifts.clone(), meds.clone()]
            );
            assert_eq!(store.memory(user, meds.id).await.expect("get"), meds);

            let raised = store
                .set_memory_importance(user, meds.id, 0.9, at(3))
                .await
                .expect("importance");
            assert_eq!(raised.importance, 0.9);
            assert_eq!(raised.updated_at, at(3));

            assert_eq!(
                store
                    .touch_memories(user, &[shifts.id, meds.id], at(4))
                    .await
                    .expect("touch"),
                2
            );
            assert_eq!(
                store
                    .memory(user, shifts.id)
                    .await
                    .expect("get")
                    .last_used_at,
                Some(at(4))
            );

            let forgotten = store
                .forget_memories(user, &[meds.id, meds.id + 1000])
                .await
                .expect("forget");
            assert_eq!(forgotten, [meds.id]);
            assert!(matches!(
                store.memory(user, meds.id).await,
                Err(StoreError::NotFound)
            ));
            assert_eq!(store.memories(user).await.expect("list").len(), 1);
        })
        .await;
    }

    #[tokio::test]
    async fn a_vector_is_stored_only_for_the_text_it_was_computed_from() {
        on_each_backend(|store| async move {
            let user = create(&store, 1).await.id;
            let memory = store
                .add_memory(user, &fact("I work night shifts"), at(1))
                .await
                .expect("add");
            let vector = MemoryEmbedding {
                model: "gemini-embedding-001@4".into(),
                values: vec![0.5, 0.5, -0.5, 0.5],
            };
            assert!(
                store
                    .set_memory_embedding(user, memory.id, memory.updated_at, &vector)
                    .await
                    .expect("embed")
            );
            let read = store.memory(user, memory.id).await.expect("get");
            assert_eq!(read.embedding, Some(vector.clone()));

            // The text changes (a merge): the old vector is dropped and a late one refused.
            let merged = MergedMemory {
                text: "I work night shifts at the hospital".into(),
                tags: vec!["work".into(), "hospital".into()],
                importance: 0.7,
            };
            let merged = store
                .merge_memories(user, memory.id, &merged, &[], at(2))
                .await
                .expect("merge");
            assert_eq!(merged.embedding, None);
            assert!(
                !store
                    .set_memory_embedding(user, memory.id, memory.updated_at, &vector)
                    .await
                    .expect("stale")
            );
            assert_eq!(
                store.memory(user, memory.id).await.expect("get").embedding,
                None
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_batch_of_vectors_is_stored_in_one_go_each_only_for_its_own_text_and_user() {
        on_each_backend(|store| async move {
            let ana = create(&store, 1).await.id;
            let bob = create(&store, 2).await.id;
            let mut anas = Vec::new();
            for (n, text) in ["I work nights", "I take meds at 8", "My cat is Miso"]
                .into_iter()
                .enumerate()
            {
                let memory = store.add_memory(ana, &fact(text), at(n as u32 + 1)).await;
                anas.push(memory.expect("add"));
            }
            let bobs = store
                .add_memory(bob, &fact("I run on Sundays"), at(1))
                .await
                .expect("bob's");
            let vector = |x: f32| MemoryEmbedding {
                model: "gemini-embedding-001@4".into(),
                values: vec![x, 0.5, -0.5, 0.5],
            };
            let (a, b, c) = (vector(0.1), vector(0.2), vector(0.3));
            let stored = store
                .set_memory_embeddings(
                    ana,
                    &[
                        (anas[0].id, anas[0].updated_at, a.clone()),
                        // Computed for an older text: refused.
                        (anas[1].id, at(28), b),
                        // Bob's memory, through Ana's call: refused.
                        (bobs.id, bobs.updated_at, c.clone()),
                        (anas[2].id, anas[2].updated_at, c.clone()),
                    ],
                )
                .await
                .expect("embed");
            assert_eq!(stored, [true, false, false, true]);
            let read = |user, id| {
                let store = store.clone();
                async move { store.memory(user, id).await.expect("get").embedding }
            };
            assert_eq!(read(ana, anas[0].id).await, Some(a));
            assert_eq!(read(ana, anas[1].id).await, None);
            assert_eq!(read(ana, anas[2].id).await, Some(c));
            assert_eq!(read(bob, bobs.id).await, None, "bob's memory is untouched");
            assert_eq!(
                store.set_memory_embeddings(ana, &[]).await.expect("none"),
                Vec::<bool>::new()
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_merge_rewrites_the_survivor_and_deletes_the_rest_in_one_go() {
        on_each_backend(|store| async move {
            let user = create(&store, 1).await.id;
            let a = store
                .add_memory(user, &fact("I work nights"), at(1))
                .await
                .expect("a");
            let b = store
                .add_memory(user, &fact("I work night shifts"), at(2))
                .await
                .expect("b");
            let c = store
                .add_memory(user, &fact("night shift worker"), at(3))
                .await
                .expect("c");
            let before = store.memory_fingerprint(user).await.expect("fingerprint");
            assert_eq!(before.count, 3);
            assert_eq!(before.max_id, c.id);
            assert_eq!(before.max_updated_at, Some(at(3)));

            let merged = MergedMemory {
                text: "I work night shifts".into(),
                tags: vec!["work".into()],
                importance: 0.8,
            };
            let kept = store
                .merge_memories(user, a.id, &merged, &[a.id, b.id, c.id], at(4))
                .await
                .expect("merge");
            assert_eq!(kept.id, a.id);
            assert_eq!(kept.text, "I work night shifts");
            assert_eq!(kept.importance, 0.8);
            assert_eq!(kept.created_at, at(1), "the survivor keeps its age");
            assert_eq!(store.memories(user).await.expect("list"), [kept]);
            let after = store.memory_fingerprint(user).await.expect("fingerprint");
            assert_ne!(after, before);
            assert_eq!(after.count, 1);

            // Merging into a memory that does not exist changes nothing.
            let missing = store
                .merge_memories(user, c.id + 100, &merged, &[a.id], at(5))
                .await;
            assert!(matches!(missing, Err(StoreError::NotFound)));
            assert_eq!(store.memories(user).await.expect("list").len(), 1);
        })
        .await;
    }

    #[tokio::test]
    async fn one_user_can_never_read_or_change_another_users_memories() {
        on_each_backend(|store| async move {
            let alice = create(&store, 1).await.id;
            let bob = create(&store, 2).await.id;
            let secret = store
                .add_memory(alice, &fact("alice's secret"), at(1))
                .await
                .expect("add");
            let alices_message = store
                .insert_message(
                    alice,
                    &NewMessage {
                        channel: Channel::Web,
                        direction: Direction::Inbound,
                        body: "hello".into(),
                        provider_message_id: None,
                        in_reply_to: None,
                    },
                )
                .await
                .expect("message");

            assert_eq!(store.memories(bob).await.expect("list"), []);
            assert!(matches!(
                store.memory(bob, secret.id).await,
                Err(StoreError::NotFound)
            ));
            assert!(matches!(
                store
                    .set_memory_importance(bob, secret.id, 0.1, at(2))
                    .await,
                Err(StoreError::NotFound)
            ));
            assert_eq!(
                store
                    .touch_memories(bob, &[secret.id], at(2))
                    .await
                    .expect("touch"),
                0
            );
            let vector = MemoryEmbedding {
                model: "m".into(),
                values: vec![1.0],
            };
            assert!(
                !store
                    .set_memory_embedding(bob, secret.id, secret.updated_at, &vector)
                    .await
                    .expect("embed")
            );
            assert_eq!(
                store
                    .forget_memories(bob, &[secret.id])
                    .await
                    .expect("forget"),
                Vec::<i64>::new()
            );
            let merged = MergedMemory {
                text: "hijacked".into(),
                tags: vec![],
                importance: 1.0,
            };
            assert!(matches!(
                store
                    .merge_memories(bob, secret.id, &merged, &[], at(2))
                    .await,
                Err(StoreError::NotFound)
            ));
            let bobs = store
                .add_memory(bob, &fact("bob's"), at(2))
                .await
                .expect("bob adds");
            let absorbed = store
                .merge_memories(bob, bobs.id, &merged, &[secret.id], at(3))
                .await;
            assert_eq!(absorbed.expect("bob merges his own").text, "hijacked");
            let mut pointing = fact("learnt from alice");
            pointing.source_message_id = Some(alices_message.id);
            assert!(matches!(
                store.add_memory(bob, &pointing, at(3)).await,
                Err(StoreError::NotFound)
            ));

            assert_eq!(store.memories(alice).await.expect("alice's"), [secret]);
            assert_eq!(
                store
                    .memory_fingerprint(bob)
                    .await
                    .expect("fingerprint")
                    .count,
                1
            );
        })
        .await;
    }

    #[tokio::test]
    async fn the_database_holds_no_memory_in_clear() {
        on_each_backend(|store| async move {
            let user = create(&store, 1).await.id;
            let mut new = fact("my meds are at 8am");
            new.tags = vec!["medication".into()];
            store.add_memory(user, &new, at(1)).await.expect("add");
            let (text, tags): (String, String) = crate::store::with_pool!(store, pool => {
                sqlx::query_as("SELECT text, tags FROM ltm_memories")
                    .fetch_one(pool)
                    .await
                    .expect("raw row")
            });
            assert!(text.starts_with("v1.") && tags.starts_with("v1."));
            assert!(!text.contains("meds") && !tags.contains("medication"));
        })
        .await;
    }

    #[test]
    fn vectors_round_trip_through_little_endian_bytes() {
        let values = vec![0.5, -1.25, f32::MIN_POSITIVE, 3.0e-8];
        let bytes = encode_vector(&values);
        assert_eq!(bytes.len(), 16);
        assert_eq!(&bytes[..4], &0.5f32.to_le_bytes());
        assert_eq!(decode_vector(&bytes).unwrap(), values);
        assert!(matches!(
            decode_vector(&bytes[..5]),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn kinds_parse_back_from_their_names() {
        for kind in MemoryKind::ALL {
            assert_eq!(kind.as_str().parse::<MemoryKind>(), Ok(kind));
        }
        assert!("diary".parse::<MemoryKind>().is_err());
    }
}
