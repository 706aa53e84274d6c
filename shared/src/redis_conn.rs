//! The node's Redis: where it is ([`RedisTarget`]: one server, or a Redis
//! Cluster given by seed nodes) and the connection commands go over
//! ([`RedisConn`]). Every call is bounded by a timeout so that a slow or
//! absent Redis degrades to cache misses instead of stalling requests.
//!
//! On a cluster, a pipeline must touch one slot only: every key of a user
//! carries the user's hash tag (see `redis_keys`), so one user's writes are
//! one pipeline, and events go over sharded pub/sub (SPUBLISH).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{ConnectionAddr, ConnectionInfo, FromRedisValue, IntoConnectionInfo, Pipeline};
use tokio::sync::OnceCell;

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
                    .set_response_timeout(Some(timeout))
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
        })
    }

    /// Writes that must survive a failover (events, cache upgrades) wait
    /// for this many replicas to have them (`WAIT`, within the timeout)
    /// before they count as done; 0 waits for none.
    pub fn waiting_for_replicas(mut self, replicas: u32) -> Self {
        self.wait_replicas = replicas;
        self
    }

    /// Ends `pipe` with a `WAIT` for the replicas asked for, if any. Redis
    /// replicates asynchronously: without it, a primary killed right after
    /// acknowledging a write may leave its promoted replica without it (an
    /// older cached task would then be served again).
    pub fn add_replica_wait(&self, pipe: &mut Pipeline) {
        if self.wait_replicas > 0 {
            pipe.cmd("WAIT")
                .arg(self.wait_replicas)
                .arg(self.timeout.as_millis() as u64 / 2)
                .ignore();
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

    /// Runs a single command within the timeout.
    pub async fn cmd<T: FromRedisValue + Send>(&self, cmd: &redis::Cmd) -> Result<T, RedisFailure> {
        self.bounded(async {
            match &self.handle {
                Handle::Single(manager) => cmd.query_async(&mut manager.clone()).await,
                Handle::Cluster(cluster) => cmd.query_async(&mut cluster.get().await?).await,
            }
        })
        .await
    }

    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisFailure> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(RedisFailure::Timeout),
        }
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
