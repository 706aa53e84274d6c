//! Real ws-nodes on their own ports, real WebSocket clients, and the
//! api-nodes they serve ([`api`], re-exported so a ws-node test reaches
//! both through one name).

pub use crate::api;
pub mod nginx;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use ws_node::app::Application;
use ws_node::config::Config;

pub use api::TestApp;

/// A running ws-node.
pub struct WsNode {
    pub port: u16,
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// ws-node settings matching an api-node's (same database, Redis namespace
/// and JWT keys).
pub fn ws_config(api: &TestApp) -> Config {
    Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        database_url: api.config.database_url.clone(),
        db_pool_size: 4,
        db_timeout: Duration::from_secs(2),
        redis_url: api.config.redis_url.clone(),
        redis_namespace: api.config.redis_namespace.clone(),
        jwt: api.config.jwt.clone(),
        max_connections: 10_000,
        max_sockets_per_user: 100,
        queue_len: 64,
        max_messages_per_sec: 50,
        ping_interval: Duration::from_secs(25),
        idle_timeout: Duration::from_secs(60),
        write_timeout: Duration::from_secs(5),
        shutdown_grace: Duration::from_secs(5),
        compression: true,
    }
}

impl WsNode {
    pub async fn start(api: &TestApp) -> Self {
        Self::start_with(api, |_| {}).await
    }

    pub async fn start_with(api: &TestApp, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = ws_config(api);
        adjust(&mut config);
        let app = Application::build(config.clone())
            .await
            .expect("the ws-node builds");
        let port = app.port();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Self {
            port,
            config,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, token: &str) -> String {
        format!("ws://127.0.0.1:{}/ws/updates?token={token}", self.port)
    }

    /// Connects with `?token=`.
    pub async fn connect(&self, token: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(self.url(token))
            .await
            .expect("upgrade accepted");
        Client { ws }
    }

    /// Connects and subscribes; returns the client and the SUBSCRIBED seq.
    pub async fn subscribed(&self, token: &str) -> (Client, i64) {
        let mut client = self.connect(token).await;
        client.send(json!({ "type": "SUBSCRIBE_TASKS" })).await;
        let reply = client.expect("SUBSCRIBED").await;
        (client, reply["seq"].as_i64().unwrap())
    }

    /// Tries to connect; the HTTP status of a refusal.
    pub async fn refused_status(&self, token: Option<&str>) -> u16 {
        let url = format!(
            "ws://127.0.0.1:{}/ws/updates{}",
            self.port,
            token.map(|t| format!("?token={t}")).unwrap_or_default()
        );
        match tokio_tungstenite::connect_async(url.into_client_request().unwrap()).await {
            Ok(_) => 101,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                response.status().as_u16()
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    /// Stops the node as SIGTERM would.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for WsNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A WebSocket client.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a client saw next.
#[derive(Debug)]
pub enum Seen {
    Json(Value),
    Closed(Option<u16>),
    Nothing,
}

impl Client {
    pub async fn send(&mut self, value: Value) {
        self.ws
            .send(Message::Text(value.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    /// The next JSON message or close within `within` (pings are skipped).
    pub async fn next_within(&mut self, within: Duration) -> Seen {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Seen::Nothing,
                Ok(None) | Ok(Some(Err(_))) => return Seen::Closed(None),
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Seen::Json(serde_json::from_str(&text).unwrap())
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Seen::Closed(frame.map(|f| u16::from(f.code)))
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next JSON message within 5 s.
    pub async fn next(&mut self) -> Value {
        match self.next_within(Duration::from_secs(5)).await {
            Seen::Json(value) => value,
            other => panic!("expected a message, saw {other:?}"),
        }
    }

    /// The next message, which must be of `kind`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let message = self.next().await;
        assert_eq!(message["type"], kind, "got {message}");
        message
    }

    /// Waits for the server to close; returns the close code.
    pub async fn expect_close(&mut self, within: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self
                .next_within(deadline.saturating_duration_since(tokio::time::Instant::now()))
                .await
            {
                Seen::Closed(code) => return code,
                Seen::Json(_) => continue,
                Seen::Nothing => panic!("the server did not close within {within:?}"),
            }
        }
    }

    /// Asserts nothing arrives within `within`.
    pub async fn expect_silence(&mut self, within: Duration) {
        if let Seen::Json(value) = self.next_within(within).await {
            panic!("expected nothing, got {value}");
        }
    }
}

/// The close code as a number.
pub fn code(code: CloseCode) -> u16 {
    u16::from(code)
}

// ---- Helpers for the fan-out, resume, limits and ops tests. ----

/// A WebSocket upgrade request (with no token) that a test can add headers to.
pub type WsRequest = tokio_tungstenite::tungstenite::handshake::client::Request;

impl WsNode {
    /// An HTTP URL on this node.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// An upgrade request for `/ws/updates` followed by `query` (e.g. `""`
    /// or `"?token=…"`), ready for extra headers.
    pub fn request(&self, query: &str) -> WsRequest {
        format!("ws://127.0.0.1:{}/ws/updates{query}", self.port)
            .into_client_request()
            .unwrap()
    }

    /// Connects with a prepared request: the client, or the HTTP status of
    /// the refusal.
    pub async fn connect_request(&self, request: WsRequest) -> Result<Client, u16> {
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(Client { ws }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    /// Connects and subscribes with `since`; returns the client, the
    /// messages before SUBSCRIBED, and the SUBSCRIBED seq.
    pub async fn resumed(&self, token: &str, since: i64) -> (Client, Vec<Value>, i64) {
        let mut client = self.connect(token).await;
        client
            .send(json!({ "type": "SUBSCRIBE_TASKS", "since": since }))
            .await;
        let mut before = Vec::new();
        loop {
            let message = client.next().await;
            if message["type"] == "SUBSCRIBED" {
                let seq = message["seq"].as_i64().unwrap();
                return (client, before, seq);
            }
            before.push(message);
        }
    }
}

impl Client {
    /// The next text frame exactly as sent, within 5 s (pings are skipped).
    pub async fn next_text(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("expected a text frame within 5 s"),
                Ok(Some(Ok(Message::Text(text)))) => return text.as_str().to_owned(),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    panic!("expected a text frame, the server closed: {frame:?}")
                }
                Ok(Some(Ok(_))) => continue,
                Ok(None) | Ok(Some(Err(_))) => panic!("expected a text frame, the socket ended"),
            }
        }
    }

    /// The next `n` messages, each of which must be a task event.
    pub async fn events(&mut self, n: usize) -> Vec<Value> {
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            let event = self.next().await;
            assert!(is_event(&event), "expected a task event, got {event}");
            events.push(event);
        }
        events
    }

    /// Sends a PING and expects the PONG: the connection is alive.
    pub async fn assert_alive(&mut self) {
        self.send(json!({ "type": "PING" })).await;
        self.expect("PONG").await;
    }
}

/// Whether a message is a task event.
pub fn is_event(message: &Value) -> bool {
    matches!(
        message["type"].as_str(),
        Some("TASK_CREATED" | "TASK_UPDATED" | "TASK_DELETED")
    )
}

/// The seqs of some events.
pub fn seqs(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e["seq"].as_i64().expect("an event carries a seq"))
        .collect()
}

/// A token of `user_id` signed with the test keys, expiring `ttl_secs` from
/// now; returns it with its `exp`.
pub fn token_expiring_in(user_id: &str, ttl_secs: i64) -> (String, i64) {
    let now = chrono::Utc::now().timestamp();
    let claims = shared::jwt::Claims {
        sub: user_id.parse().unwrap(),
        jti: uuid::Uuid::new_v4(),
        iat: now,
        exp: now + ttl_secs,
    };
    (api::jwt_keys().sign(&claims), claims.exp)
}

/// A direct connection to a Redis server.
pub async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("the test Redis is reachable")
}
