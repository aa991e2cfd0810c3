//! `/api/v1/auth/…`: register, sign in, refresh, sign out (here or everywhere), change the
//! password, and claim an SMS user's data with an email and password.
//!
//! Every route here spends the client address's `auth` budget (`NUDGE_RATE_AUTH_PER_MIN`),
//! and every outcome that matters to security is audited.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AuthUser, ClientIp, Json};
use crate::auth::password::{self, PolicyError};
use crate::auth::throttle::{self, ACCOUNT_FAILURES, CLIENT_FAILURES};
use crate::auth::tokens::{AccessClaims, random_token, token_hash};
use crate::auth::totp;
use crate::edges::{ApiError, AppState};
use crate::store::{
    Account, Language, NewAccount, NewAuditEvent, NewSession, Outcome, Role, Rotation, StoreError,
    UserId, VerificationPurpose, seal,
};

/// The version of the terms and privacy policy a registration agrees to.
pub const POLICY_VERSION: &str = "2026-11";
/// What a registration records consent to.
const CONSENT_PURPOSES: [&str; 2] = ["terms_of_service", "privacy_policy"];
/// How many previous passwords a new one may not repeat.
pub const PASSWORD_HISTORY: u32 = 5;
/// How long a trusted-device token lasts.
const DEVICE_DAYS: i64 = 180;
/// How long an SMS code is valid, and how many tries it allows.
pub const CODE_TTL: chrono::Duration = chrono::Duration::minutes(10);
pub const CODE_ATTEMPTS: u32 = 5;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/logout-all", post(logout_all))
        .route("/api/v1/auth/password", post(change_password))
        .route("/api/v1/auth/claim", post(claim))
        .route("/api/v1/auth/claim/confirm", post(claim_confirm))
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub email: String,
    /// At least 12 characters; common passwords are refused.
    pub password: String,
    /// How Nudge addresses the person.
    pub name: String,
    /// `en` (default) or `fr`.
    pub lang: Option<String>,
    /// IANA time zone (default UTC).
    pub tz: Option<String>,
    /// Agreement to the terms of service and privacy policy; must be true.
    pub accept_terms: bool,
}

/// Sign-in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// A TOTP code or a recovery code, when the account has a second factor.
    pub totp: Option<String>,
    /// The `device_token` a previous sign-in on this device returned.
    pub device_token: Option<String>,
}

/// Tokens of a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Short-lived signed token for `Authorization: Bearer`.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque, single use: trade it at `/api/v1/auth/refresh` for new tokens.
    pub refresh_token: String,
    /// Keep it and send it with later sign-ins: failed sign-ins by others never lock this
    /// device out. Present when a new one was issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    /// The password is past its maximum age: only changing it is allowed.
    pub password_expired: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Ask for a code by SMS to the phone of an SMS user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The person's own phone, E.164.
    pub phone: String,
}

/// Prove the phone with the code and set an email and password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimConfirmRequest {
    pub phone: String,
    pub code: String,
    pub email: String,
    pub password: String,
    pub accept_terms: bool,
}

/// Creates an account and signs it in.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses((status = 201, body = TokenResponse), (status = 400), (status = 409), (status = 429)))]
async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(request): Json<RegisterRequest>,
) -> Result<Response, ApiError> {
    let security = &state.security;
    security
        .limit(&format!("auth:{ip}"), security.limits.auth_per_min)
        .await?;
    let email = normalize_email(&request.email)?;
    let name = display_name(&request.name)?;
    let language = match request.lang.as_deref() {
        None => Language::En,
        Some(text) => language(text)?,
    };
    let time_zone = match request.tz.as_deref() {
        None => "UTC".to_owned(),
        Some(text) => time_zone(text)?,
    };
    if !request.accept_terms {
        return Err(ApiError::bad_request(
            "consent_required",
            "accept_terms must be true to create an account",
        ));
    }
    check_policy(&request.password, Some(&email))?;
    let hash = security.hash_password(request.password).await?;
    let now = security.now();
    let new = NewAccount {
        display_name: name,
        email,
        password_hash: hash,
        language,
        time_zone,
        consents: consents(),
    };
    let user = match state.store.create_account(&new, now).await {
        Ok(user) => user,
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::Conflict {
                code: "email_taken",
                message: "an account with this email exists; sign in instead".into(),
            });
        }
        Err(other) => return Err(other.into()),
    };
    state
        .store
        .audit_quietly(
            NewAuditEvent::own("register", Outcome::Success, user, Some(ip.clone())),
            now,
        )
        .await;
    let tokens = start_session(&state, user, Role::Standard, false, false, true, now).await?;
    Ok((StatusCode::CREATED, axum::Json(tokens)).into_response())
}

/// Signs in with email and password (and a second factor when the account has one).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses((status = 200, body = TokenResponse),
        (status = 401, description = "invalid_credentials or mfa_required"),
        (status = 429, description = "rate_limited or locked (Retry-After)")))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(request): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let security = &state.security;
    security
        .limit(&format!("auth:{ip}"), security.limits.auth_per_min)
        .await?;
    let now = security.now();
    let email = request.email.trim().to_lowercase();
    let account = match state.store.account_by_email(&email).await {
        Ok(account) => account,
        Err(StoreError::NotFound) => {
            // The same work as for a real account, so timing does not tell which emails exist.
            let decoy = security.decoy_hash().await?;
            let _ = security.verify_password(request.password, decoy).await;
            audit(
                &state,
                "login",
                Outcome::Failure,
                None,
                &ip,
                json!({"reason": "unknown_account"}),
                now,
            )
            .await;
            return Err(invalid_credentials());
        }
        Err(other) => return Err(other.into()),
    };
    let user = account.user_id;
    let client_scope = client_scope(&ip);
    let trusted = match request.device_token.as_deref() {
        Some(token) if token.len() <= 128 => {
            state
                .store
                .is_trusted_device(user, &token_hash(token), now)
                .await?
        }
        _ => false,
    };
    let client = state.store.login_throttle(user, &client_scope).await?;
    let whole = state.store.login_throttle(user, "account").await?;
    let lock = throttle::locked_for(&client, now).or_else(|| {
        (!trusted)
            .then(|| throttle::locked_for(&whole, now))
            .flatten()
    });
    if let Some(retry_after) = lock {
        audit(
            &state,
            "login",
            Outcome::Denied,
            Some(user),
            &ip,
            json!({"reason": "locked"}),
            now,
        )
        .await;
        return Err(ApiError::TooManyRequests {
            code: "locked",
            retry_after,
        });
    }

    let checked = security
        .verify_password(request.password.clone(), account.password_hash.clone())
        .await?;
    let second_factor = if checked.ok && account.mfa_enabled() {
        match request.totp.as_deref() {
            None => {
                audit(
                    &state,
                    "login",
                    Outcome::Denied,
                    Some(user),
                    &ip,
                    json!({"reason": "mfa_required"}),
                    now,
                )
                .await;
                return Err(ApiError::unauthorized(
                    "mfa_required",
                    "this account has a second factor: send the code as `totp`",
                ));
            }
            Some(code) => check_second_factor(&state, &account, code, now).await?,
        }
    } else {
        checked.ok
    };
    if !second_factor {
        state
            .store
            .set_login_throttle(
                user,
                &client_scope,
                &throttle::after_failure(client, CLIENT_FAILURES, now),
                now,
            )
            .await?;
        if !trusted {
            state
                .store
                .set_login_throttle(
                    user,
                    "account",
                    &throttle::after_failure(whole, ACCOUNT_FAILURES, now),
                    now,
                )
                .await?;
        }
        let reason = if checked.ok {
            "bad_second_factor"
        } else {
            "bad_password"
        };
        audit(
            &state,
            "login",
            Outcome::Failure,
            Some(user),
            &ip,
            json!({ "reason": reason }),
            now,
        )
        .await;
        return Err(invalid_credentials());
    }

    state
        .store
        .clear_login_throttle(user, &client_scope)
        .await?;
    state.store.clear_login_throttle(user, "account").await?;
    if checked.needs_rehash {
        let upgraded = security.hash_password(request.password).await?;
        state
            .store
            .rehash_password(user, &account.password_hash, &upgraded)
            .await?;
        tracing::info!(%user, "password re-hashed with the configured argon2 parameters");
    }
    let expired = password_expired(&state, &account, now);
    audit(
        &state,
        "login",
        Outcome::Success,
        Some(user),
        &ip,
        json!({ "mfa": account.mfa_enabled() }),
        now,
    )
    .await;
    let tokens = start_session(
        &state,
        user,
        account.role,
        account.mfa_enabled(),
        expired,
        !trusted,
        now,
    )
    .await?;
    Ok(axum::Json(tokens).into_response())
}

/// Trades a refresh token for new tokens. Each refresh token works once; presenting a used
/// one ends its whole session (it was copied).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "invalid_refresh_token or token_reused")))]
async fn refresh(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(request): Json<RefreshRequest>,
) -> Result<Response, ApiError> {
    let security = &state.security;
    security
        .limit(&format!("auth:{ip}"), security.limits.auth_per_min)
        .await?;
    let now = security.now();
    if request.refresh_token.len() > 128 {
        return Err(invalid_refresh());
    }
    let next = random_token();
    let next_expires = now + chrono_duration(security.settings.session_ttl);
    let rotation = state
        .store
        .rotate_refresh_token(
            &token_hash(&request.refresh_token),
            &token_hash(&next),
            next_expires,
            now,
        )
        .await?;
    match rotation {
        Rotation::Rotated(session) => {
            let user = state.store.user(session.user_id).await?;
            let account = state.store.account(session.user_id).await?;
            let expired = password_expired(&state, &account, now);
            let claims = AccessClaims::new(
                session.user_id,
                user.role,
                session.id,
                session.auth_time,
                session.mfa,
                expired,
                now,
                chrono_duration(security.settings.access_ttl),
            );
            Ok(axum::Json(tokens(&state, &claims, next, None)?).into_response())
        }
        Rotation::Reused {
            user_id,
            session_id,
        } => {
            security.revocations.publish(&[session_id]).await;
            audit(
                &state,
                "token_reuse",
                Outcome::Denied,
                Some(user_id),
                &ip,
                json!({ "session": session_id }),
                now,
            )
            .await;
            Err(ApiError::unauthorized(
                "token_reused",
                "this refresh token was already used; the session has been ended, sign in again",
            ))
        }
        Rotation::Invalid => Err(invalid_refresh()),
    }
}

/// Ends the caller's session: its refresh token and access tokens stop working.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401)), security(("bearer" = [])))]
async fn logout(State(state): State<AppState>, auth: AuthUser) -> Result<StatusCode, ApiError> {
    let now = state.security.now();
    match state
        .store
        .revoke_session(auth.user_id, auth.session_id, "logout", now)
        .await
    {
        Ok(()) | Err(StoreError::NotFound) => {}
        Err(other) => return Err(other.into()),
    }
    state.security.revocations.publish(&[auth.session_id]).await;
    audit(
        &state,
        "logout",
        Outcome::Success,
        Some(auth.user_id),
        &auth.ip,
        serde_json::Value::Null,
        now,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of the caller, on every device.
#[utoipa::path(post, path = "/api/v1/auth/logout-all", tag = "auth",
    responses((status = 204), (status = 401)), security(("bearer" = [])))]
async fn logout_all(State(state): State<AppState>, auth: AuthUser) -> Result<StatusCode, ApiError> {
    let now = state.security.now();
    let ended = state
        .store
        .revoke_all_sessions(auth.user_id, "logout_all", now)
        .await?;
    state.security.revocations.publish(&ended).await;
    audit(
        &state,
        "logout_all",
        Outcome::Success,
        Some(auth.user_id),
        &auth.ip,
        json!({ "sessions": ended.len() }),
        now,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the password (the current one is required). Every other session ends.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth",
    request_body = PasswordChangeRequest,
    responses((status = 204), (status = 400), (status = 401)), security(("bearer" = [])))]
async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(request): Json<PasswordChangeRequest>,
) -> Result<StatusCode, ApiError> {
    let security = &state.security;
    security
        .limit(&format!("auth:{}", auth.ip), security.limits.auth_per_min)
        .await?;
    let now = security.now();
    let account = state.store.account(auth.user_id).await?;
    let checked = security
        .verify_password(request.current_password, account.password_hash.clone())
        .await?;
    if !checked.ok {
        audit(
            &state,
            "password_change",
            Outcome::Failure,
            Some(auth.user_id),
            &auth.ip,
            serde_json::Value::Null,
            now,
        )
        .await;
        return Err(ApiError::unauthorized(
            "invalid_credentials",
            "the current password is wrong",
        ));
    }
    check_policy(&request.new_password, Some(&account.email))?;
    for old in state
        .store
        .password_history(auth.user_id, PASSWORD_HISTORY)
        .await?
    {
        if security
            .verify_password(request.new_password.clone(), old)
            .await
            .is_ok_and(|v| v.ok)
        {
            return Err(ApiError::bad_request(
                "password_reused",
                format!(
                    "pick a password you have not used for your last {PASSWORD_HISTORY} passwords"
                ),
            ));
        }
    }
    let hash = security.hash_password(request.new_password).await?;
    state
        .store
        .set_password(auth.user_id, &hash, PASSWORD_HISTORY, now)
        .await?;
    let ended: Vec<Uuid> = state
        .store
        .revoke_all_sessions(auth.user_id, "password_change", now)
        .await?;
    security.revocations.publish(&ended).await;
    audit(
        &state,
        "password_change",
        Outcome::Success,
        Some(auth.user_id),
        &auth.ip,
        json!({ "sessions_ended": ended.len() }),
        now,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a code by SMS to an SMS user's phone, so they can add an email and password.
/// Always answers 202: whether the phone has a Nudge is not told.
#[utoipa::path(post, path = "/api/v1/auth/claim", tag = "auth",
    request_body = ClaimRequest, responses((status = 202), (status = 400), (status = 429)))]
async fn claim(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(request): Json<ClaimRequest>,
) -> Result<Response, ApiError> {
    let security = &state.security;
    security
        .limit(&format!("auth:{ip}"), security.limits.auth_per_min)
        .await?;
    let phone = e164(&request.phone)?;
    // At most a few codes per phone, whoever asks: no SMS bombing through this route.
    security.limit(&format!("code:{phone}"), 3).await?;
    let now = security.now();
    if let Ok((user, false)) = state.store.user_by_phone(&phone).await {
        let user_row = state.store.user(user).await?;
        if let Some(number) = user_row.number.clone() {
            send_code(
                &state,
                user,
                &phone,
                &number,
                VerificationPurpose::Claim,
                user_row.language,
                now,
            )
            .await?;
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "status": "if this phone has a Nudge without an account, a code is on its way" })),
    )
        .into_response())
}

/// Proves the phone with the code and attaches an email and password to its user.
#[utoipa::path(post, path = "/api/v1/auth/claim/confirm", tag = "auth",
    request_body = ClaimConfirmRequest,
    responses((status = 201, body = TokenResponse), (status = 400), (status = 409)))]
async fn claim_confirm(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(request): Json<ClaimConfirmRequest>,
) -> Result<Response, ApiError> {
    let security = &state.security;
    security
        .limit(&format!("auth:{ip}"), security.limits.auth_per_min)
        .await?;
    let phone = e164(&request.phone)?;
    let email = normalize_email(&request.email)?;
    if !request.accept_terms {
        return Err(ApiError::bad_request(
            "consent_required",
            "accept_terms must be true",
        ));
    }
    let now = security.now();
    let user = match state.store.user_by_phone(&phone).await {
        Ok((user, false)) => user,
        _ => return Err(invalid_code()),
    };
    check_code(&state, user, VerificationPurpose::Claim, &request.code, now).await?;
    check_policy(&request.password, Some(&email))?;
    let hash = security.hash_password(request.password).await?;
    match state
        .store
        .attach_account(user, &email, &hash, &consents(), now)
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::Conflict {
                code: "email_taken",
                message: "this email or phone already has an account; sign in instead".into(),
            });
        }
        Err(other) => return Err(other.into()),
    }
    state.store.end_phone_verification(user).await?;
    audit(
        &state,
        "account_claimed",
        Outcome::Success,
        Some(user),
        &ip,
        serde_json::Value::Null,
        now,
    )
    .await;
    let role = state.store.user(user).await?.role;
    let tokens = start_session(&state, user, role, false, false, true, now).await?;
    Ok((StatusCode::CREATED, axum::Json(tokens)).into_response())
}

/// Creates a session and its tokens (and a trusted-device token when asked).
pub(super) async fn start_session(
    state: &AppState,
    user: UserId,
    role: Role,
    mfa: bool,
    password_expired: bool,
    new_device: bool,
    now: DateTime<Utc>,
) -> Result<TokenResponse, ApiError> {
    let security = &state.security;
    let session_id = Uuid::now_v7();
    let refresh = random_token();
    let expires_at = now + chrono_duration(security.settings.session_ttl);
    state
        .store
        .create_session(
            &NewSession {
                id: session_id,
                user_id: user,
                auth_time: now,
                mfa,
                expires_at,
                refresh_hash: token_hash(&refresh),
                refresh_expires_at: expires_at,
            },
            now,
        )
        .await?;
    let device_token = if new_device {
        let token = random_token();
        state
            .store
            .trust_device(
                user,
                &token_hash(&token),
                now + chrono::Duration::days(DEVICE_DAYS),
                now,
            )
            .await?;
        Some(token)
    } else {
        None
    };
    let claims = AccessClaims::new(
        user,
        role,
        session_id,
        now,
        mfa,
        password_expired,
        now,
        chrono_duration(security.settings.access_ttl),
    );
    tokens(state, &claims, refresh, device_token)
}

/// The answer carrying a session's tokens: `claims` signed, with the refresh token.
fn tokens(
    state: &AppState,
    claims: &AccessClaims,
    refresh_token: String,
    device_token: Option<String>,
) -> Result<TokenResponse, ApiError> {
    let security = &state.security;
    let access_token = security
        .keys
        .sign(claims)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(TokenResponse {
        user_id: claims.sub,
        token_type: "Bearer",
        access_token,
        expires_in: security.settings.access_ttl.as_secs(),
        refresh_token,
        device_token,
        password_expired: claims.pwd_expired,
    })
}

/// True when the account's password is older than `NUDGE_PASSWORD_MAX_AGE_DAYS` allows.
fn password_expired(state: &AppState, account: &Account, now: DateTime<Utc>) -> bool {
    state
        .security
        .settings
        .password_max_age
        .and_then(|age| chrono::Duration::from_std(age).ok())
        .is_some_and(|age| account.password_changed_at + age < now)
}

/// Checks a TOTP or recovery code for a sign-in or a sensitive change; true when it passes
/// (and records its use, so it never passes twice).
pub(super) async fn check_second_factor(
    state: &AppState,
    account: &Account,
    code: &str,
    now: DateTime<Utc>,
) -> Result<bool, ApiError> {
    let Some(sealed) = &account.totp_secret else {
        return Ok(false);
    };
    if code.len() > 64 {
        return Ok(false);
    }
    if totp::looks_like_recovery_code(code) {
        let hash = token_hash(&totp::normalize_recovery_code(code));
        return Ok(state
            .store
            .use_recovery_code(account.user_id, &hash, now)
            .await?);
    }
    let secret = state
        .store
        .sealer()
        .open(
            &seal::place("accounts.totp_secret", account.user_id),
            sealed,
        )
        .map_err(|e| ApiError::Internal(format!("TOTP secret: {e}")))?;
    let step = totp::check(&secret, code, now, account.totp_last_step)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    match step {
        Some(step) => Ok(state.store.advance_totp_step(account.user_id, step).await?),
        None => Ok(false),
    }
}

/// Creates and sends a 6-digit code by SMS from `from` to `phone`.
pub(super) async fn send_code(
    state: &AppState,
    user: UserId,
    phone: &str,
    from: &str,
    purpose: VerificationPurpose,
    language: Language,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let code = format!("{:06}", rand::random_range(0..1_000_000u32));
    let stored = state.security.keys.mac(
        "phone-code",
        &format!("{user}:{}:{code}", purpose_label(purpose)),
    );
    state
        .store
        .start_phone_verification(user, phone, purpose, &stored, now + CODE_TTL, now)
        .await?;
    let body = match language {
        Language::En => format!(
            "Your Nudge code is {code}. It expires in 10 minutes. If you did not ask for it, ignore this text."
        ),
        Language::Fr => format!(
            "Votre code Nudge est {code}. Il expire dans 10 minutes. Si vous ne l'avez pas demandé, ignorez ce SMS."
        ),
    };
    state
        .actors
        .send_code(phone.to_owned(), from.to_owned(), body);
    Ok(())
}

/// Checks a code sent by [`send_code`]: bounded attempts, expiry, constant-time comparison.
pub(super) async fn check_code(
    state: &AppState,
    user: UserId,
    purpose: VerificationPurpose,
    code: &str,
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let pending = match state.store.attempt_phone_verification(user, purpose).await {
        Ok(pending) => pending,
        Err(StoreError::NotFound) => return Err(invalid_code()),
        Err(other) => return Err(other.into()),
    };
    if pending.attempts > CODE_ATTEMPTS || pending.expires_at <= now {
        state.store.end_phone_verification(user).await?;
        return Err(ApiError::bad_request(
            "code_expired",
            "this code has expired or was tried too often; ask for a new one",
        ));
    }
    let code: String = code.chars().filter(|c| c.is_ascii_digit()).collect();
    let data = format!("{user}:{}:{code}", purpose_label(purpose));
    if !state
        .security
        .keys
        .verify_mac("phone-code", &data, &pending.code_hash)
    {
        return Err(invalid_code());
    }
    Ok(pending.phone)
}

fn purpose_label(purpose: VerificationPurpose) -> &'static str {
    match purpose {
        VerificationPurpose::Link => "link",
        VerificationPurpose::Claim => "claim",
    }
}

async fn audit(
    state: &AppState,
    event: &'static str,
    outcome: Outcome,
    user: Option<UserId>,
    ip: &str,
    detail: serde_json::Value,
    now: DateTime<Utc>,
) {
    state
        .store
        .audit_quietly(
            NewAuditEvent {
                event,
                outcome,
                actor: user,
                subject: user,
                ip: Some(ip.to_owned()),
                detail,
            },
            now,
        )
        .await;
}

pub(super) fn consents() -> Vec<(String, String)> {
    CONSENT_PURPOSES
        .iter()
        .map(|p| ((*p).to_owned(), POLICY_VERSION.to_owned()))
        .collect()
}

/// The per-client throttle scope: a hash of the address, so the table holds no addresses.
fn client_scope(ip: &str) -> String {
    format!("client:{}", &token_hash(ip)[..16])
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized(
        "invalid_credentials",
        "the email, password or code is wrong",
    )
}

fn invalid_refresh() -> ApiError {
    ApiError::unauthorized(
        "invalid_refresh_token",
        "this refresh token is not valid; sign in again",
    )
}

fn invalid_code() -> ApiError {
    ApiError::bad_request("invalid_code", "this code is not valid")
}

pub(super) fn chrono_duration(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

pub(super) fn check_policy(password: &str, email: Option<&str>) -> Result<(), ApiError> {
    password::policy(password, email).map_err(|e| {
        let code = match e {
            PolicyError::TooShort => "password_too_short",
            PolicyError::TooLong => "password_too_long",
            PolicyError::Common => "password_too_common",
            PolicyError::ContainsEmail => "password_contains_email",
        };
        ApiError::bad_request(code, e.to_string())
    })
}

/// Trims and lower-cases an email, and checks its shape (one `@`, a dotted domain, no
/// spaces, at most 254 characters).
pub(super) fn normalize_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(email)
    } else {
        Err(ApiError::bad_request(
            "invalid_email",
            "this is not an email address",
        ))
    }
}

pub(super) fn display_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "name must be 1 to 100 characters, without control characters",
        ));
    }
    Ok(name.to_owned())
}

pub(super) fn language(text: &str) -> Result<Language, ApiError> {
    text.parse()
        .map_err(|e: String| ApiError::bad_request("invalid_lang", e))
}

pub(super) fn time_zone(text: &str) -> Result<String, ApiError> {
    text.parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_owned())
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_tz",
                "tz must be an IANA time zone like Europe/Paris",
            )
        })
}

pub(super) fn e164(phone: &str) -> Result<String, ApiError> {
    let phone = phone.trim();
    if crate::cli::is_e164(phone) {
        Ok(phone.to_owned())
    } else {
        Err(ApiError::bad_request(
            "invalid_phone",
            "phone must be E.164, like +14155550100",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_malformed_ones_refused() {
        assert_eq!(
            normalize_email("  Ana@Example.COM ").unwrap(),
            "ana@example.com"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a b@example.com",
            "ana@@x.com",
            "ana@.com",
            "ana@x.com.",
            "a\u{0}@x.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
        assert!(normalize_email(&format!("{}@x.com", "a".repeat(260))).is_err());
    }

    #[test]
    fn names_zones_languages_and_phones_are_validated() {
        assert!(display_name("  Ana  ").is_ok());
        assert!(display_name("").is_err());
        assert!(display_name(&"x".repeat(101)).is_err());
        assert!(display_name("a\u{7}b").is_err());
        assert_eq!(time_zone("Europe/Paris").unwrap(), "Europe/Paris");
        assert!(time_zone("Mars/Olympus").is_err());
        assert!(language("fr").is_ok() && language("de").is_err());
        assert!(e164("+14155550100").is_ok());
        assert!(e164("4155550100").is_err());
    }

    #[test]
    fn the_client_scope_holds_no_address() {
        let scope = client_scope("203.0.113.7");
        assert!(scope.starts_with("client:"));
        assert!(!scope.contains("203"));
        assert_eq!(scope, client_scope("203.0.113.7"));
    }
}
