//! The WebSocket clients. Each socket connects to a chosen ws-node directly
//! (no balancer), subscribes, and records every event's seq with the time
//! it arrived. After any close it reconnects to the other node (then
//! alternates while connecting fails) and resumes with
//! `{"type":"SUBSCRIBE_TASKS","since":<last seq it got>}`.
//!
//! It never resubscribes on a gap of its own accord: the contract says the
//! server alone keeps each socket's stream whole, so a hole is the server's.
//! The one thing it retries is a subscription the node refused with
//! `ERROR UNAVAILABLE` (the node could not read history: PostgreSQL down).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::now_ms;

/// How long connecting (TCP + upgrade) may take before trying the other node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Connection attempts per socket over a whole run.
const MAX_ATTEMPTS: u32 = 2_000;
/// `SUBSCRIBE_TASKS` retries after `ERROR` per connection.
const MAX_SUBSCRIBE_RETRIES: u32 = 200;

/// Where a socket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Connecting (or between attempts).
    Connecting,
    /// Connected, `SUBSCRIBE_TASKS` sent, no `SUBSCRIBED` yet.
    Subscribing,
    /// `SUBSCRIBED` received on the current connection.
    Subscribed,
    /// Finished (the run is over).
    Stopped,
}

/// One event as this socket got it.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Its seq.
    pub seq: i64,
    /// When it arrived (ms since the epoch).
    pub at_ms: i64,
    /// Its commit time, the event's `timestamp` (ms since the epoch).
    pub commit_ms: i64,
}

/// A connection that ended.
#[derive(Debug, Clone)]
pub struct Closed {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Which node it was on.
    pub node: usize,
    /// The close code, if the server sent a close frame.
    pub code: Option<u16>,
    /// What happened, for the report.
    pub why: String,
}

/// Everything one socket saw over the run, across its reconnects.
#[derive(Debug)]
pub struct SocketLog {
    /// Its number.
    pub id: usize,
    /// Its user (index into the suite's users).
    pub user: usize,
    /// Which group opened it (`base`, `h-late`, `i-crowd`).
    pub label: &'static str,
    /// The node it is on, or connecting to.
    pub node: usize,
    /// Where it stands.
    pub link: Link,
    /// The seq of its first `SUBSCRIBED`: it is owed every event after it.
    pub sub_point: Option<i64>,
    /// When it was opened (ms since the epoch).
    pub opened_ms: i64,
    /// Every event received, in arrival order.
    pub received: Vec<Received>,
    /// Every connection that ended.
    pub closes: Vec<Closed>,
    /// Connection attempts that failed.
    pub connect_failures: u32,
    /// Why the last failed attempt failed.
    pub last_connect_error: Option<String>,
    /// When `RESYNC_REQUIRED` came (never expected here).
    pub resyncs: Vec<i64>,
    /// `ERROR` answers.
    pub errors: u32,
}

impl SocketLog {
    /// The seq to resume from: the last one received, else the first
    /// subscription point.
    pub fn last_seq(&self) -> Option<i64> {
        self.received.last().map(|r| r.seq).or(self.sub_point)
    }
}

/// A socket's log, shared between its task and the suite.
pub type Shared = Arc<Mutex<SocketLog>>;

/// Locks a log (a poisoned lock is a bug in the suite).
pub fn lock(log: &Shared) -> std::sync::MutexGuard<'_, SocketLog> {
    log.lock().expect("BUG: socket log lock poisoned")
}

/// Every socket of the run.
pub struct Sockets {
    urls: Arc<Vec<String>>,
    logs: Mutex<Vec<Shared>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    stop: watch::Sender<bool>,
    deadline: Instant,
}

impl Sockets {
    /// Sockets that talk to the ws-nodes at `urls` until `deadline` at most.
    pub fn new(urls: Vec<String>, deadline: Instant) -> Self {
        Self {
            urls: Arc::new(urls),
            logs: Mutex::default(),
            tasks: Mutex::default(),
            stop: watch::channel(false).0,
            deadline,
        }
    }

    /// Opens a socket of `user` (with `token`) on node `node`.
    pub fn open(&self, user: usize, token: &str, node: usize, label: &'static str) -> Shared {
        let mut logs = self.logs.lock().expect("BUG: poisoned");
        let log = Arc::new(Mutex::new(SocketLog {
            id: logs.len(),
            user,
            label,
            node,
            link: Link::Connecting,
            sub_point: None,
            opened_ms: now_ms(),
            received: Vec::new(),
            closes: Vec::new(),
            connect_failures: 0,
            last_connect_error: None,
            resyncs: Vec::new(),
            errors: 0,
        }));
        logs.push(log.clone());
        let task = tokio::spawn(run(
            log.clone(),
            self.urls.clone(),
            token.to_owned(),
            self.stop.subscribe(),
            self.deadline,
        ));
        self.tasks.lock().expect("BUG: poisoned").push(task);
        log
    }

    /// Every socket opened so far.
    pub fn all(&self) -> Vec<Shared> {
        self.logs.lock().expect("BUG: poisoned").clone()
    }

    /// Closes every socket and waits (bounded) for their tasks.
    pub async fn close_all(&self) {
        let _ = self.stop.send(true);
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().expect("BUG: poisoned"));
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
        }
    }
}

/// Why a connection ended.
enum End {
    /// The run is over.
    Stop,
    /// It was closed; reconnect.
    Closed(Option<u16>, String),
}

async fn run(
    log: Shared,
    urls: Arc<Vec<String>>,
    token: String,
    mut stop: watch::Receiver<bool>,
    deadline: Instant,
) {
    let mut node = lock(&log).node;
    let mut failures_in_a_row = 0u32;
    for _ in 0..MAX_ATTEMPTS {
        if *stop.borrow() || Instant::now() >= deadline {
            break;
        }
        {
            let mut log = lock(&log);
            log.node = node;
            log.link = Link::Connecting;
        }
        let url = format!("{}?token={token}", urls[node]);
        let connected =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url)).await;
        let why = match connected {
            Ok(Ok((ws, _))) => {
                failures_in_a_row = 0;
                match session(&log, ws, &mut stop).await {
                    End::Stop => break,
                    End::Closed(code, why) => {
                        lock(&log).closes.push(Closed {
                            at_ms: now_ms(),
                            node,
                            code,
                            why,
                        });
                        // Straight to the other node, as a client told
                        // "going away" would.
                        node = (node + 1) % urls.len();
                        continue;
                    }
                }
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => "connect timed out".to_owned(),
        };
        {
            let mut log = lock(&log);
            log.connect_failures += 1;
            log.last_connect_error = Some(why);
        }
        failures_in_a_row += 1;
        node = (node + 1) % urls.len();
        // Back off a little once both nodes have refused.
        if failures_in_a_row >= 2 {
            let pause = Duration::from_millis(50 * u64::from(failures_in_a_row.min(10)));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => break,
            }
        }
    }
    lock(&log).link = Link::Stopped;
}

fn subscribe_message(log: &Shared) -> String {
    let log = lock(log);
    // Resume only once subscribed before: a first subscription starts now.
    match (log.sub_point, log.last_seq()) {
        (Some(_), Some(since)) => json!({ "type": "SUBSCRIBE_TASKS", "since": since }),
        _ => json!({ "type": "SUBSCRIBE_TASKS" }),
    }
    .to_string()
}

/// One connection: subscribe, then record until it ends.
async fn session(
    log: &Shared,
    mut ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    stop: &mut watch::Receiver<bool>,
) -> End {
    lock(log).link = Link::Subscribing;
    if let Err(err) = ws.send(Message::Text(subscribe_message(log).into())).await {
        return End::Closed(None, format!("subscribe failed: {err}"));
    }
    let mut retry_at: Option<Instant> = None;
    let mut retries = 0u32;
    loop {
        let retry = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if on_text(log, &text) && retries < MAX_SUBSCRIBE_RETRIES {
                        retries += 1;
                        retry_at = Some(Instant::now() + Duration::from_millis(200));
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.as_ref().map(|f| u16::from(f.code));
                    let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    return End::Closed(code, format!("closed by the node: {reason}"));
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => return End::Closed(None, format!("read failed: {err}")),
                None => return End::Closed(None, "ended without a close frame".into()),
            },
            _ = retry => {
                retry_at = None;
                if let Err(err) = ws.send(Message::Text(subscribe_message(log).into())).await {
                    return End::Closed(None, format!("subscribe failed: {err}"));
                }
            }
            _ = stop.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                return End::Stop;
            }
        }
    }
}

/// Records one text message; true when it refused the subscription (so it
/// should be sent again shortly).
fn on_text(log: &Shared, text: &str) -> bool {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    let kind = value["type"].as_str().unwrap_or("");
    let mut log = lock(log);
    match kind {
        k if k.starts_with("TASK_") => {
            if let Some(seq) = value["seq"].as_i64() {
                log.received.push(Received {
                    seq,
                    at_ms: now_ms(),
                    commit_ms: value["timestamp"].as_i64().unwrap_or(0),
                });
            }
            false
        }
        "SUBSCRIBED" => {
            if log.sub_point.is_none() {
                log.sub_point = value["seq"].as_i64();
            }
            log.link = Link::Subscribed;
            false
        }
        "RESYNC_REQUIRED" => {
            log.resyncs.push(now_ms());
            false
        }
        "ERROR" => {
            log.errors += 1;
            log.link == Link::Subscribing
        }
        _ => false,
    }
}
