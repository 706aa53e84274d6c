//! Resuming with `since`: after a disconnect while writes go on, on the same
//! node or another, a client sees every seq exactly once; gaps older than
//! what is kept answer RESYNC_REQUIRED.

use test_support::ws as common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::api::{eventually, TestUser};
use common::{is_event, seqs, Client, TestApp, WsNode};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

/// Creates `n` tasks one after another; `done` counts the committed ones.
fn writer(api: Arc<TestApp>, user: TestUser, n: i64, done: Arc<AtomicI64>) -> JoinHandle<()> {
    tokio::spawn(async move {
        for k in 1..=n {
            api.create_task(&user, json!({ "title": format!("w{k}") }))
                .await;
            done.store(k, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

/// Reads `count` events (or until seq `upto`), appending their seqs.
async fn read_events(client: &mut Client, count: usize, upto: i64, seen: &mut Vec<i64>) {
    for _ in 0..count {
        if seen.last() == Some(&upto) {
            return;
        }
        let event = client.next().await;
        assert!(is_event(&event), "expected an event, got {event}");
        seen.push(event["seq"].as_i64().unwrap());
    }
}

/// Waits until the writer has committed a few more events than `seen`.
async fn let_writes_happen(done: &AtomicI64, last_seen: i64, n: i64) {
    let target = (last_seen + 5).min(n);
    assert!(
        eventually(Duration::from_secs(10), || async {
            done.load(Ordering::SeqCst) >= target
        })
        .await,
        "the writer stalled"
    );
}

#[tokio::test]
async fn resuming_with_since_while_writes_continue_sees_every_seq_once() {
    const N: i64 = 60;
    let api = Arc::new(TestApp::spawn().await);
    let nodes = [WsNode::start(&api).await, WsNode::start(&api).await];
    let user = api.register().await;
    let (mut client, latest) = nodes[0].subscribed(&user.token).await;
    assert_eq!(latest, 0);
    let done = Arc::new(AtomicI64::new(0));
    let writing = writer(api.clone(), user.clone(), N, done.clone());

    let mut seen = Vec::new();
    for round in 0..4 {
        read_events(&mut client, 8, N, &mut seen).await;
        let last = seen.last().copied().unwrap_or(0);
        // Disconnect (politely or not), let writes pile up, come back (to
        // either node: nodes hold nothing that matters).
        if round % 2 == 0 {
            let _ = client.ws.close(None).await;
        }
        drop(client);
        let_writes_happen(&done, last, N).await;
        let (resumed, replayed, latest) = nodes[(round + 1) % 2].resumed(&user.token, last).await;
        client = resumed;
        assert!(replayed.iter().all(is_event), "{replayed:?}");
        let replayed = seqs(&replayed);
        assert_eq!(
            replayed,
            ((last + 1)..=latest).collect::<Vec<_>>(),
            "round {round}: the replay is what was missed, up to SUBSCRIBED's seq"
        );
        seen.extend(replayed);
    }
    tokio::time::timeout(Duration::from_secs(30), writing)
        .await
        .expect("the writer finishes")
        .unwrap();
    read_events(&mut client, N as usize, N, &mut seen).await;
    assert_eq!(seen, (1..=N).collect::<Vec<_>>());
    client.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn resuming_on_another_node_after_sigterm_loses_nothing() {
    const N: i64 = 40;
    let api = Arc::new(TestApp::spawn().await);
    let doomed = WsNode::start(&api).await;
    let survivor = WsNode::start(&api).await;
    let user = api.register().await;
    let (mut client, _) = doomed.subscribed(&user.token).await;
    let done = Arc::new(AtomicI64::new(0));
    let writing = writer(api.clone(), user.clone(), N, done.clone());

    let mut seen = Vec::new();
    read_events(&mut client, 10, N, &mut seen).await;
    let stopping = tokio::spawn(doomed.stop());
    // Whatever arrives before the 1001 counts as seen.
    let code = loop {
        match client.next_within(Duration::from_secs(5)).await {
            common::Seen::Json(event) => {
                assert!(is_event(&event), "{event}");
                seen.push(event["seq"].as_i64().unwrap());
            }
            common::Seen::Closed(code) => break code,
            common::Seen::Nothing => panic!("the node did not close the socket"),
        }
    };
    assert_eq!(code, Some(1001));
    stopping.await.unwrap();

    let last = *seen.last().unwrap();
    let (mut client, replayed, _) = survivor.resumed(&user.token, last).await;
    seen.extend(seqs(&replayed));
    tokio::time::timeout(Duration::from_secs(30), writing)
        .await
        .expect("the writer finishes")
        .unwrap();
    read_events(&mut client, N as usize, N, &mut seen).await;
    assert_eq!(seen, (1..=N).collect::<Vec<_>>());
}

/// Creates `n` tasks; returns them.
async fn create(api: &TestApp, user: &TestUser, n: usize) -> Vec<Value> {
    let mut tasks = Vec::new();
    for k in 0..n {
        tasks.push(
            api.create_task(user, json!({ "title": format!("t{k}") }))
                .await,
        );
    }
    tasks
}

/// Deletes the user's recent-event store in Redis.
async fn forget_recent_events(api: &TestApp, user: &TestUser) {
    let key = shared::redis_keys::RedisKeys::new(api.config.redis_namespace.clone())
        .user_recent_events(user.id.parse().unwrap());
    let mut redis = common::redis_conn(&api.config.redis_url).await;
    let deleted: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(deleted, 1, "{key} existed");
}

#[tokio::test]
async fn since_is_served_from_postgres_when_redis_lost_the_recent_events() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    let tasks = create(&api, &user, 5).await;
    forget_recent_events(&api, &user).await;

    let (_client, replayed, latest) = ws.resumed(&user.token, 2).await;
    assert_eq!(latest, 5);
    assert_eq!(seqs(&replayed), [3, 4, 5]);
    for (event, task) in replayed.iter().zip(&tasks[2..]) {
        assert_eq!(
            (&event["type"], &event["task"]),
            (&json!("TASK_CREATED"), task)
        );
    }
}

#[tokio::test]
async fn a_gap_older_than_what_is_kept_answers_resync_required() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    create(&api, &user, 5).await;
    // Make events 1..=3 no longer kept anywhere.
    let db = api.db.client().await;
    let user_id: uuid::Uuid = user.id.parse().unwrap();
    let gone = db
        .execute(
            "DELETE FROM task_events WHERE user_id = $1 AND seq <= 3",
            &[&user_id],
        )
        .await
        .unwrap();
    assert_eq!(gone, 3);
    forget_recent_events(&api, &user).await;

    // since = 1 needs 2 and 3: gone.
    let mut client = ws.connect(&user.token).await;
    client
        .send(json!({ "type": "SUBSCRIBE_TASKS", "since": 1 }))
        .await;
    assert_eq!(client.expect("RESYNC_REQUIRED").await["seq"], 5);
    assert_eq!(client.expect("SUBSCRIBED").await["seq"], 5);
    // Live events carry on from there.
    api.create_task(&user, json!({ "title": "after" })).await;
    assert_eq!(client.expect("TASK_CREATED").await["seq"], 6);

    // since = 3 needs only 4..=6: still kept.
    let (_c, replayed, latest) = ws.resumed(&user.token, 3).await;
    assert_eq!((seqs(&replayed), latest), (vec![4, 5, 6], 6));

    // since = latest: nothing to replay.
    let (mut up_to_date, replayed, latest) = ws.resumed(&user.token, 6).await;
    assert_eq!((replayed, latest), (vec![], 6));
    up_to_date.expect_silence(Duration::from_millis(300)).await;
}
