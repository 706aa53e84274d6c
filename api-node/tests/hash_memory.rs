//! Password hashing keeps resident memory bounded by the hash concurrency:
//! after a storm of registrations and logins the process holds at most one
//! argon2 block buffer (19 MiB) per hashing slot more than before it.
//!
//! Resident memory is the whole test process's (node and client run in
//! it), so this binary holds this one test only: nothing else runs beside it.

use test_support::api as common;

use std::time::{Duration, Instant};

use api_node::config::LoginLimit;
use common::TestApp;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

/// argon2id's memory per running hash at our parameters (19,456 KiB).
const HASH_MIB: u64 = 19;
/// Hashing slots in this test.
const SLOTS: usize = 2;
/// What else may grow over a storm: allocator slack, the auth queries'
/// prepared statements, the hashing threads' own arenas. Measured on a
/// 2-core machine: the storm grows resident memory by 45 MiB (2 × 19 + 7);
/// with a fresh 19 MiB allocation per hash on tokio's blocking pool (before
/// the per-slot buffers) the same storm grew it from 16 to 520 MiB.
const MARGIN_MIB: u64 = 16;
/// Registrations and logins in the storm, sent this many at once.
const REGISTRATIONS: usize = 200;
const LOGINS: usize = 800;
const AT_ONCE: usize = 16;

/// `VmRSS` (or another `/proc/self/status` field) in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

fn generous(max_failures: i64, secs: u64) -> LoginLimit {
    LoginLimit {
        max_failures,
        window: Duration::from_secs(secs),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_of_logins_and_registrations_grows_memory_by_at_most_one_buffer_per_slot() {
    let app = TestApp::spawn_with(|c| {
        c.hash_concurrency = SLOTS;
        c.hash_queue_len = 4 * AT_ONCE;
        c.db_timeout = Duration::from_secs(30);
        c.email_limit = generous(1_000_000, 900);
        c.client_limit = generous(1_000_000, 60);
        c.register_limit = generous(1_000_000, 3600);
    })
    .await;
    // Warm up everything but hashing, at the storm's concurrency: client
    // and server connections, the database pool, the runtime's threads.
    // (A token needs no registration: the harness signs one.)
    let (token, _) = common::jwt_keys().issue(uuid::Uuid::new_v4());
    for _ in 0..4 {
        let reads = (0..AT_ONCE).map(|_| app.get("/api/tasks", &token));
        for reply in futures_util::future::join_all(reads).await {
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        }
    }
    let baseline = status_kib("VmRSS");

    let started = Instant::now();
    let user = app.register().await;
    let requests = (0..REGISTRATIONS + LOGINS).map(|i| {
        let (path, body) = if i.is_multiple_of(5) {
            let email = format!("storm-{i}-{}@example.com", uuid::Uuid::new_v4().simple());
            (
                "/api/auth/register",
                json!({ "email": email, "password": "correct horse battery", "name": "Storm" }),
            )
        } else {
            let password = if i.is_multiple_of(2) {
                user.password.as_str()
            } else {
                "wrong"
            };
            (
                "/api/auth/login",
                json!({ "email": user.email, "password": password }),
            )
        };
        TestApp::read(app.http.post(app.url(path)).json(&body))
    });
    let replies: Vec<_> = futures_util::stream::iter(requests)
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let after = status_kib("VmRSS");
    let peak = status_kib("VmHWM");

    for reply in &replies {
        assert!(
            matches!(reply.status.as_u16(), 200 | 201 | 401),
            "{} {}",
            reply.status,
            reply.body
        );
    }
    let bound = baseline + (SLOTS as u64 * HASH_MIB + MARGIN_MIB) * 1024;
    eprintln!(
        "hash memory: {} hashes in {:.1} s; VmRSS {} MiB before, {} MiB after (bound {} MiB), peak {} MiB",
        replies.len() + 1,
        elapsed.as_secs_f64(),
        baseline / 1024,
        after / 1024,
        bound / 1024,
        peak / 1024,
    );
    assert!(
        after <= bound,
        "resident memory grew from {baseline} KiB to {after} KiB, over {bound} KiB"
    );
}
