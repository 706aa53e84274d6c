//! Register, login and logout, as the contract describes them.

use test_support::api as common;

use common::{Reply, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

/// `2026-11-26T21:30:00.123Z`: RFC 3339, UTC, exactly three fraction digits.
fn is_rfc3339_utc_millis(s: &str) -> bool {
    let b = s.as_bytes();
    let digit = |i: usize| b[i].is_ascii_digit();
    b.len() == 24
        && (0..4).all(digit)
        && b[4] == b'-'
        && (5..7).all(digit)
        && b[7] == b'-'
        && (8..10).all(digit)
        && b[10] == b'T'
        && (11..13).all(digit)
        && b[13] == b':'
        && (14..16).all(digit)
        && b[16] == b':'
        && (17..19).all(digit)
        && b[19] == b'.'
        && (20..23).all(digit)
        && b[23] == b'Z'
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// The contract's User object: exactly these fields, nothing else.
fn assert_user_shape(user: &Value) {
    let obj = user.as_object().expect("a user is an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["createdAt", "email", "id", "name", "updatedAt"],
        "user: {user}"
    );
    let id = user["id"].as_str().unwrap();
    assert!(uuid::Uuid::try_parse(id).is_ok(), "id {id:?}");
    assert_eq!(id, id.to_lowercase(), "ids are lower-case");
    assert_eq!(id.len(), 36, "ids are hyphenated");
    for field in ["createdAt", "updatedAt"] {
        let at = user[field].as_str().unwrap();
        assert!(is_rfc3339_utc_millis(at), "{field} = {at:?}");
    }
}

async fn register(app: &TestApp, body: Value) -> Reply {
    app.post("/api/auth/register", None, body).await
}

fn registration(email: &str) -> Value {
    json!({ "email": email, "password": PASSWORD, "name": "Ann" })
}

// ---- register ----------------------------------------------------------

#[tokio::test]
async fn register_returns_201_with_the_user_and_a_token() {
    let app = TestApp::spawn().await;

    let reply = register(&app, registration("ann@example.com")).await;

    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let mut keys: Vec<&str> = reply
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["token", "user"]);
    assert_user_shape(&reply.body["user"]);
    assert_eq!(reply.body["user"]["email"], "ann@example.com");
    assert_eq!(reply.body["user"]["name"], "Ann");
    let token = reply.body["token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    let profile = app.get("/api/profile", token).await;
    assert_eq!(profile.status, StatusCode::OK, "{}", profile.body);
    assert_eq!(profile.body, reply.body["user"]);
}

#[tokio::test]
async fn register_never_returns_the_password_or_its_hash() {
    let app = TestApp::spawn().await;

    let reply = register(&app, registration("ann@example.com")).await;

    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let user = reply.body["user"].to_string();
    assert!(!user.contains(PASSWORD), "{user}");
    assert!(!user.contains("argon2"), "{user}");
    assert!(!user.to_lowercase().contains("password"), "{user}");
    assert!(!user.to_lowercase().contains("hash"), "{user}");
}

#[tokio::test]
async fn register_trims_and_lower_cases_the_email_and_trims_the_name() {
    let app = TestApp::spawn().await;

    let reply = register(
        &app,
        json!({ "email": "  Ann.Smith@Example.COM ", "password": PASSWORD, "name": "  Ann Smith  " }),
    )
    .await;

    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["user"]["email"], "ann.smith@example.com");
    assert_eq!(reply.body["user"]["name"], "Ann Smith");
}

#[tokio::test]
async fn register_with_an_email_taken_after_normalisation_is_409() {
    let app = TestApp::spawn().await;
    let first = register(&app, registration(" Ann@X.com ")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);

    for taken in ["ann@x.com", "ANN@X.COM", "  ann@x.com"] {
        register(&app, registration(taken))
            .await
            .assert_error(409, "EMAIL_TAKEN");
    }
}

#[tokio::test]
async fn register_accepts_an_email_of_254_characters_and_refuses_255() {
    let app = TestApp::spawn().await;
    let domain = "@example.com";
    let at_limit = format!("{}{domain}", "a".repeat(254 - domain.len()));
    let over_limit = format!("{}{domain}", "b".repeat(255 - domain.len()));
    assert_eq!((at_limit.len(), over_limit.len()), (254, 255));

    let ok = register(&app, registration(&at_limit)).await;
    let too_long = register(&app, registration(&over_limit)).await;

    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    assert_eq!(ok.body["user"]["email"], at_limit);
    assert_eq!(too_long.invalid_fields(), ["email"]);
}

#[tokio::test]
async fn register_refuses_malformed_emails() {
    let app = TestApp::spawn().await;

    for bad in [
        "",
        "   ",
        "ann.example.com",
        "ann@",
        "@example.com",
        "ann@example",
        "ann@b@example.com",
    ] {
        let reply = register(&app, registration(bad)).await;
        assert_eq!(reply.invalid_fields(), ["email"], "email {bad:?}");
    }
}

#[tokio::test]
async fn register_password_must_be_8_to_128_code_points() {
    let app = TestApp::spawn().await;
    let cases = [
        ("x".repeat(7), false),
        ("x".repeat(8), true),
        ("x".repeat(128), true),
        ("x".repeat(129), false),
        // Multibyte characters count once each, not per byte.
        ("é".repeat(7), false),
        ("é".repeat(8), true),
        ("密".repeat(128), true),
        ("密".repeat(129), false),
    ];

    for (i, (password, ok)) in cases.iter().enumerate() {
        let reply = register(
            &app,
            json!({ "email": format!("p{i}@example.com"), "password": password, "name": "Ann" }),
        )
        .await;
        let chars = password.chars().count();
        if *ok {
            assert_eq!(
                reply.status,
                StatusCode::CREATED,
                "{chars} chars: {}",
                reply.body
            );
        } else {
            assert_eq!(reply.invalid_fields(), ["password"], "{chars} chars");
        }
    }
}

#[tokio::test]
async fn a_multibyte_password_works_for_login() {
    let app = TestApp::spawn().await;
    let password = "pässwörd-密码";
    let reply = register(
        &app,
        json!({ "email": "ann@example.com", "password": password, "name": "Ann" }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);

    let login = app.login("ann@example.com", password).await;

    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
}

#[tokio::test]
async fn register_name_must_be_1_to_100_code_points_after_trimming() {
    let app = TestApp::spawn().await;
    let cases = [
        (String::new(), false),
        ("   ".to_owned(), false),
        ("a".to_owned(), true),
        ("n".repeat(100), true),
        (format!("  {}  ", "n".repeat(100)), true),
        ("n".repeat(101), false),
        ("名".repeat(100), true),
        ("名".repeat(101), false),
    ];

    for (i, (name, ok)) in cases.iter().enumerate() {
        let reply = register(
            &app,
            json!({ "email": format!("n{i}@example.com"), "password": PASSWORD, "name": name }),
        )
        .await;
        if *ok {
            assert_eq!(
                reply.status,
                StatusCode::CREATED,
                "{name:?}: {}",
                reply.body
            );
            assert_eq!(reply.body["user"]["name"], name.trim());
        } else {
            assert_eq!(reply.invalid_fields(), ["name"], "{name:?}");
        }
    }
}

#[tokio::test]
async fn register_refuses_unknown_fields() {
    let app = TestApp::spawn().await;

    let reply = register(
        &app,
        json!({ "email": "ann@example.com", "password": PASSWORD, "name": "Ann", "role": "admin" }),
    )
    .await;

    assert_eq!(reply.invalid_fields(), ["role"]);
}

#[tokio::test]
async fn register_refuses_fields_of_the_wrong_type() {
    let app = TestApp::spawn().await;

    let reply = register(
        &app,
        json!({ "email": 5, "password": true, "name": ["Ann"] }),
    )
    .await;

    let mut fields = reply.invalid_fields();
    fields.sort();
    assert_eq!(fields, ["email", "name", "password"]);
}

#[tokio::test]
async fn register_lists_every_invalid_field() {
    let app = TestApp::spawn().await;

    let reply = register(
        &app,
        json!({ "email": "not-an-email", "password": "short", "extra": 1 }),
    )
    .await;

    let mut fields = reply.invalid_fields();
    fields.sort();
    assert_eq!(fields, ["email", "extra", "name", "password"]);
    for detail in reply.body["details"].as_array().unwrap() {
        assert!(
            detail["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{detail}"
        );
    }
}

#[tokio::test]
async fn register_with_an_empty_object_names_every_required_field() {
    let app = TestApp::spawn().await;

    let reply = register(&app, json!({})).await;

    let mut fields = reply.invalid_fields();
    fields.sort();
    assert_eq!(fields, ["email", "name", "password"]);
}

// ---- login -------------------------------------------------------------

#[tokio::test]
async fn login_returns_200_with_the_user_and_a_working_token() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let reply = app.login(&user.email, &user.password).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_user_shape(&reply.body["user"]);
    assert_eq!(reply.body["user"]["id"], user.id.as_str());
    assert_eq!(reply.body["user"]["email"], user.email.as_str());
    let token = reply.body["token"].as_str().unwrap();
    let profile = app.get("/api/profile", token).await;
    assert_eq!(profile.status, StatusCode::OK, "{}", profile.body);
    assert_eq!(profile.body["id"], user.id.as_str());
}

#[tokio::test]
async fn login_normalises_the_email() {
    let app = TestApp::spawn().await;
    let reply = register(&app, registration("ann@example.com")).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);

    let login = app.login("  ANN@Example.com ", PASSWORD).await;

    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.body["user"]["email"], "ann@example.com");
}

#[tokio::test]
async fn login_issues_a_new_token_each_time() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let first = app.login(&user.email, &user.password).await;
    let second = app.login(&user.email, &user.password).await;

    let (a, b) = (&first.body["token"], &second.body["token"]);
    assert!(a.is_string() && b.is_string());
    assert_ne!(a, b);
    assert_ne!(a.as_str().unwrap(), user.token);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_give_the_same_401() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let wrong_password = app.login(&user.email, "not the password").await;
    let unknown_email = app
        .login("nobody-here@example.com", "not the password")
        .await;

    wrong_password.assert_error(401, "UNAUTHORIZED");
    unknown_email.assert_error(401, "UNAUTHORIZED");
    assert_eq!(wrong_password.body, unknown_email.body);
    assert!(wrong_password.body.get("token").is_none());
}

#[tokio::test]
async fn login_with_a_missing_field_is_a_validation_error() {
    let app = TestApp::spawn().await;

    let reply = app
        .post(
            "/api/auth/login",
            None,
            json!({ "email": "ann@example.com" }),
        )
        .await;

    assert_eq!(reply.invalid_fields(), ["password"]);
}

// ---- logout ------------------------------------------------------------

#[tokio::test]
async fn logout_is_204_and_the_token_is_then_refused() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let logout = app
        .call(Method::POST, "/api/auth/logout", Some(&user.token), None)
        .await;

    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{}", logout.body);
    assert_eq!(logout.body, Value::Null, "204 has no body");
    app.get("/api/profile", &user.token)
        .await
        .assert_error(401, "UNAUTHORIZED");
    app.call(Method::POST, "/api/auth/logout", Some(&user.token), None)
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn logout_leaves_the_users_other_tokens_valid() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let login = app.login(&user.email, &user.password).await;
    let other = login.body["token"].as_str().unwrap().to_owned();

    let logout = app
        .call(Method::POST, "/api/auth/logout", Some(&other), None)
        .await;

    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{}", logout.body);
    app.get("/api/profile", &other)
        .await
        .assert_error(401, "UNAUTHORIZED");
    let still = app.get("/api/profile", &user.token).await;
    assert_eq!(still.status, StatusCode::OK, "{}", still.body);
    let fresh = app.login(&user.email, &user.password).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    let fresh_token = fresh.body["token"].as_str().unwrap();
    assert_eq!(
        app.get("/api/profile", fresh_token).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_without_a_token_is_401() {
    let app = TestApp::spawn().await;

    app.call(Method::POST, "/api/auth/logout", None, None)
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn unknown_email_costs_about_as_much_as_a_wrong_password() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());

    // Alternate, and compare the fastest of each: load only slows things down.
    for i in 0..4 {
        let started = std::time::Instant::now();
        app.login(&user.email, "not the password")
            .await
            .assert_error(401, "UNAUTHORIZED");
        wrong.push(started.elapsed());
        let started = std::time::Instant::now();
        app.login(&format!("nobody-{i}@example.com"), "not the password")
            .await
            .assert_error(401, "UNAUTHORIZED");
        unknown.push(started.elapsed());
    }

    let (wrong, unknown) = (*wrong.iter().min().unwrap(), *unknown.iter().min().unwrap());
    assert!(
        unknown * 3 >= wrong,
        "unknown email answered in {unknown:?}, wrong password in {wrong:?}"
    );
}
