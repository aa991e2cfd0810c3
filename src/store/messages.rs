//! Messages: the conversation of each user on every channel, and the SMS usage it cost.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Database, QueryBuilder};
use uuid::Uuid;

use super::sql::{ROWS_PER_STATEMENT, now, parse, segments_column, write_error};
use super::{Result, Store, StoreError, UserId, with_pool};

/// Where a message travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Web,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Web => "web",
        }
    }
}

impl FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sms" => Ok(Channel::Sms),
            "web" => Ok(Channel::Web),
            other => Err(format!("unknown channel {other:?}")),
        }
    }
}

/// Which way a message travelled, seen from Nudge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

impl FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "inbound" => Ok(Direction::Inbound),
            "outbound" => Ok(Direction::Outbound),
            other => Err(format!("unknown direction {other:?}")),
        }
    }
}

/// One stored message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// Increasing per deployment, so "everything after id N" is a cheap query.
    pub id: i64,
    pub user_id: UserId,
    pub channel: Channel,
    pub direction: Direction,
    pub body: String,
    /// Twilio's `MessageSid` for inbound SMS: the dedupe key of retried webhooks.
    pub provider_message_id: Option<String>,
    /// For a reply, the id of the inbound message it answers.
    pub in_reply_to: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// A message about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub channel: Channel,
    pub direction: Direction,
    pub body: String,
    pub provider_message_id: Option<String>,
    pub in_reply_to: Option<i64>,
}

/// How an SMS body is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SmsEncoding {
    #[serde(rename = "GSM-7")]
    Gsm7,
    #[serde(rename = "UCS-2")]
    Ucs2,
}

impl SmsEncoding {
    pub fn as_str(self) -> &'static str {
        match self {
            SmsEncoding::Gsm7 => "GSM-7",
            SmsEncoding::Ucs2 => "UCS-2",
        }
    }
}

impl FromStr for SmsEncoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "GSM-7" => Ok(SmsEncoding::Gsm7),
            "UCS-2" => Ok(SmsEncoding::Ucs2),
            other => Err(format!("unknown SMS encoding {other:?}")),
        }
    }
}

/// One SMS sent or received, as billed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSmsUsage {
    pub direction: Direction,
    pub segments: u32,
    pub encoding: SmsEncoding,
    /// Estimated cost in millionths of a US dollar.
    pub estimated_cost_micros: i64,
}

/// A stored usage row.
#[derive(Debug, Clone, PartialEq)]
pub struct SmsUsage {
    pub id: i64,
    pub user_id: UserId,
    pub message_id: Option<i64>,
    pub direction: Direction,
    pub segments: u32,
    pub encoding: SmsEncoding,
    pub estimated_cost_micros: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: i64,
    user_id: Uuid,
    channel: String,
    direction: String,
    body: String,
    provider_message_id: Option<String>,
    in_reply_to: Option<i64>,
    created_at: DateTime<Utc>,
}

impl TryFrom<MessageRow> for Message {
    type Error = StoreError;
    fn try_from(row: MessageRow) -> Result<Self> {
        Ok(Message {
            id: row.id,
            user_id: UserId(row.user_id),
            channel: parse("messages.channel", &row.channel)?,
            direction: parse("messages.direction", &row.direction)?,
            body: row.body,
            provider_message_id: row.provider_message_id,
            in_reply_to: row.in_reply_to,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SmsUsageRow {
    id: i64,
    user_id: Uuid,
    message_id: Option<i64>,
    direction: String,
    segments: i32,
    encoding: String,
    estimated_cost_micros: i64,
    created_at: DateTime<Utc>,
}

impl TryFrom<SmsUsageRow> for SmsUsage {
    type Error = StoreError;
    fn try_from(row: SmsUsageRow) -> Result<Self> {
        Ok(SmsUsage {
            id: row.id,
            user_id: UserId(row.user_id),
            message_id: row.message_id,
            direction: parse("sms_usage_logs.direction", &row.direction)?,
            segments: u32::try_from(row.segments)
                .map_err(|e| StoreError::Corrupt(format!("sms_usage_logs.segments: {e}")))?,
            encoding: parse("sms_usage_logs.encoding", &row.encoding)?,
            estimated_cost_micros: row.estimated_cost_micros,
            created_at: row.created_at,
        })
    }
}

macro_rules! message_columns {
    () => {
        "id, user_id, channel, direction, body, provider_message_id, in_reply_to, created_at"
    };
}

const INSERT_MESSAGE: &str = concat!(
    "INSERT INTO messages \
     (user_id, channel, direction, body, provider_message_id, in_reply_to, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
    message_columns!()
);
const MESSAGE_BY_PROVIDER_ID: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE user_id = $1 AND provider_message_id = $2"
);
const REPLY_TO: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE user_id = $1 AND in_reply_to = $2 AND direction = $3 \
     ORDER BY id LIMIT 1"
);
/// Newest first; the caller turns the page around.
const RECENT_MESSAGES: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
);
const MESSAGES_AFTER: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3"
);

/// Followed by `VALUES (…), (…)` built per batch.
const INSERT_SMS_USAGE_ROWS: &str = "INSERT INTO sms_usage_logs \
     (user_id, message_id, direction, segments, encoding, estimated_cost_micros, created_at) ";
/// Inserts nothing when `$2` names a message that is not this user's.
const RECORD_SMS_USAGE: &str = "INSERT INTO sms_usage_logs \
     (user_id, message_id, direction, segments, encoding, estimated_cost_micros, created_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7 \
     WHERE $2 IS NULL OR EXISTS (SELECT 1 FROM messages WHERE user_id = $1 AND id = $2)";
const SMS_USAGE: &str = "SELECT id, user_id, message_id, direction, segments, \
     encoding, estimated_cost_micros, created_at \
     FROM sms_usage_logs WHERE user_id = $1 ORDER BY id";

/// Where message bodies are sealed: `messages.body:<user id>`.
const BODY_COLUMN: &str = "messages.body";

impl Store {
    /// A stored row as a message, its body opened. A body stored before sealing began (no
    /// `v1.` envelope) is returned as it is; `nudge admin rotate-key` seals those.
    fn open_message(&self, row: MessageRow) -> Result<Message> {
        let mut message = Message::try_from(row)?;
        message.body = self.open_column(BODY_COLUMN, message.user_id, &message.body)?;
        Ok(message)
    }

    /// Stores one message. A repeated `provider_message_id` for the same user is
    /// `Conflict("provider_message_id")`.
    #[tracing::instrument(skip_all)]
    pub async fn insert_message(&self, user: UserId, message: &NewMessage) -> Result<Message> {
        self.store_message(user, message, &[]).await
    }

    /// Stores a reply and its SMS usage rows in one transaction (usage rows point at the reply).
    #[tracing::instrument(skip_all)]
    pub async fn insert_reply(
        &self,
        user: UserId,
        reply: &NewMessage,
        usage: &[NewSmsUsage],
    ) -> Result<Message> {
        self.store_message(user, reply, usage).await
    }

    #[tracing::instrument(skip_all)]
    pub async fn message_by_provider_id(
        &self,
        user: UserId,
        provider_message_id: &str,
    ) -> Result<Option<Message>> {
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, MessageRow>(MESSAGE_BY_PROVIDER_ID)
                .bind(user.0)
                .bind(provider_message_id)
                .fetch_optional(pool)
                .await?
        });
        row.map(|r| self.open_message(r)).transpose()
    }

    /// The first reply stored for an inbound message, if any.
    #[tracing::instrument(skip_all)]
    pub async fn reply_to(&self, user: UserId, message_id: i64) -> Result<Option<Message>> {
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, MessageRow>(REPLY_TO)
                .bind(user.0)
                .bind(message_id)
                .bind(Direction::Outbound.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(|r| self.open_message(r)).transpose()
    }

    /// The user's last `limit` messages, oldest first.
    #[tracing::instrument(skip_all)]
    pub async fn recent_messages(&self, user: UserId, limit: u32) -> Result<Vec<Message>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, MessageRow>(RECENT_MESSAGES)
                .bind(user.0)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .rev()
            .map(|r| self.open_message(r))
            .collect()
    }

    /// The user's messages stored after message `after`, oldest first, at most `limit`: what
    /// a reconnecting client missed.
    #[tracing::instrument(skip_all)]
    pub async fn messages_after(
        &self,
        user: UserId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Message>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, MessageRow>(MESSAGES_AFTER)
                .bind(user.0)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(|r| self.open_message(r)).collect()
    }

    #[tracing::instrument(skip_all)]
    pub async fn record_sms_usage(
        &self,
        user: UserId,
        message_id: Option<i64>,
        usage: &NewSmsUsage,
    ) -> Result<()> {
        let segments = segments_column(usage.segments)?;
        let inserted = with_pool!(self, pool => {
            sqlx::query(RECORD_SMS_USAGE)
                .bind(user.0)
                .bind(message_id)
                .bind(usage.direction.as_str())
                .bind(segments)
                .bind(usage.encoding.as_str())
                .bind(usage.estimated_cost_micros)
                .bind(now())
                .execute(pool)
                .await
                .map_err(write_error)?
                .rows_affected()
        });
        if inserted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    pub async fn sms_usage(&self, user: UserId) -> Result<Vec<SmsUsage>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, SmsUsageRow>(SMS_USAGE)
                .bind(user.0)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(SmsUsage::try_from).collect()
    }

    /// Stores `message`, and its usage rows with it in one transaction when there are any (a
    /// lone `INSERT` is atomic on its own: no BEGIN/COMMIT round trips). The usage rows go in
    /// one multi-row statement per [`ROWS_PER_STATEMENT`].
    async fn store_message(
        &self,
        user: UserId,
        message: &NewMessage,
        usage: &[NewSmsUsage],
    ) -> Result<Message> {
        let sealed = self
            .sealer()
            .seal(&super::seal::place(BODY_COLUMN, user), &message.body);
        let stored = with_pool!(self, pool, Db => {
            /// Inserts `message` (its body already sealed) on a pooled connection or in a
            /// transaction.
            async fn insert(
                conn: &mut <Db as Database>::Connection,
                user: UserId,
                message: &NewMessage,
                sealed_body: &str,
            ) -> Result<MessageRow> {
                sqlx::query_as::<_, MessageRow>(INSERT_MESSAGE)
                    .bind(user.0)
                    .bind(message.channel.as_str())
                    .bind(message.direction.as_str())
                    .bind(sealed_body)
                    .bind(message.provider_message_id.as_deref())
                    .bind(message.in_reply_to)
                    .bind(now())
                    .fetch_one(conn)
                    .await
                    .map_err(write_error)
            }

            if usage.is_empty() {
                let mut conn = pool.acquire().await?;
                insert(&mut conn, user, message, &sealed).await?
            } else {
                let mut tx = pool.begin().await?;
                let stored = insert(&mut tx, user, message, &sealed).await?;
                let rows = usage
                    .iter()
                    .map(|u| Ok((u, segments_column(u.segments)?)))
                    .collect::<Result<Vec<_>>>()?;
                let created_at = now();
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    let mut statement = QueryBuilder::<Db>::new(INSERT_SMS_USAGE_ROWS);
                    statement.push_values(chunk, |mut row, (u, segments)| {
                        row.push_bind(user.0)
                            .push_bind(stored.id)
                            .push_bind(u.direction.as_str())
                            .push_bind(*segments)
                            .push_bind(u.encoding.as_str())
                            .push_bind(u.estimated_cost_micros)
                            .push_bind(created_at);
                    });
                    statement.build().execute(&mut *tx).await.map_err(write_error)?;
                }
                tx.commit().await?;
                stored
            }
        });
        // What was written is known: no need to open it again.
        let mut stored = Message::try_from(stored)?;
        stored.body = message.body.clone();
        Ok(stored)
    }
}
