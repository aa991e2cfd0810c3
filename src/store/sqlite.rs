//! The SQLite backend: the embedded default (one file, WAL mode, foreign keys on).
//!
//! The statements and the [`Store`](super::Store) methods are shared with PostgreSQL (see
//! [`with_pool!`](super::with_pool)); this file holds what is SQLite's own: how to open the
//! pool, and how a unique violation names what was duplicated.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::error::DatabaseError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteError, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use super::sqlite_batch::{BatchThread, Batching, CheckpointBounds};
use super::sqlite_conns::Conns;
use super::sqlite_reads::Readers;
use super::{Backend, Result, Sealer, WriterOptions};

/// Connections of a file database's pool, for cross-user work and migrations: in WAL mode
/// readers run beside the one writer.
const MAX_CONNECTIONS: u32 = 4;
/// A file database's connections for one person's store calls (see `sqlite_conns`).
const PERSON_CONNECTIONS: usize = 8;
/// Threads (each with its connection) for the reads that are run together (`sqlite_reads`).
const READER_THREADS: usize = 4;
/// At most this many connections for short reads run on their caller's thread
/// (`sqlite_reads`); as many as the runtime has workers, which is one per core.
const MAX_HERE_CONNECTIONS: usize = 16;
/// How long a writer waits for another writer's lock before `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free connection before giving up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens (creating it and its directory when missing) the database named by `url` and
/// applies `migrations/sqlite/`.
///
/// File databases run in WAL mode with `synchronous=FULL`, so a committed turn survives a
/// power cut, and foreign keys on. `sqlite::memory:` gets a single connection that never
/// closes, as each connection would otherwise see its own empty database.
pub(super) async fn connect(
    url: &str,
    sealer: &Sealer,
) -> Result<(
    SqlitePool,
    Option<BatchThread>,
    Option<Conns>,
    Option<Readers>,
)> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .foreign_keys(true)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT);
    // A file on this machine does not go stale the way a network connection can: no ping
    // before each use (with sqlx-sqlite, a ping is a hand-off to the connection's thread and
    // back, as costly as a small query, on every store call).
    let pool_options = SqlitePoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false);
    let pool = if is_memory_url(url) {
        pool_options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await?
    } else {
        create_parent_dir(options.get_filename()).await?;
        pool_options
            .max_connections(MAX_CONNECTIONS)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone().journal_mode(SqliteJournalMode::Wal))
            .await?
    };
    sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
    if !is_memory_url(url) {
        // Every connection is opened now, before any load, and kept (no idle timeout, no
        // maximum lifetime: a local file does not go stale), so no turn waits for one to be
        // opened and set up.
        let mut warm = Vec::with_capacity(MAX_CONNECTIONS as usize);
        for _ in 0..MAX_CONNECTIONS {
            warm.push(pool.acquire().await?);
        }
        drop(warm);
        let max_batch = WriterOptions::for_backend(Backend::Sqlite).max_batch;
        let thread = BatchThread::start(
            options.get_filename(),
            BUSY_TIMEOUT,
            sealer.clone(),
            Batching::up_to(max_batch),
            CheckpointBounds::DEFAULT,
        )?;
        let own = options.clone().journal_mode(SqliteJournalMode::Wal);
        let conns = Conns::open(&own, PERSON_CONNECTIONS, ACQUIRE_TIMEOUT).await?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let readers = Readers::start(
            options.get_filename(),
            READER_THREADS,
            cores.min(MAX_HERE_CONNECTIONS),
            BUSY_TIMEOUT,
        )?;
        return Ok((pool, Some(thread), Some(conns), Some(readers)));
    }
    // An in-memory database is private to its one connection: its batches and every call
    // stay on it.
    Ok((pool, None, None, None))
}

fn is_memory_url(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

async fn create_parent_dir(file: &Path) -> Result<()> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => Ok(tokio::fs::create_dir_all(dir).await?),
        _ => Ok(()),
    }
}

/// Names the field a unique violation is about, from SQLite's message
/// (`UNIQUE constraint failed: users.phone`); `None` for an error of another database.
pub(super) fn unique_field(e: &dyn DatabaseError) -> Option<&'static str> {
    e.try_downcast_ref::<SqliteError>()?;
    unique_field_named(e.message())
}

/// [`unique_field`] from SQLite's message alone.
pub(super) fn unique_field_named(message: &str) -> Option<&'static str> {
    match message.strip_prefix("UNIQUE constraint failed: ")? {
        "users.phone" => Some("phone"),
        "accounts.email" => Some("email"),
        "user_phone_numbers.number" => Some("number"),
        "messages.user_id, messages.provider_message_id" => Some("provider_message_id"),
        _ => None,
    }
}
