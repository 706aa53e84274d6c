//! A client we did not write: Python's `websockets` (which offers
//! permessage-deflate by default) agrees compression with the node,
//! subscribes, and reads a live event. `scripts/test.sh` installs it.

use test_support::ws as common;

use std::process::Stdio;
use std::time::Duration;

use common::{TestApp, WsNode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const CLIENT: &str = r#"
import json, sys
from websockets.sync.client import connect

with connect(sys.argv[1], open_timeout=10) as ws:
    print(json.dumps({"extensions": ws.response.headers.get("Sec-WebSocket-Extensions")}), flush=True)
    ws.send(json.dumps({"type": "SUBSCRIBE_TASKS"}))
    print(ws.recv(timeout=10), flush=True)
    print(ws.recv(timeout=10), flush=True)
"#;

type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// The client's next line, as JSON.
async fn next(lines: &mut Lines) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
        .await
        .expect("the Python client answers within 15 s")
        .unwrap()
        .expect("the Python client printed a line (is `websockets` installed?)");
    serde_json::from_str::<Value>(&line).unwrap()
}

#[tokio::test]
async fn python_websockets_negotiates_deflate_and_reads_events() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    let mut child = Command::new("python3")
        .args(["-c", CLIENT, &ws.url(&user.token)])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs (scripts/test.sh installs the websockets package)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let handshake = next(&mut lines).await;
    let agreed = handshake["extensions"].as_str().unwrap_or_default();
    assert!(agreed.starts_with("permessage-deflate"), "{handshake}");
    assert_eq!(next(&mut lines).await["type"], "SUBSCRIBED");
    let task = api
        .create_task(
            &user,
            json!({ "title": "to Python", "description": "x".repeat(500) }),
        )
        .await;
    let event = next(&mut lines).await;
    assert_eq!(event["type"], "TASK_CREATED");
    assert_eq!(event["task"], task);
    assert!(child.wait().await.unwrap().success());
}
