//! Putting committed events on Redis: one pipelined round trip per write
//! that updates the cache, publishes on the owner's channel (SPUBLISH on a
//! cluster) and appends to the owner's recent-event store, all keys of the
//! owner's slot. The same function serves the write path
//! and the relay, so a republished event has exactly the same effects.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::events::{task_json_of, EventKind};
use shared::redis_keys::RedisKeys;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::cache::{is_noscript, ScriptBy, TaskCache};
use crate::db::task_events::{self, OutboxEvent};
use shared::redis_conn::{RedisConn, RedisFailure};

/// How many recent events each user keeps in Redis, for resuming with
/// `since` and filling gaps without PostgreSQL. This caps Redis memory per
/// user: an event is at most ~41 KB (a 10,000-character description of
/// 4-byte characters; control characters, which JSON would escape to six
/// bytes, are refused), so a user holds at most ~8 MB here, ~60 KB with
/// typical tasks. A resume after a reconnect misses a handful of events;
/// the rarer larger gaps, up to the contract's 1,000 events within 24
/// hours, are read from the outbox in PostgreSQL, which keeps them anyway.
pub const RECENT_EVENTS: isize = 200;
/// How long an idle user's recent events are kept: the contract honours
/// `since` for 24 hours, no longer.
const RECENT_TTL_SECS: i64 = 24 * 3600;
/// Failed events this node keeps retrying itself; beyond that the relay
/// alone republishes them.
const MAX_PENDING: usize = 10_000;
/// How often this node retries its own failed publishes.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// Publishes events and remembers which ones made it.
#[derive(Clone)]
pub struct Publisher {
    redis: RedisConn,
    keys: RedisKeys,
    cache: TaskCache,
    /// Published events waiting to be marked in the outbox, in batches, off
    /// the request path.
    published: mpsc::UnboundedSender<(Uuid, i64)>,
    /// Events this node committed but could not put on Redis. While any is
    /// pending, this node's reads skip the cache, whose copy may predate
    /// the write; a retry loop clears them within ~100 ms of Redis being
    /// reachable again (the relay covers other nodes and crashes).
    pending: Arc<Mutex<Vec<OutboxEvent>>>,
    /// `pending`'s length, kept under its lock: every cached read asks
    /// [`Publisher::has_pending`], and a load is cheaper than the lock.
    pending_len: Arc<AtomicUsize>,
}

impl Publisher {
    /// A publisher, and the receiver that the marker task drains.
    pub fn new(
        redis: RedisConn,
        keys: RedisKeys,
        cache: TaskCache,
    ) -> (Self, mpsc::UnboundedReceiver<(Uuid, i64)>) {
        let (published, rx) = mpsc::unbounded_channel();
        (
            Self {
                redis,
                keys,
                cache,
                published,
                pending: Arc::default(),
                pending_len: Arc::default(),
            },
            rx,
        )
    }

    /// Publishes the events of a write this node just committed; on failure
    /// keeps them for [`Publisher::run_retries`] (and the outbox keeps them
    /// for the relay).
    pub async fn publish(&self, events: &[OutboxEvent]) {
        match self.put_on_redis(events).await {
            Ok(()) => self.mark_later(events),
            Err(err) => {
                tracing::warn!(error = %err, "publishing events failed; retrying");
                let mut pending = self.pending.lock().expect("BUG: pending lock poisoned");
                let room = MAX_PENDING.saturating_sub(pending.len());
                pending.extend(events.iter().take(room).cloned());
                self.pending_len.store(pending.len(), Ordering::SeqCst);
            }
        }
    }

    /// Queues published events for the marker task (the relay marks the
    /// ones it publishes in its own transaction instead).
    fn mark_later(&self, events: &[OutboxEvent]) {
        for event in events {
            let _ = self.published.send((event.user_id, event.seq));
        }
    }

    /// Whether a write of this node has not reached Redis yet.
    pub fn has_pending(&self) -> bool {
        self.pending_len.load(Ordering::SeqCst) > 0
    }

    /// Retries this node's failed publishes until the sender side is gone.
    /// Events stay pending until their retry succeeded, so reads keep
    /// skipping the cache until then.
    pub async fn run_retries(self) {
        let mut tick = tokio::time::interval(RETRY_EVERY);
        loop {
            tick.tick().await;
            let batch: Vec<OutboxEvent> = {
                let pending = self.pending.lock().expect("BUG: pending lock poisoned");
                pending.iter().take(500).cloned().collect()
            };
            if !batch.is_empty() && self.put_on_redis(&batch).await.is_ok() {
                self.mark_later(&batch);
                let mut pending = self.pending.lock().expect("BUG: pending lock poisoned");
                pending.drain(..batch.len());
                self.pending_len.store(pending.len(), Ordering::SeqCst);
            }
            // This task holds the last handle once the node is gone.
            if Arc::strong_count(&self.pending) == 1 {
                return;
            }
        }
    }

    /// Puts `events` on Redis: one pipeline per user, all sent at once (a
    /// user's keys share one slot, so on a cluster each pipeline goes to
    /// one shard). On failure they stay unpublished in the outbox for the
    /// relay.
    pub async fn put_on_redis(&self, events: &[OutboxEvent]) -> Result<(), RedisFailure> {
        let mut sent = self.send(events, ScriptBy::Sha).await;
        // Redis lost its scripts (restarted, or a new primary): again with
        // their text. What else those pipelines did is harmless to repeat
        // (cache upgrades, a recent-store entry by seq, an event the
        // ws-nodes drop by seq).
        if matches!(&sent, Err(err) if is_noscript(err)) {
            sent = self.send(events, ScriptBy::Text).await;
        }
        match sent {
            Ok(()) => {
                metrics::counter!(crate::metrics::EVENTS_PUBLISHED).increment(events.len() as u64);
                Ok(())
            }
            Err(err) => {
                metrics::counter!(crate::metrics::EVENT_PUBLISH_FAILURES).increment(1);
                Err(err)
            }
        }
    }

    async fn send(&self, events: &[OutboxEvent], by: ScriptBy) -> Result<(), RedisFailure> {
        let mut pipes: Vec<(Uuid, redis::Pipeline)> = Vec::new();
        for event in events {
            let at = match pipes.iter().position(|(user, _)| *user == event.user_id) {
                Some(at) => at,
                None => {
                    pipes.push((event.user_id, redis::pipe()));
                    pipes.len() - 1
                }
            };
            self.add_event(&mut pipes[at].1, event, by);
        }
        // Each ends with a WAIT for a replica where its primary has one.
        let sent = futures_util::future::join_all(pipes.iter_mut().map(|(user, pipe)| {
            let key = self.keys.user_events_channel(*user);
            async move { self.redis.run_replicated(pipe, &key).await }
        }))
        .await;
        sent.into_iter().collect()
    }

    fn add_event(&self, pipe: &mut redis::Pipeline, event: &OutboxEvent, by: ScriptBy) {
        match (event.kind, event.version, task_json_of(&event.payload)) {
            (EventKind::Deleted, _, _) => {
                self.cache
                    .add_tombstone(pipe, by, event.user_id, event.task_id)
            }
            (_, Some(version), Some(task)) => {
                self.cache
                    .add_task(pipe, by, event.user_id, event.task_id, version, task)
            }
            _ => tracing::error!(seq = event.seq, "BUG: an event without its task or version"),
        }
        let recent = self.keys.user_recent_events(event.user_id);
        pipe.cmd(self.redis.publish_command())
            .arg(self.keys.user_events_channel(event.user_id))
            .arg(&event.payload)
            .ignore()
            .zadd(&recent, &event.payload, event.seq)
            .ignore()
            .zremrangebyrank(&recent, 0, -(RECENT_EVENTS + 1))
            .ignore()
            .expire(&recent, RECENT_TTL_SECS)
            .ignore();
    }
}

/// Marks published events in the outbox, a batch at a time, until the
/// sender side is dropped.
pub async fn run_marker(
    pool: deadpool_postgres::Pool,
    mut rx: mpsc::UnboundedReceiver<(Uuid, i64)>,
) {
    let mut batch = Vec::with_capacity(512);
    while rx.recv_many(&mut batch, 512).await > 0 {
        // A short pause lets a burst of writes share one UPDATE.
        tokio::time::sleep(Duration::from_millis(20)).await;
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let result = match pool.get().await {
            Ok(client) => task_events::mark_published(&client, &batch).await,
            Err(err) => Err(err.into()),
        };
        if let Err(err) = result {
            // Harmless: the relay will publish these again, and duplicates
            // are dropped by seq downstream.
            tracing::debug!(error = %err, "marking events published failed");
        }
        batch.clear();
    }
}
