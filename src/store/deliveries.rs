//! Outbound SMS delivery state: what Twilio accepted (by message SID) and what its status
//! callbacks later said about it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::sql::{now, write_error};
use super::{Result, Store, UserId, with_pool, with_user};

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

impl Store {
    /// Records an SMS Twilio accepted for `user`.
    #[tracing::instrument(skip_all)]
    pub async fn record_sms_sent(
        &self,
        user: UserId,
        sid: &str,
        status: &str,
        segments: Option<u32>,
    ) -> Result<()> {
        let segments = segments.and_then(|s| i32::try_from(s).ok());
        with_user!(self, user, conn => {
            sqlx::query(INSERT)
                .bind(user.0)
                .bind(sid)
                .bind(status)
                .bind(segments)
                .bind(now())
                .execute(&mut *conn)
                .await
                .map_err(write_error)?;
        });
        Ok(())
    }

    /// Applies a status callback; the user the message was for, `None` for an unknown SID.
    #[tracing::instrument(skip_all)]
    pub async fn update_sms_delivery(
        &self,
        sid: &str,
        status: &str,
        error_code: Option<&str>,
        segments: Option<u32>,
    ) -> Result<Option<UserId>> {
        let segments = segments.and_then(|s| i32::try_from(s).ok());
        let user: Option<Uuid> = with_pool!(self, pool => {
            sqlx::query_scalar(UPDATE)
                .bind(sid)
                .bind(status)
                .bind(error_code)
                .bind(segments)
                .bind(now())
                .fetch_optional(pool)
                .await?
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
