//! Strings an attacker chooses: control characters in every string field,
//! over-long login emails and tampered cursors are each a 400
//! `VALIDATION_ERROR` naming the field, never a 500 (PostgreSQL refuses NUL
//! in text, and a timestamp out of its range).

use test_support::api as common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{Reply, TestApp, TestUser};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// NUL, other C0 controls, DEL and a C1 control (NEL).
const CONTROLS: [char; 7] = ['\0', '\u{1}', '\r', '\u{1b}', '\u{1f}', '\u{7f}', '\u{85}'];

/// Asserts a 400 `VALIDATION_ERROR` whose details name exactly `field`.
fn assert_refused(reply: &Reply, field: &str, what: &str) {
    assert_eq!(reply.invalid_fields(), [field], "{what}: {}", reply.body);
}

fn fresh_email() -> String {
    format!("user-{}@example.com", Uuid::new_v4().simple())
}

/// Where a string field is sent: the request and a valid body to put the
/// hostile value into.
struct Target {
    method: Method,
    path: String,
    token: Option<String>,
    body: Value,
    field: &'static str,
}

fn targets(user: &TestUser, task_id: &str) -> Vec<Target> {
    let register = json!({ "email": fresh_email(), "password": "long enough", "name": "N" });
    let login = json!({ "email": user.email, "password": "long enough" });
    let task = format!("/api/tasks/{task_id}");
    let t = |method: Method, path: &str, token: bool, body: &Value, field| Target {
        method,
        path: path.to_owned(),
        token: token.then(|| user.token.clone()),
        body: body.clone(),
        field,
    };
    vec![
        t(
            Method::POST,
            "/api/auth/register",
            false,
            &register,
            "email",
        ),
        t(
            Method::POST,
            "/api/auth/register",
            false,
            &register,
            "password",
        ),
        t(Method::POST, "/api/auth/register", false, &register, "name"),
        t(Method::POST, "/api/auth/login", false, &login, "email"),
        t(Method::POST, "/api/auth/login", false, &login, "password"),
        t(
            Method::PUT,
            "/api/profile",
            true,
            &json!({ "name": "N" }),
            "name",
        ),
        t(
            Method::PUT,
            "/api/profile",
            true,
            &json!({ "name": "N" }),
            "email",
        ),
        t(
            Method::POST,
            "/api/tasks",
            true,
            &json!({ "title": "T" }),
            "title",
        ),
        t(
            Method::POST,
            "/api/tasks",
            true,
            &json!({ "title": "T" }),
            "description",
        ),
        t(Method::PUT, &task, true, &json!({ "priority": 1 }), "title"),
        t(
            Method::PUT,
            &task,
            true,
            &json!({ "priority": 1 }),
            "description",
        ),
    ]
}

/// A value that is valid for `field` but for the control character in it.
fn valid_with(field: &str, c: char) -> String {
    match field {
        "email" => format!("ann{c}x-{}@example.com", Uuid::new_v4().simple()),
        _ => format!("valid {c} text"),
    }
}

#[tokio::test]
async fn a_control_character_in_any_string_field_is_a_validation_error_naming_it() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let task = app.create_task(&user, json!({ "title": "t" })).await;
    let task_id = task["id"].as_str().unwrap();

    for target in targets(&user, task_id) {
        for c in CONTROLS {
            let mut body = target.body.clone();
            body[target.field] = json!(valid_with(target.field, c));
            let reply = app
                .call(
                    target.method.clone(),
                    &target.path,
                    target.token.as_deref(),
                    Some(body),
                )
                .await;
            let what = format!(
                "{} {} {} with U+{:04X}",
                target.method, target.path, target.field, c as u32
            );
            assert_refused(&reply, target.field, &what);
        }
    }
    // Nothing was written: the task and the user are as they were.
    let read = app.get(&format!("/api/tasks/{task_id}"), &user.token).await;
    assert_eq!(read.body, task);
    let profile = app.get("/api/profile", &user.token).await;
    assert_eq!(profile.body["name"], "Test User");
}

#[tokio::test]
async fn tab_and_newline_are_kept_in_a_description_and_nowhere_else() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let description = "line one\n\tindented line two\n";

    let task = app
        .create_task(&user, json!({ "title": "t", "description": description }))
        .await;

    assert_eq!(task["description"], description);
    let read = app
        .get(
            &format!("/api/tasks/{}", task["id"].as_str().unwrap()),
            &user.token,
        )
        .await;
    assert_eq!(read.body["description"], description);
    for c in ['\t', '\n'] {
        let reply = app
            .post(
                "/api/tasks",
                Some(&user.token),
                json!({ "title": format!("a{c}b") }),
            )
            .await;
        assert_refused(&reply, "title", "tab or newline in a title");
    }
}

#[tokio::test]
async fn a_login_email_over_254_characters_is_a_validation_error() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let domain = "@example.com";
    let at_cap = format!("{}{domain}", "a".repeat(254 - domain.len()));
    let over = format!("{}{domain}", "a".repeat(255 - domain.len()));
    let huge = format!("{}{domain}", "a".repeat(60_000));

    for email in [&over, &huge] {
        let reply = app.login(email, &user.password).await;
        assert_refused(&reply, "email", "an over-long login email");
    }
    // At the cap it is simply an unknown email; surrounding blanks are
    // trimmed before counting, as for a registration.
    app.login(&at_cap, &user.password)
        .await
        .assert_error(401, "UNAUTHORIZED");
    let padded = format!("   {}   ", user.email);
    assert_eq!(
        app.login(&padded, &user.password).await.status.as_u16(),
        200
    );
}

/// `GET /api/tasks` with these query pairs.
async fn list(app: &TestApp, user: &TestUser, pairs: &[(&str, &str)]) -> Reply {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        query.append_pair(name, value);
    }
    app.get(&format!("/api/tasks?{}", query.finish()), &user.token)
        .await
}

#[tokio::test]
async fn a_tampered_or_forged_cursor_is_a_validation_error_never_a_500() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    for i in 0..3 {
        app.create_task(&user, json!({ "title": format!("t{i}") }))
            .await;
    }
    let first = list(&app, &user, &[("limit", "1")]).await;
    let cursor = first.body["nextCursor"].as_str().unwrap().to_owned();
    assert_eq!(
        list(&app, &user, &[("limit", "1"), ("cursor", &cursor)])
            .await
            .status
            .as_u16(),
        200
    );

    // Every byte of the real cursor, changed.
    let bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
    for i in 0..bytes.len() {
        let mut tampered = bytes.clone();
        tampered[i] ^= 0x01;
        let tampered = URL_SAFE_NO_PAD.encode(&tampered);
        let reply = list(&app, &user, &[("limit", "1"), ("cursor", &tampered)]).await;
        assert_refused(&reply, "cursor", &format!("byte {i} changed"));
    }
    // Cursors of the unsigned format with values PostgreSQL would refuse
    // (the 500 this used to give), and an enormous one.
    let id = Uuid::new_v4();
    for (r, t) in [
        (0, i64::MAX),
        (0, i64::MIN),
        (0, -9_000_000_000_000_000),
        (32767, 0),
    ] {
        let forged = URL_SAFE_NO_PAD.encode(
            json!({ "o": "-createdAt", "s": null, "p": null, "r": r, "t": t, "i": id }).to_string(),
        );
        let reply = list(&app, &user, &[("cursor", &forged)]).await;
        assert_refused(&reply, "cursor", &format!("forged r={r} t={t}"));
    }
    let enormous = "A".repeat(40_000);
    let reply = list(&app, &user, &[("cursor", &enormous)]).await;
    assert_refused(&reply, "cursor", "an enormous cursor");
}
