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
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Sqlite};

use super::Result;
use super::conn_list::{ConnList, Taken};

/// The connections, all opened up front.
#[derive(Debug)]
pub(super) struct Conns {
    list: ConnList<SqliteConnection>,
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
            list: ConnList::new(idle, count, acquire_timeout),
        })
    }

    /// A connection, waiting for one to be given back if all are taken (up to the acquire
    /// timeout, then `PoolTimedOut` as sqlx's pool would).
    pub(super) async fn get(&self) -> Result<Taken<'_, SqliteConnection>> {
        let (permit, idle) = self.list.take().await?;
        // Every connection was opened up front: a permit held means one is idle.
        let conn = idle.ok_or(sqlx::Error::PoolClosed)?;
        Ok(Taken::new(conn, &self.list, permit))
    }

    /// Connections idle now.
    #[cfg(test)]
    pub(super) fn idle(&self) -> usize {
        self.list.idle()
    }
}

/// The connection [`with_user!`](super::with_user) runs on with SQLite: one of a file
/// database's [`Conns`], or the pool's one connection of an in-memory database.
pub(crate) enum SqliteConn<'a> {
    Taken(Taken<'a, SqliteConnection>),
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
}
