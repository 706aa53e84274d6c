//! Code both node kinds share, so an api-node and a ws-node agree on every
//! token, key and message they exchange through PostgreSQL and Redis.
//!
//! Layout:
//! - [`settings`]: reading settings from the environment, and [`settings::Secret`].
//! - [`jwt`]: issuing and verifying access tokens with a pinned algorithm.
//! - [`weak_secret`]: refusing placeholder and guessable secrets at start-up.
//! - [`postgres`]: the PostgreSQL pool, bounded waits, lazy connections.
//! - [`prometheus`]: the process-wide Prometheus recorder.
//! - [`metrics`]: the names of the metrics both node kinds export.
//! - [`health`]: whether PostgreSQL and Redis answer (`/readyz`, `dependency_up`).
//! - [`revocation`]: the in-memory set of revoked token ids, fed by Redis and PostgreSQL.
//! - [`redis_conn`]: the self-healing, time-bounded Redis connection.
//! - [`redis_keys`]: the one place that names Redis keys and channels.
//! - [`redis_topology`]: hash slots and a Redis Cluster's slot map.
//! - [`error_body`]: the contract's JSON error body.
//! - [`node_http`]: what both nodes' HTTP fronts share: accepting, JSON and
//!   error responses, `/readyz`, `/metrics`.
//! - [`events`]: the task event wire format, serialized once.
//! - [`time`]: the contract's timestamp format.
//! - [`telemetry`]: tracing set-up (plain or JSON logs).
//! - [`shutdown`]: the SIGTERM / Ctrl-C signal both binaries drain on.
//! - [`background`]: a node's long-lived tasks, tracked, stopped and awaited
//!   one way.

pub mod background;
pub mod error_body;
pub mod events;
pub mod health;
pub mod jwt;
pub mod metrics;
pub mod node_http;
pub mod postgres;
pub mod prometheus;
pub mod redis_conn;
pub mod redis_keys;
pub mod redis_topology;
pub mod revocation;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod time;
pub mod weak_secret;
