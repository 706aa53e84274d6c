//! `watch`: a tiny live client for people trying the system: subscribes
//! with a token and prints every message as it arrives, resuming with
//! `since` if the connection drops (a node restarting, say).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::args::Args;

pub async fn watch(args: &Args) -> anyhow::Result<bool> {
    let token = args.string("token", "");
    let mut since: Option<i64> = None;
    loop {
        let request = format!("{}?token={token}", args.ws()).into_client_request()?;
        match tokio_tungstenite::connect_async(request).await {
            Ok((mut ws, _)) => {
                let subscribe = match since {
                    Some(since) => json!({ "type": "SUBSCRIBE_TASKS", "since": since }),
                    None => json!({ "type": "SUBSCRIBE_TASKS" }),
                };
                ws.send(Message::Text(subscribe.to_string().into())).await?;
                while let Some(Ok(message)) = ws.next().await {
                    match message {
                        Message::Text(text) => {
                            println!("{text}");
                            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                                if let Some(seq) = value["seq"].as_i64() {
                                    since = Some(seq);
                                }
                            }
                        }
                        Message::Close(frame) => {
                            eprintln!("closed: {frame:?}; reconnecting");
                            if frame.is_some_and(|f| u16::from(f.code) == 4001) {
                                return Ok(false);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Err(err) => eprintln!("connect failed: {err}; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
