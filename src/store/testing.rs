//! Test support for the store: fresh databases for tests on both backends.
//!
//! Used by the store's own tests and by the integration tests in `tests/`.

use std::future::Future;

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use url::Url;
use uuid::Uuid;

use super::{Sealer, Store, connect};

/// The environment variable that names a PostgreSQL server tests may create databases on: an
/// admin URL such as `postgres://postgres@127.0.0.1:55432/postgres`
/// (`eval "$(scripts/services.sh start)"` exports it).
pub const POSTGRES_URL_VAR: &str = "NUDGE_TEST_POSTGRES_URL";

/// Creates a new, empty database `nudge_test_<uuid>` on the server named by
/// `NUDGE_TEST_POSTGRES_URL` and returns its URL; `None` when the variable is unset or empty.
///
/// # Panics
///
/// When the variable is set but the server cannot be reached or refuses to create the
/// database: a test that was asked to run on PostgreSQL must not pass silently.
pub async fn fresh_postgres_url() -> Option<String> {
    let admin_url = admin_url()?;
    let mut url = match Url::parse(&admin_url) {
        Ok(url) => url,
        Err(e) => panic!("{POSTGRES_URL_VAR} is not a URL: {e}"),
    };
    let name = format!("nudge_test_{}", Uuid::now_v7().simple());
    // `name` is made of ASCII letters, digits and `_` only: safe to splice.
    run_as_admin(&admin_url, format!("CREATE DATABASE {name}")).await;
    url.set_path(&name);
    Some(url.into())
}

/// Drops a database made by [`fresh_postgres_url`], closing the connections still open to
/// it. Does nothing for a database not named like one of those, or without the variable.
///
/// # Panics
///
/// When the server cannot be reached or refuses the drop.
pub async fn drop_postgres_database(url: &str) {
    let Some(admin_url) = admin_url() else {
        return;
    };
    let name = Url::parse(url).map(|url| url.path().trim_start_matches('/').to_owned());
    if let Ok(name) = name
        && is_test_database(&name)
    {
        run_as_admin(
            &admin_url,
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
        .await;
    }
}

/// Runs `test` on a fresh SQLite file database, then on a fresh PostgreSQL database when one
/// is available (and panics when none is but CI requires it). A failing test's output says
/// which backend it failed on.
///
/// # Panics
///
/// When a store cannot be opened, or PostgreSQL is required ([`require_postgres`]) but
/// [`POSTGRES_URL_VAR`] is unset.
pub async fn on_each_backend<F, Fut>(test: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.0.join("nudge.db").display());
    eprintln!("on SQLite");
    match connect(&url, Sealer::generate()).await {
        Ok(store) => test(store).await,
        Err(e) => panic!("the SQLite store does not open: {e}"),
    }
    drop(dir);

    match fresh_postgres_url().await {
        Some(url) => {
            eprintln!("on PostgreSQL");
            match connect(&url, Sealer::generate()).await {
                Ok(store) => test(store).await,
                Err(e) => panic!("the PostgreSQL store does not open: {e}"),
            }
            drop_postgres_database(&url).await;
        }
        None if require_postgres() => panic!(
            "CI runs the store tests on PostgreSQL too, but {POSTGRES_URL_VAR} is not set \
             (run `eval \"$(scripts/services.sh start)\"`)"
        ),
        None => {}
    }
}

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("nudge-test-{}", Uuid::now_v7().simple()));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover directory in the temporary directory harms nobody.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The environment variable that names a Redis server tests may use
/// (`eval "$(scripts/services.sh start)"` exports it).
pub const REDIS_URL_VAR: &str = "NUDGE_TEST_REDIS_URL";

/// The Redis URL of [`REDIS_URL_VAR`]; `None` when it is unset or empty, so the test skips.
///
/// # Panics
///
/// When it is unset on CI ([`require_postgres`]: CI runs every service's variant).
pub fn redis_url() -> Option<String> {
    let url = std::env::var(REDIS_URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty());
    if url.is_none() {
        assert!(
            !require_postgres(),
            "CI runs the Redis tests: set {REDIS_URL_VAR}"
        );
        eprintln!("{REDIS_URL_VAR} unset: Redis test skipped");
    }
    url
}

/// Whether tests must run on PostgreSQL rather than skip it: true on CI (`CI` set).
pub fn require_postgres() -> bool {
    std::env::var_os("CI").is_some()
}

fn admin_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// Runs one statement (which cannot run in a transaction) on the admin database.
async fn run_as_admin(admin_url: &str, statement: String) {
    let mut admin = match PgConnection::connect(admin_url).await {
        Ok(conn) => conn,
        Err(e) => panic!("cannot connect to {POSTGRES_URL_VAR}: {e}"),
    };
    if let Err(e) = sqlx::raw_sql(AssertSqlSafe(statement.as_str()))
        .execute(&mut admin)
        .await
    {
        panic!("{statement} failed: {e}");
    }
    // Closing is a courtesy to the server; the statement is done either way.
    let _ = admin.close().await;
}

/// `nudge_test_` and 32 lowercase hex digits, as [`fresh_postgres_url`] names them.
fn is_test_database(name: &str) -> bool {
    name.strip_prefix("nudge_test_").is_some_and(|id| {
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A freshly migrated in-memory SQLite store, for tests that a call behaves the same there
/// (no reader threads, no batch thread: everything on the pool).
#[cfg(test)]
pub(crate) async fn in_memory() -> Store {
    connect("sqlite::memory:", Sealer::generate())
        .await
        .expect("an in-memory SQLite store")
}

/// How SQLite plans `sql` on a freshly migrated in-memory database: the detail of each step
/// of `EXPLAIN QUERY PLAN`, with its `parameters` bound to NULL (a plan does not depend on
/// them). For tests that a query finds its rows through the index meant for it.
#[cfg(test)]
pub(crate) async fn sqlite_plan(sql: &str, parameters: usize) -> Vec<String> {
    let store = in_memory().await;
    let super::Pool::Sqlite(pool) = &store.pool else {
        panic!("sqlite::memory: opens a SQLite store");
    };
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(AssertSqlSafe(explain));
    for _ in 0..parameters {
        query = query.bind(None::<i64>);
    }
    let steps = query.fetch_all(pool).await.expect("EXPLAIN QUERY PLAN");
    steps.into_iter().map(|(.., detail)| detail).collect()
}

/// A SQLite file at `path` migrated up to `version` only, with its URL: for tests that a
/// later migration keeps the data an older schema held.
#[cfg(test)]
pub(crate) async fn sqlite_file_at_migration(
    path: &std::path::Path,
    version: i64,
) -> (String, sqlx::SqlitePool) {
    use std::str::FromStr;

    let url = format!("sqlite://{}", path.display());
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .expect("a SQLite URL")
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = sqlx::SqlitePool::connect_with(options)
        .await
        .expect("the file opens");
    sqlx::migrate!("./migrations/sqlite")
        .run_to(version, &pool)
        .await
        .expect("the migrations up to the version asked for");
    (url, pool)
}
