//! The node's one Redis pub/sub connection: the pump. It subscribes to
//! exactly the channels of users with a local subscriber (following the
//! hub's [`Interest`] changes, batched into one SUBSCRIBE / UNSUBSCRIBE per
//! round), decodes each incoming event once and hands it to an
//! [`EventSink`]. It never waits on one user's I/O: whatever an event needs
//! beyond that (ordering, gap filling) happens in the sink, off the pump.
//!
//! Delivery guarantee: Redis pub/sub is at-most-once, so the pump promises
//! only this much: every event received while connected is handed on, in
//! the order Redis delivered it, and after the connection is lost and
//! re-established (with every wanted channel subscribed again) the sink is
//! told, so it can catch every subscribed user up from history.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use shared::redis_keys::RedisKeys;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::hub::{Event, Interest};

/// Where the pump hands events. Both calls must return at once.
pub trait EventSink: Send + Sync + 'static {
    /// An event of `user`'s, as it came off Redis.
    fn event(&self, user: Uuid, event: Arc<Event>);
    /// The pump was disconnected and is subscribed again: events published
    /// meanwhile were missed.
    fn reconnected(&self);
}

/// Runs until `stop` is cancelled or the interest channel closes.
pub async fn run(
    client: redis::Client,
    keys: RedisKeys,
    sink: Arc<dyn EventSink>,
    mut interest: mpsc::UnboundedReceiver<Interest>,
    stop: CancellationToken,
) {
    let channel = |user: &Uuid| keys.user_events_channel(*user);
    // The channels this node should be subscribed to; survives reconnects.
    let mut wanted: HashSet<Uuid> = HashSet::new();
    let mut batch = Vec::new();
    let mut first_connection = true;
    let mut backoff = Duration::from_millis(100);
    loop {
        let pubsub = tokio::select! {
            pubsub = client.get_async_pubsub() => pubsub,
            _ = stop.cancelled() => return,
        };
        let (mut sink_half, mut stream) = match pubsub {
            Ok(pubsub) => pubsub.split(),
            Err(err) => {
                tracing::warn!(error = %err, "redis pub/sub unavailable; retrying");
                // Keep taking changes so subscribers are not held up; the
                // catch-up after reconnecting covers what they miss.
                while let Ok(change) = interest.try_recv() {
                    apply(&mut wanted, change);
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        if !wanted.is_empty() {
            let channels: Vec<String> = wanted.iter().map(channel).collect();
            if let Err(err) = sink_half.subscribe(&channels).await {
                tracing::warn!(error = %err, "resubscribing failed; reconnecting");
                continue;
            }
        }
        if !first_connection {
            tracing::info!(
                users = wanted.len(),
                "redis pub/sub reconnected; catching up from history"
            );
            sink.reconnected();
        }
        first_connection = false;
        loop {
            tokio::select! {
                n = interest.recv_many(&mut batch, 4096) => {
                    if n == 0 {
                        return;
                    }
                    let (subscribe, unsubscribe, waiters) = plan(&mut wanted, batch.drain(..));
                    let result = async {
                        if !subscribe.is_empty() {
                            sink_half.subscribe(subscribe.iter().map(channel).collect::<Vec<_>>()).await?;
                        }
                        if !unsubscribe.is_empty() {
                            sink_half.unsubscribe(unsubscribe.iter().map(channel).collect::<Vec<_>>()).await?;
                        }
                        Ok::<_, redis::RedisError>(())
                    }
                    .await;
                    for waiter in waiters {
                        let _ = waiter.send(());
                    }
                    if let Err(err) = result {
                        tracing::warn!(error = %err, "redis (un)subscribe failed; reconnecting");
                        break;
                    }
                }
                message = stream.next() => match message {
                    Some(message) => {
                        let Some(user) = keys.user_of_events_channel(message.get_channel_name()) else {
                            continue;
                        };
                        match String::from_utf8(message.get_payload_bytes().to_vec()) {
                            Ok(payload) => {
                                if let Some(event) = Event::from_text(Utf8Bytes::from(payload)) {
                                    sink.event(user, event);
                                }
                            }
                            Err(_) => tracing::error!("BUG: an event that is not UTF-8"),
                        }
                    }
                    None => {
                        tracing::warn!("redis pub/sub connection lost; reconnecting");
                        break;
                    }
                },
                _ = stop.cancelled() => return,
            }
        }
    }
}

/// Records a change while Redis is down, answering at once: the catch-up
/// after reconnecting brings the subscriber up to date.
fn apply(wanted: &mut HashSet<Uuid>, change: Interest) {
    match change {
        Interest::Subscribe(user, done) => {
            wanted.insert(user);
            let _ = done.send(());
        }
        Interest::Unsubscribe(user) => {
            wanted.remove(&user);
        }
    }
}

/// Nets a batch of changes into one subscribe and one unsubscribe list.
fn plan(
    wanted: &mut HashSet<Uuid>,
    changes: impl Iterator<Item = Interest>,
) -> (Vec<Uuid>, Vec<Uuid>, Vec<oneshot::Sender<()>>) {
    let before = wanted.clone();
    let mut touched = Vec::new();
    let mut waiters = Vec::new();
    for change in changes {
        match change {
            Interest::Subscribe(user, done) => {
                wanted.insert(user);
                touched.push(user);
                waiters.push(done);
            }
            Interest::Unsubscribe(user) => {
                wanted.remove(&user);
                touched.push(user);
            }
        }
    }
    touched.sort_unstable();
    touched.dedup();
    let subscribe = touched
        .iter()
        .filter(|u| wanted.contains(u) && !before.contains(u))
        .copied()
        .collect();
    let unsubscribe = touched
        .iter()
        .filter(|u| !wanted.contains(u) && before.contains(u))
        .copied()
        .collect();
    (subscribe, unsubscribe, waiters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_nets_a_batch() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut wanted = HashSet::from([c]);
        let (tx1, _) = oneshot::channel();
        let (tx2, _) = oneshot::channel();
        let changes = vec![
            Interest::Subscribe(a, tx1),
            Interest::Subscribe(b, tx2),
            Interest::Unsubscribe(b),
            Interest::Unsubscribe(c),
        ];
        let (sub, unsub, waiters) = plan(&mut wanted, changes.into_iter());
        assert_eq!(sub, vec![a]);
        assert_eq!(unsub, vec![c]);
        assert_eq!(waiters.len(), 2);
        assert_eq!(wanted, HashSet::from([a]));
    }
}
