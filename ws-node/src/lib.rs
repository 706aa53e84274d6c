//! The ws-node: holds WebSocket connections and pushes each user's task
//! events to all of them, in order, resumable, with bounded memory.
//!
//! Layout:
//! - [`app`]: build a node and run it; the SIGTERM drain.
//! - [`front`]: the HTTP front: authenticated upgrade, health, metrics.
//! - [`session`]: one connection's task: protocol, heartbeat, limits.
//! - [`protocol`]: the messages of the contract and the close codes.
//! - [`hub`]: connections sharded by user; ordered, bounded fan-out.
//! - [`broker`]: the Redis subscription that follows the hub, and catch-up.
//! - [`history`]: past events from Redis or the PostgreSQL outbox.
//! - [`metrics`]: metric names.
//! - [`config`], [`state`]: settings and what every connection shares.

pub mod app;
pub mod broker;
pub mod config;
pub mod front;
pub mod history;
pub mod hub;
pub mod metrics;
pub mod protocol;
pub mod session;
pub mod state;
