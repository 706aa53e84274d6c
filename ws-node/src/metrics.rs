//! Prometheus metrics of the ws-node: the one place that names them.

/// Open WebSocket connections.
pub const CONNECTIONS: &str = "ws_connections_open";
/// Users whose channel this node is subscribed to on Redis.
pub const CHANNELS: &str = "ws_redis_channels";
/// Connections subscribed to their tasks.
pub const SUBSCRIBED: &str = "ws_subscribed_connections";
/// Client messages received.
pub const MESSAGES_IN: &str = "ws_messages_in_total";
/// Messages sent to clients.
pub const MESSAGES_OUT: &str = "ws_messages_out_total";
/// Events that did not fit a connection's queue.
pub const QUEUE_DROPS: &str = "ws_queue_drops_total";
/// Connections closed for reading too slowly.
pub const SLOW_CLOSES: &str = "ws_slow_consumer_closes_total";
/// Closes by `code`.
pub const CLOSES: &str = "ws_closes_total";
/// Seconds from an event's commit to its send on a socket.
pub const FANOUT_LATENCY: &str = "ws_fanout_latency_seconds";
/// Events fetched from history to fill a gap.
pub const GAP_FILLS: &str = "ws_gap_fill_events_total";

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
}
