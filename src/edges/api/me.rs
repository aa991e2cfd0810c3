//! `/api/v1/me`: the signed-in person's profile, consents, phone, export and erasure.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::auth::{check_code, display_name, e164, language, send_code, time_zone};
use super::{AuthUser, Json};
use crate::edges::{ApiError, AppState};
use crate::store::{
    Consent, NewAuditEvent, Outcome, Profile, ProfileChange, StoreError, VerificationPurpose,
};

/// How recent a sign-in must be to erase the account without the password again.
const FRESH: chrono::Duration = chrono::Duration::minutes(10);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me", get(read).patch(update).delete(erase))
        .route("/api/v1/me/export", get(export))
        .route("/api/v1/me/consents", get(consents))
        .route("/api/v1/me/consents/{id}", delete(revoke_consent))
        .route("/api/v1/me/phone", post(link_phone))
        .route("/api/v1/me/phone/confirm", post(confirm_phone))
}

/// The profile as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileView {
    #[schema(value_type = String, format = Uuid)]
    pub user_id: crate::store::UserId,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// `en` or `fr`.
    pub lang: String,
    pub tz: String,
    pub quiet_hours: Option<QuietHours>,
    pub morning_digest: MorningDigest,
    /// `standard`, `premium` or `admin`.
    pub role: String,
    pub mfa_enabled: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// No nudges between `start` and `end`, local time, `HH:MM` (may wrap past midnight).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    pub start: String,
    pub end: String,
}

/// The opt-in morning digest: one SMS a day at `time` (local `HH:MM`) with today's top three
/// tasks and today's reminders.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MorningDigest {
    pub enabled: bool,
    pub time: String,
}

/// A change to the morning digest; absent fields stay.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MorningDigestUpdate {
    pub enabled: Option<bool>,
    /// Local `HH:MM`.
    pub time: Option<String>,
}

impl From<Profile> for ProfileView {
    fn from(p: Profile) -> Self {
        let hhmm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        ProfileView {
            user_id: p.user_id,
            name: p.display_name,
            email: p.email,
            phone: p.phone,
            lang: p.language.as_str().to_owned(),
            tz: p.time_zone,
            quiet_hours: match (p.quiet_start, p.quiet_end) {
                (Some(s), Some(e)) => Some(QuietHours {
                    start: hhmm(s),
                    end: hhmm(e),
                }),
                _ => None,
            },
            morning_digest: MorningDigest {
                enabled: p.digest_enabled,
                time: hhmm(p.digest_minute),
            },
            role: p.role.as_str().to_owned(),
            mfa_enabled: p.mfa_enabled,
            created_at: p.created_at,
        }
    }
}

/// A change to the profile; absent fields stay as they are; `quiet_hours: null` clears them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    pub name: Option<String>,
    pub lang: Option<String>,
    pub tz: Option<String>,
    #[serde(default, deserialize_with = "some_or_null")]
    #[schema(value_type = Option<QuietHours>)]
    pub quiet_hours: Option<Option<QuietHours>>,
    pub morning_digest: Option<MorningDigestUpdate>,
}

/// Tells an absent field (`None`) from an explicit null (`Some(None)`).
fn some_or_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Confirms erasure when the sign-in is not fresh.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    pub password: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneRequest {
    /// E.164, like +14155550100.
    pub phone: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    pub code: String,
}

#[utoipa::path(get, path = "/api/v1/me", tag = "me",
    responses((status = 200, body = ProfileView), (status = 401)), security(("bearer" = [])))]
async fn read(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<axum::Json<ProfileView>, ApiError> {
    Ok(axum::Json(state.store.profile(auth.user_id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/me", tag = "me", request_body = ProfileUpdate,
    responses((status = 200, body = ProfileView), (status = 400), (status = 401)), security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(request): Json<ProfileUpdate>,
) -> Result<axum::Json<ProfileView>, ApiError> {
    let change = ProfileChange {
        display_name: request.name.as_deref().map(display_name).transpose()?,
        language: request.lang.as_deref().map(language).transpose()?,
        time_zone: request.tz.as_deref().map(time_zone).transpose()?,
        quiet_hours: match request.quiet_hours {
            None => None,
            Some(None) => Some(None),
            Some(Some(q)) => Some(Some((minutes(&q.start)?, minutes(&q.end)?))),
        },
        digest: request.morning_digest.as_ref().and_then(|d| d.enabled),
        digest_minute: request
            .morning_digest
            .as_ref()
            .and_then(|d| d.time.as_deref())
            .map(|t| {
                minutes(t).map_err(|_| {
                    ApiError::bad_request(
                        "invalid_digest_time",
                        "the digest time is HH:MM, 00:00 to 23:59",
                    )
                })
            })
            .transpose()?,
    };
    Ok(axum::Json(
        state
            .store
            .update_profile(auth.user_id, &change)
            .await?
            .into(),
    ))
}

/// `HH:MM` as minutes after midnight.
fn minutes(text: &str) -> Result<u16, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_quiet_hours",
            "quiet hours are HH:MM, 00:00 to 23:59",
        )
    };
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Everything Nudge holds about the caller, as one JSON document (sealed values opened,
/// credentials withheld).
#[utoipa::path(get, path = "/api/v1/me/export", tag = "me",
    responses((status = 200, description = "the export document", body = Object), (status = 401)),
    security(("bearer" = [])))]
async fn export(State(state): State<AppState>, auth: AuthUser) -> Result<Response, ApiError> {
    let now = state.security.now();
    let document = state.store.export_user(auth.user_id, now).await?;
    state
        .store
        .audit_quietly(
            NewAuditEvent::own(
                "export",
                Outcome::Success,
                auth.user_id,
                Some(auth.ip.clone()),
            ),
            now,
        )
        .await;
    let mut response = axum::Json(document).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_DISPOSITION,
        axum::http::HeaderValue::from_static("attachment; filename=\"nudge-export.json\""),
    );
    Ok(response)
}

/// Erases the caller's account and every row of theirs, stops their assistant and ends
/// their sessions. Needs a sign-in from the last 10 minutes, or the password.
#[utoipa::path(delete, path = "/api/v1/me", tag = "me", request_body(content = EraseRequest, description = "the password, unless the sign-in is fresh"),
    responses((status = 204), (status = 401, description = "reauthentication_required or invalid_credentials")),
    security(("bearer" = [])))]
async fn erase(
    State(state): State<AppState>,
    auth: AuthUser,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let security = &state.security;
    let now = security.now();
    let request: EraseRequest = if body.is_empty() {
        EraseRequest { password: None }
    } else {
        super::parse_json(&body)?
    };
    // A password, when given, must be right; without one, the sign-in must be fresh.
    match request.password {
        Some(password) => {
            let account = state.store.account(auth.user_id).await?;
            if !security
                .verify_password(password, account.password_hash)
                .await?
                .ok
            {
                return Err(ApiError::unauthorized(
                    "invalid_credentials",
                    "the password is wrong",
                ));
            }
        }
        None if auth.is_fresh(now, FRESH) => {}
        None => {
            return Err(ApiError::unauthorized(
                "reauthentication_required",
                "send your password, or sign in again, to erase your account",
            ));
        }
    }
    let sessions: Vec<uuid::Uuid> = state
        .store
        .sessions(auth.user_id)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    state.actors.stop_user(auth.user_id).await;
    let report = state.store.erase_user(auth.user_id, now).await?;
    security.revocations.publish(&sessions).await;
    if let Some(cache) = &state.model_cache {
        match cache.forget_user(auth.user_id).await {
            Ok(entries) => tracing::info!(entries, "model cache entries of the account dropped"),
            // The account is gone either way; the sealed entries expire with their TTL.
            Err(error) => {
                tracing::error!(%error, "model cache entries of an erased account outlive it until they expire")
            }
        }
    }
    tracing::info!(leftover_tables = report.leftovers.len(), "account erased");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/me/consents", tag = "me",
    responses((status = 200, body = [Object]), (status = 401)), security(("bearer" = [])))]
async fn consents(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<axum::Json<Vec<Consent>>, ApiError> {
    Ok(axum::Json(state.store.consents(auth.user_id).await?))
}

/// Revokes a consent (its record stays, with the time of revocation).
#[utoipa::path(delete, path = "/api/v1/me/consents/{id}", tag = "me",
    params(("id" = i64, Path)), responses((status = 204), (status = 404)), security(("bearer" = [])))]
async fn revoke_consent(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound("no such consent"))?;
    let now = state.security.now();
    state.store.revoke_consent(auth.user_id, id, now).await?;
    state
        .store
        .audit_quietly(
            NewAuditEvent::own(
                "consent_revoked",
                Outcome::Success,
                auth.user_id,
                Some(auth.ip.clone()),
            )
            .with_detail(json!({ "consent": id })),
            now,
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a code by SMS to a phone to link to the account.
#[utoipa::path(post, path = "/api/v1/me/phone", tag = "me", request_body = PhoneRequest,
    responses((status = 202), (status = 400), (status = 429), (status = 503, description = "no number can send the code")),
    security(("bearer" = [])))]
async fn link_phone(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(request): Json<PhoneRequest>,
) -> Result<Response, ApiError> {
    let phone = e164(&request.phone)?;
    let security = &state.security;
    security.limit(&format!("code:{phone}"), 3).await?;
    security
        .limit(&format!("code-user:{}", auth.user_id), 3)
        .await?;
    let user = state.store.user(auth.user_id).await?;
    let Some(from) = user
        .number
        .clone()
        .or_else(|| security.settings.sms_sender.clone())
    else {
        return Err(ApiError::Unavailable);
    };
    let language = user.language;
    send_code(
        &state,
        auth.user_id,
        &phone,
        &from,
        VerificationPurpose::Link,
        language,
        security.now(),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "status": "code sent" })),
    )
        .into_response())
}

/// Links the phone the code was sent to.
#[utoipa::path(post, path = "/api/v1/me/phone/confirm", tag = "me", request_body = CodeRequest,
    responses((status = 200, body = ProfileView), (status = 400), (status = 409)), security(("bearer" = [])))]
async fn confirm_phone(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(request): Json<CodeRequest>,
) -> Result<axum::Json<ProfileView>, ApiError> {
    let now = state.security.now();
    let phone = check_code(
        &state,
        auth.user_id,
        VerificationPurpose::Link,
        &request.code,
        now,
    )
    .await?;
    match state.store.set_phone(auth.user_id, &phone).await {
        // The SMS edge must not keep routing texts by the phone this one replaces.
        Ok(()) => state.actors.routes().forget(auth.user_id),
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::Conflict {
                code: "phone_taken",
                message: "this phone belongs to another Nudge; claim it with /api/v1/auth/claim"
                    .into(),
            });
        }
        Err(other) => return Err(other.into()),
    }
    state
        .store
        .audit_quietly(
            NewAuditEvent::own(
                "phone_linked",
                Outcome::Success,
                auth.user_id,
                Some(auth.ip.clone()),
            ),
            now,
        )
        .await;
    Ok(axum::Json(state.store.profile(auth.user_id).await?.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_parse_as_minutes_and_refuse_nonsense() {
        assert_eq!(minutes("22:30").unwrap(), 1350);
        assert_eq!(minutes("00:00").unwrap(), 0);
        for bad in ["24:00", "7:00", "12:60", "ab:cd", "", "12:00:00", "-1:00"] {
            assert!(minutes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_absent_quiet_hours_field_differs_from_null() {
        let absent: ProfileUpdate = serde_json::from_str("{}").unwrap();
        assert!(absent.quiet_hours.is_none());
        let null: ProfileUpdate = serde_json::from_str(r#"{"quiet_hours": null}"#).unwrap();
        assert!(matches!(null.quiet_hours, Some(None)));
        assert!(serde_json::from_str::<ProfileUpdate>(r#"{"nope": 1}"#).is_err());
    }
}
