//! `GET /api/tasks`: sorts, filters, keyset pagination and the query rules.

use test_support::api as common;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use common::{eventually, Reply, TestApp, TestUser};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

fn query_path(pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        query.append_pair(name, value);
    }
    format!("/api/tasks?{}", query.finish())
}

fn ids(reply: &Reply) -> Vec<String> {
    reply.body["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("a page has tasks: {}", reply.body))
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

/// One page; asserts 200 and the page shape.
async fn page(app: &TestApp, user: &TestUser, pairs: &[(&str, &str)]) -> Reply {
    let reply = app.get(&query_path(pairs), &user.token).await;
    assert_eq!(reply.status, StatusCode::OK, "{pairs:?}: {}", reply.body);
    assert!(reply.body["tasks"].is_array(), "{}", reply.body);
    assert!(
        reply.body["nextCursor"].is_null() || reply.body["nextCursor"].is_string(),
        "{}",
        reply.body
    );
    reply
}

/// Walks every page of `filters` with page size `limit`; returns the pages'
/// ids. Every page but the last is full; only the last has a null cursor.
async fn walk(
    app: &TestApp,
    user: &TestUser,
    filters: &[(&str, &str)],
    limit: usize,
) -> Vec<Vec<String>> {
    let limit_text = limit.to_string();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut pairs = filters.to_vec();
        pairs.push(("limit", &limit_text));
        if let Some(cursor) = &cursor {
            pairs.push(("cursor", cursor));
        }
        let reply = page(app, user, &pairs).await;
        let page_ids = ids(&reply);
        assert!(page_ids.len() <= limit, "{pairs:?}: {}", reply.body);
        pages.push(page_ids);
        match reply.body["nextCursor"].as_str() {
            None => return pages,
            Some(next) => {
                assert_eq!(
                    pages.last().unwrap().len(),
                    limit,
                    "a page followed by another is full: {}",
                    reply.body
                );
                cursor = Some(next.to_owned());
            }
        }
        assert!(pages.len() < 1000, "the walk does not end");
    }
}

fn flatten(pages: Vec<Vec<String>>) -> Vec<String> {
    pages.into_iter().flatten().collect()
}

/// A task as arranged: its sort keys.
#[derive(Debug, Clone)]
struct Arranged {
    id: Uuid,
    priority: i64,
    created_at: DateTime<Utc>,
}

/// Creates tasks through the API with these priorities, then sets their
/// creation times directly so that pairs (0,1), (2,3), … share one: ties
/// on `createdAt` (and, where the pair's priorities match, on both) that
/// only the id can break.
async fn arrange_with_ties(app: &TestApp, user: &TestUser, priorities: &[i64]) -> Vec<Arranged> {
    let db = app.db.client().await;
    let base = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
    let mut arranged = Vec::new();
    for (i, priority) in priorities.iter().enumerate() {
        let task = app
            .create_task(
                user,
                json!({ "title": format!("task {i}"), "priority": priority }),
            )
            .await;
        let id: Uuid = task["id"].as_str().unwrap().parse().unwrap();
        let created_at = base + chrono::Duration::milliseconds(1500 * (i as i64 / 2));
        db.execute(
            "UPDATE tasks SET created_at = $2 WHERE id = $1",
            &[&id, &created_at],
        )
        .await
        .unwrap();
        arranged.push(Arranged {
            id,
            priority: *priority,
            created_at,
        });
    }
    arranged
}

const PRIORITIES: [i64; 13] = [2, 2, 5, 5, 0, 7, 2, 2, 5, 0, 7, 7, 2];

fn expected(mut tasks: Vec<Arranged>, sort: &str) -> Vec<String> {
    match sort {
        "createdAt" => tasks.sort_by_key(|t| (t.created_at, t.id)),
        "-createdAt" => tasks.sort_by_key(|t| std::cmp::Reverse((t.created_at, t.id))),
        "priority" => tasks.sort_by_key(|t| (t.priority, t.created_at, t.id)),
        "-priority" => tasks.sort_by_key(|t| std::cmp::Reverse((t.priority, t.created_at, t.id))),
        other => panic!("unknown sort {other}"),
    }
    tasks.iter().map(|t| t.id.to_string()).collect()
}

// ---------------------------------------------------------------- sorts

#[tokio::test]
async fn default_order_is_newest_first_with_ties_broken_by_id() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let tasks = arrange_with_ties(&app, &user, &PRIORITIES).await;

    let pages = walk(&app, &user, &[], 4).await;

    assert_eq!(pages.len(), 4);
    assert_eq!(flatten(pages), expected(tasks.clone(), "-createdAt"));
    let explicit = walk(&app, &user, &[("sort", "-createdAt")], 4).await;
    assert_eq!(flatten(explicit), expected(tasks, "-createdAt"));
}

#[tokio::test]
async fn sort_created_at_is_oldest_first_with_ties_broken_by_id() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let tasks = arrange_with_ties(&app, &user, &PRIORITIES).await;

    let pages = walk(&app, &user, &[("sort", "createdAt")], 4).await;

    assert_eq!(flatten(pages), expected(tasks, "createdAt"));
}

#[tokio::test]
async fn sort_minus_priority_is_highest_first_then_newest_then_id() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let tasks = arrange_with_ties(&app, &user, &PRIORITIES).await;

    let pages = walk(&app, &user, &[("sort", "-priority")], 3).await;

    assert_eq!(flatten(pages), expected(tasks, "-priority"));
}

#[tokio::test]
async fn sort_priority_is_lowest_first_then_oldest_then_id() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let tasks = arrange_with_ties(&app, &user, &PRIORITIES).await;

    let pages = walk(&app, &user, &[("sort", "priority")], 3).await;

    assert_eq!(flatten(pages), expected(tasks, "priority"));
}

#[tokio::test]
async fn every_sort_gives_the_same_order_whatever_the_page_size() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let tasks = arrange_with_ties(&app, &user, &PRIORITIES).await;

    for sort in ["-createdAt", "createdAt", "-priority", "priority"] {
        let want = expected(tasks.clone(), sort);
        for limit in [1, 2, 5, 13, 200] {
            let got = flatten(walk(&app, &user, &[("sort", sort)], limit).await);
            assert_eq!(got, want, "sort {sort}, limit {limit}");
        }
    }
}

// ---------------------------------------------------------------- filters

/// Twelve tasks, created one after the other: status cycles TODO,
/// IN_PROGRESS, DONE; priority cycles 0 to 3. Returns (id, status, priority)
/// newest first.
async fn arrange_mixed(app: &TestApp, user: &TestUser) -> Vec<(String, &'static str, i64)> {
    let statuses = ["TODO", "IN_PROGRESS", "DONE"];
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (status, priority) = (statuses[i % 3], (i % 4) as i64);
        let task = app
            .create_task(
                user,
                json!({ "title": format!("t{i}"), "status": status, "priority": priority }),
            )
            .await;
        tasks.push((task["id"].as_str().unwrap().to_owned(), status, priority));
    }
    tasks.reverse();
    tasks
}

#[tokio::test]
async fn status_filter_lists_only_that_status() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let tasks = arrange_mixed(&app, &user).await;

    for status in ["TODO", "IN_PROGRESS", "DONE"] {
        let want: Vec<String> = tasks
            .iter()
            .filter(|t| t.1 == status)
            .map(|t| t.0.clone())
            .collect();
        let got = flatten(walk(&app, &user, &[("status", status)], 3).await);
        assert_eq!(got, want, "status {status}");
    }
}

#[tokio::test]
async fn priority_filter_lists_only_that_priority() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let tasks = arrange_mixed(&app, &user).await;

    for priority in 0..4 {
        let want: Vec<String> = tasks
            .iter()
            .filter(|t| t.2 == priority)
            .map(|t| t.0.clone())
            .collect();
        let text = priority.to_string();
        let got = flatten(walk(&app, &user, &[("priority", &text)], 2).await);
        assert_eq!(got, want, "priority {priority}");
    }
    let none = page(&app, &user, &[("priority", "9")]).await;
    assert!(ids(&none).is_empty());
    assert_eq!(none.body["nextCursor"], Value::Null);
}

#[tokio::test]
async fn filters_combine_with_each_other_and_with_every_sort() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let tasks = arrange_mixed(&app, &user).await;
    // Extra DONE tasks of priority 1, so the combination has several pages.
    let mut extra = Vec::new();
    for i in 0..3 {
        let task = app
            .create_task(
                &user,
                json!({ "title": format!("x{i}"), "status": "DONE", "priority": 1 }),
            )
            .await;
        extra.push(task["id"].as_str().unwrap().to_owned());
    }
    extra.reverse();
    let mut newest_first = extra.clone();
    newest_first.extend(
        tasks
            .iter()
            .filter(|t| t.1 == "DONE" && t.2 == 1)
            .map(|t| t.0.clone()),
    );

    for sort in ["-createdAt", "-priority"] {
        let got = flatten(
            walk(
                &app,
                &user,
                &[("status", "DONE"), ("priority", "1"), ("sort", sort)],
                2,
            )
            .await,
        );
        assert_eq!(got, newest_first, "sort {sort}");
    }
    let mut oldest_first = newest_first.clone();
    oldest_first.reverse();
    for sort in ["createdAt", "priority"] {
        let got = flatten(
            walk(
                &app,
                &user,
                &[("status", "DONE"), ("priority", "1"), ("sort", sort)],
                2,
            )
            .await,
        );
        assert_eq!(got, oldest_first, "sort {sort}");
    }
    // A status filter with a priority sort: priority order within DONE.
    let got = flatten(walk(&app, &user, &[("status", "DONE"), ("sort", "-priority")], 2).await);
    // Every task newest first (`extra` are the newest), then a stable sort
    // by priority: within a priority, newest first.
    let mut done: Vec<(i64, String)> = extra.iter().map(|id| (1, id.clone())).collect();
    done.extend(
        tasks
            .iter()
            .filter(|t| t.1 == "DONE")
            .map(|t| (t.2, t.0.clone())),
    );
    done.sort_by_key(|(p, _)| std::cmp::Reverse(*p));
    let want: Vec<String> = done.into_iter().map(|(_, id)| id).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn invalid_filter_and_sort_values_are_validation_errors() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    for (name, value) in [
        ("status", "todo"),
        ("status", "FINISHED"),
        ("status", ""),
        ("priority", "11"),
        ("priority", "-1"),
        ("priority", "1.5"),
        ("priority", "high"),
        ("sort", "title"),
        ("sort", "-updatedAt"),
        ("sort", "PRIORITY"),
    ] {
        let reply = app.get(&query_path(&[(name, value)]), &user.token).await;
        assert_eq!(reply.invalid_fields(), [name], "{name}={value}");
    }
}

// ---------------------------------------------------------------- nextCursor

#[tokio::test]
async fn next_cursor_is_null_on_the_last_page_when_the_count_is_a_multiple_of_the_limit() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    for i in 0..8 {
        app.create_task(&user, json!({ "title": format!("t{i}") }))
            .await;
    }

    let pages = walk(&app, &user, &[], 4).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4]);

    let one_page = walk(&app, &user, &[], 8).await;
    assert_eq!(one_page.iter().map(Vec::len).collect::<Vec<_>>(), [8]);

    let single = walk(&app, &user, &[], 1).await;
    assert_eq!(single.len(), 8);
}

#[tokio::test]
async fn next_cursor_is_null_when_nothing_follows() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let empty = page(&app, &user, &[]).await;
    assert!(ids(&empty).is_empty());
    assert_eq!(empty.body["nextCursor"], Value::Null);

    for i in 0..5 {
        app.create_task(&user, json!({ "title": format!("t{i}") }))
            .await;
    }
    let pages = walk(&app, &user, &[], 4).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [4, 1]);
    let all = page(&app, &user, &[("limit", "5")]).await;
    assert_eq!(ids(&all).len(), 5);
    assert_eq!(all.body["nextCursor"], Value::Null);
    let partial = page(&app, &user, &[("limit", "4")]).await;
    assert!(partial.body["nextCursor"].is_string());
}

#[tokio::test]
async fn the_default_page_size_is_50() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    for i in 0..51 {
        app.create_task(&user, json!({ "title": format!("t{i}") }))
            .await;
    }

    let first = page(&app, &user, &[]).await;

    assert_eq!(ids(&first).len(), 50);
    let cursor = first.body["nextCursor"].as_str().expect("one more follows");
    let second = page(&app, &user, &[("cursor", cursor)]).await;
    assert_eq!(ids(&second).len(), 1);
    assert_eq!(second.body["nextCursor"], Value::Null);
}

// ---------------------------------------------------------------- limit and unknown parameters

#[tokio::test]
async fn limit_must_be_from_1_to_200() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    app.create_task(&user, json!({ "title": "t" })).await;

    for bad in ["0", "201", "abc", "-1", "1.5", ""] {
        let reply = app.get(&query_path(&[("limit", bad)]), &user.token).await;
        assert_eq!(reply.invalid_fields(), ["limit"], "limit={bad}");
    }
    for ok in ["1", "200"] {
        let reply = page(&app, &user, &[("limit", ok)]).await;
        assert_eq!(ids(&reply).len(), 1, "limit={ok}");
    }
}

#[tokio::test]
async fn unknown_query_parameters_are_validation_errors() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let task = app.create_task(&user, json!({ "title": "t" })).await;

    let reply = app.get("/api/tasks?page=2", &user.token).await;
    assert_eq!(reply.invalid_fields(), ["page"]);
    let reply = app
        .get("/api/tasks?status=TODO&offset=10", &user.token)
        .await;
    assert_eq!(reply.invalid_fields(), ["offset"]);
    let reply = app
        .get(
            &format!("/api/tasks/{}?fields=title", task["id"].as_str().unwrap()),
            &user.token,
        )
        .await;
    assert_eq!(reply.invalid_fields(), ["fields"]);
}

// ---------------------------------------------------------------- cursors

#[tokio::test]
async fn a_cursor_is_refused_with_other_filters_or_another_sort() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    arrange_mixed(&app, &user).await;

    let first = page(
        &app,
        &user,
        &[("status", "TODO"), ("sort", "priority"), ("limit", "1")],
    )
    .await;
    let cursor = first.body["nextCursor"].as_str().unwrap().to_owned();

    for other in [
        vec![("status", "TODO"), ("sort", "-priority")],
        vec![("status", "TODO"), ("sort", "createdAt")],
        vec![("status", "TODO")],
        vec![("status", "DONE"), ("sort", "priority")],
        vec![("sort", "priority")],
        vec![("status", "TODO"), ("sort", "priority"), ("priority", "0")],
    ] {
        let mut pairs = other.clone();
        pairs.push(("cursor", &cursor));
        let reply = app.get(&query_path(&pairs), &user.token).await;
        reply.assert_error(400, "VALIDATION_ERROR");
        assert!(
            reply.invalid_fields().contains(&"cursor".to_owned()),
            "{other:?}: {}",
            reply.body
        );
    }

    // The same filters and sort, with another page size: fine.
    let next = page(
        &app,
        &user,
        &[
            ("status", "TODO"),
            ("sort", "priority"),
            ("limit", "2"),
            ("cursor", &cursor),
        ],
    )
    .await;
    assert_eq!(ids(&next).len(), 2);
}

#[tokio::test]
async fn a_garbage_cursor_is_a_validation_error() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    app.create_task(&user, json!({ "title": "t" })).await;

    for garbage in [
        "garbage",
        "!!!not-base64!!!",
        "e30",                  // base64url of "{}"
        "bnVsbA",               // base64url of "null"
        "eyJvIjoiLWNyZWF0ZWQi", // a truncated JSON object
        &Uuid::new_v4().to_string(),
    ] {
        let reply = app
            .get(&query_path(&[("cursor", garbage)]), &user.token)
            .await;
        assert_eq!(reply.invalid_fields(), ["cursor"], "cursor={garbage}");
    }
}

// ---------------------------------------------------------------- concurrent inserts

/// Walks with page size 5 while a spawned task keeps inserting tasks through
/// the API (at least one between any two pages). Every task that existed
/// when the walk began comes exactly once; nothing comes twice.
async fn walk_while_inserting(sort: &'static str) {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let mut existing: HashSet<String> = HashSet::new();
    for i in 0..27 {
        let task = app
            .create_task(
                &user,
                json!({ "title": format!("before {i}"), "priority": i % 11 }),
            )
            .await;
        existing.insert(task["id"].as_str().unwrap().to_owned());
    }

    let inserted = Arc::new(Mutex::new(Vec::<String>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let inserter = {
        let (http, url, token) = (app.http.clone(), app.url("/api/tasks"), user.token.clone());
        let (inserted, count, stop) = (inserted.clone(), count.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) && n < 2000 {
                let reply = TestApp::read(
                    http.post(&url)
                        .bearer_auth(&token)
                        .json(&json!({ "title": format!("during {n}"), "priority": n % 11 })),
                )
                .await;
                assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
                inserted
                    .lock()
                    .unwrap()
                    .push(reply.body["id"].as_str().unwrap().to_owned());
                count.fetch_add(1, Ordering::SeqCst);
                n += 1;
            }
        })
    };
    // Tasks the inserter finished before the walk also existed when it began.
    assert!(
        eventually(Duration::from_secs(5), || async {
            count.load(Ordering::SeqCst) >= 3
        })
        .await
    );
    existing.extend(inserted.lock().unwrap().iter().cloned());
    let count_at_start = count.load(Ordering::SeqCst);

    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut pairs = vec![("sort", sort), ("limit", "5")];
        if let Some(cursor) = &cursor {
            pairs.push(("cursor", cursor));
        }
        let reply = page(&app, &user, &pairs).await;
        seen.extend(ids(&reply));
        pages += 1;
        assert!(pages < 2000, "the walk does not end");
        let Some(next) = reply.body["nextCursor"].as_str() else {
            break;
        };
        cursor = Some(next.to_owned());
        let seen_set: HashSet<&String> = seen.iter().collect();
        if existing.iter().all(|id| seen_set.contains(id)) {
            // Every task of interest seen: let the walk reach its end.
            stop.store(true, Ordering::SeqCst);
        } else {
            let before = count.load(Ordering::SeqCst);
            assert!(
                eventually(Duration::from_secs(5), || async {
                    count.load(Ordering::SeqCst) > before
                })
                .await,
                "the inserter keeps inserting"
            );
        }
    }
    stop.store(true, Ordering::SeqCst);
    inserter.await.unwrap();

    assert!(
        count.load(Ordering::SeqCst) > count_at_start,
        "inserts happened during the walk"
    );
    let mut unique = HashSet::new();
    let duplicates: Vec<&String> = seen.iter().filter(|id| !unique.insert(*id)).collect();
    assert!(duplicates.is_empty(), "seen twice: {duplicates:?}");
    let missing: BTreeSet<&String> = existing.iter().filter(|id| !unique.contains(id)).collect();
    assert!(missing.is_empty(), "missing: {missing:?}");
}

#[tokio::test]
async fn walking_newest_first_while_tasks_are_added_yields_every_existing_task_once() {
    walk_while_inserting("-createdAt").await;
}

#[tokio::test]
async fn walking_oldest_first_while_tasks_are_added_yields_every_existing_task_once() {
    walk_while_inserting("createdAt").await;
}

#[tokio::test]
async fn walking_by_priority_while_tasks_are_added_yields_every_existing_task_once() {
    walk_while_inserting("-priority").await;
    walk_while_inserting("priority").await;
}
