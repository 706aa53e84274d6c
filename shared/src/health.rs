//! Whether the node's dependencies answer: `/readyz` asks on demand, and a
//! background check asks every [`CHECK_EVERY`], so `dependency_up` shows
//! each node's view of PostgreSQL and Redis whether or not anything polls
//! `/readyz` (and a log line marks each change).

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;

use crate::metrics::DEPENDENCY_UP;
use crate::redis_conn::RedisConn;

/// How often the background check runs.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);
/// A dependency that has not answered within this long counts as down
/// (inside the 2 s timeout of the Kubernetes readiness probe).
const CHECK_TIMEOUT: Duration = Duration::from_millis(1500);

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// `SELECT 1` answered.
    pub postgres: bool,
    /// `PING` answered (on a cluster, by every primary).
    pub redis: bool,
}

impl Readiness {
    /// Both answered.
    pub fn ready(&self) -> bool {
        self.postgres && self.redis
    }
}

/// Asks PostgreSQL and Redis at once, each bounded by [`CHECK_TIMEOUT`],
/// and records the answers in `dependency_up`.
pub async fn check(pool: &Pool, redis: &RedisConn) -> Readiness {
    let postgres = async {
        let client = pool.get().await.ok()?;
        client.simple_query("SELECT 1").await.ok()
    };
    let ping = redis::cmd("PING");
    let (postgres, redis) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, postgres),
        tokio::time::timeout(CHECK_TIMEOUT, redis.cmd::<String>(&ping)),
    );
    let readiness = Readiness {
        postgres: matches!(postgres, Ok(Some(_))),
        redis: matches!(redis, Ok(Ok(_))),
    };
    record(readiness);
    readiness
}

fn record(readiness: Readiness) {
    for (dependency, up) in [("postgres", readiness.postgres), ("redis", readiness.redis)] {
        metrics::gauge!(DEPENDENCY_UP, "dependency" => dependency).set(f64::from(u8::from(up)));
    }
}

/// Checks every [`CHECK_EVERY`] until `stop`, logging each change:
/// `dependency unreachable` (warn) and `dependency reachable again` (info),
/// with the dependency's name.
pub async fn run(pool: Pool, redis: RedisConn, stop: CancellationToken) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Readiness> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let now = tokio::select! {
            now = check(&pool, &redis) => now,
            _ = stop.cancelled() => return,
        };
        for (dependency, up, was) in [
            ("postgres", now.postgres, last.map(|l| l.postgres)),
            ("redis", now.redis, last.map(|l| l.redis)),
        ] {
            match (was, up) {
                (Some(true) | None, false) => {
                    tracing::warn!(dependency, "dependency unreachable");
                }
                (Some(false), true) => tracing::info!(dependency, "dependency reachable again"),
                _ => {}
            }
        }
        last = Some(now);
    }
}
