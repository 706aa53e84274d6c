//! The caller's own user: GET and PUT /api/profile.

use test_support::api as common;

use common::{TestApp, TestUser};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn profile(app: &TestApp, user: &TestUser) -> Value {
    let reply = app.get("/api/profile", &user.token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

fn sorted_keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

// ---- GET ------------------------------------------------------------------

#[tokio::test]
async fn get_profile_returns_the_callers_user() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let reply = app.get("/api/profile", &user.token).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        sorted_keys(&reply.body),
        ["createdAt", "email", "id", "name", "updatedAt"]
    );
    assert_eq!(reply.body["id"], user.id.as_str());
    assert_eq!(reply.body["email"], user.email.as_str());
    assert_eq!(reply.body["name"], "Test User");
}

#[tokio::test]
async fn each_user_sees_only_their_own_profile() {
    let app = TestApp::spawn().await;
    let ann = app.register().await;
    let bob = app.register().await;

    assert_eq!(profile(&app, &ann).await["id"], ann.id.as_str());
    assert_eq!(profile(&app, &bob).await["id"], bob.id.as_str());
}

#[tokio::test]
async fn profile_without_a_token_is_401() {
    let app = TestApp::spawn().await;

    app.call(Method::GET, "/api/profile", None, None)
        .await
        .assert_error(401, "UNAUTHORIZED");
    app.call(
        Method::PUT,
        "/api/profile",
        None,
        Some(json!({ "name": "Nobody" })),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
}

// ---- PUT ------------------------------------------------------------------

#[tokio::test]
async fn put_name_only_changes_the_name() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let before = profile(&app, &user).await;

    let reply = app
        .put("/api/profile", &user.token, json!({ "name": "Renamed" }))
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        sorted_keys(&reply.body),
        ["createdAt", "email", "id", "name", "updatedAt"]
    );
    assert_eq!(reply.body["name"], "Renamed");
    assert_eq!(reply.body["email"], before["email"]);
    assert_eq!(reply.body["id"], before["id"]);
    assert_eq!(reply.body["createdAt"], before["createdAt"]);
    assert_eq!(profile(&app, &user).await, reply.body);
}

#[tokio::test]
async fn put_trims_the_name() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let reply = app
        .put("/api/profile", &user.token, json!({ "name": "   Bo  " }))
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["name"], "Bo");
    assert_eq!(profile(&app, &user).await["name"], "Bo");
}

#[tokio::test]
async fn put_email_only_normalises_it_and_login_follows() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let before = profile(&app, &user).await;

    let reply = app
        .put(
            "/api/profile",
            &user.token,
            json!({ "email": "  New.Address@Example.COM " }),
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["email"], "new.address@example.com");
    assert_eq!(reply.body["name"], before["name"]);
    assert_eq!(profile(&app, &user).await, reply.body);
    let new_login = app.login("new.address@example.com", &user.password).await;
    assert_eq!(new_login.status, StatusCode::OK, "{}", new_login.body);
    app.login(&user.email, &user.password)
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn put_name_and_email_together() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let reply = app
        .put(
            "/api/profile",
            &user.token,
            json!({ "name": "Both", "email": "both@example.com" }),
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["name"], "Both");
    assert_eq!(reply.body["email"], "both@example.com");
    assert_eq!(profile(&app, &user).await, reply.body);
}

#[tokio::test]
async fn put_with_your_own_email_is_fine() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let same = app
        .put("/api/profile", &user.token, json!({ "email": user.email }))
        .await;
    let same_differently_spelt = app
        .put(
            "/api/profile",
            &user.token,
            json!({ "email": format!(" {} ", user.email.to_uppercase()), "name": "Still Me" }),
        )
        .await;

    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    assert_eq!(same.body["email"], user.email.as_str());
    assert_eq!(
        same_differently_spelt.status,
        StatusCode::OK,
        "{}",
        same_differently_spelt.body
    );
    assert_eq!(same_differently_spelt.body["email"], user.email.as_str());
    assert_eq!(same_differently_spelt.body["name"], "Still Me");
}

#[tokio::test]
async fn put_with_someone_elses_email_is_409_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let other = app.register().await;
    let before = profile(&app, &user).await;

    let exact = app
        .put("/api/profile", &user.token, json!({ "email": other.email }))
        .await;
    let normalised = app
        .put(
            "/api/profile",
            &user.token,
            json!({ "email": format!("  {}", other.email.to_uppercase()), "name": "Changed" }),
        )
        .await;

    exact.assert_error(409, "EMAIL_TAKEN");
    normalised.assert_error(409, "EMAIL_TAKEN");
    assert_eq!(profile(&app, &user).await, before);
    let other_login = app.login(&other.email, &other.password).await;
    assert_eq!(other_login.status, StatusCode::OK);
    assert_eq!(other_login.body["user"]["id"], other.id.as_str());
}

/// Each invalid body is refused with every invalid field named (`body`
/// for a rule about the body as a whole), and changes nothing.
#[tokio::test]
async fn each_invalid_put_names_its_invalid_fields_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let before = profile(&app, &user).await;
    let cases: [(Value, &[&str]); 9] = [
        (json!({}), &["body"]),
        (
            json!({ "name": "Fine", "password": "sneaky-new-password" }),
            &["password"],
        ),
        (
            json!({ "name": "   ", "email": "no-at-sign" }),
            &["email", "name"],
        ),
        (json!({ "name": "n".repeat(101) }), &["name"]),
        (json!({ "name": 42 }), &["name"]),
        (json!({ "name": null }), &["name"]),
        (json!({ "email": null }), &["email"]),
        (json!({ "email": "a@b" }), &["email"]),
        (
            json!({ "email": format!("{}@example.com", "a".repeat(250)) }),
            &["email"],
        ),
    ];

    for (body, fields) in cases {
        let reply = app.put("/api/profile", &user.token, body.clone()).await;
        let mut invalid = reply.invalid_fields();
        invalid.sort();
        assert_eq!(invalid, fields, "{body}");
    }
    assert_eq!(profile(&app, &user).await, before);
}

#[tokio::test]
async fn a_name_of_100_characters_is_accepted() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let reply = app
        .put(
            "/api/profile",
            &user.token,
            json!({ "name": "名".repeat(100) }),
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(profile(&app, &user).await["name"], "名".repeat(100));
}
