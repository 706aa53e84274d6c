//! The limits of a connection: message size, message rate, slow readers,
//! token expiry and refresh, heartbeats.

use test_support::ws as common;

use std::sync::Arc;
use std::time::Duration;

use common::api::eventually;
use common::{is_event, token_expiring_in, Seen, TestApp, WsNode};
use futures_util::SinkExt;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_message_over_16_kib_closes_with_1009() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;

    // Exactly 16 KiB is allowed.
    let mut client = ws.connect(&user.token).await;
    let prefix = r#"{"type":"PING","pad":""#;
    let fill = 16 * 1024 - prefix.len() - 2;
    let at_limit = format!("{prefix}{}\"}}", "x".repeat(fill));
    assert_eq!(at_limit.len(), 16 * 1024);
    client.send_text(&at_limit).await;
    let reply = client.next().await;
    assert!(
        reply["type"] == "PONG" || reply["type"] == "ERROR",
        "{reply}"
    );
    client.assert_alive().await;

    // One byte more is not.
    let mut client = ws.connect(&user.token).await;
    let over = format!("{prefix}{}\"}}", "x".repeat(fill + 1));
    client.send_text(&over).await;
    assert_eq!(
        client.expect_close(Duration::from_secs(3)).await,
        Some(1009)
    );
}

#[tokio::test]
async fn more_than_50_messages_in_a_second_closes_with_1008() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;

    // 50 in a burst is fine.
    let mut calm = ws.connect(&user.token).await;
    for _ in 0..50 {
        calm.send(json!({ "type": "PING" })).await;
    }
    for _ in 0..50 {
        calm.expect("PONG").await;
    }

    let mut flood = ws.connect(&user.token).await;
    for _ in 0..60 {
        // The server may already be closing: later sends may fail.
        if flood
            .ws
            .send(Message::Text(json!({ "type": "PING" }).to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    // PONGs may come first; then the close.
    assert_eq!(flood.expect_close(Duration::from_secs(3)).await, Some(1008));

    // A new second, a new budget.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    calm.assert_alive().await;
}

#[tokio::test]
async fn a_slow_reader_is_disconnected_while_a_fast_one_gets_every_event() {
    const N: i64 = 200;
    let api = Arc::new(TestApp::spawn().await);
    let ws = WsNode::start_with(&api, |c| c.queue_len = 4).await;
    let user = api.register().await;
    let (mut slow, _) = ws.subscribed(&user.token).await;
    let (mut fast, _) = ws.subscribed(&user.token).await;

    // ~40 KB per event (10,000 four-byte characters): N of them are far
    // more than the socket buffers of a reader that never reads.
    let description = "\u{1F600}".repeat(10_000);
    let title = "t".repeat(200);
    let writing = {
        let (api, user) = (api.clone(), user.clone());
        tokio::spawn(async move {
            for _ in 0..N {
                api.create_task(&user, json!({ "title": title, "description": description }))
                    .await;
            }
        })
    };

    let mut seqs = Vec::new();
    while seqs.len() < N as usize {
        match fast.next_within(Duration::from_secs(10)).await {
            Seen::Json(event) => {
                assert!(is_event(&event), "{event}");
                seqs.push(event["seq"].as_i64().unwrap());
            }
            other => panic!(
                "the fast reader, after {} events, saw {other:?}",
                seqs.len()
            ),
        }
    }
    assert_eq!(seqs, (1..=N).collect::<Vec<_>>());
    tokio::time::timeout(Duration::from_secs(10), writing)
        .await
        .expect("the writer finishes")
        .unwrap();

    // The slow one now reads what its socket holds, then finds itself cut
    // off: 1008, or the connection just dropped. It never got everything.
    let mut got = Vec::new();
    let code = loop {
        match slow.next_within(Duration::from_secs(15)).await {
            Seen::Json(event) => {
                assert!(is_event(&event), "{event}");
                got.push(event["seq"].as_i64().unwrap());
            }
            Seen::Closed(code) => break code,
            Seen::Nothing => panic!(
                "the slow reader was not disconnected (it got {} events)",
                got.len()
            ),
        }
    };
    assert!(matches!(code, Some(1008) | None), "closed with {code:?}");
    assert!(got.len() < N as usize, "the slow reader got everything");
    assert!(
        got.windows(2).all(|w| w[1] > w[0]),
        "the slow reader's events are out of order"
    );
    fast.assert_alive().await;
}

#[tokio::test]
async fn an_expiring_token_closes_the_connection_with_4001() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    let (token, _) = token_expiring_in(&user.id, 2);
    let (mut client, _) = ws.subscribed(&token).await;
    assert_eq!(
        client.expect_close(Duration::from_secs(4)).await,
        Some(4001)
    );
}

#[tokio::test]
async fn auth_refreshes_the_token_in_place_without_missing_events() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    let started = tokio::time::Instant::now();
    let (short, _) = token_expiring_in(&user.id, 3);
    let (mut client, _) = ws.subscribed(&short).await;
    api.create_task(&user, json!({ "title": "before" })).await;
    assert_eq!(client.expect("TASK_CREATED").await["seq"], 1);

    let (fresh, exp) = token_expiring_in(&user.id, 3600);
    client.send(json!({ "type": "AUTH", "token": fresh })).await;
    assert_eq!(client.expect("AUTHENTICATED").await["exp"], exp);

    // Past the first token's expiry, the connection is still open.
    let wait =
        (started + Duration::from_secs(5)).saturating_duration_since(tokio::time::Instant::now());
    match client.next_within(wait).await {
        Seen::Nothing => {}
        other => panic!("the refreshed connection should stay open, saw {other:?}"),
    }
    client.assert_alive().await;
    api.create_task(&user, json!({ "title": "after" })).await;
    assert_eq!(client.expect("TASK_CREATED").await["seq"], 2);

    // It now lives by the new token: logging that one out closes it.
    let logout = api.post("/api/auth/logout", Some(&fresh), json!({})).await;
    assert_eq!(logout.status.as_u16(), 204, "{}", logout.body);
    assert_eq!(
        client.expect_close(Duration::from_secs(2)).await,
        Some(4001)
    );
}

#[tokio::test]
async fn auth_with_a_bad_token_is_refused_and_the_connection_keeps_its_own() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    let other = api.register().await;
    let (short, _) = token_expiring_in(&user.id, 3);
    let (mut client, _) = ws.subscribed(&short).await;

    let (expired, _) = token_expiring_in(&user.id, -10);
    // A token of the same user, logged out (and known to be by this node).
    let revoked = api.login(&user.email, &user.password).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    api.post("/api/auth/logout", Some(&revoked), json!({}))
        .await;
    assert!(
        eventually(Duration::from_secs(2), || async {
            ws.refused_status(Some(&revoked)).await == 401
        })
        .await
    );
    for bad in [
        other.token.as_str(),
        "garbage",
        expired.as_str(),
        revoked.as_str(),
    ] {
        client.send(json!({ "type": "AUTH", "token": bad })).await;
        let error = client.expect("ERROR").await;
        assert_eq!(error["code"], "UNAUTHORIZED", "{bad}");
        client.assert_alive().await;
    }

    // Still the same user's connection...
    api.create_task(&other, json!({ "title": "theirs" })).await;
    let mine = api.create_task(&user, json!({ "title": "mine" })).await;
    let event = client.expect("TASK_CREATED").await;
    assert_eq!((event["seq"].as_i64(), &event["task"]), (Some(1), &mine));
    // ...living by its old token.
    assert_eq!(
        client.expect_close(Duration::from_secs(4)).await,
        Some(4001)
    );
}

#[tokio::test]
async fn a_peer_that_never_answers_pings_is_disconnected() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start_with(&api, |c| {
        c.ping_interval = Duration::from_millis(200);
        c.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let user = api.register().await;

    // Completes the upgrade, then is never polled: it never answers a ping.
    let tcp = TcpStream::connect(("127.0.0.1", ws.port)).await.unwrap();
    let (mut deaf, _) = tokio_tungstenite::client_async(ws.url(&user.token), tcp)
        .await
        .expect("upgrade accepted");
    let mut alive = ws.connect(&user.token).await;

    // The polled client answers pings all along.
    match alive.next_within(Duration::from_secs(3)).await {
        Seen::Nothing => {}
        other => panic!("the polled client should stay open, saw {other:?}"),
    }
    alive.assert_alive().await;

    // The deaf one's TCP connection has been closed by now: reading the raw
    // socket (pings, maybe a close frame) reaches end of stream at once.
    let raw = deaf.get_mut();
    let mut buf = vec![0u8; 64 * 1024];
    let ended = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match raw.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the server kept a peer that never answered pings"
    );
}

/// Sends Ping frames (full 125-byte payloads) as fast as the socket takes
/// them, never reading, until a send fails (the server cut the connection)
/// or `within` has passed; true when it was cut off. A send that blocks
/// (the server no longer reads) is retried until the deadline.
async fn flood_pings(
    flood: &mut tokio_tungstenite::WebSocketStream<TcpStream>,
    within: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        let ping = Message::Ping(vec![7u8; 125].into());
        let sent = tokio::time::timeout(Duration::from_millis(200), flood.send(ping)).await;
        if let Ok(Err(_)) = sent {
            return true;
        }
    }
    false
}

/// Reads the raw socket (pongs, maybe a close frame) until the server's
/// end of stream; true when it came within `within`.
async fn server_hung_up(
    flood: &mut tokio_tungstenite::WebSocketStream<TcpStream>,
    within: Duration,
) -> bool {
    let raw = flood.get_mut();
    let mut buf = vec![0u8; 64 * 1024];
    tokio::time::timeout(within, async {
        loop {
            match raw.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_ping_flood_counts_toward_the_message_rate_and_is_closed() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    let mut calm = ws.connect(&user.token).await;

    // Pings and pongs, never a text frame, never reading.
    let tcp = TcpStream::connect(("127.0.0.1", ws.port)).await.unwrap();
    let (mut flood, _) = tokio_tungstenite::client_async(ws.url(&user.token), tcp)
        .await
        .expect("upgrade accepted");
    let started = tokio::time::Instant::now();
    for _ in 0..60 {
        if flood.send(Message::Pong(Default::default())).await.is_err() {
            break;
        }
    }
    flood_pings(&mut flood, Duration::from_secs(3)).await;
    assert!(
        server_hung_up(&mut flood, Duration::from_secs(5)).await,
        "a client flooding control frames was kept"
    );
    assert!(started.elapsed() < Duration::from_secs(8));

    // Everyone else is served as before.
    calm.assert_alive().await;
    let health = reqwest::get(ws.http_url("/healthz")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test]
async fn answering_pings_to_a_peer_that_never_reads_is_bounded_by_the_write_timeout() {
    let api = TestApp::spawn().await;
    // No message rate to hit: only the write timeout can end this one.
    let ws = WsNode::start_with(&api, |c| {
        c.max_messages_per_sec = u32::MAX;
        c.write_timeout = Duration::from_secs(2);
    })
    .await;
    let user = api.register().await;
    let (mut calm, _) = ws.subscribed(&user.token).await;

    let tcp = TcpStream::connect(("127.0.0.1", ws.port)).await.unwrap();
    let (mut flood, _) = tokio_tungstenite::client_async(ws.url(&user.token), tcp)
        .await
        .expect("upgrade accepted");
    // The pongs fill both socket buffers, the server's flush of the next
    // one blocks, and after the write timeout it gives the socket up (the
    // flood's next send fails). Before, it waited in that flush forever,
    // past every close: idle, expiry, logout.
    assert!(
        flood_pings(&mut flood, Duration::from_secs(30)).await,
        "the server kept flushing pongs to a peer that never reads"
    );
    assert!(server_hung_up(&mut flood, Duration::from_secs(5)).await);

    calm.assert_alive().await;
    api.create_task(&user, json!({ "title": "still served" }))
        .await;
    assert_eq!(calm.expect("TASK_CREATED").await["seq"], 1);
}
