//! What an on-call engineer reads in an api-node's `/metrics` when things
//! go wrong (the series the alerts in deploy/prometheus/alerts.yml ask
//! about): logins and registrations refused by each limit, hashes waiting
//! for a thread, the relay's backlog while Redis is away, each
//! dependency's reachability, and how current the revocation set is.
//!
//! One test, on purpose: the metrics recorder is process-wide, so every
//! node of a test binary writes the same series, and the counts read here
//! are this test's own only when nothing runs beside it.

use test_support::api as common;

use std::time::Duration;

use common::proxy::Proxy;
use common::redis_server::RedisServer;
use common::scrape::Scrape;
use common::{eventually, test_config, Reply, TestApp, TestDb, TestUser};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

/// How long a background change may take to show (the dependency check
/// runs every 2 s, the relay every 200 ms in tests).
const WITHIN: Duration = Duration::from_secs(10);

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

/// Polls the node's `/metrics` until `check` holds; the last scrape either
/// way.
async fn scrape_until(app: &TestApp, check: impl Fn(&Scrape) -> bool) -> (bool, Scrape) {
    let url = app.url("/metrics");
    let ok = eventually(WITHIN, || async { check(&Scrape::get(&url).await) }).await;
    (ok, Scrape::get(&url).await)
}

/// The series this test watches, for its assertion messages.
const WATCHED: [&str; 4] = [
    "dependency_up",
    "outbox_oldest_unpublished_age_seconds",
    "revocation_channel_connected",
    "revocation_last_sync_timestamp_seconds",
];

fn dependency(scrape: &Scrape, name: &str) -> f64 {
    scrape.value("dependency_up", &[("dependency", name)])
}

fn limited(scrape: &Scrape, limit: &str) -> f64 {
    scrape.value("auth_rate_limited_total", &[("limit", limit)])
}

/// A login as if from `client` (the node trusts 127.0.0.1 as its proxy).
async fn login_from(app: &TestApp, user: &TestUser, client: &str) -> Reply {
    let body = json!({ "email": user.email, "password": user.password });
    let req = app
        .http
        .post(app.url("/api/auth/login"))
        .header("x-forwarded-for", client);
    TestApp::read(req.json(&body)).await
}

/// Seconds since the node last read the revocations from PostgreSQL.
fn revocation_lag(scrape: &Scrape) -> f64 {
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    now - scrape.value("revocation_last_sync_timestamp_seconds", &[])
}

#[tokio::test]
async fn an_api_nodes_metrics_show_limits_queues_backlog_and_dependencies() {
    // A node with a Redis of its own (to stop) and its PostgreSQL behind a
    // proxy (to cut), one hashing thread and small limits.
    let mut redis = RedisServer::start().await;
    let target = postgres_addr();
    let proxy = Proxy::start(target.clone()).await;
    let db = TestDb::create().await;
    let mut config = test_config(&db, &format!("t{}", Uuid::new_v4().simple()));
    config.database_url = db
        .url
        .replace(&target, &format!("127.0.0.1:{}", proxy.port));
    config.db_timeout = Duration::from_millis(500);
    config.redis_url = redis.url();
    config.hash_concurrency = 1;
    config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    config.email_limit.max_failures = 2;
    config.client_limit.max_failures = 4;
    config.register_limit.max_failures = 3;
    let app = TestApp::start(db, config).await;

    // Healthy: both dependencies up, both revocation feeds current.
    let (ok, healthy) = scrape_until(&app, |s| {
        dependency(s, "postgres") == 1.0
            && dependency(s, "redis") == 1.0
            && s.value("revocation_channel_connected", &[]) == 1.0
    })
    .await;
    assert!(
        ok,
        "a healthy node reports its dependencies up: \n{}",
        healthy.show(&WATCHED)
    );
    assert!(
        revocation_lag(&healthy) < 2.0,
        "revocations read {} s ago",
        revocation_lag(&healthy)
    );
    assert_eq!(
        healthy.value("outbox_oldest_unpublished_age_seconds", &[]),
        0.0
    );

    // Hashes queue behind the one thread: four logins at once, each waits
    // for the ones before it. From four client addresses, so that no rate
    // limit's lock lines them up before they reach the queue (all from one
    // address, each would wait for the one before it on the address's lock
    // instead, and on a busy machine arrive after the hash before it).
    let before = Scrape::get(&app.url("/metrics")).await;
    let (alice, bob) = (app.register().await, app.register().await);
    let logins = [
        (&alice, "198.51.100.1"),
        (&bob, "198.51.100.2"),
        (&alice, "198.51.100.3"),
        (&bob, "198.51.100.4"),
    ]
    .map(|(user, client)| login_from(&app, user, client));
    for reply in futures_util::future::join_all(logins).await {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let after = Scrape::get(&app.url("/metrics")).await;
    let waits = |s: &Scrape| s.value("password_hash_queue_wait_seconds_count", &[]);
    let quick = |s: &Scrape| {
        s.value(
            "password_hash_queue_wait_seconds_bucket",
            &[("le", "0.005")],
        )
    };
    assert_eq!(
        waits(&after) - waits(&before),
        6.0,
        "two registrations and four logins: six hashes, each with its wait"
    );
    assert!(
        (waits(&after) - quick(&after)) - (waits(&before) - quick(&before)) >= 1.0,
        "with one hashing thread, a burst waits longer than 5 ms for it"
    );

    // Each limit's 429s under its own label.
    let before = Scrape::get(&app.url("/metrics")).await;
    for _ in 0..2 {
        let reply = app.login(&alice.email, "wrong password").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    }
    app.login(&alice.email, "wrong password")
        .await
        .assert_error(429, "RATE_LIMITED");
    for _ in 0..2 {
        let reply = app.login("nobody@example.com", "wrong password").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    }
    // A fresh email: only the client's limit (4 failures) stops it.
    app.login("someone-else@example.com", "wrong password")
        .await
        .assert_error(429, "RATE_LIMITED");
    app.register().await;
    let refused = app
        .post(
            "/api/auth/register",
            None,
            json!({ "email": "late@example.com", "password": "correct horse battery", "name": "L" }),
        )
        .await;
    refused.assert_error(429, "RATE_LIMITED");
    let after = Scrape::get(&app.url("/metrics")).await;
    for limit in ["login_email", "login_client", "register_client"] {
        assert_eq!(
            limited(&after, limit) - limited(&before, limit),
            1.0,
            "one 429 by {limit}"
        );
    }

    // A logout grows the revocation set every node holds.
    let known = |s: &Scrape| s.value("revocations_known", &[]);
    let before = known(&after);
    let reply = app
        .post("/api/auth/logout", Some(&alice.token), json!({}))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let (ok, seen) = scrape_until(&app, |s| known(s) == before + 1.0).await;
    assert!(
        ok,
        "revocations_known {} after one logout from {before}",
        known(&seen)
    );

    // Redis away: writes still commit, their events wait in the outbox, and
    // the backlog's age grows until Redis is back and the relay publishes.
    redis.stop();
    app.create_task(&bob, json!({ "title": "while Redis is down" }))
        .await;
    let (ok, down) = scrape_until(&app, |s| {
        dependency(s, "redis") == 0.0
            && s.value("outbox_oldest_unpublished_age_seconds", &[]) >= 1.5
            && s.value("revocation_channel_connected", &[]) == 0.0
    })
    .await;
    assert!(
        ok,
        "Redis down: dependency_up 0, a growing backlog, the channel lost: \n{}",
        down.show(&WATCHED)
    );
    assert_eq!(dependency(&down, "postgres"), 1.0);
    redis.restart().await;
    let (ok, back) = scrape_until(&app, |s| {
        dependency(s, "redis") == 1.0
            && s.value("outbox_oldest_unpublished_age_seconds", &[]) == 0.0
            && s.value("revocation_channel_connected", &[]) == 1.0
    })
    .await;
    assert!(
        ok,
        "Redis back: the relay emptied the backlog: \n{}",
        back.show(&WATCHED)
    );

    // PostgreSQL away: the node says so, and its revocation set stops
    // being refreshed from it.
    proxy.cut();
    let (ok, cut) = scrape_until(&app, |s| {
        dependency(s, "postgres") == 0.0 && revocation_lag(s) >= 2.0
    })
    .await;
    assert!(
        ok,
        "PostgreSQL cut: dependency_up 0 and the revocation lag growing: \n{}",
        cut.show(&WATCHED)
    );
    assert_eq!(dependency(&cut, "redis"), 1.0);
    proxy.restore();
    let (ok, restored) = scrape_until(&app, |s| {
        dependency(s, "postgres") == 1.0 && revocation_lag(s) < 2.0
    })
    .await;
    assert!(ok, "PostgreSQL back: \n{}", restored.show(&WATCHED));
}
