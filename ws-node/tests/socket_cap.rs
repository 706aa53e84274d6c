//! The per-user socket cap of a node (`WS_MAX_SOCKETS_PER_USER`): past it
//! the upgrade is refused with 429 `RATE_LIMITED` in the contract's error
//! body, however many upgrades arrive at once; other users are unaffected,
//! and a closed socket frees its place.

use test_support::ws as common;

use std::time::Duration;

use common::{Client, TestApp, WsNode};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Error as WsError;

/// What one upgrade attempt got.
enum Upgrade {
    Accepted(Box<Client>),
    Refused {
        status: u16,
        retry_after: Option<String>,
        body: Value,
    },
}

async fn upgrade(ws: &WsNode, token: &str) -> Upgrade {
    match tokio_tungstenite::connect_async(ws.url(token)).await {
        Ok((socket, _)) => Upgrade::Accepted(Box::new(Client { ws: socket })),
        Err(WsError::Http(response)) => Upgrade::Refused {
            status: response.status().as_u16(),
            retry_after: response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
            body: serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                .unwrap_or(Value::Null),
        },
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

#[tokio::test]
async fn hundreds_of_parallel_upgrades_of_one_user_get_at_most_the_cap() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    assert_eq!(ws.config.max_sockets_per_user, 100, "the default");
    let user = api.register().await;

    let attempts = (0..300).map(|_| upgrade(&ws, &user.token));
    let results = futures_util::future::join_all(attempts).await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for result in results {
        match result {
            Upgrade::Accepted(client) => accepted.push(client),
            Upgrade::Refused {
                status,
                retry_after,
                body,
            } => {
                assert_eq!(status, 429, "{body}");
                assert_eq!(body["statusCode"], 429, "{body}");
                assert_eq!(body["code"], "RATE_LIMITED", "{body}");
                assert!(body["message"].is_string(), "{body}");
                assert!(retry_after.is_some_and(|s| s.parse::<u64>().is_ok()));
                refused += 1;
            }
        }
    }
    assert_eq!((accepted.len(), refused), (100, 200));
    for client in accepted.iter_mut().take(3) {
        client.assert_alive().await;
    }

    // Another user is not affected.
    let other = api.register().await;
    let (mut theirs, _) = ws.subscribed(&other.token).await;
    theirs.assert_alive().await;

    // A socket that closes gives its place back.
    let mut gone = accepted.pop().unwrap();
    let _ = gone.ws.close(None).await;
    drop(gone);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        match upgrade(&ws, &user.token).await {
            Upgrade::Accepted(client) => {
                accepted.push(client);
                break;
            }
            Upgrade::Refused { .. } if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Upgrade::Refused { .. } => panic!("a closed socket's place was not given back"),
        }
    }
    assert!(matches!(
        upgrade(&ws, &user.token).await,
        Upgrade::Refused { status: 429, .. }
    ));
}

#[tokio::test]
async fn the_cap_is_a_setting_and_counts_every_token_of_the_user() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start_with(&api, |c| c.max_sockets_per_user = 2).await;
    let user = api.register().await;
    let second_token = api.login(&user.email, &user.password).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let _a = ws.connect(&user.token).await;
    let _b = ws.connect(&second_token).await;
    for token in [&user.token, &second_token] {
        assert!(matches!(
            upgrade(&ws, token).await,
            Upgrade::Refused { status: 429, .. }
        ));
    }
    // Authentication still comes first.
    assert_eq!(ws.refused_status(Some("garbage")).await, 401);
}
