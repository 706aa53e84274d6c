//! The harness of the integration tests, one crate for all of them: real
//! api-nodes and ws-nodes started in the test's process, on real
//! PostgreSQL and Redis (from `TEST_DATABASE_URL`, `TEST_REDIS_URL` and
//! `TEST_REDIS_CLUSTER_URL`, which `scripts/test.sh` sets), Redis servers and
//! TCP proxies a test can kill or cut, and a real nginx in front.
//!
//! - [`api`]: api-nodes ([`api::TestApp`]), HTTP calls, users, tokens;
//!   [`api::proxy`], [`api::redis_server`], [`api::scrape`] (Prometheus text).
//! - [`ws`]: ws-nodes ([`ws::WsNode`]) and WebSocket clients; [`ws::nginx`].
//!
//! A test file names the part it uses as `common`
//! (`use test_support::api as common;`), so its calls read the same
//! whichever crate it tests.

pub mod api;
pub mod ws;

/// A port free on 127.0.0.1 now, for a server the test starts itself (the
/// operating system picks it; a test binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port on 127.0.0.1")
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}
