//! PostgreSQL connections for one person's store calls and the group-commit writer's batches,
//! scoped for row-level security in one round trip and given back without a ping.
//!
//! Through sqlx's pool, a person's read was four round trips: `BEGIN` with the scope
//! (`SET LOCAL`), the statement, `COMMIT`, and the ping sqlx's pool sends on every connection
//! given back to it. Here it is two: the scope, set for the session (the role and
//! `app.user_id`, by one prepared `set_config` statement), then the statement in its own
//! implicit transaction. A connection serves only these calls, each of which sets its own
//! scope first, so a scope left on a connection from its last call is never what a statement
//! runs under.
//!
//! The scope's round trip also tells whether the connection still works: one that fails it
//! for any reason but the database's refusal (the server restarted, the socket was closed)
//! is dropped and a new one opened in its place, once. A caller that gave up mid-statement
//! leaves its connection to drain the rest of its answer before its next statement (sqlx
//! waits for the server to be ready before sending anything), and a dropped transaction
//! queues its rollback the same way: connections go straight back to the idle list.

use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgSeverity};

use super::conn_list::{ConnList, Taken};
use super::{Result, UserId};

/// Whose rows a connection may see: one person's, or the users of a group-commit batch.
pub(crate) enum Scope<'a> {
    User(UserId),
    Batch(&'a [UserId]),
}

/// Sets the scope for the session (`is_local` false): `$1` the person, `$2` the batch's users
/// as an array literal, the other empty. A prepared statement, so the server parses it once
/// per connection and each call binds its values; `SET ROLE nudge_app` is `role`'s setting.
const SET_SCOPE_AND_ROLE: &str = "SELECT set_config('role', 'nudge_app', false), \
     set_config('app.user_id', $1, false), set_config('app.batch_user_ids', $2, false)";
/// The same for a login role that row-level security binds already.
const SET_SCOPE: &str =
    "SELECT set_config('app.user_id', $1, false), set_config('app.batch_user_ids', $2, false)";

impl Scope<'_> {
    /// The two settings' values: both set every time, so that neither is left from a call of
    /// the other kind.
    fn settings(&self) -> (String, String) {
        match self {
            Scope::User(user) => (user.0.to_string(), String::new()),
            Scope::Batch(users) => {
                let list = users
                    .iter()
                    .map(|u| u.0.to_string())
                    .collect::<Vec<_>>()
                    .join(",");
                (String::new(), format!("{{{list}}}"))
            }
        }
    }
}

/// Sets the scope `settings` for the session, and the role with `role`, in one round trip.
async fn set(conn: &mut PgConnection, role: bool, settings: &(String, String)) -> sqlx::Result<()> {
    let statement = if role { SET_SCOPE_AND_ROLE } else { SET_SCOPE };
    sqlx::query(statement)
        .bind(settings.0.as_str())
        .bind(settings.1.as_str())
        .execute(conn)
        .await
        .map(drop)
}

/// Whether `error` means the connection is of no more use: lost on the way (the socket, the
/// protocol), or a database error that ends the session (the server shutting down, the
/// backend terminated, which PostgreSQL reports with severity FATAL before it hangs up).
fn ends_the_session(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => e
            .try_downcast_ref::<PgDatabaseError>()
            .is_none_or(|e| matches!(e.severity(), PgSeverity::Fatal | PgSeverity::Panic)),
        _ => true,
    }
}

/// Connections opened on demand up to a bound, idle ones kept, each taken for one call.
#[derive(Debug)]
pub(crate) struct PgConns {
    list: ConnList<PgConnection>,
    options: PgConnectOptions,
    /// Switch to `nudge_app` with the scope (an owner that may); a login role that row-level
    /// security binds already is bound and does not.
    role: bool,
}

impl PgConns {
    /// Up to `count` connections (at least one) opened with `options` as they are needed;
    /// `idle` are already open.
    pub(super) fn new(
        options: PgConnectOptions,
        count: usize,
        role: bool,
        acquire_timeout: Duration,
        idle: Vec<PgConnection>,
    ) -> Self {
        Self {
            list: ConnList::new(idle, count, acquire_timeout),
            options,
            role,
        }
    }

    /// A connection whose session is scoped to `scope`, waiting for one if all are taken (up
    /// to the acquire timeout, then `PoolTimedOut` as sqlx's pool would).
    pub(crate) async fn scoped(&self, scope: Scope<'_>) -> Result<Taken<'_, PgConnection>> {
        let settings = scope.settings();
        let (permit, idle) = self.list.take().await?;
        let conn = match idle {
            Some(mut conn) => match set(&mut conn, self.role, &settings).await {
                Ok(()) => conn,
                Err(error) if !ends_the_session(&error) => {
                    // The database refused the scope; the connection itself answers (and
                    // goes back to the list).
                    drop(Taken::new(conn, &self.list, permit));
                    return Err(error.into());
                }
                Err(error) => {
                    tracing::warn!(%error, "a database connection was lost; opening another");
                    drop(conn);
                    self.open(&settings).await?
                }
            },
            None => self.open(&settings).await?,
        };
        Ok(Taken::new(conn, &self.list, permit))
    }

    /// Opens a connection and scopes it.
    async fn open(&self, settings: &(String, String)) -> Result<PgConnection> {
        let mut conn = tokio::time::timeout(self.list.acquire_timeout(), self.options.connect())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        set(&mut conn, self.role, settings).await?;
        Ok(conn)
    }

    /// How many connections it may hold.
    pub(super) fn capacity(&self) -> usize {
        self.list.capacity()
    }

    /// Whether each call switches to `nudge_app`.
    #[cfg(test)]
    pub(super) fn switches_role(&self) -> bool {
        self.role
    }

    /// Connections idle now.
    #[cfg(test)]
    pub(super) fn idle(&self) -> usize {
        self.list.idle()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `test` on a fresh store of the test server's, when there is one.
    async fn on_postgres<F, Fut>(test: F)
    where
        F: Fn(crate::store::Store) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        crate::store::testing::on_each_backend(|store| async {
            if store.backend() == crate::store::Backend::Postgres {
                test(store).await;
            }
        })
        .await;
    }

    async fn backend_pid(conn: &mut PgConnection) -> i32 {
        let (pid,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
            .fetch_one(conn)
            .await
            .expect("the connection answers");
        pid
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced_at_its_next_call() {
        on_postgres(|store| async move {
            let user = crate::store::tests::create(&store, 1).await.id;
            let conns = store.pg_scopes().expect("scoped connections");
            let first = {
                let mut conn = conns.scoped(Scope::User(user)).await.expect("a connection");
                backend_pid(&mut conn).await
            };
            assert_eq!(conns.idle(), 1, "given back");

            crate::store::with_pool!(store, pool => {
                sqlx::query("SELECT pg_terminate_backend($1)")
                    .bind(first)
                    .execute(pool)
                    .await
                    .expect("the owner ends the connection's backend");
            });
            // The backend is gone once its process exits; the next call finds it so.
            tokio::time::sleep(Duration::from_millis(100)).await;

            let mut conn = conns
                .scoped(Scope::User(user))
                .await
                .expect("a new connection");
            let second = backend_pid(&mut conn).await;
            assert_ne!(first, second, "another backend");
            let (scope,): (String,) = sqlx::query_as("SELECT current_setting('app.user_id')")
                .fetch_one(&mut *conn)
                .await
                .expect("a read");
            assert_eq!(scope, user.0.to_string(), "scoped like the one it replaced");
        })
        .await;
    }

    #[tokio::test]
    async fn a_transaction_dropped_unfinished_is_rolled_back_before_the_next_call() {
        on_postgres(|store| async move {
            let user = crate::store::tests::create(&store, 1).await.id;
            let conns = store.pg_scopes().expect("scoped connections");
            {
                let mut conn = conns.scoped(Scope::User(user)).await.expect("a connection");
                let mut tx = sqlx::Connection::begin(&mut *conn)
                    .await
                    .expect("a transaction");
                sqlx::query(
                    "INSERT INTO messages (user_id, channel, direction, body, created_at) \
                     VALUES ($1, 'sms', 'inbound', 'hi', now())",
                )
                .bind(user.0)
                .execute(&mut *tx)
                .await
                .expect("a write in the transaction");
                // Dropped here without a commit, as `?` leaving `with_user!` would.
            }
            assert_eq!(conns.idle(), 1, "given back");
            let mut conn = conns
                .scoped(Scope::User(user))
                .await
                .expect("the connection");
            let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages")
                .fetch_one(&mut *conn)
                .await
                .expect("a read");
            // Still inside the dropped transaction, the read would see its own write.
            assert_eq!(count, 0, "the write was rolled back");
        })
        .await;
    }

    #[tokio::test]
    async fn a_call_given_up_mid_statement_leaves_its_connection_usable_and_rescoped() {
        on_postgres(|store| async move {
            let ana = crate::store::tests::create(&store, 1).await.id;
            let bob = crate::store::tests::create(&store, 2).await.id;
            let conns = store.pg_scopes().expect("scoped connections");
            {
                let mut conn = conns.scoped(Scope::User(ana)).await.expect("a connection");
                let slow = sqlx::query("SELECT pg_sleep(0.3)").execute(&mut *conn);
                let given_up = tokio::time::timeout(Duration::from_millis(20), slow).await;
                assert!(given_up.is_err(), "the caller gave up");
            }
            assert_eq!(conns.idle(), 1, "given back all the same");
            let mut conn = conns
                .scoped(Scope::User(bob))
                .await
                .expect("the connection");
            let (scope, batch): (String, String) = sqlx::query_as(
                "SELECT current_setting('app.user_id'), current_setting('app.batch_user_ids')",
            )
            .fetch_one(&mut *conn)
            .await
            .expect("the connection answers after draining the abandoned statement");
            assert_eq!(scope, bob.0.to_string());
            assert_eq!(batch, "", "no batch scope");
        })
        .await;
    }
}
