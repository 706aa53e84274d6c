//! The process's Prometheus recorder. One per process (the `metrics` crate
//! has one global recorder), shared by whichever node runs in it: tests run
//! api-nodes and ws-nodes side by side.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets (seconds) for every `*_seconds` histogram: fine at the
/// millisecond end, where this system's latencies live.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The recorder's handle, installing it on first use.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
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
