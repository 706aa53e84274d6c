//! Revoked tokens. Logout writes the token id to PostgreSQL (durable: it
//! survives any restart) and announces it on a Redis channel; every node
//! holds the set in memory, so checking a token costs no round trip.
//!
//! Two feeds keep the set current, and either alone is enough:
//! - the Redis channel, which delivers a logout in milliseconds;
//! - a poll of PostgreSQL twice a second, which covers a Redis outage and a
//!   node that started after the announcement.
//!
//! Entries are dropped once the token would have expired anyway.
//!
//! Metrics (named in [`crate::metrics`]): the set's size, when PostgreSQL
//! was last read (the lag an operator watches) and whether the Redis
//! channel is followed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use deadpool_postgres::Pool;
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tracing::{debug, warn};
use uuid::Uuid;

use crate::background::Background;
use crate::metrics::{REVOCATIONS, REVOCATION_CHANNEL, REVOCATION_SYNC};
use crate::redis_conn::RedisTarget;
use crate::redis_keys::RedisKeys;

/// How often PostgreSQL is polled: the contract's "within one second".
const POLL_EVERY: Duration = Duration::from_millis(500);
/// The poll re-reads this far behind its watermark, so a logout whose
/// transaction started earlier but committed later is still seen.
const POLL_OVERLAP: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// The in-memory set of revoked token ids, shared by every request.
#[derive(Debug)]
pub struct Revocations {
    /// jti → expiry (seconds since the epoch), for pruning. Looked up on
    /// every request: hashed with foldhash (seeded at random), not SipHash.
    revoked: DashMap<Uuid, i64, foldhash::quality::RandomState>,
    /// Announces each newly learnt jti, so a ws-node can close its sockets.
    announce: broadcast::Sender<Uuid>,
    /// Whether the set has been loaded from PostgreSQL at least once. Until
    /// then no token can be trusted: a node that just started would
    /// otherwise accept a token revoked before it started.
    loaded: AtomicBool,
}

impl Default for Revocations {
    fn default() -> Self {
        Self {
            revoked: DashMap::default(),
            announce: broadcast::channel(4096).0,
            loaded: AtomicBool::new(false),
        }
    }
}

impl Revocations {
    /// Whether the set is complete enough to check tokens against.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Whether the token with this id has been revoked.
    pub fn is_revoked(&self, jti: &Uuid) -> bool {
        self.revoked.contains_key(jti)
    }

    /// Records a revocation; announces it the first time it is seen.
    pub fn insert(&self, jti: Uuid, exp: i64) {
        if self.revoked.insert(jti, exp).is_none() {
            let _ = self.announce.send(jti);
        }
    }

    /// A receiver of newly revoked token ids.
    pub fn subscribe(&self) -> broadcast::Receiver<Uuid> {
        self.announce.subscribe()
    }

    /// Forgets tokens that have expired anyway.
    fn prune(&self, now: i64) {
        self.revoked.retain(|_, exp| *exp > now);
    }

    /// Revoked tokens held (not yet expired).
    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    /// Whether no token is revoked.
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }
}

/// Records a successful read of PostgreSQL and the set's size.
fn record_sync(revocations: &Revocations) {
    metrics::gauge!(REVOCATION_SYNC).set(Utc::now().timestamp_millis() as f64 / 1000.0);
    metrics::gauge!(REVOCATIONS).set(revocations.len() as f64);
}

/// The message announced on the revocations channel: `<jti> <exp>`.
pub fn announcement(jti: Uuid, exp: i64) -> String {
    format!("{jti} {exp}")
}

fn parse_announcement(payload: &str) -> Option<(Uuid, i64)> {
    let (jti, exp) = payload.split_once(' ')?;
    Some((jti.parse().ok()?, exp.parse().ok()?))
}

/// Records a revocation durably. The `revoked_tokens` table's SQL lives here
/// because both node kinds read it.
pub async fn record(
    client: &impl deadpool_postgres::GenericClient,
    jti: Uuid,
    user_id: Uuid,
    exp: i64,
) -> Result<(), tokio_postgres::Error> {
    let expires_at = DateTime::<Utc>::from_timestamp(exp, 0).unwrap_or_else(Utc::now);
    client
        .execute(
            &client
                .prepare_cached(
                    "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (jti) DO NOTHING",
                )
                .await?,
            &[&jti, &user_id, &expires_at],
        )
        .await?;
    Ok(())
}

/// Deletes the revocations of tokens that expired more than `grace` ago:
/// such a token is refused for its expiry anyway. The grace covers nodes
/// whose clock runs behind the database's (each checks `exp` by its own).
/// The index on `expires_at` serves it (migration 0003). Returns how many
/// rows went.
pub async fn prune(
    client: &impl deadpool_postgres::GenericClient,
    grace: Duration,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            &client
                .prepare_cached(
                    "DELETE FROM revoked_tokens WHERE expires_at < now() - make_interval(secs => $1)",
                )
                .await?,
            &[&grace.as_secs_f64()],
        )
        .await
}

/// Revocations recorded at or after `since` that have not expired.
async fn fetch_since(
    pool: &Pool,
    since: DateTime<Utc>,
) -> anyhow::Result<(Vec<(Uuid, i64)>, DateTime<Utc>)> {
    let client = pool.get().await?;
    // The extra row carries the database's clock even when nothing was
    // revoked: the next watermark is taken from it, not from this node's
    // clock, which may differ.
    let rows = client
        .query(
            &client
                .prepare_cached(
                    "SELECT jti, expires_at, now() AS polled_at FROM revoked_tokens
             WHERE revoked_at >= $1 AND expires_at > now()
             UNION ALL SELECT NULL, NULL, now()",
                )
                .await?,
            &[&since],
        )
        .await?;
    let mut polled_at = since;
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        polled_at = row.get("polled_at");
        let jti: Option<Uuid> = row.get("jti");
        let expires_at: Option<DateTime<Utc>> = row.get("expires_at");
        if let (Some(jti), Some(expires_at)) = (jti, expires_at) {
            found.push((jti, expires_at.timestamp()));
        }
    }
    Ok((found, polled_at))
}

/// Loads every live revocation once, waiting at most `within`; the node
/// calls it before serving. On failure (PostgreSQL down) the background
/// poll keeps trying, and tokens are refused as unavailable until it works.
pub async fn load(revocations: &Revocations, pool: &Pool, within: Duration) -> bool {
    match tokio::time::timeout(within, fetch_since(pool, DateTime::<Utc>::UNIX_EPOCH)).await {
        Ok(Ok((found, _))) => {
            for (jti, exp) in found {
                revocations.insert(jti, exp);
            }
            revocations.loaded.store(true, Ordering::Release);
            record_sync(revocations);
            true
        }
        _ => false,
    }
}

/// Keeps `revocations` current until the node stops: follows PostgreSQL
/// and the Redis channel.
pub fn spawn_sync(
    revocations: Arc<Revocations>,
    pool: Pool,
    redis: RedisTarget,
    keys: RedisKeys,
    background: &Background,
) {
    let poll_set = revocations.clone();
    let (poll_stop, stop) = (background.stopping(), background.stopping());
    background.spawn(async move {
        let mut watermark = DateTime::<Utc>::UNIX_EPOCH;
        let mut tick = tokio::time::interval(POLL_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = poll_stop.cancelled() => return,
            }
            match fetch_since(&pool, watermark).await {
                Ok((found, polled_at)) => {
                    for (jti, exp) in found {
                        poll_set.insert(jti, exp);
                    }
                    // A full first load (from the epoch) completes the set.
                    poll_set.loaded.store(true, Ordering::Release);
                    watermark = polled_at - POLL_OVERLAP;
                    record_sync(&poll_set);
                }
                Err(err) => debug!(error = %err, "revocation poll failed; retrying"),
            }
            poll_set.prune(Utc::now().timestamp());
            metrics::gauge!(REVOCATIONS).set(poll_set.len() as f64);
        }
    });

    background.spawn(async move {
        let channel = keys.revocations_channel();
        // A cluster carries classic pub/sub to every node: any seed will
        // do, and the next one is tried when one is lost.
        for attempt in 0usize.. {
            let seed = &redis.seeds()[attempt % redis.seeds().len()];
            let follow = async {
                let mut pubsub = redis::Client::open(seed.clone())?
                    .get_async_pubsub()
                    .await?;
                pubsub.subscribe(&channel).await?;
                metrics::gauge!(REVOCATION_CHANNEL).set(1.0);
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let payload: String = msg.get_payload()?;
                    if let Some((jti, exp)) = parse_announcement(&payload) {
                        revocations.insert(jti, exp);
                    }
                }
                Ok::<_, redis::RedisError>(())
            };
            tokio::select! {
                result = follow => {
                    metrics::gauge!(REVOCATION_CHANNEL).set(0.0);
                    if let Err(err) = result {
                        warn!(error = %err, "revocation channel lost; reconnecting");
                    }
                }
                _ = stop.cancelled() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.cancelled() => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip() {
        let jti = Uuid::new_v4();
        assert_eq!(parse_announcement(&announcement(jti, 42)), Some((jti, 42)));
        assert_eq!(parse_announcement("garbage"), None);
    }

    #[test]
    fn insert_announces_once_and_prune_forgets_expired() {
        let set = Revocations::default();
        let mut rx = set.subscribe();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        set.insert(a, 100);
        set.insert(a, 100);
        set.insert(b, 300);
        assert_eq!(rx.try_recv().unwrap(), a);
        assert_eq!(rx.try_recv().unwrap(), b);
        assert!(rx.try_recv().is_err());
        set.prune(200);
        assert!(!set.is_revoked(&a));
        assert!(set.is_revoked(&b));
    }
}
