//! Model usage: the tokens each model call of a user's turn consumed, per provider, for cost
//! metrics. Rows carry no text.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::sql::{ROWS_PER_STATEMENT, now, write_error};
use super::{Result, Store, StoreError, UserId, with_pool, with_user};

/// One model call's usage, about to be stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewLlmUsage {
    /// Which provider answered (`gemini`, `fallback`).
    pub provider: String,
    pub model: String,
    pub prompt_tokens: u32,
    pub output_tokens: u32,
    pub total_tokens: u32,
    /// True when the answer came from the response cache (tokens saved, not spent).
    pub cached: bool,
}

/// A stored usage row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LlmUsage {
    pub id: i64,
    pub user_id: UserId,
    /// The reply the call served; `None` for a summary fold.
    pub message_id: Option<i64>,
    pub provider: String,
    pub model: String,
    pub prompt_tokens: u32,
    pub output_tokens: u32,
    pub total_tokens: u32,
    pub cached: bool,
    pub created_at: DateTime<Utc>,
}

/// Tokens spent through one provider (cache hits excluded), for metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderUsage {
    pub provider: String,
    pub calls: u64,
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    /// Answers served from the cache instead.
    pub cached_calls: u64,
}

#[derive(sqlx::FromRow)]
struct LlmUsageRow {
    id: i64,
    user_id: Uuid,
    message_id: Option<i64>,
    provider: String,
    model: String,
    prompt_tokens: i64,
    output_tokens: i64,
    total_tokens: i64,
    cached: bool,
    created_at: DateTime<Utc>,
}

fn count(column: &str, value: i64) -> Result<u32> {
    u32::try_from(value).map_err(|e| StoreError::Corrupt(format!("llm_usage.{column}: {e}")))
}

impl TryFrom<LlmUsageRow> for LlmUsage {
    type Error = StoreError;
    fn try_from(row: LlmUsageRow) -> Result<Self> {
        Ok(LlmUsage {
            id: row.id,
            user_id: UserId(row.user_id),
            message_id: row.message_id,
            provider: row.provider,
            model: row.model,
            prompt_tokens: count("prompt_tokens", row.prompt_tokens)?,
            output_tokens: count("output_tokens", row.output_tokens)?,
            total_tokens: count("total_tokens", row.total_tokens)?,
            cached: row.cached,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ProviderUsageRow {
    provider: String,
    calls: i64,
    prompt_tokens: i64,
    output_tokens: i64,
    total_tokens: i64,
    cached_calls: i64,
}

/// Followed by `VALUES (…), (…)` built per batch.
macro_rules! insert_llm_usage_rows {
    () => {
        "INSERT INTO llm_usage (user_id, message_id, provider, model, prompt_tokens, \
         output_tokens, total_tokens, cached, created_at) "
    };
}
pub(super) const INSERT_LLM_USAGE_ROWS: &str = insert_llm_usage_rows!();
/// One usage row: how SQLite's batch thread stores a reply's, a cached statement per row.
pub(super) const INSERT_LLM_USAGE_ROW: &str = concat!(
    insert_llm_usage_rows!(),
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
);
const MESSAGE_IS_USERS: &str = "SELECT id FROM messages WHERE user_id = $1 AND id = $2";
const LLM_USAGE: &str = "SELECT id, user_id, message_id, provider, model, prompt_tokens, \
     output_tokens, total_tokens, cached, created_at FROM llm_usage WHERE user_id = $1 ORDER BY id";
/// Sums are cast so both backends return BIGINT (PostgreSQL's SUM of BIGINT is NUMERIC).
const USAGE_BY_PROVIDER: &str = "SELECT provider, \
     CAST(SUM(CASE WHEN cached THEN 0 ELSE 1 END) AS BIGINT) AS calls, \
     CAST(SUM(CASE WHEN cached THEN 0 ELSE prompt_tokens END) AS BIGINT) AS prompt_tokens, \
     CAST(SUM(CASE WHEN cached THEN 0 ELSE output_tokens END) AS BIGINT) AS output_tokens, \
     CAST(SUM(CASE WHEN cached THEN 0 ELSE total_tokens END) AS BIGINT) AS total_tokens, \
     CAST(SUM(CASE WHEN cached THEN 1 ELSE 0 END) AS BIGINT) AS cached_calls \
     FROM llm_usage WHERE created_at >= $1 GROUP BY provider ORDER BY provider";

impl Store {
    /// Stores usage rows in one statement: a summary fold's (`message_id` `None`), or any
    /// stored afterwards. A turn's reply carries its own to the group-commit writer instead
    /// ([`ReplyWrite::model_usage`](super::ReplyWrite)), durable with it in the batch's
    /// transaction. `message_id`, when given, must be one of this user's messages
    /// (`NotFound` otherwise, nothing stored).
    #[tracing::instrument(skip_all)]
    pub async fn record_llm_usage(
        &self,
        user: UserId,
        message_id: Option<i64>,
        rows: &[NewLlmUsage],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let created_at = now();
        with_user!(self, user, atomic conn, Db => {
            if let Some(id) = message_id {
                let owned: Option<(i64,)> = sqlx::query_as(MESSAGE_IS_USERS)
                    .bind(user.0)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
                if owned.is_none() {
                    return Err(StoreError::NotFound);
                }
            }
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let mut statement = QueryBuilder::<Db>::new(INSERT_LLM_USAGE_ROWS);
                statement.push_values(chunk, |mut row, u| {
                    row.push_bind(user.0)
                        .push_bind(message_id)
                        .push_bind(u.provider.clone())
                        .push_bind(u.model.clone())
                        .push_bind(i64::from(u.prompt_tokens))
                        .push_bind(i64::from(u.output_tokens))
                        .push_bind(i64::from(u.total_tokens))
                        .push_bind(u.cached)
                        .push_bind(created_at);
                });
                statement.build().execute(&mut *conn).await.map_err(write_error)?;
            }
        });
        Ok(())
    }

    /// A user's usage rows, oldest first.
    #[tracing::instrument(skip_all)]
    pub async fn llm_usage(&self, user: UserId) -> Result<Vec<LlmUsage>> {
        let rows = with_user!(self, user, conn => {
            sqlx::query_as::<_, LlmUsageRow>(LLM_USAGE)
                .bind(user.0)
                .fetch_all(&mut *conn)
                .await?
        });
        rows.into_iter().map(LlmUsage::try_from).collect()
    }

    /// Usage per provider since `since`, across users (for metrics; carries no user data).
    #[tracing::instrument(skip_all)]
    pub async fn llm_usage_by_provider(&self, since: DateTime<Utc>) -> Result<Vec<ProviderUsage>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, ProviderUsageRow>(USAGE_BY_PROVIDER)
                .bind(since)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| ProviderUsage {
                provider: r.provider,
                calls: u64::try_from(r.calls).unwrap_or(0),
                prompt_tokens: u64::try_from(r.prompt_tokens).unwrap_or(0),
                output_tokens: u64::try_from(r.output_tokens).unwrap_or(0),
                total_tokens: u64::try_from(r.total_tokens).unwrap_or(0),
                cached_calls: u64::try_from(r.cached_calls).unwrap_or(0),
            })
            .collect())
    }
}
