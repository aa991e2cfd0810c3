//! Everything that faces the outside over HTTP.
//!
//! Each edge module exposes a `router()`; [`router`] composes them with the shared layers:
//! the request timer, the per-client rate limit and the security headers ([`layers`]).
//! Errors answer with a stable JSON shape, `{"error": {"code", "message"}}` ([`ApiError`]).
//!
//! | module | what |
//! | --- | --- |
//! | [`health`] | `/healthz`, `/readyz` |
//! | [`sms`] | Twilio's inbound-message webhook |
//! | [`api`] | the REST API `/api/v1/…`: accounts, sessions, the person's own data, admin, OpenAPI |
//! | [`web`] | the embedded web client at `/` and the reminders it lists |
//! | [`ws`] | `GET /ws`: the web client's live events and chat |
//! | [`layers`] | request timer, security headers, per-client rate limit, the client address |

pub mod api;
pub mod health;
pub mod layers;
pub mod metrics;
pub mod sms;
pub mod web;
pub mod ws;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde_json::json;
use tokio_util::task::TaskTracker;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use url::Url;

use crate::actors::ActorSystem;
use crate::store::Store;

/// What every handler can reach: one shared [`AppParts`], so that cloning it (every request
/// does, once per stateful layer and extractor) touches one reference count, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct AppParts {
    pub store: Store,
    pub actors: ActorSystem,
    /// The base URL Twilio calls, for signature checks.
    pub public_base: Arc<Url>,
    /// Twilio's auth token: the key of webhook signatures.
    pub twilio_auth_token: Arc<SecretString>,
    /// How long the webhook waits for a turn before answering empty TwiML.
    pub reply_window: std::time::Duration,
    /// Turns that outlive their request (replies sent later through the REST API).
    pub tasks: TaskTracker,
    /// Accounts and sessions: signing keys, revocations, rate limits, password hashing.
    pub security: Arc<api::Security>,
    /// What `GET /metrics` shows, and who may see it.
    pub metrics: Arc<metrics::Metrics>,
    /// The open WebSockets on this node, per user.
    pub live: crate::live::LiveHub,
    /// The model-response cache the planner shares (none without a model or a TTL), so that
    /// erasing an account drops its entries.
    pub model_cache: Option<crate::agent::cache::ResponseCache>,
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(metrics::router())
        .merge(sms::router())
        .merge(api::router())
        .merge(ws::router())
        .merge(web::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("a handler panicked".into()).into_response()
        }))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            layers::edge,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// An error answered to an HTTP caller.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; `code` is stable, `message` says what to fix.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// No valid credentials; `code` is stable (`unauthorized`, `invalid_credentials`,
    /// `mfa_required`, `token_expired`, …).
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// Authenticated, but refused by policy (`mfa_required` for admins, `password_expired`).
    #[error("{message}")]
    Denied { code: &'static str, message: String },
    /// The request conflicts with what exists (an email already registered).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Over a rate limit or locked out for a while; retry after the given time.
    #[error("too many requests; retry in {} s", retry_after_secs(*retry_after))]
    TooManyRequests {
        code: &'static str,
        retry_after: std::time::Duration,
    },
    #[error("this method is not allowed on this route")]
    MethodNotAllowed,
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("request body too large (limit {limit} bytes)")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported content type; expected {expected}")]
    UnsupportedMediaType { expected: &'static str },
    #[error("temporarily unavailable")]
    Unavailable,
    /// Unexpected: logged with its cause, answered with a generic body.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unauthorized {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Unauthorized { code, .. } => (StatusCode::UNAUTHORIZED, code),
            ApiError::Denied { code, .. } => (StatusCode::FORBIDDEN, code),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::TooManyRequests { code, .. } => (StatusCode::TOO_MANY_REQUESTS, code),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::UnsupportedMediaType { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                "something went wrong on our side".to_owned()
            }
            other => {
                tracing::info!(status = status.as_u16(), code, error = %other, "request refused");
                other.to_string()
            }
        };
        let mut response = (
            status,
            axum::Json(json!({ "error": { "code": code, "message": message } })),
        )
            .into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::TooManyRequests { retry_after, .. } => {
                headers.insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(retry_after_secs(*retry_after)),
                );
            }
            ApiError::Unauthorized { .. } => {
                headers.insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer"),
                );
            }
            _ => {}
        }
        response
    }
}

/// Whole seconds to wait, rounded up, at least 1 (what `Retry-After` carries).
fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.is_zero()))
}

impl From<crate::store::StoreError> for ApiError {
    /// `NotFound` (which is also "not yours") becomes a 404; anything else is unexpected.
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            crate::store::StoreError::NotFound => ApiError::NotFound("no such resource"),
            other => ApiError::Internal(other.to_string()),
        }
    }
}
