//! What an on-call engineer reads in a ws-node's `/metrics` (the series the
//! alerts in deploy/prometheus/alerts.yml and the dashboard ask about):
//! events received from Redis against events delivered, a gap filled from
//! history, a resume answered RESYNC_REQUIRED, the node's socket cap, and
//! Redis reachability as the node sees it.
//!
//! One test, on purpose: the metrics recorder is process-wide, so every
//! node of a test binary writes the same series, and the counts read here
//! are this test's own only when nothing runs beside it.

use test_support::ws as common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::api::redis_server::RedisServer;
use common::api::scrape::Scrape;
use common::api::{eventually, TestApp};
use common::{is_event, seqs, WsNode};
use serde_json::json;
use uuid::Uuid;

async fn scrape(ws: &WsNode) -> Scrape {
    Scrape::get(&ws.http_url("/metrics")).await
}

/// How much each of these series grew between two scrapes.
fn grew(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.value(name, labels) - before.value(name, labels)
}

fn outcome(outcome: &str) -> [(&str, &str); 1] {
    [("outcome", outcome)]
}

/// Puts events `seqs` of `user` straight in the outbox (committed and
/// published now) and makes the last one the user's latest seq; returns
/// their JSON.
async fn commit_events(api: &TestApp, user_id: Uuid, seqs: &[i64]) -> Vec<String> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let payloads: Vec<String> = seqs
        .iter()
        .map(|&seq| {
            let task = json!({
                "id": Uuid::new_v4(), "userId": user_id, "title": format!("t{seq}"),
                "description": null, "status": "TODO", "priority": 0, "version": 1,
            });
            shared::events::event_json(
                shared::events::EventKind::Created,
                seq,
                now_ms,
                &task.to_string(),
            )
        })
        .collect();
    let db = api.db.client().await;
    db.execute(
        "INSERT INTO task_events (user_id, seq, payload, published_at)
         SELECT $1, s, p, now() FROM unnest($2::bigint[], $3::text[]) AS e(s, p)",
        &[&user_id, &seqs, &payloads],
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE users SET event_seq = $2 WHERE id = $1",
        &[&user_id, seqs.last().unwrap()],
    )
    .await
    .unwrap();
    payloads
}

#[tokio::test]
async fn a_ws_nodes_metrics_show_events_gaps_resyncs_cap_and_redis() {
    let mut redis = RedisServer::start().await;
    let api = TestApp::spawn_with(|c| c.redis_url = redis.url()).await;
    let ws = WsNode::start_with(&api, |c| c.max_connections = 1234).await;
    let user = api.register().await;
    let user_id: Uuid = user.id.parse().unwrap();

    let start = scrape(&ws).await;
    assert_eq!(start.value("ws_connections_max", &[]), 1234.0);

    // Three writes: each received once from Redis and delivered once (a
    // republished copy, should the relay send one, is a duplicate).
    let (mut client, latest) = ws.subscribed(&user.token).await;
    let before = scrape(&ws).await;
    for i in 0..3 {
        api.create_task(&user, json!({ "title": format!("t{i}") }))
            .await;
    }
    assert_eq!(
        seqs(&client.events(3).await),
        [latest + 1, latest + 2, latest + 3]
    );
    let after = scrape(&ws).await;
    let received = grew(&before, &after, "ws_events_received_total", &[]);
    let delivered = grew(
        &before,
        &after,
        "ws_hub_events_total",
        &outcome("delivered"),
    );
    let duplicates = grew(
        &before,
        &after,
        "ws_hub_events_total",
        &outcome("duplicate"),
    );
    assert_eq!(delivered, 3.0, "three events fanned out");
    assert_eq!(
        received,
        delivered + duplicates,
        "every event received is accounted for"
    );

    // A gap: the next two events are committed, but only the second
    // reaches Redis. The hub holds it, fills the first from history, and
    // the socket gets both in order.
    let latest = latest + 3;
    let before = scrape(&ws).await;
    let payloads = commit_events(&api, user_id, &[latest + 1, latest + 2]).await;
    let channel = shared::redis_keys::RedisKeys::new(api.config.redis_namespace.clone())
        .user_events_channel(user_id);
    let mut conn = common::redis_conn(&redis.url()).await;
    let _: i64 = redis::cmd("PUBLISH")
        .arg(&channel)
        .arg(&payloads[1])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(seqs(&client.events(2).await), [latest + 1, latest + 2]);
    let after = scrape(&ws).await;
    let fills = [("scope", "user"), ("result", "filled")];
    assert_eq!(grew(&before, &after, "ws_events_received_total", &[]), 1.0);
    assert_eq!(
        grew(&before, &after, "ws_hub_events_total", &outcome("gap")),
        1.0
    );
    assert_eq!(grew(&before, &after, "ws_gap_fills_total", &fills), 1.0);
    assert_eq!(grew(&before, &after, "ws_gap_fill_events_total", &[]), 1.0);
    assert_eq!(
        grew(
            &before,
            &after,
            "ws_hub_events_total",
            &outcome("delivered")
        ),
        2.0
    );

    // A resume from beyond the latest seq: RESYNC_REQUIRED, counted by
    // reason.
    let latest = latest + 2;
    let before = scrape(&ws).await;
    let (_other, seen, subscribed) = ws.resumed(&user.token, latest + 100).await;
    assert_eq!(subscribed, latest);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["type"], "RESYNC_REQUIRED");
    let after = scrape(&ws).await;
    for reason in ws_node::metrics::RESYNC_REASONS {
        let want = if reason == "ahead" { 1.0 } else { 0.0 };
        assert_eq!(
            grew(
                &before,
                &after,
                "ws_resync_required_total",
                &[("reason", reason)]
            ),
            want,
            "RESYNC_REQUIRED for {reason}"
        );
    }
    assert!(!is_event(&seen[0]));

    // Redis lost and back, as this node sees it.
    let redis_up = |s: &Scrape| s.value("dependency_up", &[("dependency", "redis")]);
    redis.stop();
    let url = ws.http_url("/metrics");
    assert!(
        eventually(Duration::from_secs(10), || async {
            redis_up(&Scrape::get(&url).await) == 0.0
        })
        .await,
        "dependency_up{{dependency=\"redis\"}} goes to 0 with Redis down"
    );
    let down = scrape(&ws).await;
    assert_eq!(
        down.value("dependency_up", &[("dependency", "postgres")]),
        1.0
    );
    redis.restart().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            redis_up(&Scrape::get(&url).await) == 1.0
        })
        .await,
        "and back to 1 once Redis is back"
    );

    // Every label of the node's own series has a fixed set of values, each
    // registered from the start.
    let allowed: BTreeMap<(&str, &str), BTreeSet<&str>> = [
        (
            ("ws_closes_total", "code"),
            BTreeSet::from(["1000", "1001", "1008", "1009", "4001"]),
        ),
        (
            ("ws_hub_events_total", "outcome"),
            BTreeSet::from(ws_node::metrics::HUB_OUTCOMES),
        ),
        (
            ("ws_gap_fills_total", "scope"),
            BTreeSet::from(["user", "socket"]),
        ),
        (
            ("ws_gap_fills_total", "result"),
            BTreeSet::from(["filled", "failed"]),
        ),
        (
            ("ws_resync_required_total", "reason"),
            BTreeSet::from(ws_node::metrics::RESYNC_REASONS),
        ),
        (
            ("dependency_up", "dependency"),
            BTreeSet::from(shared::metrics::DEPENDENCIES),
        ),
    ]
    .into();
    let last = scrape(&ws).await;
    let mut seen: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for sample in last
        .samples
        .iter()
        .filter(|s| s.name.starts_with("ws_") || s.name == "dependency_up")
    {
        for (key, value) in &sample.labels {
            if key == "le" {
                continue;
            }
            let values = allowed
                .get(&(sample.name.as_str(), key.as_str()))
                .unwrap_or_else(|| {
                    panic!("{}: label {key} has no known set of values", sample.name)
                });
            assert!(
                values.contains(value.as_str()),
                "{}: {key}={value:?}",
                sample.name
            );
            seen.entry((sample.name.as_str(), key.as_str()))
                .or_default()
                .insert(value.as_str());
        }
    }
    assert_eq!(seen, allowed);
}
