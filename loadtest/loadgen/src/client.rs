//! Talking to the system: registering users over HTTP, and WebSocket
//! connections from a chosen 127.0.0.x source address.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub type Socket = WebSocketStream<TcpStream>;

/// A registered user.
#[derive(Clone)]
pub struct User {
    pub token: String,
}

/// Registers a fresh user.
pub async fn register(http: &reqwest::Client, api: &str) -> anyhow::Result<User> {
    let email = format!("load-{}@example.com", uuid::Uuid::new_v4().simple());
    let reply: Value = http
        .post(format!("{api}/api/auth/register"))
        .json(&json!({ "email": email, "password": "load-test-password", "name": "Load" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = reply["token"]
        .as_str()
        .context("no token in the register reply")?;
    Ok(User {
        token: token.to_owned(),
    })
}

/// Creates one task; its commit time is in the event it causes.
pub async fn create_task(
    http: &reqwest::Client,
    api: &str,
    user: &User,
    n: u64,
) -> anyhow::Result<()> {
    http.post(format!("{api}/api/tasks"))
        .bearer_auth(&user.token)
        .json(&json!({ "title": format!("load {n}") }))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// Small buffers: the load generator holds as many sockets as the node.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
}

/// The `n`-th of many source addresses: 127.0.0.2 up to 127.0.0.250, so
/// that each gets its own ~28,000 ephemeral ports.
pub fn source(n: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (n % 249) as u8)
}

/// Connects to `ws_url` (ws://host:port/path) from `from` and subscribes.
pub async fn connect_subscribed(
    ws_url: &str,
    token: &str,
    from: Ipv4Addr,
) -> anyhow::Result<Socket> {
    let rest = ws_url
        .strip_prefix("ws://")
        .context("ws URL must start with ws://")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let target: SocketAddr = authority
        .parse()
        .context("ws URL host must be an IP:port")?;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.into(), 0))?;
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    let request = format!("{ws_url}?token={token}").into_client_request()?;
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config())).await?;
    ws.send(Message::Text(r#"{"type":"SUBSCRIBE_TASKS"}"#.into()))
        .await?;
    while let Some(message) = ws.next().await {
        if let Message::Text(text) = message? {
            let value: Value = serde_json::from_str(&text)?;
            if value["type"] == "SUBSCRIBED" {
                return Ok(ws);
            }
            bail!("expected SUBSCRIBED, got {value}");
        }
    }
    bail!("closed before SUBSCRIBED")
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The resident memory of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time (user + system) a process has used, in milliseconds.
pub fn cpu_ms(pid: u32) -> Option<u64> {
    if pid == 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in clock ticks of 1/100 s on every common platform.
    Some(ticks * 10)
}
