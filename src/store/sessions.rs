//! Sessions: sign-ins and their rotating refresh tokens, trusted devices, and the failed
//! sign-in counters behind lockouts.
//!
//! A session is the family of refresh tokens descending from one sign-in. Each refresh token
//! is used once: [`Store::rotate_refresh_token`] marks it used and stores its successor in
//! the same transaction. A used token presented again means it was copied: the whole family
//! is revoked ([`Rotation::Reused`]).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::sql::write_error;
use super::{Result, Store, StoreError, UserId, with_pool, with_user};

/// One sign-in, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    pub id: Uuid,
    pub user_id: UserId,
    /// When the password (and TOTP) were checked.
    pub auth_time: DateTime<Utc>,
    pub mfa: bool,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
}

/// What a new session is made of.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub user_id: UserId,
    pub auth_time: DateTime<Utc>,
    pub mfa: bool,
    pub expires_at: DateTime<Utc>,
    /// The first refresh token's hash and expiry.
    pub refresh_hash: String,
    pub refresh_expires_at: DateTime<Utc>,
}

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone, PartialEq)]
pub enum Rotation {
    /// The token was valid: it is now used and its successor is stored.
    Rotated(Session),
    /// The token had been used before: its session is now revoked.
    Reused { user_id: UserId, session_id: Uuid },
    /// Unknown, expired, or its session ended.
    Invalid,
}

/// The failed sign-in counter of one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Throttle {
    pub failures: u32,
    pub lockouts: u32,
    pub locked_until: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    user_id: Uuid,
    auth_time: DateTime<Utc>,
    mfa: bool,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    revoked_reason: Option<String>,
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Session {
            id: row.id,
            user_id: UserId(row.user_id),
            auth_time: row.auth_time,
            mfa: row.mfa,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            revoked_reason: row.revoked_reason,
        }
    }
}

#[derive(sqlx::FromRow)]
struct PresentedRow {
    token_expires_at: DateTime<Utc>,
    #[sqlx(flatten)]
    session: SessionRow,
}

#[derive(sqlx::FromRow)]
struct ThrottleRow {
    failures: i32,
    lockouts: i32,
    locked_until: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

impl From<ThrottleRow> for Throttle {
    fn from(row: ThrottleRow) -> Self {
        Throttle {
            failures: u32::try_from(row.failures).unwrap_or(0),
            lockouts: u32::try_from(row.lockouts).unwrap_or(0),
            locked_until: row.locked_until,
            updated_at: Some(row.updated_at),
        }
    }
}

macro_rules! session_columns {
    () => {
        "s.id, s.user_id, s.auth_time, s.mfa, s.created_at, s.last_used_at, s.expires_at, \
         s.revoked_at, s.revoked_reason"
    };
}

const INSERT_SESSION: &str = "INSERT INTO sessions \
     (id, user_id, auth_time, mfa, created_at, last_used_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $5, $6)";
const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens \
     (token_hash, session_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
const PRESENTED: &str = concat!(
    "SELECT r.expires_at AS token_expires_at, ",
    session_columns!(),
    " FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1"
);
/// Only one of two concurrent presentations of the same token wins.
const MARK_USED: &str =
    "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL";
const TOUCH_SESSION: &str = "UPDATE sessions SET last_used_at = $2 WHERE id = $1";
const REVOKE_SESSION: &str = "UPDATE sessions SET revoked_at = $3, revoked_reason = $4 \
     WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL";
const REVOKE_ALL_SESSIONS: &str = "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 \
     WHERE user_id = $1 AND revoked_at IS NULL RETURNING id";
const SESSIONS: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions s WHERE s.user_id = $1 ORDER BY s.created_at"
);
const SESSION_REVOKED: &str =
    "SELECT (revoked_at IS NOT NULL) AS revoked FROM sessions WHERE id = $1 AND user_id = $2";
const INSERT_DEVICE: &str = "INSERT INTO trusted_devices \
     (token_hash, user_id, created_at, last_used_at, expires_at) VALUES ($1, $2, $3, $3, $4)";
const TOUCH_DEVICE: &str = "UPDATE trusted_devices SET last_used_at = $3 \
     WHERE token_hash = $1 AND user_id = $2 AND expires_at > $3";
const THROTTLE: &str = "SELECT failures, lockouts, locked_until, updated_at FROM login_throttle \
     WHERE user_id = $1 AND scope = $2";
const UPSERT_THROTTLE: &str = "INSERT INTO login_throttle \
     (user_id, scope, failures, lockouts, locked_until, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (user_id, scope) DO UPDATE SET failures = excluded.failures, \
     lockouts = excluded.lockouts, locked_until = excluded.locked_until, \
     updated_at = excluded.updated_at";
const CLEAR_THROTTLE: &str = "DELETE FROM login_throttle WHERE user_id = $1 AND scope = $2";

impl Store {
    /// Stores a new session and its first refresh token.
    #[tracing::instrument(skip_all)]
    pub async fn create_session(&self, new: &NewSession, now: DateTime<Utc>) -> Result<()> {
        with_user!(self, new.user_id, atomic conn => {
            sqlx::query(INSERT_SESSION)
                .bind(new.id)
                .bind(new.user_id.0)
                .bind(new.auth_time)
                .bind(new.mfa)
                .bind(now)
                .bind(new.expires_at)
                .execute(&mut *conn)
                .await
                .map_err(write_error)?;
            sqlx::query(INSERT_REFRESH)
                .bind(&new.refresh_hash)
                .bind(new.id)
                .bind(new.user_id.0)
                .bind(now)
                .bind(new.refresh_expires_at)
                .execute(&mut *conn)
                .await
                .map_err(write_error)?;
        });
        Ok(())
    }

    /// Uses the refresh token whose hash is `presented` and stores its successor
    /// (`next_hash`, valid until `next_expires_at` or the session's end, whichever is first).
    #[tracing::instrument(skip_all)]
    pub async fn rotate_refresh_token(
        &self,
        presented: &str,
        next_hash: &str,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Rotation> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Write first: on SQLite a transaction that reads and then writes can fail when a
            // write committed in between; one that starts by writing waits its turn instead.
            // Of two concurrent uses of one token, the second marks nothing: reuse.
            let marked = sqlx::query(MARK_USED)
                .bind(presented)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let row = sqlx::query_as::<_, PresentedRow>(PRESENTED)
                .bind(presented)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(Rotation::Invalid);
            };
            let session = Session::from(row.session);
            if marked == 0 {
                sqlx::query(REVOKE_SESSION)
                    .bind(session.id)
                    .bind(session.user_id.0)
                    .bind(now)
                    .bind("reuse")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Ok(Rotation::Reused {
                    user_id: session.user_id,
                    session_id: session.id,
                });
            }
            if session.revoked_at.is_some()
                || session.expires_at <= now
                || row.token_expires_at <= now
            {
                // Rolled back on return: nothing changes for an ended session.
                return Ok(Rotation::Invalid);
            }
            sqlx::query(INSERT_REFRESH)
                .bind(next_hash)
                .bind(session.id)
                .bind(session.user_id.0)
                .bind(now)
                .bind(next_expires_at.min(session.expires_at))
                .execute(&mut *tx)
                .await
                .map_err(write_error)?;
            sqlx::query(TOUCH_SESSION).bind(session.id).bind(now).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(Rotation::Rotated(Session { last_used_at: now, ..session }))
        })
    }

    /// Ends one session of the user; `NotFound` when it is not theirs or already ended.
    #[tracing::instrument(skip_all)]
    pub async fn revoke_session(
        &self,
        user: UserId,
        session: Uuid,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let changed = with_user!(self, user, conn => {
            sqlx::query(REVOKE_SESSION)
                .bind(session)
                .bind(user.0)
                .bind(now)
                .bind(reason)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Ends every session of the user; returns the ids of those that were open.
    #[tracing::instrument(skip_all)]
    pub async fn revoke_all_sessions(
        &self,
        user: UserId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = with_user!(self, user, conn => {
            sqlx::query_as(REVOKE_ALL_SESSIONS)
                .bind(user.0)
                .bind(now)
                .bind(reason)
                .fetch_all(&mut *conn)
                .await?
        });
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    #[tracing::instrument(skip_all)]
    pub async fn sessions(&self, user: UserId) -> Result<Vec<Session>> {
        let rows = with_user!(self, user, conn => {
            sqlx::query_as::<_, SessionRow>(SESSIONS)
                .bind(user.0)
                .fetch_all(&mut *conn)
                .await?
        });
        Ok(rows.into_iter().map(Session::from).collect())
    }

    /// Whether the user's session was revoked; `NotFound` when it, or the user, is gone.
    #[tracing::instrument(skip_all)]
    pub async fn session_revoked(&self, user: UserId, session: Uuid) -> Result<bool> {
        let row: Option<(bool,)> = with_user!(self, user, conn => {
            sqlx::query_as(SESSION_REVOKED)
                .bind(session)
                .bind(user.0)
                .fetch_optional(&mut *conn)
                .await?
        });
        Ok(row.ok_or(StoreError::NotFound)?.0)
    }

    /// Remembers a device the user signed in from.
    #[tracing::instrument(skip_all)]
    pub async fn trust_device(
        &self,
        user: UserId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        with_user!(self, user, conn => {
            sqlx::query(INSERT_DEVICE)
                .bind(token_hash)
                .bind(user.0)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *conn)
                .await
                .map_err(write_error)?;
        });
        Ok(())
    }

    /// True when `token_hash` is a current trusted device of the user.
    #[tracing::instrument(skip_all)]
    pub async fn is_trusted_device(
        &self,
        user: UserId,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let changed = with_user!(self, user, conn => {
            sqlx::query(TOUCH_DEVICE)
                .bind(token_hash)
                .bind(user.0)
                .bind(now)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        Ok(changed == 1)
    }

    /// The failed sign-in counter of one scope (zero when none is stored).
    #[tracing::instrument(skip_all)]
    pub async fn login_throttle(&self, user: UserId, scope: &str) -> Result<Throttle> {
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, ThrottleRow>(THROTTLE)
                .bind(user.0)
                .bind(scope)
                .fetch_optional(&mut *conn)
                .await?
        });
        Ok(row.map(Throttle::from).unwrap_or_default())
    }

    #[tracing::instrument(skip_all)]
    pub async fn set_login_throttle(
        &self,
        user: UserId,
        scope: &str,
        throttle: &Throttle,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        with_user!(self, user, conn => {
            sqlx::query(UPSERT_THROTTLE)
                .bind(user.0)
                .bind(scope)
                .bind(count(throttle.failures))
                .bind(count(throttle.lockouts))
                .bind(throttle.locked_until)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(write_error)?;
        });
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    pub async fn clear_login_throttle(&self, user: UserId, scope: &str) -> Result<()> {
        with_user!(self, user, conn => {
            sqlx::query(CLEAR_THROTTLE).bind(user.0).bind(scope).execute(&mut *conn).await?;
        });
        Ok(())
    }
}
