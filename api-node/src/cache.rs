//! The Redis cache of single tasks.
//!
//! A cached value is `<version>|<owner id>|<task JSON>`, so a hit is served
//! as stored bytes with no parsing of the JSON, and the owner check needs no
//! database. Every writer of the cache (a write after commit, the relay, a
//! reader filling a miss) goes through one Lua script that only replaces an
//! older version: a slow reader can never put back a task that a write has
//! since changed, and a deletion leaves a tombstone that outranks every
//! version until it expires.

use bytes::Bytes;
use redis::Pipeline;
use shared::redis_keys::RedisKeys;
use uuid::Uuid;

use crate::models::Task;
use shared::redis_conn::RedisConn;

/// Sets KEYS[1] to ARGV[2] with a TTL of ARGV[3] ms unless it already holds
/// a version at or above ARGV[1].
const SET_IF_NEWER: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local v = tonumber(string.match(current, '^(%d+)|'))
  if v and v >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// Outranks every real version (2^53: exact in Lua's doubles).
const TOMBSTONE_VERSION: i64 = 1 << 53;

/// What the cache holds for a task id.
#[derive(Debug)]
pub enum Cached {
    /// The task: its owner, version and JSON.
    Task {
        /// Owner.
        user_id: Uuid,
        /// Version, for the ETag.
        version: i64,
        /// The task JSON, ready to send.
        json: Bytes,
    },
    /// Deleted recently.
    Deleted,
}

/// Reads and writes cached tasks.
#[derive(Clone)]
pub struct TaskCache {
    redis: RedisConn,
    keys: RedisKeys,
    ttl_ms: u64,
}

impl TaskCache {
    /// A cache whose entries live `ttl_ms`.
    pub fn new(redis: RedisConn, keys: RedisKeys, ttl_ms: u64) -> Self {
        Self {
            redis,
            keys,
            ttl_ms,
        }
    }

    /// One round trip; `None` on a miss or when Redis is unavailable.
    pub async fn get(&self, id: Uuid) -> Option<Cached> {
        let key = self.keys.task(id);
        let value: Option<Vec<u8>> = match self.redis.cmd(redis::cmd("GET").arg(&key)).await {
            Ok(value) => value,
            Err(err) => {
                tracing::debug!(error = %err, "cache read failed; treating as a miss");
                return None;
            }
        };
        parse(Bytes::from(value?))
    }

    /// Stores a task read from PostgreSQL, in the background: the response
    /// does not wait for it.
    pub fn fill(&self, task: &Task) {
        let mut pipe = redis::pipe();
        self.add_task(
            &mut pipe,
            task.id,
            i64::from(task.version),
            task.user_id,
            &task.to_json(),
        );
        let redis = self.redis.clone();
        tokio::spawn(async move {
            if let Err(err) = redis.run::<()>(&pipe).await {
                tracing::debug!(error = %err, "cache fill failed");
            }
        });
    }

    /// Adds "store this version of the task" to a pipeline.
    pub fn add_task(&self, pipe: &mut Pipeline, id: Uuid, version: i64, user_id: Uuid, json: &str) {
        let value = format!("{version}|{user_id}|{json}");
        self.add_set_if_newer(pipe, id, version, &value);
    }

    /// Adds "this task is deleted" to a pipeline.
    pub fn add_tombstone(&self, pipe: &mut Pipeline, id: Uuid) {
        self.add_set_if_newer(
            pipe,
            id,
            TOMBSTONE_VERSION,
            &format!("{TOMBSTONE_VERSION}|-|"),
        );
    }

    fn add_set_if_newer(&self, pipe: &mut Pipeline, id: Uuid, version: i64, value: &str) {
        pipe.cmd("EVAL")
            .arg(SET_IF_NEWER)
            .arg(1)
            .arg(self.keys.task(id))
            .arg(version)
            .arg(value)
            .arg(self.ttl_ms)
            .ignore();
    }
}

fn parse(value: Bytes) -> Option<Cached> {
    let first = value.iter().position(|b| *b == b'|')?;
    let second = first + 1 + value[first + 1..].iter().position(|b| *b == b'|')?;
    let version: i64 = std::str::from_utf8(&value[..first]).ok()?.parse().ok()?;
    if version == TOMBSTONE_VERSION {
        return Some(Cached::Deleted);
    }
    let user_id = std::str::from_utf8(&value[first + 1..second])
        .ok()?
        .parse()
        .ok()?;
    Some(Cached::Task {
        user_id,
        version,
        json: value.slice(second + 1..),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_and_tombstones() {
        let user = Uuid::new_v4();
        let Some(Cached::Task {
            user_id,
            version,
            json,
        }) = parse(Bytes::from(format!("7|{user}|{{\"a\":\"x|y\"}}")))
        else {
            panic!("expected a task");
        };
        assert_eq!(
            (user_id, version, &json[..]),
            (user, 7, &b"{\"a\":\"x|y\"}"[..])
        );
        assert!(matches!(
            parse(Bytes::from(format!("{TOMBSTONE_VERSION}|-|"))),
            Some(Cached::Deleted)
        ));
        assert!(parse(Bytes::from_static(b"garbage")).is_none());
    }
}
