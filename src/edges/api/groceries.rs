//! `/api/v1/me/groceries`: the person's shopping list (see [`crud`](super::crud)).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::crud::Resource;
use crate::edges::ApiError;
use crate::store::{GroceryItem, Store, StoreError, UserId};

/// Longest item name, in characters.
pub const MAX_NAME: usize = 200;

/// The routes' marker type.
pub struct Groceries;

/// A grocery item as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = GroceryItem)]
pub struct GroceryView {
    pub id: i64,
    pub name: String,
    pub checked: bool,
    pub created_at: DateTime<Utc>,
}

impl From<GroceryItem> for GroceryView {
    fn from(g: GroceryItem) -> Self {
        GroceryView {
            id: g.id,
            name: g.name,
            checked: g.checked,
            created_at: g.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrocery {
    /// 1 to 200 characters.
    pub name: String,
}

/// Fields to change; absent ones stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroceryUpdate {
    pub name: Option<String>,
    pub checked: Option<bool>,
}

fn name(text: &str) -> Result<String, ApiError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_NAME || text.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("name must be 1 to {MAX_NAME} characters, without control characters"),
        ));
    }
    Ok(text.to_owned())
}

#[async_trait]
impl Resource for Groceries {
    const NAME: &'static str = "groceries";
    const FILTERS: &'static [(&'static str, &'static str)] = &[(
        "checked",
        "only checked (true) or only unchecked (false) items",
    )];

    type Item = GroceryView;
    type Create = NewGrocery;
    type Update = GroceryUpdate;

    fn id(item: &GroceryView) -> i64 {
        item.id
    }

    async fn list(
        store: &Store,
        user: UserId,
        after: i64,
        limit: u32,
        filters: &HashMap<&'static str, bool>,
    ) -> Result<Vec<GroceryView>, StoreError> {
        let items = store
            .groceries_page(user, after, limit, filters.get("checked").copied())
            .await?;
        Ok(items.into_iter().map(GroceryView::from).collect())
    }

    async fn create(store: &Store, user: UserId, new: NewGrocery) -> Result<GroceryView, ApiError> {
        let mut added = store.add_groceries(user, &[name(&new.name)?]).await?;
        added
            .pop()
            .map(GroceryView::from)
            .ok_or_else(|| ApiError::Internal("an added item came back missing".into()))
    }

    async fn get(store: &Store, user: UserId, id: i64) -> Result<GroceryView, StoreError> {
        Ok(store.grocery(user, id).await?.into())
    }

    async fn update(
        store: &Store,
        user: UserId,
        id: i64,
        change: GroceryUpdate,
    ) -> Result<GroceryView, ApiError> {
        let new_name = change.name.as_deref().map(name).transpose()?;
        Ok(store
            .update_grocery(user, id, new_name.as_deref(), change.checked)
            .await?
            .into())
    }

    async fn delete(store: &Store, user: UserId, id: i64) -> Result<(), StoreError> {
        store.delete_grocery(user, id).await
    }
}
