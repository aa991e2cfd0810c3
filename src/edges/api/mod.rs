//! The REST API, `/api/v1/…`: accounts and sessions (`auth`), the signed-in person's own data
//! (`me`, `mfa`, and one module per domain: `tasks`, `groceries`), read-only operator views
//! (`admin`), and the OpenAPI document generated from this code (`openapi`).
//!
//! # Conventions
//!
//! - Requests and answers are JSON (`Content-Type: application/json`, bodies up to
//!   [`MAX_BODY_BYTES`]); unknown fields are refused. Errors: `{"error": {"code", "message"}}`.
//! - Authentication: `Authorization: Bearer <access token>` ([`AuthUser`]).
//! - Someone else's resource answers 404, exactly like a missing one: existence never leaks.
//! - Lists are pages: `?limit=` (1–200, default 50) and `?cursor=` (the `next_cursor` of the
//!   previous page; opaque); `next_cursor` is null on the last page ([`Page`]).
//! - Rate limits answer 429 with `Retry-After`.
//!
//! # Adding a domain
//!
//! Write `src/edges/api/<domain>.rs` implementing [`crud::Resource`] (its item, create and
//! update types, and five store calls), then add one line to [`router`] and one to
//! [`openapi::document`]. Routes, pagination, validation, errors and the OpenAPI paths come
//! from [`crud`].

pub mod admin;
pub mod auth;
pub mod crud;
mod extract;
pub mod groceries;
pub mod me;
pub mod mfa;
pub mod openapi;
pub mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use utoipa::ToSchema;

pub use extract::{AuthUser, ClientIp};

use super::{ApiError, AppState};
use crate::auth::password::{self, Verified};
use crate::auth::tokens::JwtKeys;
use crate::config::{AuthSettings, RateLimits};
use crate::store::limits::{Decision, Quota, RateLimiter};
use crate::store::revocation::Revocations;

/// Largest JSON body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Password hashes computed at once; more wait (argon2 is CPU- and memory-heavy).
const CONCURRENT_HASHES: usize = 4;

/// What the API needs beyond the store: keys, settings, revocations, limits. Cheap to share.
pub struct Security {
    pub keys: JwtKeys,
    pub settings: AuthSettings,
    pub limits: RateLimits,
    pub limiter: RateLimiter,
    pub revocations: Revocations,
    /// Client addresses come from `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// Bounds concurrent argon2 work, so a burst of sign-ins cannot starve the node.
    hashing: Semaphore,
}

impl Security {
    pub fn new(
        keys: JwtKeys,
        settings: AuthSettings,
        limits: RateLimits,
        limiter: RateLimiter,
        revocations: Revocations,
        trust_forwarded_for: bool,
    ) -> Self {
        Self {
            keys,
            settings,
            limits,
            limiter,
            revocations,
            trust_forwarded_for,
            hashing: Semaphore::new(CONCURRENT_HASHES),
        }
    }

    /// The time, to the microsecond (what both databases store).
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }

    /// Hashes a password on a blocking thread.
    pub async fn hash_password(&self, password: String) -> Result<String, ApiError> {
        let params = self.settings.argon2;
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| ApiError::Unavailable)?;
        tokio::task::spawn_blocking(move || password::hash(&params, &password))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// Checks a password against a stored hash on a blocking thread.
    pub async fn verify_password(
        &self,
        password: String,
        stored: String,
    ) -> Result<Verified, ApiError> {
        let params = self.settings.argon2;
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| ApiError::Unavailable)?;
        tokio::task::spawn_blocking(move || password::verify(&params, &password, &stored))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// Spends one request of `key`'s budget of `per_minute`; 429 past it.
    pub async fn limit(&self, key: &str, per_minute: u32) -> Result<(), ApiError> {
        match self.limiter.check(key, Quota::per_minute(per_minute)).await {
            Decision::Allowed => Ok(()),
            Decision::Limited { retry_after } => Err(ApiError::TooManyRequests {
                code: "rate_limited",
                retry_after,
            }),
        }
    }
}

/// Every `/api/v1` route.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(me::router())
        .merge(mfa::router())
        .merge(crud::router::<tasks::Tasks>())
        .merge(crud::router::<groceries::Groceries>())
        .merge(admin::router())
        .merge(openapi::router())
}

/// A JSON request body: `application/json`, at most [`MAX_BODY_BYTES`], parsed into `T`
/// (which refuses unknown fields). Every failure is a 4xx with the stable error shape.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::UnsupportedMediaType {
                expected: "application/json",
            });
        }
        let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| ApiError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            })?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses a JSON body, naming what is wrong without echoing more than serde's position.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let code = if e.is_data() {
            "invalid_field"
        } else {
            "invalid_json"
        };
        ApiError::bad_request(code, format!("the body is not acceptable: {e}"))
    })
}

/// An empty body for a request that needs none (a POST without data).
pub fn no_body() -> Body {
    Body::empty()
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A serialized answer with a status, for handlers that create.
pub fn created<T: Serialize>(value: T) -> axum::response::Response {
    use axum::response::IntoResponse;
    (axum::http::StatusCode::CREATED, axum::Json(value)).into_response()
}

/// The `Arc<Security>` of the state.
pub fn security(state: &AppState) -> &Arc<Security> {
    &state.security
}
