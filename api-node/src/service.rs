//! One request, start to finish: request id, tracing span, dispatch,
//! error mapping, metrics.

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::Instant;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::{header, HeaderValue, Request, StatusCode};
use hyper::body::Incoming;
use tracing::Instrument;

use crate::error::ApiError;
use crate::handlers;
use crate::http_series::{self, UNMATCHED};
use crate::router::Route;
use crate::state::AppState;
use crate::web::Resp;

/// A constant, so the name is checked once, not on every request.
const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// A request whose body did not arrive within `BODY_READ_TIMEOUT_SECS`:
/// the connection is closed without an answer (as nginx and the header read
/// timeout do), so a client trickling its body holds nothing for longer.
#[derive(Debug, thiserror::Error)]
#[error("request body not received in time; connection closed")]
pub struct BodyTimedOut;

/// Answers one request: every error becomes the contract's response, except
/// a body that did not arrive in time, which closes the connection.
pub async fn handle(
    state: &AppState,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Resp, BodyTimedOut> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| v.len() <= 64 && v.to_str().is_ok_and(|s| !s.is_empty()))
        .cloned()
        .unwrap_or_else(new_request_id);
    let method = req.method().clone();
    let route = Route::resolve(req.uri().path());
    let label = route.as_ref().map_or(UNMATCHED, Route::label);
    // Every request's span is a debug one: at `info` (the deployed level)
    // an enabled span per request cost ~40% more instructions per cached
    // read, and almost no request logs anything. The lines a failed
    // request logs at `info` and above still carry its id: see below.
    macro_rules! request_span {
        ($level:expr) => {
            tracing::span!(
                $level,
                "request",
                id = request_id.to_str().unwrap_or("-"),
                method = %method,
                route = label
            )
        };
    }
    let span = request_span!(tracing::Level::DEBUG);
    // The handler's future is instrumented directly, not wrapped in an
    // async block first: that would hold it twice (see `handlers::boxed`).
    // Instrumenting moves it whole, for nothing when the span is disabled.
    let handled = if span.is_disabled() {
        handlers::dispatch(state, route, req, peer).await
    } else {
        handlers::dispatch(state, route, req, peer)
            .instrument(span.clone())
            .await
    };
    let (outcome, status) = span.in_scope(|| {
        let outcome = match handled {
            Ok(response) => Ok(response),
            Err(ApiError::BodyTimeout) => Err(BodyTimedOut),
            // The 500 or 503 it logs, in a span of its own (enabled at
            // any level) when the request's is off: the line names it.
            Err(err) if err.is_logged() && span.is_disabled() => {
                Ok(request_span!(tracing::Level::ERROR).in_scope(|| err.into_response()))
            }
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
        (outcome, status)
    });
    http_series::record(label, &method, status, started.elapsed().as_secs_f64());
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
/// per request: 64 random bits drawn once per process, then a number
/// unique within the process.
fn new_request_id() -> HeaderValue {
    // The process's half, written as hex once.
    static PROCESS: OnceLock<[u8; 16]> = OnceLock::new();
    let process = PROCESS.get_or_init(|| {
        let mut hex = [0u8; 16];
        hex_into(&mut hex, uuid::Uuid::new_v4().as_u64_pair().0);
        hex
    });
    let mut id = [0u8; 32];
    id[..16].copy_from_slice(process);
    hex_into(&mut id[16..], next_request_number());
    HeaderValue::from_bytes(&id).expect("BUG: hex is a valid header")
}

/// Numbers unique within the process. Each thread takes a block of them at
/// a time, so the worker threads do not contend for one shared counter on
/// every request.
fn next_request_number() -> u64 {
    const BLOCK: u64 = 1 << 16;
    static NEXT_BLOCK: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static RANGE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    RANGE.with(|range| {
        let (mut next, mut end) = range.get();
        if next == end {
            next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
            end = next + BLOCK;
        }
        range.set((next + 1, end));
        next
    })
}

/// Writes `value` as 16 lower-case hex digits.
fn hex_into(out: &mut [u8], value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = DIGITS[(value >> (60 - 4 * i) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_32_hex_digits_and_distinct() {
        let mut digits = [0u8; 16];
        hex_into(&mut digits, 0x0123_4567_89ab_cdef);
        assert_eq!(&digits, b"0123456789abcdef");
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), 32);
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit), "{id:?}");
        }
    }

    #[test]
    fn request_numbers_are_unique_across_threads() {
        let take = || (0..3).map(|_| next_request_number()).collect::<Vec<_>>();
        let mut all: Vec<u64> = std::thread::scope(|scope| {
            let others: Vec<_> = (0..3).map(|_| scope.spawn(take)).collect();
            let mut all = take();
            for other in others {
                all.extend(other.join().unwrap());
            }
            all
        });
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 12);
    }
}
