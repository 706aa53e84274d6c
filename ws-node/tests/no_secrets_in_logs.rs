//! No token and no password in any log line of any component: nginx's
//! access and error logs (the deployment's own config), and the api-node's
//! and ws-node's own log lines at every level of theirs. Browsers send their
//! token in the WebSocket URL (`/ws/updates?token=<jwt>`), which the usual
//! nginx formats log whole; and a failing upstream makes nginx write the
//! raw request line to its error log.

use test_support::ws as common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::api::eventually;
use common::nginx::Nginx;
use common::{TestApp, WsNode};
use reqwest::Method;
use serde_json::json;

/// Every log line the nodes of this process write.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Installs the process's subscriber before any node starts (theirs is
    /// then a no-op): everything the project's crates log, at every level,
    /// and what other crates log at the shipped level.
    fn install() -> Self {
        let captured = Self::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "info,api_node=trace,ws_node=trace,shared=trace",
            ))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .try_init()
            .expect("this test installs the first subscriber");
        captured
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn tokens_and_passwords_reach_no_log_line() {
    let captured = Captured::install();
    let api = TestApp::spawn_with(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    let ws = WsNode::start(&api).await;
    // A ws-node that is down: nginx fails over from it, and logs the
    // failure, for some of the upgrades below.
    let down = test_support::free_port();
    let lb = Nginx::start(&[api.port], &[down, ws.port, down]).await;
    let mut front = api.spawn_peer().await;
    front.base = lb.base();

    // Arrange: an account, logged in; its password and tokens are secrets.
    let user = front.register().await;
    let login = front.login(&user.email, &user.password).await;
    assert_eq!(login.status.as_u16(), 200, "{}", login.body);
    let token = login.body["token"].as_str().unwrap().to_owned();
    let mut secrets = vec![user.password.clone(), user.token.clone(), token.clone()];
    // A wrong password is a secret too (it is often a typo of the right one).
    let wrong = "wrong-horse-battery-staple";
    secrets.push(wrong.to_owned());
    front
        .login(&user.email, wrong)
        .await
        .assert_error(401, "UNAUTHORIZED");

    // Act: WebSockets through nginx with the token in the URL, as browsers
    // do, some meeting the dead node first.
    let mut clients = Vec::new();
    for _ in 0..6 {
        let url = format!("ws://127.0.0.1:{}/ws/updates?token={token}", lb.port);
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("upgrade through nginx");
        let mut client = common::Client { ws: socket };
        client.send(json!({ "type": "SUBSCRIBE_TASKS" })).await;
        client.expect("SUBSCRIBED").await;
        clients.push(client);
    }
    // A token refresh over the socket, and a refused token in a URL.
    clients[0]
        .send(json!({ "type": "AUTH", "token": user.token }))
        .await;
    clients[0].expect("AUTHENTICATED").await;
    let refused = "eyJhbGciOiJIUzI1NiJ9.refused-token-value.c2lnbmF0dXJl";
    secrets.push(refused.to_owned());
    let url = format!("ws://127.0.0.1:{}/ws/updates?token={refused}", lb.port);
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
    // A token where none belongs, and bearer requests.
    let misplaced = front
        .call(
            Method::GET,
            &format!("/api/tasks?token={token}"),
            Some(&token),
            None,
        )
        .await;
    misplaced.assert_error(400, "VALIDATION_ERROR");
    front.create_task(&user, json!({ "title": "seen" })).await;
    for client in &mut clients {
        client.expect("TASK_CREATED").await;
    }
    let logout = front
        .call(Method::POST, "/api/auth/logout", Some(&token), None)
        .await;
    assert_eq!(logout.status.as_u16(), 204);
    for client in &mut clients[1..] {
        assert_eq!(
            client.expect_close(Duration::from_secs(5)).await,
            Some(4001)
        );
    }

    // nginx logs an upgraded request when its connection ends.
    drop(clients);

    // Assert: nginx has logged every request (its access log is flushed
    // within a second), by path, with no secret anywhere.
    assert!(
        eventually(Duration::from_secs(5), || async {
            let logs = lb.logs();
            logs.contains("POST /api/auth/logout HTTP/1.1")
                && logs.matches("GET /ws/updates HTTP/1.1").count() >= 7
        })
        .await,
        "nginx logged the upgrades: {}",
        lb.logs()
    );
    let nginx_logs = lb.logs();
    let node_logs = captured.text();
    assert!(nginx_logs.contains("POST /api/auth/login"), "{nginx_logs}");
    assert!(!node_logs.is_empty(), "the nodes' log lines were captured");
    for secret in &secrets {
        assert!(
            !nginx_logs.contains(secret.as_str()),
            "nginx logged a secret:\n{nginx_logs}"
        );
        assert!(
            !node_logs.contains(secret.as_str()),
            "a node logged a secret:\n{node_logs}"
        );
    }
}
