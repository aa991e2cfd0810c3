//! The audit log: security events (sign-ins, MFA changes, token reuse, admin reads, exports,
//! erasures, key rotation) with who, when, from where and how it went.
//!
//! Append-only through the store: the only changes after insertion are the retention purge
//! ([`Store::purge_audit_before`]) and erasure, which removes a person's own entries and blanks
//! them as the subject of others' ([`Store::erase_user`](super::Store::erase_user)). Details
//! never hold secrets or message text: callers pass fixed labels and ids only.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::sql::{parse, write_error};
use super::{Result, Store, UserId, with_pool};

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    /// Refused by policy (lockout, missing MFA, rate limit).
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

impl FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "success" => Ok(Outcome::Success),
            "failure" => Ok(Outcome::Failure),
            "denied" => Ok(Outcome::Denied),
            other => Err(format!("unknown outcome {other:?}")),
        }
    }
}

/// An event about to be logged.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEvent {
    /// A fixed label: `login`, `mfa_enabled`, `token_reuse`, `admin_read`, `export`, …
    pub event: &'static str,
    pub outcome: Outcome,
    pub actor: Option<UserId>,
    pub subject: Option<UserId>,
    /// The client's address, when the event came through the network.
    pub ip: Option<String>,
    /// Particulars: fixed labels and ids, never secrets or personal text.
    pub detail: Value,
}

impl NewAuditEvent {
    /// An event by `actor` about their own account.
    pub fn own(event: &'static str, outcome: Outcome, user: UserId, ip: Option<String>) -> Self {
        Self {
            event,
            outcome,
            actor: Some(user),
            subject: Some(user),
            ip,
            detail: Value::Null,
        }
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

/// A logged event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub event: String,
    pub outcome: Outcome,
    pub actor_id: Option<UserId>,
    pub subject_id: Option<UserId>,
    pub ip: Option<String>,
    pub detail: Value,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: DateTime<Utc>,
    event: String,
    outcome: String,
    actor_id: Option<Uuid>,
    subject_id: Option<Uuid>,
    ip: Option<String>,
    detail: Option<String>,
}

const INSERT_AUDIT: &str = "INSERT INTO audit_events \
     (at, event, outcome, actor_id, subject_id, ip, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)";
const AUDIT_FOR: &str = "SELECT id, at, event, outcome, actor_id, subject_id, ip, detail \
     FROM audit_events WHERE actor_id = $1 OR subject_id = $1 ORDER BY id DESC LIMIT $2";
const AUDIT_RECENT: &str = "SELECT id, at, event, outcome, actor_id, subject_id, ip, detail \
     FROM audit_events ORDER BY id DESC LIMIT $1";
const PURGE_AUDIT: &str = "DELETE FROM audit_events WHERE at < $1";

impl Store {
    /// Appends an event. Failing to audit is logged, never fatal to the caller's action: use
    /// [`Store::audit`] where the action must not proceed unaudited.
    #[tracing::instrument(skip_all, fields(event = event.event))]
    pub async fn audit(&self, event: &NewAuditEvent, now: DateTime<Utc>) -> Result<()> {
        let detail = match &event.detail {
            Value::Null => None,
            other => Some(other.to_string()),
        };
        with_pool!(self, pool => {
            sqlx::query(INSERT_AUDIT)
                .bind(now)
                .bind(event.event)
                .bind(event.outcome.as_str())
                .bind(event.actor.map(|u| u.0))
                .bind(event.subject.map(|u| u.0))
                .bind(event.ip.as_deref())
                .bind(detail)
                .execute(pool)
                .await
                .map_err(write_error)?;
        });
        Ok(())
    }

    /// Appends an event, logging (not returning) a failure to do so.
    pub async fn audit_quietly(&self, event: NewAuditEvent, now: DateTime<Utc>) {
        if let Err(error) = self.audit(&event, now).await {
            tracing::error!(%error, event = event.event, "cannot write audit event");
        }
    }

    /// The latest events where the user acted or was the subject, newest first.
    #[tracing::instrument(skip_all)]
    pub async fn audit_events_for(&self, user: UserId, limit: u32) -> Result<Vec<AuditEvent>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, AuditRow>(AUDIT_FOR)
                .bind(user.0)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(AuditEvent::try_from).collect()
    }

    /// The latest events of everyone, newest first (operators).
    #[tracing::instrument(skip_all)]
    pub async fn recent_audit_events(&self, limit: u32) -> Result<Vec<AuditEvent>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, AuditRow>(AUDIT_RECENT)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(AuditEvent::try_from).collect()
    }

    /// Deletes events older than `cutoff` (retention); returns how many.
    #[tracing::instrument(skip_all)]
    pub async fn purge_audit_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let purged = with_pool!(self, pool => {
            sqlx::query(PURGE_AUDIT).bind(cutoff).execute(pool).await?.rows_affected()
        });
        Ok(purged)
    }
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = super::StoreError;
    fn try_from(row: AuditRow) -> Result<Self> {
        Ok(AuditEvent {
            id: row.id,
            at: row.at,
            event: row.event,
            outcome: parse("audit_events.outcome", &row.outcome)?,
            actor_id: row.actor_id.map(UserId),
            subject_id: row.subject_id.map(UserId),
            ip: row.ip,
            detail: row
                .detail
                .and_then(|d| serde_json::from_str(&d).ok())
                .unwrap_or(Value::Null),
        })
    }
}
