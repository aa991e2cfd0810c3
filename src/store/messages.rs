//! Messages: the conversation of each user on every channel, and the SMS usage it cost.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Database, QueryBuilder, Sqlite};
use uuid::Uuid;

use super::sql::{ROWS_PER_STATEMENT, now, parse, segments_column, write_error};
use super::sqlite_reads;
use super::{
    MemoryFingerprint, NewLlmUsage, Pool, Result, Sealer, Store, StoreError, UserId, with_user,
};

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

/// Splits a message's SMS usage into what the message's own row carries (`sms_segments`,
/// `sms_encoding`, `sms_cost_micros`) and the rows stored apart in `sms_usage_logs`: a
/// message billed once, in its own direction, carries its usage; any other usage is rows.
pub(super) fn split_usage<'a>(
    message: &NewMessage,
    usage: &'a [NewSmsUsage],
) -> (Option<&'a NewSmsUsage>, &'a [NewSmsUsage]) {
    match usage {
        [one] if one.direction == message.direction => (Some(one), &[]),
        rows => (None, rows),
    }
}

/// The usage `message`'s own row carries, with its segments checked for the column, and the
/// usage rows stored apart ([`split_usage`]).
type CheckedUsage<'a> = (Option<(&'a NewSmsUsage, i32)>, &'a [NewSmsUsage]);

/// [`split_usage`], the segments of what the message's own row carries checked for the column.
fn on_row_usage<'a>(message: &NewMessage, usage: &'a [NewSmsUsage]) -> Result<CheckedUsage<'a>> {
    let (on_row, rows) = split_usage(message, usage);
    let on_row = on_row.map(|u| segments_column(u.segments).map(|segments| (u, segments)));
    Ok((on_row.transpose()?, rows))
}

/// An SMS as billed: a usage row of `sms_usage_logs`, or the usage a message carries on its
/// own row.
#[derive(Debug, Clone, PartialEq)]
pub struct SmsUsage {
    pub user_id: UserId,
    pub message_id: Option<i64>,
    pub direction: Direction,
    pub segments: u32,
    pub encoding: SmsEncoding,
    pub estimated_cost_micros: i64,
    pub created_at: DateTime<Utc>,
    /// The Twilio message SID of an outbound SMS sent through the REST API: the key status
    /// callbacks update this row by. `None` for inbound rows and replies answered in TwiML.
    pub message_sid: Option<String>,
    /// The last delivery status Twilio reported for it (`queued`, `delivered`, …).
    pub status: Option<String>,
    /// What Twilio charged, in millionths of `price_unit`, once a status callback said.
    pub price_micros: Option<i64>,
    /// The currency of `price_micros` (ISO 4217, as Twilio writes it).
    pub price_unit: Option<String>,
}

/// One message to store with its SMS usage, as a unit of a batch
/// ([`Store::write_messages`], and the [group-commit writer](super::writer) above it).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageWrite {
    /// Whose message it is: the batch holds many users' messages.
    pub user: UserId,
    pub message: NewMessage,
    /// The message's SMS usage, stored with it: on its own row when billed once, in its own
    /// direction, else as usage rows pointing at it ([`split_usage`]); none for a web message.
    pub usage: Vec<NewSmsUsage>,
    /// The model calls that wrote the message (a reply stored on its own), stored pointing
    /// at it; none for an inbound message.
    pub model_usage: Vec<NewLlmUsage>,
    /// A rolling-summary fold of this user's, stored in the same transaction: a fold rides
    /// with the user's next write instead of committing on its own.
    pub summary: Option<SummaryWrite>,
    /// The reply to `message`, stored in the same transaction with its `in_reply_to` set to
    /// the message's new id: a turn answered at once commits once. Not stored when `message`
    /// is a duplicate.
    pub reply: Option<ReplyWrite>,
}

/// A reply carried by a [`MessageWrite`], with its SMS usage (stored as the message's is) and
/// the usage of the model calls that wrote it: a turn's reply and what it cost are durable
/// together.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyWrite {
    /// The reply; its `in_reply_to` is replaced by the id the carrying message is stored under.
    pub message: NewMessage,
    pub usage: Vec<NewSmsUsage>,
    pub model_usage: Vec<NewLlmUsage>,
}

/// A fold of older messages into the user's rolling summary, carried by a [`MessageWrite`].
/// Stored as [`Store::save_conversation_summary`] stores it: a newer fold already stored
/// stands.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryWrite {
    pub text: String,
    /// The newest message folded in (one of the user's own).
    pub through_message_id: i64,
    /// How many messages were folded in over time.
    pub folded_messages: u64,
    /// The model calls that wrote this fold (and any fold it replaced that was not stored),
    /// stored with it, pointing at no message.
    pub model_usage: Vec<NewLlmUsage>,
}

/// What became of one [`MessageWrite`].
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// Stored now, with its usage.
    Stored(Message),
    /// Stored now with the reply it carried, both with their usage.
    Answered { message: Message, reply: Message },
    /// This user already had a message with the same provider id (a retried webhook): that
    /// one is given back, and nothing was written.
    Duplicate(Message),
}

/// A [`MessageWrite`] committed by the [group-commit writer](super::writer), with its user's
/// long-term-memory fingerprint as the same transaction saw it: the user's actor learns from
/// it whether its memory cache is stale without a query of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub written: Written,
    pub memories: MemoryFingerprint,
}

impl Written {
    /// The message stored now or before.
    pub fn into_message(self) -> Message {
        match self {
            Written::Stored(message)
            | Written::Answered { message, .. }
            | Written::Duplicate(message) => message,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct MessageRow {
    id: i64,
    user_id: Uuid,
    channel: String,
    direction: String,
    body: String,
    provider_message_id: Option<String>,
    in_reply_to: Option<i64>,
    created_at: DateTime<Utc>,
}

impl MessageRow {
    /// The row as SQLite's reader threads read it (`sqlite_reads`).
    pub(super) fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: sqlite_reads::column(row, 0, "id")?,
            user_id: sqlite_reads::uuid(row, 1, "user_id")?,
            channel: sqlite_reads::column(row, 2, "channel")?,
            direction: sqlite_reads::column(row, 3, "direction")?,
            body: sqlite_reads::column(row, 4, "body")?,
            provider_message_id: sqlite_reads::column(row, 5, "provider_message_id")?,
            in_reply_to: sqlite_reads::column(row, 6, "in_reply_to")?,
            created_at: sqlite_reads::time(row, 7, "created_at")?,
        })
    }

    /// The row as a message, its body opened with `sealer` (see [`Store::open_message`]).
    pub(super) fn open(self, sealer: &Sealer) -> Result<Message> {
        let mut message = Message::try_from(self)?;
        message.body = sealer.open_column(BODY_COLUMN, message.user_id, &message.body)?;
        Ok(message)
    }
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
    user_id: Uuid,
    message_id: Option<i64>,
    direction: String,
    segments: i32,
    encoding: String,
    estimated_cost_micros: i64,
    created_at: DateTime<Utc>,
    message_sid: Option<String>,
    status: Option<String>,
    price_micros: Option<i64>,
    price_unit: Option<String>,
}

impl TryFrom<SmsUsageRow> for SmsUsage {
    type Error = StoreError;
    fn try_from(row: SmsUsageRow) -> Result<Self> {
        Ok(SmsUsage {
            user_id: UserId(row.user_id),
            message_id: row.message_id,
            direction: parse("sms_usage_logs.direction", &row.direction)?,
            segments: u32::try_from(row.segments)
                .map_err(|e| StoreError::Corrupt(format!("sms_usage_logs.segments: {e}")))?,
            encoding: parse("sms_usage_logs.encoding", &row.encoding)?,
            estimated_cost_micros: row.estimated_cost_micros,
            created_at: row.created_at,
            message_sid: row.message_sid,
            status: row.status,
            price_micros: row.price_micros,
            price_unit: row.price_unit,
        })
    }
}

macro_rules! message_columns {
    () => {
        "id, user_id, channel, direction, body, provider_message_id, in_reply_to, created_at"
    };
}

/// One message, with the SMS usage it carries on its own row (`$8`–`$10`, null for none: see
/// [`split_usage`]).
const INSERT_MESSAGE: &str = concat!(
    "INSERT INTO messages \
     (user_id, channel, direction, body, provider_message_id, in_reply_to, created_at, \
      sms_segments, sms_encoding, sms_cost_micros) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ",
    message_columns!()
);
pub(super) const MESSAGE_BY_PROVIDER_ID: &str = concat!(
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
pub(super) const RECENT_MESSAGES: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
);
const MESSAGES_AFTER: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3"
);

/// Followed by `VALUES (…), (…)`, built per batch.
pub(super) const INSERT_SMS_USAGE_ROWS: &str = "INSERT INTO sms_usage_logs \
     (user_id, message_id, direction, segments, encoding, estimated_cost_micros, created_at) ";
/// Inserts nothing when `$2` names a message that is not this user's.
const RECORD_SMS_USAGE: &str = "INSERT INTO sms_usage_logs \
     (user_id, message_id, direction, segments, encoding, estimated_cost_micros, created_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7 \
     WHERE $2 IS NULL OR EXISTS (SELECT 1 FROM messages WHERE user_id = $1 AND id = $2)";
/// A user's SMS usage in the order it was billed: the usage carried on messages' own rows and
/// the usage rows, which have a time stamp each; rows stamped alike by their message's id, then
/// the order they were stored in.
const SMS_USAGE: &str = "SELECT user_id, message_id, direction, segments, encoding, \
     estimated_cost_micros, created_at, message_sid, status, price_micros, price_unit FROM (\
     SELECT user_id, id AS message_id, direction, sms_segments AS segments, \
     sms_encoding AS encoding, sms_cost_micros AS estimated_cost_micros, created_at, \
     CAST(NULL AS TEXT) AS message_sid, CAST(NULL AS TEXT) AS status, \
     CAST(NULL AS BIGINT) AS price_micros, CAST(NULL AS TEXT) AS price_unit, 0 AS row_id \
     FROM messages WHERE user_id = $1 AND sms_segments IS NOT NULL \
     UNION ALL SELECT user_id, message_id, direction, segments, encoding, \
     estimated_cost_micros, created_at, message_sid, status, price_micros, price_unit, id \
     FROM sms_usage_logs WHERE user_id = $1) AS usage \
     ORDER BY created_at, COALESCE(message_id, 0), row_id";

/// Where message bodies are sealed: `messages.body:<user id>`.
pub(super) const BODY_COLUMN: &str = "messages.body";

impl Store {
    /// A stored row as a message, its body opened. A body stored before sealing began (no
    /// `v1.` envelope) is returned as it is; `nudge admin rotate-key` seals those.
    pub(super) fn open_message(&self, row: MessageRow) -> Result<Message> {
        row.open(&self.sealer)
    }

    /// Stores one message. A repeated `provider_message_id` for the same user is
    /// `Conflict("provider_message_id")`.
    #[tracing::instrument(skip_all)]
    pub async fn insert_message(&self, user: UserId, message: &NewMessage) -> Result<Message> {
        self.store_message(user, message, &[]).await
    }

    /// Stores a reply with its SMS usage: on its own row when billed once, in its direction,
    /// else as usage rows pointing at it in the same transaction ([`split_usage`]).
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
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, MessageRow>(MESSAGE_BY_PROVIDER_ID)
                .bind(user.0)
                .bind(provider_message_id)
                .fetch_optional(&mut *conn)
                .await?
        });
        row.map(|r| self.open_message(r)).transpose()
    }

    /// The first reply stored for an inbound message, if any.
    #[tracing::instrument(skip_all)]
    pub async fn reply_to(&self, user: UserId, message_id: i64) -> Result<Option<Message>> {
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, MessageRow>(REPLY_TO)
                .bind(user.0)
                .bind(message_id)
                .bind(Direction::Outbound.as_str())
                .fetch_optional(&mut *conn)
                .await?
        });
        row.map(|r| self.open_message(r)).transpose()
    }

    /// The user's last `limit` messages, oldest first.
    #[tracing::instrument(skip_all)]
    pub async fn recent_messages(&self, user: UserId, limit: u32) -> Result<Vec<Message>> {
        let rows = with_user!(self, user, conn => {
            sqlx::query_as::<_, MessageRow>(RECENT_MESSAGES)
                .bind(user.0)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
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
        let rows = with_user!(self, user, conn => {
            sqlx::query_as::<_, MessageRow>(MESSAGES_AFTER)
                .bind(user.0)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
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
        let inserted = with_user!(self, user, conn => {
            sqlx::query(RECORD_SMS_USAGE)
                .bind(user.0)
                .bind(message_id)
                .bind(usage.direction.as_str())
                .bind(segments)
                .bind(usage.encoding.as_str())
                .bind(usage.estimated_cost_micros)
                .bind(now())
                .execute(&mut *conn)
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
        let rows = with_user!(self, user, conn => {
            sqlx::query_as::<_, SmsUsageRow>(SMS_USAGE)
                .bind(user.0)
                .fetch_all(&mut *conn)
                .await?
        });
        rows.into_iter().map(SmsUsage::try_from).collect()
    }

    /// Stores `message` with its SMS usage ([`split_usage`]): what its own row carries in
    /// the same `INSERT`, atomic on its own (no BEGIN/COMMIT round trips); any usage rows
    /// with it in one transaction, one multi-row statement per [`ROWS_PER_STATEMENT`].
    async fn store_message(
        &self,
        user: UserId,
        message: &NewMessage,
        usage: &[NewSmsUsage],
    ) -> Result<Message> {
        let sealed = self
            .sealer()
            .seal(&super::seal::place(BODY_COLUMN, user), &message.body);
        let (on_row, usage) = on_row_usage(message, usage)?;
        let stored = with_user!(self, user, conn, Db => {
            /// Inserts `message` (its body already sealed, `on_row` the usage its row
            /// carries) on a pooled connection or in a transaction.
            async fn insert(
                conn: &mut <Db as Database>::Connection,
                user: UserId,
                message: &NewMessage,
                sealed_body: &str,
                on_row: Option<(&NewSmsUsage, i32)>,
            ) -> Result<MessageRow> {
                sqlx::query_as::<_, MessageRow>(INSERT_MESSAGE)
                    .bind(user.0)
                    .bind(message.channel.as_str())
                    .bind(message.direction.as_str())
                    .bind(sealed_body)
                    .bind(message.provider_message_id.as_deref())
                    .bind(message.in_reply_to)
                    .bind(now())
                    .bind(on_row.map(|(_, segments)| segments))
                    .bind(on_row.map(|(u, _)| u.encoding.as_str()))
                    .bind(on_row.map(|(u, _)| u.estimated_cost_micros))
                    .fetch_one(conn)
                    .await
                    .map_err(write_error)
            }

            if usage.is_empty() {
                insert(&mut *conn, user, message, &sealed, on_row).await?
            } else {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                let stored = insert(&mut tx, user, message, &sealed, on_row).await?;
                let rows = usage_columns(usage)?;
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

/// What a multi-row message `INSERT` gives back of each row it stored; rows refused by the
/// provider-id dedupe give nothing back.
#[derive(sqlx::FromRow)]
struct InsertedRow {
    id: i64,
    user_id: Uuid,
    provider_message_id: Option<String>,
}

/// A usage row of a batch, its message's id known.
struct UsageRow<'a> {
    user: UserId,
    message_id: i64,
    usage: &'a NewSmsUsage,
    segments: i32,
}

/// Users' memory fingerprints, as [`Store::memory_fingerprint`] computes one: the users'
/// condition goes between the two halves.
macro_rules! fingerprints_of {
    () => {
        "SELECT user_id, COUNT(*) AS count, COALESCE(MAX(id), 0) AS max_id, \
         MAX(updated_at) AS max_updated_at FROM ltm_memories WHERE user_id "
    };
}
const FINGERPRINTS_OF: &str = fingerprints_of!();
const FINGERPRINTS_GROUPED: &str = " GROUP BY user_id";

/// A user's memory fingerprint, as [`pool_batch::fingerprints`] reads it.
#[derive(sqlx::FromRow)]
struct FingerprintRow {
    user_id: Uuid,
    count: i64,
    max_id: i64,
    max_updated_at: Option<DateTime<Utc>>,
}

fn fingerprints_by_user(rows: Vec<FingerprintRow>) -> HashMap<UserId, MemoryFingerprint> {
    rows.into_iter()
        .map(|row| {
            let print = MemoryFingerprint {
                count: row.count,
                max_id: row.max_id,
                max_updated_at: row.max_updated_at,
            };
            (UserId(row.user_id), print)
        })
        .collect()
}

macro_rules! insert_message_rows {
    () => {
        "INSERT INTO messages \
         (user_id, channel, direction, body, provider_message_id, in_reply_to, created_at, \
          sms_segments, sms_encoding, sms_cost_micros) "
    };
}
/// After the rows: a retried webhook's copy is skipped, not an error that fails the batch.
/// (The dedupe index is partial: the conflict target names its predicate.)
macro_rules! on_provider_id_conflict {
    () => {
        " ON CONFLICT (user_id, provider_message_id) WHERE provider_message_id IS NOT NULL \
         DO NOTHING"
    };
}
const INSERT_MESSAGE_ROWS: &str = insert_message_rows!();
/// The conflict clause of a multi-row insert, which names the rows it inserted.
const ON_PROVIDER_ID_CONFLICT: &str = concat!(
    on_provider_id_conflict!(),
    " RETURNING id, user_id, provider_message_id"
);
/// One message row: how SQLite's batch thread stores them, a cached statement per row. It
/// returns nothing: the thread reads the new row's id from its connection, since a
/// `RETURNING` clause has SQLite gather the rows in a table of its own first
/// (docs/performance.md, round 18). The message carries its own SMS usage (`$8`–`$10`, null
/// for none: see [`split_usage`]).
pub(super) const INSERT_MESSAGE_ROW: &str = concat!(
    "INSERT INTO messages (user_id, channel, direction, body, provider_message_id, \
     in_reply_to, created_at, sms_segments, sms_encoding, sms_cost_micros) ",
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    on_provider_id_conflict!()
);

/// A batch on a SQLite pool (an in-memory database, which has no batch thread): one
/// multi-row statement per table per [`ROWS_PER_STATEMENT`] rows, on the pool's connection.
mod pool_batch {
    use std::collections::HashMap;

    use chrono::{DateTime, Utc};
    use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

    use super::{
        FINGERPRINTS_GROUPED, FINGERPRINTS_OF, FingerprintRow, INSERT_MESSAGE_ROWS,
        INSERT_SMS_USAGE_ROWS, InsertedRow, MessageWrite, ON_PROVIDER_ID_CONFLICT, UsageRow,
        fingerprints_by_user, match_inserted, on_row_usage,
    };
    use crate::store::llm_usage::INSERT_LLM_USAGE_ROWS;
    use crate::store::sql::{ROWS_PER_STATEMENT, write_error};
    use crate::store::{MemoryFingerprint, NewLlmUsage, Result, UserId};

    /// Inserts `rows` (at most [`ROWS_PER_STATEMENT`]) in their order, with `bodies` their
    /// sealed bodies and the usage each carries on its row ([`on_row_usage`]), skipping those
    /// whose `(user_id, provider_message_id)` is taken; gives back the rows stored, in any
    /// order.
    async fn insert_messages(
        conn: &mut SqliteConnection,
        rows: &[MessageWrite],
        bodies: &[String],
        created_at: DateTime<Utc>,
    ) -> Result<Vec<InsertedRow>> {
        let on_rows = rows
            .iter()
            .map(|w| Ok(on_row_usage(&w.message, &w.usage)?.0))
            .collect::<Result<Vec<_>>>()?;
        let mut statement = QueryBuilder::<Sqlite>::new(INSERT_MESSAGE_ROWS);
        let values = rows.iter().zip(bodies).zip(on_rows);
        statement.push_values(values, |mut row, ((w, body), on_row)| {
            row.push_bind(w.user.0)
                .push_bind(w.message.channel.as_str())
                .push_bind(w.message.direction.as_str())
                .push_bind(body.as_str())
                .push_bind(w.message.provider_message_id.as_deref())
                .push_bind(w.message.in_reply_to)
                .push_bind(created_at)
                .push_bind(on_row.map(|(_, segments)| segments))
                .push_bind(on_row.map(|(u, _)| u.encoding.as_str()))
                .push_bind(on_row.map(|(u, _)| u.estimated_cost_micros));
        });
        statement.push(ON_PROVIDER_ID_CONFLICT);
        statement
            .build_query_as::<InsertedRow>()
            .fetch_all(conn)
            .await
            .map_err(write_error)
    }

    /// Inserts `rows` with their sealed `bodies`, [`ROWS_PER_STATEMENT`] rows per statement;
    /// gives each write the id it was stored under, `None` for a duplicate skipped.
    pub(super) async fn insert_all(
        conn: &mut SqliteConnection,
        rows: &[MessageWrite],
        bodies: &[String],
        created_at: DateTime<Utc>,
    ) -> Result<Vec<Option<i64>>> {
        let mut ids = Vec::with_capacity(rows.len());
        for (chunk, sealed) in rows
            .chunks(ROWS_PER_STATEMENT)
            .zip(bodies.chunks(ROWS_PER_STATEMENT))
        {
            let stored = insert_messages(conn, chunk, sealed, created_at).await?;
            ids.extend(match_inserted(chunk, stored)?);
        }
        Ok(ids)
    }

    /// Inserts usage rows (at most [`ROWS_PER_STATEMENT`]).
    pub(super) async fn insert_usage(
        conn: &mut SqliteConnection,
        rows: &[UsageRow<'_>],
        created_at: DateTime<Utc>,
    ) -> Result<()> {
        let mut statement = QueryBuilder::<Sqlite>::new(INSERT_SMS_USAGE_ROWS);
        statement.push_values(rows, |mut row, u| {
            row.push_bind(u.user.0)
                .push_bind(u.message_id)
                .push_bind(u.usage.direction.as_str())
                .push_bind(u.segments)
                .push_bind(u.usage.encoding.as_str())
                .push_bind(u.usage.estimated_cost_micros)
                .push_bind(created_at);
        });
        statement.build().execute(conn).await.map_err(write_error)?;
        Ok(())
    }

    /// Inserts model usage rows, `(user, message if any, usage)` (at most
    /// [`ROWS_PER_STATEMENT`]).
    pub(super) async fn insert_model_usage(
        conn: &mut SqliteConnection,
        rows: &[(UserId, Option<i64>, &NewLlmUsage)],
        created_at: DateTime<Utc>,
    ) -> Result<()> {
        let mut statement = QueryBuilder::<Sqlite>::new(INSERT_LLM_USAGE_ROWS);
        statement.push_values(rows, |mut row, (user, message_id, u)| {
            row.push_bind(user.0)
                .push_bind(*message_id)
                .push_bind(u.provider.as_str())
                .push_bind(u.model.as_str())
                .push_bind(i64::from(u.prompt_tokens))
                .push_bind(i64::from(u.output_tokens))
                .push_bind(i64::from(u.total_tokens))
                .push_bind(u.cached)
                .push_bind(created_at);
        });
        statement.build().execute(conn).await.map_err(write_error)?;
        Ok(())
    }

    /// The memory fingerprints of `users` (at most a batch's worth) that have memories.
    pub(super) async fn fingerprints(
        conn: &mut SqliteConnection,
        users: &[UserId],
    ) -> Result<HashMap<UserId, MemoryFingerprint>> {
        let mut statement = QueryBuilder::<Sqlite>::new(FINGERPRINTS_OF);
        statement.push("IN (");
        let mut list = statement.separated(", ");
        for user in users {
            list.push_bind(user.0);
        }
        statement.push(")");
        statement.push(FINGERPRINTS_GROUPED);
        let rows = statement
            .build_query_as::<FingerprintRow>()
            .fetch_all(conn)
            .await?;
        Ok(fingerprints_by_user(rows))
    }
}

/// A whole batch on PostgreSQL in one statement, whatever its size: every message, reply,
/// usage row, model usage row and summary fold, and the memory fingerprints of its users,
/// each table's rows unnested from one array per column (one cached plan).
///
/// - `input` numbers the writes (`n`, from 1) and draws their messages' ids, and their
///   replies' right after them, from the table's sequence: a reply can then name its message
///   without a round trip for the id.
/// - A retried webhook's copy is skipped by the provider-id dedupe (`ON CONFLICT DO NOTHING`);
///   `stored` is what was not, and only those writes' replies and usage rows (SMS and model)
///   are inserted.
/// - The sub-statements do not see each other's rows, but the foreign keys are checked at the
///   end of the statement, when they all are in.
/// - One row comes back per write, in order: its ids (none when skipped) and its user's
///   fingerprint (none when the user has no memories or none were asked for).
///
/// Binds: the writes' `$1` users, `$2` channels, `$3` directions, `$4` sealed bodies, `$5`
/// provider ids, `$6` the message each answers; their replies' `$7` channels (null: no reply),
/// `$8` directions, `$9` sealed bodies, `$10` provider ids; the usage rows' `$11` write
/// numbers, `$12` whether each is the reply's, `$13` directions, `$14` segments, `$15`
/// encodings, `$16` costs; the summary folds' `$17` users, `$18` sealed texts, `$19` last
/// message folded, `$20` messages folded; `$21` the users whose fingerprints to read; `$22`
/// the time stamp of every row; the model usage rows' `$23` write numbers, `$24` whether each
/// is the reply's (null: the write's summary fold's, stored with the fold even when the write
/// is a duplicate, pointing at no message), `$25` providers, `$26` models, `$27` prompt,
/// `$28` output and `$29` total tokens, `$30` whether each was a cache hit; the SMS usage each
/// message carries on its own row ([`split_usage`], null for none): `$31` segments, `$32`
/// encodings, `$33` costs, and its reply's, `$34`, `$35` and `$36`.
const PG_BATCH: &str = "\
WITH input AS MATERIALIZED (
    SELECT w.*, nextval('messages_id_seq') AS id,
           CASE WHEN w.reply_channel IS NOT NULL THEN nextval('messages_id_seq') END AS reply_id
    FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[],
                $7::text[], $8::text[], $9::text[], $10::text[],
                $31::int4[], $32::text[], $33::int8[], $34::int4[], $35::text[], $36::int8[])
         WITH ORDINALITY AS w(user_id, channel, direction, body, provider_message_id,
                              in_reply_to, reply_channel, reply_direction, reply_body,
                              reply_provider_message_id, sms_segments, sms_encoding, sms_cost,
                              reply_sms_segments, reply_sms_encoding, reply_sms_cost, n)
), inbound AS (
    INSERT INTO messages (id, user_id, channel, direction, body, provider_message_id,
                          in_reply_to, created_at, sms_segments, sms_encoding, sms_cost_micros)
    OVERRIDING SYSTEM VALUE
    SELECT id, user_id, channel, direction, body, provider_message_id, in_reply_to, $22,
           sms_segments, sms_encoding, sms_cost
    FROM input
    ON CONFLICT (user_id, provider_message_id) WHERE provider_message_id IS NOT NULL DO NOTHING
    RETURNING id
), stored AS MATERIALIZED (
    SELECT input.* FROM input JOIN inbound USING (id)
), replies AS (
    INSERT INTO messages (id, user_id, channel, direction, body, provider_message_id,
                          in_reply_to, created_at, sms_segments, sms_encoding, sms_cost_micros)
    OVERRIDING SYSTEM VALUE
    SELECT reply_id, user_id, reply_channel, reply_direction, reply_body,
           reply_provider_message_id, id, $22, reply_sms_segments, reply_sms_encoding,
           reply_sms_cost
    FROM stored WHERE reply_id IS NOT NULL
), usage AS (
    INSERT INTO sms_usage_logs (user_id, message_id, direction, segments, encoding,
                                estimated_cost_micros, created_at)
    SELECT s.user_id, CASE WHEN u.of_reply THEN s.reply_id ELSE s.id END, u.direction,
           u.segments, u.encoding, u.cost, $22
    FROM UNNEST($11::int8[], $12::bool[], $13::text[], $14::int4[], $15::text[], $16::int8[])
         AS u(n, of_reply, direction, segments, encoding, cost)
    JOIN stored s ON s.n = u.n
), model_usage AS (
    INSERT INTO llm_usage (user_id, message_id, provider, model, prompt_tokens, output_tokens,
                           total_tokens, cached, created_at)
    SELECT i.user_id, CASE u.of_reply WHEN true THEN s.reply_id WHEN false THEN s.id END,
           u.provider, u.model, u.prompt, u.output, u.total, u.cached, $22
    FROM UNNEST($23::int8[], $24::bool[], $25::text[], $26::text[], $27::int8[], $28::int8[],
                $29::int8[], $30::bool[])
         AS u(n, of_reply, provider, model, prompt, output, total, cached)
    JOIN input i ON i.n = u.n LEFT JOIN stored s ON s.n = u.n
    WHERE u.of_reply IS NULL OR s.id IS NOT NULL
), summaries AS (
    INSERT INTO conversation_summaries (user_id, summary, through_message_id, folded_messages,
                                        updated_at)
    SELECT f.user_id, f.summary, f.through, f.folded, $22
    FROM UNNEST($17::uuid[], $18::text[], $19::int8[], $20::int8[])
         AS f(user_id, summary, through, folded)
    ON CONFLICT (user_id) DO UPDATE SET summary = excluded.summary,
        through_message_id = excluded.through_message_id,
        folded_messages = excluded.folded_messages, updated_at = excluded.updated_at
        WHERE conversation_summaries.through_message_id <= excluded.through_message_id
), prints AS (
    SELECT user_id, COUNT(*) AS count, COALESCE(MAX(id), 0) AS max_id,
           MAX(updated_at) AS max_updated_at
    FROM ltm_memories WHERE user_id = ANY($21::uuid[]) GROUP BY user_id
)
SELECT i.n, s.id, s.reply_id, p.count, p.max_id, p.max_updated_at
FROM input i LEFT JOIN stored s ON s.n = i.n LEFT JOIN prints p ON p.user_id = i.user_id
ORDER BY i.n";

/// What [`PG_BATCH`] gives back of one write.
#[derive(sqlx::FromRow)]
struct PgBatchRow {
    n: i64,
    id: Option<i64>,
    reply_id: Option<i64>,
    count: Option<i64>,
    max_id: Option<i64>,
    max_updated_at: Option<DateTime<Utc>>,
}

/// The usage rows of a [`PG_BATCH`], one array per column.
#[derive(Default)]
struct PgUsage<'a> {
    write: Vec<i64>,
    of_reply: Vec<bool>,
    direction: Vec<&'a str>,
    segments: Vec<i32>,
    encoding: Vec<&'a str>,
    cost: Vec<i64>,
}

impl<'a> PgUsage<'a> {
    /// Adds the usage rows of write `n`'s message, or of its reply.
    fn push(&mut self, n: i64, of_reply: bool, usage: &'a [NewSmsUsage]) -> Result<()> {
        for u in usage {
            self.write.push(n);
            self.of_reply.push(of_reply);
            self.direction.push(u.direction.as_str());
            self.segments.push(segments_column(u.segments)?);
            self.encoding.push(u.encoding.as_str());
            self.cost.push(u.estimated_cost_micros);
        }
        Ok(())
    }
}

/// The SMS usage a [`PG_BATCH`]'s messages (or their replies) carry on their own rows, one
/// array per column, null for none.
#[derive(Default)]
struct PgRowUsage<'a> {
    segments: Vec<Option<i32>>,
    encoding: Vec<Option<&'a str>>,
    cost: Vec<Option<i64>>,
}

impl<'a> PgRowUsage<'a> {
    /// Adds the next write's, its segments checked ([`on_row_usage`]).
    fn push(&mut self, usage: Option<(&'a NewSmsUsage, i32)>) {
        self.segments.push(usage.map(|(_, segments)| segments));
        self.encoding.push(usage.map(|(u, _)| u.encoding.as_str()));
        self.cost.push(usage.map(|(u, _)| u.estimated_cost_micros));
    }
}

/// The model usage rows of a [`PG_BATCH`], one array per column.
#[derive(Default)]
struct PgModelUsage<'a> {
    write: Vec<i64>,
    of_reply: Vec<Option<bool>>,
    provider: Vec<&'a str>,
    model: Vec<&'a str>,
    prompt: Vec<i64>,
    output: Vec<i64>,
    total: Vec<i64>,
    cached: Vec<bool>,
}

impl<'a> PgModelUsage<'a> {
    /// Adds the model usage rows of write `n`'s message (`Some(false)`), its reply
    /// (`Some(true)`) or its summary fold (`None`).
    fn push(&mut self, n: i64, of_reply: Option<bool>, usage: &'a [NewLlmUsage]) {
        for u in usage {
            self.write.push(n);
            self.of_reply.push(of_reply);
            self.provider.push(&u.provider);
            self.model.push(&u.model);
            self.prompt.push(i64::from(u.prompt_tokens));
            self.output.push(i64::from(u.output_tokens));
            self.total.push(i64::from(u.total_tokens));
            self.cached.push(u.cached);
        }
    }
}

/// The summary folds of a [`PG_BATCH`], one array per column.
#[derive(Default)]
struct PgFolds {
    users: Vec<Uuid>,
    texts: Vec<String>,
    through: Vec<i64>,
    folded: Vec<i64>,
}

/// The usage rows of the model calls that wrote a batch's summary folds, with their users:
/// every fold's, though only each user's newest fold is stored.
fn fold_usage(writes: &[MessageWrite]) -> impl Iterator<Item = (UserId, &NewLlmUsage)> {
    writes.iter().flat_map(|w| {
        w.summary
            .iter()
            .flat_map(move |fold| fold.model_usage.iter().map(move |u| (w.user, u)))
    })
}

/// Pairs each write of a chunk with the id it was stored under, `None` for a write skipped as a
/// duplicate. Ids rise in the order the rows were fed, so the stored rows sorted by id follow
/// the writes in order; a write without a provider id is never skipped, one with a provider id
/// is skipped exactly when the next stored row is not it.
fn match_inserted(
    writes: &[MessageWrite],
    mut stored: Vec<InsertedRow>,
) -> Result<Vec<Option<i64>>> {
    stored.sort_unstable_by_key(|row| row.id);
    let mut stored = stored.into_iter().peekable();
    let mut ids = Vec::with_capacity(writes.len());
    for write in writes {
        let is_this = stored.peek().is_some_and(|row| {
            row.user_id == write.user.0
                && row.provider_message_id == write.message.provider_message_id
        });
        if is_this {
            ids.push(stored.next().map(|row| row.id));
        } else if write.message.provider_message_id.is_some() {
            ids.push(None);
        } else {
            return Err(StoreError::Corrupt(
                "a batch insert gave back rows out of order".into(),
            ));
        }
    }
    if stored.next().is_some() {
        return Err(StoreError::Corrupt(
            "a batch insert gave back more rows than it was given".into(),
        ));
    }
    Ok(ids)
}

impl Store {
    /// Stores many users' messages, each with its SMS usage, in one transaction: on
    /// PostgreSQL one statement for the whole batch (`PG_BATCH`), on SQLite one row or one
    /// multi-row statement at a time. Gives one [`Written`] per write, in order.
    ///
    /// A write whose provider id its user already has is a [`Written::Duplicate`] and does
    /// not fail the others. Any other refusal (a usage row breaking a constraint, a reply to
    /// a message that is not the user's, a user gone) fails the whole transaction, and
    /// nothing of the batch is stored: the [writer](super::writer) then stores each write
    /// on its own, so only the faulty one fails.
    #[tracing::instrument(skip_all, fields(writes = writes.len()))]
    pub async fn write_messages(&self, writes: &[MessageWrite]) -> Result<Vec<Written>> {
        let (written, _) = self.store_writes(writes, false).await?;
        Ok(written)
    }

    /// [`Store::write_messages`], each write given back with its user's memory fingerprint
    /// read in the same transaction (one statement for the batch).
    #[tracing::instrument(skip_all, fields(writes = writes.len()))]
    pub async fn commit_messages(&self, writes: &[MessageWrite]) -> Result<Vec<Committed>> {
        let (written, prints) = self.store_writes(writes, true).await?;
        Ok(committed(writes, written, &prints))
    }

    /// Stores a batch; with `fingerprints`, also reads its users' memory fingerprints (users
    /// without memories are absent: theirs is the default, empty one).
    ///
    /// The batch runs on SQLite's batch thread when the store has one (which gives back what
    /// became of each write), else in one statement on PostgreSQL or on the SQLite pool,
    /// which give back the ids each write was stored under, its copies then read here.
    async fn store_writes(
        &self,
        writes: &[MessageWrite],
        fingerprints: bool,
    ) -> Result<(Vec<Written>, HashMap<UserId, MemoryFingerprint>)> {
        if let Some(thread) = &self.batches {
            return thread.store(writes, fingerprints).await;
        }
        let mut users: Vec<UserId> = writes.iter().map(|w| w.user).collect();
        users.sort_unstable();
        users.dedup();
        let summaries = summary_rows(&self.sealer, writes)?;
        let created_at = now();
        let fingerprints_of = if fingerprints { &users[..] } else { &[] };
        let (ids, prints) = match &self.pool {
            Pool::Postgres(_) => {
                self.run_on_postgres(writes, summaries, &users, fingerprints_of, created_at)
                    .await?
            }
            Pool::Sqlite(pool) => {
                self.run_on_pool(pool, writes, summaries, fingerprints_of, created_at)
                    .await?
            }
        };
        let stored = self.read_copies(writes, ids).await?;
        let written = written(&self.sealer, writes, stored, created_at)?;
        Ok((written, prints))
    }

    /// Runs a batch in one transaction of a SQLite pool: each statement carries the rows of
    /// every write ([`pool_batch`]).
    async fn run_on_pool(
        &self,
        pool: &sqlx::SqlitePool,
        writes: &[MessageWrite],
        summaries: Vec<(UserId, String, i64, i64)>,
        fingerprints_of: &[UserId],
        created_at: DateTime<Utc>,
    ) -> Result<(Vec<StoredIds>, HashMap<UserId, MemoryFingerprint>)> {
        // The usage rows: what the messages' own rows do not carry.
        let usage = writes
            .iter()
            .map(|w| usage_columns(split_usage(&w.message, &w.usage).1))
            .collect::<Result<Vec<_>>>()?;
        let reply_usage = writes
            .iter()
            .map(|w| {
                w.reply.as_ref().map_or(Ok(Vec::new()), |r| {
                    usage_columns(split_usage(&r.message, &r.usage).1)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Bodies are personal text: sealed for their user before they reach the database.
        let bodies: Vec<String> = writes
            .iter()
            .map(|w| self.seal_column(BODY_COLUMN, w.user, &w.message.body))
            .collect();
        let mut tx = pool.begin().await?;
        let ids = pool_batch::insert_all(&mut tx, writes, &bodies, created_at).await?;

        // The replies of the messages stored now, pointing at them.
        let mut replied = Vec::new();
        let mut replies = Vec::new();
        let mut reply_bodies = Vec::new();
        for (index, (write, id)) in writes.iter().zip(&ids).enumerate() {
            if let (Some(reply), Some(id)) = (&write.reply, id) {
                replied.push(index);
                replies.push(MessageWrite {
                    user: write.user,
                    message: NewMessage {
                        in_reply_to: Some(*id),
                        ..reply.message.clone()
                    },
                    usage: reply.usage.clone(),
                    model_usage: Vec::new(),
                    summary: None,
                    reply: None,
                });
                reply_bodies.push(self.seal_column(BODY_COLUMN, write.user, &reply.message.body));
            }
        }
        let reply_ids =
            pool_batch::insert_all(&mut tx, &replies, &reply_bodies, created_at).await?;
        let mut stored: Vec<StoredIds> =
            ids.into_iter().map(|id| id.map(|id| (id, None))).collect();
        for (index, reply_id) in replied.into_iter().zip(reply_ids) {
            let reply_id =
                reply_id.ok_or_else(|| StoreError::Corrupt("a reply was not stored".into()))?;
            if let Some((_, reply)) = &mut stored[index] {
                *reply = Some(reply_id);
            }
        }

        let mut usage_rows = Vec::new();
        let mut model_rows: Vec<_> = fold_usage(writes)
            .map(|(user, u)| (user, None, u))
            .collect();
        for (index, (write, ids)) in writes.iter().zip(&stored).enumerate() {
            let Some((id, reply_id)) = ids else {
                continue; // A duplicate: its usage was stored with the first copy.
            };
            usage_rows.extend(usage_rows_of(write.user, *id, &usage[index]));
            model_rows.extend(write.model_usage.iter().map(|u| (write.user, Some(*id), u)));
            if let (Some(reply_id), Some(reply)) = (reply_id, &write.reply) {
                usage_rows.extend(usage_rows_of(write.user, *reply_id, &reply_usage[index]));
                model_rows.extend(
                    reply
                        .model_usage
                        .iter()
                        .map(|u| (write.user, Some(*reply_id), u)),
                );
            }
        }
        for chunk in usage_rows.chunks(ROWS_PER_STATEMENT) {
            pool_batch::insert_usage(&mut tx, chunk, created_at).await?;
        }
        for chunk in model_rows.chunks(ROWS_PER_STATEMENT) {
            pool_batch::insert_model_usage(&mut tx, chunk, created_at).await?;
        }
        for chunk in summaries.chunks(ROWS_PER_STATEMENT) {
            let mut statement = QueryBuilder::<Sqlite>::new(super::summaries::SAVE_SUMMARIES_HEAD);
            statement.push_values(chunk, |mut row, (user, sealed, through, folded)| {
                row.push_bind(user.0)
                    .push_bind(sealed.as_str())
                    .push_bind(*through)
                    .push_bind(*folded)
                    .push_bind(created_at);
            });
            statement.push(super::summaries::SAVE_SUMMARIES_TAIL);
            statement
                .build()
                .execute(&mut *tx)
                .await
                .map_err(write_error)?;
        }
        let prints = if fingerprints_of.is_empty() {
            HashMap::new()
        } else {
            pool_batch::fingerprints(&mut tx, fingerprints_of).await?
        };
        tx.commit().await?;
        Ok((stored, prints))
    }

    /// Runs a batch on PostgreSQL: [`PG_BATCH`], on a connection scoped to the batch's users
    /// for row-level security (`users`, sorted and distinct). Two round trips whatever the
    /// batch's size: the scope, the statement.
    async fn run_on_postgres(
        &self,
        writes: &[MessageWrite],
        summaries: Vec<(UserId, String, i64, i64)>,
        users: &[UserId],
        fingerprints_of: &[UserId],
        created_at: DateTime<Utc>,
    ) -> Result<(Vec<StoredIds>, HashMap<UserId, MemoryFingerprint>)> {
        let text = |f: fn(&MessageWrite) -> Option<&str>| writes.iter().map(f).collect::<Vec<_>>();
        // Bodies are personal text: sealed for their user before they reach the database.
        let bodies: Vec<String> = writes
            .iter()
            .map(|w| self.seal_column(BODY_COLUMN, w.user, &w.message.body))
            .collect();
        let reply_bodies: Vec<Option<String>> = writes
            .iter()
            .map(|w| {
                w.reply
                    .as_ref()
                    .map(|r| self.seal_column(BODY_COLUMN, w.user, &r.message.body))
            })
            .collect();
        let mut usage = PgUsage::default();
        let (mut on_rows, mut on_reply_rows) = (PgRowUsage::default(), PgRowUsage::default());
        let mut model_usage = PgModelUsage::default();
        for (n, write) in (1_i64..).zip(writes) {
            let (on_row, rows) = on_row_usage(&write.message, &write.usage)?;
            on_rows.push(on_row);
            usage.push(n, false, rows)?;
            model_usage.push(n, Some(false), &write.model_usage);
            if let Some(reply) = &write.reply {
                let (on_row, rows) = on_row_usage(&reply.message, &reply.usage)?;
                on_reply_rows.push(on_row);
                usage.push(n, true, rows)?;
                model_usage.push(n, Some(true), &reply.model_usage);
            } else {
                on_reply_rows.push(None);
            }
            if let Some(fold) = &write.summary {
                model_usage.push(n, None, &fold.model_usage);
            }
        }
        let mut folds = PgFolds::default();
        for (user, sealed, through, folded) in summaries {
            folds.users.push(user.0);
            folds.texts.push(sealed);
            folds.through.push(through);
            folds.folded.push(folded);
        }

        // One statement: atomic on its own, in the implicit transaction of its round trip.
        let mut conn = self
            .pg_scopes()?
            .scoped(super::pg_conns::Scope::Batch(users))
            .await?;
        let rows = sqlx::query_as::<_, PgBatchRow>(PG_BATCH)
            .bind(writes.iter().map(|w| w.user.0).collect::<Vec<_>>())
            .bind(text(|w| Some(w.message.channel.as_str())))
            .bind(text(|w| Some(w.message.direction.as_str())))
            .bind(&bodies)
            .bind(text(|w| w.message.provider_message_id.as_deref()))
            .bind(
                writes
                    .iter()
                    .map(|w| w.message.in_reply_to)
                    .collect::<Vec<_>>(),
            )
            .bind(text(|w| {
                w.reply.as_ref().map(|r| r.message.channel.as_str())
            }))
            .bind(text(|w| {
                w.reply.as_ref().map(|r| r.message.direction.as_str())
            }))
            .bind(&reply_bodies)
            .bind(text(|w| {
                w.reply
                    .as_ref()
                    .and_then(|r| r.message.provider_message_id.as_deref())
            }))
            .bind(&usage.write)
            .bind(&usage.of_reply)
            .bind(&usage.direction)
            .bind(&usage.segments)
            .bind(&usage.encoding)
            .bind(&usage.cost)
            .bind(&folds.users)
            .bind(&folds.texts)
            .bind(&folds.through)
            .bind(&folds.folded)
            .bind(fingerprints_of.iter().map(|u| u.0).collect::<Vec<_>>())
            .bind(created_at)
            .bind(&model_usage.write)
            .bind(&model_usage.of_reply)
            .bind(&model_usage.provider)
            .bind(&model_usage.model)
            .bind(&model_usage.prompt)
            .bind(&model_usage.output)
            .bind(&model_usage.total)
            .bind(&model_usage.cached)
            .bind(&on_rows.segments)
            .bind(&on_rows.encoding)
            .bind(&on_rows.cost)
            .bind(&on_reply_rows.segments)
            .bind(&on_reply_rows.encoding)
            .bind(&on_reply_rows.cost)
            .fetch_all(&mut *conn)
            .await
            .map_err(write_error)?;
        drop(conn);

        if rows.len() != writes.len() {
            return Err(StoreError::Corrupt("a batch gave back too few rows".into()));
        }
        let mut ids = Vec::with_capacity(writes.len());
        let mut prints = HashMap::new();
        for ((n, write), row) in (1_i64..).zip(writes).zip(rows) {
            if row.n != n {
                return Err(StoreError::Corrupt(
                    "a batch gave back rows out of order".into(),
                ));
            }
            ids.push(row.id.map(|id| (id, row.reply_id)));
            if let (Some(count), Some(max_id)) = (row.count, row.max_id) {
                let print = MemoryFingerprint {
                    count,
                    max_id,
                    max_updated_at: row.max_updated_at,
                };
                prints.insert(write.user, print);
            }
        }
        Ok((ids, prints))
    }

    /// How each write of a committed batch was stored, from the ids it was stored under: a
    /// write skipped as a copy is given back as the row it collided with, read now. That row
    /// is committed (PostgreSQL made the batch wait for it) and readable.
    async fn read_copies(
        &self,
        writes: &[MessageWrite],
        ids: Vec<StoredIds>,
    ) -> Result<Vec<Stored>> {
        if ids.len() != writes.len() {
            return Err(StoreError::Corrupt("a batch gave back too few ids".into()));
        }
        let mut stored = Vec::with_capacity(writes.len());
        for (write, ids) in writes.iter().zip(ids) {
            stored.push(match ids {
                Some((id, reply)) => Stored::New(id, reply),
                None => Stored::Copy(
                    with_user!(self, write.user, conn => {
                        sqlx::query_as::<_, MessageRow>(MESSAGE_BY_PROVIDER_ID)
                            .bind(write.user.0)
                            .bind(write.message.provider_message_id.as_deref())
                            .fetch_optional(&mut *conn)
                            .await?
                    })
                    .ok_or_else(|| {
                        StoreError::Corrupt("a duplicate message cannot be read".into())
                    })?,
                ),
            });
        }
        Ok(stored)
    }
}

/// The newest of each user's summary folds, by the newest message each folds in: a batch
/// stores one fold per user (one statement may upsert a row only once, and a newer fold
/// stands over an older one all the same).
pub(super) fn newest_folds<'a, K: std::hash::Hash + Eq, F>(
    folds: impl Iterator<Item = (K, &'a F)>,
    through: impl Fn(&F) -> i64,
) -> HashMap<K, &'a F> {
    let mut newest: HashMap<K, &'a F> = HashMap::new();
    for (user, fold) in folds {
        let kept = newest.entry(user).or_insert(fold);
        if through(fold) > through(kept) {
            *kept = fold;
        }
    }
    newest
}

/// The summary folds of a batch as rows: one per user (the newest), as one statement may
/// upsert a row only once; `(user, sealed text, through message id, folded messages)`.
fn summary_rows(
    sealer: &Sealer,
    writes: &[MessageWrite],
) -> Result<Vec<(UserId, String, i64, i64)>> {
    let folds = writes
        .iter()
        .filter_map(|w| w.summary.as_ref().map(|s| (w.user, s)));
    newest_folds(folds, |fold| fold.through_message_id)
        .into_iter()
        .map(|(user, s)| {
            let (sealed, folded) = fold_columns(sealer, user, s)?;
            Ok((user, sealed, s.through_message_id, folded))
        })
        .collect()
}

/// A fold's columns as they are stored: its text sealed for `user`, and the count of messages
/// it folded in.
pub(super) fn fold_columns(
    sealer: &Sealer,
    user: UserId,
    fold: &SummaryWrite,
) -> Result<(String, i64)> {
    let folded = i64::try_from(fold.folded_messages)
        .map_err(|e| StoreError::Database(sqlx::Error::Encode(e.into())))?;
    Ok((
        sealer.seal_column(super::summaries::PLACE, user, &fold.text),
        folded,
    ))
}

/// How one write of a batch was stored.
#[derive(Debug)]
pub(super) enum Stored {
    /// Under new ids: its message's, and its reply's if it carried one.
    New(i64, Option<i64>),
    /// Not at all: its user already had this row under its provider id.
    Copy(MessageRow),
}

/// What became of each write of a committed batch, from how each was stored.
pub(super) fn written(
    sealer: &Sealer,
    writes: &[MessageWrite],
    stored: Vec<Stored>,
    created_at: DateTime<Utc>,
) -> Result<Vec<Written>> {
    if stored.len() != writes.len() {
        return Err(StoreError::Corrupt("a batch gave back too few rows".into()));
    }
    let new = |write: &MessageWrite, message: &NewMessage, id: i64, in_reply_to| Message {
        id,
        user_id: write.user,
        channel: message.channel,
        direction: message.direction,
        body: message.body.clone(),
        provider_message_id: message.provider_message_id.clone(),
        in_reply_to,
        created_at,
    };
    writes
        .iter()
        .zip(stored)
        .map(|(write, stored)| {
            Ok(match (stored, &write.reply) {
                (Stored::Copy(row), _) => Written::Duplicate(row.open(sealer)?),
                (Stored::New(id, Some(reply_id)), Some(reply)) => Written::Answered {
                    message: new(write, &write.message, id, write.message.in_reply_to),
                    reply: new(write, &reply.message, reply_id, Some(id)),
                },
                (Stored::New(id, _), _) => {
                    Written::Stored(new(write, &write.message, id, write.message.in_reply_to))
                }
            })
        })
        .collect()
}

/// Each write of a batch with what became of it and its user's memory fingerprint (`prints`
/// holds users with memories; the others' is the default, empty one).
fn committed(
    writes: &[MessageWrite],
    written: Vec<Written>,
    prints: &HashMap<UserId, MemoryFingerprint>,
) -> Vec<Committed> {
    written
        .into_iter()
        .zip(writes)
        .map(|(written, write)| Committed {
            written,
            memories: prints.get(&write.user).copied().unwrap_or_default(),
        })
        .collect()
}

/// The ids one write of a batch was stored under: its message's and its reply's, or `None`
/// for a message skipped as a copy of one already stored under its provider id.
pub(super) type StoredIds = Option<(i64, Option<i64>)>;

/// A message's usage rows, its id known.
fn usage_rows_of<'a>(
    user: UserId,
    message_id: i64,
    usage: &'a [(&'a NewSmsUsage, i32)],
) -> impl Iterator<Item = UsageRow<'a>> {
    usage.iter().map(move |(u, segments)| UsageRow {
        user,
        message_id,
        usage: u,
        segments: *segments,
    })
}

/// Usage rows with their `segments` column checked.
fn usage_columns(usage: &[NewSmsUsage]) -> Result<Vec<(&NewSmsUsage, i32)>> {
    usage
        .iter()
        .map(|u| Ok((u, segments_column(u.segments)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(user: UserId, sid: Option<&str>) -> MessageWrite {
        MessageWrite {
            user,
            message: NewMessage {
                channel: Channel::Sms,
                direction: Direction::Inbound,
                body: "hi".into(),
                provider_message_id: sid.map(str::to_owned),
                in_reply_to: None,
            },
            usage: Vec::new(),
            model_usage: Vec::new(),
            summary: None,
            reply: None,
        }
    }

    fn row(id: i64, user: UserId, sid: Option<&str>) -> InsertedRow {
        InsertedRow {
            id,
            user_id: user.0,
            provider_message_id: sid.map(str::to_owned),
        }
    }

    #[test]
    fn stored_rows_are_matched_to_writes_by_rising_id_whatever_order_they_come_back_in() {
        let (a, b) = (UserId::new(), UserId::new());
        let writes = [write(a, Some("SM1")), write(b, None), write(a, None)];
        let back = vec![row(12, a, None), row(10, a, Some("SM1")), row(11, b, None)];
        let ids = match_inserted(&writes, back).unwrap();
        assert_eq!(ids, [Some(10), Some(11), Some(12)]);
    }

    #[test]
    fn a_write_with_a_provider_id_that_came_back_empty_was_a_duplicate() {
        let (a, b) = (UserId::new(), UserId::new());
        let writes = [
            write(a, Some("SM1")),
            write(b, Some("SM1")),
            write(a, Some("SM1")),
            write(a, None),
        ];
        let back = vec![row(7, b, Some("SM1")), row(8, a, None)];
        let ids = match_inserted(&writes, back).unwrap();
        assert_eq!(ids, [None, Some(7), None, Some(8)]);
    }

    /// A reply's lookup (and the foreign key's check of a deleted message's replies) finds it
    /// through the index that leads with the message replied to (migration 0067).
    #[tokio::test]
    async fn the_reply_lookup_uses_the_index_by_message_replied_to() {
        let plan = crate::store::testing::sqlite_plan(REPLY_TO, 3).await;
        let by_reply = "USING INDEX messages_in_reply_to_idx (in_reply_to=? AND user_id=?)";
        assert!(plan.iter().any(|step| step.contains(by_reply)), "{plan:?}");
    }

    /// The dedupe lookup of a retried webhook finds its message through the partial index of
    /// inbound SMS by provider id (migration 0071): `provider_message_id = ?` implies the
    /// index's `IS NOT NULL`.
    #[tokio::test]
    async fn the_provider_id_lookup_uses_the_partial_dedupe_index() {
        let plan = crate::store::testing::sqlite_plan(MESSAGE_BY_PROVIDER_ID, 2).await;
        let by_sid = "USING INDEX messages_user_id_provider_message_id_key \
                      (user_id=? AND provider_message_id=?)";
        assert!(plan.iter().any(|step| step.contains(by_sid)), "{plan:?}");
    }

    #[test]
    fn a_write_without_a_provider_id_missing_from_the_rows_is_corrupt() {
        let a = UserId::new();
        let writes = [write(a, None), write(a, None)];
        assert!(matches!(
            match_inserted(&writes, vec![row(1, a, None)]),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            match_inserted(&writes[..1], vec![row(1, a, None), row(2, a, None)]),
            Err(StoreError::Corrupt(_))
        ));
    }
}
