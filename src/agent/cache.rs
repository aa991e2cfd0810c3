//! The model-response cache: an identical request (same user, same prompt, same context,
//! same functions) within the TTL gets the stored generation instead of a paid call.
//!
//! The key is a SHA-256 of the user's id, the prompt version and the request as sent, so no
//! two users share an entry and no text appears in a key. In-process it is a `moka` cache;
//! with `NUDGE_REDIS_URL` the entries live in Redis (shared by every node) under
//! `<namespace>:llm-cache:<key>`, sealed with the store's key ring, since a model's answer is
//! personal text. A Redis failure is logged and counts as a miss: the cache never fails a turn.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

use super::prompts::PROMPT_VERSION;
use crate::llm::{ChatRequest, Generation};
use crate::store::{Sealer, UserId};

/// Entries the in-process cache holds at most.
const MEMORY_CAPACITY: u64 = 10_000;
/// Where Redis entries live, under the deployment's namespace.
const REDIS_SUFFIX: &str = ":llm-cache:";
/// How long one Redis command may take before it counts as a miss.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// Why the cache could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot use Redis for the model cache: {0}")]
pub struct CacheError(String);

/// The model-response cache. Cheap to clone.
#[derive(Clone)]
pub struct ResponseCache {
    backend: Backend,
    ttl: Duration,
}

#[derive(Clone)]
enum Backend {
    Memory(moka::future::Cache<String, Arc<Generation>>),
    Redis {
        connection: ConnectionManager,
        sealer: Sealer,
        /// `<namespace>:llm-cache:`, so deployments sharing a Redis never share entries.
        prefix: String,
    },
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis { .. } => "redis",
        };
        f.debug_struct("ResponseCache")
            .field("backend", &kind)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl ResponseCache {
    /// An in-process cache whose entries live `ttl`.
    pub fn in_process(ttl: Duration) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(MEMORY_CAPACITY)
            .time_to_live(ttl)
            .build();
        Self {
            backend: Backend::Memory(cache),
            ttl,
        }
    }

    /// A cache in the Redis server at `url`, values sealed with `sealer`. Connects now, so a
    /// wrong URL stops start-up instead of silently caching nothing.
    pub async fn redis(
        url: &str,
        namespace: &str,
        ttl: Duration,
        sealer: Sealer,
    ) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(|e| CacheError(e.to_string()))?;
        let connection =
            tokio::time::timeout(Duration::from_secs(5), client.get_connection_manager())
                .await
                .map_err(|_| CacheError("no answer within 5 s".into()))?
                .map_err(|e| CacheError(e.to_string()))?;
        Ok(Self {
            backend: Backend::Redis {
                connection,
                sealer,
                prefix: format!("{namespace}{REDIS_SUFFIX}"),
            },
            ttl,
        })
    }

    /// Which backend holds the entries (`memory` or `redis`).
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis { .. } => "redis",
        }
    }

    /// The key of `request` for `user`.
    pub fn key(user: UserId, request: &ChatRequest) -> String {
        let mut hasher = Sha256::new();
        hasher.update(user.0.as_bytes());
        hasher.update(PROMPT_VERSION.as_bytes());
        // Serialising plain data cannot fail; an empty body would only make a useless key.
        hasher.update(serde_json::to_vec(request).unwrap_or_default());
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The stored generation of `key`, if any and not expired.
    pub async fn get(&self, key: &str) -> Option<Generation> {
        match &self.backend {
            Backend::Memory(cache) => cache.get(key).await.map(|g| (*g).clone()),
            Backend::Redis {
                connection,
                sealer,
                prefix,
            } => {
                let mut connection = connection.clone();
                let redis_key = format!("{prefix}{key}");
                let mut get = redis::cmd("GET");
                get.arg(&redis_key);
                let command = get.query_async::<Option<String>>(&mut connection);
                let sealed = match tokio::time::timeout(REDIS_TIMEOUT, command).await {
                    Ok(Ok(value)) => value?,
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "model cache read failed");
                        return None;
                    }
                    Err(_) => {
                        tracing::warn!("model cache read timed out");
                        return None;
                    }
                };
                let json = sealer.open(&redis_key, &sealed).ok()?;
                serde_json::from_str(&json).ok()
            }
        }
    }

    /// Stores `generation` under `key` for the TTL.
    pub async fn put(&self, key: &str, generation: &Generation) {
        match &self.backend {
            Backend::Memory(cache) => {
                cache
                    .insert(key.to_owned(), Arc::new(generation.clone()))
                    .await;
            }
            Backend::Redis {
                connection,
                sealer,
                prefix,
            } => {
                let Ok(json) = serde_json::to_string(generation) else {
                    return;
                };
                let redis_key = format!("{prefix}{key}");
                let sealed = sealer.seal(&redis_key, &json);
                let mut connection = connection.clone();
                let mut set = redis::cmd("SET");
                set.arg(&redis_key).arg(sealed).arg("PX").arg(
                    u64::try_from(self.ttl.as_millis())
                        .unwrap_or(u64::MAX)
                        .max(1),
                );
                let command = set.query_async::<()>(&mut connection);
                match tokio::time::timeout(REDIS_TIMEOUT, command).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::warn!(%error, "model cache write failed"),
                    Err(_) => tracing::warn!("model cache write timed out"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Finish, Item, ModelTurn, Usage};

    fn request(text: &str) -> ChatRequest {
        ChatRequest {
            system: "sys".into(),
            items: vec![Item::User(text.into())],
            functions: vec![],
            allow_calls: true,
            max_output_tokens: 100,
        }
    }

    fn generation(text: &str) -> Generation {
        Generation {
            turn: ModelTurn {
                text: Some(text.into()),
                calls: vec![],
                raw: None,
            },
            usage: Usage {
                prompt_tokens: 10,
                output_tokens: 2,
                total_tokens: 12,
            },
            finish: Finish::Stop,
            provider: "gemini".into(),
            model: "m".into(),
        }
    }

    #[test]
    fn keys_differ_by_user_and_by_request_and_carry_no_text() {
        let ana = UserId::new();
        let bob = UserId::new();
        let key = ResponseCache::key(ana, &request("call mom"));
        assert_eq!(key, ResponseCache::key(ana, &request("call mom")));
        assert_ne!(key, ResponseCache::key(bob, &request("call mom")));
        assert_ne!(key, ResponseCache::key(ana, &request("call dad")));
        assert_eq!(key.len(), 64);
        assert!(!key.contains("mom"));
    }

    #[tokio::test]
    async fn the_in_process_cache_returns_what_was_put_until_the_ttl_passes() {
        let cache = ResponseCache::in_process(Duration::from_millis(150));
        assert_eq!(cache.get("k").await, None);
        cache.put("k", &generation("hello")).await;
        assert_eq!(cache.get("k").await, Some(generation("hello")));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(cache.get("k").await, None);
    }

    /// Runs against the Redis named by `NUDGE_TEST_REDIS_URL` (`scripts/services.sh`);
    /// skipped without it, required on CI.
    #[tokio::test]
    async fn the_redis_cache_seals_its_values_and_expires_them() {
        let Some(url) = std::env::var("NUDGE_TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs the Redis cache test: set NUDGE_TEST_REDIS_URL"
            );
            eprintln!("NUDGE_TEST_REDIS_URL unset: Redis cache test skipped");
            return;
        };
        let sealer = Sealer::generate();
        let cache = ResponseCache::redis(
            &url,
            "nudge-test",
            Duration::from_millis(400),
            sealer.clone(),
        )
        .await
        .expect("redis cache");
        assert_eq!(cache.backend_name(), "redis");
        let key = ResponseCache::key(UserId::new(), &request("secret plan"));
        assert_eq!(cache.get(&key).await, None);
        cache.put(&key, &generation("the secret plan")).await;
        assert_eq!(cache.get(&key).await, Some(generation("the secret plan")));

        let client = redis::Client::open(url.as_str()).expect("client");
        let mut raw = client
            .get_multiplexed_async_connection()
            .await
            .expect("connection");
        let stored: Option<String> = redis::cmd("GET")
            .arg(format!("nudge-test{REDIS_SUFFIX}{key}"))
            .query_async(&mut raw)
            .await
            .expect("GET");
        let stored = stored.expect("stored under the prefixed key");
        assert!(
            stored.starts_with("v1.") && !stored.contains("secret"),
            "{stored}"
        );

        let other = ResponseCache::redis(
            &url,
            "nudge-test",
            Duration::from_secs(1),
            Sealer::generate(),
        )
        .await
        .expect("redis cache");
        assert_eq!(
            other.get(&key).await,
            None,
            "another key ring cannot open it"
        );

        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(cache.get(&key).await, None);
    }
}
