//! Task events on the owner's Redis channel: their shape, the per-user
//! `seq` in commit order, and the outbox relay that publishes what a crash
//! or a Redis outage left unpublished.

use test_support::api as common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use common::proxy::Proxy;
use common::redis_server::RedisServer;
use common::{eventually, Subscriber, TestApp, TestUser};
use reqwest::StatusCode;
use serde_json::{json, Value};
use shared::redis_keys::RedisKeys;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(5);

fn task_path(id: &str) -> String {
    format!("/api/tasks/{id}")
}

fn id_of(task: &Value) -> String {
    task["id"].as_str().unwrap().to_owned()
}

/// A subscriber that hands out each `seq` once. The design allows an event
/// to be published twice (receivers drop seqs they have passed); a repeat
/// must be the very same event.
struct Events {
    sub: Subscriber,
    seen: HashMap<i64, Value>,
}

impl Events {
    /// The next event with a seq not seen before.
    async fn next(&mut self) -> Value {
        self.next_within(WAIT).await.expect("an event arrives")
    }

    async fn next_within(&mut self, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self.sub.next(left).await?;
            let seq = event["seq"]
                .as_i64()
                .unwrap_or_else(|| panic!("seq is an integer: {event}"));
            if let Some(earlier) = self.seen.get(&seq) {
                assert_eq!(*earlier, event, "a repeated seq is the same event");
                continue;
            }
            self.seen.insert(seq, event.clone());
            return Some(event);
        }
    }

    /// No event with a new seq arrives within `within`.
    async fn assert_quiet(&mut self, within: Duration) {
        if let Some(event) = self.next_within(within).await {
            panic!("unexpected event: {event}");
        }
    }
}

/// Subscribes to the user's event channel on `redis_url`.
async fn subscribe_on(redis_url: &str, app: &TestApp, user: &TestUser) -> Events {
    let channel = RedisKeys::new(app.config.redis_namespace.clone())
        .user_events_channel(user.id.parse().unwrap());
    Events {
        sub: Subscriber::start(redis_url, channel).await,
        seen: HashMap::new(),
    }
}

async fn subscribe(app: &TestApp, user: &TestUser) -> Events {
    subscribe_on(&app.config.redis_url, app, user).await
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `{ type, seq, timestamp, task }` and nothing else; `timestamp` a
/// plausible number of milliseconds since the epoch.
fn assert_event(event: &Value, kind: &str, seq: i64) {
    assert_eq!(event["type"], kind, "{event}");
    assert_eq!(event["seq"], seq, "{event}");
    let keys: BTreeSet<&str> = event
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["type", "seq", "timestamp", "task"]));
    let timestamp = event["timestamp"]
        .as_i64()
        .unwrap_or_else(|| panic!("timestamp is an integer: {event}"));
    assert!(
        (timestamp - now_ms()).abs() < 60_000,
        "timestamp is milliseconds since the epoch: {event}"
    );
}

#[tokio::test]
async fn create_update_delete_publish_events_with_seq_1_2_3() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let mut events = subscribe(&app, &user).await;

    let created = app
        .create_task(&user, json!({ "title": "evented", "priority": 2 }))
        .await;
    let id = id_of(&created);
    let event = events.next().await;
    assert_event(&event, "TASK_CREATED", 1);
    assert_eq!(event["task"], created);

    let updated = app
        .put(&task_path(&id), &user.token, json!({ "status": "DONE" }))
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    let event = events.next().await;
    assert_event(&event, "TASK_UPDATED", 2);
    assert_eq!(event["task"], updated.body);

    let deleted = app.delete(&task_path(&id), &user.token).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let event = events.next().await;
    assert_event(&event, "TASK_DELETED", 3);
    assert_eq!(event["task"], json!({ "id": id }));

    events.assert_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn events_are_published_whichever_node_takes_the_write() {
    let a = TestApp::spawn().await;
    let b = a.spawn_peer().await;
    let user = a.register().await;
    let mut events = subscribe(&a, &user).await;

    let task = a.create_task(&user, json!({ "title": "one" })).await;
    let updated = b
        .put(
            &task_path(&id_of(&task)),
            &user.token,
            json!({ "priority": 1 }),
        )
        .await;
    let other = b.create_task(&user, json!({ "title": "two" })).await;

    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(events.next().await);
    }
    got.sort_by_key(|e| e["seq"].as_i64());
    assert_event(&got[0], "TASK_CREATED", 1);
    assert_eq!(got[0]["task"], task);
    assert_event(&got[1], "TASK_UPDATED", 2);
    assert_eq!(got[1]["task"], updated.body);
    assert_event(&got[2], "TASK_CREATED", 3);
    assert_eq!(got[2]["task"], other);
}

#[tokio::test]
async fn each_user_has_an_independent_seq_and_channel() {
    let app = TestApp::spawn().await;
    let alice = app.register().await;
    let bob = app.register().await;
    let mut alices = subscribe(&app, &alice).await;
    let mut bobs = subscribe(&app, &bob).await;

    let a1 = app.create_task(&alice, json!({ "title": "a1" })).await;
    let b1 = app.create_task(&bob, json!({ "title": "b1" })).await;
    let a2 = app.create_task(&alice, json!({ "title": "a2" })).await;
    let b_updated = app
        .put(
            &task_path(&id_of(&b1)),
            &bob.token,
            json!({ "title": "b1'" }),
        )
        .await;

    let e = alices.next().await;
    assert_event(&e, "TASK_CREATED", 1);
    assert_eq!(e["task"], a1);
    let e = alices.next().await;
    assert_event(&e, "TASK_CREATED", 2);
    assert_eq!(e["task"], a2);
    let e = bobs.next().await;
    assert_event(&e, "TASK_CREATED", 1);
    assert_eq!(e["task"], b1);
    let e = bobs.next().await;
    assert_event(&e, "TASK_UPDATED", 2);
    assert_eq!(e["task"], b_updated.body);
    alices.assert_quiet(Duration::from_millis(300)).await;
    bobs.assert_quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn refused_writes_publish_nothing_and_take_no_seq() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let other = app.register().await;
    let mut events = subscribe(&app, &user).await;
    let task = app.create_task(&user, json!({ "title": "t" })).await;
    let id = id_of(&task);
    assert_event(&events.next().await, "TASK_CREATED", 1);

    // Validation error, stale If-Match, someone else's task, no such task.
    app.post("/api/tasks", Some(&user.token), json!({ "title": "" }))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    let stale = TestApp::read(
        app.http
            .put(app.url(&task_path(&id)))
            .bearer_auth(&user.token)
            .header("If-Match", "\"9\"")
            .json(&json!({ "title": "x" })),
    )
    .await;
    stale.assert_error(412, "VERSION_MISMATCH");
    app.put(&task_path(&id), &other.token, json!({ "title": "x" }))
        .await
        .assert_error(404, "NOT_FOUND");
    app.delete(&task_path(&Uuid::new_v4().to_string()), &user.token)
        .await
        .assert_error(404, "NOT_FOUND");

    let updated = app
        .put(&task_path(&id), &user.token, json!({ "title": "t2" }))
        .await;
    let event = events.next().await;
    assert_event(&event, "TASK_UPDATED", 2);
    assert_eq!(event["task"], updated.body);
}

#[tokio::test]
async fn concurrent_creates_get_seqs_1_to_20_each_exactly_once() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let mut events = subscribe(&app, &user).await;

    let creates = (0..20).map(|i| {
        app.post(
            "/api/tasks",
            Some(&user.token),
            json!({ "title": format!("t{i}") }),
        )
    });
    let replies = futures_util::future::join_all(creates).await;
    let mut created: BTreeSet<String> = BTreeSet::new();
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        created.insert(id_of(&reply.body));
    }

    let mut seqs = Vec::new();
    let mut tasks = BTreeSet::new();
    for _ in 0..20 {
        let event = events.next().await;
        assert_eq!(event["type"], "TASK_CREATED");
        seqs.push(event["seq"].as_i64().unwrap());
        tasks.insert(id_of(&event["task"]));
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    assert_eq!(tasks, created);
    events.assert_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn concurrent_updates_of_one_task_get_seqs_in_commit_order() {
    // Updates of one task commit one after the other, each at the next
    // version: seq order is commit order exactly when seq n carries version n.
    let app = TestApp::spawn().await;
    let peer = app.spawn_peer().await;
    let user = app.register().await;
    let mut events = subscribe(&app, &user).await;
    let task = app
        .create_task(&user, json!({ "title": "contended" }))
        .await;
    let path = task_path(&id_of(&task));

    let updates = (0..20).map(|i| {
        let node = if i % 2 == 0 { &app } else { &peer };
        node.put(&path, &user.token, json!({ "priority": i % 11 }))
    });
    let replies = futures_util::future::join_all(updates).await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }

    let mut got = Vec::new();
    for _ in 0..21 {
        got.push(events.next().await);
    }
    got.sort_by_key(|e| e["seq"].as_i64());
    for (n, event) in got.iter().enumerate() {
        let seq = n as i64 + 1;
        assert_eq!(event["seq"], seq, "{event}");
        assert_eq!(
            event["task"]["version"], seq,
            "seq {seq} carries version {seq}"
        );
    }
    let last = app.get(&path, &user.token).await;
    assert_eq!(got[20]["task"], last.body);
}

#[tokio::test]
async fn an_event_committed_but_never_published_is_relayed() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let task = app.create_task(&user, json!({ "title": "t" })).await;
    let id = id_of(&task);
    let mut events = subscribe(&app, &user).await;

    // A node deleted the task and crashed between commit and publish: the
    // change, the seq and the outbox row are committed, nothing published.
    // The row is one from before the outbox named its change (payload
    // only): the relay reads the change from the payload.
    let db = app.db.client().await;
    let user_id: Uuid = user.id.parse().unwrap();
    let task_id: Uuid = id.parse().unwrap();
    db.batch_execute("BEGIN").await.unwrap();
    db.execute("DELETE FROM tasks WHERE id = $1", &[&task_id])
        .await
        .unwrap();
    let seq: i64 = db
        .query_one(
            "UPDATE users SET event_seq = event_seq + 1 WHERE id = $1 RETURNING event_seq",
            &[&user_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(seq, 2);
    let timestamp = now_ms() - 10_000;
    let payload = format!(
        r#"{{"type":"TASK_DELETED","seq":{seq},"timestamp":{timestamp},"task":{{"id":"{id}"}}}}"#
    );
    db.execute(
        "INSERT INTO task_events (user_id, seq, payload, created_at, published_at)
         VALUES ($1, $2, $3, now() - interval '10 seconds', NULL)",
        &[&user_id, &seq, &payload],
    )
    .await
    .unwrap();
    db.batch_execute("COMMIT").await.unwrap();

    let event = events.next().await;
    assert_eq!(event, serde_json::from_str::<Value>(&payload).unwrap());
    assert!(
        eventually(WAIT, || async {
            db.query_one(
                "SELECT published_at IS NOT NULL FROM task_events WHERE user_id = $1 AND seq = $2",
                &[&user_id, &seq],
            )
            .await
            .unwrap()
            .get::<_, bool>(0)
        })
        .await,
        "the relayed event is marked published"
    );
    // The next write continues the sequence, and its outbox row names the
    // change beside the JSON (what the relay reads for rows of this kind).
    let next = app.create_task(&user, json!({ "title": "next" })).await;
    let event = events.next().await;
    assert_event(&event, "TASK_CREATED", 3);
    let row = db
        .query_one(
            "SELECT kind, task_id, version FROM task_events WHERE user_id = $1 AND seq = 3",
            &[&user_id],
        )
        .await
        .unwrap();
    let next_id: Uuid = next["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        (
            row.get::<_, &str>(0),
            row.get::<_, Uuid>(1),
            row.get::<_, i64>(2)
        ),
        ("TASK_CREATED", next_id, 1)
    );
    events.assert_quiet(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn events_of_writes_made_while_redis_was_down_arrive_in_order_once_it_is_back() {
    // The node reaches its Redis through a link the test can cut, so the
    // subscriber can be in place before the node sees Redis again.
    let mut redis = RedisServer::start().await;
    let link = Proxy::start(format!("127.0.0.1:{}", redis.port)).await;
    let app =
        TestApp::spawn_with(|c| c.redis_url = format!("redis://127.0.0.1:{}", link.port)).await;
    let user = app.register().await;

    redis.stop();
    link.cut();
    let mut expected = Vec::new();
    let first = app.create_task(&user, json!({ "title": "t1" })).await;
    expected.push(("TASK_CREATED", first.clone()));
    let second = app.create_task(&user, json!({ "title": "t2" })).await;
    expected.push(("TASK_CREATED", second.clone()));
    let updated = app
        .put(
            &task_path(&id_of(&first)),
            &user.token,
            json!({ "status": "DONE" }),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    expected.push(("TASK_UPDATED", updated.body));
    let deleted = app.delete(&task_path(&id_of(&second)), &user.token).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    expected.push(("TASK_DELETED", json!({ "id": id_of(&second) })));

    redis.restart().await;
    let mut events = subscribe_on(&redis.url(), &app, &user).await;
    link.restore();

    // In seq order, with no gap (repeats are skipped by `Events`).
    for (n, (kind, task)) in expected.iter().enumerate() {
        let event = events
            .next_within(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("event {} arrives", n + 1));
        assert_event(&event, kind, n as i64 + 1);
        assert_eq!(event["task"], *task);
    }
    events.assert_quiet(Duration::from_millis(500)).await;
}
