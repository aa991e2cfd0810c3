//! The model-response cache: an identical request (same user, same prompt, same context,
//! same functions) within the TTL gets the stored generation instead of a paid call.
//!
//! The key is the user's id and a SHA-256 of the user's id, the prompt version and the request
//! as sent (`<user>:<hash>`), so no two users share an entry, no text appears in a key, and
//! erasing an account finds every entry of its user ([`ResponseCache::forget_user`]).
//! In-process it is a `moka` cache; with `NUDGE_REDIS_URL` the entries live in Redis (shared
//! by every node) under `<namespace>:llm-cache:<user>:<hash>`, sealed with the store's key
//! ring, since a model's answer is personal text. A Redis failure is logged and counts as a
//! miss: the cache never fails a turn.

use std::fmt::Write as _;
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
/// Keys one `SCAN` step looks at while forgetting a user: small steps keep Redis responsive.
const SCAN_COUNT: usize = 500;
/// How long one step of forgetting a user may take.
const FORGET_TIMEOUT: Duration = Duration::from_secs(5);

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

    /// The key of `request` for `user`: `<user>:<hash>`. The request is hashed as it is
    /// written, its functions by their digest (the same declarations in every request).
    pub fn key(user: UserId, request: &ChatRequest) -> String {
        let mut hasher = Sha256::new();
        hasher.update(user.0.as_bytes());
        hasher.update(PROMPT_VERSION.as_bytes());
        let ChatRequest {
            system,
            items,
            functions,
            allow_calls,
            max_output_tokens,
        } = request;
        // Writing plain data into a hasher cannot fail; a partial write would only make a
        // useless key.
        let _ = serde_json::to_writer(
            &mut hasher,
            &(system, items, allow_calls, max_output_tokens),
        );
        hasher.update(functions.digest());
        let mut key = user_prefix(user);
        key.reserve(64);
        for byte in hasher.finalize() {
            let _ = write!(key, "{byte:02x}");
        }
        key
    }

    /// Drops every entry of `user` (their account is being erased) and returns how many
    /// there were. In Redis, walks the user's keys with `SCAN … MATCH` in bounded steps and
    /// `UNLINK`s each step's keys, so a large cache never blocks the server.
    pub async fn forget_user(&self, user: UserId) -> Result<u64, CacheError> {
        let prefix = user_prefix(user);
        match &self.backend {
            Backend::Memory(cache) => {
                let keys: Vec<Arc<String>> = cache
                    .iter()
                    .filter(|(key, _)| key.starts_with(&prefix))
                    .map(|(key, _)| key)
                    .collect();
                for key in &keys {
                    cache.invalidate(key.as_str()).await;
                }
                Ok(keys.len() as u64)
            }
            Backend::Redis {
                connection,
                prefix: namespace,
                ..
            } => {
                let mut connection = connection.clone();
                let pattern = format!("{}{prefix}*", escape_glob(namespace));
                let mut cursor: u64 = 0;
                let mut forgotten = 0;
                loop {
                    let mut scan = redis::cmd("SCAN");
                    scan.arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT);
                    let (next, keys): (u64, Vec<String>) =
                        bounded(scan.query_async(&mut connection)).await?;
                    if !keys.is_empty() {
                        let mut unlink = redis::cmd("UNLINK");
                        unlink.arg(&keys);
                        let removed: u64 = bounded(unlink.query_async(&mut connection)).await?;
                        forgotten += removed;
                    }
                    if next == 0 {
                        return Ok(forgotten);
                    }
                    cursor = next;
                }
            }
        }
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

/// What every key of `user` starts with.
fn user_prefix(user: UserId) -> String {
    format!("{user}:")
}

/// `text` with Redis glob specials escaped, so a namespace matches only itself.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// One Redis command of [`ResponseCache::forget_user`], within [`FORGET_TIMEOUT`].
async fn bounded<T>(
    command: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, CacheError> {
    match tokio::time::timeout(FORGET_TIMEOUT, command).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(CacheError(error.to_string())),
        Err(_) => Err(CacheError("no answer within 5 s".into())),
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
            functions: Default::default(),
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
        assert_eq!(key.len(), 36 + 1 + 64);
        let declaring = ChatRequest {
            functions: vec![crate::llm::FunctionSpec {
                name: "add_tasks".into(),
                description: "Add tasks.".into(),
                parameters: serde_json::json!({ "type": "object" }),
            }]
            .into(),
            ..request("call mom")
        };
        assert_ne!(
            key,
            ResponseCache::key(ana, &declaring),
            "the functions declared are part of the key"
        );
        assert_ne!(
            key,
            ResponseCache::key(
                ana,
                &ChatRequest {
                    allow_calls: false,
                    ..request("call mom")
                }
            )
        );
        assert!(key.starts_with(&format!("{ana}:")));
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
        let Some(url) = crate::store::testing::redis_url() else {
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

    #[tokio::test]
    async fn forgetting_a_user_drops_their_in_process_entries_and_keeps_the_others() {
        let cache = ResponseCache::in_process(Duration::from_secs(60));
        let (ana, bob) = (UserId::new(), UserId::new());
        let anas: Vec<String> = (0..5)
            .map(|i| ResponseCache::key(ana, &request(&format!("ana {i}"))))
            .collect();
        for key in &anas {
            cache.put(key, &generation("hers")).await;
        }
        let bobs = ResponseCache::key(bob, &request("bob"));
        cache.put(&bobs, &generation("his")).await;

        assert_eq!(cache.forget_user(ana).await.expect("forget"), 5);
        for key in &anas {
            assert_eq!(cache.get(key).await, None);
        }
        assert_eq!(cache.get(&bobs).await, Some(generation("his")));
    }

    #[test]
    fn a_namespace_with_glob_characters_matches_only_itself() {
        assert_eq!(escape_glob("nudge:prod"), "nudge:prod");
        assert_eq!(escape_glob("a*b?[c]\\d"), "a\\*b\\?\\[c\\]\\\\d");
    }

    /// Against the Redis named by `NUDGE_TEST_REDIS_URL`; skipped without it, required on CI.
    #[tokio::test]
    async fn forgetting_a_user_unlinks_every_redis_key_of_theirs_and_no_other() {
        let Some(url) = crate::store::testing::redis_url() else {
            return;
        };
        let namespace = format!("nudge-test-{}", uuid::Uuid::now_v7().simple());
        let cache = ResponseCache::redis(
            &url,
            &namespace,
            Duration::from_secs(60),
            Sealer::generate(),
        )
        .await
        .expect("redis cache");
        let (ana, bob) = (UserId::new(), UserId::new());
        // More keys than one SCAN step looks at, so the walk takes several steps.
        let anas = SCAN_COUNT * 2 + 7;
        for i in 0..anas {
            let key = ResponseCache::key(ana, &request(&format!("ana {i}")));
            cache.put(&key, &generation("hers")).await;
        }
        let bobs: Vec<String> = (0..3)
            .map(|i| ResponseCache::key(bob, &request(&format!("bob {i}"))))
            .collect();
        for key in &bobs {
            cache.put(key, &generation("his")).await;
        }

        let client = redis::Client::open(url.as_str()).expect("client");
        let mut raw = client
            .get_multiplexed_async_connection()
            .await
            .expect("connection");
        async fn keys(raw: &mut redis::aio::MultiplexedConnection, pattern: String) -> Vec<String> {
            redis::cmd("KEYS")
                .arg(pattern)
                .query_async(raw)
                .await
                .expect("KEYS")
        }
        assert_eq!(
            keys(&mut raw, format!("{namespace}{REDIS_SUFFIX}{ana}:*"))
                .await
                .len(),
            anas
        );

        let forgotten = cache.forget_user(ana).await.expect("forget");
        assert_eq!(forgotten, anas as u64);
        assert!(
            keys(&mut raw, format!("{namespace}{REDIS_SUFFIX}{ana}:*"))
                .await
                .is_empty()
        );
        let left = keys(&mut raw, format!("{namespace}{REDIS_SUFFIX}*")).await;
        assert_eq!(left.len(), 3, "Bob's entries stay: {left:?}");
        for key in &bobs {
            assert_eq!(cache.get(key).await, Some(generation("his")));
        }
        assert_eq!(cache.forget_user(ana).await.expect("again"), 0);
        cache.forget_user(bob).await.expect("clean up");
    }
}
