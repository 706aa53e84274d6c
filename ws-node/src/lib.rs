//! The ws-node: holds WebSocket connections and pushes each user's task
//! events to all of them, in order, resumable, with bounded memory.
//!
//! Layout:
//! - [`app`]: build a node and run it; the SIGTERM drain.
//! - [`front`]: the HTTP front: authenticated upgrade, health, metrics.
//! - [`session`]: one connection's task: protocol, heartbeat, limits.
//! - [`protocol`]: the messages of the contract and the close codes.
//! - [`deflate`]: permessage-deflate: the offers we accept, compressing and
//!   inflating one message.
//! - [`inflating_stream`]: a socket's transport, inflating compressed client
//!   messages under tungstenite.
//! - [`hub`]: the registry of sockets, sharded by user; ordered, bounded
//!   fan-out. Knows nothing of Redis or history.
//! - [`broker`]: the Redis pump: follows the hub's interest, decodes each
//!   event once, hands it on. Never waits on one user's I/O.
//! - [`fanout`]: the coordinator between them: per-user order and gap
//!   filling off the pump, and catch-up after a Redis reconnect.
//! - [`history`]: past events from Redis or the PostgreSQL outbox.
//! - [`metrics`]: metric names.
//! - [`user_sockets`]: the per-user socket cap.
//! - [`config`], [`state`]: settings and what every connection shares.
//!
//! Dependencies point one way: `fanout` → `broker`, `hub`, `history`;
//! `broker` → `hub` (the event and interest types); `hub` → nothing above.

pub mod app;
pub mod broker;
pub mod config;
pub mod deflate;
pub mod fanout;
pub mod front;
pub mod history;
pub mod hub;
pub mod inflating_stream;
pub mod metrics;
pub mod protocol;
pub mod session;
pub mod state;
pub mod user_sockets;
