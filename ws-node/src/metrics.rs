//! Prometheus metrics of the ws-node: the one place that names them (those
//! both node kinds export, such as `dependency_up`, are named in
//! `shared::metrics`).

shared::metric_names! {
    /// Open WebSocket connections.
    CONNECTIONS = "ws_connections_open";
    /// Users whose channel this node is subscribed to on Redis.
    CHANNELS = "ws_redis_channels";
    /// Connections subscribed to their tasks.
    SUBSCRIBED = "ws_subscribed_connections";
    /// Client messages received.
    MESSAGES_IN = "ws_messages_in_total";
    /// Messages sent to clients.
    MESSAGES_OUT = "ws_messages_out_total";
    /// Events that did not fit a connection's queue.
    QUEUE_DROPS = "ws_queue_drops_total";
    /// Connections closed for reading too slowly.
    SLOW_CLOSES = "ws_slow_consumer_closes_total";
    /// Closes by `code`.
    CLOSES = "ws_closes_total";
    /// Seconds from an event's commit to its send on a socket.
    FANOUT_LATENCY = "ws_fanout_latency_seconds";
    /// Events fetched from history to fill a gap.
    GAP_FILLS = "ws_gap_fill_events_total";
    /// The most sockets this node accepts (`WS_MAX_CONNECTIONS`).
    MAX_CONNECTIONS = "ws_connections_max";
    /// Events that arrived from Redis (each once, however many sockets get it).
    EVENTS_RECEIVED = "ws_events_received_total";
    /// Events the hub was handed (from Redis or history), by `outcome`
    /// ([`HUB_OUTCOMES`]): `delivered` to the user's subscribed sockets here,
    /// `duplicate` (already delivered), `gap` (held until history fills the
    /// gap before it), `no_subscribers`.
    HUB_EVENTS = "ws_hub_events_total";
    /// Gaps filled from history, by `scope` (`user`: for all of a user's
    /// sockets here, by the fan-out; `socket`: by one session for itself) and
    /// `result` (`filled`, `failed`: too large, no longer kept, or history out
    /// of reach, so clients see the gap and resync).
    GAP_FILL_RUNS = "ws_gap_fills_total";
    /// `RESYNC_REQUIRED` answers to a resume, by `reason` ([`RESYNC_REASONS`]).
    RESYNCS = "ws_resync_required_total";
}

/// The values of the `outcome` label of [`HUB_EVENTS`].
pub const HUB_OUTCOMES: [&str; 4] = ["delivered", "duplicate", "gap", "no_subscribers"];
/// The values of the `reason` label of [`RESYNCS`]: `since` above the
/// latest seq, more than 1,000 events missed, the first missed older than
/// 24 hours, events no longer kept, history out of reach.
pub const RESYNC_REASONS: [&str; 5] = ["ahead", "too_many", "too_old", "gone", "unavailable"];

/// Registers every counter and gauge at zero, so dashboards and alerts see
/// a series (at 0) from the start instead of none until the first event.
pub fn register() {
    for name in [
        MESSAGES_IN,
        MESSAGES_OUT,
        QUEUE_DROPS,
        SLOW_CLOSES,
        GAP_FILLS,
    ] {
        metrics::counter!(name).absolute(0);
    }
    for name in [CONNECTIONS, CHANNELS, SUBSCRIBED] {
        metrics::gauge!(name).set(0.0);
    }
    for code in ["1000", "1001", "1008", "1009", "4001"] {
        metrics::counter!(CLOSES, "code" => code).absolute(0);
    }
    metrics::counter!(EVENTS_RECEIVED).absolute(0);
    for outcome in HUB_OUTCOMES {
        metrics::counter!(HUB_EVENTS, "outcome" => outcome).absolute(0);
    }
    for scope in ["user", "socket"] {
        for result in ["filled", "failed"] {
            metrics::counter!(GAP_FILL_RUNS, "scope" => scope, "result" => result).absolute(0);
        }
    }
    for reason in RESYNC_REASONS {
        metrics::counter!(RESYNCS, "reason" => reason).absolute(0);
    }
    shared::metrics::register();
}

/// Records the node's socket cap.
pub fn record_max_connections(max: usize) {
    metrics::gauge!(MAX_CONNECTIONS).set(max as f64);
}
