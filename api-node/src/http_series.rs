//! The per-request metric series (`http_requests_total` by route, method and
//! status; `http_request_duration_seconds` by route and method), with their
//! handles looked up once per label set instead of on every request: the
//! registry's lookup builds, hashes and compares the labels each time, a
//! couple of percent of a cached read's CPU.
//!
//! Every label has a fixed set of values (any client can send any method
//! or path), so the handles fit a table indexed by label position.

use std::sync::OnceLock;

use http::{Method, StatusCode};
use metrics::{Counter, Histogram};

use crate::metrics::{HTTP_DURATION, HTTP_REQUESTS};

/// The `route` label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// The values of the `route` label: every route's, and [`UNMATCHED`].
const ROUTES: [&str; 11] = [
    "/api/auth/register",
    "/api/auth/login",
    "/api/auth/logout",
    "/api/profile",
    "/api/tasks",
    "/api/tasks/:id",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    UNMATCHED,
];

/// The values of the `method` label: the standard methods by name,
/// anything else (any client can send `AAAB`) as `OTHER`.
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];

/// The values of the `status` label: the statuses this node answers with
/// (the contract's, and 408 for a body that timed out), anything else as
/// `other`.
const STATUSES: [&str; 16] = [
    "200", "201", "204", "400", "401", "404", "405", "408", "409", "412", "413", "415", "429",
    "500", "503", "other",
];

/// One request's series, by label positions.
type Slot = OnceLock<(Counter, Histogram)>;

static SLOTS: [Slot; ROUTES.len() * METHODS.len() * STATUSES.len()] =
    [const { OnceLock::new() }; ROUTES.len() * METHODS.len() * STATUSES.len()];

/// Counts one answered request and records how long it took.
pub fn record(route: &'static str, method: &Method, status: StatusCode, seconds: f64) {
    let (r, m, s) = (
        position(&ROUTES, route),
        method_position(method),
        position(&STATUSES, status.as_str()),
    );
    let (counter, histogram) = SLOTS[(r * METHODS.len() + m) * STATUSES.len() + s]
        .get_or_init(|| {
            let (route, method) = (ROUTES[r], METHODS[m]);
            (
                metrics::counter!(HTTP_REQUESTS, "route" => route, "method" => method, "status" => STATUSES[s]),
                metrics::histogram!(HTTP_DURATION, "route" => route, "method" => method),
            )
        });
    counter.increment(1);
    histogram.record(seconds);
}

/// Where `value` is in `labels`, or the last label (the catch-all) if not.
fn position(labels: &[&str], value: &str) -> usize {
    labels
        .iter()
        .position(|label| *label == value)
        .unwrap_or(labels.len() - 1)
}

fn method_position(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

/// The `method` label of a request.
pub fn method_label(method: &Method) -> &'static str {
    METHODS[method_position(method)]
}

/// The `status` label of a response.
pub fn status_label(status: StatusCode) -> &'static str {
    STATUSES[position(&STATUSES, status.as_str())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::Route;

    #[test]
    fn labels_have_a_fixed_set_of_values() {
        for raw in ["AAAB", "get", "PROPFIND", "X-Y"] {
            let method = Method::from_bytes(raw.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "OTHER", "{raw}");
        }
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        assert_eq!(status_label(StatusCode::IM_A_TEAPOT), "other");
        for status in [
            200, 201, 204, 400, 401, 404, 405, 408, 409, 412, 413, 415, 429, 500, 503,
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(status_label(status), status.as_str());
        }
    }

    #[test]
    fn every_route_has_its_own_label() {
        for (label, _) in Route::table() {
            let at = position(&ROUTES, label);
            assert_eq!(ROUTES[at], label, "{label} is missing from ROUTES");
        }
        assert_eq!(ROUTES.len(), Route::table().len() + 1);
    }
}
