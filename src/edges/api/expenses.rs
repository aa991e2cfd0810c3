//! `/api/v1/me/expenses`: money the person spent (see [`crud`](super::crud)). Amounts travel
//! as decimal text (`"12.50"`) and are kept in integer minor units: never a float.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::crud::{Resource, refused};
use crate::edges::ApiError;
use crate::store::{Expense, ExpenseChange, Language, Store, StoreError, UserId};
use crate::tools::expenses::{
    ExpenseError, ExpenseInput, category_key, currency_code, currency_word, decimal_text,
    default_currency, log, minor_units, note_text,
};

/// The routes' marker type.
pub struct Expenses;

/// An expense as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Expense)]
pub struct ExpenseView {
    pub id: i64,
    /// Decimal text in the currency's units, `.` as the decimal point (`"12.50"`).
    pub amount: String,
    /// The same amount in minor units (cents for EUR, yen for JPY).
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    pub category: String,
    pub note: Option<String>,
    pub spent_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl From<Expense> for ExpenseView {
    fn from(e: Expense) -> Self {
        ExpenseView {
            id: e.id,
            amount: decimal_text(e.amount_minor, &e.currency, Language::En),
            amount_minor: e.amount_minor,
            currency: e.currency,
            category: e.category,
            note: e.note,
            spent_at: e.spent_at,
            created_at: e.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExpenseRequest {
    /// Decimal text (`"12.50"`, `"12,5"`); more decimals than the currency has is refused.
    pub amount: String,
    /// ISO 4217 code (or a symbol like `€`); the one last used, else the time zone's, if absent.
    pub currency: Option<String>,
    /// A category word; `other` if absent.
    pub category: Option<String>,
    /// Up to 200 characters.
    pub note: Option<String>,
}

/// Fields to change; absent ones stay. A new currency alone re-reads the amount in it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpenseUpdate {
    pub amount: Option<String>,
    pub currency: Option<String>,
    pub category: Option<String>,
    /// An empty note removes it.
    pub note: Option<String>,
}

fn expense_error(e: ExpenseError) -> ApiError {
    let code = match &e {
        ExpenseError::Store(_) => "",
        ExpenseError::BadAmount(_) | ExpenseError::TooPrecise { .. } | ExpenseError::OutOfRange => {
            "invalid_amount"
        }
        ExpenseError::UnknownCurrency(_) => "invalid_currency",
        ExpenseError::BadCategory => "invalid_category",
        ExpenseError::NoteTooLong => "invalid_note",
    };
    match e {
        ExpenseError::Store(e) => e.into(),
        other => refused(code, &other),
    }
}

/// A currency as a person writes it (`EUR`, `€`, `euros`), checked.
fn currency(text: &str, default: &str) -> Result<String, ExpenseError> {
    currency_code(&currency_word(text, default).unwrap_or_else(|| text.to_owned()))
}

#[async_trait]
impl Resource for Expenses {
    const NAME: &'static str = "expenses";
    const FILTERS: &'static [(&'static str, &'static str)] = &[];

    type Item = ExpenseView;
    type Create = NewExpenseRequest;
    type Update = ExpenseUpdate;

    fn id(item: &ExpenseView) -> i64 {
        item.id
    }

    async fn list(
        store: &Store,
        user: UserId,
        after: i64,
        limit: u32,
        _filters: &HashMap<&'static str, bool>,
    ) -> Result<Vec<ExpenseView>, StoreError> {
        let expenses = store.expenses_page(user, after, limit).await?;
        Ok(expenses.into_iter().map(ExpenseView::from).collect())
    }

    async fn create(
        store: &Store,
        user: UserId,
        new: NewExpenseRequest,
    ) -> Result<ExpenseView, ApiError> {
        let profile = store.profile(user).await?;
        let default = default_currency(store, user, &profile.time_zone, profile.language).await?;
        let input = ExpenseInput {
            amount: new.amount,
            currency: new.currency,
            category: new.category,
            note: new.note,
        };
        Ok(log(store, user, &input, &default, Utc::now())
            .await
            .map_err(expense_error)?
            .into())
    }

    async fn get(store: &Store, user: UserId, id: i64) -> Result<ExpenseView, StoreError> {
        Ok(store.expense(user, id).await?.into())
    }

    async fn update(
        store: &Store,
        user: UserId,
        id: i64,
        change: ExpenseUpdate,
    ) -> Result<ExpenseView, ApiError> {
        let current = store.expense(user, id).await?;
        let mut apply = ExpenseChange::default();
        if change.amount.is_some() || change.currency.is_some() {
            let code = match change.currency.as_deref() {
                Some(text) => currency(text, &current.currency).map_err(expense_error)?,
                None => current.currency.clone(),
            };
            let amount = change.amount.unwrap_or_else(|| {
                decimal_text(current.amount_minor, &current.currency, Language::En)
            });
            apply.amount_minor = Some(minor_units(&amount, &code).map_err(expense_error)?);
            apply.currency = Some(code);
        }
        if let Some(category) = change.category.as_deref() {
            apply.category = Some(category_key(category).map_err(expense_error)?);
        }
        if let Some(note) = change.note.as_deref() {
            apply.note = Some(note_text(note).map_err(expense_error)?);
        }
        Ok(store.update_expense(user, id, &apply).await?.into())
    }

    async fn delete(store: &Store, user: UserId, id: i64) -> Result<(), StoreError> {
        store.delete_expense(user, id).await
    }
}
