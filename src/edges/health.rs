//! Health checks: `GET /healthz` (the process answers) and `GET /readyz` (the database
//! answers and the actor tree runs), for load balancers and orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = match state.store.ping().await {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%error, "readiness: database unreachable");
            false
        }
    };
    let actors = state.actors.is_running();
    let ready = database && actors;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "not ready" },
            "checks": { "database": database, "actors": actors },
        })),
    )
}
