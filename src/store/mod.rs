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
//! | `tasks.rs` | [`Task`], [`NewTask`], [`Due`], [`Priority`] |
//! | `groceries.rs` | [`GroceryItem`] |
//! | `llm_usage.rs` | [`NewLlmUsage`], [`LlmUsage`], [`ProviderUsage`]: tokens per model call |
//! | `summaries.rs` | [`ConversationSummary`]: each user's rolling summary (sealed) |
//! | `memories.rs` | [`Memory`], [`NewMemory`], [`MemoryKind`]: long-term memories, sealed |
//! | `accounts.rs` | [`Account`], [`Profile`], consents, MFA, password history, phone codes |
//! | `sessions.rs` | [`Session`], rotating refresh tokens, trusted devices, sign-in throttles |
//! | `audit.rs` | [`AuditEvent`]: the append-only security log |
//! | `keys.rs` | key rotation: the active key ids seen, re-sealing every sealed column |
//! | `limits.rs` | rate limits (GCRA), in process or shared through Redis |
//! | `revocation.rs` | the revocation list of access tokens: the sessions table, or Redis |
//! | `privacy.rs` | export and erasure over every `user_id` table, retention purges |
//! | `goals.rs` | [`Goal`], [`GoalStatus`] |
//! | `expenses.rs` | [`Expense`], [`NewExpense`], [`ExpenseTotal`] |
//! | `notes.rs` | [`Note`] (sealed) |
//! | `reminders.rs` | [`Reminder`], [`NewReminder`], [`ReminderStatus`] (sealed text) |
//! | `writer.rs` | [`StoreWriter`]: group commit of many turns' messages in one transaction |
//!
//! A domain is one file with its types, its private row types (so domain types stay free of
//! sqlx), its statements and its `impl Store { … }` block. SQLite accepts PostgreSQL's `$N`
//! placeholders and `RETURNING`, so one statement serves both backends; `with_pool!` runs the
//! same body on whichever pool the store holds. To add a domain: a migration in each of
//! `migrations/sqlite/` and `migrations/postgres/`, a file `src/store/<domain>.rs`, and a
//! `mod <domain>;` line (plus a `pub use` of its types) here.

#[cfg(test)]
mod account_tests;
mod accounts;
mod activation;
mod audit;
mod conn_list;
mod deliveries;
mod digests;
mod expenses;
mod firings;
mod goals;
mod groceries;
mod keys;
pub mod limits;
mod llm_usage;
mod memories;
mod messages;
mod notes;
mod pg_conns;
pub(crate) mod postgres;
mod privacy;
mod reminders;
#[cfg(test)]
mod rest_tests;
pub mod revocation;
#[cfg(test)]
mod rls_tests;
pub mod seal;
mod sessions;
mod sql;
mod sqlite;
mod sqlite_batch;
mod sqlite_conns;
mod sqlite_reads;
mod summaries;
mod tasks;
pub mod testing;
/// The store's tests; `tests::on_each_backend` also serves other modules' tests.
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_tools;
mod users;
mod writer;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use uuid::Uuid;

pub use seal::Sealer;
pub use sqlite_batch::BATCH_THREAD_NAME;

pub use accounts::{
    Account, Consent, NewAccount, PhoneVerification, Profile, ProfileChange, VerificationPurpose,
};
pub use activation::Activation;
pub use audit::{AuditEvent, NewAuditEvent, Outcome};
pub use deliveries::{SentUsage, SmsDelivery, StatusReport};
pub use digests::{DigestFiring, DueDigest};
pub use expenses::{Expense, ExpenseChange, ExpenseTotal, NewExpense};
pub use firings::{DueReminder, Firing, FiringAnswer, FiringStatus};
pub use goals::{Goal, GoalStatus};
pub use groceries::GroceryItem;
pub use keys::{ResealStep, SEALED_COLUMNS};
pub use llm_usage::{LlmUsage, NewLlmUsage, ProviderUsage};
pub use memories::{
    Memory, MemoryChange, MemoryEmbedding, MemoryFingerprint, MemoryKind, MergedMemory, NewMemory,
};
pub use messages::{
    Channel, Committed, Direction, Message, MessageWrite, NewMessage, NewSmsUsage, ReplyWrite,
    SmsEncoding, SmsUsage, SummaryWrite, Written,
};
pub use notes::Note;
pub use privacy::{EXPORT_FORMAT, ErasureReport};
pub use reminders::{NewReminder, Reminder, ReminderStatus, ReminderTime};
pub use sessions::{NewSession, Rotation, Session, Throttle};
pub use summaries::ConversationSummary;
pub use tasks::{Due, NewTask, Priority, Task};
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
    /// An error of a SQLite connection of our own: the one batches run on (`sqlite_batch`) or
    /// a reader thread's (`sqlite_reads`).
    #[error("database error: {0}")]
    Batch(rusqlite::Error),
}

impl From<std::io::Error> for StoreError {
    /// A failure of the store's own files or threads reads as sqlx reports one of its own.
    fn from(e: std::io::Error) -> Self {
        StoreError::Database(sqlx::Error::Io(e))
    }
}

impl From<rusqlite::Error> for StoreError {
    /// Constraint violations read as the pool's do: a missing user is not found, a taken
    /// unique value a conflict naming what was taken.
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(failure, message) = &e {
            match failure.extended_code {
                rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return StoreError::NotFound,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    if let Some(field) = message.as_deref().and_then(sqlite::unique_field_named) {
                        return StoreError::Conflict(field.to_owned());
                    }
                }
                _ => {}
            }
        }
        StoreError::Batch(e)
    }
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

impl Backend {
    /// `sqlite` or `postgres`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
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
    /// PostgreSQL only: the connections [`with_user!`] and the group-commit writer run on,
    /// each call scoping its session first (see `pg_conns`): the owner's, switching to
    /// `nudge_app`, or those of a login role that row-level security binds and that cannot
    /// switch to any other role (`NUDGE_DATABASE_API_URL`).
    scopes: Option<std::sync::Arc<pg_conns::PgConns>>,
    /// Ticks when this process writes a reminder, so the scheduler looks at once instead of
    /// at its next poll (see [`Store::reminder_changes`]).
    reminder_changes: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// SQLite file databases only: the thread that runs the group-commit writer's batches on
    /// a connection of its own, one hand-off per batch (see `sqlite_batch`).
    batches: Option<std::sync::Arc<sqlite_batch::BatchThread>>,
    /// SQLite file databases only: the connections [`with_user!`] runs on, given back without
    /// sqlx's ping (see `sqlite_conns`).
    conns: Option<std::sync::Arc<sqlite_conns::Conns>>,
    /// SQLite file databases only: the threads that run reads wanted together, one hand-off
    /// for all of them (see `sqlite_reads`).
    readers: Option<std::sync::Arc<sqlite_reads::Readers>>,
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

/// Runs `body` for one user, behind row-level security on PostgreSQL.
///
/// Every store method that reads or writes one user's rows goes through this macro; the few
/// that legitimately span users (finding who a phone number or an e-mail belongs to, the
/// reminder scheduler's scan of due reminders, retention purges, key rotation, erasure, the
/// security log, admin audited reads) use [`with_pool!`] and say so in their docs. A test
/// (`store::rls_tests`) lists them: a new cross-user method must be added there on purpose.
///
/// `with_user!(store, user, conn => body)`: on PostgreSQL, `body` runs on a connection whose
/// session was first switched to the role `nudge_app` with `app.user_id` set (one round trip,
/// see `pg_conns`), so the database itself refuses rows of any other user — a second wall
/// behind the statement's own `WHERE user_id = $1`. On SQLite it runs on a connection of its
/// own. Each statement commits on its own. `conn` is a `&mut` connection of the arm's
/// database: pass `&mut *conn` to each query.
///
/// `with_user!(store, user, atomic conn => body)` runs `body` in a transaction: for bodies
/// whose statements must commit together. It commits when `body` yields its value and rolls
/// back when `?` or `return` leaves the method early (so a body that writes must not
/// `return Ok(…)` early). `, Db` after `conn` binds `Db` to the arm's database type, as with
/// [`with_pool!`].
///
/// Costs one round trip more than [`with_pool!`] on PostgreSQL (the scope), two more in a
/// transaction (`BEGIN`, `COMMIT`).
macro_rules! with_user {
    ($store:expr, $user:expr, $conn:ident => $body:expr) => {
        $crate::store::with_user!(@run $store, $user, pooled, $conn, __NudgeDb => $body)
    };
    ($store:expr, $user:expr, $conn:ident, $db:ident => $body:expr) => {
        $crate::store::with_user!(@run $store, $user, pooled, $conn, $db => $body)
    };
    ($store:expr, $user:expr, atomic $conn:ident => $body:expr) => {
        $crate::store::with_user!(@run $store, $user, atomic, $conn, __NudgeDb => $body)
    };
    ($store:expr, $user:expr, atomic $conn:ident, $db:ident => $body:expr) => {
        $crate::store::with_user!(@run $store, $user, atomic, $conn, $db => $body)
    };
    (@sqlite pooled, $store:expr, $pool:ident, $conn:ident, $db:ident => $body:expr) => {{
        let mut pooled = $store.sqlite_conn($pool).await?;
        #[allow(dead_code)]
        type $db = ::sqlx::Sqlite;
        let $conn = &mut *pooled;
        $body
    }};
    (@sqlite atomic, $store:expr, $pool:ident, $conn:ident, $db:ident => $body:expr) => {{
        let mut pooled = $store.sqlite_conn($pool).await?;
        // Every atomic body writes: IMMEDIATE takes the write lock at BEGIN, waiting for it
        // up to the busy timeout. A deferred transaction that read first would instead fail
        // at its first write whenever another connection (the batch thread) had committed
        // since its read (SQLITE_BUSY_SNAPSHOT), which no waiting can cure.
        let mut tx = ::sqlx::Connection::begin_with(&mut *pooled, "BEGIN IMMEDIATE").await?;
        #[allow(dead_code)]
        type $db = ::sqlx::Sqlite;
        let value = {
            let $conn = &mut *tx;
            $body
        };
        tx.commit().await?;
        value
    }};
    (@run $store:expr, $user:expr, $mode:ident, $conn:ident, $db:ident => $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite(pool) => {
                $crate::store::with_user!(@sqlite $mode, $store, pool, $conn, $db => $body)
            }
            $crate::store::Pool::Postgres(_) => {
                let mut scoped = $store
                    .pg_scopes()?
                    .scoped($crate::store::pg_conns::Scope::User($user))
                    .await?;
                $crate::store::with_user!(@postgres $mode, scoped, $conn, $db => $body)
            }
        }
    };
    (@postgres pooled, $scoped:ident, $conn:ident, $db:ident => $body:expr) => {{
        #[allow(dead_code)]
        type $db = ::sqlx::Postgres;
        let $conn = &mut *$scoped;
        $body
    }};
    (@postgres atomic, $scoped:ident, $conn:ident, $db:ident => $body:expr) => {{
        let mut tx = ::sqlx::Connection::begin(&mut *$scoped).await?;
        #[allow(dead_code)]
        type $db = ::sqlx::Postgres;
        let value = {
            let $conn = &mut *tx;
            $body
        };
        tx.commit().await?;
        value
    }};
}
pub(crate) use with_user;

impl Store {
    /// The connection [`with_user!`] runs one person's statements on with SQLite: one of the
    /// file database's own (`sqlite_conns`), or the pool's for an in-memory database.
    pub(in crate::store) async fn sqlite_conn(
        &self,
        pool: &sqlx::SqlitePool,
    ) -> Result<sqlite_conns::SqliteConn<'_>> {
        Ok(match &self.conns {
            Some(conns) => sqlite_conns::SqliteConn::Taken(conns.get().await?),
            None => sqlite_conns::SqliteConn::Pooled(pool.acquire().await?),
        })
    }

    /// SQLite file databases only: the thread the group-commit writer hands its writes to.
    fn batch_thread(&self) -> Option<std::sync::Arc<sqlite_batch::BatchThread>> {
        self.batches.clone()
    }

    /// This store with SQLite's group-commit batches run on the pool, statement by statement,
    /// as an in-memory database runs them, instead of on their own thread (see
    /// `sqlite_batch`): what `benches/store.rs` measures the thread against.
    pub fn with_batches_on_the_pool(mut self) -> Store {
        self.batches = None;
        self
    }

    /// This store with one person's store calls on SQLite's pool, which pings each connection
    /// as it is given back, instead of on the connections of its own (see `sqlite_conns`)
    /// and the readers (`sqlite_reads`): what `benches/store.rs` measures them against.
    pub fn with_person_calls_on_the_pool(mut self) -> Store {
        self.conns = None;
        self.readers = None;
        self
    }

    /// The key ring personal columns are sealed with.
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// Opens a value of a sealed column of `user`'s (see [`Sealer::open_column`]).
    pub(crate) fn open_column(&self, column: &str, user: UserId, value: &str) -> Result<String> {
        self.sealer.open_column(column, user, value)
    }

    /// Seals `text` for `column` (`table.column`) of `user`'s row.
    pub(crate) fn seal_column(&self, column: &str, user: UserId, text: &str) -> String {
        self.sealer.seal_column(column, user, text)
    }

    /// Sends [`with_user!`]'s work through `url`, a PostgreSQL login role that row-level
    /// security binds (a member of `nudge_app` that owns nothing and may not become the
    /// owner): SQL that reaches such a connection cannot leave its user's rows, not even by
    /// switching roles. Ignored on SQLite.
    pub async fn with_scoped_pool(mut self, url: &str) -> Result<Store> {
        if let Pool::Postgres(_) = self.pool {
            let count = self.pg_scopes()?.capacity();
            self.scopes = Some(std::sync::Arc::new(
                postgres::connect_scoped(url, count).await?,
            ));
        }
        Ok(self)
    }

    /// The connections of one person's calls and of the writer's batches on PostgreSQL.
    pub(in crate::store) fn pg_scopes(&self) -> Result<&pg_conns::PgConns> {
        // Set whenever the pool is PostgreSQL's (`connect`).
        self.scopes.as_deref().ok_or_else(|| {
            sqlx::Error::Configuration("no scoped PostgreSQL connections".into()).into()
        })
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

/// How a store is opened, beyond its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// PostgreSQL: connections the node opens at most, half for work across users, half for
    /// one person's calls and the writer's batches. SQLite's are fixed.
    pub postgres_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            postgres_connections: postgres::DEFAULT_CONNECTIONS,
        }
    }
}

/// Opens the database named by `url` with the default [`StoreOptions`], applies its
/// migrations and returns the store.
pub async fn connect(url: &str, sealer: Sealer) -> Result<Store> {
    connect_with(url, sealer, StoreOptions::default()).await
}

/// Opens the database named by `url`, applies its migrations and returns the store.
///
/// `sqlite:` URLs create the file when missing and run in WAL mode with foreign keys on;
/// `postgres:` / `postgresql:` URLs connect to an existing database. Personal columns are
/// sealed with `sealer`'s active key.
pub async fn connect_with(url: &str, sealer: Sealer, options: StoreOptions) -> Result<Store> {
    let scheme = url.split(':').next().unwrap_or_default();
    let mut batches = None;
    let mut conns = None;
    let mut readers = None;
    let mut scopes = None;
    let pool = match scheme {
        "sqlite" => {
            let (pool, thread, own, reads) = sqlite::connect(url, &sealer).await?;
            batches = thread.map(std::sync::Arc::new);
            conns = own.map(std::sync::Arc::new);
            readers = reads.map(std::sync::Arc::new);
            Pool::Sqlite(pool)
        }
        "postgres" | "postgresql" => {
            let (pool_size, scoped) = postgres::split(options.postgres_connections);
            let (pool, options) = postgres::connect(url, pool_size).await?;
            let role = postgres::can_use_app_role(&pool).await?;
            if !role {
                tracing::warn!(
                    "role nudge_app is missing or not granted to this database user: \
                     row-level security does not restrict the REST API (see README)"
                );
            }
            scopes = Some(std::sync::Arc::new(postgres::scoped_conns(
                options,
                scoped,
                role,
                Vec::new(),
            )));
            Pool::Postgres(pool)
        }
        other => return Err(StoreError::UnsupportedScheme(other.to_owned())),
    };
    Ok(Store {
        pool,
        sealer,
        scopes,
        reminder_changes: std::sync::Arc::new(tokio::sync::watch::Sender::new(0)),
        batches,
        conns,
        readers,
    })
}
