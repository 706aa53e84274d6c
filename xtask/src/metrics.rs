//! The metric names the nodes export, from their own catalogues, and the
//! series Prometheus makes itself.

use std::collections::BTreeSet;

/// Every metric name the nodes export, with the kinds of node that export
/// it (the shared ones, both).
pub fn exported_by() -> Vec<(&'static str, &'static [&'static str])> {
    let catalogues: [(&[&str], &'static [&'static str]); 3] = [
        (shared::metrics::ALL, &["api-node", "ws-node"]),
        (api_node::metrics::ALL, &["api-node"]),
        (ws_node::metrics::ALL, &["ws-node"]),
    ];
    catalogues
        .into_iter()
        .flat_map(|(names, kinds)| names.iter().map(move |name| (*name, kinds)))
        .collect()
}

/// Every metric name an api-node or a ws-node exports.
pub fn exported() -> BTreeSet<&'static str> {
    exported_by().into_iter().map(|(name, _)| name).collect()
}

/// Series Prometheus itself makes: targets' `up`, and the firing alerts.
pub const PROMETHEUS_OWN: [&str; 3] = ["up", "ALERTS", "ALERTS_FOR_STATE"];

/// The exported metric `name` reads (a histogram's `_bucket`, `_sum` and
/// `_count` series are its own), or `None`.
pub fn base_name<'a>(name: &str, known: &BTreeSet<&'a str>) -> Option<&'a str> {
    if let Some(found) = known.get(name) {
        return Some(found);
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .and_then(|base| known.get(base).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_every_node_and_histogram_series() {
        let known = exported();
        assert!(known.contains("http_requests_total"));
        assert!(known.contains("ws_connections_open"));
        assert!(known.contains("dependency_up"));
        assert_eq!(
            base_name("http_request_duration_seconds_bucket", &known),
            Some("http_request_duration_seconds")
        );
        assert_eq!(base_name("http_requests", &known), None);
        assert_eq!(base_name("nope_bucket", &known), None);
    }
}
