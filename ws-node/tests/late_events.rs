//! Events that reach a ws-node late (committed, but the publish is held up)
//! while another socket of the same user subscribes on that node: every
//! socket still gets every event after its own subscription point, once and
//! in order. The client here never resubscribes on its own: the server
//! alone keeps each stream whole.

use test_support::ws as common;

use std::time::Duration;

use common::api::proxy::Proxy;
use common::{seqs, TestApp, WsNode};
use serde_json::json;

/// An api-node whose Redis connections go through a proxy the test can cut,
/// so its publishes are held up while the ws-node's Redis stays up.
async fn api_with_cuttable_redis() -> (TestApp, Proxy) {
    let direct = common::api::redis_url();
    let target = direct.trim_start_matches("redis://").to_owned();
    let proxy = Proxy::start(target.clone()).await;
    let via_proxy = direct.replace(&target, &format!("127.0.0.1:{}", proxy.port));
    let api = TestApp::spawn_with(|c| c.redis_url = via_proxy).await;
    (api, proxy)
}

#[tokio::test]
async fn a_socket_keeps_a_late_event_when_another_socket_of_its_user_subscribes_meanwhile() {
    let (api, proxy) = api_with_cuttable_redis().await;
    let ws = WsNode::start_with(&api, |c| c.redis_url = common::api::redis_url()).await;
    let user = api.register().await;
    let (mut older, _) = ws.subscribed(&user.token).await;
    api.create_task(&user, json!({ "title": "on time" })).await;
    assert_eq!(older.expect("TASK_CREATED").await["seq"], 1);

    // Seq 2 commits, but its publish cannot reach Redis yet.
    proxy.cut();
    api.create_task(&user, json!({ "title": "late" })).await;
    // Meanwhile a second socket of the same user subscribes on the same node
    // and is told 2 is the latest.
    let (mut newer, latest) = ws.subscribed(&user.token).await;
    assert_eq!(latest, 2);
    proxy.restore();
    api.create_task(&user, json!({ "title": "after" })).await;

    assert_eq!(seqs(&older.events(2).await), [2, 3]);
    assert_eq!(seqs(&newer.events(1).await), [3]);
    older.expect_silence(Duration::from_millis(300)).await;
    newer.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn many_sockets_of_one_user_joining_while_events_are_late_each_get_a_whole_stream() {
    let (api, proxy) = api_with_cuttable_redis().await;
    let ws = WsNode::start_with(&api, |c| c.redis_url = common::api::redis_url()).await;
    let user = api.register().await;
    let (mut first, _) = ws.subscribed(&user.token).await;

    proxy.cut();
    let mut joined = Vec::new();
    for n in 0..5 {
        api.create_task(&user, json!({ "title": format!("late {n}") }))
            .await;
        joined.push(ws.subscribed(&user.token).await);
    }
    proxy.restore();
    api.create_task(&user, json!({ "title": "after" })).await;

    assert_eq!(seqs(&first.events(6).await), [1, 2, 3, 4, 5, 6]);
    for (client, from) in &mut joined {
        let want: Vec<i64> = (*from + 1..=6).collect();
        assert_eq!(seqs(&client.events(want.len()).await), want);
        client.expect_silence(Duration::from_millis(200)).await;
    }
}
