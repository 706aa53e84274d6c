//! `redis-events`: how many task events per second Redis alone carries,
//! one server or a Redis Cluster (`--redis redis://…` or
//! `redis+cluster://…`), used exactly as the nodes use it: each event is
//! the api-node's publish pipeline (PUBLISH or SPUBLISH on the owner's
//! channel, the recent-store append and trim, and `WAIT` when
//! `--wait-replicas` is set), and it is received by the ws-node's own
//! broker (`ws_node::broker`: one connection per server it needs,
//! SSUBSCRIBE on a cluster), with a sink that only counts.
//!
//! `--inflight` pipelines are kept in flight for `--secs`, over `--users`
//! users round-robin. Reports events/s published and received, every event
//! accounted for, and the Redis CPU each server spent (`INFO cpu`), from
//! which the per-shard capacity follows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use shared::background::Background;
use shared::redis_conn::{RedisConn, RedisTarget};
use shared::redis_keys::RedisKeys;
use shared::redis_topology::{Addr, Topology};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use ws_node::broker::{self, EventSink};
use ws_node::hub::{Event, Interest};

use crate::args::Args;

/// Counts what the broker hands on.
#[derive(Default)]
struct Counter {
    received: AtomicU64,
}

impl EventSink for Counter {
    fn event(&self, _user: Uuid, _event: Arc<Event>) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }
    fn resubscribed(&self, _users: Vec<Uuid>) {}
}

pub async fn redis_events(args: &Args) -> anyhow::Result<bool> {
    let url = args.string("redis", "redis://127.0.0.1:6379");
    let users = args.number("users", 1000) as usize;
    let secs = args.number("secs", 10);
    let inflight = args.number("inflight", 64) as usize;
    let target = RedisTarget::parse(&url)?;
    let conn = RedisConn::new(&target, Duration::from_secs(2))?
        .waiting_for_replicas(args.number("wait-replicas", 0) as u32);
    let keys = RedisKeys::new(format!("bench-{}", Uuid::new_v4().simple()));
    let servers = servers(&target, &conn).await?;

    // The ws-node's broker, subscribed to every user's channel.
    let counter = Arc::new(Counter::default());
    let background = Background::new();
    let (interest, wanted) = mpsc::unbounded_channel();
    background.spawn(broker::run(
        target.clone(),
        conn.clone(),
        keys.clone(),
        counter.clone(),
        wanted,
        background.clone(),
    ));
    let ids: Vec<Uuid> = (0..users).map(|_| Uuid::new_v4()).collect();
    let mut waiters = Vec::new();
    for user in &ids {
        let (done, subscribed) = oneshot::channel();
        interest.send(Interest::Subscribe(*user, done))?;
        waiters.push(subscribed);
    }
    for waiter in waiters {
        let _ = waiter.await;
    }
    let publisher = Arc::new(Publisher {
        conn,
        keys,
        ids,
        seqs: (0..users).map(|_| AtomicI64::new(0)).collect(),
        next: AtomicU64::new(0),
        task: json!({ "id": Uuid::new_v4(), "version": 1, "title": "a task of a benchmark",
                      "description": "x".repeat(200), "status": "TODO", "priority": 3 })
        .to_string(),
    });
    // Warm up: one event per user, all received, proves every subscription.
    let warm = futures_util::future::join_all((0..users).map(|_| publisher.publish_one())).await;
    anyhow::ensure!(
        warm.iter().all(Result::is_ok),
        "publishing failed while warming up"
    );
    let warmed = wait_for(&counter, users as u64, Duration::from_secs(10)).await;
    anyhow::ensure!(
        warmed == users as u64,
        "only {warmed} of {users} warm-up events arrived: subscriptions missing"
    );

    let cpu_before = redis_cpu(&target, &servers).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let failures = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..inflight)
        .map(|_| {
            let (publisher, failures) = (publisher.clone(), failures.clone());
            tokio::spawn(async move {
                let mut published = 0u64;
                while Instant::now() < deadline {
                    match publisher.publish_one().await {
                        Ok(()) => published += 1,
                        Err(_) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                published
            })
        })
        .collect();
    let mut published = 0;
    for worker in workers {
        published += worker.await?;
    }
    let took = started.elapsed().as_secs_f64();
    let expected = users as u64 + published;
    let received = wait_for(&counter, expected, Duration::from_secs(10)).await;
    let received_per_sec = (received - users as u64) as f64 / took;
    let cpu_after = redis_cpu(&target, &servers).await?;
    let cpu: HashMap<&Addr, f64> = servers
        .iter()
        .map(|s| (s, cpu_after[s] - cpu_before[s]))
        .collect();
    let total_cpu: f64 = cpu.values().sum();
    let cpu_us_per_event = total_cpu * 1e6 / published.max(1) as f64;
    // One Redis core's worth of this work: events/s a shard can carry when
    // its primary's main thread is saturated.
    let events_per_core = 1e6 / cpu_us_per_event;
    background.shutdown(Duration::from_secs(2)).await;

    let mode = if target.is_cluster() {
        "cluster"
    } else {
        "single"
    };
    println!(
        "redis-events ({mode}, {} primaries): {published} published in {took:.1} s = {:.0} events/s, \
         {} received ({} lost), {} failed; Redis CPU {:.1} µs per event ({} ≈ {:.0} events/s per saturated core)",
        servers.len(),
        published as f64 / took,
        received - users as u64,
        expected - received,
        failures.load(Ordering::Relaxed),
        cpu_us_per_event,
        servers
            .iter()
            .map(|s| format!("{s}: {:.2} s", cpu[s]))
            .collect::<Vec<_>>()
            .join(", "),
        events_per_core,
    );
    println!(
        "RESULT {}",
        json!({ "scenario": "redis_events", "mode": mode, "primaries": servers.len(), "users": users,
                "inflight": inflight, "secs": took, "published": published,
                "published_per_sec": published as f64 / took, "received_per_sec": received_per_sec,
                "lost": expected - received, "failed": failures.load(Ordering::Relaxed),
                "redis_cpu_us_per_event": cpu_us_per_event, "events_per_redis_core": events_per_core,
                "cpu_secs_by_primary": cpu.iter().map(|(k, v)| ((*k).clone(), *v)).collect::<HashMap<_, _>>() })
    );
    Ok(expected == received && failures.load(Ordering::Relaxed) == 0)
}

/// Publishes events the way the api-node does.
struct Publisher {
    conn: RedisConn,
    keys: RedisKeys,
    ids: Vec<Uuid>,
    seqs: Vec<AtomicI64>,
    next: AtomicU64,
    task: String,
}

impl Publisher {
    async fn publish_one(&self) -> anyhow::Result<()> {
        let at = self.next.fetch_add(1, Ordering::Relaxed) as usize % self.ids.len();
        let user = self.ids[at];
        let seq = self.seqs[at].fetch_add(1, Ordering::Relaxed) + 1;
        let payload = shared::events::event_json(
            shared::events::EventKind::Updated,
            seq,
            chrono_now_ms(),
            &self.task,
        );
        let recent = self.keys.user_recent_events(user);
        let channel = self.keys.user_events_channel(user);
        let mut pipe = redis::pipe();
        pipe.cmd(self.conn.publish_command())
            .arg(&channel)
            .arg(&payload)
            .ignore()
            .zadd(&recent, &payload, seq)
            .ignore()
            .zremrangebyrank(&recent, 0, -201)
            .ignore()
            .expire(&recent, 600)
            .ignore();
        self.conn.run_replicated(&mut pipe, &channel).await?;
        Ok(())
    }
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Waits until `want` events were counted (or `within` passed).
async fn wait_for(counter: &Counter, want: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let got = counter.received.load(Ordering::Relaxed);
        if got >= want || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The servers events go through: the one, or the cluster's primaries.
async fn servers(target: &RedisTarget, conn: &RedisConn) -> anyhow::Result<Vec<Addr>> {
    Ok(match target {
        RedisTarget::Single(info) => {
            let (host, port) = RedisTarget::address(info).context("a TCP Redis address")?;
            vec![format!("{host}:{port}")]
        }
        RedisTarget::Cluster(_) => Topology::read(conn).await?.primaries(),
    })
}

/// CPU seconds (user + system) each server has used so far.
async fn redis_cpu(target: &RedisTarget, servers: &[Addr]) -> anyhow::Result<HashMap<Addr, f64>> {
    let mut cpu = HashMap::new();
    for addr in servers {
        let (host, port) = addr.rsplit_once(':').context("host:port")?;
        let client = target.node_client(host, port.parse()?)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let info: String = redis::cmd("INFO").arg("cpu").query_async(&mut conn).await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| {
                    l.strip_prefix(name)?
                        .strip_prefix(':')?
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .unwrap_or(0.0)
        };
        cpu.insert(addr.clone(), field("used_cpu_user") + field("used_cpu_sys"));
    }
    Ok(cpu)
}
