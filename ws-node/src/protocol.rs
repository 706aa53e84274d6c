//! The WebSocket protocol of the contract: what clients send, what the
//! server answers. Events are not built here: they arrive as finished JSON.

use serde::Deserialize;
use serde_json::json;

/// A message from a client.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientMessage {
    /// `{ "type": "PING" }`
    Ping,
    /// `{ "type": "SUBSCRIBE_TASKS", "since"?: seq }`
    Subscribe {
        /// Resume after this seq.
        since: Option<i64>,
    },
    /// `{ "type": "UNSUBSCRIBE_TASKS" }`
    Unsubscribe,
    /// `{ "type": "AUTH", "token": "…" }`
    Auth {
        /// The new token.
        token: String,
    },
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    since: Option<serde_json::Value>,
    #[serde(default)]
    token: Option<serde_json::Value>,
}

impl ClientMessage {
    /// Parses a text frame; the error is the `BAD_MESSAGE` explanation.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let envelope: Envelope = serde_json::from_str(text)
            .map_err(|_| "expected a JSON object with a string \"type\"")?;
        match envelope.kind.as_str() {
            "PING" => Ok(ClientMessage::Ping),
            "SUBSCRIBE_TASKS" => match envelope.since {
                None | Some(serde_json::Value::Null) => {
                    Ok(ClientMessage::Subscribe { since: None })
                }
                Some(value) => match value.as_i64() {
                    Some(since) if since >= 0 => {
                        Ok(ClientMessage::Subscribe { since: Some(since) })
                    }
                    _ => Err("since must be a non-negative integer"),
                },
            },
            "UNSUBSCRIBE_TASKS" => Ok(ClientMessage::Unsubscribe),
            "AUTH" => match envelope.token {
                Some(serde_json::Value::String(token)) => Ok(ClientMessage::Auth { token }),
                _ => Err("AUTH needs a string token"),
            },
            _ => Err("unknown message type"),
        }
    }
}

/// `PONG`.
pub fn pong(now_ms: i64) -> String {
    json!({ "type": "PONG", "timestamp": now_ms }).to_string()
}

/// `SUBSCRIBED`.
pub fn subscribed(seq: i64) -> String {
    json!({ "type": "SUBSCRIBED", "seq": seq }).to_string()
}

/// `RESYNC_REQUIRED`.
pub fn resync_required(seq: i64) -> String {
    json!({ "type": "RESYNC_REQUIRED", "seq": seq }).to_string()
}

/// `UNSUBSCRIBED`.
pub fn unsubscribed() -> String {
    json!({ "type": "UNSUBSCRIBED" }).to_string()
}

/// `AUTHENTICATED`.
pub fn authenticated(exp: i64) -> String {
    json!({ "type": "AUTHENTICATED", "exp": exp }).to_string()
}

/// `ERROR`.
pub fn error(code: &str, message: &str) -> String {
    json!({ "type": "ERROR", "code": code, "message": message }).to_string()
}

/// Close codes, and whether the client should reconnect.
pub mod close {
    /// Token expired or revoked: reconnecting needs a new token.
    pub const TOKEN: u16 = 4001;
    /// The node is shutting down: reconnect elsewhere and resume.
    pub const GOING_AWAY: u16 = 1001;
    /// Flooding or too slow: reconnect and resume with `since`.
    pub const POLICY: u16 = 1008;
    /// A message over 16 KiB.
    pub const TOO_BIG: u16 = 1009;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_client_message() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"PING"}"#),
            Ok(ClientMessage::Ping)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"SUBSCRIBE_TASKS"}"#),
            Ok(ClientMessage::Subscribe { since: None })
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"SUBSCRIBE_TASKS","since":7}"#),
            Ok(ClientMessage::Subscribe { since: Some(7) })
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"UNSUBSCRIBE_TASKS"}"#),
            Ok(ClientMessage::Unsubscribe)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"AUTH","token":"t"}"#),
            Ok(ClientMessage::Auth { token: "t".into() })
        );
    }

    #[test]
    fn refuses_bad_messages() {
        for bad in [
            "",
            "nope",
            "[]",
            r#"{"type":1}"#,
            r#"{"type":"FOO"}"#,
            r#"{"type":"SUBSCRIBE_TASKS","since":-1}"#,
            r#"{"type":"SUBSCRIBE_TASKS","since":"3"}"#,
            r#"{"type":"AUTH"}"#,
        ] {
            assert!(ClientMessage::parse(bad).is_err(), "{bad}");
        }
    }
}
