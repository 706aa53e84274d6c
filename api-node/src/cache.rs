//! The Redis cache of single tasks.
//!
//! A cached value is `<version>|<owner id>|<task JSON>`, so a hit is served
//! as stored bytes with no parsing of the JSON, and the owner check needs no
//! database.
//!
//! The cache must never show a task older than one a write has answered
//! with, nor a deleted one, even when Redis evicts any key at any moment
//! (`maxmemory-policy allkeys-lru`) and readers and publishers are slow.
//! Comparing versions in Redis is not enough for that: an eviction erases
//! the newer version, after which a slow reader's older copy would look
//! new. So the cache follows two rules, each one Lua script:
//!
//! - **Only a reader holding a lease fills an empty slot.** On a miss the
//!   reader sets a lease (a random token, `PX` [`LEASE_TTL_MS`]) *before*
//!   it reads PostgreSQL, and its fill succeeds only if its lease is still
//!   there. Every writer deletes the lease after it commits, so a reader
//!   whose read may predate a commit loses its fill; an evicted or expired
//!   lease loses it too. Either way the slot stays empty: a miss, never a
//!   stale hit.
//! - **Writers only upgrade.** After commit (and on every retry and relay)
//!   a writer replaces a cached *older* version and leaves an empty slot
//!   empty: it cannot know whether a later write's entry was evicted. A
//!   deletion always writes its tombstone (a task id is never reused),
//!   which answers 404 from the cache until it expires.
//!
//! What remains is what the design already accepts: a write whose publish
//! failed (Redis unreachable from its node) leaves the older copy in place
//! until its retry or the relay upgrades it.

use std::sync::LazyLock;

use bytes::{Buf, Bytes};
use redis::Pipeline;
use shared::redis_keys::RedisKeys;
use uuid::Uuid;

use crate::models::Task;
use shared::redis_conn::{RedisConn, RedisFailure};

/// A reader's fill: sets KEYS[1] (the task) to ARGV[3] with a TTL of
/// ARGV[4] ms, only if KEYS[2] (the lease) still holds this reader's token
/// ARGV[1], and KEYS[1] holds no version at or above ARGV[2]. The lease is
/// spent either way.
const FILL_WITH_LEASE: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
local current = redis.call('GET', KEYS[1])
if current then
  local v = tonumber(string.match(current, '^(%d+)|'))
  if v and v >= tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
";

/// A writer's update: revokes any reader's lease (KEYS[2]), then replaces
/// KEYS[1] with ARGV[2] (TTL ARGV[3] ms) only if it holds a version below
/// ARGV[1]. An empty slot stays empty.
const UPGRADE: &str = r"
redis.call('DEL', KEYS[2])
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local v = tonumber(string.match(current, '^(%d+)|'))
if v and v >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// A deletion: revokes any reader's lease (KEYS[2]) and sets the tombstone
/// ARGV[1] on KEYS[1] with a TTL of ARGV[2] ms, whatever was there.
const TOMBSTONE: &str = r"
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// How a script goes into a command: by its SHA1 (`EVALSHA`, a few dozen
/// bytes instead of the script's text on every write), or by its text
/// (`EVAL`, which also loads it) after Redis answered `NOSCRIPT` because it
/// does not hold it (restarted empty, or a failover's new primary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptBy {
    /// `EVALSHA <sha1>`.
    Sha,
    /// `EVAL <text>`.
    Text,
}

impl ScriptBy {
    fn add<'a>(self, pipe: &'a mut Pipeline, code: &'static str, sha: &str) -> &'a mut Pipeline {
        match self {
            Self::Sha => pipe.cmd("EVALSHA").arg(sha),
            Self::Text => pipe.cmd("EVAL").arg(code),
        }
    }
}

/// The SHA1 of each script, as Redis names it.
static FILL_WITH_LEASE_SHA: LazyLock<String> = LazyLock::new(|| sha1(FILL_WITH_LEASE));
static UPGRADE_SHA: LazyLock<String> = LazyLock::new(|| sha1(UPGRADE));
static TOMBSTONE_SHA: LazyLock<String> = LazyLock::new(|| sha1(TOMBSTONE));

fn sha1(code: &str) -> String {
    redis::Script::new(code).get_hash().to_owned()
}

/// Whether Redis refused a script it does not hold (send it by text).
pub fn is_noscript(err: &RedisFailure) -> bool {
    matches!(err, RedisFailure::Redis(err) if err.code() == Some("NOSCRIPT"))
}

/// Outranks every real version (2^53: exact in Lua's doubles).
const TOMBSTONE_VERSION: i64 = 1 << 53;

/// How long a reader's lease lasts: a reader slower than this between its
/// miss and its fill (PostgreSQL waits are bounded by `DB_TIMEOUT_MS`) only
/// loses its fill.
pub const LEASE_TTL_MS: u64 = 5_000;

/// What the cache holds for a task id, as the caller may see it.
#[derive(Debug)]
pub enum Cached {
    /// The caller's task: its version and JSON.
    Task {
        /// Version, for the ETag.
        version: i64,
        /// The task JSON, ready to send.
        json: Bytes,
    },
    /// Deleted recently.
    Deleted,
    /// Someone else's task. Keys are per owner, so only a bug could put
    /// one here; it answers as a missing task would all the same.
    NotOwned,
}

/// The answer to a lookup.
#[derive(Debug)]
pub enum Lookup {
    /// Cached.
    Hit(Cached),
    /// Not cached; with the lease that allows filling the slot from a
    /// PostgreSQL read made from now on (none when Redis is unreachable).
    Miss(Option<FillLease>),
}

/// The right to fill one task's empty slot, unless a write comes first.
#[derive(Debug)]
pub struct FillLease {
    user_id: Uuid,
    id: Uuid,
    token: String,
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

    /// One round trip on a hit; on a miss a second one takes the lease. The
    /// caller must read PostgreSQL only after this returns.
    /// A task is cached under its owner's key only: `user_id` is the
    /// caller's, so another user's id never finds it.
    pub async fn lookup(&self, user_id: Uuid, id: Uuid) -> Lookup {
        let mut buf = Uuid::encode_buffer();
        let caller = user_id.hyphenated().encode_lower(&mut buf);
        let key = self.keys.task_of(caller, id);
        let value: Option<Vec<u8>> = match self.redis.cmd(redis::cmd("GET").arg(&key)).await {
            Ok(value) => value,
            Err(err) => {
                tracing::debug!(error = %err, "cache read failed; treating as a miss");
                return Lookup::Miss(None);
            }
        };
        if let Some(cached) = value.and_then(|v| parse(v, caller, user_id)) {
            return Lookup::Hit(cached);
        }
        let token = Uuid::new_v4().simple().to_string();
        let take = redis::cmd("SET")
            .arg(self.keys.task_fill_lease(user_id, id))
            .arg(&token)
            .arg("PX")
            .arg(LEASE_TTL_MS)
            .to_owned();
        match self.redis.cmd::<()>(&take).await {
            Ok(()) => Lookup::Miss(Some(FillLease { user_id, id, token })),
            Err(err) => {
                tracing::debug!(error = %err, "cache lease failed; not filling");
                Lookup::Miss(None)
            }
        }
    }

    /// Stores a task read from PostgreSQL after `lease` was taken, in the
    /// background: the response does not wait for it.
    pub fn fill(&self, task: &Task, lease: FillLease) {
        let (cache, task) = (self.clone(), task.clone());
        tokio::spawn(async move {
            if let Err(err) = cache.fill_now(&task, lease).await {
                tracing::debug!(error = %err, "cache fill failed");
            }
        });
    }

    /// [`TaskCache::fill`], waited for: whether the task was stored.
    pub async fn fill_now(&self, task: &Task, lease: FillLease) -> Result<bool, RedisFailure> {
        let (filled,) = match self
            .redis
            .run::<(i64,)>(&self.fill_pipe(task, &lease, ScriptBy::Sha))
            .await
        {
            Err(err) if is_noscript(&err) => {
                self.redis
                    .run::<(i64,)>(&self.fill_pipe(task, &lease, ScriptBy::Text))
                    .await?
            }
            other => other?,
        };
        Ok(filled == 1)
    }

    fn fill_pipe(&self, task: &Task, lease: &FillLease, by: ScriptBy) -> Pipeline {
        debug_assert_eq!(
            (lease.user_id, lease.id),
            (task.user_id, task.id),
            "BUG: a lease fills its own task"
        );
        let version = i64::from(task.version);
        let mut pipe = redis::pipe();
        by.add(&mut pipe, FILL_WITH_LEASE, &FILL_WITH_LEASE_SHA)
            .arg(2)
            .arg(self.keys.task(task.user_id, task.id))
            .arg(self.keys.task_fill_lease(task.user_id, task.id))
            .arg(&lease.token)
            .arg(version)
            .arg(entry(version, task.user_id, &task.to_json()))
            .arg(self.ttl_ms);
        pipe
    }

    /// Adds "this version of the task was committed" to a pipeline: it
    /// replaces an older cached version and cancels readers' leases.
    pub fn add_task(
        &self,
        pipe: &mut Pipeline,
        by: ScriptBy,
        user_id: Uuid,
        id: Uuid,
        version: i64,
        json: &str,
    ) {
        by.add(pipe, UPGRADE, &UPGRADE_SHA)
            .arg(2)
            .arg(self.keys.task(user_id, id))
            .arg(self.keys.task_fill_lease(user_id, id))
            .arg(version)
            .arg(entry(version, user_id, json))
            .arg(self.ttl_ms)
            .ignore();
    }

    /// Adds "this task is deleted" to a pipeline.
    pub fn add_tombstone(&self, pipe: &mut Pipeline, by: ScriptBy, user_id: Uuid, id: Uuid) {
        by.add(pipe, TOMBSTONE, &TOMBSTONE_SHA)
            .arg(2)
            .arg(self.keys.task(user_id, id))
            .arg(self.keys.task_fill_lease(user_id, id))
            .arg(format!("{TOMBSTONE_VERSION}|-|"))
            .arg(self.ttl_ms)
            .ignore();
    }
}

fn entry(version: i64, user_id: Uuid, json: &str) -> String {
    format!("{version}|{user_id}|{json}")
}

/// Reads a cached value for the caller `user_id` (`caller` is its
/// hyphenated lower-case text); None if it is not one. The owner is
/// compared as text first (an entry's owner is written that way): cheaper
/// than parsing it on every hit. The JSON is the value's own buffer from
/// its start: no copy, and no shared handle to allocate.
fn parse(value: Vec<u8>, caller: &str, user_id: Uuid) -> Option<Cached> {
    let first = value.iter().position(|b| *b == b'|')?;
    let version = parse_version(&value[..first])?;
    if version == TOMBSTONE_VERSION {
        return Some(Cached::Deleted);
    }
    let rest = &value[first + 1..];
    // An owner written as `entry` writes it ends where a hyphenated id does.
    let owner_len = match rest.get(caller.len()) {
        Some(b'|') => caller.len(),
        _ => rest.iter().position(|b| *b == b'|')?,
    };
    let owner = &rest[..owner_len];
    let owned = owner == caller.as_bytes()
        || std::str::from_utf8(owner).ok()?.parse::<Uuid>().ok()? == user_id;
    if !owned {
        return Some(Cached::NotOwned);
    }
    let mut json = Bytes::from(value);
    json.advance(first + owner_len + 2);
    Some(Cached::Task { version, json })
}

/// A version as [`entry`] writes it: decimal digits, at most 18 (enough
/// for the tombstone's 2^53).
fn parse_version(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    digits.iter().try_fold(0_i64, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_and_tombstones() {
        let user = Uuid::new_v4();
        let caller = user.to_string();
        let parse = |value: String| parse(value.into_bytes(), &caller, user);
        let Some(Cached::Task { version, json }) = parse(entry(7, user, "{\"a\":\"x|y\"}")) else {
            panic!("expected a task");
        };
        assert_eq!((version, &json[..]), (7, &b"{\"a\":\"x|y\"}"[..]));
        assert!(matches!(
            parse(format!("{TOMBSTONE_VERSION}|-|")),
            Some(Cached::Deleted)
        ));
        for garbage in [
            "garbage",
            "|x|{}",
            "x|y|{}",
            "-1|y|{}",
            "12345678901234567890|y|{}",
        ] {
            assert!(parse(garbage.into()).is_none(), "{garbage}");
        }
    }

    #[test]
    fn an_owner_is_compared_whatever_its_spelling() {
        let user = Uuid::new_v4();
        let caller = user.to_string();
        let parse = |value: String| parse(value.into_bytes(), &caller, user);
        let upper = format!("3|{}|{{}}", caller.to_uppercase());
        assert!(matches!(
            parse(upper),
            Some(Cached::Task { version: 3, .. })
        ));
        let other = entry(3, Uuid::new_v4(), "{}");
        assert!(matches!(parse(other), Some(Cached::NotOwned)));
        assert!(parse("3|not-an-id|{}".into()).is_none());
    }
}
