//! Bearer tokens: what is refused with 401, and revocation across nodes.

use test_support::api as common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{eventually, jwt_keys, Reply, TestApp, JWT_SECRET};
use reqwest::{Method, StatusCode};
use shared::jwt::{Claims, JwtKeys};
use shared::settings::Secret;
use uuid::Uuid;

/// `GET /api/profile` with a raw `Authorization` header (or none).
async fn profile_with(app: &TestApp, authorization: Option<&str>) -> Reply {
    let mut req = app.http.get(app.url("/api/profile"));
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    TestApp::read(req).await
}

async fn logout(app: &TestApp, token: &str) {
    let reply = app
        .call(Method::POST, "/api/auth/logout", Some(token), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims_for(user_id: &str, iat: i64, exp: i64) -> Claims {
    Claims {
        sub: user_id.parse().unwrap(),
        jti: Uuid::new_v4(),
        iat,
        exp,
    }
}

// ---- missing and malformed ------------------------------------------------

#[tokio::test]
async fn no_authorization_header_is_401() {
    let app = TestApp::spawn().await;

    profile_with(&app, None)
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn malformed_authorization_headers_are_401() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    for value in [
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer not-a-jwt".to_owned(),
        "Bearer a.b.c".to_owned(),
        "Bearer ....".to_owned(),
        format!("Basic {}", user.token),
        user.token.clone(),
        format!("Bearer {}x", user.token),
        format!("Bearer {}", &user.token[..user.token.len() - 2]),
    ] {
        profile_with(&app, Some(&value))
            .await
            .assert_error(401, "UNAUTHORIZED");
    }
    // The same user's real token still works: only the header was wrong.
    assert_eq!(
        profile_with(&app, Some(&format!("Bearer {}", user.token)))
            .await
            .status,
        StatusCode::OK
    );
}

// ---- signature and algorithm --------------------------------------------

#[tokio::test]
async fn a_token_signed_with_another_secret_is_401() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let other = JwtKeys::new(
        &Secret::new("5b0d8e2f7a1c4963b8e0d2f6a4c1e7b9".into()),
        "HS256",
        3600,
    )
    .unwrap();
    let (forged, _) = other.issue(user.id.parse().unwrap());

    app.get("/api/profile", &forged)
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn a_token_with_a_tampered_payload_is_401() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let victim = app.register().await;
    let parts: Vec<&str> = user.token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = victim.id.clone().into();
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);

    app.get("/api/profile", &tampered)
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn an_alg_none_token_is_401() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let payload = user.token.split('.').nth(1).unwrap();
    let signature = user.token.split('.').nth(2).unwrap();

    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"none"}"#,
        r#"{"alg":"None","typ":"JWT"}"#,
    ] {
        let header = URL_SAFE_NO_PAD.encode(header);
        let unsigned = format!("{header}.{payload}.");
        let with_old_signature = format!("{header}.{payload}.{signature}");

        app.get("/api/profile", &unsigned)
            .await
            .assert_error(401, "UNAUTHORIZED");
        app.get("/api/profile", &with_old_signature)
            .await
            .assert_error(401, "UNAUTHORIZED");
    }
}

#[tokio::test]
async fn a_token_of_another_algorithm_than_the_pinned_one_is_401() {
    // The node pins HS256; these are signed with the same secret.
    let app = TestApp::spawn().await;
    let user = app.register().await;

    for alg in ["HS512", "HS384"] {
        let keys = JwtKeys::new(&Secret::new(JWT_SECRET.into()), alg, 3600).unwrap();
        let (token, _) = keys.issue(user.id.parse().unwrap());

        app.get("/api/profile", &token)
            .await
            .assert_error(401, "UNAUTHORIZED");
    }
}

#[tokio::test]
async fn a_node_pinned_to_hs512_refuses_hs256_tokens() {
    let app = TestApp::spawn_with(|c| {
        c.jwt = JwtKeys::new(&Secret::new(JWT_SECRET.into()), "HS512", 3600).unwrap();
    })
    .await;
    let user = app.register().await;
    let (hs256, _) = jwt_keys().issue(user.id.parse().unwrap());

    let own = app.get("/api/profile", &user.token).await;

    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    app.get("/api/profile", &hs256)
        .await
        .assert_error(401, "UNAUTHORIZED");
}

// ---- expiry ---------------------------------------------------------------

#[tokio::test]
async fn an_expired_token_is_401() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let expired = jwt_keys().sign(&claims_for(&user.id, now() - 7200, now() - 60));
    let just_expired = jwt_keys().sign(&claims_for(&user.id, now() - 3600, now() - 1));

    app.get("/api/profile", &expired)
        .await
        .assert_error(401, "UNAUTHORIZED");
    app.get("/api/profile", &just_expired)
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn a_token_signed_the_same_way_but_unexpired_is_accepted() {
    // The control for the expiry test: only `exp` differs.
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let valid = jwt_keys().sign(&claims_for(&user.id, now() - 60, now() + 600));

    let reply = app.get("/api/profile", &valid).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["id"], user.id.as_str());
}

#[tokio::test]
async fn tokens_expire_after_the_configured_lifetime() {
    let app = TestApp::spawn_with(|c| {
        c.jwt = JwtKeys::new(&Secret::new(JWT_SECRET.into()), "HS256", 1).unwrap();
    })
    .await;
    let user = app.register().await;
    let claims: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(user.token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        1
    );

    let expired = eventually(Duration::from_secs(4), || async {
        app.get("/api/profile", &user.token).await.status == StatusCode::UNAUTHORIZED
    })
    .await;

    assert!(expired, "a 1-second token still accepted after 4 s");
}

#[tokio::test]
async fn issued_tokens_carry_sub_jti_iat_and_exp_with_a_one_hour_default_lifetime() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let payload = user.token.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();

    assert_eq!(claims["sub"], user.id.as_str());
    assert!(Uuid::try_parse(claims["jti"].as_str().unwrap()).is_ok());
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 3600);
    assert!((iat - now()).abs() <= 60, "iat {iat} is now");
}

// ---- revocation -------------------------------------------------------------

#[tokio::test]
async fn logout_on_one_node_is_refused_by_another_within_one_second() {
    let a = TestApp::spawn().await;
    let b = a.spawn_peer().await;
    let user = a.register().await;
    assert_eq!(
        b.get("/api/profile", &user.token).await.status,
        StatusCode::OK
    );

    logout(&a, &user.token).await;
    let refused_by_b = eventually(Duration::from_secs(1), || async {
        b.get("/api/profile", &user.token).await.status == StatusCode::UNAUTHORIZED
    })
    .await;

    assert!(
        refused_by_b,
        "node B still accepts the token 1 s after logout"
    );
    a.get("/api/profile", &user.token)
        .await
        .assert_error(401, "UNAUTHORIZED");
    b.get("/api/profile", &user.token)
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn a_node_started_after_the_logout_refuses_the_token_from_its_first_request() {
    let a = TestApp::spawn().await;
    let user = a.register().await;
    let login = a.login(&user.email, &user.password).await;
    let other = login.body["token"].as_str().unwrap().to_owned();
    logout(&a, &user.token).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);

    // Past the contract's one second, every API node refuses the token,
    // including one that was not running when the logout happened.
    tokio::time::sleep_until(deadline).await;
    let c = a.spawn_peer().await;
    let first = c.get("/api/profile", &user.token).await;

    first.assert_error(401, "UNAUTHORIZED");
    let other_on_c = c.get("/api/profile", &other).await;
    assert_eq!(other_on_c.status, StatusCode::OK, "{}", other_on_c.body);
}

#[tokio::test]
async fn revocation_survives_a_restart_of_every_node() {
    let a = TestApp::spawn().await;
    let user = a.register().await;
    logout(&a, &user.token).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let (db, config) = (a.db.clone(), a.config.clone());
    a.stop().await;

    tokio::time::sleep_until(deadline).await;
    let restarted = TestApp::start(db, config).await;
    let first = restarted.get("/api/profile", &user.token).await;

    first.assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn logout_on_one_node_leaves_other_tokens_valid_on_every_node() {
    let a = TestApp::spawn().await;
    let b = a.spawn_peer().await;
    let user = a.register().await;
    let login = b.login(&user.email, &user.password).await;
    let other = login.body["token"].as_str().unwrap().to_owned();

    logout(&a, &user.token).await;
    let refused_by_b = eventually(Duration::from_secs(1), || async {
        b.get("/api/profile", &user.token).await.status == StatusCode::UNAUTHORIZED
    })
    .await;

    assert!(refused_by_b);
    for node in [&a, &b] {
        let reply = node.get("/api/profile", &other).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
}
