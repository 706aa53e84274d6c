//! The topology under test: Redis (a child of the suite, so it can be
//! killed, restarted empty, stopped and continued), two api-nodes and two
//! ws-nodes, all on free ports of 127.0.0.1. PostgreSQL belongs to the
//! runner; the suite only restarts it through the runner's commands. In the
//! Redis Cluster pass the cluster is the runner's too (`CHAOS_REDIS_CLUSTER_URL`):
//! the suite starts no Redis and gives every node that URL.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::procs::Proc;
use crate::settings::{RedisCluster, Settings};

/// The nodes' `REDIS_NAMESPACE`: a user's channel is `chaos:{<id>}:events`.
pub const NAMESPACE: &str = "chaos";

/// How long a node may take to answer `/readyz` after starting.
pub const READY_TIMEOUT: Duration = Duration::from_secs(40);

/// Which kind of node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An api-node.
    Api,
    /// A ws-node.
    Ws,
}

/// One node process and its port.
pub struct Node {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The process.
    pub proc: Proc,
}

impl Node {
    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Everything the suite runs.
pub struct Cluster {
    /// api-node-1, api-node-2.
    pub api: Vec<Node>,
    /// ws-node-1, ws-node-2.
    pub ws: Vec<Node>,
    /// The suite's own Redis server; `None` on the runner's Redis Cluster.
    redis: Option<Proc>,
    redis_port: u16,
    /// The runner's Redis Cluster, in the cluster pass.
    pub redis_cluster: Option<RedisCluster>,
    /// For readiness probes and metrics.
    probe: reqwest::Client,
}

/// `n` distinct free ports on 127.0.0.1 (all held until all are chosen).
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?)
}

impl Cluster {
    /// Starts Redis, migrates, starts every node and waits until each is
    /// ready.
    pub async fn start(settings: &Settings, jwt_secret: &str) -> anyhow::Result<Self> {
        let dir = &settings.state_dir;
        let ports = free_ports(5)?;
        let redis_port = ports[0];
        let (redis, redis_url) = match &settings.redis_cluster {
            Some(cluster) => (None, cluster.url.clone()),
            None => {
                let redis_dir = dir.join("redis");
                std::fs::create_dir_all(&redis_dir)?;
                let redis_dir_arg = redis_dir.to_string_lossy().into_owned();
                let port_arg = redis_port.to_string();
                let mut redis = Proc::new(
                    "redis",
                    &settings.redis_server,
                    &[
                        "--bind",
                        "127.0.0.1",
                        "--port",
                        &port_arg,
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        &redis_dir_arg,
                    ],
                    base_env(),
                    dir,
                );
                redis.start()?;
                (Some(redis), format!("redis://127.0.0.1:{redis_port}"))
            }
        };

        let mut env = base_env();
        env.extend([
            ("DATABASE_URL".into(), settings.database_url.clone()),
            ("REDIS_URL".into(), redis_url),
            ("REDIS_NAMESPACE".into(), NAMESPACE.into()),
            ("JWT_SECRET".into(), jwt_secret.into()),
            ("RUST_LOG".into(), "info".into()),
            ("LOG_FORMAT".into(), "text".into()),
            // Every user registers from 127.0.0.1: the per-address limit
            // is not what is being tested.
            ("REGISTER_MAX_PER_CLIENT".into(), "1000000".into()),
        ]);
        let node = |name: &str, kind: Kind, port: u16| {
            let mut env = env.clone();
            let (bin, addr) = match kind {
                Kind::Api => (&settings.api_node_bin, "LISTEN_ADDR"),
                Kind::Ws => (&settings.ws_node_bin, "WS_LISTEN_ADDR"),
            };
            env.push((addr.into(), format!("127.0.0.1:{port}")));
            Node {
                port,
                proc: Proc::new(name, bin, &[], env, dir),
            }
        };
        let mut cluster = Self {
            api: vec![
                node("api-node-1", Kind::Api, ports[1]),
                node("api-node-2", Kind::Api, ports[2]),
            ],
            ws: vec![
                node("ws-node-1", Kind::Ws, ports[3]),
                node("ws-node-2", Kind::Ws, ports[4]),
            ],
            redis,
            redis_port,
            redis_cluster: settings.redis_cluster.clone(),
            probe: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()?,
        };
        if cluster.redis.is_some() {
            cluster.wait_redis(Duration::from_secs(20)).await?;
        }
        migrate(settings, &env, dir).await?;
        for kind in [Kind::Api, Kind::Ws] {
            for i in 0..2 {
                cluster.nodes(kind)[i].proc.start()?;
            }
        }
        for kind in [Kind::Api, Kind::Ws] {
            for i in 0..2 {
                cluster.wait_ready(kind, i, READY_TIMEOUT).await?;
            }
        }
        Ok(cluster)
    }

    /// The nodes of one kind.
    pub fn nodes(&mut self, kind: Kind) -> &mut [Node] {
        match kind {
            Kind::Api => &mut self.api,
            Kind::Ws => &mut self.ws,
        }
    }

    /// `http://...` of each api-node.
    pub fn api_urls(&self) -> Vec<String> {
        self.api.iter().map(Node::base).collect()
    }

    /// `ws://.../ws/updates` of each ws-node.
    pub fn ws_urls(&self) -> Vec<String> {
        self.ws
            .iter()
            .map(|n| format!("ws://127.0.0.1:{}/ws/updates", n.port))
            .collect()
    }

    /// The suite's own Redis, for the faults that stop or kill it; an
    /// error on the runner's Redis Cluster.
    pub fn redis(&mut self) -> anyhow::Result<&mut Proc> {
        self.redis.as_mut().context(
            "BUG: this fault needs the suite's own single Redis, and this is the Redis Cluster pass",
        )
    }

    /// Until Redis answers PING (a fresh one, or one that was continued).
    pub async fn wait_redis(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if ping_redis(self.redis_port).await {
                return Ok(());
            }
            let redis = self.redis()?;
            if !redis.running() {
                bail!("redis-server exited; see {}", redis.log_file().display());
            }
            if Instant::now() >= deadline {
                bail!("Redis did not answer PING within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Until node `i` answers `/readyz` with 200; fails early if it exits.
    /// Returns how long it took.
    pub async fn wait_ready(
        &mut self,
        kind: Kind,
        i: usize,
        within: Duration,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let probe = self.probe.clone();
        let node = &mut self.nodes(kind)[i];
        let url = format!("{}/readyz", node.base());
        loop {
            if let Ok(response) = probe.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(started.elapsed());
                }
            }
            if let Some(status) = node.proc.exited() {
                bail!(
                    "{} exited ({status}) before it was ready; see {}",
                    node.proc.name(),
                    node.proc.log_file().display()
                );
            }
            if started.elapsed() >= within {
                bail!("{} was not ready within {within:?}", node.proc.name());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Until every node is ready.
    pub async fn wait_all_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        for kind in [Kind::Api, Kind::Ws] {
            for i in 0..2 {
                self.wait_ready(kind, i, within).await?;
            }
        }
        Ok(())
    }

    /// A counter from an api-node's `/metrics` (`None` if unreadable).
    pub async fn api_counter(&self, i: usize, name: &str) -> Option<f64> {
        let text = self
            .probe
            .get(format!("{}/metrics", self.api[i].base()))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split_once(' '))
            .find(|(series, _)| *series == name)
            .and_then(|(_, value)| value.trim().parse().ok())
    }
}

/// The environment every child gets: nothing of the caller's but `PATH`.
fn base_env() -> Vec<(String, String)> {
    vec![(
        "PATH".into(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
    )]
}

/// `api-node migrate`, with the nodes' environment.
async fn migrate(
    settings: &Settings,
    env: &[(String, String)],
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let mut command = Command::new(&settings.api_node_bin);
    command
        .arg("migrate")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await?
        .context("running api-node migrate")?;
    if !output.status.success() {
        bail!(
            "api-node migrate failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Whether a Redis on `port` answers PING within half a second.
async fn ping_redis(port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await.ok()?;
        Some(&reply == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), attempt).await,
        Ok(Some(true))
    )
}
