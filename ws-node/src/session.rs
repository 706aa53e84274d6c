//! One WebSocket connection: a single task that reads the client, writes
//! queued events, keeps the heartbeat and enforces the limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use shared::jwt::Claims;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::history::{HistoryError, RESUME_WINDOW};
use crate::hub::{ConnRef, Control, Event};
use crate::inflating_stream::SocketIo;
use crate::metrics::{
    CLOSES, FANOUT_LATENCY, GAP_FILLS, GAP_FILL_RUNS, MESSAGES_IN, MESSAGES_OUT, RESYNCS,
};
use crate::protocol::{self, close, ClientMessage};
use crate::state::NodeState;

/// How old the oldest replayed event may be (the contract's window).
const MAX_REPLAY_AGE_MS: i64 = 24 * 3600 * 1000;
/// How long closing waits for the peer's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The socket type every session runs on.
pub type Socket = WebSocketStream<SocketIo>;

/// How a resume with `since` went.
enum Replay {
    /// Every missed event was sent.
    Whole,
    /// The client must resync, for this reason (a value of the `reason`
    /// label of `ws_resync_required_total`).
    Resync(&'static str),
}

/// Why the loop ended.
enum End {
    /// Close with this code and reason.
    Close(u16, &'static str),
    /// The peer is gone or broken: just drop the socket.
    Drop,
}

struct Session {
    ws: Socket,
    state: Arc<NodeState>,
    conn: ConnRef,
    claims: Claims,
    /// Events fanned out by the hub, bounded.
    queue: mpsc::Receiver<Arc<Event>>,
    control: Arc<Control>,
    subscribed: bool,
    /// The last seq this client has been sent (or told about).
    last_seq: i64,
    last_heard: Instant,
    window_start: Instant,
    window_count: u32,
}

/// Runs a connection until it ends, then unregisters it.
pub async fn run(ws: Socket, state: Arc<NodeState>, claims: Claims) {
    let (conn, queue, control) = state.hub.register(claims.sub, claims.jti);
    let now = Instant::now();
    let mut session = Session {
        ws,
        state: state.clone(),
        conn,
        claims,
        queue,
        control,
        subscribed: false,
        last_seq: 0,
        last_heard: now,
        window_start: now,
        window_count: 0,
    };
    let end = session.serve().await;
    let jti = session.claims.jti;
    state.hub.unregister(conn, jti);
    if let End::Close(code, reason) = end {
        metrics::counter!(CLOSES, "code" => code.to_string()).increment(1);
        session.close(code, reason).await;
    }
}

impl Session {
    async fn serve(&mut self) -> End {
        let (ping_interval, idle_timeout) = (
            self.state.config.ping_interval,
            self.state.config.idle_timeout,
        );
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
        // A revoked token may have been announced before we registered.
        if self.state.revocations.is_revoked(&self.claims.jti) {
            return End::Close(close::TOKEN, "token revoked");
        }
        // One timer for the token's expiry, moved when AUTH extends it
        // (recreating it on every wake-up would re-register it each time).
        let expiry = tokio::time::sleep_until(expiry_instant(self.claims.exp));
        tokio::pin!(expiry);
        let mut exp = self.claims.exp;
        loop {
            if self.claims.exp != exp {
                exp = self.claims.exp;
                expiry.as_mut().reset(expiry_instant(exp));
            }
            tokio::select! {
                biased;
                _ = self.control.closed() => {
                    return End::Close(self.control.code(), match self.control.code() {
                        close::TOKEN => "token revoked",
                        close::GOING_AWAY => "node shutting down",
                        close::POLICY => "too slow to read events",
                        _ => "closed",
                    });
                }
                _ = &mut expiry => return End::Close(close::TOKEN, "token expired"),
                event = self.queue.recv() => {
                    let Some(event) = event else { return End::Drop };
                    if let Err(end) = self.send_event(event).await {
                        return end;
                    }
                }
                message = self.ws.next() => {
                    self.last_heard = Instant::now();
                    match message {
                        Some(Ok(message)) => {
                            if let Err(end) = self.on_message(message).await {
                                return end;
                            }
                        }
                        Some(Err(WsError::Capacity(_))) => return End::Close(close::TOO_BIG, "message over 16 KiB"),
                        Some(Err(_)) | None => return End::Drop,
                    }
                }
                _ = heartbeat.tick() => {
                    if self.last_heard.elapsed() >= idle_timeout {
                        return End::Close(1000, "no answer to pings");
                    }
                    if self.write(Message::Ping(Default::default())).await.is_err() {
                        return End::Drop;
                    }
                }
            }
        }
    }

    async fn on_message(&mut self, message: Message) -> Result<(), End> {
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                self.count_message()?;
                return self
                    .reply(protocol::error(
                        "BAD_MESSAGE",
                        "messages are JSON text frames",
                    ))
                    .await;
            }
            // Control frames count like any message: a ping flood is a
            // flood. tungstenite queues the pong; flushing sends it, under
            // the write timeout like every write (a client that pings and
            // never reads would otherwise hold this task in the flush).
            Message::Ping(_) => {
                self.count_message()?;
                return self.flush().await;
            }
            Message::Pong(_) | Message::Frame(_) => return self.count_message(),
            Message::Close(_) => return Err(End::Drop),
        };
        self.count_message()?;
        match ClientMessage::parse(&text) {
            Ok(ClientMessage::Ping) => {
                self.reply(protocol::pong(chrono::Utc::now().timestamp_millis()))
                    .await
            }
            // Boxed: these rare paths hold database futures, and inline
            // they would make every idle connection's task kilobytes larger.
            Ok(ClientMessage::Subscribe { since }) => Box::pin(self.subscribe(since)).await,
            Ok(ClientMessage::Unsubscribe) => {
                self.state.hub.set_subscribed(self.conn, false);
                self.subscribed = false;
                self.reply(protocol::unsubscribed()).await
            }
            Ok(ClientMessage::Auth { token }) => Box::pin(self.reauthenticate(&token)).await,
            Err(why) => self.reply(protocol::error("BAD_MESSAGE", why)).await,
        }
    }

    /// More than the allowed messages in one second closes with 1008.
    fn count_message(&mut self) -> Result<(), End> {
        metrics::counter!(MESSAGES_IN).increment(1);
        if self.window_start.elapsed() >= Duration::from_secs(1) {
            self.window_start = Instant::now();
            self.window_count = 0;
        }
        self.window_count += 1;
        if self.window_count > self.state.config.max_messages_per_sec {
            return Err(End::Close(close::POLICY, "too many messages"));
        }
        Ok(())
    }

    /// SUBSCRIBE_TASKS: register with the hub first (so nothing published
    /// from here on is missed: it waits in the queue), then read the latest
    /// seq, replay what `since` asks for, and say SUBSCRIBED. Queued events
    /// at or below what was replayed are then dropped by seq.
    async fn subscribe(&mut self, since: Option<i64>) -> Result<(), End> {
        if let Some(confirmed) = self.state.hub.set_subscribed(self.conn, true) {
            let _ = tokio::time::timeout(Duration::from_secs(2), confirmed).await;
        }
        self.subscribed = true;
        let user = self.conn.user;
        let latest = match self.state.history.latest_seq(user).await {
            Ok(latest) => latest,
            Err(err) => {
                tracing::warn!(error = %err, "subscribe: history unavailable");
                self.state.hub.set_subscribed(self.conn, false);
                self.subscribed = false;
                return self
                    .reply(protocol::error("UNAVAILABLE", "try again shortly"))
                    .await;
            }
        };
        self.state.hub.note_latest(user, latest);
        if let Some(since) = since {
            if let Replay::Resync(reason) = self.replay(since, latest).await? {
                metrics::counter!(RESYNCS, "reason" => reason).increment(1);
                self.reply(protocol::resync_required(latest)).await?;
            }
        }
        self.last_seq = latest;
        self.reply(protocol::subscribed(latest)).await
    }

    /// Sends the events `since < seq <= latest`, a page at a time (each
    /// page written before the next is read, so one page at most is held).
    /// [`Replay::Resync`] when the contract says resync instead: `since`
    /// above the latest, more than [`RESUME_WINDOW`] missed, the oldest
    /// missed one older than a day, or the events no longer (or not now) to
    /// be had. Those are all known before the first event is sent, except
    /// history failing mid-way, when the client gets a prefix and then
    /// resyncs.
    async fn replay(&mut self, since: i64, latest: i64) -> Result<Replay, End> {
        if since > latest {
            return Ok(Replay::Resync("ahead"));
        }
        if latest - since > RESUME_WINDOW {
            return Ok(Replay::Resync("too_many"));
        }
        let state = self.state.clone();
        let mut pages = state.history.pages(self.conn.user, since, latest);
        let mut first = true;
        loop {
            let page = match pages.next().await {
                Ok(Some(page)) => page,
                Ok(None) => return Ok(Replay::Whole),
                Err(HistoryError::Gone) => return Ok(Replay::Resync("gone")),
                Err(err) => {
                    tracing::warn!(error = %err, "resume: history unavailable");
                    return Ok(Replay::Resync("unavailable"));
                }
            };
            // Seq order is commit order, so the first missed event is the
            // oldest.
            if std::mem::take(&mut first) && page.first().is_some_and(|e| too_old(e)) {
                return Ok(Replay::Resync("too_old"));
            }
            for text in page {
                self.write(Message::Text(text))
                    .await
                    .map_err(|_| End::Drop)?;
            }
        }
    }

    /// AUTH: a valid token of the same user replaces the connection's token.
    async fn reauthenticate(&mut self, token: &str) -> Result<(), End> {
        let claims = match self.state.config.jwt.verify(token) {
            Ok(claims)
                if claims.sub == self.claims.sub
                    && !self.state.revocations.is_revoked(&claims.jti) =>
            {
                claims
            }
            _ => {
                return self
                    .reply(protocol::error(
                        "UNAUTHORIZED",
                        "the token is invalid, expired, revoked or another user's",
                    ))
                    .await
            }
        };
        self.state
            .hub
            .change_token(self.conn, self.claims.jti, claims.jti);
        let exp = claims.exp;
        self.claims = claims;
        self.reply(protocol::authenticated(exp)).await
    }

    async fn send_event(&mut self, event: Arc<Event>) -> Result<(), End> {
        if !self.subscribed || event.seq <= self.last_seq {
            return Ok(());
        }
        if event.seq > self.last_seq + 1 {
            // Boxed, like subscribe: a database future inline would make
            // every idle connection's task larger.
            Box::pin(self.fill_gap(event.seq)).await?;
        }
        self.last_seq = event.seq;
        let message = match event.deflated() {
            Some(deflated) if self.ws.get_ref().is_deflate() => {
                // The event's one compressed copy, with RSV1 set.
                let mut frame = Frame::message(deflated.clone(), OpCode::Data(Data::Text), true);
                frame.header_mut().rsv1 = true;
                Message::Frame(frame)
            }
            _ => Message::Text(event.text.clone()),
        };
        self.write(message).await.map_err(|_| End::Drop)?;
        let lag_ms = chrono::Utc::now().timestamp_millis() - event.timestamp_ms;
        metrics::histogram!(FANOUT_LATENCY).record(lag_ms.max(0) as f64 / 1000.0);
        Ok(())
    }

    /// Sends this socket the events between its last seq and `next` from
    /// history. The hub hands events on in order from a point never above
    /// any subscriber's starting point, so this is rare: a socket that
    /// subscribed while its user had no fan-out point on this node yet, or
    /// a gap the hub could not fill. Filling it here keeps this socket's
    /// stream whole whatever the user's other sockets were sent.
    ///
    /// Counted in `ws_gap_fills_total{scope="socket"}`.
    async fn fill_gap(&mut self, next: i64) -> Result<(), End> {
        let filled = self.try_fill_gap(next).await?;
        let result = if filled { "filled" } else { "failed" };
        metrics::counter!(GAP_FILL_RUNS, "scope" => "socket", "result" => result).increment(1);
        Ok(())
    }

    /// [`Session::fill_gap`]'s work: whether the whole gap was sent.
    async fn try_fill_gap(&mut self, next: i64) -> Result<bool, End> {
        let (user, after) = (self.conn.user, self.last_seq);
        if next - 1 - after > RESUME_WINDOW {
            tracing::warn!(%user, after, next, "gap too large to fill for one socket");
            return Ok(false);
        }
        // A page at a time, like a replay. If history fails part way, the
        // client sees the gap and resubscribes, as the contract asks.
        let state = self.state.clone();
        let mut pages = state.history.pages(user, after, next - 1);
        loop {
            match pages.next().await {
                Ok(Some(page)) => {
                    metrics::counter!(GAP_FILLS).increment(page.len() as u64);
                    for text in page {
                        self.write(Message::Text(text))
                            .await
                            .map_err(|_| End::Drop)?;
                    }
                }
                Ok(None) => return Ok(true),
                Err(HistoryError::Gone) => {
                    tracing::warn!(%user, after, next, "gap no longer in history");
                    return Ok(false);
                }
                Err(err) => {
                    tracing::warn!(error = %err, %user, "could not fill a socket's gap");
                    return Ok(false);
                }
            }
        }
    }

    async fn reply(&mut self, json: String) -> Result<(), End> {
        self.write(Message::Text(Utf8Bytes::from(json)))
            .await
            .map_err(|_| End::Drop)
    }

    /// Sends one message; a socket that takes no bytes for the write
    /// timeout is treated as gone.
    async fn write(&mut self, message: Message) -> Result<(), ()> {
        match tokio::time::timeout(self.state.config.write_timeout, self.ws.send(message)).await {
            Ok(Ok(())) => {
                metrics::counter!(MESSAGES_OUT).increment(1);
                Ok(())
            }
            _ => Err(()),
        }
    }

    /// Sends what tungstenite has queued (pongs), under the write timeout.
    async fn flush(&mut self) -> Result<(), End> {
        match tokio::time::timeout(self.state.config.write_timeout, self.ws.flush()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::Drop),
        }
    }

    /// Sends a close frame and waits briefly for the peer's: the whole
    /// handshake, the write included, is bounded by [`CLOSE_WAIT`] (or the
    /// write timeout, if shorter), so a peer that does not read cannot keep
    /// a closed connection.
    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: Utf8Bytes::from_static(reason),
        };
        let within = CLOSE_WAIT.min(self.state.config.write_timeout);
        let _ = tokio::time::timeout(within, async {
            if self.ws.send(Message::Close(Some(frame))).await.is_ok() {
                while let Some(Ok(_)) = self.ws.next().await {}
            }
        })
        .await;
    }
}

/// Whether an event (its JSON) was committed longer ago than a resume may
/// reach back.
fn too_old(event: &str) -> bool {
    match shared::events::EventView::parse(event) {
        Ok(view) => chrono::Utc::now().timestamp_millis() - view.timestamp > MAX_REPLAY_AGE_MS,
        Err(err) => {
            tracing::error!(error = %err, "BUG: unreadable event in history");
            true
        }
    }
}

/// The instant a token expires, for the timer.
fn expiry_instant(exp: i64) -> tokio::time::Instant {
    let left = exp - chrono::Utc::now().timestamp();
    tokio::time::Instant::now() + Duration::from_secs(left.max(0) as u64)
}
