//! Persistence: one concrete [`Store`] over a SQLite or a PostgreSQL pool.
//!
//! The backend is chosen by the URL scheme ([`connect`]): `sqlite:` for the embedded default,
//! `postgres:` / `postgresql:` for production. Migrations live in `migrations/sqlite/` and
//! `migrations/postgres/` and are applied by [`connect`] before the store is handed out.
//!
//! Every method that touches a user's data takes that user's [`UserId`] and scopes its query
//! by it: there is no way to read or change a row of another user through the store.
//!
//! # Layout
//!
//! | file | what it holds |
//! | --- | --- |
//! | `mod.rs` | [`Store`], its private `Pool`, [`connect`], `with_pool!`, errors, [`UserId`] |
//! | `seal.rs` | AES-256-GCM sealing of personal text columns, with a rotating key ring |
//! | `sql.rs` | helpers every domain shares: `now()`, `write_error`, `parse`, batch size |
//! | `sqlite.rs`, `postgres.rs` | what one backend does its own way: connecting, naming a unique violation |
//! | `users.rs` | [`User`], [`NewUser`], [`Role`], [`Language`] |
//! | `messages.rs` | [`Message`], [`NewMessage`], [`Channel`], [`Direction`], SMS usage |
//! | `tasks.rs` | [`Task`] |
//! | `groceries.rs` | [`GroceryItem`] |
//! | `writer.rs` | [`StoreWriter`]: group commit of many turns' messages in one transaction |
//!
//! A domain is one file with its types, its private row types (so domain types stay free of
//! sqlx), its statements and its `impl Store { … }` block. SQLite accepts PostgreSQL's `$N`
//! placeholders and `RETURNING`, so one statement serves both backends; `with_pool!` runs the
//! same body on whichever pool the store holds. To add a domain: a migration in each of
//! `migrations/sqlite/` and `migrations/postgres/`, a file `src/store/<domain>.rs`, and a
//! `mod <domain>;` line (plus a `pub use` of its types) here.

mod groceries;
mod messages;
mod postgres;
pub mod seal;
mod sql;
mod sqlite;
mod tasks;
pub mod testing;
#[cfg(test)]
mod tests;
mod users;
mod writer;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use uuid::Uuid;

pub use seal::Sealer;

pub use groceries::GroceryItem;
pub use messages::{
    Channel, Direction, Message, MessageWrite, NewMessage, NewSmsUsage, SmsEncoding, SmsUsage,
    Written,
};
pub use tasks::Task;
pub use users::{Language, NewUser, Role, User};
pub use writer::{StoreWriter, WriterOptions, WriterStats};

/// Errors of the persistence layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist (or belongs to another user, which looks the same).
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write; the string names what was duplicated.
    #[error("already exists: {0}")]
    Conflict(String),
    /// The database URL has a scheme this build does not know.
    #[error("unsupported database URL scheme {0:?} (expected sqlite: or postgres:)")]
    UnsupportedScheme(String),
    /// A stored value could not be turned back into a domain value.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A user's id (UUID v7: time-ordered, so inserts stay append-mostly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub Uuid);

impl UserId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for UserId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Which database a store speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The handle the rest of the program holds: a pool of connections to one database, cheap to
/// clone (the pool is reference-counted) and shared by every caller.
///
/// Its methods live beside their types, one file per domain (`users.rs`, `messages.rs`, …).
#[derive(Debug, Clone)]
pub struct Store {
    /// The connections; [`with_pool!`] runs a method's body on whichever backend this is.
    pool: Pool,
    /// Seals personal text before it is written and opens it when read.
    sealer: Sealer,
}

/// The pool of one backend. Private: only the store's own modules speak SQL.
#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `body` on the store's pool, whichever backend it is.
///
/// `with_pool!(store, pool => body)` expands into a `match` on the store's [`Pool`] with one
/// arm per backend, the same `body` in each, where `pool` is that backend's `&sqlx::Pool<DB>`.
/// Each arm is compiled for its own database, so the body is written as for one concrete
/// database: `pool.begin()`, `query_as::<_, Row>(…).fetch_all(pool)`, `.execute(&mut *tx)`.
///
/// `with_pool!(store, pool, Db => body)` also binds `Db` to that arm's database type
/// (`sqlx::Sqlite` or `sqlx::Postgres`), for what must name it: `QueryBuilder::<Db>`, or a
/// nested `async fn` taking `&mut <Db as sqlx::Database>::Connection` so that one helper
/// serves both a pooled connection and a transaction.
///
/// `return` and `?` in `body` leave the enclosing method, as they would without the macro.
/// Usable in the store's own modules only: the pool is private to them.
///
/// ```ignore
/// pub async fn open_tasks(&self, user: UserId) -> Result<Vec<Task>> {
///     let rows = with_pool!(self, pool => {
///         sqlx::query_as::<_, TaskRow>(TASKS_BY_DONE)
///             .bind(user.0)
///             .bind(false)
///             .fetch_all(pool)
///             .await?
///     });
///     Ok(rows.into_iter().map(Task::from).collect())
/// }
/// ```
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
    ($store:expr, $pool:ident, $db:ident => $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => {
                type $db = ::sqlx::Sqlite;
                $body
            }
            $crate::store::Pool::Postgres($pool) => {
                type $db = ::sqlx::Postgres;
                $body
            }
        }
    };
}
pub(crate) use with_pool;

impl Store {
    /// The key ring personal columns are sealed with.
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// A cheap round trip, for readiness checks.
    #[tracing::instrument(skip_all)]
    pub async fn ping(&self) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }
}

/// Opens the database named by `url`, applies its migrations and returns the store.
///
/// `sqlite:` URLs create the file when missing and run in WAL mode with foreign keys on;
/// `postgres:` / `postgresql:` URLs connect to an existing database. Personal columns are
/// sealed with `sealer`'s active key.
pub async fn connect(url: &str, sealer: Sealer) -> Result<Store> {
    let scheme = url.split(':').next().unwrap_or_default();
    let pool = match scheme {
        "sqlite" => Pool::Sqlite(sqlite::connect(url).await?),
        "postgres" | "postgresql" => Pool::Postgres(postgres::connect(url).await?),
        other => return Err(StoreError::UnsupportedScheme(other.to_owned())),
    };
    Ok(Store { pool, sealer })
}
