//! Tasks: create, read, update, delete, validation, `If-Match`, and one
//! user never seeing another's tasks — as API.md describes them.

use test_support::api as common;

use std::collections::BTreeSet;

use common::{Reply, TestApp, TestUser};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn task_path(id: &str) -> String {
    format!("/api/tasks/{id}")
}

fn id_of(task: &Value) -> String {
    task["id"].as_str().expect("a task has an id").to_owned()
}

/// A request with an `If-Match` header.
async fn with_if_match(
    app: &TestApp,
    method: Method,
    path: &str,
    user: &TestUser,
    if_match: &str,
    body: Option<Value>,
) -> Reply {
    let mut req = app
        .http
        .request(method, app.url(path))
        .bearer_auth(&user.token)
        .header("If-Match", if_match);
    if let Some(body) = body {
        req = req.json(&body);
    }
    TestApp::read(req).await
}

/// `2026-11-26T21:30:00.123Z`: RFC 3339, UTC, milliseconds.
fn assert_timestamp(value: &Value) {
    let s = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is a string"));
    assert!(
        s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.',
        "{s} is RFC 3339 UTC with milliseconds"
    );
    chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"));
}

/// Exactly the contract's task fields.
fn assert_task_shape(task: &Value) {
    let keys: BTreeSet<&str> = task
        .as_object()
        .unwrap_or_else(|| panic!("{task} is an object"))
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = [
        "id",
        "userId",
        "title",
        "description",
        "status",
        "priority",
        "version",
        "createdAt",
        "updatedAt",
    ]
    .into();
    assert_eq!(keys, expected, "{task}");
    let id = task["id"].as_str().unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(id).unwrap().to_string(),
        id,
        "lower-case, hyphenated"
    );
    assert_timestamp(&task["createdAt"]);
    assert_timestamp(&task["updatedAt"]);
}

async fn list_ids(app: &TestApp, user: &TestUser) -> Vec<String> {
    let reply = app.get("/api/tasks", &user.token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect()
}

/// Posts a body expected to be refused; returns the fields named.
async fn refused_fields(app: &TestApp, user: &TestUser, body: Value) -> Vec<String> {
    let reply = app
        .post("/api/tasks", Some(&user.token), body.clone())
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "{body} → {}",
        reply.body
    );
    reply.invalid_fields()
}

// ---------------------------------------------------------------- create

#[tokio::test]
async fn create_answers_201_with_location_etag_and_defaults() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let reply = app
        .post(
            "/api/tasks",
            Some(&user.token),
            json!({ "title": "Buy milk" }),
        )
        .await;

    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let task = &reply.body;
    assert_task_shape(task);
    let id = id_of(task);
    assert_eq!(reply.header("location"), Some(task_path(&id).as_str()));
    assert_eq!(reply.header("etag"), Some("\"1\""));
    assert_eq!(task["userId"], user.id.as_str());
    assert_eq!(task["title"], "Buy milk");
    assert_eq!(task["description"], Value::Null);
    assert_eq!(task["status"], "TODO");
    assert_eq!(task["priority"], 0);
    assert_eq!(task["version"], 1);

    let read = app.get(&task_path(&id), &user.token).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, *task);
    assert_eq!(read.header("etag"), Some("\"1\""));
}

#[tokio::test]
async fn create_accepts_every_field() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let task = app
        .create_task(
            &user,
            json!({ "title": "Write report", "description": "Quarterly, with charts",
                    "status": "IN_PROGRESS", "priority": 10 }),
        )
        .await;

    assert_task_shape(&task);
    assert_eq!(task["title"], "Write report");
    assert_eq!(task["description"], "Quarterly, with charts");
    assert_eq!(task["status"], "IN_PROGRESS");
    assert_eq!(task["priority"], 10);
    assert_eq!(task["version"], 1);
    let read = app.get(&task_path(&id_of(&task)), &user.token).await;
    assert_eq!(read.body, task);
}

#[tokio::test]
async fn create_stores_the_title_trimmed_and_the_description_as_given() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let task = app
        .create_task(
            &user,
            json!({ "title": " \t Call mum \n ", "description": "  spaces kept  " }),
        )
        .await;

    assert_eq!(task["title"], "Call mum");
    assert_eq!(task["description"], "  spaces kept  ");
}

#[tokio::test]
async fn title_is_required_and_must_be_a_string() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    assert_eq!(refused_fields(&app, &user, json!({})).await, ["title"]);
    assert_eq!(
        refused_fields(&app, &user, json!({ "priority": 1 })).await,
        ["title"]
    );
    assert_eq!(
        refused_fields(&app, &user, json!({ "title": 42 })).await,
        ["title"]
    );
    assert_eq!(
        refused_fields(&app, &user, json!({ "title": null })).await,
        ["title"]
    );
}

#[tokio::test]
async fn title_must_be_1_to_200_code_points_after_trimming() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    assert_eq!(
        refused_fields(&app, &user, json!({ "title": "" })).await,
        ["title"]
    );
    assert_eq!(
        refused_fields(&app, &user, json!({ "title": "   \t " })).await,
        ["title"]
    );
    // Multi-byte characters: the limit counts code points, not bytes.
    let t201 = "é".repeat(201);
    assert_eq!(
        refused_fields(&app, &user, json!({ "title": t201 })).await,
        ["title"]
    );
    assert_eq!(
        refused_fields(&app, &user, json!({ "title": "x".repeat(201) })).await,
        ["title"]
    );

    let t200 = "😀".repeat(200);
    let task = app.create_task(&user, json!({ "title": t200 })).await;
    assert_eq!(task["title"], t200);
    let one = app.create_task(&user, json!({ "title": "x" })).await;
    assert_eq!(one["title"], "x");
    // 200 characters plus surrounding spaces: fine once trimmed.
    let padded = format!("  {}  ", "y".repeat(200));
    let task = app.create_task(&user, json!({ "title": padded })).await;
    assert_eq!(task["title"], "y".repeat(200));
}

#[tokio::test]
async fn description_is_up_to_10000_code_points_or_null() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let d10000 = "é".repeat(10_000);
    let task = app
        .create_task(&user, json!({ "title": "t", "description": d10000 }))
        .await;
    assert_eq!(task["description"], d10000);

    let task = app
        .create_task(&user, json!({ "title": "t", "description": null }))
        .await;
    assert_eq!(task["description"], Value::Null);

    let task = app
        .create_task(&user, json!({ "title": "t", "description": "" }))
        .await;
    assert_eq!(task["description"], "");

    assert_eq!(
        refused_fields(
            &app,
            &user,
            json!({ "title": "t", "description": "é".repeat(10_001) })
        )
        .await,
        ["description"]
    );
    assert_eq!(
        refused_fields(&app, &user, json!({ "title": "t", "description": 5 })).await,
        ["description"]
    );
}

#[tokio::test]
async fn status_must_be_todo_in_progress_or_done() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    for status in ["TODO", "IN_PROGRESS", "DONE"] {
        let task = app
            .create_task(&user, json!({ "title": "t", "status": status }))
            .await;
        assert_eq!(task["status"], status);
    }
    for bad in [
        json!("todo"),
        json!("FINISHED"),
        json!(""),
        json!(1),
        json!(null),
    ] {
        assert_eq!(
            refused_fields(&app, &user, json!({ "title": "t", "status": bad })).await,
            ["status"],
            "status {bad}"
        );
    }
}

#[tokio::test]
async fn priority_must_be_an_integer_from_0_to_10() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    for priority in [0, 10] {
        let task = app
            .create_task(&user, json!({ "title": "t", "priority": priority }))
            .await;
        assert_eq!(task["priority"], priority);
    }
    for bad in [json!(-1), json!(11), json!(1.5), json!("3"), json!(true)] {
        assert_eq!(
            refused_fields(&app, &user, json!({ "title": "t", "priority": bad })).await,
            ["priority"],
            "priority {bad}"
        );
    }
}

#[tokio::test]
async fn unknown_fields_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let other = app.register().await;

    let fields = refused_fields(&app, &user, json!({ "title": "t", "userId": other.id })).await;

    assert_eq!(fields, ["userId"]);
    assert!(list_ids(&app, &user).await.is_empty());
    assert!(list_ids(&app, &other).await.is_empty());
}

#[tokio::test]
async fn a_validation_error_lists_every_invalid_field_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let reply = app
        .post(
            "/api/tasks",
            Some(&user.token),
            json!({ "title": "  ", "description": "d".repeat(10_001), "status": "NOPE",
                    "priority": 11, "userId": user.id }),
        )
        .await;

    let fields: BTreeSet<String> = reply.invalid_fields().into_iter().collect();
    let expected: BTreeSet<String> = ["title", "description", "status", "priority", "userId"]
        .map(String::from)
        .into();
    assert_eq!(fields, expected);
    assert_eq!(reply.body["statusCode"], 400);
    assert_eq!(reply.body["error"], "Bad Request");
    for detail in reply.body["details"].as_array().unwrap() {
        assert!(detail["message"].is_string(), "{detail}");
    }
    assert!(list_ids(&app, &user).await.is_empty());
}

// ---------------------------------------------------------------- update

#[tokio::test]
async fn update_changes_only_the_fields_given_and_bumps_the_version() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let task = app
        .create_task(
            &user,
            json!({ "title": "Plan trip", "description": "Lisbon", "priority": 4 }),
        )
        .await;
    let id = id_of(&task);

    let reply = app
        .put(&task_path(&id), &user.token, json!({ "status": "DONE" }))
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("etag"), Some("\"2\""));
    let updated = &reply.body;
    assert_task_shape(updated);
    assert_eq!(updated["status"], "DONE");
    assert_eq!(updated["version"], 2);
    for unchanged in [
        "id",
        "userId",
        "title",
        "description",
        "priority",
        "createdAt",
    ] {
        assert_eq!(updated[unchanged], task[unchanged], "{unchanged}");
    }
    assert!(updated["updatedAt"].as_str() >= task["updatedAt"].as_str());

    let again = app
        .put(
            &task_path(&id),
            &user.token,
            json!({ "title": "  Plan Lisbon trip ", "priority": 7 }),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.header("etag"), Some("\"3\""));
    assert_eq!(again.body["title"], "Plan Lisbon trip");
    assert_eq!(again.body["priority"], 7);
    assert_eq!(again.body["status"], "DONE");
    assert_eq!(again.body["description"], "Lisbon");
    assert_eq!(again.body["version"], 3);

    let read = app.get(&task_path(&id), &user.token).await;
    assert_eq!(read.body, again.body);
    assert_eq!(read.header("etag"), Some("\"3\""));
}

#[tokio::test]
async fn update_with_null_description_clears_it() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let task = app
        .create_task(
            &user,
            json!({ "title": "t", "description": "to be cleared" }),
        )
        .await;
    let id = id_of(&task);

    let reply = app
        .put(&task_path(&id), &user.token, json!({ "description": null }))
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["description"], Value::Null);
    assert_eq!(reply.body["title"], "t");
    let read = app.get(&task_path(&id), &user.token).await;
    assert_eq!(read.body["description"], Value::Null);
}

#[tokio::test]
async fn update_with_an_empty_object_is_a_validation_error_about_the_body() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let task = app.create_task(&user, json!({ "title": "t" })).await;
    let id = id_of(&task);

    let reply = app.put(&task_path(&id), &user.token, json!({})).await;

    assert_eq!(reply.invalid_fields(), ["body"]);
    let read = app.get(&task_path(&id), &user.token).await;
    assert_eq!(read.body, task);
}

#[tokio::test]
async fn update_validates_every_field_and_changes_nothing_when_refused() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let task = app.create_task(&user, json!({ "title": "t" })).await;
    let id = id_of(&task);

    let reply = app
        .put(
            &task_path(&id),
            &user.token,
            json!({ "title": " ", "description": "x".repeat(10_001), "status": "done",
                    "priority": 1.5, "version": 9 }),
        )
        .await;

    let fields: BTreeSet<String> = reply.invalid_fields().into_iter().collect();
    let expected: BTreeSet<String> = ["title", "description", "status", "priority", "version"]
        .map(String::from)
        .into();
    assert_eq!(fields, expected);
    let read = app.get(&task_path(&id), &user.token).await;
    assert_eq!(read.body, task);

    // A valid field next to an unknown one: still refused, still unchanged.
    let reply = app
        .put(
            &task_path(&id),
            &user.token,
            json!({ "title": "new", "userId": user.id }),
        )
        .await;
    assert_eq!(reply.invalid_fields(), ["userId"]);
    let read = app.get(&task_path(&id), &user.token).await;
    assert_eq!(read.body, task);
}

// ---------------------------------------------------------------- If-Match

/// `If-Match` on PUT and DELETE: the change applies when it names the
/// task's current version or is `*`; otherwise 412 and the task stays as it
/// was (no lost update, no lost task). Each case on its own task, at
/// version 2.
#[tokio::test]
async fn if_match_applies_only_to_the_current_version_or_star() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let cases = [
        (Method::PUT, "\"2\"", 200),
        (Method::PUT, "\"1\"", 412),
        (Method::PUT, "\"3\"", 412),
        (Method::PUT, "*", 200),
        (Method::DELETE, "\"1\"", 412),
        (Method::DELETE, "\"2\"", 204),
        (Method::DELETE, "*", 204),
    ];

    for (method, if_match, status) in cases {
        let what = format!("{method} If-Match: {if_match}");
        let task = app.create_task(&user, json!({ "title": "t" })).await;
        let path = task_path(&id_of(&task));
        let current = app
            .put(&path, &user.token, json!({ "status": "IN_PROGRESS" }))
            .await
            .body;
        let body = (method == Method::PUT).then(|| json!({ "title": "new", "priority": 5 }));

        let reply = with_if_match(&app, method, &path, &user, if_match, body).await;

        let read = app.get(&path, &user.token).await;
        match status {
            200 => {
                assert_eq!(reply.status, StatusCode::OK, "{what}: {}", reply.body);
                assert_eq!(
                    (&reply.body["version"], &reply.body["priority"]),
                    (&json!(3), &json!(5)),
                    "{what}"
                );
                assert_eq!(reply.header("etag"), Some("\"3\""), "{what}");
                assert_eq!(read.body, reply.body, "{what}");
            }
            204 => {
                assert_eq!(
                    reply.status,
                    StatusCode::NO_CONTENT,
                    "{what}: {}",
                    reply.body
                );
                read.assert_error(404, "NOT_FOUND");
            }
            _ => {
                reply.assert_error(412, "VERSION_MISMATCH");
                assert_eq!(read.body, current, "{what}");
                assert_eq!(read.header("etag"), Some("\"2\""), "{what}");
            }
        }
    }
    assert_eq!(
        list_ids(&app, &user).await.len(),
        5,
        "the two deleted tasks are gone, the other five kept"
    );
}

// ---------------------------------------------------------------- delete

#[tokio::test]
async fn delete_answers_204_and_then_the_task_is_not_found() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let task = app.create_task(&user, json!({ "title": "t" })).await;
    let keep = app.create_task(&user, json!({ "title": "keep" })).await;
    let id = id_of(&task);

    let reply = app.delete(&task_path(&id), &user.token).await;

    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.body, Value::Null, "204 has no body");
    app.get(&task_path(&id), &user.token)
        .await
        .assert_error(404, "NOT_FOUND");
    app.delete(&task_path(&id), &user.token)
        .await
        .assert_error(404, "NOT_FOUND");
    app.put(&task_path(&id), &user.token, json!({ "title": "back?" }))
        .await
        .assert_error(404, "NOT_FOUND");
    assert_eq!(list_ids(&app, &user).await, [id_of(&keep)]);
}

#[tokio::test]
async fn a_task_that_never_existed_is_not_found() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let path = task_path(&uuid::Uuid::new_v4().to_string());

    every_method_answers(&app, &path, &user, 404, "NOT_FOUND").await;
}

/// GET, PUT (a valid change) and DELETE of `path` by `user` each answer
/// this error.
async fn every_method_answers(app: &TestApp, path: &str, user: &TestUser, status: u16, code: &str) {
    app.get(path, &user.token).await.assert_error(status, code);
    app.put(path, &user.token, json!({ "title": "changed" }))
        .await
        .assert_error(status, code);
    app.delete(path, &user.token)
        .await
        .assert_error(status, code);
}

// ---------------------------------------------------------------- ids in paths

#[tokio::test]
async fn a_malformed_uuid_in_the_path_is_a_validation_error() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let valid = uuid::Uuid::new_v4().to_string();

    for raw in [
        "not-a-uuid".to_owned(),
        "12345".to_owned(),
        format!("{valid}0"),
        valid[..35].to_owned(),
        valid.replace('-', "_"),
    ] {
        every_method_answers(&app, &task_path(&raw), &user, 400, "VALIDATION_ERROR").await;
    }
}

#[tokio::test]
async fn an_upper_case_uuid_in_the_path_names_the_same_task() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let task = app.create_task(&user, json!({ "title": "t" })).await;
    let id = id_of(&task);
    let upper = task_path(&id.to_uppercase());

    let read = app.get(&upper, &user.token).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body, task);
    assert_eq!(read.body["id"], id.as_str(), "ids are answered lower-case");

    let updated = app.put(&upper, &user.token, json!({ "priority": 3 })).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["id"], id.as_str());
    assert_eq!(updated.body["version"], 2);

    let deleted = app.delete(&upper, &user.token).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    app.get(&task_path(&id), &user.token)
        .await
        .assert_error(404, "NOT_FOUND");
}

// ---------------------------------------------------------------- isolation

#[tokio::test]
async fn another_users_task_is_not_found_and_stays_unchanged() {
    let app = TestApp::spawn().await;
    let owner = app.register().await;
    let intruder = app.register().await;
    let task = app
        .create_task(&owner, json!({ "title": "private", "priority": 2 }))
        .await;
    let path = task_path(&id_of(&task));
    let own = app.create_task(&intruder, json!({ "title": "mine" })).await;

    every_method_answers(&app, &path, &intruder, 404, "NOT_FOUND").await;
    // A wrong version must not reveal that the task exists either.
    with_if_match(
        &app,
        Method::PUT,
        &path,
        &intruder,
        "\"7\"",
        Some(json!({ "title": "hijacked" })),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    with_if_match(&app, Method::DELETE, &path, &intruder, "\"7\"", None)
        .await
        .assert_error(404, "NOT_FOUND");

    let read = app.get(&path, &owner.token).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, task, "the owner's task is unchanged");
    assert_eq!(list_ids(&app, &intruder).await, [id_of(&own)]);
    assert_eq!(list_ids(&app, &owner).await, [id_of(&task)]);
}

#[tokio::test]
async fn lists_show_only_the_callers_tasks() {
    let app = TestApp::spawn().await;
    let alice = app.register().await;
    let bob = app.register().await;
    let mut alices = BTreeSet::new();
    for i in 0..3 {
        let task = app
            .create_task(
                &alice,
                json!({ "title": format!("a{i}"), "status": "DONE" }),
            )
            .await;
        alices.insert(id_of(&task));
    }
    let bobs = app
        .create_task(&bob, json!({ "title": "b", "status": "DONE" }))
        .await;

    for query in ["", "?status=DONE", "?sort=priority", "?priority=0"] {
        let reply = app.get(&format!("/api/tasks{query}"), &bob.token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let tasks = reply.body["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 1, "{query}: {}", reply.body);
        assert_eq!(tasks[0]["id"], bobs["id"]);
    }
    let listed: BTreeSet<String> = list_ids(&app, &alice).await.into_iter().collect();
    assert_eq!(listed, alices);
}

#[tokio::test]
async fn task_routes_need_a_token() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let task = app.create_task(&user, json!({ "title": "t" })).await;
    let path = task_path(&id_of(&task));

    app.call(Method::GET, "/api/tasks", None, None)
        .await
        .assert_error(401, "UNAUTHORIZED");
    app.call(
        Method::POST,
        "/api/tasks",
        None,
        Some(json!({ "title": "x" })),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    app.call(Method::GET, &path, None, None)
        .await
        .assert_error(401, "UNAUTHORIZED");
    app.call(Method::PUT, &path, None, Some(json!({ "title": "x" })))
        .await
        .assert_error(401, "UNAUTHORIZED");
    app.call(Method::DELETE, &path, None, None)
        .await
        .assert_error(401, "UNAUTHORIZED");
    assert_eq!(app.get(&path, &user.token).await.body, task);
}
