//! A throwaway Redis Cluster for tests, benchmarks and local runs: 3
//! primaries and 3 replicas on free 127.0.0.1 ports, started as daemons
//! that `scripts/services.sh` stops by their pidfiles (it owns every
//! process the scripts start; this module only brings the cluster up and
//! says when it is ready).
//!
//! Node N keeps its pidfile (`redis.pid`), log and cluster config in
//! `DIR/nodeN`; `redis-cli --cluster create` writes `DIR/create.log`.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use Wait::{Retry, Stop};

const NODES: usize = 6;
/// A node's cluster bus listens on its port + 10000, so ports stay below
/// 65535 - 10000.
const HIGHEST_PORT: u16 = 55535;

/// How to start the nodes.
pub struct Settings {
    /// Each node's `--maxmemory` (least recently used keys evicted past it).
    pub maxmemory: String,
    /// How long each stage (answering PING; the cluster ready) may take.
    pub timeout: Duration,
}

/// A ready cluster.
pub struct Cluster {
    /// The primaries, in slot order.
    pub primaries: Vec<u16>,
    /// Every node, node 1 first.
    pub ports: Vec<u16>,
}

impl Cluster {
    /// The primaries as the nodes' `REDIS_URL` takes them.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .primaries
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }
}

/// Starts the six nodes in `dir` (which holds no running node), forms the
/// cluster and waits until it is ready.
pub fn start(dir: &Path, settings: &Settings) -> Result<Cluster, String> {
    let mut ports = Vec::new();
    for n in 1..=NODES {
        let node = dir.join(format!("node{n}"));
        std::fs::create_dir_all(&node).map_err(|e| format!("{}: {e}", node.display()))?;
        // A killed run's cluster config names its ports and peers.
        for stale in ["nodes.conf", "dump.rdb"] {
            let _ = std::fs::remove_file(node.join(stale));
        }
        ports.push(free_cluster_port(&ports)?);
    }
    for (i, port) in ports.iter().enumerate() {
        start_node(&dir.join(format!("node{}", i + 1)), *port, settings)?;
    }
    for (i, port) in ports.iter().enumerate() {
        let node = dir.join(format!("node{}", i + 1));
        wait(settings.timeout, || match query(*port, &["PING"]) {
            Ok(_) => Ok(()),
            Err(_) if !running(&node.join("redis.pid")) && node.join("redis.pid").exists() => {
                Err(Stop(format!(
                    "node {} exited{}",
                    i + 1,
                    tail(&node.join("redis.log"))
                )))
            }
            Err(err) => Err(Retry(format!(
                "node {} did not answer PING on :{port}: {err}",
                i + 1
            ))),
        })?;
    }
    create(dir, &ports)?;
    wait(settings.timeout, || match lacks(&ports) {
        None => Ok(()),
        Some(what) => Err(Retry(format!("the cluster was not ready: {what}"))),
    })?;
    let nodes =
        query(ports[0], &["CLUSTER", "NODES"]).map_err(|e| format!("CLUSTER NODES: {e}"))?;
    let primaries = primaries_in(&nodes);
    if primaries.len() != NODES / 2 {
        return Err(format!(
            "{} primaries serving slots, not 3: {primaries:?}",
            primaries.len()
        ));
    }
    Ok(Cluster { primaries, ports })
}

/// A free port at most [`HIGHEST_PORT`] whose bus port is free too and
/// that clashes with none of `taken` nor their bus ports.
fn free_cluster_port(taken: &[u16]) -> Result<u16, String> {
    for _ in 0..500 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let clashes = taken
            .iter()
            .any(|&t| port == t || port == t + 10000 || port + 10000 == t);
        if port <= HIGHEST_PORT
            && !clashes
            && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok()
        {
            return Ok(port);
        }
    }
    Err(format!(
        "no free port P <= {HIGHEST_PORT} with P+10000 free"
    ))
}

fn start_node(node: &Path, port: u16, settings: &Settings) -> Result<(), String> {
    let path = |name: &str| node.join(name).display().to_string();
    let status = Command::new("redis-server")
        .current_dir(node)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &path("nodes.conf"),
        ])
        .args(["--cluster-node-timeout", "2000"])
        // No persistence; full resyncs without the default 5 s wait for
        // more replicas.
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--repl-diskless-sync-delay",
            "0",
        ])
        .args([
            "--maxmemory",
            &settings.maxmemory,
            "--maxmemory-policy",
            "allkeys-lru",
        ])
        .args(["--daemonize", "yes", "--pidfile", &path("redis.pid")])
        .args(["--logfile", &path("redis.log"), "--dir", &path("")])
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("redis-server: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "redis-server on :{port} failed to start{}",
            tail(&node.join("redis.log"))
        ))
    }
}

fn create(dir: &Path, ports: &[u16]) -> Result<(), String> {
    let log_path = dir.join("create.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let status = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .status()
        .map_err(|e| format!("redis-cli: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "redis-cli --cluster create failed{}",
            tail(&log_path)
        ))
    }
}

/// One command to the node on `port`, its reply as text.
fn query(port: u16, command: &[&str]) -> Result<String, String> {
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{port}")).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut cmd = redis::cmd(command[0]);
    for arg in &command[1..] {
        cmd.arg(*arg);
    }
    cmd.query::<String>(&mut conn).map_err(|e| e.to_string())
}

/// What the cluster on `ports` still lacks, or `None` when it is ready:
/// every node `cluster_state:ok` with all 16384 slots assigned and ok and
/// every node known; half the nodes primaries with their replica attached,
/// half replicas with their link up.
fn lacks(ports: &[u16]) -> Option<String> {
    let mut roles = Vec::new();
    for port in ports {
        let info = match query(*port, &["CLUSTER", "INFO"]) {
            Ok(info) => info,
            Err(err) => return Some(format!("node :{port}: {err}")),
        };
        let replication = query(*port, &["INFO", "replication"]).unwrap_or_default();
        if let Some(what) = node_lacks(&info, &replication, ports.len()) {
            return Some(format!("node :{port}: {what}"));
        }
        roles.push(field(&replication, "role").unwrap_or_default().to_string());
    }
    let primaries = roles.iter().filter(|r| *r == "master").count();
    (primaries * 2 != ports.len())
        .then(|| format!("{primaries} primaries among {} nodes", ports.len()))
}

/// `field:value` lines of an INFO reply.
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.trim_end().strip_prefix(name)?.strip_prefix(':'))
}

/// What one node lacks, from its `CLUSTER INFO` and `INFO replication`.
fn node_lacks(cluster_info: &str, replication: &str, nodes: usize) -> Option<String> {
    let want = [
        ("cluster_state", "ok".to_string()),
        ("cluster_slots_assigned", "16384".to_string()),
        ("cluster_slots_ok", "16384".to_string()),
        ("cluster_known_nodes", nodes.to_string()),
    ];
    for (name, value) in want {
        let got = field(cluster_info, name);
        if got != Some(value.as_str()) {
            return Some(format!("{name} is {got:?}, not {value}"));
        }
    }
    match field(replication, "role") {
        Some("master") if field(replication, "connected_slaves") != Some("1") => {
            Some("its replica is not attached".into())
        }
        Some("slave") if field(replication, "master_link_status") != Some("up") => {
            Some("its link to its primary is not up".into())
        }
        Some("master" | "slave") => None,
        other => Some(format!("role {other:?}")),
    }
}

/// The ports of the primaries a `CLUSTER NODES` reply lists, in slot
/// order: nodes flagged `master`, serving slots, and not failed (a primary
/// only suspected, `fail?`, still counts).
pub fn primaries_in(cluster_nodes: &str) -> Vec<u16> {
    let mut found: Vec<(u32, u16)> = cluster_nodes
        .lines()
        .filter_map(|line| {
            // <id> <ip:port@cport[,hostname]> <flags> <primary> <ping> <pong> <epoch> <link> <slot>...
            let words: Vec<&str> = line.split_whitespace().collect();
            let flags: Vec<&str> = words.get(2)?.split(',').collect();
            let bad = flags
                .iter()
                .any(|f| ["fail", "noaddr", "handshake"].contains(f));
            if !flags.contains(&"master") || bad {
                return None;
            }
            let first_slot = words
                .iter()
                .skip(8)
                .find_map(|w| w.split('-').next()?.parse::<u32>().ok())?;
            let address = words[1].split('@').next()?;
            let port = address.rsplit(':').next()?.parse().ok()?;
            Some((first_slot, port))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, port)| port).collect()
}

/// Whether the process of a pidfile is alive (a zombie is not).
fn running(pidfile: &Path) -> bool {
    let Ok(pid) = std::fs::read_to_string(pidfile) else {
        return false;
    };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) else {
        return false;
    };
    // The state follows the command name, which is in parentheses.
    stat.rsplit_once(") ")
        .is_some_and(|(_, rest)| !rest.starts_with(['Z', 'X']))
}

/// The last lines of a log, for an error message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let last = lines[lines.len().saturating_sub(15)..].join("\n  ");
    if last.is_empty() {
        String::new()
    } else {
        format!(" ({}):\n  {last}", log.display())
    }
}

/// Whether to keep waiting.
enum Wait {
    Retry(String),
    Stop(String),
}

/// Polls `ready` every 100 ms until it succeeds, says stop, or `timeout`
/// passes (the last reason is the error).
fn wait(timeout: Duration, mut ready: impl FnMut() -> Result<(), Wait>) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        match ready() {
            Ok(()) => return Ok(()),
            Err(Stop(why)) => return Err(why),
            Err(Retry(why)) if Instant::now() >= deadline => {
                return Err(format!("{why} (after {}s)", timeout.as_secs()))
            }
            Err(Retry(_)) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_are_the_serving_unfailed_masters_in_slot_order() {
        let nodes = "\
a1 127.0.0.1:30003@40003 master - 0 0 3 connected 10923-16383
a2 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
a3 127.0.0.1:30002@40002,host master,fail? - 0 0 2 connected 5461-10922
a4 127.0.0.1:30004@40004 slave a1 0 0 3 connected
a5 127.0.0.1:30005@40005 master,fail - 0 0 5 connected 100
a6 127.0.0.1:30006@40006 master - 0 0 6 connected
";
        assert_eq!(primaries_in(nodes), [30001, 30002, 30003]);
    }

    #[test]
    fn a_node_is_ready_once_its_slots_peers_and_replication_are() {
        let ok = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\ncluster_known_nodes:6\r\n";
        let primary = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n";
        let replica = "role:slave\r\nmaster_link_status:up\r\n";
        assert_eq!(node_lacks(ok, primary, 6), None);
        assert_eq!(node_lacks(ok, replica, 6), None);
        assert!(node_lacks(&ok.replace(":ok", ":fail"), primary, 6)
            .unwrap()
            .contains("cluster_state"));
        assert!(node_lacks(ok, primary, 7)
            .unwrap()
            .contains("cluster_known_nodes"));
        assert!(node_lacks(ok, &primary.replace(":1", ":0"), 6)
            .unwrap()
            .contains("replica is not attached"));
        assert!(node_lacks(ok, &replica.replace(":up", ":down"), 6)
            .unwrap()
            .contains("link"));
    }

    #[test]
    fn cluster_ports_leave_room_for_their_bus_ports() {
        let mut taken = Vec::new();
        for _ in 0..NODES {
            let port = free_cluster_port(&taken).unwrap();
            assert!(port <= HIGHEST_PORT);
            assert!(taken
                .iter()
                .all(|&t| port != t && port != t + 10000 && port + 10000 != t));
            taken.push(port);
        }
    }
}
