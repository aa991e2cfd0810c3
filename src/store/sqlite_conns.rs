//! SQLite connections for one person's store calls, handed out and taken back without a
//! round trip to their threads.
//!
//! sqlx-sqlite runs each connection on a thread of its own, and its pool pings every
//! connection given back to it: one more hand-off to that thread and back (two thread
//! wake-ups) after every store call, as costly as a small query. A local file does not go
//! stale, and a connection whose caller gave up mid-statement finishes that statement on its
//! thread before the next one (a dropped transaction queues its rollback the same way), so
//! these connections go straight back to the idle list.
//!
//! [`with_user!`](super::with_user) takes its connection here on a SQLite file database, for
//! its single statements and its transactions alike; cross-user methods and migrations keep
//! sqlx's pool.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Sqlite};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::Result;

/// Idle connections, and a permit for each: a permit held means a connection is there to take.
#[derive(Debug)]
pub(super) struct Conns {
    idle: Mutex<Vec<SqliteConnection>>,
    permits: Semaphore,
    acquire_timeout: Duration,
}

impl Conns {
    /// Opens `count` connections with `options` (at least one).
    pub(super) async fn open(
        options: &SqliteConnectOptions,
        count: usize,
        acquire_timeout: Duration,
    ) -> Result<Self> {
        let count = count.max(1);
        let mut idle = Vec::with_capacity(count);
        for _ in 0..count {
            idle.push(options.connect().await?);
        }
        Ok(Self {
            idle: Mutex::new(idle),
            permits: Semaphore::new(count),
            acquire_timeout,
        })
    }

    /// A connection, waiting for one to be given back if all are taken (up to the acquire
    /// timeout, then `PoolTimedOut` as sqlx's pool would).
    pub(super) async fn get(&self) -> Result<Taken<'_>> {
        let permit = tokio::time::timeout(self.acquire_timeout, self.permits.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let conn = self.lock().pop().ok_or(sqlx::Error::PoolClosed)?;
        Ok(Taken {
            conn: Some(conn),
            conns: self,
            _permit: permit,
        })
    }

    /// Connections idle now.
    #[cfg(test)]
    pub(super) fn idle(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SqliteConnection>> {
        // The list is only pushed to and popped from: a panic elsewhere cannot leave it torn.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A connection taken from [`Conns`]; given back when dropped.
pub(crate) struct Taken<'a> {
    conn: Option<SqliteConnection>,
    conns: &'a Conns,
    _permit: SemaphorePermit<'a>,
}

impl Deref for Taken<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        // Present from `get` until `drop`.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Taken<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        // Back before the permit (dropped after this) lets the next caller look for it.
        if let Some(conn) = self.conn.take() {
            self.conns.lock().push(conn);
        }
    }
}

/// The connection [`with_user!`](super::with_user) runs on with SQLite: one of a file
/// database's [`Conns`], or the pool's one connection of an in-memory database.
pub(crate) enum SqliteConn<'a> {
    Taken(Taken<'a>),
    Pooled(sqlx::pool::PoolConnection<Sqlite>),
}

impl Deref for SqliteConn<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match self {
            SqliteConn::Taken(taken) => taken,
            SqliteConn::Pooled(pooled) => pooled,
        }
    }
}

impl DerefMut for SqliteConn<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            SqliteConn::Taken(taken) => taken,
            SqliteConn::Pooled(pooled) => pooled,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    async fn conns(count: usize, timeout: Duration) -> (tempfile::TempDir, Conns) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let options = SqliteConnectOptions::from_str(&format!(
            "sqlite://{}",
            dir.path().join("r.db").display()
        ))
        .expect("options")
        .create_if_missing(true);
        let conns = Conns::open(&options, count, timeout)
            .await
            .expect("connections");
        (dir, conns)
    }

    #[tokio::test]
    async fn a_connection_goes_back_when_its_taker_drops_it_even_mid_statement() {
        let (_dir, conns) = conns(2, Duration::from_secs(5)).await;
        {
            let mut taken = conns.get().await.expect("a connection");
            let (one,): (i64,) = sqlx::query_as("SELECT 1")
                .fetch_one(&mut *taken)
                .await
                .expect("a read");
            assert_eq!(one, 1);
            assert_eq!(conns.idle(), 1, "one taken");
        }
        assert_eq!(conns.idle(), 2, "given back");

        // A caller that gives up mid-statement still gives its connection back, usable.
        {
            let mut taken = conns.get().await.expect("a connection");
            let slow = sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000000) \
                 SELECT count(*) FROM n",
            )
            .fetch_one(&mut *taken);
            let _ = tokio::time::timeout(Duration::from_millis(1), slow).await;
        }
        assert_eq!(conns.idle(), 2);
        for _ in 0..4 {
            let mut taken = conns.get().await.expect("a connection");
            let (two,): (i64,) = sqlx::query_as("SELECT 2")
                .fetch_one(&mut *taken)
                .await
                .expect("the connection still answers");
            assert_eq!(two, 2);
        }
    }

    #[tokio::test]
    async fn callers_beyond_the_connections_wait_and_time_out_when_none_comes_back() {
        let (_dir, conns) = conns(1, Duration::from_millis(50)).await;
        let held = conns.get().await.expect("the one connection");
        let waited = conns.get().await;
        assert!(
            matches!(
                waited,
                Err(crate::store::StoreError::Database(
                    sqlx::Error::PoolTimedOut
                ))
            ),
            "no connection came back in time"
        );
        drop(held);
        let again = conns.get().await;
        assert!(again.is_ok(), "the connection came back");
    }
}
