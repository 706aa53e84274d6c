//! The ws-node's HTTP side: health, readiness, metrics, and the contract's
//! error shape for everything that is not an upgrade.

use test_support::ws as common;

use std::time::Duration;

use common::api::redis_server::RedisServer;
use common::api::{eventually, Reply};
use common::{TestApp, WsNode};
use reqwest::Method;

async fn call(ws: &WsNode, method: Method, path: &str, token: Option<&str>) -> Reply {
    let mut req = reqwest::Client::new().request(method, ws.http_url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    TestApp::read(req).await
}

#[tokio::test]
async fn healthz_and_readyz_answer_200() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let health = call(&ws, Method::GET, "/healthz", None).await;
    assert_eq!(health.status.as_u16(), 200, "{}", health.body);
    let ready = call(&ws, Method::GET, "/readyz", None).await;
    assert_eq!(ready.status.as_u16(), 200, "{}", ready.body);
}

#[tokio::test]
async fn readyz_is_503_while_its_redis_is_down_and_200_again_after() {
    let mut redis = RedisServer::start().await;
    let api = TestApp::spawn().await;
    let ws = WsNode::start_with(&api, |c| c.redis_url = redis.url()).await;
    assert_eq!(
        call(&ws, Method::GET, "/readyz", None)
            .await
            .status
            .as_u16(),
        200
    );

    redis.stop();
    let ready = call(&ws, Method::GET, "/readyz", None).await;
    ready.assert_error(503, "UNAVAILABLE");
    // Alive all the same.
    assert_eq!(
        call(&ws, Method::GET, "/healthz", None)
            .await
            .status
            .as_u16(),
        200
    );

    redis.restart().await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            call(&ws, Method::GET, "/readyz", None)
                .await
                .status
                .as_u16()
                == 200
        })
        .await,
        "ready again once Redis is back"
    );
}

#[tokio::test]
async fn metrics_count_connections_and_messages() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    let (mut client, _) = ws.subscribed(&user.token).await;
    client.assert_alive().await;

    let metrics = call(&ws, Method::GET, "/metrics", None).await;
    assert_eq!(metrics.status.as_u16(), 200);
    let text = metrics.body.as_str().expect("metrics are text");
    for name in ["ws_connections_open", "ws_messages_out_total"] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{text}"
        );
    }
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405_in_the_contract_shape() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;

    call(&ws, Method::GET, "/nope", None)
        .await
        .assert_error(404, "NOT_FOUND");
    call(&ws, Method::GET, "/ws/updates/extra", Some(&user.token))
        .await
        .assert_error(404, "NOT_FOUND");

    for path in ["/ws/updates", "/healthz", "/readyz", "/metrics"] {
        let reply = call(&ws, Method::POST, path, Some(&user.token)).await;
        reply.assert_error(405, "METHOD_NOT_ALLOWED");
        let allow = reply.header("allow").expect("405 carries Allow");
        assert!(
            allow.split(',').any(|m| m.trim() == "GET"),
            "{path}: Allow: {allow}"
        );
    }
}

#[tokio::test]
async fn a_plain_get_of_the_websocket_path_is_400_or_401() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;

    // A valid token but no upgrade headers.
    let plain = call(&ws, Method::GET, "/ws/updates", Some(&user.token)).await;
    assert_eq!(plain.status.as_u16(), 400, "{}", plain.body);
    assert_eq!(plain.body["statusCode"], 400, "{}", plain.body);
    assert!(plain.body["code"].is_string() && plain.body["message"].is_string());
    let by_query = call(
        &ws,
        Method::GET,
        &format!("/ws/updates?token={}", user.token),
        None,
    )
    .await;
    assert_eq!(by_query.status.as_u16(), 400, "{}", by_query.body);

    // No token at all: authentication comes first.
    call(&ws, Method::GET, "/ws/updates", None)
        .await
        .assert_error(401, "UNAUTHORIZED");
}
