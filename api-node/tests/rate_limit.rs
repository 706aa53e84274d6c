//! Failed logins are rate-limited per email and per client address; the
//! limits are configurable, so these tests use small ones.

mod common;

use std::time::Duration;

use api_node::config::LoginLimit;
use common::{eventually, Reply, TestApp, TestUser};
use reqwest::StatusCode;
use serde_json::json;

const WRONG: &str = "definitely not it";

fn limit(max_failures: i64, window_secs: u64) -> LoginLimit {
    LoginLimit {
        max_failures,
        window: Duration::from_secs(window_secs),
    }
}

/// A 429 in the contract's shape, with `Retry-After` in whole seconds
/// within the window.
fn assert_rate_limited(reply: &Reply, window_secs: u64) {
    reply.assert_error(429, "RATE_LIMITED");
    let retry_after = reply
        .header("retry-after")
        .unwrap_or_else(|| panic!("429 carries Retry-After; headers: {:?}", reply.headers));
    let secs: u64 = retry_after
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is a number of seconds: {retry_after:?}"));
    assert!(
        secs > 0 && secs <= window_secs,
        "Retry-After {secs} not in 1..={window_secs}"
    );
}

/// A login attempt as if forwarded by a proxy for `forwarded_for`.
async fn login_via(app: &TestApp, forwarded_for: &str, email: &str, password: &str) -> Reply {
    TestApp::read(
        app.http
            .post(app.url("/api/auth/login"))
            .header("x-forwarded-for", forwarded_for)
            .json(&json!({ "email": email, "password": password })),
    )
    .await
}

async fn fail_login(app: &TestApp, email: &str) {
    app.login(email, WRONG)
        .await
        .assert_error(401, "UNAUTHORIZED");
}

// ---- per email ---------------------------------------------------------

#[tokio::test]
async fn after_too_many_failures_for_an_email_even_the_right_password_is_429() {
    let app = TestApp::spawn_with(|c| c.email_limit = limit(3, 60)).await;
    let user = app.register().await;

    for _ in 0..3 {
        fail_login(&app, &user.email).await;
    }
    let refused = app.login(&user.email, &user.password).await;

    assert_rate_limited(&refused, 60);
    assert!(refused.body.get("token").is_none());
}

#[tokio::test]
async fn by_default_ten_failures_for_an_email_are_allowed_and_the_next_attempt_is_429() {
    // The test harness starts from the documented defaults: 10 in 15 minutes.
    let app = TestApp::spawn().await;
    assert_eq!(app.config.email_limit.max_failures, 10);
    assert_eq!(app.config.email_limit.window, Duration::from_secs(900));
    let user = app.register().await;

    for _ in 0..10 {
        fail_login(&app, &user.email).await;
    }
    let refused = app.login(&user.email, &user.password).await;

    assert_rate_limited(&refused, 900);
}

#[tokio::test]
async fn once_limited_every_further_attempt_for_the_email_is_429() {
    let app = TestApp::spawn_with(|c| c.email_limit = limit(3, 60)).await;
    let user = app.register().await;
    for _ in 0..3 {
        fail_login(&app, &user.email).await;
    }

    let wrong = app.login(&user.email, WRONG).await;
    let right = app.login(&user.email, &user.password).await;
    let again = app.login(&user.email, WRONG).await;

    assert_rate_limited(&wrong, 60);
    assert_rate_limited(&right, 60);
    assert_rate_limited(&again, 60);
}

#[tokio::test]
async fn the_email_limit_counts_the_email_after_normalisation() {
    let app = TestApp::spawn_with(|c| c.email_limit = limit(3, 60)).await;
    let user = app.register().await;
    let shouting = user.email.to_uppercase();

    fail_login(&app, &user.email).await;
    fail_login(&app, &shouting).await;
    fail_login(&app, &format!("  {}  ", user.email)).await;
    let refused = app.login(&user.email, &user.password).await;

    assert_rate_limited(&refused, 60);
}

#[tokio::test]
async fn an_unknown_email_is_limited_like_a_known_one() {
    let app = TestApp::spawn_with(|c| c.email_limit = limit(3, 60)).await;

    for _ in 0..3 {
        fail_login(&app, "nobody@example.com").await;
    }
    let refused = app.login("nobody@example.com", WRONG).await;

    assert_rate_limited(&refused, 60);
}

#[tokio::test]
async fn another_email_from_the_same_address_is_not_limited() {
    let app = TestApp::spawn_with(|c| c.email_limit = limit(3, 60)).await;
    let victim = app.register().await;
    let other = app.register().await;
    for _ in 0..3 {
        fail_login(&app, &victim.email).await;
    }
    assert_rate_limited(&app.login(&victim.email, &victim.password).await, 60);

    let ok = app.login(&other.email, &other.password).await;
    let wrong = app.login(&other.email, WRONG).await;

    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    wrong.assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn successful_logins_do_not_count() {
    let app = TestApp::spawn_with(|c| c.email_limit = limit(3, 60)).await;
    let user = app.register().await;

    fail_login(&app, &user.email).await;
    fail_login(&app, &user.email).await;
    for _ in 0..5 {
        let ok = app.login(&user.email, &user.password).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    }
    // The third failure is still only a 401: the successes did not count.
    fail_login(&app, &user.email).await;
    let refused = app.login(&user.email, &user.password).await;

    assert_rate_limited(&refused, 60);
}

#[tokio::test]
async fn the_email_limit_lifts_once_the_window_has_passed() {
    // A window long enough that two slow (hashing) failures fit in it even
    // on a loaded machine, short enough to wait out.
    let app = TestApp::spawn_with(|c| c.email_limit = limit(2, 4)).await;
    let user = app.register().await;
    fail_login(&app, &user.email).await;
    fail_login(&app, &user.email).await;
    assert_rate_limited(&app.login(&user.email, &user.password).await, 4);

    let lifted = eventually(Duration::from_secs(10), || async {
        app.login(&user.email, &user.password).await.status == StatusCode::OK
    })
    .await;

    assert!(lifted, "still refused well after the 4 s window");
}

// ---- per client address --------------------------------------------------

#[tokio::test]
async fn failures_across_emails_from_one_address_are_limited() {
    let app = TestApp::spawn_with(|c| c.client_limit = limit(3, 60)).await;
    let user = app.register().await;

    for i in 0..3 {
        fail_login(&app, &format!("stranger-{i}@example.com")).await;
    }
    let other_email = app.login("yet-another@example.com", WRONG).await;
    let right = app.login(&user.email, &user.password).await;

    assert_rate_limited(&other_email, 60);
    assert_rate_limited(&right, 60);
}

#[tokio::test]
async fn successful_logins_do_not_count_against_the_address() {
    let app = TestApp::spawn_with(|c| c.client_limit = limit(3, 60)).await;
    let user = app.register().await;

    for _ in 0..5 {
        let ok = app.login(&user.email, &user.password).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    }
    for i in 0..3 {
        fail_login(&app, &format!("stranger-{i}@example.com")).await;
    }

    assert_rate_limited(&app.login(&user.email, &user.password).await, 60);
}

// ---- X-Forwarded-For -----------------------------------------------------

#[tokio::test]
async fn behind_a_trusted_proxy_failures_count_per_forwarded_address() {
    let app = TestApp::spawn_with(|c| {
        c.client_limit = limit(2, 60);
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let user: TestUser = app.register().await;

    for i in 0..2 {
        login_via(&app, "203.0.113.7", &format!("s{i}@example.com"), WRONG)
            .await
            .assert_error(401, "UNAUTHORIZED");
    }
    let limited = login_via(&app, "203.0.113.7", &user.email, &user.password).await;
    let other_client = login_via(&app, "203.0.113.8", &user.email, &user.password).await;
    let other_failure = login_via(&app, "203.0.113.8", "s9@example.com", WRONG).await;
    let the_proxy_itself = app.login(&user.email, &user.password).await;

    assert_rate_limited(&limited, 60);
    assert_eq!(other_client.status, StatusCode::OK, "{}", other_client.body);
    other_failure.assert_error(401, "UNAUTHORIZED");
    assert_eq!(
        the_proxy_itself.status,
        StatusCode::OK,
        "{}",
        the_proxy_itself.body
    );
}

#[tokio::test]
async fn without_trusted_proxies_x_forwarded_for_is_ignored() {
    let app = TestApp::spawn_with(|c| {
        c.client_limit = limit(2, 60);
        c.trusted_proxies = vec![];
    })
    .await;
    let user = app.register().await;

    login_via(&app, "203.0.113.7", "s1@example.com", WRONG)
        .await
        .assert_error(401, "UNAUTHORIZED");
    login_via(&app, "203.0.113.8", "s2@example.com", WRONG)
        .await
        .assert_error(401, "UNAUTHORIZED");
    let spoofed = login_via(&app, "198.51.100.1", &user.email, &user.password).await;
    let plain = app.login(&user.email, &user.password).await;

    assert_rate_limited(&spoofed, 60);
    assert_rate_limited(&plain, 60);
}
