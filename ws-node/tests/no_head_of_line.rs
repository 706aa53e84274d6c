//! One user's slow gap fill never holds up another user's events on the
//! same node, nor anyone's subscribe.

use test_support::ws as common;

use std::time::{Duration, Instant};

use common::{redis_conn, TestApp, WsNode};
use serde_json::json;
use uuid::Uuid;

/// A task event as the api-node publishes it.
fn event(seq: i64) -> String {
    shared::events::event_json(
        shared::events::EventKind::Created,
        seq,
        chrono::Utc::now().timestamp_millis(),
        &json!({ "id": Uuid::new_v4(), "version": 1, "title": "t" }).to_string(),
    )
}

#[tokio::test]
async fn a_user_whose_gap_fill_is_stuck_does_not_hold_up_other_users_or_subscribes() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let (stuck, flowing, late) = (
        api.register().await,
        api.register().await,
        api.register().await,
    );
    let (mut stuck_client, _) = ws.subscribed(&stuck.token).await;
    let (mut flowing_client, _) = ws.subscribed(&flowing.token).await;
    let keys = shared::redis_keys::RedisKeys::new(api.config.redis_namespace.clone());
    let channel = |user: &str| keys.user_events_channel(user.parse().unwrap());
    let mut redis = redis_conn(&api.config.redis_url).await;

    // Hold up every read of the outbox: the stuck user's gap fill waits
    // on PostgreSQL (its recent-event store in Redis is empty).
    let mut admin = api.db.client().await;
    let lock = admin.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE task_events IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(channel(&stuck.id))
        .arg(event(2))
        .query_async(&mut redis)
        .await
        .unwrap();

    let mut delays = Vec::new();
    for seq in 1..=5 {
        let sent = Instant::now();
        let _: i64 = redis::cmd("PUBLISH")
            .arg(channel(&flowing.id))
            .arg(event(seq))
            .query_async(&mut redis)
            .await
            .unwrap();
        let got = flowing_client.expect("TASK_CREATED").await;
        delays.push(sent.elapsed());
        assert_eq!(got["seq"], seq);
    }
    let (mut late_client, _) = ws.subscribed(&late.token).await;
    late_client.assert_alive().await;
    stuck_client
        .expect_silence(Duration::from_millis(100))
        .await;
    delays.sort();
    assert!(
        delays[delays.len() / 2] < Duration::from_millis(50),
        "another user's events waited: {delays:?}"
    );

    // Once history answers, the stuck user's event goes out too.
    lock.rollback().await.unwrap();
    assert_eq!(stuck_client.expect("TASK_CREATED").await["seq"], 2);
}
