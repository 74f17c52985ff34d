//! Rate limits kept in Redis, so every replica counts against the same numbers.
//!
//! Two shapes: a fixed window (at most `limit` requests per `period`) and a token bucket
//! (`capacity` requests at once, then one more every `refill_every`). Each check is one Lua
//! script call, atomic in Redis. With Redis unreachable a check answers `None` and the caller
//! decides (eshop lets the request through and counts it: see `stats.fail_open`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::redis_link::RedisLink;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Window {
        limit: u32,
        period: Duration,
    },
    Bucket {
        capacity: u32,
        refill_every: Duration,
    },
}

impl Limit {
    pub fn per_minute(limit: u32) -> Self {
        Self::Window {
            limit,
            period: Duration::from_secs(60),
        }
    }

    /// The number a client sees as `RateLimit-Limit`.
    pub fn quota(&self) -> u32 {
        match self {
            Self::Window { limit, .. } => *limit,
            Self::Bucket { capacity, .. } => *capacity,
        }
    }
}

/// The outcome of one request against one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Until the quota is whole again.
    pub reset_after: Duration,
    /// Until a refused request would be allowed (zero when allowed).
    pub retry_after: Duration,
}

#[derive(Debug, Default)]
pub struct RateLimitStats {
    /// Checks that let a request through because Redis did not answer.
    pub fail_open: AtomicU64,
    pub refused: AtomicU64,
}

const WINDOW_SCRIPT: &str = r"
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
";

const BUCKET_SCRIPT: &str = r"
local capacity = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
local refill = math.floor((now - at) / interval)
if refill > 0 then
  tokens = math.min(capacity, tokens + refill)
  at = at + refill * interval
end
if tokens >= capacity then at = now end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', at)
redis.call('PEXPIRE', KEYS[1], capacity * interval + 1000)
local wait = 0
if allowed == 0 then wait = interval - (now - at) end
local full = (capacity - tokens) * interval - (now - at)
if full < 0 then full = 0 end
return {allowed, tokens, wait, full}
";

pub struct RateLimiter {
    redis: RedisLink,
    prefix: String,
    window: redis::Script,
    bucket: redis::Script,
    pub stats: RateLimitStats,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn from_millis(value: i64) -> Duration {
    Duration::from_millis(u64::try_from(value).unwrap_or_default())
}

impl RateLimiter {
    /// `prefix` namespaces every key (tests each use their own).
    pub fn new(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            redis: RedisLink::new(url)?,
            prefix: prefix.to_string(),
            window: redis::Script::new(WINDOW_SCRIPT),
            bucket: redis::Script::new(BUCKET_SCRIPT),
            stats: RateLimitStats::default(),
        })
    }

    /// Counts one request by `subject` (say `commands:user:<id>`) against `limit`. `None`
    /// when Redis did not answer.
    pub async fn check(&self, subject: &str, limit: Limit) -> Option<Verdict> {
        let verdict = self.ask(subject, limit).await;
        match verdict {
            Some(verdict) if !verdict.allowed => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {}
            None => {
                self.stats.fail_open.fetch_add(1, Ordering::Relaxed);
            }
        }
        verdict
    }

    async fn ask(&self, subject: &str, limit: Limit) -> Option<Verdict> {
        let mut connection = self.redis.connection().await?;
        let key = format!("{}rl:{subject}", self.prefix);
        match limit {
            Limit::Window { limit, period } => {
                let (count, ttl): (i64, i64) = self
                    .window
                    .key(key)
                    .arg(millis(period))
                    .invoke_async(&mut connection)
                    .await
                    .map_err(|error| tracing::debug!(error = %error, "rate limit check failed"))
                    .ok()?;
                let allowed = count <= i64::from(limit);
                let reset_after = from_millis(ttl);
                Some(Verdict {
                    allowed,
                    limit,
                    remaining: u32::try_from(i64::from(limit) - count).unwrap_or(0),
                    reset_after,
                    retry_after: if allowed { Duration::ZERO } else { reset_after },
                })
            }
            Limit::Bucket {
                capacity,
                refill_every,
            } => {
                let (allowed, tokens, wait, full): (i64, i64, i64, i64) = self
                    .bucket
                    .key(key)
                    .arg(capacity)
                    .arg(millis(refill_every))
                    .invoke_async(&mut connection)
                    .await
                    .map_err(|error| tracing::debug!(error = %error, "rate limit check failed"))
                    .ok()?;
                Some(Verdict {
                    allowed: allowed == 1,
                    limit: capacity,
                    remaining: u32::try_from(tokens).unwrap_or(0),
                    reset_after: from_millis(full),
                    retry_after: from_millis(wait),
                })
            }
        }
    }
}
