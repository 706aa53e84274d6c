//! The HTTP front of the node: `/ws/updates` (authenticated before the
//! upgrade), `/healthz`, `/readyz`, `/metrics`. Upgrades go through hyper
//! and the socket is then handed to tokio-tungstenite.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use shared::error_body::FieldError;
use shared::jwt::{bearer_token, Claims, TokenError};
use shared::node_http::{self, error, json_bytes, Resp};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::deflate;
use crate::inflating_stream::SocketIo;
use crate::session;
use crate::state::NodeState;

/// `Retry-After` of a refusal at the per-user cap: a place frees only when
/// one of the user's sockets closes, so an immediate retry is pointless.
const RETRY_AFTER_SECS: &str = "10";

/// Answers one HTTP request.
pub async fn handle(state: Arc<NodeState>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path();
    let get = req.method() == Method::GET;
    match path {
        "/ws/updates" if get => upgrade(state, req),
        "/healthz" if get => json_bytes(StatusCode::OK, json!({ "status": "ok" }).to_string()),
        "/readyz" if get => node_http::readyz(&state.pool, &state.redis).await,
        "/metrics" if get => node_http::metrics(&state.metrics),
        "/ws/updates" | "/healthz" | "/readyz" | "/metrics" => {
            let mut response = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "method not allowed; use GET",
                None,
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            response
        }
        _ => error(StatusCode::NOT_FOUND, "NOT_FOUND", "route not found", None),
    }
}

/// Small buffers: most sockets are idle, and a node holds tens of
/// thousands. Client messages are tiny; 16 KiB is the contract's cap.
pub fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(Some(16 * 1024))
        .max_frame_size(Some(16 * 1024))
}

fn upgrade(state: Arc<NodeState>, mut req: Request<Incoming>) -> Resp {
    if !state.revocations.is_loaded() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "the service is temporarily unavailable",
            None,
        );
    }
    let claims = match authenticate(&state, &req) {
        Ok(claims) => claims,
        Err(message) => {
            let mut response = error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message, None);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    let Some(key) = websocket_key(req.headers()) else {
        let details = [FieldError::new(
            "upgrade",
            "must be a WebSocket upgrade (RFC 6455, version 13)",
        )];
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "upgrade must be a WebSocket upgrade",
            Some(&details),
        );
    };
    // Taken before answering (see user_sockets); held by the socket's task.
    let Some(slot) = state.user_sockets.take(claims.sub) else {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            "too many open sockets for this user; close one first",
            None,
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
        return response;
    };
    if state.hub.open_connections() >= state.config.max_connections {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "this node is full; try another",
            None,
        );
    }
    let accept = derive_accept_key(key.as_bytes());
    let deflate = state.config.compression && deflate::offered(req.headers());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                // Back to the bare TcpStream: no boxed I/O layer per socket.
                let Ok(parts) = upgraded.downcast::<TokioIo<TcpStream>>() else {
                    tracing::error!("BUG: the upgraded connection is not a TcpStream");
                    return;
                };
                let tcp = parts.io.into_inner();
                // Bytes the client sent after its request, if any. Dropped
                // at once either way: this buffer is a view of hyper's 8 KiB
                // read buffer, and keeping it for the socket's lifetime
                // would keep that whole buffer.
                let early = parts.read_buf;
                let config = Some(socket_config());
                let ws = if deflate {
                    // They may be compressed: they go through the inflater.
                    let socket = SocketIo::deflate(tcp, &early);
                    drop(early);
                    WebSocketStream::from_raw_socket(socket, Role::Server, config).await
                } else if early.is_empty() {
                    drop(early);
                    WebSocketStream::from_raw_socket(SocketIo::Plain(tcp), Role::Server, config)
                        .await
                } else {
                    let read = early.to_vec();
                    drop(early);
                    WebSocketStream::from_partially_read(
                        SocketIo::Plain(tcp),
                        read,
                        Role::Server,
                        config,
                    )
                    .await
                };
                session::run(ws, state, claims).await;
            }
            Err(err) => tracing::debug!(error = %err, "upgrade failed"),
        }
        drop(slot);
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if deflate {
        headers.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static(deflate::AGREED),
        );
    }
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("BUG: base64 is a valid header"),
    );
    response
}

/// The token from `Authorization: Bearer` (which wins) or `?token=`.
fn authenticate(state: &NodeState, req: &Request<Incoming>) -> Result<Claims, &'static str> {
    let from_header = bearer_token(req.headers()).map(str::to_owned);
    let token = from_header
        .or_else(|| {
            form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .find(|(name, _)| name == "token")
                .map(|(_, value)| value.into_owned())
        })
        .filter(|t| !t.is_empty())
        .ok_or("a token is required (Authorization: Bearer or ?token=)")?;
    let claims = state.config.jwt.verify(&token).map_err(|err| match err {
        TokenError::Expired => "token expired",
        TokenError::Invalid => "invalid token",
    })?;
    if state.revocations.is_revoked(&claims.jti) {
        return Err("token revoked");
    }
    Ok(claims)
}

/// `Sec-WebSocket-Key` of a well-formed upgrade request.
fn websocket_key(headers: &HeaderMap) -> Option<&str> {
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(token))
    };
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    if has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade") && version_ok {
        headers.get(header::SEC_WEBSOCKET_KEY)?.to_str().ok()
    } else {
        None
    }
}
