//! The suites that matter for Redis, against a real Redis Cluster (3
//! primaries + 3 replicas, `TEST_REDIS_CLUSTER_URL`): events over sharded
//! pub/sub to sockets on two ws-nodes from two api-nodes, for users whose
//! channels live on different shards; the cache and read-your-writes across
//! nodes; resuming with `since`; a logout reaching every node; a user's slot
//! moved to another primary while their socket is subscribed. The failover
//! under traffic is the chaos suite's (scripts/chaos.sh, FAILOVER.md).

use test_support::ws as common;

use std::collections::HashSet;
use std::time::Duration;

use common::api::{eventually, redis_cluster_url, TestUser};
use common::{code, seqs, TestApp, WsNode};
use reqwest::StatusCode;
use serde_json::json;
use shared::redis_conn::{RedisConn, RedisTarget};
use shared::redis_keys::RedisKeys;
use shared::redis_topology::{self, Topology};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use uuid::Uuid;

/// Two api-nodes on the cluster, waiting for one replica per write.
async fn api_nodes() -> (TestApp, TestApp) {
    let a = TestApp::spawn_with(|c| {
        c.redis_url = redis_cluster_url();
        c.redis_wait_replicas = 1;
    })
    .await;
    let b = a.spawn_peer().await;
    (a, b)
}

/// How many primaries hold these users' channels.
async fn shards_of(api: &TestApp, users: &[TestUser]) -> usize {
    let target = RedisTarget::parse(&redis_cluster_url()).unwrap();
    let conn = RedisConn::new(&target, Duration::from_secs(2)).unwrap();
    let topology = Topology::read(&conn).await.unwrap();
    let keys = RedisKeys::new(api.config.redis_namespace.clone());
    users
        .iter()
        .map(|user| {
            let channel = keys.user_events_channel(user.id.parse().unwrap());
            topology.owner(channel.as_bytes()).cloned().unwrap()
        })
        .collect::<HashSet<_>>()
        .len()
}

#[tokio::test]
async fn every_users_events_reach_their_sockets_on_both_nodes_in_order_from_every_shard() {
    let (a, b) = api_nodes().await;
    let (ws_a, ws_b) = (WsNode::start(&a).await, WsNode::start(&b).await);
    let mut users = Vec::new();
    for _ in 0..9 {
        users.push(a.register().await);
    }
    assert!(
        shards_of(&a, &users).await >= 2,
        "9 users' channels all on one shard"
    );
    let mut sockets = Vec::new();
    for user in &users {
        let (on_a, _) = ws_a.subscribed(&user.token).await;
        let (on_b, _) = ws_b.subscribed(&user.token).await;
        sockets.push([on_a, on_b]);
    }

    // Three writes per user, alternating api-nodes: create, update, delete.
    for (i, user) in users.iter().enumerate() {
        let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let task = first
            .create_task(user, json!({ "title": format!("task of user {i}") }))
            .await;
        let path = format!("/api/tasks/{}", task["id"].as_str().unwrap());
        let updated = second
            .put(&path, &user.token, json!({ "status": "DONE" }))
            .await;
        assert_eq!(updated.status, StatusCode::OK);
        assert_eq!(
            first.delete(&path, &user.token).await.status,
            StatusCode::NO_CONTENT
        );
    }

    for (i, pair) in sockets.iter_mut().enumerate() {
        for socket in pair.iter_mut() {
            let events = socket.events(3).await;
            assert_eq!(seqs(&events), [1, 2, 3], "user {i}");
            let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
            assert_eq!(
                kinds,
                ["TASK_CREATED", "TASK_UPDATED", "TASK_DELETED"],
                "user {i}"
            );
            assert!(events
                .iter()
                .all(|e| e["task"]["title"] == format!("task of user {i}")
                    || e["type"] == "TASK_DELETED"));
            socket.expect_silence(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test]
async fn the_cache_serves_hits_and_every_write_is_read_back_on_the_other_node() {
    let (a, b) = api_nodes().await;
    let user = a.register().await;
    let task = a.create_task(&user, json!({ "title": "cached" })).await;
    let path = format!("/api/tasks/{}", task["id"].as_str().unwrap());

    assert_eq!(
        b.get(&path, &user.token).await.header("x-cache"),
        Some("MISS")
    );
    // The miss's fill is stored after its answer: wait for it, not assume it.
    assert!(
        eventually(Duration::from_secs(5), || async {
            let read = b.get(&path, &user.token).await;
            (read.status, read.header("x-cache")) == (StatusCode::OK, Some("HIT"))
        })
        .await,
        "the miss's fill makes later reads hits"
    );

    for version in 1..=5 {
        let written = a
            .put(&path, &user.token, json!({ "priority": version }))
            .await;
        assert_eq!(written.status, StatusCode::OK);
        let read = b.get(&path, &user.token).await;
        assert_eq!(read.status, StatusCode::OK);
        assert_eq!(read.body, written.body, "write {version} read back");
    }
    // Another user's id never finds the owner's entry.
    let other = b.register().await;
    b.get(&path, &other.token)
        .await
        .assert_error(404, "NOT_FOUND");

    assert_eq!(
        b.delete(&path, &user.token).await.status,
        StatusCode::NO_CONTENT
    );
    a.get(&path, &user.token)
        .await
        .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn a_resume_with_since_replays_what_was_missed() {
    let (a, _b) = api_nodes().await;
    let ws = WsNode::start(&a).await;
    let user = a.register().await;
    for n in 0..6 {
        a.create_task(&user, json!({ "title": format!("t{n}") }))
            .await;
    }
    let (mut client, replayed, seq) = ws.resumed(&user.token, 2).await;
    assert_eq!(seqs(&replayed), [3, 4, 5, 6]);
    assert_eq!(seq, 6);
    a.create_task(&user, json!({ "title": "live" })).await;
    assert_eq!(seqs(&client.events(1).await), [7]);
}

#[tokio::test]
async fn a_logout_reaches_every_node_within_a_second() {
    let (a, b) = api_nodes().await;
    let (ws_a, ws_b) = (WsNode::start(&a).await, WsNode::start(&b).await);
    let user = a.register().await;
    let (mut on_a, _) = ws_a.subscribed(&user.token).await;
    let (mut on_b, _) = ws_b.subscribed(&user.token).await;

    let out = a
        .post("/api/auth/logout", Some(&user.token), json!({}))
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    for socket in [&mut on_a, &mut on_b] {
        assert_eq!(
            socket.expect_close(Duration::from_secs(1)).await,
            Some(code(CloseCode::Library(4001)))
        );
    }
    assert!(
        common::api::eventually(Duration::from_secs(1), || async {
            b.get("/api/tasks", &user.token).await.status == StatusCode::UNAUTHORIZED
        })
        .await
    );
}

/// A connection to one node of the test cluster.
async fn node(addr: &str) -> redis::aio::MultiplexedConnection {
    let (host, port) = addr.rsplit_once(':').unwrap();
    RedisTarget::parse(&redis_cluster_url())
        .unwrap()
        .node_client(host, port.parse().unwrap())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn query<T: redis::FromRedisValue>(
    conn: &mut redis::aio::MultiplexedConnection,
    cmd: &mut redis::Cmd,
) -> T {
    cmd.query_async(conn).await.unwrap()
}

/// Moves `slot`, keys and all, to another primary, as `redis-cli --cluster
/// reshard` does: IMPORTING / MIGRATING, MIGRATE every key, then the new
/// owner announced to every primary.
async fn move_slot(slot: u16) {
    let target = RedisTarget::parse(&redis_cluster_url()).unwrap();
    let conn = RedisConn::new(&target, Duration::from_secs(2)).unwrap();
    let topology = Topology::read(&conn).await.unwrap();
    let Topology::Cluster(ranges) = &topology else {
        unreachable!()
    };
    let from = ranges
        .iter()
        .find(|range| (range.start..=range.end).contains(&slot))
        .map(|range| range.primary.clone())
        .unwrap();
    let primaries = topology.primaries();
    let to = primaries
        .iter()
        .find(|addr| **addr != from)
        .unwrap()
        .clone();
    let (mut src, mut dst) = (node(&from).await, node(&to).await);
    let src_id: String = query(&mut src, redis::cmd("CLUSTER").arg("MYID")).await;
    let dst_id: String = query(&mut dst, redis::cmd("CLUSTER").arg("MYID")).await;

    let setslot = |state: &str, id: &str| {
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(state)
            .arg(id)
            .to_owned()
    };
    query::<()>(&mut dst, &mut setslot("IMPORTING", &src_id)).await;
    query::<()>(&mut src, &mut setslot("MIGRATING", &dst_id)).await;
    let (host, port) = to.rsplit_once(':').unwrap();
    loop {
        let keys: Vec<String> = query(
            &mut src,
            redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100),
        )
        .await;
        if keys.is_empty() {
            break;
        }
        query::<()>(
            &mut src,
            redis::cmd("MIGRATE")
                .arg(host)
                .arg(port)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys),
        )
        .await;
    }
    query::<()>(&mut dst, &mut setslot("NODE", &dst_id)).await;
    query::<()>(&mut src, &mut setslot("NODE", &dst_id)).await;
    for addr in primaries.iter().filter(|a| **a != from && **a != to) {
        query::<()>(&mut node(addr).await, &mut setslot("NODE", &dst_id)).await;
    }
}

#[tokio::test]
async fn a_users_slot_moved_to_another_primary_leaves_their_stream_whole() {
    let (a, _b) = api_nodes().await;
    let ws = WsNode::start(&a).await;
    let user = a.register().await;
    let (mut socket, _) = ws.subscribed(&user.token).await;
    let task = a.create_task(&user, json!({ "title": "before" })).await;
    assert_eq!(seqs(&socket.events(1).await), [1]);

    let id: Uuid = user.id.parse().unwrap();
    move_slot(redis_topology::slot(format!("{{{id}}}").as_bytes())).await;

    // Writes right after the move: the node's old subscription is gone
    // (the old owner dropped it); every event still arrives once, in order.
    for n in 0..5 {
        a.create_task(&user, json!({ "title": format!("after {n}") }))
            .await;
    }
    assert_eq!(seqs(&socket.events(5).await), [2, 3, 4, 5, 6]);
    socket.expect_silence(Duration::from_millis(200)).await;
    // The task's cache and recent events moved with the slot.
    let path = format!("/api/tasks/{}", task["id"].as_str().unwrap());
    assert_eq!(a.get(&path, &user.token).await.status, StatusCode::OK);
    let (_, replayed, _) = ws.resumed(&user.token, 0).await;
    assert_eq!(seqs(&replayed), [1, 2, 3, 4, 5, 6]);
}
