//! Persistence: one [`Store`] contract, a SQLite and a PostgreSQL implementation.
//!
//! The backend is chosen by the URL scheme ([`connect`]): `sqlite:` for the embedded default,
//! `postgres:` / `postgresql:` for production. Migrations live in `migrations/sqlite/` and
//! `migrations/postgres/` and are applied by [`connect`] before the store is handed out.
//!
//! Every method that touches a user's data takes that user's [`UserId`] and scopes its query
//! by it: there is no way to read or change a row of another user through this trait.

mod postgres;
mod sql;
mod sqlite;
pub mod testing;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

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

/// The handle the rest of the program holds: cheap to clone.
pub type SharedStore = Arc<dyn Store>;

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

/// Languages Nudge answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Fr,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Fr => "fr",
        }
    }
}

impl FromStr for Language {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "en" => Ok(Language::En),
            "fr" => Ok(Language::Fr),
            other => Err(format!("unknown language {other:?} (expected en or fr)")),
        }
    }
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Standard,
    Premium,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Standard => "standard",
            Role::Premium => "premium",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "standard" => Ok(Role::Standard),
            "premium" => Ok(Role::Premium),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

/// A person who uses Nudge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub id: UserId,
    pub display_name: String,
    /// The user's own phone, E.164. Only texts from it reach this user's data.
    pub phone: String,
    /// The dedicated Twilio number this user texts, E.164.
    pub number: String,
    pub language: Language,
    /// IANA time zone name, e.g. `Europe/Paris`.
    pub time_zone: String,
    pub role: Role,
    /// Set by STOP and friends; no outbound SMS of any kind while true.
    pub sms_opted_out: bool,
    pub created_at: DateTime<Utc>,
}

/// What `admin user add` gives to create a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub display_name: String,
    pub phone: String,
    pub number: String,
    pub language: Language,
    pub time_zone: String,
}

/// Where a message travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Web,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Web => "web",
        }
    }
}

impl FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sms" => Ok(Channel::Sms),
            "web" => Ok(Channel::Web),
            other => Err(format!("unknown channel {other:?}")),
        }
    }
}

/// Which way a message travelled, seen from Nudge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

impl FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "inbound" => Ok(Direction::Inbound),
            "outbound" => Ok(Direction::Outbound),
            other => Err(format!("unknown direction {other:?}")),
        }
    }
}

/// One stored message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// Increasing per deployment, so "everything after id N" is a cheap query.
    pub id: i64,
    pub user_id: UserId,
    pub channel: Channel,
    pub direction: Direction,
    pub body: String,
    /// Twilio's `MessageSid` for inbound SMS: the dedupe key of retried webhooks.
    pub provider_message_id: Option<String>,
    /// For a reply, the id of the inbound message it answers.
    pub in_reply_to: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// A message about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub channel: Channel,
    pub direction: Direction,
    pub body: String,
    pub provider_message_id: Option<String>,
    pub in_reply_to: Option<i64>,
}

/// How an SMS body is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SmsEncoding {
    #[serde(rename = "GSM-7")]
    Gsm7,
    #[serde(rename = "UCS-2")]
    Ucs2,
}

impl SmsEncoding {
    pub fn as_str(self) -> &'static str {
        match self {
            SmsEncoding::Gsm7 => "GSM-7",
            SmsEncoding::Ucs2 => "UCS-2",
        }
    }
}

impl FromStr for SmsEncoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "GSM-7" => Ok(SmsEncoding::Gsm7),
            "UCS-2" => Ok(SmsEncoding::Ucs2),
            other => Err(format!("unknown SMS encoding {other:?}")),
        }
    }
}

/// One SMS sent or received, as billed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSmsUsage {
    pub direction: Direction,
    pub segments: u32,
    pub encoding: SmsEncoding,
    /// Estimated cost in millionths of a US dollar.
    pub estimated_cost_micros: i64,
}

/// A stored usage row.
#[derive(Debug, Clone, PartialEq)]
pub struct SmsUsage {
    pub id: i64,
    pub user_id: UserId,
    pub message_id: Option<i64>,
    pub direction: Direction,
    pub segments: u32,
    pub encoding: SmsEncoding,
    pub estimated_cost_micros: i64,
    pub created_at: DateTime<Utc>,
}

/// A task on the user's list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    pub id: i64,
    pub title: String,
    pub done: bool,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// One line of the grocery list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroceryItem {
    pub id: i64,
    pub name: String,
    pub checked: bool,
    pub created_at: DateTime<Utc>,
}

/// Which database a store speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The persistence contract. Implementations must scope every user query by `user`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<()>;

    /// Creates a user and their dedicated number in one transaction.
    /// A phone or number already taken is `Conflict("phone")` / `Conflict("number")`.
    async fn create_user(&self, new: &NewUser) -> Result<User>;
    async fn user(&self, id: UserId) -> Result<User>;
    /// The owner of a dedicated Twilio number (`NotFound` if nobody has it).
    async fn user_by_number(&self, number: &str) -> Result<User>;
    async fn set_sms_opt_out(&self, user: UserId, opted_out: bool) -> Result<()>;

    /// Stores one message. A repeated `provider_message_id` for the same user is
    /// `Conflict("provider_message_id")`.
    async fn insert_message(&self, user: UserId, message: &NewMessage) -> Result<Message>;
    /// Stores a reply and its SMS usage rows in one transaction (usage rows point at the reply).
    async fn insert_reply(
        &self,
        user: UserId,
        reply: &NewMessage,
        usage: &[NewSmsUsage],
    ) -> Result<Message>;
    async fn message_by_provider_id(
        &self,
        user: UserId,
        provider_message_id: &str,
    ) -> Result<Option<Message>>;
    /// The first reply stored for an inbound message, if any.
    async fn reply_to(&self, user: UserId, message_id: i64) -> Result<Option<Message>>;
    /// The user's last `limit` messages, oldest first.
    async fn recent_messages(&self, user: UserId, limit: u32) -> Result<Vec<Message>>;
    async fn record_sms_usage(
        &self,
        user: UserId,
        message_id: Option<i64>,
        usage: &NewSmsUsage,
    ) -> Result<()>;
    async fn sms_usage(&self, user: UserId) -> Result<Vec<SmsUsage>>;

    async fn add_task(&self, user: UserId, title: &str) -> Result<Task>;
    /// Open tasks, oldest first (the order the user sees them numbered in).
    async fn open_tasks(&self, user: UserId) -> Result<Vec<Task>>;
    /// Marks a task done; `NotFound` if it is not this user's.
    async fn complete_task(&self, user: UserId, task_id: i64) -> Result<Task>;

    /// Adds several items in one transaction, in the order given.
    async fn add_groceries(&self, user: UserId, names: &[String]) -> Result<Vec<GroceryItem>>;
    /// Unchecked items, oldest first.
    async fn groceries(&self, user: UserId) -> Result<Vec<GroceryItem>>;
    /// Checks an item off; `NotFound` if it is not this user's.
    async fn check_grocery(&self, user: UserId, item_id: i64) -> Result<GroceryItem>;
    /// Removes every item of the list; returns how many.
    async fn clear_groceries(&self, user: UserId) -> Result<u64>;
}

/// Opens the database named by `url`, applies its migrations and returns the store.
///
/// `sqlite:` URLs create the file when missing and run in WAL mode with foreign keys on;
/// `postgres:` / `postgresql:` URLs connect to an existing database.
pub async fn connect(url: &str) -> Result<SharedStore> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => Ok(Arc::new(SqliteStore::connect(url).await?)),
        "postgres" | "postgresql" => Ok(Arc::new(PgStore::connect(url).await?)),
        other => Err(StoreError::UnsupportedScheme(other.to_owned())),
    }
}
