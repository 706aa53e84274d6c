//! A logout closes the token's sockets with 4001 even when it comes in a
//! burst of revocations larger than the node's announcement channel holds:
//! the listener that fell behind re-checks every open socket.

use test_support::ws as common;

use std::time::Duration;

use common::{TestApp, WsNode};
use uuid::Uuid;

/// A token of `user_id` with a known jti.
fn token_with_jti(user_id: &str, jti: Uuid) -> String {
    let now = chrono::Utc::now().timestamp();
    common::api::jwt_keys().sign(&shared::jwt::Claims {
        sub: user_id.parse().unwrap(),
        jti,
        iat: now,
        exp: now + 3600,
    })
}

#[tokio::test]
async fn a_revocation_lost_in_a_lagging_burst_still_closes_its_sockets() {
    let api = TestApp::spawn().await;
    let ws = WsNode::start(&api).await;
    let user = api.register().await;
    let jti = Uuid::new_v4();
    let doomed_token = token_with_jti(&user.id, jti);
    let (mut doomed, _) = ws.subscribed(&doomed_token).await;
    let (mut kept, _) = ws.subscribed(&user.token).await;

    // The revocation, then 5,000 more (more than the 4,096 the channel
    // holds), all committed at once: the node's poll learns them in one
    // go, and the listener finds it has missed the first ones, ours among
    // them.
    let mut jtis = vec![jti];
    jtis.extend((0..5_000).map(|_| Uuid::new_v4()));
    let user_id: Uuid = user.id.parse().unwrap();
    let db = api.db.client().await;
    db.execute(
        "INSERT INTO revoked_tokens (jti, user_id, expires_at)
         SELECT j, $2, now() + interval '1 hour' FROM unnest($1::uuid[]) WITH ORDINALITY AS r(j, n)
         ORDER BY n",
        &[&jtis, &user_id],
    )
    .await
    .unwrap();

    assert_eq!(
        doomed.expect_close(Duration::from_secs(5)).await,
        Some(4001)
    );
    kept.assert_alive().await;
    assert_eq!(ws.refused_status(Some(&doomed_token)).await, 401);
}
