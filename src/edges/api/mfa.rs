//! `/api/v1/me/mfa/totp`: enroll a TOTP authenticator (otpauth URI), confirm it with a first
//! code (which hands out one-time recovery codes), and turn it off (password required).
//! Administrators need it: their routes refuse sessions signed in without it.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AuthUser, Json};
use crate::auth::tokens::token_hash;
use crate::auth::totp;
use crate::edges::{ApiError, AppState};
use crate::store::{NewAuditEvent, Outcome, seal};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me/mfa/totp", post(enroll).delete(disable))
        .route("/api/v1/me/mfa/totp/confirm", post(confirm))
}

/// What an authenticator app needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct Enrollment {
    /// Base32 secret, for typing in by hand.
    pub secret: String,
    /// `otpauth://totp/…`, to show as a QR code.
    pub otpauth_uri: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    /// The 6-digit code the app shows now.
    pub code: String,
}

/// Shown once: each code signs in once in place of a TOTP code.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableRequest {
    pub password: String,
}

/// Starts an enrollment (replacing one not yet confirmed).
#[utoipa::path(post, path = "/api/v1/me/mfa/totp", tag = "mfa",
    responses((status = 200, body = Enrollment), (status = 409, description = "already enabled")),
    security(("bearer" = [])))]
async fn enroll(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<axum::Json<Enrollment>, ApiError> {
    let account = state.store.account(auth.user_id).await?;
    if account.mfa_enabled() {
        return Err(ApiError::Conflict {
            code: "mfa_enabled",
            message: "a second factor is already on; turn it off first to enroll another".into(),
        });
    }
    let secret = totp::new_secret();
    let otpauth_uri = totp::otpauth_uri(&secret, &account.email)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let sealed = state
        .store
        .sealer()
        .seal(&seal::place("accounts.totp_pending", auth.user_id), &secret);
    state.store.set_totp_pending(auth.user_id, &sealed).await?;
    Ok(axum::Json(Enrollment {
        secret,
        otpauth_uri,
    }))
}

/// Confirms the enrollment with a code from the app; returns recovery codes (shown once).
#[utoipa::path(post, path = "/api/v1/me/mfa/totp/confirm", tag = "mfa", request_body = ConfirmRequest,
    responses((status = 200, body = RecoveryCodes), (status = 400, description = "invalid_code")),
    security(("bearer" = [])))]
async fn confirm(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(request): Json<ConfirmRequest>,
) -> Result<axum::Json<RecoveryCodes>, ApiError> {
    let now = state.security.now();
    let account = state.store.account(auth.user_id).await?;
    let Some(sealed) = &account.totp_pending else {
        return Err(ApiError::bad_request(
            "no_enrollment",
            "start an enrollment first",
        ));
    };
    let secret = state
        .store
        .sealer()
        .open(&seal::place("accounts.totp_pending", auth.user_id), sealed)
        .map_err(|e| ApiError::Internal(format!("TOTP secret: {e}")))?;
    let step = totp::check(&secret, &request.code, now, None)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let Some(step) = step else {
        state
            .store
            .audit_quietly(
                NewAuditEvent::own(
                    "mfa_enabled",
                    Outcome::Failure,
                    auth.user_id,
                    Some(auth.ip.clone()),
                ),
                now,
            )
            .await;
        return Err(ApiError::bad_request(
            "invalid_code",
            "this code is not valid; check the app's clock",
        ));
    };
    let codes = totp::new_recovery_codes();
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| token_hash(&totp::normalize_recovery_code(c)))
        .collect();
    let sealed_secret = state
        .store
        .sealer()
        .seal(&seal::place("accounts.totp_secret", auth.user_id), &secret);
    state
        .store
        .confirm_totp(auth.user_id, sealed, &sealed_secret, step, &hashes, now)
        .await?;
    state
        .store
        .audit_quietly(
            NewAuditEvent::own(
                "mfa_enabled",
                Outcome::Success,
                auth.user_id,
                Some(auth.ip.clone()),
            ),
            now,
        )
        .await;
    Ok(axum::Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// Turns the second factor off (password required) and drops the recovery codes.
#[utoipa::path(delete, path = "/api/v1/me/mfa/totp", tag = "mfa", request_body = DisableRequest,
    responses((status = 204), (status = 401)), security(("bearer" = [])))]
async fn disable(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(request): Json<DisableRequest>,
) -> Result<StatusCode, ApiError> {
    let now = state.security.now();
    let account = state.store.account(auth.user_id).await?;
    if !state
        .security
        .verify_password(request.password, account.password_hash)
        .await?
        .ok
    {
        state
            .store
            .audit_quietly(
                NewAuditEvent::own(
                    "mfa_disabled",
                    Outcome::Failure,
                    auth.user_id,
                    Some(auth.ip.clone()),
                ),
                now,
            )
            .await;
        return Err(ApiError::unauthorized(
            "invalid_credentials",
            "the password is wrong",
        ));
    }
    state.store.disable_totp(auth.user_id).await?;
    state
        .store
        .audit_quietly(
            NewAuditEvent::own(
                "mfa_disabled",
                Outcome::Success,
                auth.user_id,
                Some(auth.ip.clone()),
            ),
            now,
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}
