//! One pattern for every domain of the person's own data under `/api/v1/me/<name>`:
//!
//! | method | path | does |
//! | --- | --- | --- |
//! | `GET` | `/api/v1/me/<name>?limit=&cursor=&<filters>` | a [`Page`] of items, in id order |
//! | `POST` | `/api/v1/me/<name>` | creates one (201) |
//! | `GET` | `/api/v1/me/<name>/{id}` | one item |
//! | `PATCH` | `/api/v1/me/<name>/{id}` | changes the fields given |
//! | `DELETE` | `/api/v1/me/<name>/{id}` | deletes it (204) |
//!
//! A domain implements [`Resource`] (its types and five store calls) and gets the routes,
//! authentication, pagination, body parsing, errors (someone else's id is a 404, like a
//! missing one) and its OpenAPI paths ([`openapi_paths`]) from here.

use std::collections::HashMap;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{
    ArrayBuilder, ComponentsBuilder, ContentBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref,
    Required, ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};

use super::{AuthUser, Json, Page, created};
use crate::edges::{ApiError, AppState};
use crate::store::{Store, StoreError, UserId};

/// Items per page unless `?limit=` says otherwise.
pub const DEFAULT_LIMIT: u32 = 50;
/// Most items per page.
pub const MAX_LIMIT: u32 = 200;

/// A domain of the person's own data, served by [`router`].
#[async_trait]
pub trait Resource: Send + Sync + 'static {
    /// The path segment and OpenAPI tag (`tasks`).
    const NAME: &'static str;
    /// Boolean filters `GET` accepts as query parameters (`done`), with their descriptions.
    const FILTERS: &'static [(&'static str, &'static str)];

    type Item: Serialize + ToSchema + Send;
    type Create: DeserializeOwned + ToSchema + Send;
    type Update: DeserializeOwned + ToSchema + Send;

    /// The item's id (the page cursor).
    fn id(item: &Self::Item) -> i64;

    /// Up to `limit` items with ids after `after`; `filters` holds the parsed [`Self::FILTERS`].
    async fn list(
        store: &Store,
        user: UserId,
        after: i64,
        limit: u32,
        filters: &HashMap<&'static str, bool>,
    ) -> Result<Vec<Self::Item>, StoreError>;
    /// Validates and creates.
    async fn create(store: &Store, user: UserId, new: Self::Create)
    -> Result<Self::Item, ApiError>;
    async fn get(store: &Store, user: UserId, id: i64) -> Result<Self::Item, StoreError>;
    /// Validates and applies the fields given.
    async fn update(
        store: &Store,
        user: UserId,
        id: i64,
        change: Self::Update,
    ) -> Result<Self::Item, ApiError>;
    async fn delete(store: &Store, user: UserId, id: i64) -> Result<(), StoreError>;
}

/// The five routes of a resource.
pub fn router<R: Resource>() -> Router<AppState> {
    let collection = format!("/api/v1/me/{}", R::NAME);
    let item = format!("/api/v1/me/{}/{{id}}", R::NAME);
    Router::new()
        .route(&collection, get(list::<R>).post(create::<R>))
        .route(&item, get(read::<R>).patch(update::<R>).delete(remove::<R>))
}

async fn list<R: Resource>(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(params): Query<HashMap<String, String>>,
) -> Result<axum::Json<Page<R::Item>>, ApiError> {
    let (after, limit, filters) = page_params::<R>(&params)?;
    // One more than asked tells whether another page follows.
    let mut items = R::list(&state.store, auth.user_id, after, limit + 1, &filters).await?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|i| R::id(i).to_string())
    } else {
        None
    };
    Ok(axum::Json(Page { items, next_cursor }))
}

async fn create<R: Resource>(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(new): Json<R::Create>,
) -> Result<Response, ApiError> {
    Ok(created(R::create(&state.store, auth.user_id, new).await?))
}

async fn read<R: Resource>(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<axum::Json<R::Item>, ApiError> {
    Ok(axum::Json(
        R::get(&state.store, auth.user_id, item_id(&id)?).await?,
    ))
}

async fn update<R: Resource>(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    Json(change): Json<R::Update>,
) -> Result<axum::Json<R::Item>, ApiError> {
    let id = item_id(&id)?;
    Ok(axum::Json(
        R::update(&state.store, auth.user_id, id, change).await?,
    ))
}

async fn remove<R: Resource>(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    R::delete(&state.store, auth.user_id, item_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A value a domain's validation refused, as a 400 with `code` and the reason.
pub fn refused(code: &'static str, reason: &dyn std::fmt::Display) -> ApiError {
    ApiError::bad_request(code, reason.to_string())
}

/// An id from the path; anything but a positive integer is a 404 like a missing item.
fn item_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(ApiError::NotFound("no such item"))
}

/// `cursor`, `limit` and the resource's filters from the query string; anything else is 400.
fn page_params<R: Resource>(
    params: &HashMap<String, String>,
) -> Result<(i64, u32, HashMap<&'static str, bool>), ApiError> {
    let mut after = 0;
    let mut limit = DEFAULT_LIMIT;
    let mut filters = HashMap::new();
    for (name, value) in params {
        match name.as_str() {
            "cursor" => {
                after = value
                    .parse::<i64>()
                    .ok()
                    .filter(|c| *c >= 0)
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_cursor",
                            "cursor must be a next_cursor from a page",
                        )
                    })?;
            }
            "limit" => {
                limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_limit",
                            format!("limit must be 1 to {MAX_LIMIT}"),
                        )
                    })?;
            }
            other => {
                let Some((filter, _)) = R::FILTERS.iter().find(|(f, _)| *f == other) else {
                    return Err(ApiError::bad_request(
                        "unknown_parameter",
                        format!("unknown query parameter {other:?}"),
                    ));
                };
                let flag = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ApiError::bad_request(
                            "invalid_filter",
                            format!("{filter} must be true or false"),
                        ));
                    }
                };
                filters.insert(*filter, flag);
            }
        }
    }
    Ok((after, limit, filters))
}

/// The OpenAPI paths and schemas of a resource's five routes.
pub fn openapi_paths<R: Resource>() -> OpenApi {
    let tag = R::NAME;
    let item_name = R::Item::name().to_string();
    let create_name = R::Create::name().to_string();
    let update_name = R::Update::name().to_string();
    let item_ref = || Ref::from_schema_name(item_name.clone());
    let json = |schema: Ref| ContentBuilder::new().schema(Some(schema)).build();
    let bearer = || SecurityRequirement::new("bearer", Vec::<String>::new());
    let error = |description: &str| ResponseBuilder::new().description(description).build();
    let id_param = || {
        ParameterBuilder::new()
            .name("id")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .schema(Some(
                ObjectBuilder::new().schema_type(SchemaType::Type(Type::Integer)),
            ))
            .build()
    };
    let page = ObjectBuilder::new()
        .property("items", ArrayBuilder::new().items(item_ref()))
        .required("items")
        .property(
            "next_cursor",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .description(Some("pass as ?cursor= for the next page; null on the last")),
        )
        .build();

    let mut list = OperationBuilder::new()
        .tag(tag)
        .summary(Some(format!("A page of {tag}, in id order")))
        .security(bearer())
        .parameter(
            ParameterBuilder::new()
                .name("limit")
                .parameter_in(ParameterIn::Query)
                .description(Some(format!("1 to {MAX_LIMIT}, default {DEFAULT_LIMIT}")))
                .schema(Some(
                    ObjectBuilder::new().schema_type(SchemaType::Type(Type::Integer)),
                )),
        )
        .parameter(
            ParameterBuilder::new()
                .name("cursor")
                .parameter_in(ParameterIn::Query)
                .description(Some("next_cursor of the previous page"))
                .schema(Some(
                    ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)),
                )),
        );
    for (filter, description) in R::FILTERS {
        list = list.parameter(
            ParameterBuilder::new()
                .name(*filter)
                .parameter_in(ParameterIn::Query)
                .description(Some(*description))
                .schema(Some(
                    ObjectBuilder::new().schema_type(SchemaType::Type(Type::Boolean)),
                )),
        );
    }
    let list = list
        .response(
            "200",
            ResponseBuilder::new().description("a page").content(
                "application/json",
                ContentBuilder::new().schema(Some(page)).build(),
            ),
        )
        .response("400", error("invalid query parameter"))
        .response("401", error("not signed in"))
        .build();
    let create = OperationBuilder::new()
        .tag(tag)
        .summary(Some(format!("Create one of {tag}")))
        .security(bearer())
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/json",
                    json(Ref::from_schema_name(create_name.clone())),
                )
                .build(),
        ))
        .response(
            "201",
            ResponseBuilder::new()
                .description("created")
                .content("application/json", json(item_ref())),
        )
        .response("400", error("invalid body"))
        .response("401", error("not signed in"))
        .build();
    let read = OperationBuilder::new()
        .tag(tag)
        .summary(Some(format!("One of {tag}")))
        .security(bearer())
        .parameter(id_param())
        .response(
            "200",
            ResponseBuilder::new()
                .description("the item")
                .content("application/json", json(item_ref())),
        )
        .response("404", error("no such item (or not yours)"))
        .build();
    let update = OperationBuilder::new()
        .tag(tag)
        .summary(Some("Change the fields given"))
        .security(bearer())
        .parameter(id_param())
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/json",
                    json(Ref::from_schema_name(update_name.clone())),
                )
                .build(),
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description("the changed item")
                .content("application/json", json(item_ref())),
        )
        .response("400", error("invalid body"))
        .response("404", error("no such item (or not yours)"))
        .build();
    let delete = OperationBuilder::new()
        .tag(tag)
        .summary(Some("Delete it"))
        .security(bearer())
        .parameter(id_param())
        .response("204", error("deleted"))
        .response("404", error("no such item (or not yours)"))
        .build();

    let mut collection = PathItem::new(HttpMethod::Get, list);
    collection.merge_operations(PathItem::new(HttpMethod::Post, create));
    let mut item = PathItem::new(HttpMethod::Get, read);
    item.merge_operations(PathItem::new(HttpMethod::Patch, update));
    item.merge_operations(PathItem::new(HttpMethod::Delete, delete));

    // The types the three schemas refer to (an enum of states, say).
    let mut nested = Vec::new();
    R::Item::schemas(&mut nested);
    R::Create::schemas(&mut nested);
    R::Update::schemas(&mut nested);
    let components = ComponentsBuilder::new()
        .schema(item_name, R::Item::schema())
        .schema(create_name, R::Create::schema())
        .schema(update_name, R::Update::schema())
        .schemas_from_iter(nested);

    OpenApiBuilder::new()
        .paths(
            PathsBuilder::new()
                .path(format!("/api/v1/me/{tag}"), collection)
                .path(format!("/api/v1/me/{tag}/{{id}}"), item),
        )
        .components(Some(components.build()))
        .build()
}
