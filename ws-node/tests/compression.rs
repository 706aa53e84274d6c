//! permessage-deflate as a client sees it on the wire: negotiated when
//! offered (and not otherwise, nor when switched off), events arrive
//! compressed (RSV1) and inflate to the event, compressed client messages
//! are understood, and a deflate bomb is closed with 1009 without harming
//! anyone else. A raw client is used: tokio-tungstenite has no deflate.

use test_support::ws as common;

use std::time::Duration;

use common::{TestApp, WsNode};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A WebSocket client speaking frames by hand.
struct RawClient {
    tcp: TcpStream,
    /// The `Sec-WebSocket-Extensions` the server answered with.
    extensions: Option<String>,
}

/// One frame from the server.
struct Frame {
    rsv1: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl RawClient {
    async fn connect(ws: &WsNode, token: &str, offer: Option<&str>) -> Self {
        let mut tcp = TcpStream::connect(("127.0.0.1", ws.port)).await.unwrap();
        let offer = offer
            .map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET /ws/updates?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n{offer}\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(tcp.read_u8().await.unwrap());
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let extensions = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-extensions")
                .then(|| value.trim().to_owned())
        });
        Self { tcp, extensions }
    }

    /// Sends one masked frame.
    async fn send_frame(&mut self, rsv1: bool, opcode: u8, payload: &[u8]) {
        let mask = [0x11, 0x22, 0x33, 0x44];
        let mut out = vec![0x80 | if rsv1 { 0x40 } else { 0 } | opcode];
        match payload.len() {
            len @ 0..=125 => out.push(0x80 | len as u8),
            len @ 126..=0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tcp.write_all(&out).await.unwrap();
    }

    async fn send_compressed(&mut self, json: &Value) {
        self.send_frame(true, 1, &compress(json.to_string().as_bytes()))
            .await;
    }

    async fn next_frame(&mut self) -> Frame {
        tokio::time::timeout(Duration::from_secs(5), async {
            let first = self.tcp.read_u8().await.unwrap();
            let second = self.tcp.read_u8().await.unwrap();
            assert_eq!(second & 0x80, 0, "server frames are not masked");
            let len = match second & 0x7f {
                126 => u64::from(self.tcp.read_u16().await.unwrap()),
                127 => self.tcp.read_u64().await.unwrap(),
                n => u64::from(n),
            };
            let mut payload = vec![0; len as usize];
            self.tcp.read_exact(&mut payload).await.unwrap();
            Frame {
                rsv1: first & 0x40 != 0,
                opcode: first & 0x0f,
                payload,
            }
        })
        .await
        .expect("a frame within 5 s")
    }

    /// The next text message, inflated if it came compressed; pings skipped.
    async fn next_json(&mut self) -> (Value, bool) {
        loop {
            let frame = self.next_frame().await;
            match frame.opcode {
                1 => {
                    let text = if frame.rsv1 {
                        inflate(&frame.payload)
                    } else {
                        frame.payload
                    };
                    return (serde_json::from_slice(&text).unwrap(), frame.rsv1);
                }
                9 | 10 => continue,
                8 => panic!("closed: {:?}", close_code(&frame)),
                other => panic!("unexpected opcode {other}"),
            }
        }
    }

    /// Reads until the server's close frame; its code.
    async fn close_code(&mut self) -> Option<u16> {
        loop {
            let frame = self.next_frame().await;
            if frame.opcode == 8 {
                return close_code(&frame);
            }
        }
    }
}

fn close_code(frame: &Frame) -> Option<u16> {
    (frame.payload.len() >= 2).then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]]))
}

fn compress(data: &[u8]) -> Vec<u8> {
    let mut deflate = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 1024);
    deflate
        .compress_vec(data, &mut out, FlushCompress::Sync)
        .unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

fn inflate(data: &[u8]) -> Vec<u8> {
    let mut inflater = Decompress::new(false);
    let mut out = Vec::with_capacity(64 * 1024);
    let input = [data, &[0, 0, 0xff, 0xff]].concat();
    inflater
        .decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .unwrap();
    out
}

const BROWSER_OFFER: &str = "permessage-deflate; client_max_window_bits";

#[tokio::test]
async fn offered_deflate_is_agreed_and_events_arrive_compressed() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    let mut client = RawClient::connect(&ws, &user.token, Some(BROWSER_OFFER)).await;
    let agreed = client.extensions.clone().expect("deflate agreed");
    assert!(agreed.starts_with("permessage-deflate"), "{agreed}");
    assert!(agreed.contains("server_no_context_takeover"), "{agreed}");
    assert!(agreed.contains("client_no_context_takeover"), "{agreed}");

    // A compressed client message is understood.
    client
        .send_compressed(&json!({ "type": "SUBSCRIBE_TASKS" }))
        .await;
    let (subscribed, _) = client.next_json().await;
    assert_eq!(subscribed["type"], "SUBSCRIBED");

    let task = api
        .create_task(
            &user,
            json!({ "title": "compressed on the wire", "description": "d".repeat(300) }),
        )
        .await;
    let (event, compressed) = client.next_json().await;
    assert!(compressed, "an event arrives with RSV1 set");
    assert_eq!(event["type"], "TASK_CREATED");
    assert_eq!(event["seq"], 1);
    assert_eq!(event["task"], task);

    // Uncompressed client messages are still fine.
    client
        .send_frame(false, 1, json!({ "type": "PING" }).to_string().as_bytes())
        .await;
    assert_eq!(client.next_json().await.0["type"], "PONG");
}

#[tokio::test]
async fn without_an_offer_or_with_compression_off_frames_are_plain() {
    let api = TestApp::spawn().await;
    let user = api.register().await;
    let on = WsNode::start(&api).await;
    let off = WsNode::start_with(&api, |c| c.compression = false).await;
    let mut plain = RawClient::connect(&on, &user.token, None).await;
    let mut declined = RawClient::connect(&off, &user.token, Some(BROWSER_OFFER)).await;
    assert_eq!(plain.extensions, None);
    assert_eq!(declined.extensions, None);
    for client in [&mut plain, &mut declined] {
        client
            .send_frame(false, 1, br#"{"type":"SUBSCRIBE_TASKS"}"#)
            .await;
        assert_eq!(client.next_json().await.0["type"], "SUBSCRIBED");
    }
    api.create_task(
        &user,
        json!({ "title": "plain", "description": "d".repeat(300) }),
    )
    .await;
    for client in [&mut plain, &mut declined] {
        let (event, compressed) = client.next_json().await;
        assert!(!compressed);
        assert_eq!(event["seq"], 1);
    }
}

#[tokio::test]
async fn a_deflate_bomb_is_closed_with_1009_and_harms_no_one_else() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    let (mut bystander, _) = ws.subscribed(&user.token).await;
    let mut attacker = RawClient::connect(&ws, &user.token, Some(BROWSER_OFFER)).await;
    // 16 KiB + 1 inflated: one byte over the contract's limit.
    let mut text = br#"{"type":"PING","pad":""#.to_vec();
    text.resize(16 * 1024 - 1, b'a');
    text.extend_from_slice(br#""}"#);
    assert_eq!(text.len(), 16 * 1024 + 1);
    attacker.send_frame(true, 1, &compress(&text)).await;
    assert_eq!(attacker.close_code().await, Some(1009));

    // Ten megabytes of zeros in a few kilobytes.
    let mut attacker = RawClient::connect(&ws, &user.token, Some(BROWSER_OFFER)).await;
    attacker
        .send_frame(true, 1, &compress(&vec![b'0'; 10 * 1024 * 1024]))
        .await;
    assert_eq!(attacker.close_code().await, Some(1009));

    bystander.assert_alive().await;
    api.create_task(&user, json!({ "title": "still flowing" }))
        .await;
    assert_eq!(bystander.expect("TASK_CREATED").await["seq"], 1);
}
