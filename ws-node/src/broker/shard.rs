//! One subscription connection to one Redis server (on a cluster, one
//! primary): it holds the channels of the users it is given, reconnects by
//! itself, and hands every message to the [`EventSink`] as it arrives.
//!
//! It speaks RESP3, so subscriptions and messages share one multiplexed
//! connection: (S)SUBSCRIBE commands are pipelined one channel each, and
//! messages arrive as pushes.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};
use shared::redis_keys::RedisKeys;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::EventSink;
use crate::hub::Event;
use shared::redis_topology::Addr;

/// What the coordinator asks of a shard.
pub enum Command {
    /// Hold these users' channels; answer the waiters once subscribed.
    /// `moved`: they were held elsewhere until now, so events may have been
    /// missed in between: catch them up once subscribed.
    Subscribe {
        users: Vec<Uuid>,
        waiters: Vec<oneshot::Sender<()>>,
        moved: bool,
    },
    /// Let go of these users' channels.
    Unsubscribe(Vec<Uuid>),
}

/// How a shard's connection is told apart on a cluster (SSUBSCRIBE) and
/// on one server (SUBSCRIBE).
#[derive(Clone)]
pub struct Commands {
    pub subscribe: &'static str,
    pub unsubscribe: &'static str,
    pub message: PushKind,
    pub unsubscribed: PushKind,
}

/// Sharded pub/sub (Redis 7): each channel lives on its slot's primary.
pub const SHARDED: Commands = Commands {
    subscribe: "SSUBSCRIBE",
    unsubscribe: "SUNSUBSCRIBE",
    message: PushKind::SMessage,
    unsubscribed: PushKind::SUnsubscribe,
};

/// Classic pub/sub on one server.
pub const CLASSIC: Commands = Commands {
    subscribe: "SUBSCRIBE",
    unsubscribe: "UNSUBSCRIBE",
    message: PushKind::Message,
    unsubscribed: PushKind::Unsubscribe,
};

/// Everything a shard task needs.
pub struct Shard {
    pub addr: Addr,
    pub client: redis::Client,
    pub commands: Commands,
    pub keys: RedisKeys,
    pub sink: Arc<dyn EventSink>,
    /// Told this shard's address whenever something suggests the cluster's
    /// topology changed (the server is unreachable, answered MOVED, or
    /// dropped a subscription itself because its slot moved).
    pub trouble: mpsc::UnboundedSender<Addr>,
    pub stop: CancellationToken,
}

/// How long connecting or a subscribe round may take.
const TIMEOUT: Duration = Duration::from_secs(2);

impl Shard {
    /// Runs until `stop` is cancelled or the coordinator drops `commands`.
    pub async fn run(self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut users: HashSet<Uuid> = HashSet::new();
        let mut backoff = Duration::from_millis(50);
        loop {
            let (push_tx, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(TIMEOUT))
                .set_response_timeout(Some(TIMEOUT))
                .set_push_sender(push_tx);
            let connected = tokio::select! {
                conn = self.client.get_multiplexed_async_connection_with_config(&config) => conn,
                _ = self.stop.cancelled() => return,
            };
            let subscribed = match connected {
                Ok(mut conn) => {
                    let all: Vec<Uuid> = users.iter().copied().collect();
                    self.subscribe(&mut conn, &all).await.map(|()| conn)
                }
                Err(err) => Err(err),
            };
            let mut conn = match subscribed {
                Ok(conn) => conn,
                Err(err) => {
                    tracing::warn!(shard = %self.addr, error = %err, "redis pub/sub unavailable; retrying");
                    let _ = self.trouble.send(self.addr.clone());
                    // Keep taking changes so subscribers are not held up;
                    // the catch-up after connecting covers what they miss.
                    loop {
                        match commands.try_recv() {
                            Ok(command) => apply(&mut users, command),
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => return,
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.stop.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            backoff = Duration::from_millis(50);
            // Whatever was published while these users were not subscribed
            // here (first connection included: they may have been held
            // elsewhere, or added while down) comes from history.
            if !users.is_empty() {
                self.sink.resubscribed(users.iter().copied().collect());
            }
            loop {
                tokio::select! {
                    command = commands.recv() => match command {
                        None => return,
                        Some(Command::Subscribe { users: new, waiters, moved }) => {
                            users.extend(new.iter().copied());
                            let result = self.subscribe(&mut conn, &new).await;
                            for waiter in waiters {
                                let _ = waiter.send(());
                            }
                            if let Err(err) = result {
                                tracing::warn!(shard = %self.addr, error = %err, "subscribe failed; reconnecting");
                                let _ = self.trouble.send(self.addr.clone());
                                break;
                            }
                            if moved {
                                self.sink.resubscribed(new);
                            }
                        }
                        Some(Command::Unsubscribe(gone)) => {
                            for user in &gone {
                                users.remove(user);
                            }
                            let mut pipe = redis::pipe();
                            for user in &gone {
                                pipe.cmd(self.commands.unsubscribe)
                                    .arg(self.keys.user_events_channel(*user))
                                    .ignore();
                            }
                            // Not fatal: a lost connection is reported as a
                            // disconnection, and a server that no longer owns
                            // the slot has dropped the channel already.
                            if let Err(err) = pipe.query_async::<()>(&mut conn).await {
                                tracing::debug!(shard = %self.addr, error = %err, "unsubscribe failed");
                            }
                        }
                    },
                    push = pushes.recv() => match push {
                        Some(push) if push.kind == self.commands.message => self.message(push),
                        // A confirmation of ours names a user no longer held;
                        // one naming a held user is the server dropping the
                        // channel: its slot moved away.
                        Some(push) if push.kind == self.commands.unsubscribed => {
                            let held = push.data.first().and_then(|channel| match channel {
                                Value::BulkString(name) => self.keys.user_of_events_channel(name),
                                _ => None,
                            });
                            if held.is_some_and(|user| users.contains(&user)) {
                                let _ = self.trouble.send(self.addr.clone());
                            }
                        }
                        Some(push) if push.kind == PushKind::Disconnection => {
                            tracing::warn!(shard = %self.addr, "redis pub/sub connection lost; reconnecting");
                            let _ = self.trouble.send(self.addr.clone());
                            break;
                        }
                        Some(_) => {}
                        None => break,
                    },
                    _ = self.stop.cancelled() => return,
                }
            }
        }
    }

    /// Subscribes `users` in one round trip (one command per channel, so
    /// each is answered by one confirmation).
    async fn subscribe(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        users: &[Uuid],
    ) -> redis::RedisResult<()> {
        for chunk in users.chunks(1024) {
            let mut pipe = redis::pipe();
            for user in chunk {
                pipe.cmd(self.commands.subscribe)
                    .arg(self.keys.user_events_channel(*user))
                    .ignore();
            }
            pipe.query_async::<()>(conn).await?;
        }
        Ok(())
    }

    /// `[channel, payload]`: decoded once and handed on.
    fn message(&self, push: PushInfo) {
        let mut data = push.data.into_iter();
        let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
            (data.next(), data.next())
        else {
            return;
        };
        let Some(user) = self.keys.user_of_events_channel(&channel) else {
            return;
        };
        match String::from_utf8(payload) {
            Ok(text) => {
                if let Some(event) = Event::from_text(Utf8Bytes::from(text)) {
                    self.sink.event(user, event);
                }
            }
            Err(_) => tracing::error!("BUG: an event that is not UTF-8"),
        }
    }
}

/// A change taken while disconnected: answered at once (the catch-up after
/// connecting brings the subscriber up to date).
fn apply(users: &mut HashSet<Uuid>, command: Command) {
    match command {
        Command::Subscribe {
            users: new,
            waiters,
            ..
        } => {
            users.extend(new);
            for waiter in waiters {
                let _ = waiter.send(());
            }
        }
        Command::Unsubscribe(gone) => {
            for user in gone {
                users.remove(&user);
            }
        }
    }
}
