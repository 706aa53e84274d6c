//! A request that fails logs a line naming it (its `X-Request-Id`, method
//! and route) at the deployed log level, `info`, where requests have no
//! span of their own (one per request cost ~40% of a cached read).
//!
//! The node is the real binary, with PostgreSQL and Redis unreachable: a
//! login then answers 503 and logs "dependency unavailable".

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Kills the node however the test ends.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The next JSON log line `accept` picks, within 20 s.
fn wait_for_line(lines: &Receiver<String>, accept: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("the node did not log the line in time");
        if let Ok(json) = serde_json::from_str::<Value>(&line) {
            if accept(&json) {
                return json;
            }
        }
    }
}

#[tokio::test]
async fn a_failed_request_logs_its_id_at_info() {
    let dir = std::env::temp_dir().join(format!("request-logs-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_api-node"))
        .current_dir(&dir)
        .env_clear()
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env("JWT_SECRET", secret)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("DB_TIMEOUT_MS", "200")
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _node = Node(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let listening = wait_for_line(&lines, |l| l["message"] == "api-node listening");
    let addr = listening["addr"].as_str().unwrap().to_owned();
    let id = format!("log-test-{}", uuid::Uuid::new_v4().simple());
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/api/auth/login"))
        .header("x-request-id", &id)
        .json(&serde_json::json!({"email": "a@example.com", "password": "whatever-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-request-id"], id.as_str());

    let logged = wait_for_line(&lines, |l| l["message"] == "dependency unavailable");
    assert_eq!(logged["level"], "WARN", "{logged}");
    assert_eq!(logged["span"]["id"], id.as_str(), "{logged}");
    assert_eq!(logged["span"]["method"], "POST", "{logged}");
    assert_eq!(logged["span"]["route"], "/api/auth/login", "{logged}");
    let _ = std::fs::remove_dir_all(&dir);
}
