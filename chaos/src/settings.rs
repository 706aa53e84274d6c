//! What the runner (`scripts/chaos.sh`) tells the suite, all through the
//! environment, so the binary itself never guesses where anything is.

use std::path::PathBuf;

use anyhow::{bail, Context};

/// Every setting of a run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `CHAOS_API_NODE_BIN`: the api-node binary to run (and migrate with).
    pub api_node_bin: PathBuf,
    /// `CHAOS_WS_NODE_BIN`: the ws-node binary.
    pub ws_node_bin: PathBuf,
    /// `CHAOS_REDIS_SERVER`: redis-server (default: found on `PATH`).
    pub redis_server: PathBuf,
    /// `DATABASE_URL`: the throwaway PostgreSQL the runner started.
    pub database_url: String,
    /// `CHAOS_PG_STOP`: a `bash -c` command that stops that PostgreSQL (fast).
    pub pg_stop: String,
    /// `CHAOS_PG_START`: a `bash -c` command that starts it again and waits.
    pub pg_start: String,
    /// `CHAOS_DIR`: where logs, pid files and Redis's directory go.
    pub state_dir: PathBuf,
    /// Where a full run writes its matrix (optional): `CHAOS_FAULTS_MD`
    /// (`FAULTS.md`) on the suite's own Redis, `CHAOS_FAILOVER_MD`
    /// (`FAILOVER.md`) on a Redis Cluster.
    pub faults_md: Option<PathBuf>,
    /// `CHAOS_ONLY`: run only these faults (`a`..`j`, comma-separated); the
    /// matrix is then not written, since it would not be a full run. Faults
    /// this mode cannot inject are left out, each with a message.
    pub only: Option<Vec<char>>,
    /// `CHAOS_REDIS_CLUSTER_URL` and `CHAOS_REDIS_CLUSTER_DIR`: the runner's
    /// Redis Cluster (`start_redis_cluster` of `scripts/services.sh`). When
    /// set, the suite starts no Redis of its own and runs the cluster pass.
    pub redis_cluster: Option<RedisCluster>,
    /// `CHAOS_REPO`: the checkout, to name the commit in the report.
    pub repo: Option<PathBuf>,
    /// `CHAOS_USERS` (20): users, each with two sockets.
    pub users: usize,
    /// `CHAOS_RATE` (40): task writes per second, over all users.
    pub rate: u32,
}

/// A Redis Cluster the runner started.
#[derive(Debug, Clone)]
pub struct RedisCluster {
    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...`: the nodes' `REDIS_URL`.
    pub url: String,
    /// The seeds' ports, from `url`.
    pub seeds: Vec<u16>,
    /// Its state directory: one `nodeN/` per node, each with `nodes.conf`
    /// and `redis.pid`.
    pub dir: PathBuf,
}

/// Faults that need the suite's own single Redis (it stops, continues or
/// kills it): not run against a Redis Cluster.
pub const SINGLE_REDIS_ONLY: [char; 3] = ['b', 'e', 'h'];
/// Faults that need a Redis Cluster.
pub const CLUSTER_ONLY: [char; 1] = ['j'];
/// The faults of a cluster pass without `CHAOS_ONLY`: an api-node killed
/// and restarted (its cluster connection is dialled anew), a ws-node killed
/// (its subscriptions move to the other node, on every shard), then the
/// failover.
pub const CLUSTER_DEFAULT: [char; 3] = ['a', 'c', 'j'];

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &str) -> anyhow::Result<String> {
    var(name).with_context(|| format!("{name} is not set (scripts/chaos.sh sets it)"))
}

impl Settings {
    /// Reads the settings; fails naming the first one missing or invalid.
    pub fn from_env() -> anyhow::Result<Self> {
        let only = match var("CHAOS_ONLY") {
            None => None,
            Some(list) => {
                let keys: Vec<char> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(|k| k.chars().next().unwrap_or(' ').to_ascii_lowercase())
                    .collect();
                if let Some(bad) = keys.iter().find(|k| !('a'..='j').contains(*k)) {
                    bail!("CHAOS_ONLY: {bad:?} is not a fault (a to j)");
                }
                Some(keys)
            }
        };
        let number = |name: &str, default: u64, max: u64| -> anyhow::Result<u64> {
            match var(name) {
                None => Ok(default),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    _ => bail!("{name} must be a number from 1 to {max}"),
                },
            }
        };
        let redis_cluster = match (
            var("CHAOS_REDIS_CLUSTER_URL"),
            var("CHAOS_REDIS_CLUSTER_DIR"),
        ) {
            (None, None) => None,
            (Some(url), Some(dir)) => {
                let seeds = url
                    .strip_prefix("redis+cluster://")
                    .context("CHAOS_REDIS_CLUSTER_URL must be redis+cluster://host:port,...")?
                    .split(',')
                    .filter(|seed| !seed.trim().is_empty())
                    .map(|seed| {
                        seed.trim()
                            .rsplit_once(':')
                            .and_then(|(host, port)| {
                                (host == "127.0.0.1").then(|| port.parse::<u16>().ok())?
                            })
                            .with_context(|| {
                                format!("CHAOS_REDIS_CLUSTER_URL: {seed:?} is not 127.0.0.1:PORT")
                            })
                    })
                    .collect::<anyhow::Result<Vec<u16>>>()?;
                if seeds.is_empty() {
                    bail!("CHAOS_REDIS_CLUSTER_URL names no node");
                }
                Some(RedisCluster {
                    url,
                    seeds,
                    dir: dir.into(),
                })
            }
            _ => bail!(
                "CHAOS_REDIS_CLUSTER_URL and CHAOS_REDIS_CLUSTER_DIR go together (set both or neither)"
            ),
        };
        let faults_md = if redis_cluster.is_some() {
            var("CHAOS_FAILOVER_MD")
        } else {
            var("CHAOS_FAULTS_MD")
        };
        Ok(Self {
            api_node_bin: required("CHAOS_API_NODE_BIN")?.into(),
            ws_node_bin: required("CHAOS_WS_NODE_BIN")?.into(),
            redis_server: var("CHAOS_REDIS_SERVER")
                .unwrap_or_else(|| "redis-server".into())
                .into(),
            database_url: required("DATABASE_URL")?,
            pg_stop: required("CHAOS_PG_STOP")?,
            pg_start: required("CHAOS_PG_START")?,
            state_dir: required("CHAOS_DIR")?.into(),
            faults_md: faults_md.map(PathBuf::from),
            only,
            redis_cluster,
            repo: var("CHAOS_REPO").map(PathBuf::from),
            users: number("CHAOS_USERS", 20, 200)? as usize,
            rate: number("CHAOS_RATE", 40, 400)? as u32,
        })
    }

    /// The faults of this run, in order: every one this mode can inject
    /// (on a cluster, [`CLUSTER_DEFAULT`]), or those of `CHAOS_ONLY`; with
    /// a message for each one asked for that this mode cannot inject.
    pub fn faults(&self) -> Vec<char> {
        let cluster = self.redis_cluster.is_some();
        let Some(only) = &self.only else {
            return if cluster {
                CLUSTER_DEFAULT.to_vec()
            } else {
                ('a'..='i').collect()
            };
        };
        ('a'..='j')
            .filter(|key| only.contains(key))
            .filter(|key| {
                if cluster && SINGLE_REDIS_ONLY.contains(key) {
                    eprintln!(
                        "[chaos] fault {key} skipped: it stops or kills the suite's own single Redis, and this is the Redis Cluster pass"
                    );
                    false
                } else if !cluster && CLUSTER_ONLY.contains(key) {
                    eprintln!(
                        "[chaos] fault {key} skipped: it needs a Redis Cluster (CHAOS_REDIS_CLUSTER_URL and CHAOS_REDIS_CLUSTER_DIR; scripts/chaos.sh runs a cluster pass)"
                    );
                    false
                } else {
                    true
                }
            })
            .collect()
    }
}
