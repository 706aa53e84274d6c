//! Health, readiness, metrics and the OpenAPI document.

use bytes::Bytes;
use http::StatusCode;
use serde_json::json;

use crate::state::AppState;
use crate::web::{self, Resp};

/// The OpenAPI document kept in the repository.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// `GET /healthz`: the process is alive.
pub fn healthz() -> Resp {
    web::json(StatusCode::OK, &json!({ "status": "ok" }))
}

/// `GET /readyz`: PostgreSQL and Redis both answer.
pub async fn readyz(state: &AppState) -> Resp {
    shared::node_http::readyz(&state.pool, &state.redis).await
}

/// `GET /metrics`: Prometheus text format, with the pool's state as of now.
pub fn metrics(state: &AppState) -> Resp {
    crate::metrics::record_pool(&state.pool);
    shared::node_http::metrics(&state.metrics)
}

/// `GET /openapi.json`.
pub fn openapi() -> Resp {
    web::json_bytes(StatusCode::OK, Bytes::from_static(OPENAPI.as_bytes()))
}
