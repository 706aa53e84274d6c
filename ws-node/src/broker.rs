//! The node's one Redis pub/sub connection. It subscribes to exactly the
//! channels of users with a local subscriber (commands from the hub, batched
//! into one SUBSCRIBE / UNSUBSCRIBE per round), fans incoming events out
//! through the hub, and fills gaps from history.
//!
//! Delivery guarantee: every committed event reaches every subscribed
//! connection, in seq order, at most once. Redis pub/sub itself is
//! at-most-once, so: a gap seen in a user's seqs is filled from history
//! before the later event goes out, and after the connection to Redis is
//! lost and re-established every subscribed user is brought up to date from
//! history (the PostgreSQL outbox is the truth).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use shared::events::EventView;
use shared::redis_keys::RedisKeys;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use uuid::Uuid;

use crate::history::History;
use crate::hub::{Delivery, Event, Hub};
use crate::metrics::GAP_FILLS;

/// What the hub asks of the broker.
#[derive(Debug)]
pub enum BrokerCmd {
    /// Subscribe to the user's channel; answer when confirmed.
    Subscribe(Uuid, oneshot::Sender<()>),
    /// Unsubscribe from the user's channel.
    Unsubscribe(Uuid),
}

/// Runs until `stop` fires or the hub is gone.
pub async fn run(
    client: redis::Client,
    keys: RedisKeys,
    hub: Arc<Hub>,
    history: History,
    mut commands: mpsc::UnboundedReceiver<BrokerCmd>,
    mut stop: watch::Receiver<bool>,
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
            _ = stop.changed() => return,
        };
        let (mut sink, mut stream) = match pubsub {
            Ok(pubsub) => pubsub.split(),
            Err(err) => {
                tracing::warn!(error = %err, "redis pub/sub unavailable; retrying");
                // Keep taking commands so subscribers are not held up; the
                // catch-up after reconnecting covers what they miss.
                while let Ok(cmd) = commands.try_recv() {
                    apply(&mut wanted, cmd);
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        if !wanted.is_empty() {
            let channels: Vec<String> = wanted.iter().map(channel).collect();
            if let Err(err) = sink.subscribe(&channels).await {
                tracing::warn!(error = %err, "resubscribing failed; reconnecting");
                continue;
            }
        }
        if !first_connection {
            tracing::info!(
                users = wanted.len(),
                "redis pub/sub reconnected; catching up from history"
            );
            catch_up(&hub, &history).await;
        }
        first_connection = false;
        loop {
            tokio::select! {
                n = commands.recv_many(&mut batch, 4096) => {
                    if n == 0 {
                        return;
                    }
                    let (subscribe, unsubscribe, waiters) = plan(&mut wanted, batch.drain(..));
                    let result = async {
                        if !subscribe.is_empty() {
                            sink.subscribe(subscribe.iter().map(channel).collect::<Vec<_>>()).await?;
                        }
                        if !unsubscribe.is_empty() {
                            sink.unsubscribe(unsubscribe.iter().map(channel).collect::<Vec<_>>()).await?;
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
                            Ok(payload) => dispatch(&hub, &history, user, payload).await,
                            Err(_) => tracing::error!("BUG: an event that is not UTF-8"),
                        }
                    }
                    None => {
                        tracing::warn!("redis pub/sub connection lost; reconnecting");
                        break;
                    }
                },
                _ = stop.changed() => return,
            }
        }
    }
}

/// Records a command while Redis is down, answering at once: the
/// catch-up after reconnecting brings the subscriber up to date.
fn apply(wanted: &mut HashSet<Uuid>, cmd: BrokerCmd) {
    match cmd {
        BrokerCmd::Subscribe(user, done) => {
            wanted.insert(user);
            let _ = done.send(());
        }
        BrokerCmd::Unsubscribe(user) => {
            wanted.remove(&user);
        }
    }
}

/// Nets a batch of commands into one subscribe and one unsubscribe list.
fn plan(
    wanted: &mut HashSet<Uuid>,
    commands: impl Iterator<Item = BrokerCmd>,
) -> (Vec<Uuid>, Vec<Uuid>, Vec<oneshot::Sender<()>>) {
    let before = wanted.clone();
    let mut touched = Vec::new();
    let mut waiters = Vec::new();
    for cmd in commands {
        match cmd {
            BrokerCmd::Subscribe(user, done) => {
                wanted.insert(user);
                touched.push(user);
                waiters.push(done);
            }
            BrokerCmd::Unsubscribe(user) => {
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

/// Fans one event out, filling a gap before it from history.
async fn dispatch(hub: &Hub, history: &History, user: Uuid, payload: String) {
    let Some(event) = to_event(payload) else {
        return;
    };
    if let Delivery::Gap { after } = hub.deliver(user, &event, false) {
        match history.between(user, after, event.seq - 1).await {
            Ok(Some(missing)) => {
                metrics::counter!(GAP_FILLS).increment(missing.len() as u64);
                for text in missing {
                    if let Some(missed) = to_event_bytes(text) {
                        hub.deliver(user, &missed, false);
                    }
                }
            }
            Ok(None) => tracing::warn!(%user, after, seq = event.seq, "gap no longer in history"),
            Err(err) => tracing::warn!(error = %err, "could not fill a gap"),
        }
        hub.deliver(user, &event, true);
    }
}

/// Brings every subscribed user up to date after Redis was unreachable.
async fn catch_up(hub: &Hub, history: &History) {
    let users = hub.subscribed_users();
    let ids: Vec<Uuid> = users.iter().map(|(u, _)| *u).collect();
    let latest = match history.latest_seqs(&ids).await {
        Ok(latest) => latest,
        Err(err) => {
            tracing::warn!(error = %err, "catch-up could not read latest seqs");
            return;
        }
    };
    for (user, latest) in latest {
        let Some(after) = hub.last_seq(user) else {
            continue;
        };
        if latest <= after {
            continue;
        }
        if let Ok(Some(events)) = history.between(user, after, latest).await {
            metrics::counter!(GAP_FILLS).increment(events.len() as u64);
            for text in events {
                if let Some(event) = to_event_bytes(text) {
                    hub.deliver(user, &event, false);
                }
            }
        }
    }
}

fn to_event(payload: String) -> Option<Arc<Event>> {
    to_event_bytes(Utf8Bytes::from(payload))
}

fn to_event_bytes(text: Utf8Bytes) -> Option<Arc<Event>> {
    let view = EventView::parse(text.as_str())
        .map_err(|err| tracing::error!(error = %err, "BUG: unreadable event"))
        .ok()?;
    Some(Arc::new(Event {
        seq: view.seq,
        timestamp_ms: view.timestamp,
        text: text.clone(),
    }))
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
        let cmds = vec![
            BrokerCmd::Subscribe(a, tx1),
            BrokerCmd::Subscribe(b, tx2),
            BrokerCmd::Unsubscribe(b),
            BrokerCmd::Unsubscribe(c),
        ];
        let (sub, unsub, waiters) = plan(&mut wanted, cmds.into_iter());
        assert_eq!(sub, vec![a]);
        assert_eq!(unsub, vec![c]);
        assert_eq!(waiters.len(), 2);
        assert_eq!(wanted, HashSet::from([a]));
    }
}
