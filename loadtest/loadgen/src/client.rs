//! Talking to the system: registering users over HTTP, and WebSocket
//! connections from a chosen 127.0.0.x source address, optionally with
//! permessage-deflate (ws-node's own inflating layer, client side: the
//! node's compressed events are inflated before tungstenite reads them).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use ws_node::inflating_stream::SocketIo;

pub type Socket = WebSocketStream<SocketIo<Counted>>;

/// Bytes read from every WebSocket's TCP stream of this process, after
/// the upgrade: what arrived on the wire, compressed or not.
pub static WIRE_BYTES_READ: AtomicU64 = AtomicU64::new(0);

/// A TCP stream that adds what it reads to [`WIRE_BYTES_READ`].
pub struct Counted(TcpStream);

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.get_mut().0).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            WIRE_BYTES_READ.fetch_add(read as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

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

/// A realistic task description of about 420 characters (what makes
/// compression measurable: a title alone is most of an event's ids and
/// timestamps).
pub fn description(n: u64) -> String {
    format!(
        "Follow up with the design team about the onboarding flow: the second screen still asks \
         for the workspace name before the user has seen what a workspace is, and the copy on the \
         invite step reads as if it were mandatory. Collect the three variants from last week's \
         review, check them against the analytics export (drop-off by step, mobile and desktop \
         separately), and propose one for the sprint planning on Thursday. Ticket {n}."
    )
}

/// Creates one task (with a description when `described`); its commit
/// time is in the event it causes.
pub async fn create_task(
    http: &reqwest::Client,
    api: &str,
    user: &User,
    n: u64,
    described: bool,
) -> anyhow::Result<()> {
    let body = if described {
        json!({ "title": format!("load {n}"), "description": description(n) })
    } else {
        json!({ "title": format!("load {n}") })
    };
    http.post(format!("{api}/api/tasks"))
        .bearer_auth(&user.token)
        .json(&body)
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

/// What we offer: the parameters the node answers with anyway.
const OFFER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// The upgrade with permessage-deflate offered, by hand (tungstenite's
/// client cannot offer extensions); fails unless the server agreed.
async fn upgrade_deflate(
    mut stream: TcpStream,
    authority: &str,
    path: &str,
) -> anyhow::Result<Socket> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: {OFFER}\r\n\r\n",
        generate_key()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::with_capacity(512);
    let end = loop {
        if let Some(at) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if response.len() > 8192 || stream.read_buf(&mut response).await? == 0 {
            bail!("no complete upgrade response");
        }
    };
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 101") {
        bail!("upgrade refused: {}", head.lines().next().unwrap_or(""));
    }
    let agreed = head.lines().any(|line| {
        line.strip_prefix("sec-websocket-extensions:")
            .is_some_and(|value| value.trim().starts_with("permessage-deflate"))
    });
    if !agreed {
        bail!("the server did not agree permessage-deflate");
    }
    let io = SocketIo::deflate_client(Counted(stream), &response[end..]);
    Ok(WebSocketStream::from_raw_socket(io, Role::Client, Some(config())).await)
}

/// Connects to `ws_url` (ws://host:port/path) from `from` and subscribes;
/// with `deflate`, offers permessage-deflate and requires it agreed.
pub async fn connect_subscribed(
    ws_url: &str,
    token: &str,
    from: Ipv4Addr,
    deflate: bool,
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
    let mut ws = if deflate {
        let path = &rest[authority.len()..];
        upgrade_deflate(stream, authority, &format!("{path}?token={token}")).await?
    } else {
        let request = format!("{ws_url}?token={token}").into_client_request()?;
        let io = SocketIo::Plain(Counted(stream));
        tokio_tungstenite::client_async_with_config(request, io, Some(config()))
            .await?
            .0
    };
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

/// From a node's `/metrics` at `base`: the count of a latency histogram's
/// samples whose series has all of `labels` (`route="/api/tasks"` …), and
/// of those within 10 ms; `None` when the node does not serve it.
pub async fn histogram_within_10ms(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    labels: &[&str],
) -> Option<(f64, f64)> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |series: &str, extra: Option<&str>| {
        text.lines()
            .filter(|line| line.starts_with(series))
            .filter(|line| {
                labels
                    .iter()
                    .chain(extra.as_ref())
                    .all(|label| line.contains(label))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .next()
    };
    Some((
        value(&format!("{name}_count"), None)?,
        value(&format!("{name}_bucket"), Some("le=\"0.01\""))?,
    ))
}
