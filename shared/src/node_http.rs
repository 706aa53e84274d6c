//! What the HTTP front of every node kind has in common: taking the next
//! connection, JSON and error responses, `/readyz` and `/metrics`. Each
//! node keeps its own routing and connection handling (the api-node caps
//! and drains connections, the ws-node upgrades them).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use deadpool_postgres::Pool;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::error_body::{ErrorBody, FieldError};
use crate::redis_conn::RedisConn;

/// A complete response.
pub type Resp = Response<Full<Bytes>>;

/// The next connection, with Nagle's algorithm off (responses and events
/// are small and latency-bound). A failed accept (out of descriptors,
/// usually) is logged and retried after a pause instead of spinning.
pub async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return (stream, peer);
            }
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A JSON response from bytes that are JSON.
pub fn json_bytes(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The contract's error response: `{ statusCode, error, code, message,
/// details? }` with that status.
pub fn error(
    status: StatusCode,
    code: &str,
    message: &str,
    details: Option<&[FieldError]>,
) -> Resp {
    let body = ErrorBody {
        status_code: status.as_u16(),
        error: status.canonical_reason().unwrap_or("Error"),
        code,
        message,
        details,
    }
    .to_json();
    json_bytes(status, body)
}

/// The 503 of a node that cannot serve now.
pub fn unavailable() -> Resp {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
        "the service is temporarily unavailable",
        None,
    )
}

/// `GET /readyz`: 200 when PostgreSQL and Redis both answer, else 503
/// (the answers also go to `dependency_up`).
pub async fn readyz(pool: &Pool, redis: &RedisConn) -> Resp {
    let readiness = crate::health::check(pool, redis).await;
    if readiness.ready() {
        let body = json!({ "status": "ok", "postgres": "up", "redis": "up" });
        json_bytes(StatusCode::OK, body.to_string())
    } else {
        tracing::warn!(
            postgres = readiness.postgres,
            redis = readiness.redis,
            "not ready"
        );
        unavailable()
    }
}

/// `GET /metrics`: the process's metrics in Prometheus text format.
pub fn metrics(handle: &PrometheusHandle) -> Resp {
    let mut response = Response::new(Full::new(Bytes::from(handle.render())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
