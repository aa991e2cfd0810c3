//! Extractors: who is calling ([`AuthUser`]) and from where ([`ClientIp`]).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use crate::auth::tokens::TokenError;
use crate::edges::layers::client_ip;
use crate::edges::{ApiError, AppState};
use crate::store::{Role, UserId};

/// Routes a person whose password expired may still use: changing it, and leaving.
const ALLOWED_WITH_EXPIRED_PASSWORD: [&str; 3] = [
    "/api/v1/auth/password",
    "/api/v1/auth/logout",
    "/api/v1/auth/logout-all",
];
/// How much larger the API budget of a premium user is.
const PREMIUM_FACTOR: u32 = 3;

/// The signed-in caller, from a valid, unrevoked access token. Extracting it also spends one
/// request of the caller's API budget.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: UserId,
    /// The role the token was issued with (admin routes check the store again).
    pub role: Role,
    /// The session the token belongs to.
    pub session_id: Uuid,
    /// A second factor was checked at sign-in.
    pub mfa: bool,
    /// When the password was last checked for this session.
    pub auth_time: DateTime<Utc>,
    /// The client's address, for the audit log.
    pub ip: String,
}

impl AuthUser {
    /// True when the password was checked within `window` of `now` (a "fresh" sign-in, which
    /// sensitive actions such as erasure accept instead of the password).
    pub fn is_fresh(&self, now: DateTime<Utc>, window: chrono::Duration) -> bool {
        now - self.auth_time <= window
    }

    /// Continues only for an administrator who signed in with a second factor. Anyone else
    /// gets the 404 of a route that does not exist; an administrator without MFA gets 403
    /// `mfa_required`.
    pub async fn require_admin(&self, state: &AppState) -> Result<(), ApiError> {
        let current = state.store.user(self.user_id).await?;
        if self.role != Role::Admin || current.role != Role::Admin {
            return Err(ApiError::NotFound("no such route"));
        }
        if !self.mfa {
            return Err(ApiError::Denied {
                code: "mfa_required",
                message: "administrator routes need a sign-in with a second factor".into(),
            });
        }
        Ok(())
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "unauthorized",
                    "sign in: send Authorization: Bearer <access token>",
                )
            })?;
        authenticate(state, token, parts.uri.path(), client_ip(state, parts)).await
    }
}

/// Checks an access token as the [`AuthUser`] extractor does (signature, expiry, revocation,
/// expired password, API budget), for edges that receive it elsewhere than in a header (the
/// WebSocket upgrade). `path` is the route asked for; `ip` the client's address.
pub async fn authenticate(
    state: &AppState,
    token: &str,
    path: &str,
    ip: String,
) -> Result<AuthUser, ApiError> {
    let security = &state.security;
    let claims = security
        .keys
        .verify(token, security.now())
        .map_err(|e| match e {
            TokenError::Expired => {
                ApiError::unauthorized("token_expired", "the access token has expired; refresh it")
            }
            TokenError::Invalid | TokenError::UnknownKey => {
                ApiError::unauthorized("invalid_token", "the access token is not valid")
            }
        })?;
    if security
        .revocations
        .is_revoked(claims.sub, claims.sid)
        .await
        .map_err(ApiError::from)?
    {
        return Err(ApiError::unauthorized(
            "token_revoked",
            "this session has ended; sign in again",
        ));
    }
    if claims.pwd_expired && !ALLOWED_WITH_EXPIRED_PASSWORD.contains(&path) {
        return Err(ApiError::Denied {
            code: "password_expired",
            message: "your password has expired; change it at /api/v1/auth/password".into(),
        });
    }
    let budget = match claims.role {
        Role::Premium => security.limits.api_per_min.saturating_mul(PREMIUM_FACTOR),
        _ => security.limits.api_per_min,
    };
    security
        .limit(&format!("api:{}", claims.sub), budget)
        .await?;
    Ok(AuthUser {
        user_id: claims.sub,
        role: claims.role,
        session_id: claims.sid,
        mfa: claims.mfa,
        auth_time: Utc
            .timestamp_opt(claims.auth_time, 0)
            .single()
            .unwrap_or_default(),
        ip,
    })
}

/// The client's address (see [`client_ip`]).
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(ClientIp(client_ip(state, parts)))
    }
}
