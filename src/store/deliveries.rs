//! Outbound SMS delivery state: what Twilio accepted (by message SID) and what its status
//! callbacks later said about it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::sql::{now, write_error};
use super::{NewSmsUsage, Result, Store, UserId, with_pool, with_user};

/// One outbound SMS as Twilio last reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmsDelivery {
    pub message_sid: String,
    /// Twilio's `MessageStatus` (`queued`, `sent`, `delivered`, `undelivered`, `failed`, …).
    pub status: String,
    /// Twilio's `ErrorCode` for a failed delivery.
    pub error_code: Option<String>,
    pub segments: Option<i32>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    message_sid: String,
    status: String,
    error_code: Option<String>,
    segments: Option<i32>,
    updated_at: DateTime<Utc>,
}

const INSERT: &str = "INSERT INTO sms_deliveries \
     (user_id, message_sid, status, segments, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $5)";
const UPDATE: &str = "UPDATE sms_deliveries SET status = $2, error_code = $3, \
     segments = COALESCE($4, segments), updated_at = $5 WHERE message_sid = $1 RETURNING user_id";
const BY_SID: &str = "SELECT message_sid, status, error_code, segments, updated_at \
     FROM sms_deliveries WHERE user_id = $1 AND message_sid = $2";
/// Gives the SID to the reply's own usage row (written with the reply, before the send).
const LINK_USAGE: &str = "UPDATE sms_usage_logs SET message_sid = $3, status = $4 \
     WHERE id = (SELECT id FROM sms_usage_logs WHERE user_id = $1 AND message_id = $2 \
     AND direction = 'outbound' AND message_sid IS NULL ORDER BY id LIMIT 1)";
/// Moves the reply's usage off its message's row (where a reply billed once carries it, see
/// `split_usage`) into a usage row of its own, with the SID; [`CLEAR_MESSAGE_USAGE`] then
/// clears the message's.
const MOVE_USAGE: &str = "INSERT INTO sms_usage_logs \
     (user_id, message_id, direction, segments, encoding, estimated_cost_micros, created_at, \
     message_sid, status) \
     SELECT user_id, id, direction, sms_segments, sms_encoding, sms_cost_micros, created_at, \
     $3, $4 FROM messages WHERE user_id = $1 AND id = $2 AND direction = 'outbound' \
     AND sms_segments IS NOT NULL";
const CLEAR_MESSAGE_USAGE: &str = "UPDATE messages \
     SET sms_segments = NULL, sms_encoding = NULL, sms_cost_micros = NULL \
     WHERE user_id = $1 AND id = $2";
/// Where a sent reply's usage is found, in order: a usage row written with the reply, else the
/// usage on the reply's own row; each with the statement that must follow once it is linked.
const LINKS: [(&str, Option<&str>); 2] =
    [(LINK_USAGE, None), (MOVE_USAGE, Some(CLEAR_MESSAGE_USAGE))];
/// A send with no usage row yet (a reminder's nudge, or a reply whose row is gone).
const INSERT_USAGE: &str = "INSERT INTO sms_usage_logs \
     (user_id, message_id, direction, segments, encoding, estimated_cost_micros, created_at, \
     message_sid, status) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
     WHERE $2 IS NULL OR EXISTS (SELECT 1 FROM messages WHERE user_id = $1 AND id = $2)";
const UPDATE_USAGE: &str = "UPDATE sms_usage_logs SET status = $3, \
     segments = COALESCE($4, segments), price_micros = COALESCE($5, price_micros), \
     price_unit = COALESCE($6, price_unit) WHERE user_id = $1 AND message_sid = $2";

/// What an SMS Twilio accepted counts as: its usage row.
#[derive(Debug, Clone, PartialEq)]
pub struct SentUsage {
    /// The stored reply it carries, whose usage row was written with it; `None` for a nudge.
    pub message_id: Option<i64>,
    /// The row to write when there is no row to link yet.
    pub usage: NewSmsUsage,
}

/// What a status callback reported about one outbound SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusReport<'a> {
    pub sid: &'a str,
    /// Twilio's `MessageStatus`.
    pub status: &'a str,
    pub error_code: Option<&'a str>,
    /// `NumSegments`, when the callback carried it.
    pub segments: Option<u32>,
    /// `Price` as millionths of `PriceUnit` (positive), when the callback carried it.
    pub price_micros: Option<i64>,
    pub price_unit: Option<&'a str>,
}

impl Store {
    /// Records an SMS Twilio accepted for `user`, and its usage row keyed by the SID (the
    /// reply's own row when it has one, a new row otherwise), in one transaction.
    #[tracing::instrument(skip_all)]
    pub async fn record_sms_sent(
        &self,
        user: UserId,
        sid: &str,
        status: &str,
        segments: Option<u32>,
        sent: &SentUsage,
    ) -> Result<()> {
        let segments = segments.and_then(|s| i32::try_from(s).ok());
        let usage = &sent.usage;
        let usage_segments = segments.unwrap_or(i32::try_from(usage.segments).unwrap_or(1));
        let at = now();
        with_user!(self, user, atomic conn => {
            sqlx::query(INSERT)
                .bind(user.0)
                .bind(sid)
                .bind(status)
                .bind(segments)
                .bind(at)
                .execute(&mut *conn)
                .await
                .map_err(write_error)?;
            let mut linked = 0;
            if let Some(message) = sent.message_id {
                for (link, then) in LINKS {
                    linked = sqlx::query(link)
                        .bind(user.0)
                        .bind(message)
                        .bind(sid)
                        .bind(status)
                        .execute(&mut *conn)
                        .await
                        .map_err(write_error)?
                        .rows_affected();
                    if linked > 0 {
                        if let Some(then) = then {
                            sqlx::query(then)
                                .bind(user.0)
                                .bind(message)
                                .execute(&mut *conn)
                                .await?;
                        }
                        break;
                    }
                }
            }
            if linked == 0 {
                sqlx::query(INSERT_USAGE)
                    .bind(user.0)
                    .bind(sent.message_id)
                    .bind(usage.direction.as_str())
                    .bind(usage_segments.max(1))
                    .bind(usage.encoding.as_str())
                    .bind(usage.estimated_cost_micros)
                    .bind(at)
                    .bind(sid)
                    .bind(status)
                    .execute(&mut *conn)
                    .await
                    .map_err(write_error)?;
            }
        });
        Ok(())
    }

    /// Applies a status callback to the delivery and to the user's usage row for that SID, in
    /// one transaction; the user the message was for, `None` for an unknown SID.
    #[tracing::instrument(skip_all)]
    pub async fn update_sms_delivery(&self, report: &StatusReport<'_>) -> Result<Option<UserId>> {
        let segments = report.segments.and_then(|s| i32::try_from(s).ok());
        let user: Option<Uuid> = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let user: Option<Uuid> = sqlx::query_scalar(UPDATE)
                .bind(report.sid)
                .bind(report.status)
                .bind(report.error_code)
                .bind(segments)
                .bind(now())
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(user) = user {
                sqlx::query(UPDATE_USAGE)
                    .bind(user)
                    .bind(report.sid)
                    .bind(report.status)
                    .bind(segments)
                    .bind(report.price_micros)
                    .bind(report.price_unit)
                    .execute(&mut *tx)
                    .await
                    .map_err(write_error)?;
            }
            tx.commit().await?;
            user
        });
        Ok(user.map(UserId))
    }

    /// One of the user's outbound SMS, by SID.
    #[tracing::instrument(skip_all)]
    pub async fn sms_delivery(&self, user: UserId, sid: &str) -> Result<Option<SmsDelivery>> {
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, DeliveryRow>(BY_SID)
                .bind(user.0)
                .bind(sid)
                .fetch_optional(&mut *conn)
                .await?
        });
        Ok(row.map(|r| SmsDelivery {
            message_sid: r.message_sid,
            status: r.status,
            error_code: r.error_code,
            segments: r.segments,
            updated_at: r.updated_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::{LINK_USAGE, SentUsage, StatusReport};
    use crate::store::testing::{in_memory, on_each_backend, sqlite_plan};
    use crate::store::tests::{create, turn, usage};
    use crate::store::{
        Channel, Direction, NewMessage, NewSmsUsage, SmsEncoding, SmsUsage, Store, UserId, Written,
        with_pool,
    };

    /// Stores a turn through the group-commit writer (on SQLite, its batch thread), its
    /// inbound SMS and its reply billed `segments` each; gives back their ids.
    async fn store_turn(store: &Store, user: UserId, sid: &str, segments: u32) -> (i64, i64) {
        let write = turn(
            user,
            (
                "what now?",
                sid,
                vec![NewSmsUsage {
                    direction: Direction::Inbound,
                    ..usage(segments)
                }],
            ),
            ("Water the plants.", vec![usage(segments)]),
        );
        match store
            .write_messages(&[write])
            .await
            .expect("the turn")
            .pop()
        {
            Some(Written::Answered { message, reply }) => (message.id, reply.id),
            other => panic!("the turn was stored with its reply: {other:?}"),
        }
    }

    /// The user's usage, read back.
    async fn usage_of(store: &Store, user: UserId) -> Vec<SmsUsage> {
        store.sms_usage(user).await.expect("the usage reads")
    }

    /// Each usage as (message, direction, segments).
    fn billed(usage: &[SmsUsage]) -> Vec<(Option<i64>, Direction, u32)> {
        usage
            .iter()
            .map(|u| (u.message_id, u.direction, u.segments))
            .collect()
    }

    /// A reply to `message` stored on its own (`Store::insert_reply`), billed `usage`.
    async fn lone_reply(store: &Store, user: UserId, message: i64, usage: &[NewSmsUsage]) -> i64 {
        let reply = NewMessage {
            channel: Channel::Sms,
            direction: Direction::Outbound,
            body: "Step one: open the laptop.".into(),
            provider_message_id: None,
            in_reply_to: Some(message),
        };
        let stored = store.insert_reply(user, &reply, usage).await;
        stored.expect("the reply").id
    }

    /// Every writer puts a message's usage on its row when the message is billed once, in its
    /// own direction (a turn through the batch writer, a lone reply), and writes usage rows
    /// otherwise (a reply billed twice); all read back alike, in billing order.
    async fn usage_is_on_the_row_when_billed_once(store: Store) {
        let ana = create(&store, 1).await.id;
        let (message, reply) =
            store_turn(&store, ana, "SM00000000000000000000000000000001", 2).await;
        let lone = lone_reply(&store, ana, message, &[usage(1)]).await;
        let twice = lone_reply(&store, ana, message, &[usage(1), usage(3)]).await;
        /// A message's id and the usage its row carries.
        type Carried = (i64, i32, String, i64);
        let (usage_rows, on_rows): (Vec<(i64, i32)>, Vec<Carried>) = with_pool!(store, pool => {
            let rows = "SELECT message_id, segments FROM sms_usage_logs ORDER BY id";
            let carried = "SELECT id, sms_segments, sms_encoding, sms_cost_micros \
                 FROM messages WHERE sms_segments IS NOT NULL ORDER BY id";
            (
                sqlx::query_as(rows).fetch_all(pool).await.expect("the usage rows"),
                sqlx::query_as(carried).fetch_all(pool).await.expect("the messages"),
            )
        });
        assert_eq!(
            usage_rows,
            [(twice, 1), (twice, 3)],
            "the reply billed twice only"
        );
        let carried = |id, segments| {
            (
                id,
                segments,
                "GSM-7".to_owned(),
                7_900 * i64::from(segments),
            )
        };
        assert_eq!(
            on_rows,
            [carried(message, 2), carried(reply, 2), carried(lone, 1)]
        );
        assert_eq!(
            billed(&usage_of(&store, ana).await),
            [
                (Some(message), Direction::Inbound, 2),
                (Some(reply), Direction::Outbound, 2),
                (Some(lone), Direction::Outbound, 1),
                (Some(twice), Direction::Outbound, 1),
                (Some(twice), Direction::Outbound, 3)
            ],
            "read as usage like any other"
        );
    }

    #[tokio::test]
    async fn a_message_billed_once_carries_its_usage_on_its_own_row_whatever_writes_it() {
        on_each_backend(usage_is_on_the_row_when_billed_once).await;
        // An in-memory database's batches, which have no batch thread.
        usage_is_on_the_row_when_billed_once(in_memory().await).await;
    }

    #[tokio::test]
    async fn a_sent_reply_s_usage_takes_its_sid_and_delivery_status() {
        on_each_backend(|store| async move {
            let ana = create(&store, 1).await.id;
            let bob = create(&store, 2).await.id;
            let (_, reply) = store_turn(&store, ana, "SM00000000000000000000000000000001", 2).await;
            let sent = |message_id| SentUsage {
                message_id: Some(message_id),
                usage: usage(9),
            };
            let sid = "SM000000000000000000000000000000aa";

            // Someone else's reply is not theirs to link, nor to give a usage row to.
            store
                .record_sms_sent(
                    bob,
                    "SM000000000000000000000000000000bb",
                    "queued",
                    None,
                    &sent(reply),
                )
                .await
                .expect("the send is recorded");
            assert_eq!(usage_of(&store, bob).await, []);

            store
                .record_sms_sent(ana, sid, "queued", None, &sent(reply))
                .await
                .expect("the send is recorded");
            let report = StatusReport {
                sid,
                status: "delivered",
                error_code: None,
                segments: None,
                price_micros: Some(15_800),
                price_unit: Some("USD"),
            };
            let updated = store.update_sms_delivery(&report).await;
            assert_eq!(updated.expect("the callback is recorded"), Some(ana));

            let usage = usage_of(&store, ana).await;
            assert_eq!(usage.len(), 2, "the reply's usage counted once: {usage:?}");
            assert_eq!(usage[0].direction, Direction::Inbound);
            let sent = &usage[1];
            assert_eq!(
                (
                    billed(&usage[1..]),
                    sent.message_sid.as_deref(),
                    sent.status.as_deref(),
                    sent.price_micros
                ),
                (
                    vec![(Some(reply), Direction::Outbound, 2)],
                    Some(sid),
                    Some("delivered"),
                    Some(15_800)
                ),
                "the usage stored with the reply, not the send's own"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn the_retention_purge_keeps_the_usage_of_the_messages_it_deletes() {
        on_each_backend(|store| async move {
            let ana = create(&store, 1).await.id;
            store_turn(&store, ana, "SM00000000000000000000000000000001", 3).await;
            let cutoff = chrono::Utc::now() + chrono::Duration::seconds(1);
            let purged = store.purge_messages_before(cutoff).await;
            assert_eq!(purged.expect("the purge"), 2);
            assert_eq!(store.recent_messages(ana, 10).await.expect("history"), []);
            let kept = usage_of(&store, ana).await;
            assert_eq!(
                billed(&kept),
                [
                    (None, Direction::Inbound, 3),
                    (None, Direction::Outbound, 3)
                ]
            );
            let encodings: Vec<_> = kept
                .iter()
                .map(|u| (u.encoding, u.estimated_cost_micros))
                .collect();
            assert_eq!(encodings, [(SmsEncoding::Gsm7, 23_700); 2]);
        })
        .await;
    }

    /// Deleting a message sets its usage rows' `message_id` to NULL (the foreign key's action,
    /// this statement): found through the index, not by scanning every usage row.
    #[tokio::test]
    async fn a_deleted_message_finds_its_usage_rows_by_index() {
        let plan = sqlite_plan(
            "UPDATE sms_usage_logs SET message_id = NULL WHERE message_id = $1",
            1,
        )
        .await;
        let by_message = "INDEX sms_usage_logs_message_id_idx (message_id=?)";
        assert!(
            plan.iter().any(|step| step.contains(by_message)),
            "{plan:?}"
        );
    }

    #[tokio::test]
    async fn a_sent_reply_finds_its_usage_row_by_index() {
        let plan = sqlite_plan(LINK_USAGE, 4).await;
        let both = "USING INDEX sms_usage_logs_message_id_idx (message_id=? AND user_id=?)";
        assert!(plan.iter().any(|step| step.contains(both)), "{plan:?}");
    }
}
