//! `/metrics` stays bounded whatever clients send: every label has a fixed,
//! small set of values (methods outside the standard ones are `OTHER`,
//! routes are templates, statuses the node's own).

mod common;

use std::collections::BTreeSet;

use common::TestApp;
use reqwest::Method;
use uuid::Uuid;

/// Every `http_*` series (name and labels) in a `/metrics` page.
fn http_series(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|l| l.starts_with("http_") && l.contains('{'))
        .filter_map(|l| l.split_once('}').map(|(labels, _)| labels.to_owned()))
        .collect()
}

/// The values of `label` over those series.
fn values_of(series: &BTreeSet<String>, label: &str) -> BTreeSet<String> {
    let key = format!("{label}=\"");
    series
        .iter()
        .filter_map(|s| {
            let start = s.find(&key)? + key.len();
            Some(s[start..].split('"').next()?.to_owned())
        })
        .collect()
}

async fn metrics(app: &TestApp) -> String {
    app.http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn random_methods_paths_and_ids_add_no_series() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    // Every label value a client can reach without exotic input, first.
    for path in ["/api/tasks", "/api/nope", "/api/tasks/x", "/healthz"] {
        for method in [Method::GET, Method::from_bytes(b"WARMUP").unwrap()] {
            app.call(method, path, Some(&user.token), None).await;
        }
    }
    // A scrape is counted after it is rendered: the first one shows up in
    // the second.
    metrics(&app).await;
    let before = http_series(&metrics(&app).await);

    let mut sent = Vec::new();
    for i in 0..50 {
        let method = format!("X{}{i}", Uuid::new_v4().simple()).to_uppercase();
        sent.push(method.clone());
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let path = match i % 3 {
            0 => "/api/tasks".to_owned(),
            1 => format!("/api/tasks/{}", Uuid::new_v4()),
            _ => format!("/random/{}", Uuid::new_v4()),
        };
        let reply = app.call(method, &path, Some(&user.token), None).await;
        assert!(
            [404, 405].contains(&reply.status.as_u16()),
            "{path}: {}",
            reply.status
        );
    }

    let page = metrics(&app).await;
    for method in &sent {
        assert!(!page.contains(method.as_str()), "{method} is in /metrics");
    }
    let after = http_series(&page);
    let new: Vec<_> = after.difference(&before).collect();
    assert!(new.is_empty(), "new series: {new:?}");
    let methods = values_of(&after, "method");
    let allowed: BTreeSet<String> = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert!(methods.is_subset(&allowed), "method labels: {methods:?}");
    for route in values_of(&after, "route") {
        assert!(
            route == "unmatched" || (route.starts_with('/') && !route.contains('-')),
            "route label {route:?} is not a template"
        );
    }
}
