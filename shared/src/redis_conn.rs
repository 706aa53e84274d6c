//! The node's Redis: where it is ([`RedisTarget`]: one server, or a Redis
//! Cluster given by seed nodes) and the connection commands go over
//! ([`RedisConn`]). Every call is bounded by a timeout so that a slow or
//! absent Redis degrades to cache misses instead of stalling requests.
//!
//! On a cluster, a pipeline must touch one slot only: every key of a user
//! carries the user's hash tag (see `redis_keys`), so one user's writes are
//! one pipeline, and events go over sharded pub/sub (SPUBLISH).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{ConnectionAddr, ConnectionInfo, FromRedisValue, IntoConnectionInfo, Pipeline, Value};
use tokio::sync::OnceCell;

use crate::redis_topology::{parse_cluster_slots, range_of, SlotRange};

/// The URL scheme that names a Redis Cluster by its seed nodes:
/// `redis+cluster://host:port,host:port,...` (credentials, if any, on the
/// first: `redis+cluster://user:pass@host:port,host:port`).
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// Where Redis is, as configured by `REDIS_URL`.
#[derive(Clone, Debug)]
pub enum RedisTarget {
    /// One server (`redis://host:port/db`).
    Single(ConnectionInfo),
    /// A Redis Cluster, known by some of its nodes (`redis+cluster://...`).
    Cluster(Vec<ConnectionInfo>),
}

impl RedisTarget {
    /// Reads a `redis://` or `redis+cluster://` URL.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) else {
            return Ok(Self::Single(url.into_connection_info()?));
        };
        let (credentials, rest) = match rest.rsplit_once('@') {
            Some((credentials, rest)) => (format!("{credentials}@"), rest),
            None => (String::new(), rest),
        };
        let seeds = rest
            .split(',')
            .filter(|seed| !seed.trim().is_empty())
            .map(|seed| format!("redis://{credentials}{}", seed.trim()).into_connection_info())
            .collect::<Result<Vec<_>, _>>()?;
        anyhow::ensure!(!seeds.is_empty(), "REDIS_URL names no cluster node");
        Ok(Self::Cluster(seeds))
    }

    /// Whether this is a cluster (events go over sharded pub/sub).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// The configured servers: the one, or the cluster's seeds.
    pub fn seeds(&self) -> &[ConnectionInfo] {
        match self {
            Self::Single(info) => std::slice::from_ref(info),
            Self::Cluster(seeds) => seeds,
        }
    }

    /// A client for one server at `host:port` with the target's
    /// credentials, speaking RESP3 (pub/sub pushes).
    pub fn node_client(&self, host: &str, port: u16) -> redis::RedisResult<redis::Client> {
        let settings = self.seeds()[0]
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let info = self.seeds()[0]
            .clone()
            .set_addr(ConnectionAddr::Tcp(host.to_owned(), port))
            .set_redis_settings(settings);
        redis::Client::open(info)
    }

    /// `host:port` of a configured server.
    pub fn address(info: &ConnectionInfo) -> Option<(String, u16)> {
        match info.addr() {
            ConnectionAddr::Tcp(host, port) => Some((host.clone(), *port)),
            ConnectionAddr::TcpTls { host, port, .. } => Some((host.clone(), *port)),
            _ => None,
        }
    }
}

/// A cloneable handle; clones share one connection.
#[derive(Clone)]
pub struct RedisConn {
    handle: Handle,
    timeout: Duration,
    wait_replicas: u32,
    /// Which primaries a `WAIT` goes to (see [`Replicas`]).
    replicas: Arc<Mutex<Replicas>>,
}

/// How often a connection that waits for replicas re-reads, on a cluster,
/// which primaries have any (`CLUSTER SLOTS` lists the replicas not marked
/// failed).
const REPLICAS_EVERY: Duration = Duration::from_secs(1);
/// How long `WAIT`s to a primary stay off after one of them was not
/// answered by enough replicas within its timeout.
const WAITS_OFF_FOR: Duration = Duration::from_secs(5);

/// Where a `WAIT` can be answered. `WAIT` blocks the connection it is sent
/// on (on a cluster, the one connection to its primary that every call of
/// this node shares) until enough replicas have acknowledged or its timeout
/// has passed. To a primary without a live replica (the one a failover has
/// just promoted, say) each `WAIT` costs its whole timeout, one after the
/// other, and everything sent to that primary queues behind them, without
/// bound under steady writes. So a `WAIT` is sent only to a primary that
/// `CLUSTER SLOTS` lists with enough replicas, and to none for
/// [`WAITS_OFF_FOR`] after one went unanswered in time; the writes then
/// count as done without it, as they do when a `WAIT` times out.
#[derive(Default)]
struct Replicas {
    /// The slot map with each primary's replicas; empty until first read.
    ranges: Vec<SlotRange>,
    /// When `ranges` was last read (or a read failed); `None`: read now.
    read_at: Option<Instant>,
    /// A read is under way.
    reading: bool,
    /// Primaries (`""`: the one server, or one not known yet) to send no
    /// `WAIT` to until then.
    off_until: HashMap<String, Instant>,
}

#[derive(Clone)]
enum Handle {
    Single(ConnectionManager),
    /// Dialled on first use (so a node starts while the cluster is down);
    /// the connection then follows the cluster's topology by itself.
    Cluster(Arc<LazyCluster>),
}

struct LazyCluster {
    client: ClusterClient,
    conn: OnceCell<ClusterConnection>,
}

impl LazyCluster {
    /// The cluster connection, dialled by the first call that needs it.
    async fn get(&self) -> redis::RedisResult<ClusterConnection> {
        self.conn
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
    }
}

/// Why a Redis call did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RedisFailure {
    /// Redis answered with an error, or the connection failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// No answer within the timeout.
    #[error("redis timed out")]
    Timeout,
}

impl RedisConn {
    /// A lazy connection: nothing is dialled until the first call, so the
    /// node starts (and serves from PostgreSQL) while Redis is down.
    pub fn new(target: &RedisTarget, timeout: Duration) -> anyhow::Result<Self> {
        let handle = match target {
            RedisTarget::Single(info) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    // No timer of its own per command: every call is
                    // bounded by ours (`bounded`), which also covers a
                    // reconnect. A response timeout would not make it
                    // reconnect either (a timed-out reply is not a dropped
                    // connection), so it would only add a second timer to
                    // every cached read.
                    .set_response_timeout(None)
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(Duration::from_millis(100));
                let client = redis::Client::open(info.clone())?;
                Handle::Single(ConnectionManager::new_lazy_with_config(client, config)?)
            }
            RedisTarget::Cluster(seeds) => {
                let client = ClusterClient::builder(seeds.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    // Within the call's timeout, follow MOVED and a
                    // failover's new primary a few times.
                    .retries(4)
                    .min_retry_wait(10)
                    .max_retry_wait(100)
                    .build()?;
                Handle::Cluster(Arc::new(LazyCluster {
                    client,
                    conn: OnceCell::new(),
                }))
            }
        };
        Ok(Self {
            handle,
            timeout,
            wait_replicas: 0,
            replicas: Arc::default(),
        })
    }

    /// Writes that must survive a failover (events, cache upgrades) wait
    /// for this many replicas to have them (`WAIT`, within the timeout)
    /// before they count as done; 0 waits for none.
    pub fn waiting_for_replicas(mut self, replicas: u32) -> Self {
        self.wait_replicas = replicas;
        self
    }

    /// Runs `pipe`, writes of the one slot of `key` that must survive a
    /// failover (events, cache upgrades), ended with a `WAIT` for the
    /// replicas asked for, within the timeout, when its primary has them
    /// (see [`Replicas`]). Redis replicates asynchronously: without it, a
    /// primary killed right after acknowledging a write may leave its
    /// promoted replica without it (an older cached task would then be
    /// served again). A `WAIT` that times out does not fail the writes:
    /// they count as done.
    pub async fn run_replicated(&self, pipe: &mut Pipeline, key: &str) -> Result<(), RedisFailure> {
        let waiting = self.wait_target(key);
        if waiting.is_some() {
            pipe.cmd("WAIT")
                .arg(self.wait_replicas)
                .arg(self.timeout.as_millis() as u64 / 2);
        }
        // Every other command of `pipe` is ignored: the WAIT's reply, if
        // any, is the only value.
        let result = self.run::<Vec<Value>>(pipe).await;
        if let Some(primary) = waiting {
            let reached = match &result {
                Ok(values) => values
                    .last()
                    .and_then(|v| i64::from_redis_value_ref(v).ok()),
                Err(_) => None,
            };
            // Too few replicas acknowledged, no answer in time (the WAIT is
            // the likely cause), or no answer at all (the primary is gone,
            // and the replica that takes over has none): no WAIT to that
            // primary for a while, and re-read who has replicas.
            if reached.is_none_or(|n| n < i64::from(self.wait_replicas)) {
                tracing::debug!(
                    primary,
                    ?reached,
                    "no replica acknowledged in time; no WAIT to that primary for a while"
                );
                self.waits_failed(&primary);
            }
        }
        result.map(|_| ())
    }

    /// The primary a `WAIT` for `key`'s slot would go to (`""` if not
    /// known), or `None` if no `WAIT` should be sent.
    fn wait_target(&self, key: &str) -> Option<String> {
        if self.wait_replicas == 0 {
            return None;
        }
        let now = Instant::now();
        let mut replicas = self.replicas.lock().expect("BUG: replicas lock poisoned");
        let primary = match &self.handle {
            Handle::Single(_) => String::new(),
            Handle::Cluster(_) => {
                let stale = replicas
                    .read_at
                    .is_none_or(|at| now.duration_since(at) >= REPLICAS_EVERY);
                if stale && !replicas.reading {
                    replicas.reading = true;
                    tokio::spawn(self.clone().read_replicas());
                }
                match range_of(&replicas.ranges, key.as_bytes()) {
                    Some(range) if range.replicas < self.wait_replicas as usize => return None,
                    Some(range) => range.primary.clone(),
                    None => String::new(),
                }
            }
        };
        match replicas.off_until.get(&primary) {
            Some(until) if *until > now => None,
            _ => Some(primary),
        }
    }

    fn waits_failed(&self, primary: &str) {
        let mut replicas = self.replicas.lock().expect("BUG: replicas lock poisoned");
        replicas
            .off_until
            .insert(primary.to_owned(), Instant::now() + WAITS_OFF_FOR);
        replicas.read_at = None;
    }

    /// Reads `CLUSTER SLOTS` into [`Replicas`].
    async fn read_replicas(self) {
        let slots = self
            .cmd::<Value>(&redis::cmd("CLUSTER").arg("SLOTS").to_owned())
            .await;
        let mut replicas = self.replicas.lock().expect("BUG: replicas lock poisoned");
        replicas.reading = false;
        replicas.read_at = Some(Instant::now());
        match slots {
            Ok(value) => replicas.ranges = parse_cluster_slots(&value),
            Err(err) => tracing::debug!(error = %err, "reading the cluster's replicas failed"),
        }
    }

    /// Whether this is a cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self.handle, Handle::Cluster(..))
    }

    /// The command that publishes a user's event: SPUBLISH on a cluster
    /// (the channel lives on its slot's shard), PUBLISH on one server.
    pub fn publish_command(&self) -> &'static str {
        if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    /// Runs a command or pipeline (of one slot, on a cluster) within the
    /// timeout.
    pub async fn run<T: FromRedisValue + Send>(&self, pipe: &Pipeline) -> Result<T, RedisFailure> {
        self.bounded(async {
            match &self.handle {
                Handle::Single(manager) => pipe.query_async(&mut manager.clone()).await,
                Handle::Cluster(cluster) => pipe.query_async(&mut cluster.get().await?).await,
            }
        })
        .await
    }

    /// Runs a single command within the timeout. Not an `async fn`, nor is
    /// `bounded`: each would keep a second copy of the call's future in its
    /// own (every cached read's future is moved whole a few times).
    pub fn cmd<'a, T: FromRedisValue + Send + 'a>(
        &'a self,
        cmd: &'a redis::Cmd,
    ) -> impl Future<Output = Result<T, RedisFailure>> + Send + 'a {
        self.bounded(async move {
            match &self.handle {
                Handle::Single(manager) => cmd.query_async(&mut manager.clone()).await,
                Handle::Cluster(cluster) => cmd.query_async(&mut cluster.get().await?).await,
            }
        })
    }

    fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> impl Future<Output = Result<T, RedisFailure>> {
        tokio::time::timeout(self.timeout, call).map(|outcome| match outcome {
            Ok(result) => Ok(result?),
            Err(_) => Err(RedisFailure::Timeout),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_their_seeds() {
        let target =
            RedisTarget::parse("redis+cluster://u:p@127.0.0.1:7000, 127.0.0.1:7001").unwrap();
        assert!(target.is_cluster());
        let seeds = target.seeds();
        assert_eq!(seeds.len(), 2);
        assert_eq!(
            RedisTarget::address(&seeds[1]),
            Some(("127.0.0.1".to_owned(), 7001))
        );
        assert_eq!(seeds[1].redis_settings().password(), Some("p"));
        let single = RedisTarget::parse("redis://127.0.0.1:6379/0").unwrap();
        assert!(!single.is_cluster());
        assert!(RedisTarget::parse("redis+cluster://").is_err());
    }
}
