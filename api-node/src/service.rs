//! One request, start to finish: request id, tracing span, dispatch,
//! error mapping, metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::{header, HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;
use tracing::Instrument;

use crate::error::ApiError;
use crate::handlers;
use crate::metrics::{HTTP_DURATION, HTTP_REQUESTS};
use crate::router::Route;
use crate::state::AppState;
use crate::web::{BodyDeadline, Resp};

const REQUEST_ID: &str = "x-request-id";

/// A request whose body did not arrive within `BODY_READ_TIMEOUT_SECS`:
/// the connection is closed without an answer (as nginx and the header read
/// timeout do), so a client trickling its body holds nothing for longer.
#[derive(Debug, thiserror::Error)]
#[error("request body not received in time; connection closed")]
pub struct BodyTimedOut;

/// Answers one request: every error becomes the contract's response, except
/// a body that did not arrive in time, which closes the connection.
pub async fn handle(
    state: Arc<AppState>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Resp, BodyTimedOut> {
    let started = Instant::now();
    req.extensions_mut()
        .insert(BodyDeadline(started + state.config.body_read_timeout));
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .filter(|v| v.len() <= 64 && v.to_str().is_ok_and(|s| !s.is_empty()))
        .cloned()
        .unwrap_or_else(new_request_id);
    let method = req.method().clone();
    let route = Route::resolve(req.uri().path());
    let label = route.as_ref().map_or("unmatched", Route::label);
    let span = tracing::info_span!(
        "request",
        id = request_id.to_str().unwrap_or("-"),
        method = %method,
        route = label
    );
    let outcome = async {
        let outcome = match handlers::dispatch(&state, route, req, peer).await {
            Ok(response) => Ok(response),
            Err(ApiError::BodyTimeout) => Err(BodyTimedOut),
            Err(err) => Ok(err.into_response()),
        };
        let status = outcome
            .as_ref()
            .map_or(StatusCode::REQUEST_TIMEOUT, Resp::status);
        tracing::debug!(
            status = status.as_u16(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "answered"
        );
        outcome
    }
    .instrument(span)
    .await;
    let status = outcome
        .as_ref()
        .map_or(StatusCode::REQUEST_TIMEOUT, Resp::status);
    let method = method_label(&method);
    metrics::counter!(HTTP_REQUESTS, "route" => label, "method" => method, "status" => status_label(status)).increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => label, "method" => method)
        .record(started.elapsed().as_secs_f64());
    let mut response = outcome?;
    response.headers_mut().insert(REQUEST_ID, request_id);
    if state.draining.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// A request id unique across nodes and restarts without a system call
/// per request: 64 random bits drawn once per process, then a counter.
fn new_request_id() -> HeaderValue {
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let process = *PROCESS.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    HeaderValue::try_from(format!("{process:016x}{n:016x}")).expect("BUG: hex is a valid header")
}

/// The `method` label: the standard methods by name, anything else (any
/// client can send `AAAB`) as `OTHER`, so the series stay few.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// The `status` label: the statuses this node answers with (the contract's,
/// and 408 for a body that timed out), anything else as `other`.
pub fn status_label(status: StatusCode) -> &'static str {
    const KNOWN: [&str; 15] = [
        "200", "201", "204", "400", "401", "404", "405", "408", "409", "412", "413", "415", "429",
        "500", "503",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == status.as_str())
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
