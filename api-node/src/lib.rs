//! The api-node: a stateless HTTP server for auth, profile and tasks.
//! PostgreSQL holds the truth; Redis caches task reads and carries events
//! to the ws-nodes.
//!
//! Layout:
//! - [`app`]: build a node (bind, connect, start background tasks) and run it.
//! - [`server`]: the accept loop, connection limits, graceful drain.
//! - [`service`]: one request: id, span, dispatch, metrics.
//! - [`router`]: the URL map.
//! - [`handlers`]: one module per resource.
//! - [`web`]: JSON bodies, headers, `If-Match`.
//! - [`error`]: the one error type and its responses.
//! - [`auth`]: bearer tokens → the calling user.
//! - [`client_addr`]: the client address behind trusted proxies.
//! - [`passwords`]: argon2id on a bounded blocking pool.
//! - [`domain`]: request input parsed into valid types.
//! - [`models`]: users and tasks as the API returns them.
//! - [`db`]: the PostgreSQL pool, migrations and one module per table.
//! - [`task_writes`]: a task change as one transaction with its outbox event.
//! - [`publisher`]: events to Redis (cache, channel, recent store) in one round trip.
//! - [`relay`]: republishes committed events that never reached Redis.
//! - [`cache`]: the versioned task cache.
//! - [`metrics`]: metric names and the Prometheus recorder.
//! - [`seed`]: demo data.
//! - [`config`], [`state`]: settings and what every request shares.

pub mod app;
pub mod auth;
pub mod cache;
pub mod client_addr;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
mod handlers;
pub mod http_series;
pub mod metrics;
pub mod models;
pub mod passwords;
pub mod publisher;
pub mod relay;
pub mod router;
pub mod seed;
pub mod server;
pub mod service;
pub mod state;
pub mod task_writes;
pub mod web;
