//! The morning digest's schedule and firings: the durable half of "one digest a day, once".
//!
//! Like reminder firings ([`super::firings`]): the scheduler finds users whose digest is due
//! ([`Store::due_digests`], on the partial index of users who opted in), and
//! [`Store::claim_digest`] in one transaction moves `digest_next_at` on and inserts the firing
//! keyed by (user, local date) as 'sending'. Only one claim per local date can win, so a
//! restart, a second scheduler or a changed digest time never sends a day's digest twice.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::sql::{now, write_error};
use super::{FiringStatus, Result, Store, StoreError, UserId, with_pool};

/// A user whose digest is due (or whose next digest instant is still to be computed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDigest {
    pub user_id: UserId,
    /// The IANA zone the digest time is read in.
    pub time_zone: String,
    /// Minutes after local midnight.
    pub minute: u16,
    /// The instant it is due; `None` when a change asked the scheduler to compute it.
    pub next_at: Option<DateTime<Utc>>,
}

/// A digest claimed for a local date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestFiring {
    pub id: i64,
    pub user_id: UserId,
    /// The user's local date it is for.
    pub local_date: NaiveDate,
    /// The text, as composed at the claim (empty when there was nothing to say).
    pub body: String,
    /// When it was claimed: a send for it cannot have reached Twilio before.
    pub claimed_at: DateTime<Utc>,
}

/// Where a digest's text is sealed.
const BODY_PLACE: &str = "digest_firings.body";

#[derive(sqlx::FromRow)]
struct DueRow {
    id: Uuid,
    time_zone: String,
    digest_minute: i32,
    digest_next_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct FiringRow {
    id: i64,
    user_id: Uuid,
    local_date: String,
    body: String,
    claimed_at: DateTime<Utc>,
}

const DUE: &str = "SELECT id, time_zone, digest_minute, digest_next_at FROM users \
     WHERE digest_enabled AND (digest_next_at IS NULL OR digest_next_at <= $1) \
     ORDER BY digest_next_at LIMIT $2";
const SET_NEXT: &str = "UPDATE users SET digest_next_at = $2 \
     WHERE id = $1 AND digest_enabled AND digest_next_at IS NULL";
const ADVANCE: &str = "UPDATE users SET digest_next_at = $3 \
     WHERE id = $1 AND digest_enabled AND digest_next_at = $2";
const INSERT_FIRING: &str = "INSERT INTO digest_firings \
     (user_id, local_date, body, status, claimed_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (user_id, local_date) DO NOTHING RETURNING id";
const FINISH: &str =
    "UPDATE digest_firings SET status = $2, sent_at = $3 WHERE id = $1 AND status = 'sending'";
const UNSENT: &str = "SELECT id, user_id, local_date, body, claimed_at FROM digest_firings \
     WHERE status = 'sending' ORDER BY id";

impl Store {
    /// Users whose digest is due by `until`, or whose next digest is to be computed, at most
    /// `limit`.
    #[tracing::instrument(skip_all)]
    pub async fn due_digests(&self, until: DateTime<Utc>, limit: u32) -> Result<Vec<DueDigest>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, DueRow>(DUE)
                .bind(until)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|row| {
                Ok(DueDigest {
                    user_id: UserId(row.id),
                    time_zone: row.time_zone,
                    minute: u16::try_from(row.digest_minute).map_err(|_| {
                        StoreError::Corrupt(format!("users.digest_minute {}", row.digest_minute))
                    })?,
                    next_at: row.digest_next_at,
                })
            })
            .collect()
    }

    /// Sets the next digest instant of a user whose digest is on and not yet placed.
    #[tracing::instrument(skip_all)]
    pub async fn place_digest(&self, user: UserId, at: DateTime<Utc>) -> Result<bool> {
        let moved = with_pool!(self, pool => {
            sqlx::query(SET_NEXT)
                .bind(user.0)
                .bind(at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(moved == 1)
    }

    /// Claims the digest due at `due` for `local_date` with its text `body` (sealed): in one
    /// transaction, moves the user's next digest to `next` and records the firing as
    /// 'sending'. `None` when the digest is no longer due at `due` (turned off, moved, claimed
    /// elsewhere) or that date's digest was claimed already: nothing is to be sent then.
    #[tracing::instrument(skip_all)]
    pub async fn claim_digest(
        &self,
        user: UserId,
        due: DateTime<Utc>,
        next: DateTime<Utc>,
        local_date: NaiveDate,
        body: &str,
    ) -> Result<Option<DigestFiring>> {
        let sealed = self.seal_column(BODY_PLACE, user, body);
        let claimed_at = now();
        let id: Option<i64> = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let moved = sqlx::query(ADVANCE)
                .bind(user.0)
                .bind(due)
                .bind(next)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if moved == 0 {
                return Ok(None);
            }
            let id: Option<i64> = sqlx::query_scalar(INSERT_FIRING)
                .bind(user.0)
                .bind(local_date.to_string())
                .bind(&sealed)
                .bind(FiringStatus::Sending.as_str())
                .bind(claimed_at)
                .fetch_optional(&mut *tx)
                .await
                .map_err(write_error)?;
            tx.commit().await?;
            id
        });
        Ok(id.map(|id| DigestFiring {
            id,
            user_id: user,
            local_date,
            body: body.to_owned(),
            claimed_at,
        }))
    }

    /// Marks a 'sending' digest `Sent` or `Skipped`; `false` when it was already marked.
    #[tracing::instrument(skip_all)]
    pub async fn finish_digest(&self, id: i64, status: FiringStatus) -> Result<bool> {
        self.finish_claimed(FINISH, id, status).await
    }

    /// Digests claimed but never marked (a process stopped mid-send, or a failed send).
    #[tracing::instrument(skip_all)]
    pub async fn unsent_digests(&self) -> Result<Vec<DigestFiring>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, FiringRow>(UNSENT).fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|row| {
                let user = UserId(row.user_id);
                Ok(DigestFiring {
                    id: row.id,
                    user_id: user,
                    local_date: row.local_date.parse().map_err(|_| {
                        StoreError::Corrupt(format!("digest_firings.local_date {}", row.local_date))
                    })?,
                    body: self.open_column(BODY_PLACE, user, &row.body)?,
                    claimed_at: row.claimed_at,
                })
            })
            .collect()
    }
}
