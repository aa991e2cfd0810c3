//! The PostgreSQL backend, for production and clusters.
//!
//! The statements and the [`Store`](super::Store) methods are shared with SQLite (see
//! [`with_pool!`](super::with_pool)); this file holds what is PostgreSQL's own: how to open
//! the pool and the scoped connections, and how a unique violation names what was
//! duplicated.

use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgPool, PgPoolOptions};

use super::Result;
use super::pg_conns::PgConns;

/// A node's connections (`NUDGE_DATABASE_CONNECTIONS`) when none are configured: with 12 in
/// the pool and 12 scoped, enough for a 2-core node's concurrent turns, and a cluster of four
/// nodes stays under PostgreSQL's default `max_connections` (100).
pub(crate) const DEFAULT_CONNECTIONS: u32 = 24;
/// How long a caller waits for a free connection before giving up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection idle longer than this is pinged before it is handed out (the server may have
/// restarted or a firewall dropped it); a busy pool's connections are not, since every ping
/// is a round trip to the server on each store call.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);

/// How a node's `connections` are shared: the pool's (cross-user work, migrations) and the
/// scoped ones (one person's store calls and the writer's batches, `pg_conns`), half each,
/// at least one of each.
pub(super) fn split(connections: u32) -> (u32, usize) {
    let pool = (connections / 2).max(1);
    (pool, connections.saturating_sub(pool).max(1) as usize)
}

/// The options of every pool of this node: `size` connections at most, pinging only those
/// that sat idle.
fn pool_options(size: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// Connects to the existing database named by `url` with a pool of `size` connections and
/// applies `migrations/postgres/` (under sqlx's advisory lock, so nodes starting together do
/// not race). Gives back the pool and the options its connections were opened with.
pub(super) async fn connect(url: &str, size: u32) -> Result<(PgPool, PgConnectOptions)> {
    let options = PgConnectOptions::from_str(url)?.application_name("nudge");
    let pool = pool_options(size).connect_with(options.clone()).await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok((pool, options))
}

/// Up to `count` connections of one person's store calls and of the group-commit writer's
/// batches (see `pg_conns`), opened with `options` as they are needed; `idle` are already
/// open.
pub(super) fn scoped_conns(
    options: PgConnectOptions,
    count: usize,
    role: bool,
    idle: Vec<PgConnection>,
) -> PgConns {
    PgConns::new(options, count, role, ACQUIRE_TIMEOUT, idle)
}

/// Connects as the row-level-security-bound login role named by `url` (no migrations: it may
/// not change the schema), and checks the role is bound: not a superuser, not BYPASSRLS, and
/// unable to become the owner of the tables. Its `count` connections serve one person's store
/// calls and the writer's batches.
pub(super) async fn connect_scoped(url: &str, count: usize) -> Result<PgConns> {
    let options = PgConnectOptions::from_str(url)?.application_name("nudge-api");
    let mut conn = options.connect().await?;
    let (bound,): (bool,) = sqlx::query_as(
        "SELECT NOT r.rolsuper AND NOT r.rolbypassrls \
         AND NOT pg_has_role(current_user, (SELECT tableowner FROM pg_tables \
             WHERE schemaname = current_schema() AND tablename = 'users'), 'MEMBER') \
         FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await?;
    if !bound {
        return Err(sqlx::Error::Configuration(
            "NUDGE_DATABASE_API_URL must log in as a role that row-level security binds \
             (not a superuser, not BYPASSRLS, not a member of the tables' owner)"
                .into(),
        )
        .into());
    }
    Ok(scoped_conns(options, count, false, vec![conn]))
}

/// True when this database user may switch to `nudge_app` (the role row-level security
/// binds, created by `migrations/postgres/0041_row_level_security.sql`).
pub(super) async fn can_use_app_role(pool: &PgPool) -> Result<bool> {
    let (usable,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nudge_app') \
         AND CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nudge_app') \
         THEN pg_has_role(current_user, 'nudge_app', 'MEMBER') ELSE false END",
    )
    .fetch_one(pool)
    .await?;
    Ok(usable)
}

/// Names the field a unique violation is about, from the constraint names spelled out in
/// `migrations/postgres/`; `None` for an error of another database.
pub(super) fn unique_field(e: &dyn DatabaseError) -> Option<&'static str> {
    e.try_downcast_ref::<PgDatabaseError>()?;
    match e.constraint()? {
        "users_phone_key" => Some("phone"),
        "accounts_email_key" => Some("email"),
        "user_phone_numbers_pkey" => Some("number"),
        "messages_user_id_provider_message_id_key" => Some("provider_message_id"),
        _ => None,
    }
}
