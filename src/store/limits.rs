//! Rate limits: a generic cell rate algorithm (GCRA, the token bucket without a refill timer),
//! kept in process or, when Redis is configured, in Redis so every node shares one budget.
//!
//! A quota is `per_minute` requests with bursts of as many: each key remembers one number,
//! its theoretical arrival time (TAT). A request at `now` is allowed when
//! `TAT − now ≤ (burst − 1) × interval`, and pushes TAT one interval further; otherwise it is
//! refused and told how long until it would pass (`Retry-After`).
//!
//! In Redis the same arithmetic runs in one Lua script (atomic, on Redis's own clock, so
//! nodes with skewed clocks agree). When Redis fails, the node falls back to its in-process
//! budget and logs it: an outage of Redis degrades sharing, not availability.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use redis::Script;
use redis::aio::ConnectionManager;

/// A budget: `per_minute` requests a minute, `burst` of them at once. `per_minute == 0`
/// means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub per_minute: u32,
    pub burst: u32,
}

impl Quota {
    /// `per_minute` a minute, all of them allowed at once.
    pub fn per_minute(per_minute: u32) -> Self {
        Self {
            per_minute,
            burst: per_minute,
        }
    }

    /// Whether this is no limit at all (a budget of 0 a minute turns a limit off).
    pub fn is_unlimited(&self) -> bool {
        self.per_minute == 0
    }

    fn interval_ms(&self) -> i64 {
        60_000 / i64::from(self.per_minute.max(1))
    }

    fn tolerance_ms(&self) -> i64 {
        self.interval_ms() * i64::from(self.burst.max(1) - 1)
    }
}

/// Whether a request may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Over budget; the request would pass after this long.
    Limited {
        retry_after: Duration,
    },
}

/// One GCRA step: the key's stored TAT (if any) and `now`, in milliseconds. Returns the
/// decision and the TAT to store when allowed.
pub fn gcra(stored_tat: Option<i64>, now: i64, quota: Quota) -> (Decision, Option<i64>) {
    let tat = stored_tat.unwrap_or(now).max(now);
    let ahead = tat - now;
    let tolerance = quota.tolerance_ms();
    if ahead > tolerance {
        let wait = u64::try_from(ahead - tolerance).unwrap_or(0);
        return (
            Decision::Limited {
                retry_after: Duration::from_millis(wait),
            },
            None,
        );
    }
    (Decision::Allowed, Some(tat + quota.interval_ms()))
}

/// The GCRA step in Redis; returns the wait in milliseconds (0: allowed).
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tolerance then
  return tat - now - tolerance
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], next_tat, 'PX', next_tat - now)
return 0
";

/// In-process keys are swept of expired entries every this many checks.
const SWEEP_EVERY: u64 = 4_096;

/// The limiter every edge consults. Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    local: DashMap<String, i64>,
    /// Redis, the script, and the key prefix (`<namespace>:rl:`).
    redis: Option<(ConnectionManager, Script, String)>,
    epoch: Instant,
    checks: AtomicU64,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("shared", &self.inner.redis.is_some())
            .finish()
    }
}

impl RateLimiter {
    /// A limiter for this node alone.
    pub fn local() -> Self {
        Self::with(None)
    }

    /// A limiter shared through Redis by every node of the deployment named `namespace`.
    pub fn shared(redis: ConnectionManager, namespace: &str) -> Self {
        Self::with(Some((
            redis,
            Script::new(GCRA_SCRIPT),
            format!("{namespace}:rl:"),
        )))
    }

    fn with(redis: Option<(ConnectionManager, Script, String)>) -> Self {
        Self {
            inner: Arc::new(Inner {
                local: DashMap::new(),
                redis,
                epoch: Instant::now(),
                checks: AtomicU64::new(0),
            }),
        }
    }

    /// Spends one request of `key`'s budget.
    pub async fn check(&self, key: &str, quota: Quota) -> Decision {
        if quota.is_unlimited() {
            return Decision::Allowed;
        }
        if let Some((redis, script, prefix)) = &self.inner.redis {
            let mut conn = redis.clone();
            let result: redis::RedisResult<i64> = script
                .key(format!("{prefix}{key}"))
                .arg(quota.interval_ms())
                .arg(quota.tolerance_ms())
                .invoke_async(&mut conn)
                .await;
            match result {
                Ok(0) => return Decision::Allowed,
                Ok(wait) => {
                    return Decision::Limited {
                        retry_after: Duration::from_millis(u64::try_from(wait).unwrap_or(0)),
                    };
                }
                Err(error) => {
                    tracing::warn!(%error, "Redis rate limit failed; using this node's budget");
                }
            }
        }
        self.check_local(key, quota)
    }

    fn check_local(&self, key: &str, quota: Quota) -> Decision {
        let now = i64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(i64::MAX);
        if self.inner.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.inner.local.retain(|_, tat| *tat > now);
        }
        let mut entry = self.inner.local.entry(key.to_owned()).or_insert(now);
        let stored = Some(*entry);
        let (decision, next) = gcra(stored, now, quota);
        if let Some(next) = next {
            *entry = next;
        }
        decision
    }
}

/// Opens a Redis connection that reconnects on its own.
pub async fn connect_redis(url: &str) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    ConnectionManager::new(client).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_one_request_per_interval() {
        let quota = Quota::per_minute(3);
        let mut tat = None;
        for _ in 0..3 {
            let (decision, next) = gcra(tat, 0, quota);
            assert_eq!(decision, Decision::Allowed);
            tat = next;
        }
        let (decision, next) = gcra(tat, 0, quota);
        assert_eq!(
            decision,
            Decision::Limited {
                retry_after: Duration::from_secs(20)
            }
        );
        assert_eq!(next, None, "a refused request spends nothing");
        let (decision, _) = gcra(tat, 20_000, quota);
        assert_eq!(decision, Decision::Allowed);
    }

    #[test]
    fn an_idle_key_starts_over() {
        let quota = Quota::per_minute(2);
        let (_, tat) = gcra(None, 0, quota);
        let (_, tat) = gcra(tat, 0, quota);
        assert!(matches!(gcra(tat, 1, quota).0, Decision::Limited { .. }));
        assert_eq!(gcra(tat, 3_600_000, quota).0, Decision::Allowed);
    }

    #[tokio::test]
    async fn the_local_limiter_keeps_keys_apart_and_zero_means_unlimited() {
        let limiter = RateLimiter::local();
        let quota = Quota::per_minute(1);
        assert_eq!(limiter.check("a", quota).await, Decision::Allowed);
        assert!(matches!(
            limiter.check("a", quota).await,
            Decision::Limited { .. }
        ));
        assert_eq!(limiter.check("b", quota).await, Decision::Allowed);
        for _ in 0..100 {
            assert_eq!(
                limiter.check("c", Quota::per_minute(0)).await,
                Decision::Allowed
            );
        }
    }

    #[tokio::test]
    async fn the_redis_limiter_is_shared_between_limiters() {
        let Ok(url) = std::env::var("NUDGE_TEST_REDIS_URL") else {
            assert!(
                !crate::store::testing::require_postgres(),
                "CI runs the Redis tests: NUDGE_TEST_REDIS_URL must be set"
            );
            return;
        };
        let namespace = format!("test-{}", uuid::Uuid::now_v7());
        let a = RateLimiter::shared(connect_redis(&url).await.expect("redis"), &namespace);
        let b = RateLimiter::shared(connect_redis(&url).await.expect("redis"), &namespace);
        let other = RateLimiter::shared(connect_redis(&url).await.expect("redis"), "elsewhere");
        let key = "ip:127.0.0.1";
        let quota = Quota::per_minute(2);
        assert_eq!(a.check(key, quota).await, Decision::Allowed);
        assert_eq!(b.check(key, quota).await, Decision::Allowed);
        let Decision::Limited { retry_after } = a.check(key, quota).await else {
            panic!("the third request of a shared budget of two is refused");
        };
        assert!(retry_after <= Duration::from_secs(30), "{retry_after:?}");
        assert_eq!(
            other.check(key, quota).await,
            Decision::Allowed,
            "another deployment's budget is its own"
        );
    }
}
