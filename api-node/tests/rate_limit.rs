//! Failed logins are rate-limited per email and per client address; the
//! limits are configurable, so these tests use small ones.

use test_support::api as common;

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

// ---- under concurrency -----------------------------------------------------

/// Sends all `bodies` to `path` at once (each on its own connection, as
/// `x-forwarded-for` when given), and returns the replies.
async fn at_once(
    app: &TestApp,
    path: &str,
    requests: Vec<(Option<String>, serde_json::Value)>,
) -> Vec<Reply> {
    let sends = requests.into_iter().map(|(forwarded_for, body)| {
        let mut req = app.http.post(app.url(path)).json(&body);
        if let Some(xff) = forwarded_for {
            req = req.header("x-forwarded-for", xff);
        }
        TestApp::read(req)
    });
    futures_util::future::join_all(sends).await
}

/// How many replies have each status, and every 429 checked.
fn tally(replies: &[Reply], window_secs: u64) -> std::collections::BTreeMap<u16, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for reply in replies {
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            assert_rate_limited(reply, window_secs);
        }
        *counts.entry(reply.status.as_u16()).or_insert(0) += 1;
    }
    counts
}

/// Settings for the storms: every request gets a connection and a hash-queue
/// place, however slow the machine, so only the limit under test decides.
fn roomy(c: &mut api_node::config::Config) {
    c.db_timeout = Duration::from_secs(30);
    c.hash_queue_len = 1000;
    c.email_limit = limit(1_000_000, 900);
    c.client_limit = limit(1_000_000, 60);
    c.register_limit = limit(1_000_000, 3600);
}

#[tokio::test]
async fn of_hundreds_of_wrong_passwords_at_once_for_one_email_exactly_the_limit_are_evaluated() {
    let app = TestApp::spawn_with(|c| {
        roomy(c);
        c.email_limit = limit(10, 900);
    })
    .await;
    let user = app.register().await;
    let storm = (0..300)
        .map(|_| (None, json!({ "email": user.email, "password": WRONG })))
        .collect();

    let replies = at_once(&app, "/api/auth/login", storm).await;
    let right_password = app.login(&user.email, &user.password).await;

    let counts = tally(&replies, 900);
    assert_eq!(counts.get(&401), Some(&10), "{counts:?}");
    assert_eq!(counts.get(&429), Some(&290), "{counts:?}");
    assert_rate_limited(&right_password, 900);
    let failures: i64 = app
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM login_failures", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(failures, 10);
}

#[tokio::test]
async fn of_hundreds_of_wrong_logins_at_once_from_one_address_exactly_the_limit_are_evaluated() {
    let app = TestApp::spawn_with(|c| {
        roomy(c);
        c.client_limit = limit(20, 60);
    })
    .await;
    let user = app.register().await;
    let storm = (0..300)
        .map(|i| {
            (
                None,
                json!({ "email": format!("guess-{i}@example.com"), "password": WRONG }),
            )
        })
        .collect();

    let replies = at_once(&app, "/api/auth/login", storm).await;
    let right_password = app.login(&user.email, &user.password).await;

    let counts = tally(&replies, 60);
    assert_eq!(counts.get(&401), Some(&20), "{counts:?}");
    assert_eq!(counts.get(&429), Some(&280), "{counts:?}");
    assert_rate_limited(&right_password, 60);
}

#[tokio::test]
async fn successes_within_a_storm_do_not_count_once_they_are_known() {
    let app = TestApp::spawn_with(|c| {
        roomy(c);
        c.email_limit = limit(3, 900);
    })
    .await;
    let user = app.register().await;
    // A burst of right passwords: in flight, each holds a place under the
    // limit (nothing is known before its hash), so at most 3 are evaluated
    // at a time; a success gives its place back once answered, so on a slow
    // machine a later one of the burst may take it (hence no upper bound).
    let burst = (0..12)
        .map(|_| {
            (
                None,
                json!({ "email": user.email, "password": user.password }),
            )
        })
        .collect();
    let replies = at_once(&app, "/api/auth/login", burst).await;
    let counts = tally(&replies, 900);
    let ok = counts.get(&200).copied().unwrap_or(0);
    assert!(ok >= 1, "{counts:?}");
    assert_eq!(
        ok + counts.get(&429).copied().unwrap_or(0),
        12,
        "{counts:?}"
    );

    // Once answered, none of them counts: three failures are still allowed.
    for _ in 0..3 {
        fail_login(&app, &user.email).await;
    }

    assert_rate_limited(&app.login(&user.email, &user.password).await, 900);
}

// ---- registrations -----------------------------------------------------------

fn registration(i: usize) -> serde_json::Value {
    json!({
        "email": format!("new-{i}-{}@example.com", uuid::Uuid::new_v4().simple()),
        "password": "correct horse battery",
        "name": "New User",
    })
}

#[tokio::test]
async fn by_default_twenty_registrations_an_hour_from_one_address_are_allowed() {
    let app = TestApp::spawn().await;
    assert_eq!(app.config.register_limit.max_failures, 20);
    assert_eq!(app.config.register_limit.window, Duration::from_secs(3600));
    for _ in 0..20 {
        app.register().await;
    }

    let refused = app.post("/api/auth/register", None, registration(21)).await;

    assert_rate_limited(&refused, 3600);
}

#[tokio::test]
async fn of_many_registrations_at_once_from_one_address_exactly_the_limit_are_evaluated() {
    let app = TestApp::spawn_with(|c| {
        roomy(c);
        c.register_limit = limit(5, 3600);
    })
    .await;
    let storm = (0..60).map(|i| (None, registration(i))).collect();

    let replies = at_once(&app, "/api/auth/register", storm).await;

    let counts = tally(&replies, 3600);
    assert_eq!(counts.get(&201), Some(&5), "{counts:?}");
    assert_eq!(counts.get(&429), Some(&55), "{counts:?}");
}

#[tokio::test]
async fn the_registration_limit_counts_per_forwarded_client_and_ipv6_64() {
    let app = TestApp::spawn_with(|c| {
        roomy(c);
        c.register_limit = limit(2, 3600);
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let register_via = |xff: &'static str, i: usize| {
        TestApp::read(
            app.http
                .post(app.url("/api/auth/register"))
                .header("x-forwarded-for", xff)
                .json(&registration(i)),
        )
    };

    assert_eq!(
        register_via("2001:db8:7:1::1", 1).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        register_via("2001:db8:7:1::2", 2).await.status,
        StatusCode::CREATED
    );
    let same_64 = register_via("2001:db8:7:1:ffff:ffff:ffff:ffff", 3).await;
    let next_64 = register_via("2001:db8:7:2::1", 4).await;
    let other_v4 = register_via("203.0.113.50", 5).await;

    assert_rate_limited(&same_64, 3600);
    assert_eq!(next_64.status, StatusCode::CREATED, "{}", next_64.body);
    assert_eq!(other_v4.status, StatusCode::CREATED, "{}", other_v4.body);
}

// ---- a saturated hash queue ----------------------------------------------------

/// A 503 in the contract's shape, with `Retry-After` in whole seconds.
fn assert_saturated(reply: &Reply) {
    reply.assert_error(503, "UNAVAILABLE");
    let secs: u64 = reply
        .header("retry-after")
        .unwrap_or_else(|| panic!("503 carries Retry-After; headers: {:?}", reply.headers))
        .parse()
        .expect("Retry-After is a number of seconds");
    assert!(secs > 0);
}

#[tokio::test]
async fn when_the_hash_queue_is_full_register_and_login_answer_503_and_do_not_count() {
    let app = TestApp::spawn_with(|c| {
        roomy(c);
        c.hash_concurrency = 1;
        c.hash_queue_len = 1;
        c.register_limit = limit(1000, 3600);
        c.email_limit = limit(1000, 900);
    })
    .await;
    let user = app.register().await;

    let registrations = at_once(
        &app,
        "/api/auth/register",
        (0..40).map(|i| (None, registration(i))).collect(),
    )
    .await;
    let logins = at_once(
        &app,
        "/api/auth/login",
        (0..40)
            .map(|_| (None, json!({ "email": user.email, "password": WRONG })))
            .collect(),
    )
    .await;

    let (mut created, mut refused) = (0, 0);
    for reply in &registrations {
        match reply.status.as_u16() {
            201 => created += 1,
            503 => {
                assert_saturated(reply);
                refused += 1;
            }
            other => panic!("register answered {other}: {}", reply.body),
        }
    }
    let (mut failed, mut refused_logins) = (0, 0);
    for reply in &logins {
        match reply.status.as_u16() {
            401 => failed += 1,
            503 => {
                assert_saturated(reply);
                refused_logins += 1;
            }
            other => panic!("login answered {other}: {}", reply.body),
        }
    }
    assert!(
        refused > 0 && created > 0,
        "{created} created, {refused} refused"
    );
    assert!(
        refused_logins > 0 && failed > 0,
        "{failed} failed, {refused_logins} refused"
    );
    // Only what was evaluated counts against the limits.
    let db = app.db.client().await;
    let count = |sql: &'static str| {
        let db = &db;
        async move { db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(
        count("SELECT count(*) FROM register_attempts").await,
        created + 1
    );
    assert_eq!(count("SELECT count(*) FROM login_failures").await, failed);
    // And once the storm has passed, hashing serves again.
    let ok = app.login(&user.email, &user.password).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

// ---- trusted proxies as ranges, IPv6 per /64 -------------------------------------

#[tokio::test]
async fn a_trusted_cidr_range_is_believed_and_ipv6_clients_count_per_64() {
    let app = TestApp::spawn_with(|c| {
        c.client_limit = limit(2, 60);
        c.trusted_proxies = vec![
            "10.0.0.0/8".parse().unwrap(),
            "127.0.0.0/8".parse().unwrap(),
        ];
    })
    .await;
    let user = app.register().await;

    login_via(&app, "2001:db8:1:2::1", "s1@example.com", WRONG)
        .await
        .assert_error(401, "UNAUTHORIZED");
    login_via(&app, "2001:db8:1:2:ffff::9", "s2@example.com", WRONG)
        .await
        .assert_error(401, "UNAUTHORIZED");
    let same_64 = login_via(&app, "2001:db8:1:2:abcd::1", &user.email, &user.password).await;
    let same_64_via_two_proxies = login_via(
        &app,
        "2001:db8:1:2::77, 10.1.2.3",
        &user.email,
        &user.password,
    )
    .await;
    let next_64 = login_via(&app, "2001:db8:1:3::1", &user.email, &user.password).await;

    assert_rate_limited(&same_64, 60);
    assert_rate_limited(&same_64_via_two_proxies, 60);
    assert_eq!(next_64.status, StatusCode::OK, "{}", next_64.body);
}

#[tokio::test]
async fn a_peer_outside_every_trusted_range_is_the_client_itself() {
    let app = TestApp::spawn_with(|c| {
        c.client_limit = limit(2, 60);
        c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
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

    assert_rate_limited(&spoofed, 60);
}
