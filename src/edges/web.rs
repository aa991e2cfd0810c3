//! The web client, embedded in the binary (`web/`): `GET /` and its script and style, plus
//! `GET /api/v1/me/reminders`, the upcoming reminders it lists.
//!
//! No framework: one page that signs in through the REST API, chats and listens on
//! [`super::ws`], and reloads its lists when the socket says they changed.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

use super::api::AuthUser;
use super::{ApiError, AppState};
use crate::store::Reminder;

const INDEX: &str = include_str!("../../web/index.html");
const SCRIPT: &str = include_str!("../../web/app.js");
const STYLE: &str = include_str!("../../web/app.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async { page("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/app.js",
            get(|| async { page("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/app.css",
            get(|| async { page("text/css; charset=utf-8", STYLE) }),
        )
        .route("/api/v1/me/reminders", get(reminders))
}

fn page(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// The caller's scheduled reminders, soonest first.
#[derive(Serialize)]
struct Reminders {
    items: Vec<Reminder>,
}

async fn reminders(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<axum::Json<Reminders>, ApiError> {
    let items = state.store.scheduled_reminders(auth.user_id).await?;
    Ok(axum::Json(Reminders { items }))
}
