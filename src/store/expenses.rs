//! Expenses: amounts in integer minor units of an ISO 4217 currency, a category, a sealed note.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sql::{now, write_error};
use super::{Result, Store, StoreError, UserId, with_user};

/// Where an expense note is sealed.
const NOTE_PLACE: &str = "expenses.note";

/// One expense.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expense {
    pub id: i64,
    /// The amount in minor units of `currency` (cents for EUR, yen for JPY): never a float.
    pub amount_minor: i64,
    /// ISO 4217 code, upper case.
    pub currency: String,
    /// A short category key ("food", "transport", or the user's own word).
    pub category: String,
    /// What the user said about it (stored sealed).
    pub note: Option<String>,
    /// When the money was spent.
    pub spent_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// An expense to log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewExpense {
    pub amount_minor: i64,
    pub currency: String,
    pub category: String,
    pub note: Option<String>,
    pub spent_at: DateTime<Utc>,
}

/// The sum of one currency and category over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpenseTotal {
    pub currency: String,
    pub category: String,
    /// Sum of the amounts, in minor units.
    pub amount_minor: i64,
    /// How many expenses.
    pub count: u32,
}

#[derive(sqlx::FromRow)]
struct ExpenseRow {
    id: i64,
    amount_minor: i64,
    currency: String,
    category: String,
    note: Option<String>,
    spent_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct TotalRow {
    currency: String,
    category: String,
    amount_minor: i64,
    count: i64,
}

const INSERT_EXPENSE: &str = "INSERT INTO expenses \
     (user_id, amount_minor, currency, category, note, spent_at, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";
/// Sums per currency and category; amounts of different currencies are never added up.
const TOTALS: &str = "SELECT currency, category, CAST(SUM(amount_minor) AS BIGINT) AS amount_minor, \
     COUNT(*) AS count FROM expenses \
     WHERE user_id = $1 AND spent_at >= $2 AND spent_at < $3 \
     GROUP BY currency, category ORDER BY currency, amount_minor DESC, category";
const RECENT: &str = "SELECT id, amount_minor, currency, category, note, spent_at, created_at \
     FROM expenses WHERE user_id = $1 ORDER BY spent_at DESC, id DESC LIMIT $2";
const DELETE_EXPENSE: &str = "DELETE FROM expenses WHERE user_id = $1 AND id = $2";

impl Store {
    /// Logs an expense (its note sealed to this user).
    #[tracing::instrument(skip_all)]
    pub async fn add_expense(&self, user: UserId, new: &NewExpense) -> Result<Expense> {
        let created_at = now();
        let sealed = new
            .note
            .as_deref()
            .map(|note| self.seal_column(NOTE_PLACE, user, note));
        let id: i64 = with_user!(self, user, conn => {
            sqlx::query_scalar(INSERT_EXPENSE)
                .bind(user.0)
                .bind(new.amount_minor)
                .bind(&new.currency)
                .bind(&new.category)
                .bind(sealed.as_deref())
                .bind(new.spent_at)
                .bind(created_at)
                .fetch_one(&mut *conn)
                .await
                .map_err(write_error)?
        });
        Ok(Expense {
            id,
            amount_minor: new.amount_minor,
            currency: new.currency.clone(),
            category: new.category.clone(),
            note: new.note.clone(),
            spent_at: new.spent_at,
            created_at,
        })
    }

    /// Totals per currency and category of the expenses spent in `[from, to)`.
    #[tracing::instrument(skip_all)]
    pub async fn expense_totals(
        &self,
        user: UserId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ExpenseTotal>> {
        let rows = with_user!(self, user, conn => {
            sqlx::query_as::<_, TotalRow>(TOTALS)
                .bind(user.0)
                .bind(from)
                .bind(to)
                .fetch_all(&mut *conn)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|row| ExpenseTotal {
                currency: row.currency,
                category: row.category,
                amount_minor: row.amount_minor,
                count: u32::try_from(row.count).unwrap_or(u32::MAX),
            })
            .collect())
    }

    /// The latest expenses, most recent first, notes opened.
    #[tracing::instrument(skip_all)]
    pub async fn recent_expenses(&self, user: UserId, limit: u32) -> Result<Vec<Expense>> {
        let rows = with_user!(self, user, conn => {
            sqlx::query_as::<_, ExpenseRow>(RECENT)
                .bind(user.0)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?
        });
        rows.into_iter()
            .map(|row| self.open_expense(user, row))
            .collect()
    }

    fn open_expense(&self, user: UserId, row: ExpenseRow) -> Result<Expense> {
        let note = row
            .note
            .map(|sealed| self.open_column(NOTE_PLACE, user, &sealed))
            .transpose()?;
        Ok(Expense {
            id: row.id,
            amount_minor: row.amount_minor,
            currency: row.currency,
            category: row.category,
            note,
            spent_at: row.spent_at,
            created_at: row.created_at,
        })
    }

    /// Deletes one expense (undo); `NotFound` if it is not this user's.
    #[tracing::instrument(skip_all)]
    pub async fn delete_expense(&self, user: UserId, expense_id: i64) -> Result<()> {
        self.delete_owned(DELETE_EXPENSE, user, expense_id).await
    }
}

/// Fields of an expense to change; `None` keeps one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExpenseChange {
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub category: Option<String>,
    /// `Some(None)` removes the note.
    pub note: Option<Option<String>>,
}

// What the REST API needs beyond the assistant's own operations: pages, one expense, edits.

const EXPENSES_PAGE: &str = "SELECT id, amount_minor, currency, category, note, spent_at, \
     created_at FROM expenses WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3";
const EXPENSE_BY_ID: &str = "SELECT id, amount_minor, currency, category, note, spent_at, \
     created_at FROM expenses WHERE user_id = $1 AND id = $2";
/// `$7` says whether the note changes (to `$6`, possibly NULL).
const UPDATE_EXPENSE: &str = "UPDATE expenses SET amount_minor = COALESCE($3, amount_minor), \
     currency = COALESCE($4, currency), category = COALESCE($5, category), \
     note = CASE WHEN $7 THEN $6 ELSE note END \
     WHERE user_id = $1 AND id = $2 \
     RETURNING id, amount_minor, currency, category, note, spent_at, created_at";

impl Store {
    /// Up to `limit` of the user's expenses with ids after `after`, in id order, notes opened.
    #[tracing::instrument(skip_all)]
    pub async fn expenses_page(
        &self,
        user: UserId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Expense>> {
        let rows: Vec<ExpenseRow> = self.page_of(EXPENSES_PAGE, user, after, limit).await?;
        rows.into_iter()
            .map(|row| self.open_expense(user, row))
            .collect()
    }

    /// One of the user's expenses; `NotFound` when it is not theirs.
    #[tracing::instrument(skip_all)]
    pub async fn expense(&self, user: UserId, expense_id: i64) -> Result<Expense> {
        let row = self.owned_row(EXPENSE_BY_ID, user, expense_id).await?;
        self.open_expense(user, row)
    }

    /// Changes the fields given (a new note sealed); `NotFound` when it is not the user's.
    #[tracing::instrument(skip_all)]
    pub async fn update_expense(
        &self,
        user: UserId,
        expense_id: i64,
        change: &ExpenseChange,
    ) -> Result<Expense> {
        let sealed = change
            .note
            .as_ref()
            .and_then(|note| note.as_deref())
            .map(|note| self.seal_column(NOTE_PLACE, user, note));
        let row = with_user!(self, user, conn => {
            sqlx::query_as::<_, ExpenseRow>(UPDATE_EXPENSE)
                .bind(user.0)
                .bind(expense_id)
                .bind(change.amount_minor)
                .bind(change.currency.as_deref())
                .bind(change.category.as_deref())
                .bind(sealed.as_deref())
                .bind(change.note.is_some())
                .fetch_optional(&mut *conn)
                .await
                .map_err(write_error)?
        });
        self.open_expense(user, row.ok_or(StoreError::NotFound)?)
    }
}
