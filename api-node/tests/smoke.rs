//! The basic flows end to end, through a real node.

use test_support::api as common;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn register_login_create_read_update_delete() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let login = app.login(&user.email, &user.password).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.body["user"]["email"], user.email);

    let task = app
        .create_task(&user, json!({ "title": "  Write tests  ", "priority": 3 }))
        .await;
    assert_eq!(task["title"], "Write tests");
    assert_eq!(task["status"], "TODO");
    assert_eq!(task["version"], 1);
    assert_eq!(task["description"], serde_json::Value::Null);
    let id = task["id"].as_str().unwrap();

    let first = app.get(&format!("/api/tasks/{id}"), &user.token).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("etag"), Some("\"1\""));
    assert_eq!(first.body, task);

    let updated = app
        .put(
            &format!("/api/tasks/{id}"),
            &user.token,
            json!({ "status": "DONE" }),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["version"], 2);
    assert_eq!(updated.body["title"], "Write tests");

    let again = app.get(&format!("/api/tasks/{id}"), &user.token).await;
    assert_eq!(again.body["status"], "DONE");
    assert_eq!(again.header("etag"), Some("\"2\""));

    let list = app.get("/api/tasks", &user.token).await;
    assert_eq!(list.body["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["nextCursor"], serde_json::Value::Null);

    assert_eq!(
        app.delete(&format!("/api/tasks/{id}"), &user.token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    app.get(&format!("/api/tasks/{id}"), &user.token)
        .await
        .assert_error(404, "NOT_FOUND");
    app.stop().await;
}
