//! The runner's Redis Cluster as fault j sees it: who owns which slots
//! (`CLUSTER SLOTS`), which slot a channel is in (`CLUSTER KEYSLOT`),
//! whether a node says `cluster_state:ok`, and which process is the node on
//! a port (its directory under `CHAOS_REDIS_CLUSTER_DIR`: `nodes.conf` names
//! its port, `redis.pid` its pid). Every call is bounded; a node that does
//! not answer is an error, never a wait.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, Value};

/// The most one command to one node may take, connecting included.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// A slot range and who serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    /// First slot.
    pub start: u16,
    /// Last slot (inclusive).
    pub end: u16,
    /// The primary's port (every node is on 127.0.0.1).
    pub primary: u16,
    /// Its replicas' ports.
    pub replicas: Vec<u16>,
}

impl SlotRange {
    /// Whether `slot` is in it.
    pub fn holds(&self, slot: u16) -> bool {
        (self.start..=self.end).contains(&slot)
    }
}

/// One node's directory under the cluster's state directory.
#[derive(Debug, Clone)]
pub struct NodeDir {
    /// `node3`.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
    /// Its port, from the `myself` line of its `nodes.conf`.
    pub port: u16,
}

async fn connect(port: u16) -> redis::RedisResult<MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CALL_TIMEOUT))
        .set_response_timeout(Some(CALL_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Runs `pipe` on the node at `port`, within [`CALL_TIMEOUT`].
async fn query<T: FromRedisValue>(port: u16, pipe: &redis::Pipeline) -> anyhow::Result<T> {
    let call = async {
        let mut conn = connect(port).await?;
        pipe.query_async::<T>(&mut conn).await
    };
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.with_context(|| format!("Redis node 127.0.0.1:{port}")),
        Err(_) => bail!("Redis node 127.0.0.1:{port} did not answer within {CALL_TIMEOUT:?}"),
    }
}

fn one(cmd: redis::Cmd) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.add_command(cmd);
    pipe
}

/// The slot map as the node at `port` sees it (`CLUSTER SLOTS`).
pub async fn slots(port: u16) -> anyhow::Result<Vec<SlotRange>> {
    let (value,): (Value,) = query(port, &one(redis::cmd("CLUSTER").arg("SLOTS").clone())).await?;
    let Value::Array(ranges) = value else {
        bail!("CLUSTER SLOTS on :{port} answered {value:?}");
    };
    let int = |v: Option<&Value>| match v {
        Some(Value::Int(n)) => u16::try_from(*n).ok(),
        _ => None,
    };
    let port_of = |v: &Value| match v {
        Value::Array(node) => int(node.get(1)),
        _ => None,
    };
    ranges
        .iter()
        .map(|range| {
            let Value::Array(parts) = range else {
                bail!("CLUSTER SLOTS on :{port}: a range that is not an array: {range:?}");
            };
            let parsed = (|| {
                Some(SlotRange {
                    start: int(parts.first())?,
                    end: int(parts.get(1))?,
                    primary: port_of(parts.get(2)?)?,
                    replicas: parts.iter().skip(3).filter_map(port_of).collect(),
                })
            })();
            parsed.with_context(|| format!("CLUSTER SLOTS on :{port}: unreadable range {parts:?}"))
        })
        .collect()
}

/// The slot map from the first of `ports` that answers, and its port.
pub async fn slots_from_any(ports: &[u16]) -> anyhow::Result<(u16, Vec<SlotRange>)> {
    let mut errors = Vec::new();
    for &port in ports {
        match slots(port).await {
            Ok(ranges) if !ranges.is_empty() => return Ok((port, ranges)),
            Ok(_) => errors.push(format!(":{port} serves no slots")),
            Err(err) => errors.push(format!("{err:#}")),
        }
    }
    bail!("no cluster node gave its slot map: {}", errors.join("; "))
}

/// The slot of each of `names` (`CLUSTER KEYSLOT`, one round trip).
pub async fn keyslots(port: u16, names: &[String]) -> anyhow::Result<Vec<u16>> {
    let mut pipe = redis::pipe();
    for name in names {
        pipe.cmd("CLUSTER").arg("KEYSLOT").arg(name);
    }
    let slots: Vec<i64> = query(port, &pipe).await?;
    slots
        .into_iter()
        .map(|s| u16::try_from(s).context("CLUSTER KEYSLOT answered a slot out of range"))
        .collect()
}

/// Whether the node at `port` says `cluster_state:ok` (false if it does not
/// answer).
pub async fn state_ok(port: u16) -> bool {
    let info: anyhow::Result<(String,)> =
        query(port, &one(redis::cmd("CLUSTER").arg("INFO").clone())).await;
    info.is_ok_and(|(info,)| info.lines().any(|l| l.trim() == "cluster_state:ok"))
}

/// The pid the node at `port` reports (`INFO server`'s `process_id`).
pub async fn reported_pid(port: u16) -> anyhow::Result<u32> {
    let (info,): (String,) = query(port, &one(redis::cmd("INFO").arg("server").clone())).await?;
    info.lines()
        .find_map(|l| l.trim().strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .with_context(|| format!("INFO server on :{port} names no process_id"))
}

/// Every node directory under the cluster's `dir` (`node1` ... `node6`),
/// each with its port.
pub fn node_dirs(dir: &Path) -> anyhow::Result<Vec<NodeDir>> {
    let mut nodes = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let conf = path.join("nodes.conf");
        if !conf.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&conf)
            .with_context(|| format!("reading {}", conf.display()))?;
        // <id> <ip:port@cport[,hostname]> <flags> ...; ours is flagged myself.
        let port = text
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|fields| {
                fields
                    .get(2)
                    .is_some_and(|f| f.split(',').any(|f| f == "myself"))
            })
            .and_then(|fields| {
                let addr = fields.get(1)?.split(['@', ',']).next()?;
                addr.rsplit_once(':')?.1.parse::<u16>().ok()
            })
            .with_context(|| format!("{} has no `myself` line with a port", conf.display()))?;
        nodes.push(NodeDir {
            name: path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            path,
            port,
        });
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    if nodes.is_empty() {
        bail!(
            "no Redis Cluster node directory (with nodes.conf) in {}",
            dir.display()
        );
    }
    Ok(nodes)
}

/// The pid in `node`'s `redis.pid`, checked to be a running redis-server.
pub fn pid_of(node: &NodeDir) -> anyhow::Result<u32> {
    let file = node.path.join("redis.pid");
    let pid: u32 = std::fs::read_to_string(&file)
        .with_context(|| format!("reading {}", file.display()))?
        .trim()
        .parse()
        .with_context(|| format!("{} holds no pid", file.display()))?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() != "redis-server" {
        bail!(
            "pid {pid} of {} is not a running redis-server (comm {:?})",
            file.display(),
            comm.trim()
        );
    }
    Ok(pid)
}

/// Whether process `pid` is gone (or a zombie).
pub fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // pid (comm) STATE ...: the comm may hold spaces, the state follows
        // the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}
