//! Key rotation: noticing a new active key, and re-sealing every sealed value under it.
//!
//! Rotating the master key, online:
//! 1. put the new key first in `NUDGE_MASTER_KEY`, the old one after it, and restart the
//!    nodes one by one (each seals new values with the new key and still opens old ones);
//! 2. run `nudge admin rotate-key`: it walks every sealed column user by user and re-seals
//!    what the old key sealed ([`Store::reseal`]); interrupted, it resumes where it stopped;
//! 3. drop the old key from `NUDGE_MASTER_KEY` and restart the nodes again.
//!
//! Sealed columns are found, not listed: every text column of a table with a `user_id` that
//! holds a `v1.` envelope (so other domains' sealed columns are covered), plus
//! [`SEALED_COLUMNS`], whose plaintext values (written before sealing began) are sealed too.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::audit::{NewAuditEvent, Outcome};
use super::seal::{self, SealError};
use super::{Pool, Result, Store, UserId, with_pool};

/// Columns this store seals; plaintext found in them is sealed by a re-seal pass.
pub const SEALED_COLUMNS: &[(&str, &str)] = &[
    ("messages", "body"),
    ("accounts", "totp_secret"),
    ("accounts", "totp_pending"),
    ("notes", "body"),
    ("reminders", "body"),
    ("digest_firings", "body"),
    ("expenses", "note"),
    ("ltm_memories", "text"),
    ("ltm_memories", "tags"),
    ("conversation_summaries", "summary"),
];

/// What a re-seal pass did to one column.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResealStep {
    pub table: String,
    pub column: String,
    /// Users finished so far (in this run).
    pub users: u64,
    /// Values moved to the active key (or sealed for the first time).
    pub resealed: u64,
    /// Values that could not be opened with any key of the ring (left as they are).
    pub unreadable: u64,
    /// True once the column is done.
    pub done: bool,
}

const KEY_STATE: &str = "SELECT active_kid FROM key_state WHERE kind = $1";
const UPSERT_KEY_STATE: &str = "INSERT INTO key_state (kind, active_kid, changed_at) VALUES ($1, $2, $3) \
     ON CONFLICT (kind) DO UPDATE SET active_kid = excluded.active_kid, changed_at = excluded.changed_at";
const CHECKPOINT: &str = "SELECT last_user_id FROM reseal_progress \
     WHERE table_name = $1 AND column_name = $2 AND key_id = $3";
const SAVE_CHECKPOINT: &str = "INSERT INTO reseal_progress \
     (table_name, column_name, key_id, last_user_id, updated_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (table_name, column_name, key_id) DO UPDATE SET \
     last_user_id = excluded.last_user_id, updated_at = excluded.updated_at";
const CLEAR_CHECKPOINTS: &str =
    "DELETE FROM reseal_progress WHERE table_name = $1 AND column_name = $2";
const SQLITE_TEXT_COLUMNS: &str = "SELECT m.name, p.name FROM sqlite_master m \
     JOIN pragma_table_info(m.name) p ON p.type = 'TEXT' \
     WHERE m.type = 'table' AND EXISTS \
     (SELECT 1 FROM pragma_table_info(m.name) u WHERE u.name = 'user_id') ORDER BY 1, 2";
const POSTGRES_TEXT_COLUMNS: &str = "SELECT c.table_name::text, c.column_name::text \
     FROM information_schema.columns c \
     JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
     WHERE c.table_schema = current_schema() AND c.data_type = 'text' AND t.table_type = 'BASE TABLE' \
     AND EXISTS (SELECT 1 FROM information_schema.columns u WHERE u.table_schema = c.table_schema \
     AND u.table_name = c.table_name AND u.column_name = 'user_id') ORDER BY 1, 2";

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Store {
    /// Records the active key id of `kind` (`seal`, `jwt`); when it changed since last time,
    /// logs a `key_rotated` security event (the first sighting is logged too). Returns whether
    /// it changed.
    #[tracing::instrument(skip_all)]
    pub async fn note_active_key(&self, kind: &str, kid: &str, now: DateTime<Utc>) -> Result<bool> {
        let previous: Option<(String,)> = with_pool!(self, pool => {
            sqlx::query_as(KEY_STATE).bind(kind).fetch_optional(pool).await?
        });
        let previous = previous.map(|(k,)| k);
        if previous.as_deref() == Some(kid) {
            return Ok(false);
        }
        with_pool!(self, pool => {
            sqlx::query(UPSERT_KEY_STATE).bind(kind).bind(kid).bind(now).execute(pool).await?;
        });
        self.audit_quietly(
            NewAuditEvent {
                event: "key_rotated",
                outcome: Outcome::Success,
                actor: None,
                subject: None,
                ip: None,
                detail: json!({ "ring": kind, "from": previous, "to": kid }),
            },
            now,
        )
        .await;
        Ok(true)
    }

    /// The columns a re-seal pass walks: every text column of a `user_id` table holding a
    /// sealed value, plus [`SEALED_COLUMNS`].
    #[tracing::instrument(skip_all)]
    pub async fn sealed_columns(&self) -> Result<Vec<(String, String)>> {
        let candidates: Vec<(String, String)> = match &self.pool {
            Pool::Sqlite(pool) => sqlx::query_as(SQLITE_TEXT_COLUMNS).fetch_all(pool).await?,
            Pool::Postgres(pool) => {
                sqlx::query_as(POSTGRES_TEXT_COLUMNS)
                    .fetch_all(pool)
                    .await?
            }
        };
        let mut sealed = Vec::new();
        for (table, column) in candidates {
            let listed = SEALED_COLUMNS.contains(&(table.as_str(), column.as_str()));
            let probe = AssertSqlSafe(format!(
                "SELECT 1 FROM {} WHERE {} LIKE 'v1.%' LIMIT 1",
                quoted(&table),
                quoted(&column)
            ));
            let holds_sealed = with_pool!(self, pool => {
                sqlx::query(probe).fetch_optional(pool).await?.is_some()
            });
            if listed || holds_sealed {
                sealed.push((table, column));
            }
        }
        Ok(sealed)
    }

    /// Re-seals one column under the active key, `batch` users at a time, resuming after the
    /// last user a previous run for the same key finished. `progress` hears after each batch.
    /// Online: each value is swapped only if it did not change meanwhile.
    #[tracing::instrument(skip_all, fields(table, column))]
    pub async fn reseal_column(
        &self,
        table: &str,
        column: &str,
        batch: u32,
        mut progress: impl FnMut(&ResealStep),
    ) -> Result<ResealStep> {
        let key = self.sealer().active_key_id().to_owned();
        let place_column = format!("{table}.{column}");
        let seal_plaintext = SEALED_COLUMNS.contains(&(table, column));
        let (t, c) = (quoted(table), quoted(column));
        let users_after = format!(
            "SELECT DISTINCT user_id FROM {t} WHERE user_id > $1 ORDER BY user_id LIMIT $2"
        );
        let values = format!("SELECT {c} FROM {t} WHERE user_id = $1 AND {c} IS NOT NULL");
        let swap = format!("UPDATE {t} SET {c} = $3 WHERE user_id = $1 AND {c} = $2");

        let mut step = ResealStep {
            table: table.to_owned(),
            column: column.to_owned(),
            ..ResealStep::default()
        };
        let mut after: Uuid = with_pool!(self, pool => {
            sqlx::query_as::<_, (Uuid,)>(CHECKPOINT)
                .bind(table)
                .bind(column)
                .bind(&key)
                .fetch_optional(pool)
                .await?
                .map(|(u,)| u)
                .unwrap_or(Uuid::nil())
        });
        loop {
            let users: Vec<(Uuid,)> = with_pool!(self, pool => {
                sqlx::query_as(AssertSqlSafe(users_after.clone()))
                    .bind(after)
                    .bind(i64::from(batch.max(1)))
                    .fetch_all(pool)
                    .await?
            });
            let Some((last,)) = users.last().copied() else {
                break;
            };
            for (user,) in users {
                let place = seal::place(&place_column, UserId(user));
                let found: Vec<(String,)> = with_pool!(self, pool => {
                    sqlx::query_as(AssertSqlSafe(values.clone())).bind(user).fetch_all(pool).await?
                });
                for (value,) in found {
                    let plain = match self.sealer().open(&place, &value) {
                        Ok(_) if !self.sealer().needs_reseal(&value) => continue,
                        Ok(plain) => plain,
                        Err(SealError::Malformed)
                            if !value.starts_with("v1.") && seal_plaintext =>
                        {
                            value.clone()
                        }
                        Err(SealError::Malformed) if !value.starts_with("v1.") => continue,
                        Err(_) => {
                            step.unreadable += 1;
                            continue;
                        }
                    };
                    let sealed = self.sealer().seal(&place, &plain);
                    let swapped = with_pool!(self, pool => {
                        sqlx::query(AssertSqlSafe(swap.clone()))
                            .bind(user)
                            .bind(&value)
                            .bind(&sealed)
                            .execute(pool)
                            .await?
                            .rows_affected()
                    });
                    step.resealed += swapped;
                }
                step.users += 1;
            }
            after = last;
            let now = super::sql::now();
            with_pool!(self, pool => {
                sqlx::query(SAVE_CHECKPOINT)
                    .bind(table)
                    .bind(column)
                    .bind(&key)
                    .bind(after)
                    .bind(now)
                    .execute(pool)
                    .await?;
            });
            progress(&step);
        }
        with_pool!(self, pool => {
            sqlx::query(CLEAR_CHECKPOINTS).bind(table).bind(column).execute(pool).await?;
        });
        step.done = true;
        progress(&step);
        Ok(step)
    }
}
