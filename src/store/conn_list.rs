//! A bounded list of a backend's connections, each taken for one call and given back when
//! the call drops it, without sqlx's pool (which pings every connection given back to it):
//! what `sqlite_conns` and `pg_conns` share.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::Result;

/// Idle connections, and a permit for each connection the list may hold (idle, taken, or
/// not opened yet).
#[derive(Debug)]
pub(super) struct ConnList<C> {
    idle: Mutex<Vec<C>>,
    permits: Semaphore,
    capacity: usize,
    acquire_timeout: Duration,
}

impl<C> ConnList<C> {
    /// A list of up to `count` connections (at least one), `idle` of them already open.
    pub(super) fn new(idle: Vec<C>, count: usize, acquire_timeout: Duration) -> Self {
        let capacity = count.max(1);
        Self {
            idle: Mutex::new(idle),
            permits: Semaphore::new(capacity),
            capacity,
            acquire_timeout,
        }
    }

    /// A permit to take or open one connection, waiting for one to be given back if all are
    /// taken (up to the acquire timeout, then `PoolTimedOut` as sqlx's pool would), and the
    /// idle connection there is to take, if any.
    pub(super) async fn take(&self) -> Result<(SemaphorePermit<'_>, Option<C>)> {
        let permit = tokio::time::timeout(self.acquire_timeout, self.permits.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        Ok((permit, self.lock().pop()))
    }

    /// How long [`ConnList::take`] waits, which also bounds opening a connection.
    pub(super) fn acquire_timeout(&self) -> Duration {
        self.acquire_timeout
    }

    /// How many connections the list may hold.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Connections idle now.
    #[cfg(test)]
    pub(super) fn idle(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<C>> {
        // The list is only pushed to and popped from: a panic elsewhere cannot leave it torn.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A connection taken from a [`ConnList`] under its permit; given back when dropped.
pub(crate) struct Taken<'a, C> {
    conn: Option<C>,
    list: &'a ConnList<C>,
    _permit: SemaphorePermit<'a>,
}

impl<'a, C> Taken<'a, C> {
    pub(super) fn new(conn: C, list: &'a ConnList<C>, permit: SemaphorePermit<'a>) -> Self {
        Self {
            conn: Some(conn),
            list,
            _permit: permit,
        }
    }
}

impl<C> Deref for Taken<'_, C> {
    type Target = C;

    fn deref(&self) -> &C {
        // Present from `new` until `drop`.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl<C> DerefMut for Taken<'_, C> {
    fn deref_mut(&mut self) -> &mut C {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl<C> Drop for Taken<'_, C> {
    fn drop(&mut self) {
        // Back before the permit (dropped after this) lets the next caller look for it.
        if let Some(conn) = self.conn.take() {
            self.list.lock().push(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn callers_beyond_the_connections_wait_and_time_out_when_none_comes_back() {
        let list = ConnList::new(vec![7_u32], 1, Duration::from_millis(50));
        let (permit, conn) = list.take().await.expect("the one permit");
        let held = Taken::new(conn.expect("the idle connection"), &list, permit);
        assert_eq!(*held, 7);
        assert_eq!(list.idle(), 0, "taken");
        let waited = list.take().await;
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
        assert_eq!(list.idle(), 1, "given back");
        let (_permit, again) = list.take().await.expect("the permit came back");
        assert_eq!(again, Some(7), "with its connection");
    }
}
