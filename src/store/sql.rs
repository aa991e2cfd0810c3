//! What every domain's SQL shares: the time a row is written, the mapping of database errors,
//! the parsing of stored enums and the size of a multi-row `INSERT`.
//!
//! The statements themselves live in their domain's file, in the `$N` placeholder syntax
//! and with the `RETURNING` clauses both databases accept.

use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};

use super::{Result, Store, StoreError, UserId, postgres, sqlite, with_user};

/// Rows per multi-row `INSERT`: far below SQLite's 32,766 bound parameters.
pub(super) const ROWS_PER_STATEMENT: usize = 1_000;

/// The time a row is written, cut to microseconds (PostgreSQL's precision) so that what a
/// write returns equals what a later read gives, on both backends.
pub(super) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Turns the error of a write into a [`StoreError`]: a unique violation the backend can
/// name becomes `Conflict(field)`; a foreign-key violation means the row referred to (the
/// user, the message replied to) does not exist for this user, so `NotFound`.
///
/// The error itself says which database it comes from, so each backend's file names the
/// fields of its own violations.
pub(super) fn write_error(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        let db = db.as_ref();
        if db.is_unique_violation()
            && let Some(field) = sqlite::unique_field(db).or_else(|| postgres::unique_field(db))
        {
            return StoreError::Conflict(field.to_owned());
        }
        if db.is_foreign_key_violation() {
            return StoreError::NotFound;
        }
    }
    StoreError::Database(e)
}

/// SMS segments as stored (a SQL `INTEGER`).
pub(super) fn segments_column(segments: u32) -> Result<i32> {
    i32::try_from(segments).map_err(|e| StoreError::Database(sqlx::Error::Encode(e.into())))
}

/// Parses a stored enum (`column` names it in the error when the value is not one).
pub(super) fn parse<T: FromStr<Err = String>>(column: &str, value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|e: String| StoreError::Corrupt(format!("{column}: {e}")))
}

impl Store {
    /// Runs a `DELETE … WHERE user_id = $1 AND id = $2`; `NotFound` when no row of this user
    /// has that id.
    pub(super) async fn delete_owned(
        &self,
        statement: &'static str,
        user: UserId,
        id: i64,
    ) -> Result<()> {
        let deleted = with_user!(self, user, conn => {
            sqlx::query(statement)
                .bind(user.0)
                .bind(id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Runs a `SELECT … WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3` in the user's
    /// row-level security scope: one page of their rows.
    pub(super) async fn page_of<R>(
        &self,
        statement: &'static str,
        user: UserId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<R>>
    where
        R: Send + Unpin,
        R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
        R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        Ok(with_user!(self, user, conn => {
            sqlx::query_as::<_, R>(statement)
                .bind(user.0)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?
        }))
    }

    /// Runs a `SELECT … WHERE user_id = $1 AND id = $2` in the user's row-level security
    /// scope; `NotFound` when no row of this user has that id.
    pub(super) async fn owned_row<R>(
        &self,
        statement: &'static str,
        user: UserId,
        id: i64,
    ) -> Result<R>
    where
        R: Send + Unpin,
        R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
        R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, R>(statement)
                .bind(user.0)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
        });
        row.ok_or(StoreError::NotFound)
    }

    /// [`Store::delete_owned`] in the user's row-level security scope.
    pub(super) async fn delete_scoped(
        &self,
        statement: &'static str,
        user: UserId,
        id: i64,
    ) -> Result<()> {
        let deleted = with_user!(self, user, conn => {
            sqlx::query(statement)
                .bind(user.0)
                .bind(id)
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
