//! A client that goes away while its write is inside the database
//! transaction (wrk stopping, a browser tab closed, nginx giving up on a
//! slow upstream). The write must still end as one unit, and the node must
//! not keep a transaction open for it: an abandoned transaction would hold
//! the owner's row lock, so the user's next writes would hang, or be
//! committed together with its half (an event `seq` with no event).

use test_support::api as common;

use std::time::Duration;

use common::{eventually, Subscriber, TestApp};
use serde_json::json;
use shared::redis_keys::RedisKeys;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

/// How many of the node's database sessions wait on a lock.
async fn waiting_on_a_lock(app: &TestApp, db: &tokio_postgres::Client) -> i64 {
    db.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
        &[&app.db.name],
    )
    .await
    .unwrap()
    .get(0)
}

/// Events as a receiver sees them: a repeated `seq` is dropped (the
/// publisher may repeat an event, e.g. when Redis had lost its scripts).
#[derive(Default)]
struct SeenEvents(Vec<i64>);

impl SeenEvents {
    /// The next event with a new seq: its seq and task title.
    async fn next_new(&mut self, events: &mut Subscriber) -> (i64, String) {
        loop {
            let event = events
                .next(Duration::from_secs(10))
                .await
                .expect("an event within 10 s");
            let seq = event["seq"].as_i64().unwrap();
            if !self.0.contains(&seq) {
                self.0.push(seq);
                assert_eq!(event["type"], "TASK_CREATED", "{event}");
                return (seq, event["task"]["title"].as_str().unwrap().to_owned());
            }
        }
    }
}

#[tokio::test]
async fn a_write_whose_client_hangs_up_mid_transaction_still_ends_as_one_unit() {
    // No relay: it would commit whatever an abandoned transaction left, and
    // hide the defect.
    let app = TestApp::spawn_with(|c| c.relay_interval = Duration::from_secs(3600)).await;
    let user = app.register().await;
    let user_id: Uuid = user.id.parse().unwrap();
    let mut events = Subscriber::start(
        &app.config.redis_url,
        RedisKeys::new(app.config.redis_namespace.clone()).user_events_channel(user_id),
    )
    .await;

    // Hold the owner's row lock, so the write stops inside its transaction.
    let locker = app.db.client().await;
    locker.batch_execute("BEGIN").await.unwrap();
    locker
        .execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&user_id])
        .await
        .unwrap();

    let body = json!({ "title": "abandoned" }).to_string();
    let mut socket = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let request = format!(
        "POST /api/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        user.token,
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let monitor = app.db.client().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            waiting_on_a_lock(&app, &monitor).await >= 1
        })
        .await,
        "the write waits for the owner's row lock"
    );

    // The client hangs up; wait until the node has closed its end too.
    socket.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(_))),
        "the node closes a connection whose client hung up: {closed:?}"
    );
    drop(socket);
    locker.batch_execute("ROLLBACK").await.unwrap();

    // The abandoned write ran to its end: committed and published as seq 1.
    let mut seen = SeenEvents::default();
    assert_eq!(
        seen.next_new(&mut events).await,
        (1, "abandoned".to_owned())
    );

    // Nothing of it is left holding the user: the next write answers at
    // once, with the next seq.
    let next = tokio::time::timeout(
        Duration::from_secs(5),
        app.post("/api/tasks", Some(&user.token), json!({ "title": "next" })),
    )
    .await
    .expect("the user's next write is not held up");
    assert_eq!(next.status, 201, "{}", next.body);
    assert_eq!(seen.next_new(&mut events).await, (2, "next".to_owned()));
    let list = app.get("/api/tasks", &user.token).await;
    assert_eq!(
        list.body["tasks"].as_array().unwrap().len(),
        2,
        "{}",
        list.body
    );

    // And no session of the node is left inside a transaction.
    assert!(
        eventually(Duration::from_secs(5), || async {
            let open: i64 = monitor
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                     AND state LIKE 'idle in transaction%'",
                    &[&app.db.name],
                )
                .await
                .unwrap()
                .get(0);
            open == 0
        })
        .await,
        "a transaction of the node was left open"
    );
}
