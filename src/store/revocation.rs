//! The revocation list of access tokens: sessions ended before their access tokens expire
//! (log out, log out everywhere, refresh-token reuse, erasure).
//!
//! The `sessions` table is always the durable record. Without Redis every authenticated
//! request asks it (one primary-key lookup); with Redis, revoking a session also writes
//! `nudge:revoked:<session id>` for as long as an access token lives, and requests ask Redis
//! instead. If Redis cannot be reached, the check falls back to the table: a revoked token is
//! never accepted because Redis is down.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use super::{Result, Store, StoreError, UserId};

/// Where revocations are looked up. Cheap to clone.
#[derive(Clone)]
pub struct Revocations {
    store: Store,
    /// Redis, how long a revocation is kept there (the longest access-token lifetime), and
    /// the key prefix (`<namespace>:revoked:`).
    redis: Option<(ConnectionManager, Duration, String)>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("redis", &self.redis.is_some())
            .finish()
    }
}

impl Revocations {
    /// Revocations looked up in the store.
    pub fn in_store(store: Store) -> Self {
        Self { store, redis: None }
    }

    /// Revocations kept in Redis for `ttl` (at least the access-token lifetime), under the
    /// deployment's `namespace`.
    pub fn in_redis(
        store: Store,
        redis: ConnectionManager,
        ttl: Duration,
        namespace: &str,
    ) -> Self {
        Self {
            store,
            redis: Some((redis, ttl, format!("{namespace}:revoked:"))),
        }
    }

    /// Publishes sessions already revoked in the store, so every node refuses their access
    /// tokens at once. Without Redis there is nothing to publish.
    pub async fn publish(&self, sessions: &[Uuid]) {
        let Some((redis, ttl, prefix)) = &self.redis else {
            return;
        };
        let mut conn = redis.clone();
        for session in sessions {
            let written: redis::RedisResult<()> = conn
                .set_ex(format!("{prefix}{session}"), 1u8, ttl.as_secs().max(1))
                .await;
            if let Err(error) = written {
                // The store still says revoked; the fallback below reads it when Redis fails,
                // but a Redis that answers without the key would accept the token: say so.
                tracing::error!(%error, "cannot publish a session revocation to Redis");
            }
        }
    }

    /// True when the session of an access token was revoked, or no longer exists.
    pub async fn is_revoked(&self, user: UserId, session: Uuid) -> Result<bool> {
        if let Some((redis, _, prefix)) = &self.redis {
            let mut conn = redis.clone();
            let found: redis::RedisResult<bool> = conn.exists(format!("{prefix}{session}")).await;
            match found {
                Ok(found) => return Ok(found),
                Err(error) => {
                    tracing::warn!(%error, "Redis revocation check failed; asking the database");
                }
            }
        }
        match self.store.session_revoked(user, session).await {
            Ok(revoked) => Ok(revoked),
            Err(StoreError::NotFound) => Ok(true),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration as Days, Utc};

    use super::*;
    use crate::store::{NewSession, Sealer, connect};

    async fn store_with_session() -> (Store, UserId, Uuid, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("n.db").display());
        let store = connect(&url, Sealer::generate()).await.expect("store");
        let user = store
            .create_user(&crate::store::tests::new_user(1))
            .await
            .expect("user")
            .id;
        let sid = Uuid::now_v7();
        let now = Utc::now();
        store
            .create_session(
                &NewSession {
                    id: sid,
                    user_id: user,
                    auth_time: now,
                    mfa: false,
                    expires_at: now + Days::days(1),
                    refresh_hash: "h".into(),
                    refresh_expires_at: now + Days::days(1),
                },
                now,
            )
            .await
            .expect("session");
        (store, user, sid, dir)
    }

    #[tokio::test]
    async fn the_store_list_follows_the_sessions_table() {
        let (store, user, sid, _dir) = store_with_session().await;
        let list = Revocations::in_store(store.clone());
        assert!(!list.is_revoked(user, sid).await.unwrap());
        store
            .revoke_session(user, sid, "logout", Utc::now())
            .await
            .unwrap();
        assert!(list.is_revoked(user, sid).await.unwrap());
        assert!(
            list.is_revoked(user, Uuid::now_v7()).await.unwrap(),
            "unknown"
        );
    }

    #[tokio::test]
    async fn the_redis_list_refuses_published_sessions_on_every_node() {
        let Ok(url) = std::env::var("NUDGE_TEST_REDIS_URL") else {
            assert!(
                !crate::store::testing::require_postgres(),
                "CI runs the Redis tests: NUDGE_TEST_REDIS_URL must be set"
            );
            return;
        };
        let (store, user, sid, _dir) = store_with_session().await;
        let node_a = Revocations::in_redis(
            store.clone(),
            crate::store::limits::connect_redis(&url).await.unwrap(),
            Duration::from_secs(60),
            "test",
        );
        let node_b = Revocations::in_redis(
            store.clone(),
            crate::store::limits::connect_redis(&url).await.unwrap(),
            Duration::from_secs(60),
            "test",
        );
        assert!(!node_b.is_revoked(user, sid).await.unwrap());
        node_a.publish(&[sid]).await;
        assert!(node_b.is_revoked(user, sid).await.unwrap());
    }
}
