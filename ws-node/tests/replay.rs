//! Resuming with `since` is bounded, as the contract says: it is honoured
//! when at most 1,000 events were missed and none is older than 24 hours,
//! and answers RESYNC_REQUIRED (then SUBSCRIBED) otherwise, or when `since`
//! is above the latest seq. The replay itself is read a page at a time
//! (history.rs: its unit tests hold the page size), so what a node holds
//! per socket does not grow with the history.

use test_support::ws as common;

use std::time::Duration;

use common::api::TestUser;
use common::{is_event, seqs, TestApp, WsNode};
use serde_json::{json, Value};
use uuid::Uuid;

/// A description of 10,000 characters: events as large as the contract
/// allows.
fn description() -> String {
    "d".repeat(10_000)
}

/// Gives `user` the events `1..=n` straight in the outbox (far faster than
/// n writes through the API), committed now except those up to `old_upto`,
/// committed 25 hours ago; the user's latest seq becomes `n`. Returns the
/// events' JSON text by seq (index 0 is seq 1).
async fn seed_events(api: &TestApp, user: &TestUser, n: i64, old_upto: i64) -> Vec<String> {
    let user_id: Uuid = user.id.parse().unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let day_and_an_hour_ms = 25 * 3600 * 1000;
    let description = description();
    let (mut seq_col, mut payloads, mut at_ms) = (Vec::new(), Vec::new(), Vec::new());
    for seq in 1..=n {
        let at = if seq <= old_upto {
            now_ms - day_and_an_hour_ms + seq
        } else {
            now_ms - 60_000 + seq
        };
        let task = json!({
            "id": Uuid::new_v4(),
            "userId": user_id,
            "title": format!("t{seq}"),
            "description": description,
            "status": "TODO",
            "priority": 0,
            "version": 1,
        });
        let payload = shared::events::event_json(
            shared::events::EventKind::Created,
            seq,
            at,
            &task.to_string(),
        );
        seq_col.push(seq);
        payloads.push(payload);
        at_ms.push(at);
    }
    let db = api.db.client().await;
    db.execute(
        "INSERT INTO task_events (user_id, seq, payload, created_at, published_at)
         SELECT $1, s, p, to_timestamp(t / 1000.0), now()
         FROM unnest($2::bigint[], $3::text[], $4::bigint[]) AS e(s, p, t)",
        &[&user_id, &seq_col, &payloads, &at_ms],
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE users SET event_seq = $2 WHERE id = $1",
        &[&user_id, &n],
    )
    .await
    .unwrap();
    payloads
}

/// Sends SUBSCRIBE_TASKS with `since` on a new socket; returns the
/// messages up to and including SUBSCRIBED.
async fn resume(ws: &WsNode, token: &str, since: i64) -> (common::Client, Vec<Value>) {
    let mut client = ws.connect(token).await;
    client
        .send(json!({ "type": "SUBSCRIBE_TASKS", "since": since }))
        .await;
    let mut seen = Vec::new();
    loop {
        let message = client.next().await;
        let done = message["type"] == "SUBSCRIBED";
        seen.push(message);
        if done {
            return (client, seen);
        }
    }
}

/// RESYNC_REQUIRED then SUBSCRIBED, both with the latest seq, and nothing
/// before them.
fn assert_resync(seen: &[Value], latest: i64) {
    let kinds: Vec<&str> = seen.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["RESYNC_REQUIRED", "SUBSCRIBED"], "{kinds:?}");
    assert_eq!(
        (seen[0]["seq"].as_i64(), seen[1]["seq"].as_i64()),
        (Some(latest), Some(latest))
    );
}

#[tokio::test]
async fn a_resume_that_missed_more_than_1000_events_answers_resync_required() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    seed_events(&api, &user, 1_500, 0).await;

    for since in [0, 1, 499] {
        let (_client, seen) = resume(&ws, &user.token, since).await;
        assert_resync(&seen, 1_500);
    }

    // The resynced socket is subscribed from the latest seq on.
    let (mut client, seen) = resume(&ws, &user.token, 100).await;
    assert_resync(&seen, 1_500);
    api.create_task(&user, json!({ "title": "live" })).await;
    let live = client.expect("TASK_CREATED").await;
    assert_eq!(live["seq"], 1_501);
    client.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_resume_within_1000_events_replays_every_one_in_order() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    let payloads = seed_events(&api, &user, 1_500, 0).await;
    // The newest 300 are also in the recent-event store: the replay reads
    // its first pages from PostgreSQL and its last ones from Redis.
    let key = shared::redis_keys::RedisKeys::new(api.config.redis_namespace.clone())
        .user_recent_events(user.id.parse().unwrap());
    let mut redis = common::redis_conn(&api.config.redis_url).await;
    for seq in 1_201..=1_500 {
        let _: () = redis::cmd("ZADD")
            .arg(&key)
            .arg(seq)
            .arg(&payloads[seq as usize - 1])
            .query_async(&mut redis)
            .await
            .unwrap();
    }

    // Exactly 1,000 missed: every one, byte for byte, then SUBSCRIBED.
    let mut client = ws.connect(&user.token).await;
    client
        .send(json!({ "type": "SUBSCRIBE_TASKS", "since": 500 }))
        .await;
    for seq in 501..=1_500 {
        let text = client.next_text().await;
        assert_eq!(text, payloads[seq as usize - 1], "seq {seq}");
    }
    assert_eq!(client.expect("SUBSCRIBED").await["seq"], 1_500);

    // And so for any since in the window.
    let (_client, seen) = resume(&ws, &user.token, 1_234).await;
    let (events, last) = seen.split_at(seen.len() - 1);
    assert!(events.iter().all(is_event));
    assert_eq!(seqs(events), (1_235..=1_500).collect::<Vec<_>>());
    assert_eq!(last[0]["seq"], 1_500);
}

#[tokio::test]
async fn a_missed_event_older_than_a_day_answers_resync_required() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    // Events 1..=100 were committed 25 hours ago, 101..=300 a minute ago.
    seed_events(&api, &user, 300, 100).await;

    for since in [0, 50, 99] {
        let (_client, seen) = resume(&ws, &user.token, since).await;
        assert_resync(&seen, 300);
    }
    // Missing only recent ones is fine.
    let (_client, seen) = resume(&ws, &user.token, 100).await;
    assert_eq!(seen.len(), 201);
    assert_eq!(seqs(&seen[..200]), (101..=300).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_since_above_the_latest_answers_resync_required() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    seed_events(&api, &user, 5, 0).await;

    let (_client, seen) = resume(&ws, &user.token, 6).await;
    assert_resync(&seen, 5);
    let (_client, seen) = resume(&ws, &user.token, 5).await;
    assert_eq!(seen.len(), 1, "up to date: only SUBSCRIBED, {seen:?}");
}

/// Many sockets of one user resuming a full window of the largest events
/// at once, none of them reading: each is replayed to a page at a time,
/// so the node stays responsive and the sockets are dropped by the write
/// timeout rather than buffered without bound.
#[tokio::test]
async fn sockets_that_resume_a_full_window_and_never_read_do_not_hold_the_node() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start_with(&api, |c| c.write_timeout = Duration::from_secs(1)).await;
    let user = api.register().await;
    seed_events(&api, &user, 1_000, 0).await;

    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut client = ws.connect(&user.token).await;
        client
            .send(json!({ "type": "SUBSCRIBE_TASKS", "since": 0 }))
            .await;
        stalled.push(client);
    }
    // The node still answers others at once.
    let other = api.register().await;
    for _ in 0..5 {
        let (mut client, _) = ws.subscribed(&other.token).await;
        client.assert_alive().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Each stalled socket got at most what the socket buffers hold before
    // its replay stopped, and then it was dropped.
    for mut client in stalled {
        let mut got = 0;
        loop {
            match client.next_within(Duration::from_secs(10)).await {
                common::Seen::Json(message) => {
                    assert!(is_event(&message), "{message}");
                    got += 1;
                }
                common::Seen::Closed(_) => break,
                common::Seen::Nothing => panic!("a stalled socket was kept"),
            }
        }
        assert!(got < 1_000, "a socket that never read got the whole replay");
    }
}
