//! Redis going away and coming back: writes are still committed (201), and
//! every event reaches subscribers once Redis is back, in seq order, with no
//! gap (the relay republishes the outbox; the ws-node catches up from
//! history).

use test_support::ws as common;

use std::time::Duration;

use common::api::redis_server::RedisServer;
use common::{is_event, Client, TestApp, WsNode};
use serde_json::json;

/// Reads events until seq `upto` (allowing `within`); returns their seqs in
/// the order they came.
async fn seqs_until(client: &mut Client, upto: i64, within: Duration) -> Vec<i64> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    while seen.last() != Some(&upto) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next_within(left).await {
            common::Seen::Json(event) => {
                assert!(is_event(&event), "expected an event, got {event}");
                seen.push(event["seq"].as_i64().unwrap());
            }
            other => panic!("waiting for seq {upto} after {seen:?}, saw {other:?}"),
        }
    }
    seen
}

#[tokio::test]
async fn events_written_while_redis_was_down_arrive_once_it_is_back() {
    let mut redis = RedisServer::start().await;
    let api = TestApp::spawn_with(|c| c.redis_url = redis.url()).await;
    let ws = WsNode::start(&api).await;
    assert_eq!(ws.config.redis_url, redis.url());
    let user = api.register().await;
    let (mut client, _) = ws.subscribed(&user.token).await;
    api.create_task(&user, json!({ "title": "before" })).await;
    assert_eq!(client.expect("TASK_CREATED").await["seq"], 1);

    redis.stop();
    for n in 0..3 {
        // create_task asserts the 201.
        api.create_task(&user, json!({ "title": format!("while down {n}") }))
            .await;
    }
    redis.restart().await;
    api.create_task(&user, json!({ "title": "after" })).await;

    let seen = seqs_until(&mut client, 5, Duration::from_secs(10)).await;
    assert_eq!(seen, [2, 3, 4, 5]);
    client.expect_silence(Duration::from_millis(500)).await;
    client.assert_alive().await;
}

#[tokio::test]
async fn a_client_that_subscribes_while_redis_is_down_gets_every_event_once_it_is_back() {
    let mut redis = RedisServer::start().await;
    let api = TestApp::spawn_with(|c| c.redis_url = redis.url()).await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    api.create_task(&user, json!({ "title": "before" })).await;

    redis.stop();
    let (mut client, latest) = ws.subscribed(&user.token).await;
    assert_eq!(latest, 1);
    for n in 0..2 {
        api.create_task(&user, json!({ "title": format!("while down {n}") }))
            .await;
    }
    redis.restart().await;
    api.create_task(&user, json!({ "title": "after" })).await;

    let seen = seqs_until(&mut client, 4, Duration::from_secs(10)).await;
    assert_eq!(seen, [2, 3, 4]);
    client.expect_silence(Duration::from_millis(500)).await;
}
