//! Each connection has an idle timeout (`HEADER_READ_TIMEOUT_SECS`): a
//! client that never completes its headers (slowloris), or leaves a
//! keep-alive connection idle, is disconnected after between one and one
//! and a half times it; a connection that keeps sending requests, or whose
//! request the server is still reading, is never cut.

use test_support::api as common;

use std::time::{Duration, Instant};

use common::TestApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(1);

/// Reads until the server closes the connection: what it sent, and how
/// long after `since` it closed.
async fn closed_after(stream: &mut TcpStream, since: Instant) -> (Vec<u8>, Duration) {
    let received = common::read_until_closed(stream).await;
    let received = received.expect("the connection was still open after 10 s");
    (received, since.elapsed())
}

/// One whole request and its whole response on a kept-alive connection.
async fn healthz(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !response.ends_with(b"}") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(
            n > 0,
            "closed mid-answer: {}",
            String::from_utf8_lossy(&response)
        );
        response.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(response).unwrap()
}

#[tokio::test]
async fn headers_trickled_byte_by_byte_are_cut_off() {
    let app = TestApp::spawn_with(|c| c.header_read_timeout = TIMEOUT).await;
    let stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let started = Instant::now();
    let (mut read, mut write) = stream.into_split();
    // A header that never ends, one byte every 100 ms.
    let trickler = tokio::spawn(async move {
        write
            .write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
            .await
            .unwrap();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if write.write_all(b"a").await.is_err() {
                return;
            }
        }
    });
    let received = common::read_until_closed(&mut read).await;
    trickler.abort();
    let after = started.elapsed();
    let received = received.expect("the connection was still open after 10 s");
    assert!(
        received.is_empty(),
        "no answer: {:?}",
        String::from_utf8_lossy(&received)
    );
    assert!(
        after >= TIMEOUT - Duration::from_millis(100) && after < TIMEOUT * 3,
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = TestApp::spawn_with(|c| c.header_read_timeout = TIMEOUT).await;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    assert!(healthz(&mut stream).await.starts_with("HTTP/1.1 200"));
    let idle_since = Instant::now();

    let (received, after) = closed_after(&mut stream, idle_since).await;

    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    assert!(
        after >= TIMEOUT - Duration::from_millis(100) && after < TIMEOUT * 3,
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn a_connection_in_use_outlives_the_timeout() {
    let app = TestApp::spawn_with(|c| c.header_read_timeout = TIMEOUT).await;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let started = Instant::now();
    // Requests a third of the timeout apart, for three times the timeout:
    // the connection is never idle for long enough.
    while started.elapsed() < TIMEOUT * 3 {
        let response = healthz(&mut stream).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        tokio::time::sleep(TIMEOUT / 3).await;
    }
}

#[tokio::test]
async fn a_body_still_arriving_is_not_idle() {
    // The body has its own, longer deadline: a request whose body takes
    // twice the idle timeout to arrive is still answered.
    let app = TestApp::spawn_with(|c| {
        c.header_read_timeout = TIMEOUT;
        c.body_read_timeout = TIMEOUT * 5;
    })
    .await;
    let user = app.register().await;
    let body = br#"{"title":"sent slowly"}"#;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let head = format!(
        "POST /api/tasks HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        user.token,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let every = TIMEOUT * 2 / body.len() as u32;
    for byte in body {
        tokio::time::sleep(every).await;
        stream.write_all(&[*byte]).await.unwrap();
    }
    assert!(started.elapsed() >= TIMEOUT * 2 - Duration::from_millis(100));

    let (received, _) = closed_after(&mut stream, started).await;

    let response = String::from_utf8_lossy(&received);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
}
