//! The outbox relay: republishes events that were committed but never made
//! it to Redis (a node died between commit and publish, or Redis was down).
//! Every api-node runs one; `FOR UPDATE SKIP LOCKED` lets them share the
//! work, and a duplicate publish is harmless (receivers drop seen seqs).
//! It also prunes old outbox rows, login failures, registration attempts
//! and the revocations of tokens that have expired anyway. After each
//! round it records how old the oldest unpublished event is
//! (`outbox_oldest_unpublished_age_seconds`): seconds while an api-node
//! died between commit and publish, growing while Redis is out of reach.

use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;

use crate::db::DbError;
use crate::db::{login_failures, register_attempts, task_events};
use crate::publisher::Publisher;

/// Events handled per round.
const BATCH: i64 = 500;
/// Outbox rows are kept at least this long (the contract's 24 hours).
const KEEP_EVENTS: Duration = Duration::from_secs(24 * 3600);
/// How often housekeeping runs.
const PRUNE_EVERY: Duration = Duration::from_secs(300);
/// A revocation is kept this long past its token's expiry, for nodes whose
/// clock runs behind the database's.
const KEEP_REVOKED_PAST_EXPIRY: Duration = Duration::from_secs(3600);

/// Runs until `stop` is cancelled.
pub async fn run(
    pool: Pool,
    publisher: Publisher,
    interval: Duration,
    grace: Duration,
    limit_window: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    let mut last_prune = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        loop {
            match relay_once(&pool, &publisher, grace).await {
                Ok(n) if n == BATCH as usize => continue,
                Ok(_) => break,
                Err(err) => {
                    tracing::debug!(error = %err, "relay round failed");
                    break;
                }
            }
        }
        record_backlog(&pool).await;
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            if let Err(err) = prune(&pool, limit_window).await {
                tracing::debug!(error = %err, "pruning failed");
            }
        }
    }
}

/// Sets `outbox_oldest_unpublished_age_seconds` from PostgreSQL. While
/// PostgreSQL is out of reach the gauge keeps its last value (and
/// `dependency_up{dependency="postgres"}` says why).
async fn record_backlog(pool: &Pool) {
    let age = async { task_events::oldest_unpublished_age(&pool.get().await?).await };
    match age.await {
        Ok(age) => metrics::gauge!(crate::metrics::OUTBOX_BACKLOG_AGE).set(age),
        Err(err) => tracing::debug!(error = %err, "reading the outbox backlog failed"),
    }
}

/// One batch: claim, publish, mark, commit. Returns how many were relayed.
pub async fn relay_once(
    pool: &Pool,
    publisher: &Publisher,
    grace: Duration,
) -> Result<usize, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let events = task_events::claim_unpublished(&tx, grace, BATCH).await?;
    if events.is_empty() {
        return Ok(0);
    }
    if publisher.put_on_redis(&events).await.is_err() {
        return Ok(0);
    }
    let keys: Vec<_> = events.iter().map(|e| (e.user_id, e.seq)).collect();
    task_events::mark_published(&tx, &keys).await?;
    tx.commit().await?;
    metrics::counter!(crate::metrics::EVENTS_RELAYED).increment(events.len() as u64);
    tracing::info!(count = events.len(), "relayed unpublished events");
    Ok(events.len())
}

/// Housekeeping: deletes what no guarantee needs any more; [`run`] calls
/// it every [`PRUNE_EVERY`].
pub async fn prune(pool: &Pool, limit_window: Duration) -> Result<(), DbError> {
    let client = pool.get().await?;
    task_events::prune(&client, KEEP_EVENTS).await?;
    login_failures::prune(&client, limit_window.as_secs_f64()).await?;
    register_attempts::prune(&client, limit_window.as_secs_f64()).await?;
    shared::revocation::prune(&client, KEEP_REVOKED_PAST_EXPIRY).await?;
    Ok(())
}
