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
            let linked = match sent.message_id {
                Some(message) => sqlx::query(LINK_USAGE)
                    .bind(user.0)
                    .bind(message)
                    .bind(sid)
                    .bind(status)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected(),
                None => 0,
            };
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
    use super::LINK_USAGE;
    use crate::store::testing::sqlite_plan;

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
