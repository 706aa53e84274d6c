//! Prometheus metrics: the one place that names them, and the recorder.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

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

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder (installed on first use: tests run several
/// nodes in one process, and there is one global recorder).
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(HTTP_DURATION.to_owned()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    ],
                )
                .expect("BUG: bucket list is not empty")
                .install_recorder()
                .expect("BUG: a metrics recorder was already installed");
            // Histograms keep raw samples until upkeep folds them; without
            // it they grow without bound.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                })
                .expect("BUG: cannot spawn the metrics upkeep thread");
            handle
        })
        .clone()
}

/// Records the pool's state; called when metrics are scraped.
pub fn record_pool(pool: &deadpool_postgres::Pool) {
    let status = pool.status();
    let idle = status.available as f64;
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(idle);
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(status.size as f64 - idle);
    metrics::gauge!(DB_POOL_MAX).set(status.max_size as f64);
}
