//! Health, readiness, metrics and the OpenAPI document.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::Full;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;
use crate::web::{self, Resp};

/// The OpenAPI document kept in the repository.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// `GET /healthz`: the process is alive.
pub fn healthz() -> Resp {
    web::json(StatusCode::OK, &json!({ "status": "ok" }))
}

/// `GET /readyz`: PostgreSQL and Redis both answer (the answers also go
/// to `dependency_up`).
pub async fn readyz(state: &AppState) -> Result<Resp, ApiError> {
    let readiness = shared::health::check(&state.pool, &state.redis).await;
    let (postgres, redis) = (readiness.postgres, readiness.redis);
    if readiness.ready() {
        Ok(web::json(
            StatusCode::OK,
            &json!({ "status": "ok", "postgres": "up", "redis": "up" }),
        ))
    } else {
        Err(ApiError::Unavailable(format!(
            "readiness: postgres up={postgres}, redis up={redis}"
        )))
    }
}

/// `GET /metrics`: Prometheus text format.
pub fn metrics(state: &AppState) -> Resp {
    crate::metrics::record_pool(&state.pool);
    let mut response = Resp::new(Full::new(Bytes::from(state.metrics.render())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// `GET /openapi.json`.
pub fn openapi() -> Resp {
    web::json_bytes(StatusCode::OK, Bytes::from_static(OPENAPI.as_bytes()))
}
