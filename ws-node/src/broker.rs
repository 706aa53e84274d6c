//! The node's Redis pub/sub: the pump. It subscribes to exactly the
//! channels of users with a local subscriber (following the hub's
//! [`Interest`] changes, batched into one round of subscribes per shard),
//! decodes each incoming event once and hands it to an [`EventSink`]. It
//! never waits on one user's I/O: whatever an event needs beyond that
//! (ordering, gap filling) happens in the sink, off the pump.
//!
//! One server or a Redis Cluster: each user's channel lives on one server
//! (on a cluster, the primary owning the channel's slot, reached with
//! sharded pub/sub). This module is the coordinator: it knows the
//! [`Topology`] (`shared::redis_topology`), keeps one [`shard::Shard`] task (one connection)
//! per server it needs, and tells each which users to hold. When the
//! cluster's topology changes (a failover, a slot move) the users whose
//! server changed are moved to the new one and caught up from history.
//!
//! Delivery guarantee: Redis pub/sub is at-most-once, so the pump promises
//! only this much: every event received while subscribed is handed on, in
//! the order its server delivered it, and whenever a user's subscription
//! was (re)established after a time without it, the sink is told, so it
//! can catch that user up from history.

mod shard;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use shared::background::Background;
use shared::redis_conn::{RedisConn, RedisTarget};
use shared::redis_keys::RedisKeys;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::hub::{Event, Interest};
use shard::{Command, Shard};
use shared::redis_topology::{Addr, Topology};

/// Where the pump hands events. Both calls must return at once.
pub trait EventSink: Send + Sync + 'static {
    /// An event of `user`'s, as it came off Redis.
    fn event(&self, user: Uuid, event: Arc<Event>);
    /// These users' channels were subscribed (again) after a time without:
    /// events published meanwhile were missed.
    fn resubscribed(&self, users: Vec<Uuid>);
}

/// How often the cluster's slot map is read when all is well, and while a
/// shard reports trouble (a failover completes within a few seconds).
const TOPOLOGY_EVERY: Duration = Duration::from_secs(2);
const TOPOLOGY_EVERY_IN_TROUBLE: Duration = Duration::from_millis(200);
/// How long after the last trouble report the fast reading goes on.
const TROUBLE_LASTS: Duration = Duration::from_secs(15);

/// Runs until `stop` is cancelled or the interest channel closes.
pub async fn run(
    target: RedisTarget,
    conn: RedisConn,
    keys: RedisKeys,
    sink: Arc<dyn EventSink>,
    interest: mpsc::UnboundedReceiver<Interest>,
    background: Background,
) {
    let (trouble_tx, trouble) = mpsc::unbounded_channel();
    let topology = match &target {
        RedisTarget::Single(info) => {
            let addr = RedisTarget::address(info).map_or_else(
                || "redis".to_owned(),
                |(host, port)| format!("{host}:{port}"),
            );
            Some(Topology::Single(addr))
        }
        RedisTarget::Cluster(_) => None,
    };
    let pump = Pump {
        target,
        conn,
        keys,
        sink,
        stop: background.stopping(),
        background,
        topology,
        wanted: HashMap::new(),
        shards: HashMap::new(),
        trouble_tx,
    };
    pump.run(interest, trouble).await;
}

struct Pump {
    target: RedisTarget,
    /// For reading the cluster's slot map.
    conn: RedisConn,
    keys: RedisKeys,
    sink: Arc<dyn EventSink>,
    /// Where shard tasks run, tracked until the node stops.
    background: Background,
    stop: CancellationToken,
    /// None until a cluster's slot map was first read.
    topology: Option<Topology>,
    /// Users to hold, and the server holding each (None: no known owner
    /// yet; they are placed when the topology is known).
    wanted: HashMap<Uuid, Option<Addr>>,
    shards: HashMap<Addr, ShardHandle>,
    trouble_tx: mpsc::UnboundedSender<Addr>,
}

struct ShardHandle {
    commands: mpsc::UnboundedSender<Command>,
    stop: CancellationToken,
}

impl Pump {
    async fn run(
        mut self,
        mut interest: mpsc::UnboundedReceiver<Interest>,
        mut trouble: mpsc::UnboundedReceiver<Addr>,
    ) {
        let mut batch = Vec::new();
        let mut in_trouble_until = tokio::time::Instant::now();
        if self.target.is_cluster() {
            self.refresh().await;
        }
        loop {
            let every = if tokio::time::Instant::now() < in_trouble_until {
                TOPOLOGY_EVERY_IN_TROUBLE
            } else {
                TOPOLOGY_EVERY
            };
            tokio::select! {
                n = interest.recv_many(&mut batch, 4096) => {
                    if n == 0 {
                        break;
                    }
                    self.apply(batch.drain(..));
                }
                Some(addr) = trouble.recv() => {
                    tracing::debug!(shard = %addr, "shard in trouble; reading the topology");
                    in_trouble_until = tokio::time::Instant::now() + TROUBLE_LASTS;
                    while trouble.try_recv().is_ok() {}
                    if self.target.is_cluster() {
                        self.refresh().await;
                    }
                }
                _ = tokio::time::sleep(every), if self.target.is_cluster() => self.refresh().await,
                _ = self.stop.cancelled() => break,
            }
        }
        for shard in self.shards.values() {
            shard.stop.cancel();
        }
    }

    /// Nets a batch of interest changes and sends each shard its share.
    fn apply(&mut self, changes: impl Iterator<Item = Interest>) {
        let mut subscribe: HashMap<Addr, (Vec<Uuid>, Vec<oneshot::Sender<()>>)> = HashMap::new();
        let mut unsubscribe: HashMap<Addr, Vec<Uuid>> = HashMap::new();
        let mut netted: HashMap<Uuid, bool> = HashMap::new();
        let mut unplaced_waiters = Vec::new();
        for change in changes {
            match change {
                Interest::Subscribe(user, done) => {
                    netted.insert(user, true);
                    match self.place(user) {
                        Some(addr) => subscribe.entry(addr).or_default().1.push(done),
                        // Answered at once: once placed, the user is caught up.
                        None => unplaced_waiters.push(done),
                    }
                }
                Interest::Unsubscribe(user) => {
                    netted.insert(user, false);
                }
            }
        }
        for (user, wants) in netted {
            match (wants, self.wanted.get(&user)) {
                (true, None) => {
                    let addr = self.place(user);
                    self.wanted.insert(user, addr.clone());
                    if let Some(addr) = addr {
                        subscribe.entry(addr).or_default().0.push(user);
                    }
                }
                (false, Some(held)) => {
                    if let Some(addr) = held.clone() {
                        unsubscribe.entry(addr).or_default().push(user);
                    }
                    self.wanted.remove(&user);
                }
                _ => {}
            }
        }
        for waiter in unplaced_waiters {
            let _ = waiter.send(());
        }
        for (addr, users) in unsubscribe {
            self.send(&addr, Command::Unsubscribe(users));
        }
        for (addr, (users, waiters)) in subscribe {
            self.send(
                &addr,
                Command::Subscribe {
                    users,
                    waiters,
                    moved: false,
                },
            );
        }
    }

    /// The server that should hold `user`'s channel, if known.
    fn place(&self, user: Uuid) -> Option<Addr> {
        let channel = self.keys.user_events_channel(user);
        self.topology.as_ref()?.owner(channel.as_bytes()).cloned()
    }

    /// Reads the cluster's slot map and moves every user whose server
    /// changed; stops shards no longer needed.
    async fn refresh(&mut self) {
        let topology = match Topology::read(&self.conn).await {
            Ok(topology) => topology,
            Err(err) => {
                tracing::debug!(error = %err, "reading the cluster topology failed");
                return;
            }
        };
        if self.topology.as_ref() == Some(&topology) {
            return;
        }
        tracing::info!(?topology, "redis cluster topology");
        self.topology = Some(topology);
        let mut moves: HashMap<Addr, Vec<Uuid>> = HashMap::new();
        let mut leaves: HashMap<Addr, Vec<Uuid>> = HashMap::new();
        let users: Vec<Uuid> = self.wanted.keys().copied().collect();
        for user in users {
            let now = self.place(user);
            let held = self.wanted.get(&user).cloned().flatten();
            if now == held {
                continue;
            }
            if let Some(old) = held {
                leaves.entry(old).or_default().push(user);
            }
            if let Some(new) = now.clone() {
                moves.entry(new).or_default().push(user);
            }
            self.wanted.insert(user, now);
        }
        for (addr, users) in leaves {
            self.send(&addr, Command::Unsubscribe(users));
        }
        for (addr, users) in moves {
            tracing::info!(shard = %addr, users = users.len(), "moving subscriptions");
            self.send(
                &addr,
                Command::Subscribe {
                    users,
                    waiters: Vec::new(),
                    moved: true,
                },
            );
        }
        // A shard that holds nobody and owns no slots goes.
        let owners = self
            .topology
            .as_ref()
            .map_or_else(Vec::new, Topology::primaries);
        let held: std::collections::HashSet<&Addr> = self.wanted.values().flatten().collect();
        self.shards.retain(|addr, shard| {
            let keep = held.contains(addr) || owners.contains(addr);
            if !keep {
                shard.stop.cancel();
            }
            keep
        });
    }

    /// Sends a command to the shard at `addr`, starting it if needed.
    fn send(&mut self, addr: &Addr, command: Command) {
        let shard = match self.shards.get(addr) {
            Some(shard) if !shard.commands.is_closed() => shard,
            _ => {
                let shard = self.start_shard(addr);
                self.shards.insert(addr.clone(), shard);
                &self.shards[addr]
            }
        };
        let _ = shard.commands.send(command);
    }

    fn start_shard(&self, addr: &Addr) -> ShardHandle {
        let (host, port) = addr.rsplit_once(':').unwrap_or((addr.as_str(), "6379"));
        let client = match &self.target {
            RedisTarget::Single(info) => {
                let settings = info
                    .redis_settings()
                    .clone()
                    .set_protocol(redis::ProtocolVersion::RESP3);
                redis::Client::open(info.clone().set_redis_settings(settings))
            }
            RedisTarget::Cluster(_) => self.target.node_client(host, port.parse().unwrap_or(6379)),
        };
        let (commands, receiver) = mpsc::unbounded_channel();
        let stop = self.stop.child_token();
        match client {
            Ok(client) => {
                let shard = Shard {
                    addr: addr.clone(),
                    client,
                    commands: if self.target.is_cluster() {
                        shard::SHARDED
                    } else {
                        shard::CLASSIC
                    },
                    keys: self.keys.clone(),
                    sink: self.sink.clone(),
                    trouble: self.trouble_tx.clone(),
                    stop: stop.clone(),
                };
                self.background.spawn(shard.run(receiver));
            }
            Err(err) => tracing::error!(shard = %addr, error = %err, "BUG: unusable redis address"),
        }
        ShardHandle { commands, stop }
    }
}
