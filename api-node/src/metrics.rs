//! Prometheus metrics: the one place that names them (those both node
//! kinds export, such as `dependency_up`, are named in `shared::metrics`).

use std::sync::LazyLock;

use metrics::Counter;

shared::metric_names! {
    /// Requests answered, by `route`, `method` and `status`.
    HTTP_REQUESTS = "http_requests_total";
    /// Request latency in seconds, by `route` and `method`.
    HTTP_DURATION = "http_request_duration_seconds";
    /// Cache lookups, by `result` (`hit`, `miss`).
    CACHE_LOOKUPS = "cache_lookups_total";
    /// Events put on Redis (write path and relay).
    EVENTS_PUBLISHED = "events_published_total";
    /// Pipelines that failed to reach Redis.
    EVENT_PUBLISH_FAILURES = "event_publish_failures_total";
    /// Events the relay republished.
    EVENTS_RELAYED = "events_relayed_total";
    /// Database connections, by `state` (`in_use`, `idle`), and the pool's max.
    DB_POOL_CONNECTIONS = "db_pool_connections";
    /// The pool's maximum size.
    DB_POOL_MAX = "db_pool_max_connections";
    /// Password hashes running now.
    HASHES_RUNNING = "password_hashes_running";
    /// Hashes refused because the hash queue was full (answered 503).
    HASHES_REFUSED = "password_hashes_refused_total";
    /// Seconds a hash waited in the queue for a hashing thread.
    HASH_QUEUE_WAIT = "password_hash_queue_wait_seconds";
    /// Login and registration attempts answered 429, by `limit`
    /// ([`RATE_LIMITS`]): the limit that decided the wait.
    RATE_LIMITED = "auth_rate_limited_total";
    /// Age in seconds of the oldest committed event not yet on Redis (the
    /// relay's backlog), read from PostgreSQL by the relay each round; 0 when
    /// there is none. The same for every api-node (one outbox).
    OUTBOX_BACKLOG_AGE = "outbox_oldest_unpublished_age_seconds";
}

/// The values of the `limit` label of [`RATE_LIMITED`].
pub const RATE_LIMITS: [&str; 3] = ["login_email", "login_client", "register_client"];

/// Counts a cache lookup of a task (handles looked up once: every cached
/// read counts one).
pub fn count_cache_lookup(hit: bool) {
    static HIT: LazyLock<Counter> =
        LazyLock::new(|| metrics::counter!(CACHE_LOOKUPS, "result" => "hit"));
    static MISS: LazyLock<Counter> =
        LazyLock::new(|| metrics::counter!(CACHE_LOOKUPS, "result" => "miss"));
    if hit { &HIT } else { &MISS }.increment(1);
}

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
    for limit in RATE_LIMITS {
        metrics::counter!(RATE_LIMITED, "limit" => limit).absolute(0);
    }
    metrics::gauge!(HASHES_RUNNING).set(0.0);
    metrics::gauge!(OUTBOX_BACKLOG_AGE).set(0.0);
    // A histogram is registered by naming it: its buckets show at 0.
    let _ = metrics::histogram!(HASH_QUEUE_WAIT);
    shared::metrics::register();
}
