//! Prometheus metrics: the one place that names them.

/// Requests answered, by `route`, `method` and `status`.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// Request latency in seconds, by `route` and `method`.
pub const HTTP_DURATION: &str = "http_request_duration_seconds";
/// Cache lookups, by `result` (`hit`, `miss`).
pub const CACHE_LOOKUPS: &str = "cache_lookups_total";
/// Events put on Redis (write path and relay).
pub const EVENTS_PUBLISHED: &str = "events_published_total";
/// Pipelines that failed to reach Redis.
pub const EVENT_PUBLISH_FAILURES: &str = "event_publish_failures_total";
/// Events the relay republished.
pub const EVENTS_RELAYED: &str = "events_relayed_total";
/// Database connections, by `state` (`in_use`, `idle`), and the pool's max.
pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";
/// The pool's maximum size.
pub const DB_POOL_MAX: &str = "db_pool_max_connections";
/// Password hashes running now.
pub const HASHES_RUNNING: &str = "password_hashes_running";
/// Hashes refused because the hash queue was full (answered 503).
pub const HASHES_REFUSED: &str = "password_hashes_refused_total";

/// Records the pool's state; called when metrics are scraped.
pub fn record_pool(pool: &deadpool_postgres::Pool) {
    let status = pool.status();
    let idle = status.available as f64;
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(idle);
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(status.size as f64 - idle);
    metrics::gauge!(DB_POOL_MAX).set(status.max_size as f64);
}

/// Registers every counter and gauge at zero, so dashboards and alerts see
/// a series (at 0) from the start instead of none until the first event.
pub fn register() {
    for name in [
        EVENTS_PUBLISHED,
        EVENT_PUBLISH_FAILURES,
        EVENTS_RELAYED,
        HASHES_REFUSED,
    ] {
        metrics::counter!(name).absolute(0);
    }
    metrics::counter!(CACHE_LOOKUPS, "result" => "hit").absolute(0);
    metrics::counter!(CACHE_LOOKUPS, "result" => "miss").absolute(0);
    metrics::gauge!(HASHES_RUNNING).set(0.0);
}
