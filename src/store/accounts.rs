//! Accounts: email and password sign-in attached to a user, the second factor, recovery
//! codes, password history, consent, the profile a person edits, and phone verification.
//!
//! A user (`users`) may exist without an account (created by `nudge admin user add` for SMS)
//! and an account's user may exist without a phone (registered on the web). Hashes are made
//! and checked by [`crate::auth`]; this file only stores them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::sql::{parse, write_error};
use super::{Language, Result, Role, Store, StoreError, UserId, with_pool, with_user};

/// A user's sign-in credentials and second factor, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub user_id: UserId,
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub password_changed_at: DateTime<Utc>,
    /// Sealed TOTP secret once enrollment is confirmed.
    pub totp_secret: Option<String>,
    /// Sealed TOTP secret while enrollment awaits confirmation.
    pub totp_pending: Option<String>,
    /// The last TOTP step accepted (replay guard).
    pub totp_last_step: Option<i64>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

impl Account {
    pub fn mfa_enabled(&self) -> bool {
        self.totp_secret.is_some()
    }
}

/// What registration gives.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub display_name: String,
    /// Already normalized (trimmed, lower case).
    pub email: String,
    pub password_hash: String,
    pub language: Language,
    pub time_zone: String,
    /// What the person agreed to at registration: (purpose, version).
    pub consents: Vec<(String, String)>,
}

/// The settings a person edits about themselves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub user_id: UserId,
    pub display_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub language: Language,
    pub time_zone: String,
    /// Minutes after local midnight; both set or both unset.
    pub quiet_start: Option<u16>,
    pub quiet_end: Option<u16>,
    /// The morning digest is on (opt-in).
    pub digest_enabled: bool,
    /// When the digest goes out, minutes after local midnight (default 08:00).
    pub digest_minute: u16,
    pub role: Role,
    pub mfa_enabled: bool,
    pub created_at: DateTime<Utc>,
}

/// A change to a profile; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    pub display_name: Option<String>,
    pub language: Option<Language>,
    pub time_zone: Option<String>,
    /// `Some(None)` clears quiet hours.
    pub quiet_hours: Option<Option<(u16, u16)>>,
    /// Turns the morning digest on or off.
    pub digest: Option<bool>,
    /// The digest's time, minutes after local midnight.
    pub digest_minute: Option<u16>,
}

/// One consent given (and maybe revoked).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Consent {
    pub id: i64,
    pub purpose: String,
    pub version: String,
    pub granted_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Why a phone code is being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationPurpose {
    /// Add a phone to a web account.
    Link,
    /// Add an email and password to an SMS user who proves the phone.
    Claim,
}

impl VerificationPurpose {
    fn as_str(self) -> &'static str {
        match self {
            VerificationPurpose::Link => "link",
            VerificationPurpose::Claim => "claim",
        }
    }
}

/// A pending phone verification.
#[derive(Debug, Clone, PartialEq)]
pub struct PhoneVerification {
    pub user_id: UserId,
    pub phone: String,
    pub purpose: VerificationPurpose,
    pub code_hash: String,
    pub attempts: u32,
    pub expires_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    user_id: Uuid,
    email: String,
    password_hash: String,
    password_changed_at: DateTime<Utc>,
    totp_secret: Option<String>,
    totp_pending: Option<String>,
    totp_last_step: Option<i64>,
    role: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    fn try_from(row: AccountRow) -> Result<Self> {
        Ok(Account {
            user_id: UserId(row.user_id),
            email: row.email,
            password_hash: row.password_hash,
            password_changed_at: row.password_changed_at,
            totp_secret: row.totp_secret,
            totp_pending: row.totp_pending,
            totp_last_step: row.totp_last_step,
            role: parse("users.role", &row.role)?,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ProfileRow {
    id: Uuid,
    display_name: String,
    email: Option<String>,
    phone: Option<String>,
    language: String,
    time_zone: String,
    quiet_start: Option<i32>,
    quiet_end: Option<i32>,
    digest_enabled: bool,
    digest_minute: i32,
    role: String,
    mfa: bool,
    created_at: DateTime<Utc>,
}

impl TryFrom<ProfileRow> for Profile {
    type Error = StoreError;
    fn try_from(row: ProfileRow) -> Result<Self> {
        let minutes = |v: Option<i32>| {
            v.map(|m| u16::try_from(m).map_err(|_| StoreError::Corrupt(format!("quiet hours {m}"))))
                .transpose()
        };
        Ok(Profile {
            user_id: UserId(row.id),
            display_name: row.display_name,
            email: row.email,
            phone: row.phone,
            language: parse("users.language", &row.language)?,
            time_zone: row.time_zone,
            quiet_start: minutes(row.quiet_start)?,
            quiet_end: minutes(row.quiet_end)?,
            digest_enabled: row.digest_enabled,
            digest_minute: u16::try_from(row.digest_minute).map_err(|_| {
                StoreError::Corrupt(format!("users.digest_minute {}", row.digest_minute))
            })?,
            role: parse("users.role", &row.role)?,
            mfa_enabled: row.mfa,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ConsentRow {
    id: i64,
    purpose: String,
    version: String,
    granted_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct VerificationRow {
    user_id: Uuid,
    phone: String,
    code_hash: String,
    attempts: i32,
    expires_at: DateTime<Utc>,
}

macro_rules! account_select {
    () => {
        "SELECT a.user_id, a.email, a.password_hash, a.password_changed_at, \
         a.totp_secret, a.totp_pending, a.totp_last_step, u.role, \
         a.created_at FROM accounts a JOIN users u ON u.id = a.user_id"
    };
}

const INSERT_WEB_USER: &str = "INSERT INTO users \
     (id, display_name, phone, language, time_zone, role, sms_opted_out, created_at) \
     VALUES ($1, $2, NULL, $3, $4, 'standard', $5, $6)";
const INSERT_ACCOUNT: &str = "INSERT INTO accounts \
     (user_id, email, password_hash, password_changed_at, created_at) \
     VALUES ($1, $2, $3, $4, $4)";
const INSERT_PASSWORD_HISTORY: &str =
    "INSERT INTO password_history (user_id, password_hash, created_at) VALUES ($1, $2, $3)";
const INSERT_CONSENT: &str =
    "INSERT INTO consents (user_id, purpose, version, granted_at) VALUES ($1, $2, $3, $4)";
const ACCOUNT_BY_EMAIL: &str = concat!(account_select!(), " WHERE a.email = $1");
const ACCOUNT_BY_USER: &str = concat!(account_select!(), " WHERE a.user_id = $1");
const SET_PASSWORD: &str =
    "UPDATE accounts SET password_hash = $2, password_changed_at = $3 WHERE user_id = $1";
/// A re-hash with new parameters changes nothing else.
const REHASH_PASSWORD: &str =
    "UPDATE accounts SET password_hash = $2 WHERE user_id = $1 AND password_hash = $3";
const PASSWORD_HISTORY: &str = "SELECT password_hash FROM password_history \
     WHERE user_id = $1 ORDER BY id DESC LIMIT $2";
const TRIM_PASSWORD_HISTORY: &str = "DELETE FROM password_history WHERE user_id = $1 AND id NOT IN \
     (SELECT id FROM password_history WHERE user_id = $1 ORDER BY id DESC LIMIT $2)";
const SET_TOTP_PENDING: &str = "UPDATE accounts SET totp_pending = $2 WHERE user_id = $1";
const CONFIRM_TOTP: &str = "UPDATE accounts SET totp_secret = $3, totp_pending = NULL, \
     totp_last_step = $2 WHERE user_id = $1 AND totp_pending = $4";
const DISABLE_TOTP: &str = "UPDATE accounts SET totp_secret = NULL, totp_pending = NULL, \
     totp_last_step = NULL WHERE user_id = $1";
/// Accepts a step only if it is newer than the last one: two concurrent sign-ins with the
/// same code cannot both pass.
const ADVANCE_TOTP_STEP: &str = "UPDATE accounts SET totp_last_step = $2 \
     WHERE user_id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)";
const DELETE_RECOVERY_CODES: &str = "DELETE FROM recovery_codes WHERE user_id = $1";
const INSERT_RECOVERY_CODE: &str =
    "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)";
const USE_RECOVERY_CODE: &str = "UPDATE recovery_codes SET used_at = $3 \
     WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL";
const PROFILE: &str = "SELECT u.id, u.display_name, a.email, u.phone, u.language, u.time_zone, \
     u.quiet_start, u.quiet_end, u.digest_enabled, u.digest_minute, u.role, (a.totp_secret IS NOT NULL AND a.totp_secret <> '') AS mfa, \
     u.created_at FROM users u LEFT JOIN accounts a ON a.user_id = u.id WHERE u.id = $1";
const UPDATE_PROFILE: &str = "UPDATE users SET \
     display_name = COALESCE($2, display_name), language = COALESCE($3, language), \
     time_zone = COALESCE($4, time_zone), \
     quiet_start = CASE WHEN $5 THEN $6 ELSE quiet_start END, \
     quiet_end = CASE WHEN $5 THEN $7 ELSE quiet_end END, \
     digest_enabled = COALESCE($8, digest_enabled), \
     digest_minute = COALESCE($9, digest_minute), \
     digest_next_at = CASE WHEN $10 THEN NULL ELSE digest_next_at END \
     WHERE id = $1";
const CONSENTS: &str = "SELECT id, purpose, version, granted_at, revoked_at FROM consents \
     WHERE user_id = $1 ORDER BY id";
const REVOKE_CONSENT: &str = "UPDATE consents SET revoked_at = $3 \
     WHERE user_id = $1 AND id = $2 AND revoked_at IS NULL";
const SET_ROLE: &str = "UPDATE users SET role = $2 WHERE id = $1";
const UPSERT_VERIFICATION: &str = "INSERT INTO phone_verifications \
     (user_id, phone, purpose, code_hash, attempts, expires_at, created_at) \
     VALUES ($1, $2, $3, $4, 0, $5, $6) \
     ON CONFLICT (user_id) DO UPDATE SET phone = excluded.phone, purpose = excluded.purpose, \
     code_hash = excluded.code_hash, attempts = 0, expires_at = excluded.expires_at, \
     created_at = excluded.created_at";
const VERIFICATION: &str = "SELECT user_id, phone, code_hash, attempts, expires_at \
     FROM phone_verifications WHERE user_id = $1 AND purpose = $2";
const COUNT_VERIFICATION_ATTEMPT: &str =
    "UPDATE phone_verifications SET attempts = attempts + 1 WHERE user_id = $1";
const DELETE_VERIFICATION: &str = "DELETE FROM phone_verifications WHERE user_id = $1";
const SET_PHONE: &str = "UPDATE users SET phone = $2 WHERE id = $1";
const USER_BY_PHONE: &str = "SELECT u.id, (a.user_id IS NOT NULL) AS has_account \
     FROM users u LEFT JOIN accounts a ON a.user_id = u.id WHERE u.phone = $1";

impl Store {
    /// Creates a user without a phone and their account, with the consents given, in one
    /// transaction. A taken email is `Conflict("email")`.
    #[tracing::instrument(skip_all)]
    pub async fn create_account(&self, new: &NewAccount, now: DateTime<Utc>) -> Result<UserId> {
        let id = UserId::new();
        self.store_account(
            Some(new),
            id,
            &new.email,
            &new.password_hash,
            &new.consents,
            now,
        )
        .await?;
        Ok(id)
    }

    /// Adds an account to an existing user (an SMS user claiming their data on the web),
    /// with the consents given. `Conflict("email")` when the email is taken,
    /// `Conflict("account")` when the user already has one.
    #[tracing::instrument(skip_all)]
    pub async fn attach_account(
        &self,
        user: UserId,
        email: &str,
        password_hash: &str,
        consents: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        if self.account(user).await.is_ok() {
            return Err(StoreError::Conflict("account".into()));
        }
        self.store_account(None, user, email, password_hash, consents, now)
            .await
    }

    /// Inserts (when `web_user` is given) the user, then the account, its first password
    /// history entry and the consents, in one transaction.
    async fn store_account(
        &self,
        web_user: Option<&NewAccount>,
        id: UserId,
        email: &str,
        password_hash: &str,
        consents: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        with_user!(self, id, atomic conn => {
            if let Some(new) = web_user {
                sqlx::query(INSERT_WEB_USER)
                    .bind(id.0)
                    .bind(&new.display_name)
                    .bind(new.language.as_str())
                    .bind(&new.time_zone)
                    .bind(false)
                    .bind(now)
                    .execute(&mut *conn)
                    .await
                    .map_err(write_error)?;
            }
            sqlx::query(INSERT_ACCOUNT)
                .bind(id.0)
                .bind(email)
                .bind(password_hash)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(write_error)?;
            sqlx::query(INSERT_PASSWORD_HISTORY)
                .bind(id.0)
                .bind(password_hash)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(write_error)?;
            for (purpose, version) in consents {
                sqlx::query(INSERT_CONSENT)
                    .bind(id.0)
                    .bind(purpose)
                    .bind(version)
                    .bind(now)
                    .execute(&mut *conn)
                    .await
                    .map_err(write_error)?;
            }
        });
        Ok(())
    }

    /// The account signing in with `email` (already normalized).
    #[tracing::instrument(skip_all)]
    pub async fn account_by_email(&self, email: &str) -> Result<Account> {
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, AccountRow>(ACCOUNT_BY_EMAIL)
                .bind(email)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    #[tracing::instrument(skip_all)]
    pub async fn account(&self, user: UserId) -> Result<Account> {
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, AccountRow>(ACCOUNT_BY_USER)
                .bind(user.0)
                .fetch_optional(&mut *conn)
                .await?
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Sets a new password and records it in the history, keeping the last `keep` entries.
    #[tracing::instrument(skip_all)]
    pub async fn set_password(
        &self,
        user: UserId,
        password_hash: &str,
        keep: u32,
        now: DateTime<Utc>,
    ) -> Result<()> {
        with_user!(self, user, atomic conn => {
            let changed = sqlx::query(SET_PASSWORD)
                .bind(user.0)
                .bind(password_hash)
                .bind(now)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query(INSERT_PASSWORD_HISTORY)
                .bind(user.0)
                .bind(password_hash)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            sqlx::query(TRIM_PASSWORD_HISTORY)
                .bind(user.0)
                .bind(i64::from(keep))
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }

    /// Replaces a hash by one of the same password made with new parameters, unless the
    /// password changed meanwhile.
    #[tracing::instrument(skip_all)]
    pub async fn rehash_password(
        &self,
        user: UserId,
        old_hash: &str,
        new_hash: &str,
    ) -> Result<()> {
        with_user!(self, user, conn => {
            sqlx::query(REHASH_PASSWORD)
                .bind(user.0)
                .bind(new_hash)
                .bind(old_hash)
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }

    /// The last `limit` password hashes, newest first (the current one included).
    #[tracing::instrument(skip_all)]
    pub async fn password_history(&self, user: UserId, limit: u32) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = with_user!(self, user, conn => {
            sqlx::query_as(PASSWORD_HISTORY)
                .bind(user.0)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?
        });
        Ok(rows.into_iter().map(|(h,)| h).collect())
    }

    /// Stores a sealed TOTP secret awaiting confirmation.
    #[tracing::instrument(skip_all)]
    pub async fn set_totp_pending(&self, user: UserId, sealed: &str) -> Result<()> {
        self.account_update(SET_TOTP_PENDING, user, Some(sealed))
            .await
    }

    /// Turns the pending secret (`pending`, as read) on as `sealed_secret` (the same secret
    /// sealed for the `totp_secret` column), with the step of the code that confirmed it, and
    /// replaces the recovery codes by `code_hashes`. `NotFound` when the pending secret changed.
    #[tracing::instrument(skip_all)]
    pub async fn confirm_totp(
        &self,
        user: UserId,
        pending: &str,
        sealed_secret: &str,
        step: i64,
        code_hashes: &[String],
        now: DateTime<Utc>,
    ) -> Result<()> {
        with_user!(self, user, atomic conn => {
            let changed = sqlx::query(CONFIRM_TOTP)
                .bind(user.0)
                .bind(step)
                .bind(sealed_secret)
                .bind(pending)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query(DELETE_RECOVERY_CODES).bind(user.0).execute(&mut *conn).await?;
            for hash in code_hashes {
                sqlx::query(INSERT_RECOVERY_CODE)
                    .bind(user.0)
                    .bind(hash)
                    .bind(now)
                    .execute(&mut *conn)
                    .await
                    .map_err(write_error)?;
            }
        });
        Ok(())
    }

    /// Turns the second factor off and drops the recovery codes.
    #[tracing::instrument(skip_all)]
    pub async fn disable_totp(&self, user: UserId) -> Result<()> {
        with_user!(self, user, atomic conn => {
            sqlx::query(DISABLE_TOTP).bind(user.0).execute(&mut *conn).await?;
            sqlx::query(DELETE_RECOVERY_CODES).bind(user.0).execute(&mut *conn).await?;
        });
        Ok(())
    }

    /// Records that the TOTP `step` was used; false when it (or a later one) already was.
    #[tracing::instrument(skip_all)]
    pub async fn advance_totp_step(&self, user: UserId, step: i64) -> Result<bool> {
        let changed = with_user!(self, user, conn => {
            sqlx::query(ADVANCE_TOTP_STEP)
                .bind(user.0)
                .bind(step)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        Ok(changed == 1)
    }

    /// Spends a recovery code; false when it is not one of the user's unused codes.
    #[tracing::instrument(skip_all)]
    pub async fn use_recovery_code(
        &self,
        user: UserId,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let changed = with_user!(self, user, conn => {
            sqlx::query(USE_RECOVERY_CODE)
                .bind(user.0)
                .bind(code_hash)
                .bind(now)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        Ok(changed == 1)
    }

    #[tracing::instrument(skip_all)]
    pub async fn profile(&self, user: UserId) -> Result<Profile> {
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, ProfileRow>(PROFILE)
                .bind(user.0)
                .fetch_optional(&mut *conn)
                .await?
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    #[tracing::instrument(skip_all)]
    pub async fn update_profile(&self, user: UserId, change: &ProfileChange) -> Result<Profile> {
        let (set_quiet, start, end) = match change.quiet_hours {
            None => (false, None, None),
            Some(None) => (true, None, None),
            Some(Some((s, e))) => (true, Some(i32::from(s)), Some(i32::from(e))),
        };
        // A new setting, time or zone: the next digest is placed again.
        let replace_digest =
            change.digest.is_some() || change.digest_minute.is_some() || change.time_zone.is_some();
        let changed = with_user!(self, user, conn => {
            sqlx::query(UPDATE_PROFILE)
                .bind(user.0)
                .bind(change.display_name.as_deref())
                .bind(change.language.map(Language::as_str))
                .bind(change.time_zone.as_deref())
                .bind(set_quiet)
                .bind(start)
                .bind(end)
                .bind(change.digest)
                .bind(change.digest_minute.map(i32::from))
                .bind(replace_digest)
                .execute(&mut *conn)
                .await
                .map_err(write_error)?
                .rows_affected()
        });
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        if replace_digest {
            // The scheduler places the next digest by its own clock, at once.
            self.reminder_written();
        }
        self.profile(user).await
    }

    #[tracing::instrument(skip_all)]
    pub async fn consents(&self, user: UserId) -> Result<Vec<Consent>> {
        let rows = with_user!(self, user, conn => {
            sqlx::query_as::<_, ConsentRow>(CONSENTS)
                .bind(user.0)
                .fetch_all(&mut *conn)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| Consent {
                id: r.id,
                purpose: r.purpose,
                version: r.version,
                granted_at: r.granted_at,
                revoked_at: r.revoked_at,
            })
            .collect())
    }

    /// Records a consent given now.
    #[tracing::instrument(skip_all)]
    pub async fn grant_consent(
        &self,
        user: UserId,
        purpose: &str,
        version: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        with_user!(self, user, conn => {
            sqlx::query(INSERT_CONSENT)
                .bind(user.0)
                .bind(purpose)
                .bind(version)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(write_error)?;
        });
        Ok(())
    }

    /// Revokes a consent; `NotFound` when it is not the user's or already revoked.
    #[tracing::instrument(skip_all)]
    pub async fn revoke_consent(&self, user: UserId, id: i64, now: DateTime<Utc>) -> Result<()> {
        let changed = with_user!(self, user, conn => {
            sqlx::query(REVOKE_CONSENT)
                .bind(user.0)
                .bind(id)
                .bind(now)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Changes a user's role (operators only: `nudge admin user role`).
    #[tracing::instrument(skip_all)]
    pub async fn set_role(&self, user: UserId, role: Role) -> Result<()> {
        let changed = with_user!(self, user, conn => {
            sqlx::query(SET_ROLE)
                .bind(user.0)
                .bind(role.as_str())
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Starts (or restarts, resetting attempts) a phone verification for the user.
    #[tracing::instrument(skip_all)]
    pub async fn start_phone_verification(
        &self,
        user: UserId,
        phone: &str,
        purpose: VerificationPurpose,
        code_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        with_user!(self, user, conn => {
            sqlx::query(UPSERT_VERIFICATION)
                .bind(user.0)
                .bind(phone)
                .bind(purpose.as_str())
                .bind(code_hash)
                .bind(expires_at)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(write_error)?;
        });
        Ok(())
    }

    /// The user's pending verification for `purpose`, counting this look as an attempt.
    #[tracing::instrument(skip_all)]
    pub async fn attempt_phone_verification(
        &self,
        user: UserId,
        purpose: VerificationPurpose,
    ) -> Result<PhoneVerification> {
        let row = with_user!(self, user, atomic conn => {
            sqlx::query(COUNT_VERIFICATION_ATTEMPT).bind(user.0).execute(&mut *conn).await?;
            sqlx::query_as::<_, VerificationRow>(VERIFICATION)
                .bind(user.0)
                .bind(purpose.as_str())
                .fetch_optional(&mut *conn)
                .await?
        });
        let row = row.ok_or(StoreError::NotFound)?;
        Ok(PhoneVerification {
            user_id: UserId(row.user_id),
            phone: row.phone,
            purpose,
            code_hash: row.code_hash,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            expires_at: row.expires_at,
        })
    }

    #[tracing::instrument(skip_all)]
    pub async fn end_phone_verification(&self, user: UserId) -> Result<()> {
        with_user!(self, user, conn => {
            sqlx::query(DELETE_VERIFICATION).bind(user.0).execute(&mut *conn).await?;
        });
        Ok(())
    }

    /// Links a verified phone to the user; `Conflict("phone")` when another user has it.
    #[tracing::instrument(skip_all)]
    pub async fn set_phone(&self, user: UserId, phone: &str) -> Result<()> {
        with_user!(self, user, atomic conn => {
            let changed = sqlx::query(SET_PHONE)
                .bind(user.0)
                .bind(phone)
                .execute(&mut *conn)
                .await
                .map_err(write_error)?
                .rows_affected();
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query(DELETE_VERIFICATION).bind(user.0).execute(&mut *conn).await?;
        });
        Ok(())
    }

    /// The user whose own phone is `phone`, and whether they have an account.
    #[tracing::instrument(skip_all)]
    pub async fn user_by_phone(&self, phone: &str) -> Result<(UserId, bool)> {
        let row: Option<(Uuid, bool)> = with_pool!(self, pool => {
            sqlx::query_as(USER_BY_PHONE)
                .bind(phone)
                .fetch_optional(pool)
                .await?
        });
        row.map(|(id, has)| (UserId(id), has))
            .ok_or(StoreError::NotFound)
    }

    async fn account_update(
        &self,
        statement: &'static str,
        user: UserId,
        value: Option<&str>,
    ) -> Result<()> {
        let changed = with_user!(self, user, conn => {
            sqlx::query(statement)
                .bind(user.0)
                .bind(value)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
