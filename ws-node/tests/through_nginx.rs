//! End to end through the real load balancer: nginx (the deployment's own
//! config) in front of two api-nodes and two ws-nodes.

use test_support::ws as common;

use std::time::Duration;

use common::nginx::Nginx;
use common::{TestApp, WsNode};
use reqwest::Method;
use serde_json::json;

struct Cluster {
    api: [TestApp; 2],
    ws: [WsNode; 2],
    lb: Nginx,
    /// A client of the load balancer, as a browser would be.
    front: TestApp,
}

async fn cluster() -> Cluster {
    let first =
        TestApp::spawn_with(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    let second = first.spawn_peer().await;
    let ws = [WsNode::start(&first).await, WsNode::start(&first).await];
    let lb = Nginx::start(&[first.port, second.port], &[ws[0].port, ws[1].port]).await;
    // The same harness client, pointed at nginx instead of a node.
    let mut front = first.spawn_peer().await;
    front.base = lb.base();
    Cluster {
        api: [first, second],
        ws,
        lb,
        front,
    }
}

#[tokio::test]
async fn rest_flows_work_through_the_load_balancer() {
    let c = cluster().await;
    let user = c.front.register().await;
    let login = c.front.login(&user.email, &user.password).await;
    assert_eq!(login.status.as_u16(), 200);
    let task = c
        .front
        .create_task(&user, json!({ "title": "via nginx" }))
        .await;
    let id = task["id"].as_str().unwrap();

    // Consecutive requests alternate between the api-nodes: each update
    // must be read back at once, whichever node serves the read.
    for version in 2..=6 {
        let updated = c
            .front
            .put(
                &format!("/api/tasks/{id}"),
                &user.token,
                json!({ "priority": version }),
            )
            .await;
        assert_eq!(updated.body["version"], version);
        for _ in 0..2 {
            let read = c.front.get(&format!("/api/tasks/{id}"), &user.token).await;
            assert_eq!(
                read.body["version"], version,
                "stale read through the load balancer"
            );
        }
    }
    let openapi = c.front.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(openapi.status.as_u16(), 200);
    assert!(openapi.body["openapi"].is_string());
}

#[tokio::test]
async fn a_write_through_one_node_is_read_back_through_the_other() {
    let c = cluster().await;
    let user = c.api[0].register().await;
    let task = c.api[0]
        .create_task(&user, json!({ "title": "first" }))
        .await;
    let id = task["id"].as_str().unwrap();
    let _warm = c.api[1].get(&format!("/api/tasks/{id}"), &user.token).await;
    c.api[0]
        .put(
            &format!("/api/tasks/{id}"),
            &user.token,
            json!({ "title": "second" }),
        )
        .await;
    let read = c.api[1].get(&format!("/api/tasks/{id}"), &user.token).await;
    assert_eq!(read.body["title"], "second");
}

#[tokio::test]
async fn metrics_are_not_exposed_and_unknown_paths_are_404() {
    let c = cluster().await;
    for path in ["/metrics", "/nope"] {
        let reply = c.front.call(Method::GET, path, None, None).await;
        reply.assert_error(404, "NOT_FOUND");
    }
    // Each node still serves its own metrics to Prometheus.
    let direct = c.api[0].call(Method::GET, "/metrics", None, None).await;
    assert_eq!(direct.status.as_u16(), 200);
}

#[tokio::test]
async fn websocket_clients_on_both_ws_nodes_and_through_nginx_get_every_event() {
    let c = cluster().await;
    let user = c.front.register().await;
    let stranger = c.front.register().await;
    let (mut on_first, _) = c.ws[0].subscribed(&user.token).await;
    let (mut on_second, _) = c.ws[1].subscribed(&user.token).await;
    let url = format!(
        "ws://127.0.0.1:{}/ws/updates?token={}",
        c.lb.port, user.token
    );
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade through nginx");
    let mut via_lb = common::Client { ws };
    via_lb.send(json!({ "type": "SUBSCRIBE_TASKS" })).await;
    via_lb.expect("SUBSCRIBED").await;
    let (mut other, _) = c.ws[0].subscribed(&stranger.token).await;

    for n in 1..=3 {
        c.front
            .create_task(&user, json!({ "title": format!("t{n}") }))
            .await;
    }
    for client in [&mut on_first, &mut on_second, &mut via_lb] {
        for seq in 1..=3 {
            let event = client.expect("TASK_CREATED").await;
            assert_eq!(event["seq"], seq);
        }
    }
    other.expect_silence(Duration::from_millis(300)).await;
}

/// Connects through nginx from `source` (a 127.0.0.x address); the client,
/// or the refusal's status and JSON body.
async fn connect_from(
    lb: &Nginx,
    source: [u8; 4],
    token: &str,
) -> Result<common::Client, (u16, serde_json::Value)> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((source, 0).into()).unwrap();
    let tcp = socket
        .connect(([127, 0, 0, 1], lb.port).into())
        .await
        .unwrap();
    let url = format!("ws://127.0.0.1:{}/ws/updates?token={token}", lb.port);
    match tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(tcp)).await
    {
        Ok((ws, _)) => Ok(common::Client { ws }),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err((
            response.status().as_u16(),
            serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                .unwrap_or_default(),
        )),
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

#[tokio::test]
async fn nginx_caps_websockets_per_client_address_with_the_contracts_429() {
    let api = TestApp::spawn_with(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    let ws = WsNode::start(&api).await;
    // The deployment's limit, lowered so a test reaches it.
    let directive = "limit_conn ws_per_client 1000;";
    let lb = Nginx::start_with(&[api.port], &[ws.port], |conf| {
        assert!(
            conf.contains(directive),
            "nginx.conf caps sockets per address"
        );
        conf.replace(directive, "limit_conn ws_per_client 3;")
    })
    .await;
    let user = api.register().await;

    let mut held = Vec::new();
    for _ in 0..3 {
        let client = connect_from(&lb, [127, 0, 0, 1], &user.token).await;
        held.push(client.expect("under the cap"));
    }
    let Err((status, body)) = connect_from(&lb, [127, 0, 0, 1], &user.token).await else {
        panic!("a fourth socket from one address was let through");
    };
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        (&body["statusCode"], &body["code"]),
        (&json!(429), &json!("RATE_LIMITED")),
        "{body}"
    );

    // Another address is counted apart, and the held sockets work.
    let mut elsewhere = connect_from(&lb, [127, 0, 0, 2], &user.token)
        .await
        .expect("another address has its own budget");
    elsewhere.assert_alive().await;
    held[0].assert_alive().await;
}
