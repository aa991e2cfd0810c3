//! Everything that faces the outside over HTTP.
//!
//! Each edge module exposes a `router()`; [`router`] composes them with the shared layers.
//! Errors answer with a stable JSON shape, `{"error": {"code", "message"}}` ([`ApiError`]).

pub mod health;
pub mod metrics;
pub mod sms;

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

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
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
    /// What `GET /metrics` shows, and who may see it.
    pub metrics: Arc<metrics::Metrics>,
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(metrics::router())
        .merge(sms::router())
        .fallback(not_found)
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("a handler panicked".into()).into_response()
        }))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route")
}

/// An error answered to an HTTP caller.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; `code` is stable, `message` says what to fix.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
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
        (
            status,
            axum::Json(json!({ "error": { "code": code, "message": message } })),
        )
            .into_response()
    }
}
