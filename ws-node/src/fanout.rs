//! The fan-out coordinator: takes events from the broker (the Redis pump)
//! and puts them through the hub (the registry of sockets) in each user's
//! seq order, filling gaps from history.
//!
//! Nothing here makes one user wait for another. An event that follows the
//! user's last fanned-out seq is delivered at once, on the pump's turn (a
//! few map lookups and queue pushes, no I/O). An event that finds a gap
//! opens a *lane* for its user: a task of that user's own fills the gap
//! from history while later events of that user wait in the lane, in order
//! and bounded; other users' events keep flowing past. After a user's
//! channel is subscribed again (Redis back, a cluster failover), the user
//! is caught up the same way, with at most
//! `PARALLEL_FILLS` (16) history lookups at once.

use std::sync::Arc;
use std::time::Duration;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use shared::background::Background;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::broker::EventSink;
use crate::history::{History, HistoryError, RESUME_WINDOW};
use crate::hub::{Delivery, Event, Hub};
use crate::metrics::{EVENTS_RECEIVED, GAP_FILLS, GAP_FILL_RUNS};

/// History lookups running at once (each may hold a database connection).
const PARALLEL_FILLS: usize = 16;
/// Events of one user held while their gap is filled. Past it, later
/// events are dropped here: they are in history, and the next gap fill
/// (or the socket's own) brings them back.
const MAX_WAITING: usize = 1024;
/// Tries of a history lookup that failed (PostgreSQL briefly away).
const FILL_TRIES: u32 = 3;

/// Puts the broker's events through the hub; see the module doc.
#[derive(Clone)]
pub struct Fanout {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Arc<Hub>,
    history: History,
    /// Users whose gap is being filled, by a task of their own.
    lanes: DashMap<Uuid, Lane>,
    /// Bounds the fills running at once.
    fills: Semaphore,
    /// Where fills run: tracked, and cut short when the node stops.
    background: Background,
    /// `ws_events_received_total`, looked up once.
    received: metrics::Counter,
}

/// One user's gap being filled.
struct Lane {
    /// Events that arrived meanwhile, in arrival order.
    waiting: Vec<Arc<Event>>,
    /// The fill must reach at least this seq (the seq before the first
    /// waiting event, or the latest committed one after a reconnect).
    target: i64,
}

impl Fanout {
    /// A coordinator over this hub and history.
    pub fn new(hub: Arc<Hub>, history: History, background: Background) -> Self {
        Self {
            inner: Arc::new(Inner {
                hub,
                history,
                lanes: DashMap::new(),
                fills: Semaphore::new(PARALLEL_FILLS),
                background,
                received: metrics::counter!(EVENTS_RECEIVED),
            }),
        }
    }

    /// Runs `task` in the background until it ends or the node stops.
    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let stop = self.inner.background.stopping();
        self.inner.background.spawn(async move {
            tokio::select! {
                _ = task => {}
                _ = stop.cancelled() => {}
            }
        });
    }

    /// Opens a lane for `user` (or widens an open one) and starts its fill.
    fn open_lane(&self, user: Uuid, target: i64, waiting: Option<Arc<Event>>) {
        match self.inner.lanes.entry(user) {
            Entry::Occupied(mut lane) => {
                let lane = lane.get_mut();
                lane.target = lane.target.max(target);
                if lane.waiting.len() < MAX_WAITING {
                    lane.waiting.extend(waiting);
                }
            }
            Entry::Vacant(vacant) => {
                vacant.insert(Lane {
                    waiting: waiting.into_iter().collect(),
                    target,
                });
                self.spawn(self.inner.clone().fill(user));
            }
        }
    }

    /// After (re)subscribing: brings these users up to their latest
    /// committed seq (one query for all of them, then a fill each).
    async fn catch_up(self, users: Vec<Uuid>) {
        let latest = match self.inner.history.latest_seqs(&users).await {
            Ok(latest) => latest,
            Err(err) => {
                // Each user's next event finds its gap and fills it.
                tracing::warn!(error = %err, "catch-up could not read latest seqs");
                return;
            }
        };
        for (user, latest) in latest {
            if self
                .inner
                .hub
                .last_seq(user)
                .is_some_and(|last| last < latest)
            {
                self.open_lane(user, latest, None);
            }
        }
    }
}

impl EventSink for Fanout {
    fn event(&self, user: Uuid, event: Arc<Event>) {
        self.inner.received.increment(1);
        // The hub lets through only the user's next seq, so an event may go
        // straight out even while a lane is open: whatever the lane still
        // waits for comes after it. Anything else waits in the lane.
        if let Delivery::Gap { .. } = self.inner.hub.deliver(user, &event, false) {
            self.open_lane(user, event.seq - 1, Some(event));
        }
    }

    fn resubscribed(&self, users: Vec<Uuid>) {
        self.spawn(self.clone().catch_up(users));
    }
}

impl Inner {
    /// A lane's task: fill from history up to the target, hand on what
    /// waited, and repeat while the waiting events show another gap.
    async fn fill(self: Arc<Self>, user: Uuid) {
        let _permit = self.fills.acquire().await;
        loop {
            let Some(target) = self.lanes.get(&user).map(|lane| lane.target) else {
                return;
            };
            let filled = match self.hub.last_seq(user) {
                Some(after) if after < target => self.fill_from_history(user, after, target).await,
                _ => true,
            };
            if self.drain(user, filled) {
                return;
            }
        }
    }

    /// Delivers the missing events `after < seq <= upto`; false when they
    /// could not be had (too many, no longer kept, or history unreachable).
    /// Counted in `ws_gap_fills_total{scope="user"}`.
    async fn fill_from_history(&self, user: Uuid, after: i64, upto: i64) -> bool {
        let filled = self.try_fill(user, after, upto).await;
        let result = if filled { "filled" } else { "failed" };
        metrics::counter!(GAP_FILL_RUNS, "scope" => "user", "result" => result).increment(1);
        filled
    }

    async fn try_fill(&self, user: Uuid, after: i64, upto: i64) -> bool {
        if upto - after > RESUME_WINDOW {
            tracing::warn!(%user, after, upto, "gap too large to fill; clients resync");
            return false;
        }
        for attempt in 1..=FILL_TRIES {
            // From where the hub is now: a failed try may have delivered
            // its first pages.
            let from = self.hub.last_seq(user).unwrap_or(after);
            match self.deliver_pages(user, from, upto).await {
                Ok(()) => return true,
                Err(HistoryError::Gone) => {
                    tracing::warn!(%user, after, upto, "gap no longer in history");
                    return false;
                }
                Err(err) => {
                    tracing::warn!(error = %err, %user, attempt, "could not fill a gap");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
        false
    }

    /// Delivers `after < seq <= upto` from history a page at a time, each
    /// page handed on before the next is read (history.rs), so a fill holds
    /// one page, not the whole gap.
    async fn deliver_pages(&self, user: Uuid, after: i64, upto: i64) -> Result<(), HistoryError> {
        let mut pages = self.history.pages(user, after, upto);
        while let Some(page) = pages.next().await? {
            metrics::counter!(GAP_FILLS).increment(page.len() as u64);
            for text in page {
                if let Some(event) = Event::from_text(text) {
                    self.hub.deliver(user, &event, false);
                }
            }
        }
        Ok(())
    }

    /// Hands on the waiting events in order. True when the lane is done
    /// (and removed); false when a waiting event shows a further gap, or
    /// an event arrived while finishing, and another round is needed.
    fn drain(&self, user: Uuid, filled: bool) -> bool {
        let Some(mut lane) = self.lanes.get_mut(&user) else {
            return true;
        };
        // When the gap could not be filled, the first waiting event goes
        // out over it (its sockets try their own fill, else clients resync).
        let mut allow_gap = !filled;
        let mut waiting = std::mem::take(&mut lane.waiting);
        // Two api-nodes may publish a user's events out of seq order.
        waiting.sort_by_key(|event| event.seq);
        for (at, event) in waiting.iter().enumerate() {
            if let Delivery::Gap { .. } = self.hub.deliver(user, event, allow_gap) {
                lane.target = lane.target.max(event.seq - 1);
                lane.waiting = waiting[at..].to_vec();
                return false;
            }
            allow_gap = false;
        }
        let behind = filled
            && self
                .hub
                .last_seq(user)
                .is_some_and(|last| last < lane.target);
        if behind {
            return false;
        }
        drop(lane);
        // Only an empty lane goes: an event the pump added since is handed
        // on in one more round.
        self.lanes
            .remove_if(&user, |_, lane| lane.waiting.is_empty())
            .is_some()
    }
}
