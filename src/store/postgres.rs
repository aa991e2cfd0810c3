//! The PostgreSQL backend, for production and clusters.
//!
//! The statements and the [`Store`](super::Store) implementation are shared with SQLite
//! (see [`super::sql`]); this file holds what is PostgreSQL's own: the pool and how a
//! unique violation names what was duplicated.

use std::str::FromStr;
use std::time::Duration;

use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::sql::impl_store;
use super::{Backend, Result};

/// Connections per node: enough for a 2-core node's concurrent turns, and a cluster of nodes
/// stays well under PostgreSQL's default `max_connections` (100).
const MAX_CONNECTIONS: u32 = 16;
/// How long a caller waits for a free connection before giving up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The [`Store`](super::Store) on a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    /// Cheap to clone; shared by every caller of this node.
    pool: PgPool,
}

impl PgStore {
    /// Connects to the existing database named by `url` and applies `migrations/postgres/`
    /// (under sqlx's advisory lock, so nodes starting together do not race).
    pub async fn connect(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("nudge");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }
}

/// Names the field a unique violation is about, from the constraint names spelled out in
/// `migrations/postgres/`.
fn unique_field(e: &dyn DatabaseError) -> Option<&'static str> {
    match e.constraint()? {
        "users_phone_key" => Some("phone"),
        "user_phone_numbers_pkey" => Some("number"),
        "messages_user_id_provider_message_id_key" => Some("provider_message_id"),
        _ => None,
    }
}

impl_store!(PgStore, sqlx::Postgres, Backend::Postgres, unique_field);
