//! A node whose PostgreSQL or Redis goes away, and a node shutting down.

use test_support::api as common;

use std::time::Duration;

use common::proxy::Proxy;
use common::redis_server::RedisServer;
use common::{eventually, test_config, Subscriber, TestApp, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::json;
use shared::redis_keys::RedisKeys;
use uuid::Uuid;

fn task_path(id: &str) -> String {
    format!("/api/tasks/{id}")
}

/// `host:port` of the test PostgreSQL.
fn postgres_addr() -> String {
    let url = common::admin_url();
    let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let host_part = after_scheme.split('/').next().unwrap();
    host_part
        .rsplit_once('@')
        .map_or(host_part, |(_, host)| host)
        .to_owned()
}

/// A node whose PostgreSQL connections go through a proxy the test can cut.
async fn node_behind_proxy() -> (TestApp, Proxy) {
    let target = postgres_addr();
    let proxy = Proxy::start(target.clone()).await;
    let db = TestDb::create().await;
    let mut config = test_config(&db, &format!("t{}", Uuid::new_v4().simple()));
    config.database_url = db
        .url
        .replace(&target, &format!("127.0.0.1:{}", proxy.port));
    assert_ne!(
        config.database_url, db.url,
        "the node goes through the proxy"
    );
    config.db_timeout = Duration::from_millis(500);
    (TestApp::start(db, config).await, proxy)
}

async fn readyz(app: &TestApp) -> common::Reply {
    app.call(Method::GET, "/readyz", None, None).await
}

#[tokio::test]
async fn with_postgresql_down_task_requests_are_503_unavailable_and_nothing_is_half_written() {
    let (app, proxy) = node_behind_proxy().await;
    let user = app.register().await;
    let task = app.create_task(&user, json!({ "title": "t" })).await;
    let id = task["id"].as_str().unwrap().to_owned();
    let mut events = Subscriber::start(
        &app.config.redis_url,
        RedisKeys::new(app.config.redis_namespace.clone())
            .user_events_channel(user.id.parse().unwrap()),
    )
    .await;

    proxy.cut();

    let list = app.get("/api/tasks", &user.token).await;
    list.assert_error(503, "UNAVAILABLE");
    assert!(list.body.get("details").is_none(), "{}", list.body);
    app.post("/api/tasks", Some(&user.token), json!({ "title": "lost?" }))
        .await
        .assert_error(503, "UNAVAILABLE");
    app.put(&task_path(&id), &user.token, json!({ "title": "changed?" }))
        .await
        .assert_error(503, "UNAVAILABLE");
    app.delete(&task_path(&id), &user.token)
        .await
        .assert_error(503, "UNAVAILABLE");
    let ready = readyz(&app).await;
    ready.assert_error(503, "UNAVAILABLE");
    // The message reveals no internals.
    let message = list.body["message"].as_str().unwrap().to_lowercase();
    assert!(
        !message.contains("127.0.0.1") && !message.contains("postgres://"),
        "{message}"
    );
    let health = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK, "the process is alive");

    proxy.restore();

    assert!(
        eventually(Duration::from_secs(10), || async {
            app.get("/api/tasks", &user.token).await.status == StatusCode::OK
        })
        .await,
        "the node recovers by itself"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            readyz(&app).await.status == StatusCode::OK
        })
        .await
    );
    let list = app.get("/api/tasks", &user.token).await;
    assert_eq!(
        list.body["tasks"],
        json!([task]),
        "nothing was half-written"
    );
    let read = app.get(&task_path(&id), &user.token).await;
    assert_eq!(read.body, task);
    // No event, and no seq, for the refused writes: the next write is seq 2.
    // (The create's event may come again: the cut may have kept it from being
    // marked published, and publishing twice is harmless.)
    let next = app.create_task(&user, json!({ "title": "after" })).await;
    let event = loop {
        let event = events.next(Duration::from_secs(5)).await.expect("an event");
        if event["seq"] == 1 {
            assert_eq!(event["task"], task, "only a repeat of seq 1: {event}");
            continue;
        }
        break event;
    };
    assert_eq!(event["seq"], 2, "{event}");
    assert_eq!(event["type"], "TASK_CREATED");
    assert_eq!(event["task"], next);
}

#[tokio::test]
async fn with_postgresql_down_new_users_and_logins_are_503_unavailable() {
    let (app, proxy) = node_behind_proxy().await;
    let user = app.register().await;

    proxy.cut();

    app.login(&user.email, &user.password)
        .await
        .assert_error(503, "UNAVAILABLE");
    app.post(
        "/api/auth/register",
        None,
        json!({ "email": format!("{}@example.com", Uuid::new_v4().simple()),
                "password": "correct horse battery", "name": "N" }),
    )
    .await
    .assert_error(503, "UNAVAILABLE");

    proxy.restore();
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.login(&user.email, &user.password).await.status == StatusCode::OK
        })
        .await,
        "logins work again"
    );
}

#[tokio::test]
async fn readyz_is_503_while_redis_is_down_and_200_once_it_is_back() {
    let mut redis = RedisServer::start().await;
    let app = TestApp::spawn_with(|c| c.redis_url = redis.url()).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            readyz(&app).await.status == StatusCode::OK
        })
        .await
    );

    redis.stop();

    readyz(&app).await.assert_error(503, "UNAVAILABLE");
    let health = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK);

    redis.restart().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            readyz(&app).await.status == StatusCode::OK
        })
        .await,
        "ready again once Redis is back"
    );
}

#[tokio::test]
async fn a_request_in_flight_when_the_node_stops_still_completes() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    // Hold the login up inside the node: it reads `login_failures` first.
    let blocker = app.db.client().await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE login_failures IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let login = {
        let request = app
            .http
            .post(app.url("/api/auth/login"))
            .json(&json!({ "email": user.email, "password": user.password }));
        tokio::spawn(TestApp::read(request))
    };
    let observer = app.db.client().await;
    let db_name = app.db.name.clone();
    assert!(
        eventually(Duration::from_secs(10), || async {
            let waiting: i64 = observer
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = $1 AND wait_event_type = 'Lock'",
                    &[&db_name],
                )
                .await
                .unwrap()
                .get(0);
            waiting > 0
        })
        .await,
        "the login is in flight"
    );

    let port = app.port;
    let stopping = tokio::spawn(app.stop());
    assert!(
        eventually(Duration::from_secs(5), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
        })
        .await,
        "the node stops accepting connections"
    );
    assert!(!login.is_finished(), "the login is still in flight");
    blocker.batch_execute("COMMIT").await.unwrap();

    let reply = tokio::time::timeout(Duration::from_secs(10), login)
        .await
        .expect("the login completes")
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["user"]["id"], user.id.as_str());
    assert!(reply.body["token"].is_string());
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the node finishes stopping")
        .unwrap();
}

/// What a PostgreSQL restart does to a node's pooled connections: the
/// server ends every backend with "terminating connection due to
/// administrator command" (SQLSTATE 57P01). Requests caught by it are 503
/// UNAVAILABLE, never 500, and the pool recovers on its own.
#[tokio::test]
async fn connections_ended_by_a_postgresql_restart_answer_503_never_500() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let task = app.create_task(&user, json!({ "title": "t" })).await;
    let id = task["id"].as_str().unwrap().to_owned();
    let admin = app.db.client().await;
    for round in 0..5 {
        // Fill the pool with open connections, then end them all.
        let warm: Vec<_> = (0..8)
            .map(|_| app.get("/api/tasks?limit=1", &user.token))
            .collect();
        for reply in futures_util::future::join_all(warm).await {
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        }
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        let calls: Vec<_> = (0..8)
            .map(|n| {
                let body = json!({ "title": format!("r{round} n{n}") });
                let user = &user;
                let app = &app;
                let id = &id;
                async move {
                    if n % 2 == 0 {
                        app.post("/api/tasks", Some(&user.token), body).await
                    } else {
                        app.get(&task_path(id), &user.token).await
                    }
                }
            })
            .collect();
        for reply in futures_util::future::join_all(calls).await {
            assert!(
                reply.status.is_success() || reply.status == StatusCode::SERVICE_UNAVAILABLE,
                "round {round}: {} {}",
                reply.status,
                reply.body
            );
            if reply.status == StatusCode::SERVICE_UNAVAILABLE {
                reply.assert_error(503, "UNAVAILABLE");
            }
        }
    }
    // The pool has replaced the ended connections by itself.
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.get(&task_path(&id), &user.token).await.status == StatusCode::OK
        })
        .await
    );
}
