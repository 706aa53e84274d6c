//! Fan-out across connections and nodes: every subscribed connection of a
//! task's owner, on whichever ws-node, gets each event (the same bytes), in
//! seq order, and nobody else does.

use test_support::ws as common;

use std::sync::Arc;
use std::time::Duration;

use common::{is_event, seqs, Client, TestApp, WsNode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue};

/// The next `n` events of each client, as raw text; every client must get
/// the same bytes.
async fn same_bytes_everywhere(clients: &mut [Client], n: usize) -> Vec<Value> {
    let mut first: Option<Vec<String>> = None;
    for (i, client) in clients.iter_mut().enumerate() {
        let mut texts = Vec::with_capacity(n);
        for _ in 0..n {
            texts.push(client.next_text().await);
        }
        match &first {
            None => first = Some(texts),
            Some(expected) => assert_eq!(&texts, expected, "client {i} got other bytes"),
        }
    }
    first
        .unwrap()
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect()
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
}

#[tokio::test]
async fn every_connection_of_the_owner_on_every_node_gets_each_event_and_no_one_else() {
    let api = TestApp::spawn().await;
    let (node_a, node_b) = (WsNode::start(&api).await, WsNode::start(&api).await);
    let owner = api.register().await;
    let other = api.register().await;

    let mut owners = Vec::new();
    for node in [&node_a, &node_a, &node_b, &node_b] {
        let (client, seq) = node.subscribed(&owner.token).await;
        assert_eq!(seq, 0);
        owners.push(client);
    }
    let mut others = Vec::new();
    for node in [&node_a, &node_b] {
        others.push(node.subscribed(&other.token).await.0);
    }
    // Connected but never subscribed: gets no events.
    let mut idle = node_a.connect(&owner.token).await;

    let first = api.create_task(&owner, json!({ "title": "one" })).await;
    let second = api
        .create_task(&owner, json!({ "title": "two", "priority": 3 }))
        .await;
    let id = first["id"].as_str().unwrap();
    let updated = api
        .put(
            &format!("/api/tasks/{id}"),
            &owner.token,
            json!({ "status": "DONE" }),
        )
        .await;
    assert_eq!(updated.status.as_u16(), 200, "{}", updated.body);
    let deleted = api.delete(&format!("/api/tasks/{id}"), &owner.token).await;
    assert_eq!(deleted.status.as_u16(), 204);

    let events = same_bytes_everywhere(&mut owners, 4).await;
    assert_eq!(seqs(&events), [1, 2, 3, 4]);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "TASK_CREATED",
            "TASK_CREATED",
            "TASK_UPDATED",
            "TASK_DELETED"
        ]
    );
    assert_eq!(events[0]["task"], first);
    assert_eq!(events[1]["task"], second);
    assert_eq!(events[2]["task"], updated.body);
    assert_eq!(events[3]["task"], json!({ "id": id }));
    for event in &events {
        assert!(event["timestamp"].as_i64().unwrap() > 1_700_000_000_000);
    }

    // The other user's connections saw none of it; their own event reaches
    // them (seq 1: seqs are per user) and none of the owner's connections.
    for client in others.iter_mut().chain([&mut idle]) {
        client.expect_silence(Duration::from_millis(300)).await;
    }
    let theirs = api.create_task(&other, json!({ "title": "theirs" })).await;
    let events = same_bytes_everywhere(&mut others, 1).await;
    assert_eq!(
        (events[0]["seq"].as_i64(), &events[0]["task"]),
        (Some(1), &theirs)
    );
    for client in &mut owners {
        client.expect_silence(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn connections_leaving_or_unsubscribing_do_not_cut_off_the_others() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    let (mut leaving, _) = ws.subscribed(&user.token).await;
    let (mut staying, _) = ws.subscribed(&user.token).await;

    let _ = leaving.ws.close(None).await;
    drop(leaving);
    api.create_task(&user, json!({ "title": "one" })).await;
    assert_eq!(staying.expect("TASK_CREATED").await["seq"], 1);

    // The node's last subscriber of this user leaves, then a new one comes.
    staying.send(json!({ "type": "UNSUBSCRIBE_TASKS" })).await;
    staying.expect("UNSUBSCRIBED").await;
    let (mut newcomer, latest) = ws.subscribed(&user.token).await;
    assert_eq!(latest, 1);
    api.create_task(&user, json!({ "title": "two" })).await;
    assert_eq!(newcomer.expect("TASK_CREATED").await["seq"], 2);
    staying.expect_silence(Duration::from_millis(300)).await;

    // And back again on the first connection.
    staying.send(json!({ "type": "SUBSCRIBE_TASKS" })).await;
    assert_eq!(staying.expect("SUBSCRIBED").await["seq"], 2);
    api.create_task(&user, json!({ "title": "three" })).await;
    for client in [&mut staying, &mut newcomer] {
        assert_eq!(client.expect("TASK_CREATED").await["seq"], 3);
    }
}

#[tokio::test]
async fn writes_alternating_between_two_api_nodes_arrive_in_seq_order() {
    let api = TestApp::spawn().await;
    let peer = api.spawn_peer().await;
    let (node_a, node_b) = (WsNode::start(&api).await, WsNode::start(&peer).await);
    let user = api.register().await;
    let (mut on_a, _) = node_a.subscribed(&user.token).await;
    let (mut on_b, _) = node_b.subscribed(&user.token).await;

    let mut ids = Vec::new();
    for n in 0..10 {
        let via = if n % 2 == 0 { &api } else { &peer };
        let task = via
            .create_task(&user, json!({ "title": format!("t{n}") }))
            .await;
        ids.push(task["id"].as_str().unwrap().to_owned());
    }
    // Updates, each through the node that did not create the task.
    for (n, id) in ids.iter().enumerate() {
        let via = if n % 2 == 0 { &peer } else { &api };
        let reply = via
            .put(
                &format!("/api/tasks/{id}"),
                &user.token,
                json!({ "priority": 5 }),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
    }

    for client in [&mut on_a, &mut on_b] {
        let events = client.events(20).await;
        assert_eq!(seqs(&events), (1..=20).collect::<Vec<_>>());
        let created: Vec<&str> = events[..10]
            .iter()
            .map(|e| e["task"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(created, ids);
        assert!(events[10..]
            .iter()
            .all(|e| e["type"] == "TASK_UPDATED" && e["task"]["version"] == 2));
        client.expect_silence(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_through_two_api_nodes_arrive_in_seq_order_without_gaps() {
    let api = Arc::new(TestApp::spawn().await);
    let peer = Arc::new(api.spawn_peer().await);
    let (node_a, node_b) = (WsNode::start(&api).await, WsNode::start(&peer).await);
    let user = api.register().await;
    let (mut on_a, _) = node_a.subscribed(&user.token).await;
    let (mut on_b, _) = node_b.subscribed(&user.token).await;

    const PER_WRITER: usize = 20;
    let writers: Vec<_> = [api.clone(), peer.clone(), api.clone(), peer.clone()]
        .into_iter()
        .enumerate()
        .map(|(w, via)| {
            let user = user.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 0..PER_WRITER {
                    let task = via
                        .create_task(&user, json!({ "title": format!("w{w}-{n}") }))
                        .await;
                    ids.push(task["id"].as_str().unwrap().to_owned());
                }
                ids
            })
        })
        .collect();
    let mut created = Vec::new();
    for writer in writers {
        created.extend(writer.await.unwrap());
    }
    created.sort();
    let total = created.len();

    for client in [&mut on_a, &mut on_b] {
        let events = client.events(total).await;
        assert_eq!(seqs(&events), (1..=total as i64).collect::<Vec<_>>());
        let mut ids: Vec<String> = events
            .iter()
            .map(|e| e["task"]["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        assert_eq!(ids, created);
        client.expect_silence(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn an_authorization_header_authenticates_the_upgrade_and_wins_over_the_query() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    let other = api.register().await;

    // Header only.
    let mut request = ws.request("");
    request
        .headers_mut()
        .insert(header::AUTHORIZATION, bearer(&user.token));
    let mut by_header = ws.connect_request(request).await.expect("upgrade accepted");
    by_header.send(json!({ "type": "SUBSCRIBE_TASKS" })).await;
    assert_eq!(by_header.expect("SUBSCRIBED").await["seq"], 0);

    // A good header and a bad ?token=: the header wins.
    let mut request = ws.request("?token=garbage");
    request
        .headers_mut()
        .insert(header::AUTHORIZATION, bearer(&user.token));
    let mut over_bad_query = ws
        .connect_request(request)
        .await
        .expect("the header wins over a bad ?token=");
    over_bad_query
        .send(json!({ "type": "SUBSCRIBE_TASKS" }))
        .await;
    over_bad_query.expect("SUBSCRIBED").await;

    // A good header and another user's good ?token=: the connection is the
    // header's user's.
    let mut request = ws.request(&format!("?token={}", other.token));
    request
        .headers_mut()
        .insert(header::AUTHORIZATION, bearer(&user.token));
    let mut over_other_query = ws.connect_request(request).await.expect("accepted");
    over_other_query
        .send(json!({ "type": "SUBSCRIBE_TASKS" }))
        .await;
    over_other_query.expect("SUBSCRIBED").await;

    // A bad header and a good ?token=: the header wins, so it is refused.
    let mut request = ws.request(&format!("?token={}", user.token));
    request
        .headers_mut()
        .insert(header::AUTHORIZATION, bearer("garbage"));
    assert_eq!(ws.connect_request(request).await.err(), Some(401));

    let task = api.create_task(&user, json!({ "title": "mine" })).await;
    api.create_task(&other, json!({ "title": "theirs" })).await;
    for client in [&mut by_header, &mut over_bad_query, &mut over_other_query] {
        let event = client.next().await;
        assert!(is_event(&event), "{event}");
        assert_eq!((event["seq"].as_i64(), &event["task"]), (Some(1), &task));
        client.expect_silence(Duration::from_millis(300)).await;
    }
}
