//! `/metrics` stays bounded whatever clients send: every label has a fixed,
//! small set of values (methods outside the standard ones are `OTHER`,
//! routes are templates, statuses the node's own; every other label one of
//! a listed few).

use test_support::api as common;

use std::collections::{BTreeMap, BTreeSet};

use common::scrape::Scrape;
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

/// One test: the metrics recorder is process-wide, so traffic of another
/// test beside it would show up here as new series.
#[tokio::test]
async fn random_methods_paths_and_ids_add_no_series() {
    let app = TestApp::spawn_with(|c| c.email_limit.max_failures = 1).await;
    let user = app.register().await;
    // Every label value a client can reach without exotic input, first.
    for path in ["/api/tasks", "/api/nope", "/api/tasks/x", "/healthz"] {
        for method in [Method::GET, Method::from_bytes(b"WARMUP").unwrap()] {
            app.call(method, path, Some(&user.token), None).await;
        }
    }
    // And every labelled series outside `http_*`: a cache miss then hit, a
    // 429, readiness.
    let task = app
        .create_task(&user, serde_json::json!({ "title": "t" }))
        .await;
    let task_path = format!("/api/tasks/{}", task["id"].as_str().unwrap());
    for _ in 0..2 {
        app.get(&task_path, &user.token).await;
    }
    app.login(&user.email, "wrong password").await;
    app.login(&user.email, "wrong password")
        .await
        .assert_error(429, "RATE_LIMITED");
    app.call(Method::GET, "/readyz", None, None).await;
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
    other_labels_have_fixed_values(&Scrape::parse(&page));
}

/// Outside the `http_*` series, each label a node exports takes values
/// from a fixed list: a label not listed here (a new one, or a value such
/// as an id or an email) fails the test, and so does a listed value that
/// is not registered from the start (a series at 0).
fn other_labels_have_fixed_values(scrape: &Scrape) {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = [
        ("result", BTreeSet::from(["hit", "miss"])),
        ("state", BTreeSet::from(["idle", "in_use"])),
        ("limit", BTreeSet::from(api_node::metrics::RATE_LIMITS)),
        ("dependency", BTreeSet::from(shared::metrics::DEPENDENCIES)),
    ]
    .into();
    let mut seen: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for sample in &scrape.samples {
        for (key, value) in &sample.labels {
            match key.as_str() {
                "route" | "method" | "status" if sample.name.starts_with("http_") => {}
                "le" => assert!(
                    value == "+Inf" || value.parse::<f64>().is_ok(),
                    "{}: le={value}",
                    sample.name
                ),
                key => {
                    let values = allowed.get(key).unwrap_or_else(|| {
                        panic!(
                            "{}: label {key} is not one with a known set of values",
                            sample.name
                        )
                    });
                    assert!(
                        values.contains(value.as_str()),
                        "{}: {key}={value:?} is not one of {values:?}",
                        sample.name
                    );
                    seen.entry(key).or_default().insert(value.as_str());
                }
            }
        }
    }
    assert_eq!(seen, allowed, "label values exported");
}
