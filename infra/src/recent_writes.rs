//! The aggregates each user's answered commands wrote lately, and the version each reached, in
//! Redis (every replica answers and reads for the same user). A list read by that user waits
//! until its read model reflects them (read your own writes), then reads as before.
//!
//! One hash per user and aggregate type, `<prefix>own:<user id>:<type>`, field the aggregate
//! id, value the highest version remembered; it expires `ttl` after the user's last write of
//! that type. Past `MAX_REMEMBERED` fields the hash starts again from the request at hand, so
//! one user's bulk writes cannot make their list reads check ever more rows. Redis unreachable:
//! nothing is remembered, and lists read as they always did (eventually consistent), never an
//! error.

use std::collections::HashMap;
use std::time::Duration;

use uuid::Uuid;

use eshop_commands::own_writes::Written;

use crate::redis_link::RedisLink;

/// A hash (one user, one aggregate type) holding more than this many aggregates starts afresh.
const MAX_REMEMBERED: usize = 1000;

/// `KEYS`: one hash per aggregate type. `ARGV[1]`: the time to live in ms, `ARGV[2]` the
/// largest hash kept; then triples of (index into `KEYS`, aggregate id, version). A version is
/// only ever raised: concurrent requests may finish in any order.
const REMEMBER_SCRIPT: &str = r"
local ttl = ARGV[1]
local largest = tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  if redis.call('HLEN', key) > largest then redis.call('DEL', key) end
end
for i = 3, #ARGV, 3 do
  local key = KEYS[tonumber(ARGV[i])]
  local version = tonumber(ARGV[i + 2])
  local known = tonumber(redis.call('HGET', key, ARGV[i + 1]))
  if known == nil or known < version then
    redis.call('HSET', key, ARGV[i + 1], version)
  end
end
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ttl) end
return 0
";

pub struct RecentWrites {
    redis: RedisLink,
    prefix: String,
    ttl: Duration,
    remember: redis::Script,
}

impl RecentWrites {
    /// `prefix` namespaces every key (tests each use their own); `ttl` is how long a user's
    /// writes are remembered after their last one.
    pub fn new(url: &str, prefix: &str, ttl: Duration) -> Result<Self, redis::RedisError> {
        Ok(Self {
            redis: RedisLink::new(url)?,
            prefix: prefix.to_string(),
            ttl,
            remember: redis::Script::new(REMEMBER_SCRIPT),
        })
    }

    fn key(&self, user_id: Uuid, aggregate_type: &str) -> String {
        format!("{}own:{user_id}:{aggregate_type}", self.prefix)
    }

    /// Remembers what one request of `user_id` wrote (one script call; nothing when it wrote
    /// nothing). Redis unreachable: forgotten, and logged.
    pub async fn remember(&self, user_id: Uuid, written: &[Written]) {
        if written.is_empty() {
            return;
        }
        let Some(mut connection) = self.redis.connection().await else {
            return;
        };
        let mut keys: Vec<String> = Vec::new();
        let mut invocation = self.remember.prepare_invoke();
        invocation
            .arg(
                u64::try_from(self.ttl.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )
            .arg(MAX_REMEMBERED);
        for write in written {
            let key = self.key(user_id, &write.aggregate_type);
            let index = match keys.iter().position(|known| *known == key) {
                Some(index) => index,
                None => {
                    invocation.key(&key);
                    keys.push(key);
                    keys.len() - 1
                }
            };
            invocation
                .arg(index + 1)
                .arg(&write.aggregate_id)
                .arg(write.version);
        }
        let stored: redis::RedisResult<i64> = invocation.invoke_async(&mut connection).await;
        if let Err(error) = stored {
            tracing::warn!(error = %error, %user_id, "could not remember the user's writes; their lists read as before");
        }
    }

    /// The aggregates of `aggregate_type` that `user_id` wrote lately, with the version each
    /// reached (one `HGETALL`; empty when Redis does not answer).
    pub async fn of(&self, user_id: Uuid, aggregate_type: &str) -> Vec<(Uuid, u64)> {
        let Some(mut connection) = self.redis.connection().await else {
            return Vec::new();
        };
        let remembered: redis::RedisResult<HashMap<String, u64>> = redis::cmd("HGETALL")
            .arg(self.key(user_id, aggregate_type))
            .query_async(&mut connection)
            .await;
        match remembered {
            Ok(remembered) => remembered
                .into_iter()
                .filter_map(|(id, version)| Some((id.parse().ok()?, version)))
                .collect(),
            Err(error) => {
                tracing::debug!(error = %error, "could not read the user's recent writes");
                Vec::new()
            }
        }
    }
}
