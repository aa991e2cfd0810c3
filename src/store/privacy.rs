//! Privacy rights and retention: everything held about a person as one JSON document, erasure
//! of every row of theirs, and the periodic purge of what is kept only for a while.
//!
//! Export and erasure do not list tables: they read the schema (`sqlite_master` /
//! `information_schema`) for every table with a `user_id` column, so tables other domains add
//! later are covered without touching this file. Every such table must reference `users(id)`
//! with `ON DELETE CASCADE`; [`Store::tables_without_cascade`] names those that do not, and
//! erasure deletes their rows explicitly anyway.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Column, Row, TypeInfo, ValueRef};
use uuid::Uuid;

use super::audit::{NewAuditEvent, Outcome};
use super::seal;
use super::{Pool, Result, Store, UserId, with_pool, with_user};

/// Version of the export document's shape.
pub const EXPORT_FORMAT: &str = "nudge-export/1";

/// What an erasure removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErasureReport {
    /// Tables whose rows outlived the cascade (a table without `ON DELETE CASCADE`): their
    /// rows were deleted explicitly. Empty when the schema is as it should be.
    pub leftovers: Vec<(String, u64)>,
}

const SQLITE_USER_TABLES: &str = "SELECT m.name FROM sqlite_master m \
     JOIN pragma_table_info(m.name) p ON p.name = 'user_id' \
     WHERE m.type = 'table' ORDER BY m.name";
const POSTGRES_USER_TABLES: &str = "SELECT c.table_name::text FROM information_schema.columns c \
     JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
     WHERE c.table_schema = current_schema() AND c.column_name = 'user_id' \
     AND t.table_type = 'BASE TABLE' ORDER BY 1";
const SQLITE_CASCADING: &str = "SELECT m.name FROM sqlite_master m \
     JOIN pragma_foreign_key_list(m.name) f ON f.\"from\" = 'user_id' \
     WHERE m.type = 'table' AND f.\"table\" = 'users' AND f.\"to\" = 'id' \
     AND f.on_delete = 'CASCADE'";
const POSTGRES_CASCADING: &str = "SELECT c.conrelid::regclass::text FROM pg_constraint c \
     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) \
     WHERE c.contype = 'f' AND c.confrelid = 'users'::regclass AND a.attname = 'user_id' \
     AND c.confdeltype = 'c'";
const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";
/// A re-seal pass that stopped at this user restarts its column from the beginning.
const FORGET_RESEAL_CURSOR: &str = "DELETE FROM reseal_progress WHERE last_user_id = $1";
const DELETE_OWN_AUDIT: &str = "DELETE FROM audit_events WHERE actor_id = $1";
const BLANK_SUBJECT_AUDIT: &str = "UPDATE audit_events SET subject_id = NULL, ip = NULL \
     WHERE subject_id = $1";
const INSERT_ERASURE_AUDIT: &str = "INSERT INTO audit_events (at, event, outcome, detail) \
     VALUES ($1, 'account_erased', 'success', $2)";
/// The messages the retention purge deletes: written before `$1`, but for any inbound message
/// a newer reply still points at.
macro_rules! purged_messages {
    () => {
        " FROM messages WHERE created_at < $1 AND id NOT IN \
         (SELECT in_reply_to FROM messages WHERE in_reply_to IS NOT NULL AND created_at >= $1)"
    };
}
/// The usage those messages carry on their own rows outlives them as usage rows, pointing at
/// no message as the foreign key leaves the others.
const KEEP_PURGED_USAGE: &str = concat!(
    "INSERT INTO sms_usage_logs \
     (user_id, message_id, direction, segments, encoding, estimated_cost_micros, created_at) \
     SELECT user_id, NULL, direction, sms_segments, sms_encoding, sms_cost_micros, created_at",
    purged_messages!(),
    " AND sms_segments IS NOT NULL"
);
const PURGE_MESSAGES: &str = concat!("DELETE", purged_messages!());
const PURGE_REFRESH: &str = "DELETE FROM refresh_tokens WHERE expires_at < $1";
const PURGE_SESSIONS: &str = "DELETE FROM sessions WHERE expires_at < $1";
const PURGE_DEVICES: &str = "DELETE FROM trusted_devices WHERE expires_at < $1";
const PURGE_VERIFICATIONS: &str = "DELETE FROM phone_verifications WHERE expires_at < $1";
const PURGE_THROTTLES: &str = "DELETE FROM login_throttle WHERE updated_at < $1 \
     AND (locked_until IS NULL OR locked_until < $1)";

/// A column whose values are credentials (hashes, secrets, tokens): named in the export but
/// never given, not even to their owner.
fn is_credential(column: &str) -> bool {
    column.ends_with("_hash")
        || column.contains("secret")
        || column.contains("token")
        || column == "totp_pending"
}

/// `name` as a quoted SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Store {
    /// Every table with a `user_id` column, by name.
    #[tracing::instrument(skip_all)]
    pub async fn user_tables(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = match &self.pool {
            Pool::Sqlite(pool) => sqlx::query_as(SQLITE_USER_TABLES).fetch_all(pool).await?,
            Pool::Postgres(pool) => sqlx::query_as(POSTGRES_USER_TABLES).fetch_all(pool).await?,
        };
        Ok(rows.into_iter().map(|(t,)| t).collect())
    }

    /// Tables with a `user_id` column that does not reference `users(id) ON DELETE CASCADE`.
    #[tracing::instrument(skip_all)]
    pub async fn tables_without_cascade(&self) -> Result<Vec<String>> {
        let cascading: Vec<(String,)> = match &self.pool {
            Pool::Sqlite(pool) => sqlx::query_as(SQLITE_CASCADING).fetch_all(pool).await?,
            Pool::Postgres(pool) => sqlx::query_as(POSTGRES_CASCADING).fetch_all(pool).await?,
        };
        let cascading: Vec<String> = cascading.into_iter().map(|(t,)| t).collect();
        Ok(self
            .user_tables()
            .await?
            .into_iter()
            .filter(|t| !cascading.contains(t))
            .collect())
    }

    /// Everything held about the user, as one JSON document: their `users` row, every row of
    /// every table with their `user_id` (sealed values opened, credentials withheld), and
    /// the audit events about them. `NotFound` when the user does not exist.
    #[tracing::instrument(skip_all)]
    pub async fn export_user(&self, user: UserId, now: DateTime<Utc>) -> Result<Value> {
        let profile = self.table_rows("users", "id", user).await?;
        let Some(profile) = profile.into_iter().next() else {
            return Err(super::StoreError::NotFound);
        };
        let mut tables = Map::new();
        for table in self.user_tables().await? {
            let rows = self.table_rows(&table, "user_id", user).await?;
            tables.insert(table, Value::Array(rows));
        }
        let audit = self.audit_events_for(user, 10_000).await?;
        Ok(json!({
            "format": EXPORT_FORMAT,
            "exported_at": now,
            "user_id": user,
            "user": profile,
            "tables": tables,
            "security_events": audit,
        }))
    }

    /// Rows of `table` whose `column` is the user, as JSON objects.
    pub(super) async fn table_rows(
        &self,
        table: &str,
        column: &str,
        user: UserId,
    ) -> Result<Vec<Value>> {
        let statement = format!(
            "SELECT * FROM {} WHERE {} = $1",
            quoted(table),
            quoted(column)
        );
        let statement = AssertSqlSafe(statement);
        let rows = with_user!(self, user, conn, Db => {
            let rows = sqlx::query::<Db>(statement).bind(user.0).fetch_all(&mut *conn).await?;
            rows.iter().map(RowColumns::json_columns).collect::<Vec<_>>()
        });
        let objects = rows
            .into_iter()
            .map(|columns| self.row_object(table, user, columns))
            .collect();
        Ok(objects)
    }

    /// One row as a JSON object: credentials withheld, sealed values opened for their owner.
    fn row_object(&self, table: &str, user: UserId, columns: Vec<(String, Value)>) -> Value {
        let mut object = Map::new();
        for (name, value) in columns {
            let value = if is_credential(&name) {
                match value {
                    Value::Null => Value::Null,
                    _ => Value::String("[withheld: credential]".into()),
                }
            } else {
                match value {
                    Value::String(text) if text.starts_with("v1.") => {
                        let place = seal::place(&format!("{table}.{name}"), user);
                        match self.sealer().open(&place, &text) {
                            Ok(plain) => Value::String(plain),
                            Err(_) => Value::String(text),
                        }
                    }
                    other => other,
                }
            };
            object.insert(name, value);
        }
        Value::Object(object)
    }

    /// Erases the user: every row of theirs in every table (the cascade from `users`, then an
    /// explicit delete in any table the cascade missed), their own audit entries, and their
    /// id as the subject of others' entries; then logs one `account_erased` event that names
    /// nobody. One transaction.
    #[tracing::instrument(skip_all)]
    pub async fn erase_user(&self, user: UserId, now: DateTime<Utc>) -> Result<ErasureReport> {
        let tables = self.user_tables().await?;
        let mut report = ErasureReport::default();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query(DELETE_USER)
                .bind(user.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted == 0 {
                return Err(super::StoreError::NotFound);
            }
            for table in &tables {
                let statement = AssertSqlSafe(format!(
                    "DELETE FROM {} WHERE user_id = $1",
                    quoted(table)
                ));
                let left = sqlx::query(statement)
                    .bind(user.0)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if left > 0 {
                    report.leftovers.push((table.clone(), left));
                }
            }
            sqlx::query(FORGET_RESEAL_CURSOR).bind(user.0).execute(&mut *tx).await?;
            sqlx::query(DELETE_OWN_AUDIT).bind(user.0).execute(&mut *tx).await?;
            sqlx::query(BLANK_SUBJECT_AUDIT).bind(user.0).execute(&mut *tx).await?;
            let detail = json!({ "tables": tables.len() }).to_string();
            sqlx::query(INSERT_ERASURE_AUDIT)
                .bind(now)
                .bind(detail)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        for (table, rows) in &report.leftovers {
            tracing::error!(%table, rows, "rows outlived the erasure cascade: the table lacks ON DELETE CASCADE");
        }
        Ok(report)
    }

    /// Deletes messages written before `cutoff` (message-history retention), keeping any
    /// inbound message a newer reply still points at, and the SMS usage of those it deletes.
    /// Returns how many.
    #[tracing::instrument(skip_all)]
    pub async fn purge_messages_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let purged = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(KEEP_PURGED_USAGE).bind(cutoff).execute(&mut *tx).await?;
            let purged = sqlx::query(PURGE_MESSAGES).bind(cutoff).execute(&mut *tx).await?;
            tx.commit().await?;
            purged.rows_affected()
        });
        Ok(purged)
    }

    /// Deletes what has expired by `now`: refresh tokens, sessions, trusted devices, phone
    /// codes, and sign-in counters untouched for a day. Returns how many rows.
    #[tracing::instrument(skip_all)]
    pub async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64> {
        let day_ago = now - chrono::Duration::days(1);
        let mut purged = 0;
        with_pool!(self, pool => {
            for (statement, at) in [
                (PURGE_REFRESH, now),
                (PURGE_SESSIONS, now),
                (PURGE_DEVICES, now),
                (PURGE_VERIFICATIONS, now),
                (PURGE_THROTTLES, day_ago),
            ] {
                purged += sqlx::query(statement).bind(at).execute(pool).await?.rows_affected();
            }
        });
        Ok(purged)
    }

    /// Logs an audit event inside no transaction (used by callers of the privacy methods).
    pub async fn audit_privacy(
        &self,
        event: &'static str,
        user: UserId,
        ip: Option<String>,
        now: DateTime<Utc>,
    ) {
        self.audit_quietly(NewAuditEvent::own(event, Outcome::Success, user, ip), now)
            .await;
    }
}

/// A SQLite row's columns as JSON, by storage class. 16-byte blobs are UUIDs (how sqlx
/// stores them); other blobs are base64.
/// A row of either backend as named JSON values.
trait RowColumns {
    fn json_columns(&self) -> Vec<(String, Value)>;
}

impl RowColumns for SqliteRow {
    fn json_columns(&self) -> Vec<(String, Value)> {
        sqlite_columns(self)
    }
}

impl RowColumns for PgRow {
    fn json_columns(&self) -> Vec<(String, Value)> {
        postgres_columns(self)
    }
}

fn sqlite_columns(row: &SqliteRow) -> Vec<(String, Value)> {
    row.columns()
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let name = column.name().to_owned();
            let kind = row
                .try_get_raw(i)
                .map(|raw| {
                    if raw.is_null() {
                        "NULL".to_owned()
                    } else {
                        raw.type_info().name().to_owned()
                    }
                })
                .unwrap_or_default();
            let value = match kind.as_str() {
                "INTEGER" => row
                    .try_get::<i64, _>(i)
                    .map(Value::from)
                    .unwrap_or(Value::Null),
                "REAL" => row
                    .try_get::<f64, _>(i)
                    .map(Value::from)
                    .unwrap_or(Value::Null),
                "TEXT" => row
                    .try_get::<String, _>(i)
                    .map(Value::from)
                    .unwrap_or(Value::Null),
                "BLOB" => match row.try_get::<Vec<u8>, _>(i) {
                    Ok(bytes) => match Uuid::from_slice(&bytes) {
                        Ok(id) if bytes.len() == 16 => Value::String(id.to_string()),
                        _ => Value::String(STANDARD.encode(bytes)),
                    },
                    Err(_) => Value::Null,
                },
                _ => Value::Null,
            };
            (name, value)
        })
        .collect()
}

/// A PostgreSQL row's columns as JSON, by declared type.
fn postgres_columns(row: &PgRow) -> Vec<(String, Value)> {
    row.columns()
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let name = column.name().to_owned();
            let value = match column.type_info().name() {
                "UUID" => row
                    .try_get::<Option<Uuid>, _>(i)
                    .ok()
                    .flatten()
                    .map(|u| Value::String(u.to_string())),
                "TEXT" | "VARCHAR" | "NAME" | "BPCHAR" => row
                    .try_get::<Option<String>, _>(i)
                    .ok()
                    .flatten()
                    .map(Value::from),
                "INT2" => row
                    .try_get::<Option<i16>, _>(i)
                    .ok()
                    .flatten()
                    .map(Value::from),
                "INT4" => row
                    .try_get::<Option<i32>, _>(i)
                    .ok()
                    .flatten()
                    .map(Value::from),
                "INT8" => row
                    .try_get::<Option<i64>, _>(i)
                    .ok()
                    .flatten()
                    .map(Value::from),
                "FLOAT4" => row
                    .try_get::<Option<f32>, _>(i)
                    .ok()
                    .flatten()
                    .map(Value::from),
                "FLOAT8" => row
                    .try_get::<Option<f64>, _>(i)
                    .ok()
                    .flatten()
                    .map(Value::from),
                "BOOL" => row
                    .try_get::<Option<bool>, _>(i)
                    .ok()
                    .flatten()
                    .map(Value::from),
                "TIMESTAMPTZ" => row
                    .try_get::<Option<DateTime<Utc>>, _>(i)
                    .ok()
                    .flatten()
                    .map(|t| Value::String(t.to_rfc3339())),
                "BYTEA" => row
                    .try_get::<Option<Vec<u8>>, _>(i)
                    .ok()
                    .flatten()
                    .map(|b| Value::String(STANDARD.encode(b))),
                "JSON" | "JSONB" => row.try_get::<Option<Value>, _>(i).ok().flatten(),
                "TEXT[]" => row
                    .try_get::<Option<Vec<String>>, _>(i)
                    .ok()
                    .flatten()
                    .map(Value::from),
                "FLOAT4[]" => row
                    .try_get::<Option<Vec<f32>>, _>(i)
                    .ok()
                    .flatten()
                    .map(Value::from),
                other => Some(Value::String(format!("[unexported type {other}]"))),
            };
            (name, value.unwrap_or(Value::Null))
        })
        .collect()
}
