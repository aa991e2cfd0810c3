//! The REST API, `/api/v1/…`: accounts and sessions (`auth`), the signed-in person's own data
//! (`me`, `mfa`, and one module per domain: `tasks`, `groceries`, `goals`, `expenses`,
//! `notes`, `reminders`, `memories`), read-only operator views
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
pub mod expenses;
mod extract;
pub mod goals;
pub mod groceries;
pub mod me;
pub mod memories;
pub mod mfa;
pub mod notes;
pub mod openapi;
pub mod reminders;
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

pub use extract::{AuthUser, ClientIp, authenticate};

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
    /// A hash of a random password with the configured parameters, made once: a sign-in for
    /// an unknown email verifies against it, so it costs what a real one does.
    decoy: tokio::sync::OnceCell<String>,
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
            decoy: tokio::sync::OnceCell::new(),
        }
    }

    /// The decoy hash (see [`Security::decoy`]), made on first use.
    pub async fn decoy_hash(&self) -> Result<String, ApiError> {
        let params = self.settings.argon2;
        self.decoy
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || password::decoy_hash(&params))
                    .await
                    .map_err(|e| ApiError::Internal(e.to_string()))?
                    .map_err(|e| ApiError::Internal(e.to_string()))
            })
            .await
            .cloned()
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

    /// Spends one of the user's WebSocket message budget (`NUDGE_RATE_WS_PER_MIN`): the
    /// WebSocket edge calls it for each message a client sends, and answers 429 past it.
    pub async fn limit_ws_message(&self, user: crate::store::UserId) -> Result<(), ApiError> {
        self.limit(&format!("ws:{user}"), self.limits.ws_per_min)
            .await
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
        .merge(crud::router::<goals::Goals>())
        .merge(crud::router::<expenses::Expenses>())
        .merge(crud::router::<notes::Notes>())
        .merge(crud::router::<reminders::Reminders>())
        .merge(crud::router::<memories::Memories>())
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

#[cfg(test)]
mod tests {
    //! Hostile input for the JSON parsing of every request type: random bytes, mutations of
    //! valid bodies, deep nesting, huge numbers, broken escapes. Never a panic, always Ok or a
    //! 400 with a stable code.

    use super::*;

    /// xorshift64*: deterministic, so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const VALID: [&str; 13] = [
        r#"{"email":"a@b.co","password":"tea kettle on the moon","name":"A","accept_terms":true}"#,
        r#"{"email":"a@b.co","password":"x","totp":"123456","device_token":"abc"}"#,
        r#"{"refresh_token":"abc"}"#,
        r#"{"title":"milk","done":true}"#,
        r#"{"name":"x","lang":"fr","tz":"Europe/Paris","quiet_hours":{"start":"22:00","end":"07:00"}}"#,
        r#"{"current_password":"a","new_password":"b"}"#,
        r#"{"phone":"+14155550100","code":"123456","email":"a@b.co","password":"p","accept_terms":true}"#,
        r#"{"code":"123456"}"#,
        r#"{"title":"run a 10k","status":"achieved"}"#,
        r#"{"amount":"12.50","currency":"EUR","category":"food","note":"lunch"}"#,
        r#"{"body":"door code 4521"}"#,
        r#"{"text":"call mum","when":"tomorrow at 9"}"#,
        r#"{"text":"allergic to penicillin","kind":"health","tags":["meds"],"importance":0.9}"#,
    ];
    const HOSTILE: [&str; 14] = [
        "",
        "null",
        "[]",
        "{",
        r#"{"email": 5}"#,
        r#"{"title": "\ud800"}"#,
        r#"{"title": "a\u0000b"}"#,
        r#"{"done": 1e999}"#,
        r#"{"done": -0, "title": 123456789012345678901234567890}"#,
        r#"{"__proto__": {}}"#,
        "\u{feff}{}",
        r#"{"title":"x","title":"y"}"#,
        "{\"a\":\"\\",
        "\"just a string\"",
    ];

    fn all_parsers(bytes: &[u8]) {
        fn check<T: DeserializeOwned>(bytes: &[u8]) {
            match parse_json::<T>(bytes) {
                Ok(_) => {}
                Err(ApiError::BadRequest { code, .. }) => {
                    assert!(code == "invalid_json" || code == "invalid_field", "{code}");
                }
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }
        check::<auth::RegisterRequest>(bytes);
        check::<auth::LoginRequest>(bytes);
        check::<auth::RefreshRequest>(bytes);
        check::<auth::PasswordChangeRequest>(bytes);
        check::<auth::ClaimConfirmRequest>(bytes);
        check::<me::ProfileUpdate>(bytes);
        check::<me::EraseRequest>(bytes);
        check::<mfa::ConfirmRequest>(bytes);
        check::<tasks::NewTask>(bytes);
        check::<tasks::TaskUpdate>(bytes);
        check::<groceries::GroceryUpdate>(bytes);
        check::<goals::NewGoal>(bytes);
        check::<goals::GoalUpdate>(bytes);
        check::<expenses::NewExpenseRequest>(bytes);
        check::<expenses::ExpenseUpdate>(bytes);
        check::<notes::NewNote>(bytes);
        check::<notes::NoteUpdate>(bytes);
        check::<reminders::NewReminderRequest>(bytes);
        check::<reminders::ReminderUpdate>(bytes);
        check::<memories::NewMemoryRequest>(bytes);
        check::<memories::MemoryUpdate>(bytes);
    }

    #[test]
    fn hostile_and_random_json_never_panics_and_is_a_400() {
        for text in HOSTILE.iter().chain(VALID.iter()) {
            all_parsers(text.as_bytes());
        }
        let deep = "[".repeat(100_000);
        all_parsers(deep.as_bytes());
        let deep_object = "{\"a\":".repeat(50_000);
        all_parsers(deep_object.as_bytes());
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..3_000 {
            let base = VALID[rng.below(VALID.len())].as_bytes().to_vec();
            let mut bytes = base;
            for _ in 0..=rng.below(6) {
                let at = rng.below(bytes.len() + 1);
                match rng.below(4) {
                    0 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, (rng.next() & 0xff) as u8),
                    2 if at < bytes.len() => bytes[at] = b"{}[]\",:\\0e-+"[rng.below(12)],
                    _ => bytes.truncate(at),
                }
            }
            all_parsers(&bytes);
            let random: Vec<u8> = (0..rng.below(64))
                .map(|_| (rng.next() & 0xff) as u8)
                .collect();
            all_parsers(&random);
        }
    }

    #[test]
    fn random_tokens_and_codes_are_refused_without_panic() {
        let keys = JwtKeys::generate();
        let mut rng = Rng(42);
        for _ in 0..2_000 {
            let len = rng.below(300);
            let text: String = (0..len)
                .map(|_| char::from_u32((rng.next() % 0x3000) as u32).unwrap_or('x'))
                .collect();
            assert!(keys.verify(&text, Utc::now()).is_err());
            let dotted = format!("{text}.{text}.{text}");
            assert!(keys.verify(&dotted, Utc::now()).is_err());
            let _ = crate::auth::totp::check("JBSWY3DPEHPK3PXP", &text, Utc::now(), None);
            let _ = crate::auth::password::policy(&text, Some(&text));
            let _ = auth::normalize_email(&text);
        }
    }
}
