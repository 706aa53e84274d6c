//! The WebSocket protocol of the contract, through real nodes.

use test_support::ws as common;

use std::time::Duration;

use common::{TestApp, WsNode};
use serde_json::json;

#[tokio::test]
async fn ping_subscribe_events_and_unsubscribe() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    let mut client = ws.connect(&user.token).await;

    client.send(json!({ "type": "PING" })).await;
    let pong = client.expect("PONG").await;
    assert!(pong["timestamp"].as_i64().unwrap() > 1_700_000_000_000);

    client.send(json!({ "type": "SUBSCRIBE_TASKS" })).await;
    assert_eq!(client.expect("SUBSCRIBED").await["seq"], 0);

    let task = api.create_task(&user, json!({ "title": "hello" })).await;
    let created = client.expect("TASK_CREATED").await;
    assert_eq!(created["seq"], 1);
    assert_eq!(created["task"], task);

    let id = task["id"].as_str().unwrap();
    api.put(
        &format!("/api/tasks/{id}"),
        &user.token,
        json!({ "priority": 9 }),
    )
    .await;
    let updated = client.expect("TASK_UPDATED").await;
    assert_eq!(
        (
            updated["seq"].as_i64(),
            updated["task"]["priority"].as_i64()
        ),
        (Some(2), Some(9))
    );

    api.delete(&format!("/api/tasks/{id}"), &user.token).await;
    let deleted = client.expect("TASK_DELETED").await;
    assert_eq!(deleted["seq"], 3);
    assert_eq!(deleted["task"], json!({ "id": id }));

    client.send(json!({ "type": "UNSUBSCRIBE_TASKS" })).await;
    client.expect("UNSUBSCRIBED").await;
    api.create_task(&user, json!({ "title": "unseen" })).await;
    client.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn bad_messages_get_an_error_and_the_connection_stays_open() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    let mut client = ws.connect(&user.token).await;
    for bad in [
        "not json",
        "{}",
        r#"{"type":"DANCE"}"#,
        r#"{"type":"SUBSCRIBE_TASKS","since":-4}"#,
    ] {
        client.send_text(bad).await;
        let error = client.expect("ERROR").await;
        assert_eq!(error["code"], "BAD_MESSAGE", "{bad}");
    }
    client.send(json!({ "type": "PING" })).await;
    client.expect("PONG").await;
}

#[tokio::test]
async fn refuses_missing_invalid_and_revoked_tokens_before_the_upgrade() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    assert_eq!(ws.refused_status(None).await, 401);
    assert_eq!(ws.refused_status(Some("garbage")).await, 401);
    api.post("/api/auth/logout", Some(&user.token), json!({}))
        .await;
    assert!(
        common::api::eventually(Duration::from_secs(2), || async {
            ws.refused_status(Some(&user.token)).await == 401
        })
        .await
    );
}

#[tokio::test]
async fn resumes_with_since_and_resyncs_when_since_is_ahead() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    for n in 0..5 {
        api.create_task(&user, json!({ "title": format!("t{n}") }))
            .await;
    }
    let mut client = ws.connect(&user.token).await;
    client
        .send(json!({ "type": "SUBSCRIBE_TASKS", "since": 2 }))
        .await;
    for seq in 3..=5 {
        assert_eq!(client.expect("TASK_CREATED").await["seq"], seq);
    }
    assert_eq!(client.expect("SUBSCRIBED").await["seq"], 5);

    let mut ahead = ws.connect(&user.token).await;
    ahead
        .send(json!({ "type": "SUBSCRIBE_TASKS", "since": 99 }))
        .await;
    assert_eq!(ahead.expect("RESYNC_REQUIRED").await["seq"], 5);
    assert_eq!(ahead.expect("SUBSCRIBED").await["seq"], 5);
}

#[tokio::test]
async fn logout_closes_the_sockets_of_that_token_with_4001() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    let other_login = api.login(&user.email, &user.password).await;
    let other_token = other_login.body["token"].as_str().unwrap().to_owned();
    let (mut doomed, _) = ws.subscribed(&user.token).await;
    let (mut survivor, _) = ws.subscribed(&other_token).await;

    assert_eq!(
        api.post("/api/auth/logout", Some(&user.token), json!({}))
            .await
            .status
            .as_u16(),
        204
    );
    assert_eq!(
        doomed.expect_close(Duration::from_secs(1)).await,
        Some(4001)
    );
    survivor.send(json!({ "type": "PING" })).await;
    survivor.expect("PONG").await;
}

#[tokio::test]
async fn sigterm_closes_every_socket_with_1001() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    let (mut client, _) = ws.subscribed(&user.token).await;
    let stopping = tokio::spawn(ws.stop());
    assert_eq!(
        client.expect_close(Duration::from_secs(3)).await,
        Some(1001)
    );
    stopping.await.unwrap();
}
