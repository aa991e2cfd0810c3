//! Groceries: the user's shopping list.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Database, QueryBuilder};

use super::sql::{ROWS_PER_STATEMENT, now, write_error};
use super::{Result, Store, StoreError, UserId, with_user};

/// One line of the grocery list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroceryItem {
    pub id: i64,
    pub name: String,
    pub checked: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct GroceryRow {
    id: i64,
    name: String,
    checked: bool,
    created_at: DateTime<Utc>,
}

impl From<GroceryRow> for GroceryItem {
    fn from(row: GroceryRow) -> Self {
        GroceryItem {
            id: row.id,
            name: row.name,
            checked: row.checked,
            created_at: row.created_at,
        }
    }
}

macro_rules! grocery_columns {
    () => {
        "id, name, checked, created_at"
    };
}

/// Followed by `VALUES (…), (…)` built per batch, then [`GROCERY_RETURNING`].
const INSERT_GROCERY_ROWS: &str = "INSERT INTO grocery_items (user_id, name, checked, created_at) ";
const GROCERY_RETURNING: &str = concat!(" RETURNING ", grocery_columns!());
const GROCERIES_BY_CHECKED: &str = concat!(
    "SELECT ",
    grocery_columns!(),
    " FROM grocery_items WHERE user_id = $1 AND checked = $2 ORDER BY id"
);
const CHECK_GROCERY: &str = concat!(
    "UPDATE grocery_items SET checked = $3 WHERE user_id = $1 AND id = $2 RETURNING ",
    grocery_columns!()
);
const CLEAR_GROCERIES: &str = "DELETE FROM grocery_items WHERE user_id = $1";

impl Store {
    /// Adds several items in one transaction, in the order given.
    #[tracing::instrument(skip_all)]
    pub async fn add_groceries(&self, user: UserId, names: &[String]) -> Result<Vec<GroceryItem>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        Ok(with_user!(self, user, conn, Db => {
            /// One multi-row `INSERT … RETURNING` per [`ROWS_PER_STATEMENT`] names; the items
            /// come back in id order, which is the order given.
            async fn insert(
                conn: &mut <Db as Database>::Connection,
                user: UserId,
                names: &[String],
            ) -> Result<Vec<GroceryItem>> {
                let created_at = now();
                let mut items = Vec::with_capacity(names.len());
                for chunk in names.chunks(ROWS_PER_STATEMENT) {
                    let mut statement = QueryBuilder::<Db>::new(INSERT_GROCERY_ROWS);
                    statement.push_values(chunk, |mut row, name| {
                        row.push_bind(user.0)
                            .push_bind(name.as_str())
                            .push_bind(false)
                            .push_bind(created_at);
                    });
                    statement.push(GROCERY_RETURNING);
                    let mut rows = statement
                        .build_query_as::<GroceryRow>()
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(write_error)?;
                    rows.sort_by_key(|row| row.id);
                    items.extend(rows.into_iter().map(GroceryItem::from));
                }
                Ok(items)
            }

            if names.len() <= ROWS_PER_STATEMENT {
                // One statement is atomic on its own: no BEGIN/COMMIT round trips on SQLite.
                insert(&mut *conn, user, names).await?
            } else {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                let items = insert(&mut tx, user, names).await?;
                tx.commit().await?;
                items
            }
        }))
    }

    /// Unchecked items, oldest first.
    #[tracing::instrument(skip_all)]
    pub async fn groceries(&self, user: UserId) -> Result<Vec<GroceryItem>> {
        let rows = with_user!(self, user, conn => {
            sqlx::query_as::<_, GroceryRow>(GROCERIES_BY_CHECKED)
                .bind(user.0)
                .bind(false)
                .fetch_all(&mut *conn)
                .await?
        });
        Ok(rows.into_iter().map(GroceryItem::from).collect())
    }

    /// Checks an item off; `NotFound` if it is not this user's.
    #[tracing::instrument(skip_all)]
    pub async fn check_grocery(&self, user: UserId, item_id: i64) -> Result<GroceryItem> {
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, GroceryRow>(CHECK_GROCERY)
                .bind(user.0)
                .bind(item_id)
                .bind(true)
                .fetch_optional(&mut *conn)
                .await?
        });
        Ok(row.ok_or(StoreError::NotFound)?.into())
    }

    /// Removes every item of the list; returns how many.
    #[tracing::instrument(skip_all)]
    pub async fn clear_groceries(&self, user: UserId) -> Result<u64> {
        let cleared = with_user!(self, user, conn => {
            sqlx::query(CLEAR_GROCERIES)
                .bind(user.0)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        Ok(cleared)
    }
}

// What the REST API needs beyond the assistant's own operations: pages, one item, edits.

const GROCERIES_PAGE: &str = concat!(
    "SELECT ",
    grocery_columns!(),
    " FROM grocery_items WHERE user_id = $1 AND id > $2 AND ($3 IS NULL OR checked = $3) \
     ORDER BY id LIMIT $4"
);
const GROCERY_BY_ID: &str = concat!(
    "SELECT ",
    grocery_columns!(),
    " FROM grocery_items WHERE user_id = $1 AND id = $2"
);
const UPDATE_GROCERY: &str = concat!(
    "UPDATE grocery_items SET name = COALESCE($3, name), checked = COALESCE($4, checked) \
     WHERE user_id = $1 AND id = $2 RETURNING ",
    grocery_columns!()
);
const DELETE_GROCERY: &str = "DELETE FROM grocery_items WHERE user_id = $1 AND id = $2";

impl Store {
    /// Up to `limit` of the user's items with ids after `after`, in id order, optionally only
    /// unchecked (`checked = Some(false)`) or checked ones.
    #[tracing::instrument(skip_all)]
    pub async fn groceries_page(
        &self,
        user: UserId,
        after: i64,
        limit: u32,
        checked: Option<bool>,
    ) -> Result<Vec<GroceryItem>> {
        let rows = with_user!(self, user, conn => {
            sqlx::query_as::<_, GroceryRow>(GROCERIES_PAGE)
                .bind(user.0)
                .bind(after)
                .bind(checked)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?
        });
        Ok(rows.into_iter().map(GroceryItem::from).collect())
    }

    /// One of the user's items; `NotFound` when it is not theirs.
    #[tracing::instrument(skip_all)]
    pub async fn grocery(&self, user: UserId, item_id: i64) -> Result<GroceryItem> {
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, GroceryRow>(GROCERY_BY_ID)
                .bind(user.0)
                .bind(item_id)
                .fetch_optional(&mut *conn)
                .await?
        });
        Ok(row.ok_or(StoreError::NotFound)?.into())
    }

    /// Renames and/or checks or unchecks an item; `NotFound` when it is not the user's.
    #[tracing::instrument(skip_all)]
    pub async fn update_grocery(
        &self,
        user: UserId,
        item_id: i64,
        name: Option<&str>,
        checked: Option<bool>,
    ) -> Result<GroceryItem> {
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, GroceryRow>(UPDATE_GROCERY)
                .bind(user.0)
                .bind(item_id)
                .bind(name)
                .bind(checked)
                .fetch_optional(&mut *conn)
                .await
                .map_err(write_error)?
        });
        Ok(row.ok_or(StoreError::NotFound)?.into())
    }

    /// Deletes an item; `NotFound` when it is not the user's.
    #[tracing::instrument(skip_all)]
    pub async fn delete_grocery(&self, user: UserId, item_id: i64) -> Result<()> {
        let deleted = with_user!(self, user, conn => {
            sqlx::query(DELETE_GROCERY)
                .bind(user.0)
                .bind(item_id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
