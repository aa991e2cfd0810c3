//! `/api/v1/admin/…`: what operators may see of other people's data. Read only — there is no
//! route here that changes anything — and every read is audited with who read whose what.
//! Only administrators who signed in with a second factor get past [`AuthUser::require_admin`];
//! to anyone else these routes do not exist (404).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AuthUser;
use super::me::ProfileView;
use crate::edges::{ApiError, AppState};
use crate::store::{AuditEvent, NewAuditEvent, Outcome, UserId};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/users/{id}", get(user))
        .route("/api/v1/admin/users/{id}/export", get(export))
        .route("/api/v1/admin/audit", get(audit_log))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<u32>,
}

/// A person's profile.
#[utoipa::path(get, path = "/api/v1/admin/users/{id}", tag = "admin",
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = ProfileView), (status = 403, description = "mfa_required"), (status = 404)),
    security(("bearer" = [])))]
async fn user(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<axum::Json<ProfileView>, ApiError> {
    auth.require_admin(&state).await?;
    let subject = subject(&id)?;
    let profile = state.store.profile(subject).await?;
    record(&state, &auth, subject, "profile").await;
    Ok(axum::Json(profile.into()))
}

/// Everything held about a person, as their own export shows it.
#[utoipa::path(get, path = "/api/v1/admin/users/{id}/export", tag = "admin",
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = Object), (status = 403), (status = 404)),
    security(("bearer" = [])))]
async fn export(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    auth.require_admin(&state).await?;
    let subject = subject(&id)?;
    let document = state
        .store
        .export_user(subject, state.security.now())
        .await?;
    record(&state, &auth, subject, "export").await;
    Ok(axum::Json(document))
}

/// The latest security events (default 100, at most 1000).
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin",
    params(("limit" = Option<u32>, Query)),
    responses((status = 200, body = [Object]), (status = 403), (status = 404)),
    security(("bearer" = [])))]
async fn audit_log(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<AuditQuery>,
) -> Result<axum::Json<Vec<AuditEvent>>, ApiError> {
    auth.require_admin(&state).await?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1_000);
    let events = state.store.recent_audit_events(limit).await?;
    state
        .store
        .audit_quietly(
            NewAuditEvent::own(
                "admin_read",
                Outcome::Success,
                auth.user_id,
                Some(auth.ip.clone()),
            )
            .with_detail(json!({ "what": "audit_log" })),
            state.security.now(),
        )
        .await;
    Ok(axum::Json(events))
}

fn subject(id: &str) -> Result<UserId, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound("no such user"))
}

async fn record(state: &AppState, auth: &AuthUser, subject: UserId, what: &str) {
    state
        .store
        .audit_quietly(
            NewAuditEvent {
                event: "admin_read",
                outcome: Outcome::Success,
                actor: Some(auth.user_id),
                subject: Some(subject),
                ip: Some(auth.ip.clone()),
                detail: json!({ "what": what }),
            },
            state.security.now(),
        )
        .await;
}
