//! Request bodies are read under a deadline (`BODY_READ_TIMEOUT_SECS`): a
//! client that sends its headers and then trickles the body, or stops, has
//! its connection closed without an answer when the deadline passes (as
//! nginx does with `client_body_timeout`), holding nothing longer.

use test_support::api as common;

use std::time::{Duration, Instant};

use common::TestApp;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const DEADLINE: Duration = Duration::from_secs(1);

/// Sends a POST /api/tasks whose body announces `length` bytes, then
/// `trickle` bytes one by one every `every`; returns what the server sent
/// back before closing, and when it closed.
async fn slow_post(
    app: &TestApp,
    token: &str,
    length: usize,
    every: Duration,
) -> (Vec<u8>, Duration) {
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let head = format!(
        "POST /api/tasks HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut read, mut write) = stream.into_split();
    let trickler = tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if write.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let received = common::read_until_closed(&mut read).await;
    trickler.abort();
    let received = received.expect("the connection was still open after 10 s");
    (received, started.elapsed())
}

#[tokio::test]
async fn a_trickled_body_has_its_connection_closed_at_the_deadline() {
    let app = TestApp::spawn_with(|c| c.body_read_timeout = DEADLINE).await;
    let user = app.register().await;

    let (received, after) = slow_post(&app, &user.token, 1000, Duration::from_millis(100)).await;

    assert!(
        received.is_empty(),
        "no answer is sent: {:?}",
        String::from_utf8_lossy(&received)
    );
    assert!(
        after >= DEADLINE - Duration::from_millis(100) && after < DEADLINE * 3,
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn a_body_that_stops_has_its_connection_closed_at_the_deadline() {
    let app = TestApp::spawn_with(|c| c.body_read_timeout = DEADLINE).await;
    let user = app.register().await;

    let (received, after) = slow_post(&app, &user.token, 1000, Duration::from_secs(3600)).await;

    assert!(received.is_empty());
    assert!(after < DEADLINE * 3, "closed after {after:?}");
    // The node is fine, and a body sent at a normal pace still works.
    let task = app
        .create_task(&user, serde_json::json!({ "title": "after" }))
        .await;
    assert_eq!(task["title"], "after");
}
