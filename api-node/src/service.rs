//! One request, start to finish: request id, tracing span, dispatch,
//! error mapping, metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use std::sync::atomic::Ordering;

use http::{header, HeaderValue, Request};
use hyper::body::Incoming;
use tracing::Instrument;

use crate::handlers;
use crate::metrics::{HTTP_DURATION, HTTP_REQUESTS};
use crate::router::Route;
use crate::state::AppState;
use crate::web::Resp;

const REQUEST_ID: &str = "x-request-id";

/// Answers one request; never fails (errors become responses).
pub async fn handle(state: Arc<AppState>, req: Request<Incoming>, peer: SocketAddr) -> Resp {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .filter(|v| v.len() <= 64 && v.to_str().is_ok_and(|s| !s.is_empty()))
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .expect("BUG: a UUID is a valid header")
        });
    let method = req.method().clone();
    let route = Route::resolve(req.uri().path());
    let label = route.as_ref().map_or("unmatched", Route::label);
    let span = tracing::info_span!(
        "request",
        id = request_id.to_str().unwrap_or("-"),
        method = %method,
        route = label
    );
    let mut response = async {
        let response = match handlers::dispatch(&state, route, req, peer).await {
            Ok(response) => response,
            Err(err) => err.into_response(),
        };
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "answered"
        );
        response
    }
    .instrument(span)
    .await;
    response.headers_mut().insert(REQUEST_ID, request_id);
    if state.draining.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "route" => label, "method" => method.to_string(), "status" => status).increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => label, "method" => method.to_string())
        .record(started.elapsed().as_secs_f64());
    response
}
