//! The node's connections, sharded by user in a `DashMap` (each shard has
//! its own lock, so fan-out to one user never blocks another's).
//!
//! The hub also keeps, per user, the last seq it has fanned out (the user's
//! fan-out point: every subscriber here has been given, or told about,
//! everything up to it), so events leave it in seq order with duplicates
//! dropped and gaps reported to the caller to fill from history; and it issues the Redis (un)subscribe
//! commands for a user's channel as the first of its connections subscribes
//! and the last one leaves, while holding the user's shard lock, so the
//! commands reach the broker in the order the hub changed.
//!
//! The hub knows nothing of Redis or history: it sends [`Interest`] changes
//! down a channel and reports gaps; the fan-out coordinator
//! ([`crate::fanout`]) wires it to the broker and fills the gaps.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use dashmap::DashMap;
use shared::events::EventView;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use uuid::Uuid;

use crate::deflate;
use crate::metrics::{CHANNELS, CONNECTIONS, HUB_EVENTS, QUEUE_DROPS, SLOW_CLOSES, SUBSCRIBED};
use crate::protocol::close;

/// One event, serialized once; every recipient's queue holds an `Arc` of it
/// (a pointer per queue slot keeps idle connections' queues small).
#[derive(Debug, Clone)]
pub struct Event {
    /// The owner's sequence number.
    pub seq: i64,
    /// Commit time, milliseconds since the epoch (for the latency metric).
    pub timestamp_ms: i64,
    /// The JSON text frame.
    pub text: Utf8Bytes,
    /// The frame's payload deflated, made by the first socket that needs
    /// it and shared by every other (permessage-deflate without context
    /// takeover makes one compressed message valid for all).
    deflated: OnceLock<Bytes>,
}

impl Event {
    /// An event with these fields.
    pub fn new(seq: i64, timestamp_ms: i64, text: Utf8Bytes) -> Self {
        Self {
            seq,
            timestamp_ms,
            text,
            deflated: OnceLock::new(),
        }
    }

    /// The text compressed once for every socket that agreed deflate;
    /// `None` when it is too small to be worth it.
    pub fn deflated(&self) -> Option<&Bytes> {
        (self.text.len() >= deflate::MIN_COMPRESSED_LEN).then(|| {
            self.deflated
                .get_or_init(|| deflate::compress(self.text.as_bytes()))
        })
    }

    /// Reads the seq and time of an event's JSON (one parse per event; the
    /// bytes are kept as they are for every recipient).
    pub fn from_text(text: Utf8Bytes) -> Option<Arc<Event>> {
        let view = EventView::parse(text.as_str())
            .map_err(|err| tracing::error!(error = %err, "BUG: unreadable event"))
            .ok()?;
        Some(Arc::new(Event::new(view.seq, view.timestamp, text)))
    }
}

/// A change in which users' events this node wants: the broker follows
/// these with (un)subscribe commands.
#[derive(Debug)]
pub enum Interest {
    /// The user's first subscriber here; answer once Redis confirmed.
    Subscribe(Uuid, oneshot::Sender<()>),
    /// The user's last subscriber here left.
    Unsubscribe(Uuid),
}

/// Tells a connection's task to close, with which code.
#[derive(Debug, Default)]
pub struct Control {
    code: AtomicU16,
    wake: Notify,
}

impl Control {
    /// Asks the connection to close with `code` (the first code asked wins).
    pub fn close(&self, code: u16) {
        let _ = self
            .code
            .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// The code asked for, once one has been.
    pub fn code(&self) -> u16 {
        self.code.load(Ordering::SeqCst)
    }

    /// Completes when a close has been asked for.
    pub async fn closed(&self) {
        if self.code() == 0 {
            self.wake.notified().await;
        }
    }
}

/// A connection's handle on the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    /// Its user.
    pub user: Uuid,
    /// Its id on this node.
    pub id: u64,
}

struct Conn {
    id: u64,
    jti: Uuid,
    queue: mpsc::Sender<Arc<Event>>,
    control: Arc<Control>,
    subscribed: bool,
}

/// One user's connections, sorted by id (so finding one is a binary
/// search: a user may hold thousands), with the count of subscribed ones.
#[derive(Default)]
struct UserConns {
    conns: Vec<Conn>,
    subscribed: usize,
    /// The last seq fanned out to this user's subscribers on this node;
    /// `None` while none is subscribed.
    last_seq: Option<i64>,
}

impl UserConns {
    fn subscribers(&self) -> usize {
        self.subscribed
    }

    fn find(&mut self, id: u64) -> Option<&mut Conn> {
        let at = self.conns.binary_search_by_key(&id, |c| c.id).ok()?;
        Some(&mut self.conns[at])
    }
}

/// What [`Hub::deliver`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Fanned out.
    Delivered,
    /// Already fanned out (a republished event): dropped.
    Duplicate,
    /// Events between the last fanned out and this one are missing; fill
    /// `(after, event.seq)` from history first.
    Gap {
        /// The last seq fanned out.
        after: i64,
    },
    /// Nobody here is subscribed.
    NoSubscribers,
}

/// Every connection of this node.
pub struct Hub {
    users: DashMap<Uuid, UserConns>,
    /// jti → connections opened or refreshed with that token, for closing
    /// them on logout without scanning every connection.
    tokens: DashMap<Uuid, HashSet<ConnRef>>,
    next_id: AtomicU64,
    open: AtomicUsize,
    queue_len: usize,
    /// Where interest changes go, in the order the hub made them.
    interest: mpsc::UnboundedSender<Interest>,
    /// `ws_hub_events_total` by outcome, looked up once.
    outcomes: Outcomes,
}

/// The counters of [`Hub::deliver`]'s outcomes.
struct Outcomes {
    delivered: metrics::Counter,
    duplicate: metrics::Counter,
    gap: metrics::Counter,
    no_subscribers: metrics::Counter,
}

impl Outcomes {
    fn new() -> Self {
        let counter = |outcome: &'static str| metrics::counter!(HUB_EVENTS, "outcome" => outcome);
        Self {
            delivered: counter("delivered"),
            duplicate: counter("duplicate"),
            gap: counter("gap"),
            no_subscribers: counter("no_subscribers"),
        }
    }

    fn count(&self, delivery: Delivery) -> Delivery {
        match delivery {
            Delivery::Delivered => &self.delivered,
            Delivery::Duplicate => &self.duplicate,
            Delivery::Gap { .. } => &self.gap,
            Delivery::NoSubscribers => &self.no_subscribers,
        }
        .increment(1);
        delivery
    }
}

impl Hub {
    /// A hub whose connections queue up to `queue_len` events each.
    pub fn new(queue_len: usize, interest: mpsc::UnboundedSender<Interest>) -> Self {
        Self {
            users: DashMap::new(),
            tokens: DashMap::new(),
            next_id: AtomicU64::new(1),
            open: AtomicUsize::new(0),
            queue_len: queue_len.max(1),
            interest,
            outcomes: Outcomes::new(),
        }
    }

    /// Open connections.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Adds a connection of `user` authenticated with token `jti`.
    pub fn register(
        &self,
        user: Uuid,
        jti: Uuid,
    ) -> (ConnRef, mpsc::Receiver<Arc<Event>>, Arc<Control>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (queue, rx) = mpsc::channel(self.queue_len);
        let control = Arc::new(Control::default());
        let conn = ConnRef { user, id };
        let mut entry = self.users.entry(user).or_default();
        // Ids are taken before the lock, so a racing registration may have
        // pushed a later id first: insert in order.
        let at = entry.conns.partition_point(|c| c.id < id);
        entry.conns.insert(
            at,
            Conn {
                id,
                jti,
                queue,
                control: control.clone(),
                subscribed: false,
            },
        );
        drop(entry);
        self.tokens.entry(jti).or_default().insert(conn);
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!(CONNECTIONS).set(open as f64);
        (conn, rx, control)
    }

    /// Removes a connection (unsubscribing first).
    pub fn unregister(&self, conn: ConnRef, jti: Uuid) {
        self.set_subscribed(conn, false);
        if let dashmap::Entry::Occupied(mut entry) = self.users.entry(conn.user) {
            let conns = &mut entry.get_mut().conns;
            if let Ok(at) = conns.binary_search_by_key(&conn.id, |c| c.id) {
                conns.remove(at);
            }
            if entry.get().conns.is_empty() {
                entry.remove();
            }
        }
        self.forget_token(conn, jti);
        let open = self.open.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::gauge!(CONNECTIONS).set(open as f64);
    }

    fn forget_token(&self, conn: ConnRef, jti: Uuid) {
        if let dashmap::Entry::Occupied(mut entry) = self.tokens.entry(jti) {
            entry.get_mut().remove(&conn);
            if entry.get().is_empty() {
                entry.remove();
            }
        }
    }

    /// The connection now lives by another token (`AUTH`).
    pub fn change_token(&self, conn: ConnRef, old: Uuid, new: Uuid) {
        if old == new {
            return;
        }
        self.forget_token(conn, old);
        self.tokens.entry(new).or_default().insert(conn);
        if let Some(mut user) = self.users.get_mut(&conn.user) {
            if let Some(c) = user.find(conn.id) {
                c.jti = new;
            }
        }
    }

    /// Marks a connection (un)subscribed. When it is the user's first
    /// subscriber here, the channel is subscribed on Redis and the returned
    /// receiver completes once Redis confirmed (or is known to be down).
    pub fn set_subscribed(&self, conn: ConnRef, on: bool) -> Option<oneshot::Receiver<()>> {
        let mut user = self.users.get_mut(&conn.user)?;
        let before = user.subscribers();
        let c = user.find(conn.id)?;
        if c.subscribed == on {
            return None;
        }
        c.subscribed = on;
        if on {
            user.subscribed += 1;
        } else {
            user.subscribed -= 1;
        }
        metrics::gauge!(SUBSCRIBED).increment(if on { 1.0 } else { -1.0 });
        match (before, on) {
            (0, true) => {
                let (done, confirmed) = oneshot::channel();
                let _ = self.interest.send(Interest::Subscribe(conn.user, done));
                metrics::gauge!(CHANNELS).increment(1.0);
                Some(confirmed)
            }
            (1, false) => {
                user.last_seq = None;
                let _ = self.interest.send(Interest::Unsubscribe(conn.user));
                metrics::gauge!(CHANNELS).decrement(1.0);
                None
            }
            _ => None,
        }
    }

    /// Records a subscriber's starting point: it was told `seq` is the
    /// latest, so it needs every event after `seq`.
    ///
    /// The fan-out point only ever moves *down* here, never up: another
    /// subscriber of the user may still be waiting for events at or below
    /// `seq` that were committed but have not reached this node yet (a slow
    /// publish, Redis down, an api-node that died before publishing). Moving
    /// it up would drop those late events as duplicates for everyone. Moving
    /// it down at worst hands a subscriber an event it already has, which its
    /// session drops by seq.
    pub fn note_latest(&self, user: Uuid, seq: i64) {
        if let Some(mut user) = self.users.get_mut(&user) {
            if user.subscribers() > 0 {
                user.last_seq = Some(user.last_seq.map_or(seq, |last| last.min(seq)));
            }
        }
    }

    /// The last seq fanned out to `user`, if anyone is subscribed.
    pub fn last_seq(&self, user: Uuid) -> Option<i64> {
        self.users.get(&user).and_then(|u| u.last_seq)
    }

    /// Fans an event out to the user's subscribed connections, in seq order.
    /// With `allow_gap` the event goes out even when earlier ones are
    /// missing (history no longer has them; clients will resync). Each
    /// outcome is counted in `ws_hub_events_total`.
    pub fn deliver(&self, user: Uuid, event: &Arc<Event>, allow_gap: bool) -> Delivery {
        self.outcomes.count(self.fan_out(user, event, allow_gap))
    }

    fn fan_out(&self, user: Uuid, event: &Arc<Event>, allow_gap: bool) -> Delivery {
        let Some(mut entry) = self.users.get_mut(&user) else {
            return Delivery::NoSubscribers;
        };
        if entry.subscribers() == 0 {
            return Delivery::NoSubscribers;
        }
        match entry.last_seq {
            Some(last) if event.seq <= last => return Delivery::Duplicate,
            Some(last) if event.seq > last + 1 && !allow_gap => {
                return Delivery::Gap { after: last }
            }
            _ => {}
        }
        entry.last_seq = Some(event.seq);
        for conn in entry.conns.iter().filter(|c| c.subscribed) {
            match conn.queue.try_send(event.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // Too slow to keep up: close it rather than buffer more;
                    // it will reconnect and resume with `since`.
                    metrics::counter!(QUEUE_DROPS).increment(1);
                    if conn.control.code() == 0 {
                        metrics::counter!(SLOW_CLOSES).increment(1);
                    }
                    conn.control.close(close::POLICY);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        Delivery::Delivered
    }

    /// Closes every connection opened or refreshed with token `jti`.
    pub fn close_token(&self, jti: Uuid, code: u16) {
        let Some(conns) = self.tokens.get(&jti).map(|c| c.clone()) else {
            return;
        };
        for conn in conns {
            if let Some(user) = self.users.get(&conn.user) {
                for c in user
                    .conns
                    .iter()
                    .filter(|c| c.id == conn.id && c.jti == jti)
                {
                    c.control.close(code);
                }
            }
        }
    }

    /// Closes every connection living by a token `is_revoked` says is
    /// revoked; returns how many tokens that was. For when announcements
    /// of single revocations may have been missed (a lagging listener).
    pub fn close_revoked(&self, is_revoked: impl Fn(&Uuid) -> bool, code: u16) -> usize {
        // Collected first: closing looks tokens up again, and a shard's
        // read lock is not taken twice by one thread while a writer waits.
        let revoked: Vec<Uuid> = self
            .tokens
            .iter()
            .map(|entry| *entry.key())
            .filter(|jti| is_revoked(jti))
            .collect();
        for jti in &revoked {
            self.close_token(*jti, code);
        }
        revoked.len()
    }

    /// Closes every connection (shutdown).
    pub fn close_all(&self, code: u16) {
        for user in self.users.iter() {
            for conn in &user.conns {
                conn.control.close(code);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64) -> Arc<Event> {
        Arc::new(Event::new(
            seq,
            0,
            Utf8Bytes::from(format!("{{\"seq\":{seq}}}")),
        ))
    }

    fn hub(queue: usize) -> (Hub, mpsc::UnboundedReceiver<Interest>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Hub::new(queue, tx), rx)
    }

    #[tokio::test]
    async fn first_subscriber_subscribes_and_last_unsubscribes() {
        let (hub, mut broker) = hub(4);
        let user = Uuid::new_v4();
        let (a, _qa, _) = hub.register(user, Uuid::new_v4());
        let (b, _qb, _) = hub.register(user, Uuid::new_v4());
        assert!(hub.set_subscribed(a, true).is_some());
        assert!(hub.set_subscribed(b, true).is_none());
        assert!(matches!(broker.try_recv(), Ok(Interest::Subscribe(u, _)) if u == user));
        hub.set_subscribed(a, false);
        assert!(broker.try_recv().is_err());
        hub.unregister(b, Uuid::nil());
        assert!(matches!(broker.try_recv(), Ok(Interest::Unsubscribe(u)) if u == user));
    }

    #[tokio::test]
    async fn delivers_in_order_drops_duplicates_and_reports_gaps() {
        let (hub, _broker) = hub(8);
        let user = Uuid::new_v4();
        let (conn, mut queue, _) = hub.register(user, Uuid::new_v4());
        hub.set_subscribed(conn, true);
        hub.note_latest(user, 3);
        assert_eq!(hub.deliver(user, &event(3), false), Delivery::Duplicate);
        assert_eq!(hub.deliver(user, &event(4), false), Delivery::Delivered);
        assert_eq!(
            hub.deliver(user, &event(6), false),
            Delivery::Gap { after: 4 }
        );
        assert_eq!(hub.deliver(user, &event(5), false), Delivery::Delivered);
        assert_eq!(hub.deliver(user, &event(6), false), Delivery::Delivered);
        let seqs: Vec<i64> = std::iter::from_fn(|| queue.try_recv().ok())
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, [4, 5, 6]);
        assert_eq!(
            hub.deliver(Uuid::new_v4(), &event(1), false),
            Delivery::NoSubscribers
        );
    }

    #[tokio::test]
    async fn a_later_subscriber_never_moves_the_fan_out_point_past_a_late_event() {
        let (hub, _broker) = hub(8);
        let user = Uuid::new_v4();
        let (a, mut queue_a, _) = hub.register(user, Uuid::new_v4());
        hub.set_subscribed(a, true);
        hub.note_latest(user, 1);
        // Seq 2 is committed but late; B subscribes and reads 2 as the latest.
        let (b, mut queue_b, _) = hub.register(user, Uuid::new_v4());
        hub.set_subscribed(b, true);
        hub.note_latest(user, 2);
        assert_eq!(hub.deliver(user, &event(2), false), Delivery::Delivered);
        assert_eq!(hub.deliver(user, &event(3), false), Delivery::Delivered);
        let seqs = |q: &mut mpsc::Receiver<Arc<Event>>| {
            std::iter::from_fn(|| q.try_recv().ok())
                .map(|e| e.seq)
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs(&mut queue_a), [2, 3]);
        // B's session drops 2 itself (it was told 2 is the latest).
        assert_eq!(seqs(&mut queue_b), [2, 3]);
    }

    #[tokio::test]
    async fn subscribers_joining_together_start_from_the_lowest_point() {
        let (hub, _broker) = hub(8);
        let user = Uuid::new_v4();
        let (a, _qa, _) = hub.register(user, Uuid::new_v4());
        let (b, _qb, _) = hub.register(user, Uuid::new_v4());
        hub.set_subscribed(a, true);
        hub.set_subscribed(b, true);
        hub.note_latest(user, 6);
        hub.note_latest(user, 5);
        assert_eq!(hub.last_seq(user), Some(5));
        assert_eq!(hub.deliver(user, &event(6), false), Delivery::Delivered);
    }

    #[tokio::test]
    async fn a_full_queue_closes_the_connection_with_1008() {
        let (hub, _broker) = hub(1);
        let user = Uuid::new_v4();
        let (conn, _queue, control) = hub.register(user, Uuid::new_v4());
        hub.set_subscribed(conn, true);
        hub.note_latest(user, 0);
        hub.deliver(user, &event(1), false);
        assert_eq!(control.code(), 0);
        hub.deliver(user, &event(2), false);
        assert_eq!(control.code(), close::POLICY);
    }

    #[tokio::test]
    async fn closing_a_token_closes_only_its_connections() {
        let (hub, _broker) = hub(1);
        let user = Uuid::new_v4();
        let (jti_a, jti_b) = (Uuid::new_v4(), Uuid::new_v4());
        let (_, _qa, control_a) = hub.register(user, jti_a);
        let (b, _qb, control_b) = hub.register(user, jti_b);
        hub.close_token(jti_a, close::TOKEN);
        assert_eq!((control_a.code(), control_b.code()), (close::TOKEN, 0));
        let jti_c = Uuid::new_v4();
        hub.change_token(b, jti_b, jti_c);
        hub.close_token(jti_b, close::TOKEN);
        assert_eq!(control_b.code(), 0);
        hub.close_token(jti_c, close::TOKEN);
        assert_eq!(control_b.code(), close::TOKEN);
    }
}
