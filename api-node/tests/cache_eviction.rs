//! The task cache under Redis memory pressure, configured as the shipped
//! Redis is (`maxmemory`, `maxmemory-policy allkeys-lru`) but with very
//! little memory: eviction may erase any key at any moment, yet no read
//! ever gives back a task older than a write has answered with, nor a
//! deleted one. The slow reader and the late publisher that could put an
//! old copy back are played by the test, at the worst moment, with the
//! node's own cache and publisher code.

use test_support::api as common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use api_node::cache::{Lookup, TaskCache};
use api_node::db::task_events::OutboxEvent;
use api_node::models::Task;
use api_node::publisher::Publisher;
use common::redis_server::RedisServer;
use common::{eventually, TestApp, TestUser};
use reqwest::StatusCode;
use serde_json::{json, Value};
use shared::events::EventKind;
use shared::redis_conn::{RedisConn, RedisTarget};
use shared::redis_keys::RedisKeys;
use uuid::Uuid;

/// A private Redis evicting least recently used keys past a tiny limit.
async fn small_redis() -> RedisServer {
    let redis = RedisServer::start().await;
    let mut conn = connect(&redis.url()).await;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .unwrap();
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for (name, value) in [
        ("maxmemory-policy", "allkeys-lru".to_owned()),
        ("maxmemory", (used + 2 * 1024 * 1024).to_string()),
    ] {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
    redis
}

async fn connect(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Writes filler keys until Redis has evicted every one of `keys` (as it
/// evicts anything under pressure); returns how many keys it has evicted.
async fn evict_under_pressure(url: &str, keys: &[String]) -> u64 {
    let mut conn = connect(url).await;
    let filler = "f".repeat(8 * 1024);
    for round in 0..2_000 {
        let mut pipe = redis::pipe();
        for i in 0..32 {
            pipe.cmd("SET")
                .arg(format!("filler:{round}:{i}"))
                .arg(&filler)
                .arg("PX")
                .arg(60_000)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await.unwrap();
        let mut left = 0;
        for key in keys {
            left += redis::cmd("EXISTS")
                .arg(key)
                .query_async::<u64>(&mut conn)
                .await
                .unwrap();
        }
        if left == 0 {
            return evicted_keys(&mut conn).await;
        }
    }
    panic!("memory pressure did not evict {keys:?}");
}

async fn evicted_keys(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("evicted_keys:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The node's own cache code, on the node's Redis and namespace: a second
/// reader whose timing the test controls.
fn slow_reader(app: &TestApp) -> TaskCache {
    let target = RedisTarget::parse(&app.config.redis_url).unwrap();
    TaskCache::new(
        RedisConn::new(&target, Duration::from_secs(2)).unwrap(),
        RedisKeys::new(app.config.redis_namespace.clone()),
        60_000,
    )
}

/// The task as PostgreSQL has it now.
async fn read_task(app: &TestApp, user: &TestUser, id: Uuid) -> Task {
    let pool = api_node::db::pool(&app.db.url, 1, Duration::from_secs(5)).unwrap();
    let client = pool.get().await.unwrap();
    api_node::db::tasks::get(&client, user.id.parse().unwrap(), id)
        .await
        .unwrap()
        .expect("the task exists")
}

/// The outbox event of `seq`, as the relay would republish it.
async fn outbox_event(app: &TestApp, user: &TestUser, seq: i64) -> OutboxEvent {
    let client = app.db.client().await;
    let user_id: Uuid = user.id.parse().unwrap();
    let row = client
        .query_one(
            "SELECT payload, kind, task_id, version FROM task_events
             WHERE user_id = $1 AND seq = $2",
            &[&user_id, &seq],
        )
        .await
        .unwrap();
    OutboxEvent {
        user_id,
        seq,
        kind: EventKind::from_wire(row.get(1)).expect("the outbox names the kind"),
        task_id: row.get(2),
        version: row.get(3),
        payload: row.get(0),
    }
}

fn task_key(app: &TestApp, user: &TestUser, id: Uuid) -> String {
    RedisKeys::new(app.config.redis_namespace.clone()).task(user.id.parse().unwrap(), id)
}

fn path(id: Uuid) -> String {
    format!("/api/tasks/{id}")
}

/// Reads through every node, a few times: each must give `expected` (a
/// task's JSON, or `None` for a 404).
async fn assert_reads(nodes: &[&TestApp], user: &TestUser, id: Uuid, expected: Option<&Value>) {
    for _ in 0..3 {
        for node in nodes {
            let read = node.get(&path(id), &user.token).await;
            match expected {
                Some(task) => assert_eq!(
                    &read.body,
                    task,
                    "stale read (X-Cache: {:?})",
                    read.header("x-cache")
                ),
                None => read.assert_error(404, "NOT_FOUND"),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn until_hit(app: &TestApp, user: &TestUser, id: Uuid) {
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.get(&path(id), &user.token).await.header("x-cache") == Some("HIT")
        })
        .await,
        "reads of {id} become cache hits"
    );
}

#[tokio::test]
async fn a_slow_reader_fills_when_nothing_happened_meanwhile() {
    // The control case: the refusals below are the protocol at work, not a
    // reader that can never fill.
    let redis = small_redis().await;
    let app = TestApp::spawn_with(|c| c.redis_url = redis.url()).await;
    let user = app.register().await;
    let task = app.create_task(&user, json!({ "title": "v1" })).await;
    let id: Uuid = task["id"].as_str().unwrap().parse().unwrap();
    let reader = slow_reader(&app);

    let Lookup::Miss(Some(lease)) = reader.lookup(user.id.parse().unwrap(), id).await else {
        panic!("a new task is not cached yet");
    };
    let v1 = read_task(&app, &user, id).await;

    assert!(reader.fill_now(&v1, lease).await.unwrap());
    let read = app.get(&path(id), &user.token).await;
    assert_eq!(read.header("x-cache"), Some("HIT"));
    assert_eq!(read.body, task);
}

#[tokio::test]
async fn a_slow_reader_cannot_put_back_an_older_version_after_an_eviction() {
    let redis = small_redis().await;
    let a = TestApp::spawn_with(|c| c.redis_url = redis.url()).await;
    let b = a.spawn_peer().await;
    let user = a.register().await;
    let task = a.create_task(&user, json!({ "title": "v1" })).await;
    let id: Uuid = task["id"].as_str().unwrap().parse().unwrap();
    until_hit(&a, &user, id).await;
    evict_under_pressure(&redis.url(), &[task_key(&a, &user, id)]).await;
    let reader = slow_reader(&a);

    // A reader misses, takes its lease and reads version 1 ...
    let Lookup::Miss(Some(lease)) = reader.lookup(user.id.parse().unwrap(), id).await else {
        panic!("the entry was evicted");
    };
    let v1 = read_task(&a, &user, id).await;
    // ... a write of version 2 commits and answers, through the other node ...
    let written = b
        .put(&path(id), &user.token, json!({ "title": "v2" }))
        .await;
    assert_eq!(written.status, StatusCode::OK, "{}", written.body);
    // ... whatever it left in Redis is evicted ...
    let evicted = evict_under_pressure(&redis.url(), &[task_key(&a, &user, id)]).await;
    assert!(evicted > 0);
    // ... and only then does the reader's fill arrive.
    let filled = reader.fill_now(&v1, lease).await.unwrap();

    assert!(!filled, "the stale fill was refused");
    assert_reads(&[&a, &b], &user, id, Some(&written.body)).await;
}

#[tokio::test]
async fn a_late_publish_of_an_older_version_cannot_fill_an_evicted_entry() {
    let redis = small_redis().await;
    let a = TestApp::spawn_with(|c| c.redis_url = redis.url()).await;
    let user = a.register().await;
    let task = a.create_task(&user, json!({ "title": "v1" })).await;
    let id: Uuid = task["id"].as_str().unwrap().parse().unwrap();
    let v2 = a
        .put(&path(id), &user.token, json!({ "title": "v2" }))
        .await;
    let v3 = a
        .put(&path(id), &user.token, json!({ "title": "v3" }))
        .await;
    assert_eq!(v3.body["version"], 3, "{}", v3.body);
    until_hit(&a, &user, id).await;
    assert_eq!(a.get(&path(id), &user.token).await.body, v3.body);

    // Version 3's entry is evicted; then the relay republishes version 2's
    // event (seq 2: create is 1), as it does for an event it finds
    // unpublished.
    evict_under_pressure(&redis.url(), &[task_key(&a, &user, id)]).await;
    let late = outbox_event(&a, &user, 2).await;
    assert!(late.payload.contains("\"v2\""), "{}", late.payload);
    let keys = RedisKeys::new(a.config.redis_namespace.clone());
    let conn = RedisConn::new(
        &RedisTarget::parse(&redis.url()).unwrap(),
        Duration::from_secs(2),
    )
    .unwrap();
    let (publisher, _marks) = Publisher::new(conn, keys, slow_reader(&a));
    publisher.put_on_redis(&[late]).await.unwrap();

    assert_ne!(v2.body["version"], v3.body["version"]);
    assert_reads(&[&a], &user, id, Some(&v3.body)).await;
}

#[tokio::test]
async fn a_deleted_task_stays_deleted_after_its_tombstone_is_evicted() {
    let redis = small_redis().await;
    let a = TestApp::spawn_with(|c| c.redis_url = redis.url()).await;
    let b = a.spawn_peer().await;
    let user = a.register().await;
    let task = a.create_task(&user, json!({ "title": "doomed" })).await;
    let id: Uuid = task["id"].as_str().unwrap().parse().unwrap();
    until_hit(&a, &user, id).await;
    evict_under_pressure(&redis.url(), &[task_key(&a, &user, id)]).await;
    let reader = slow_reader(&a);

    // A reader misses and reads the task ...
    let Lookup::Miss(Some(lease)) = reader.lookup(user.id.parse().unwrap(), id).await else {
        panic!("the entry was evicted");
    };
    let before = read_task(&a, &user, id).await;
    // ... it is deleted through the other node, its tombstone evicted ...
    let deleted = b.delete(&path(id), &user.token).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    evict_under_pressure(&redis.url(), &[task_key(&a, &user, id)]).await;
    // ... then the reader's fill and the relay's late republish of the
    // create event arrive.
    assert!(!reader.fill_now(&before, lease).await.unwrap());
    let conn = RedisConn::new(
        &RedisTarget::parse(&redis.url()).unwrap(),
        Duration::from_secs(2),
    )
    .unwrap();
    let keys = RedisKeys::new(a.config.redis_namespace.clone());
    let (publisher, _marks) = Publisher::new(conn, keys, slow_reader(&a));
    publisher
        .put_on_redis(&[outbox_event(&a, &user, 1).await])
        .await
        .unwrap();

    assert_reads(&[&a, &b], &user, id, None).await;
}

#[tokio::test]
async fn reads_and_writes_through_two_nodes_under_constant_eviction_are_never_stale() {
    let redis = small_redis().await;
    let a = TestApp::spawn_with(|c| c.redis_url = redis.url()).await;
    let b = a.spawn_peer().await;
    let user = a.register().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let task = a
            .create_task(&user, json!({ "title": format!("t{i}") }))
            .await;
        ids.push(task["id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    // Memory pressure all along: fillers keep evicting whatever is old.
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = {
        let (url, stop) = (redis.url(), stop.clone());
        tokio::spawn(async move {
            let mut conn = connect(&url).await;
            let filler = "f".repeat(4 * 1024);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = redis::cmd("SET")
                    .arg(format!("filler:{n}"))
                    .arg(&filler)
                    .arg("PX")
                    .arg(60_000)
                    .query_async::<()>(&mut conn)
                    .await;
                n += 1;
                if n.is_multiple_of(64) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            evicted_keys(&mut conn).await
        })
    };

    for round in 0..12 {
        for (i, id) in ids.iter().enumerate() {
            let (writer, reader) = if (round + i) % 2 == 0 {
                (&a, &b)
            } else {
                (&b, &a)
            };
            // A read racing the write, as a slow reader would.
            let task = path(*id);
            let (_, written) = tokio::join!(
                reader.get(&task, &user.token),
                writer.put(&task, &user.token, json!({ "priority": round % 11 }))
            );
            assert_eq!(written.status, StatusCode::OK, "{}", written.body);
            let version = written.body["version"].as_i64().unwrap();
            for node in [&a, &b, &a] {
                let read = node.get(&path(*id), &user.token).await;
                assert_eq!(
                    read.body["version"].as_i64(),
                    Some(version),
                    "round {round}: stale read (X-Cache: {:?})",
                    read.header("x-cache")
                );
            }
        }
    }
    // One deletion per task, each read back as 404 under the same pressure.
    for id in &ids {
        let task = path(*id);
        let (_, deleted) = tokio::join!(a.get(&task, &user.token), b.delete(&task, &user.token));
        assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for id in &ids {
        assert_reads(&[&a, &b], &user, *id, None).await;
    }
    stop.store(true, Ordering::Relaxed);
    let evicted = flooder.await.unwrap();
    assert!(evicted > 0, "the test ran without eviction");
}
