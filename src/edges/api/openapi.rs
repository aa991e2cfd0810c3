//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the API, generated from the
//! handlers' annotations and, for each domain, from its [`Resource`](super::crud::Resource).

use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    admin, auth, crud, expenses, goals, groceries, me, memories, mfa, notes, reminders, tasks,
};
use crate::edges::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Nudge API", description = "Accounts and a person's own data. Errors are `{\"error\": {\"code\", \"message\"}}`; lists are pages (`limit`, `cursor`, `next_cursor`)."),
    paths(
        auth::register, auth::login, auth::refresh, auth::logout, auth::logout_all,
        auth::change_password, auth::claim, auth::claim_confirm,
        me::read, me::update, me::erase, me::export, me::consents, me::revoke_consent,
        me::link_phone, me::confirm_phone,
        mfa::enroll, mfa::confirm, mfa::disable,
        admin::user, admin::export, admin::audit_log,
    ),
    modifiers(&Bearer),
)]
struct Handwritten;

/// Declares the `bearer` security scheme the operations name.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Handwritten::openapi();
    doc.merge(crud::openapi_paths::<tasks::Tasks>());
    doc.merge(crud::openapi_paths::<groceries::Groceries>());
    doc.merge(crud::openapi_paths::<goals::Goals>());
    doc.merge(crud::openapi_paths::<expenses::Expenses>());
    doc.merge(crud::openapi_paths::<notes::Notes>());
    doc.merge(crud::openapi_paths::<reminders::Reminders>());
    doc.merge(crud::openapi_paths::<memories::Memories>());
    doc
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(serve))
}

async fn serve() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(document())
}
