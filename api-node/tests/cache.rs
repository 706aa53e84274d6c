//! The task cache: hits after a miss, reading one's own writes through any
//! node, no cached task shown to another user, and PostgreSQL serving
//! everything while Redis is down.

use test_support::api as common;

use std::time::Duration;

use common::proxy::Proxy;
use common::redis_server::RedisServer;
use common::{eventually, TestApp, TestUser};
use reqwest::StatusCode;
use serde_json::{json, Value};
use shared::redis_keys::RedisKeys;

fn task_path(id: &str) -> String {
    format!("/api/tasks/{id}")
}

fn id_of(task: &Value) -> String {
    task["id"].as_str().unwrap().to_owned()
}

/// Drops a task's cache entry, as its expiry or an eviction would.
async fn evict(app: &TestApp, user: &TestUser, id: &str) {
    let client = redis::Client::open(app.config.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("DEL")
        .arg(
            RedisKeys::new(app.config.redis_namespace.clone())
                .task(user.id.parse().unwrap(), id.parse().unwrap()),
        )
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
}

/// Waits until a read of the task is a cache hit.
async fn until_hit(app: &TestApp, user: &TestUser, id: &str) {
    let path = task_path(id);
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.get(&path, &user.token).await.header("x-cache") == Some("HIT")
        })
        .await,
        "reads of {id} become cache hits"
    );
}

#[tokio::test]
async fn a_read_of_an_uncached_task_is_a_miss_and_the_next_reads_are_hits() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let task = app
        .create_task(&user, json!({ "title": "cached", "description": "x|y" }))
        .await;
    let id = id_of(&task);
    evict(&app, &user, &id).await;

    let first = app.get(&task_path(&id), &user.token).await;

    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(first.body, task);
    // The fill is asynchronous: a later read is a hit.
    until_hit(&app, &user, &id).await;
    let hit = app.get(&task_path(&id), &user.token).await;
    assert_eq!(hit.status, StatusCode::OK);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(hit.body, task, "a hit answers the same task");
    assert_eq!(hit.header("etag"), Some("\"1\""));
    assert!(hit
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("application/json")));
}

#[tokio::test]
async fn an_update_through_one_node_is_read_back_through_another_at_once() {
    let a = TestApp::spawn().await;
    let b = a.spawn_peer().await;
    let user = a.register().await;
    let task = b.create_task(&user, json!({ "title": "v1" })).await;
    let id = id_of(&task);
    let read = a.get(&task_path(&id), &user.token).await;
    assert_eq!(
        read.status,
        StatusCode::OK,
        "a create is read back elsewhere"
    );
    assert_eq!(read.body, task);
    until_hit(&a, &user, &id).await;
    until_hit(&b, &user, &id).await;

    for version in 2..=6 {
        let written = b
            .put(
                &task_path(&id),
                &user.token,
                json!({ "title": format!("v{version}") }),
            )
            .await;
        assert_eq!(written.status, StatusCode::OK, "{}", written.body);

        let read = a.get(&task_path(&id), &user.token).await;
        assert_eq!(read.status, StatusCode::OK);
        assert_eq!(read.body, written.body, "no stale read after the write");
        assert_eq!(read.body["version"], version);
        assert_eq!(read.header("etag"), Some(format!("\"{version}\"").as_str()));
        let again = b.get(&task_path(&id), &user.token).await;
        assert_eq!(again.body, written.body);
    }
}

#[tokio::test]
async fn a_delete_through_one_node_is_a_404_through_another_at_once() {
    let a = TestApp::spawn().await;
    let b = a.spawn_peer().await;
    let user = a.register().await;
    let task = a.create_task(&user, json!({ "title": "doomed" })).await;
    let id = id_of(&task);
    until_hit(&a, &user, &id).await;

    let deleted = b.delete(&task_path(&id), &user.token).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);

    a.get(&task_path(&id), &user.token)
        .await
        .assert_error(404, "NOT_FOUND");
    b.get(&task_path(&id), &user.token)
        .await
        .assert_error(404, "NOT_FOUND");
    a.put(&task_path(&id), &user.token, json!({ "title": "x" }))
        .await
        .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn an_uncached_task_updated_elsewhere_is_never_read_stale() {
    // A reader's cache fill that loses the race with a write must not put
    // the old version back.
    let a = TestApp::spawn().await;
    let b = a.spawn_peer().await;
    let user = a.register().await;
    let task = a.create_task(&user, json!({ "title": "v1" })).await;
    let id = id_of(&task);
    let path = task_path(&id);

    for version in 2..=8 {
        evict(&a, &user, &id).await;
        let (read, written) = tokio::join!(
            a.get(&path, &user.token),
            b.put(&path, &user.token, json!({ "priority": version }))
        );
        assert_eq!(read.status, StatusCode::OK);
        assert_eq!(written.status, StatusCode::OK, "{}", written.body);
        // After the write has answered, every read gives it back.
        for node in [&a, &b, &a] {
            let read = node.get(&task_path(&id), &user.token).await;
            assert_eq!(read.body, written.body, "version {version}");
        }
    }
}

#[tokio::test]
async fn another_users_read_of_a_cached_task_is_not_found() {
    let a = TestApp::spawn().await;
    let b = a.spawn_peer().await;
    let owner = a.register().await;
    let other = a.register().await;
    let task = a.create_task(&owner, json!({ "title": "private" })).await;
    let id = id_of(&task);
    until_hit(&a, &owner, &id).await;

    for node in [&a, &b] {
        let reply = node.get(&task_path(&id), &other.token).await;
        reply.assert_error(404, "NOT_FOUND");
        assert!(reply.body.get("title").is_none(), "{}", reply.body);
        assert!(!reply.body.to_string().contains("private"));
    }
    let own = a.get(&task_path(&id), &owner.token).await;
    assert_eq!(own.body, task);
}

#[tokio::test]
async fn reads_are_served_from_postgresql_while_redis_is_down() {
    let mut redis = RedisServer::start().await;
    let app = TestApp::spawn_with(|c| c.redis_url = redis.url()).await;
    let user = app.register().await;
    let task = app
        .create_task(&user, json!({ "title": "still there", "priority": 3 }))
        .await;
    let id = id_of(&task);
    until_hit(&app, &user, &id).await;

    redis.stop();

    let read = app.get(&task_path(&id), &user.token).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body, task);
    assert_eq!(read.header("etag"), Some("\"1\""));
    let list = app.get("/api/tasks", &user.token).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["tasks"], json!([task]));
    let missing = app
        .get(&task_path(&uuid::Uuid::new_v4().to_string()), &user.token)
        .await;
    missing.assert_error(404, "NOT_FOUND");
}

/// A Redis that holds its connections open and answers nothing (a hung
/// host, a full network buffer) costs each request at most the Redis
/// timeout (250 ms in tests): every call is bounded by the node itself.
#[tokio::test]
async fn reads_and_writes_are_answered_within_the_timeout_while_redis_hangs() {
    let redis = RedisServer::start().await;
    let app = TestApp::spawn_with(|c| c.redis_url = redis.url()).await;
    let user = app.register().await;
    let task = app
        .create_task(&user, json!({ "title": "still there", "priority": 3 }))
        .await;
    let id = id_of(&task);
    until_hit(&app, &user, &id).await;

    redis.freeze();
    let started = std::time::Instant::now();
    let read = app.get(&task_path(&id), &user.token).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body, task);
    assert_eq!(read.header("x-cache"), Some("MISS"));
    let created = app
        .post(
            "/api/tasks",
            Some(&user.token),
            json!({ "title": "written meanwhile" }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let elapsed = started.elapsed();
    redis.thaw();
    assert!(
        elapsed < Duration::from_secs(3),
        "a read and a write took {elapsed:?} against a hung Redis"
    );
}

#[tokio::test]
async fn writes_succeed_while_redis_is_down_and_are_read_back() {
    let mut redis = RedisServer::start().await;
    let app = TestApp::spawn_with(|c| c.redis_url = redis.url()).await;
    let user = app.register().await;
    let existing = app.create_task(&user, json!({ "title": "before" })).await;
    let existing_id = id_of(&existing);
    until_hit(&app, &user, &existing_id).await;

    redis.stop();

    let created = app
        .post(
            "/api/tasks",
            Some(&user.token),
            json!({ "title": "during outage" }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = id_of(&created.body);
    let updated = app
        .put(&task_path(&id), &user.token, json!({ "status": "DONE" }))
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["version"], 2);
    let read = app.get(&task_path(&id), &user.token).await;
    assert_eq!(read.body, updated.body);
    let changed = app
        .put(
            &task_path(&existing_id),
            &user.token,
            json!({ "priority": 9 }),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let deleted = app.delete(&task_path(&id), &user.token).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    app.get(&task_path(&id), &user.token)
        .await
        .assert_error(404, "NOT_FOUND");

    // Redis back (empty, as after a crash): reads still give the writes.
    redis.restart().await;
    app.get(&task_path(&id), &user.token)
        .await
        .assert_error(404, "NOT_FOUND");
    let read = app.get(&task_path(&existing_id), &user.token).await;
    assert_eq!(read.body, changed.body);
}

#[tokio::test]
async fn a_write_made_while_redis_was_unreachable_is_read_back_once_it_returns() {
    // Redis unreachable from the node (a network cut) but keeping its data:
    // the write cannot invalidate the cached copy while it is cut off, yet
    // the client must read its write back once Redis is reachable again.
    let redis = RedisServer::start().await;
    let link = Proxy::start(format!("127.0.0.1:{}", redis.port)).await;
    let app = TestApp::spawn_with(|c| {
        c.redis_url = format!("redis://127.0.0.1:{}", link.port);
        // The product's default (RELAY_GRACE_MS): the relay repairs the
        // cache only after this long.
        c.relay_grace = Duration::from_secs(2);
    })
    .await;
    let user = app.register().await;
    let task = app.create_task(&user, json!({ "title": "v1" })).await;
    let id = id_of(&task);
    until_hit(&app, &user, &id).await;

    link.cut();
    let written = app
        .put(&task_path(&id), &user.token, json!({ "title": "v2" }))
        .await;
    assert_eq!(written.status, StatusCode::OK, "{}", written.body);
    link.restore();
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.call(reqwest::Method::GET, "/readyz", None, None)
                .await
                .status
                == StatusCode::OK
        })
        .await,
        "the node reaches Redis again"
    );

    let read = app.get(&task_path(&id), &user.token).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(
        read.body,
        written.body,
        "X-Cache: {:?}",
        read.header("x-cache")
    );
}

/// Makes Redis forget every script, as a restart or a new primary would.
async fn flush_scripts(url: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn writes_and_fills_still_reach_the_cache_after_redis_forgot_its_scripts() {
    // Scripts go by SHA1 (EVALSHA); Redis answers NOSCRIPT when it does
    // not hold them, and the node sends their text instead.
    let redis = RedisServer::start().await;
    let app = TestApp::spawn_with(|c| c.redis_url = redis.url()).await;
    let user = app.register().await;
    let task = app.create_task(&user, json!({ "title": "scripted" })).await;
    let id = id_of(&task);
    let path = task_path(&id);
    until_hit(&app, &user, &id).await;

    // A write's cache upgrade: the next read is a hit of the new version.
    flush_scripts(&redis.url()).await;
    let written = app.put(&path, &user.token, json!({ "priority": 5 })).await;
    assert_eq!(written.status, StatusCode::OK);
    let read = app.get(&path, &user.token).await;
    assert_eq!(read.header("x-cache"), Some("HIT"));
    assert_eq!(read.body, written.body);

    // A reader's fill.
    evict(&app, &user, &id).await;
    flush_scripts(&redis.url()).await;
    assert_eq!(
        app.get(&path, &user.token).await.header("x-cache"),
        Some("MISS")
    );
    until_hit(&app, &user, &id).await;
    assert_eq!(app.get(&path, &user.token).await.body, written.body);
}
