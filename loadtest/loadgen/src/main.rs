//! `loadgen`: WebSocket load for the task backend.
//!
//! - `idle`: opens N authenticated, subscribed connections (spread over many
//!   127.0.0.x source addresses so ports do not run out), reports the open
//!   rate and the ws-node's resident memory per connection, holds them.
//! - `fanout`: N subscribed connections over U users while a writer commits
//!   task changes over HTTP at a fixed rate; reports commit-to-receipt
//!   latency p50/p99/max and events expected vs received.
//! - `broadcast`: one user holding N connections, one event: how long until
//!   every connection has it.
//! - `capacity`: U users × 2 sockets while the writer steps its rate up:
//!   the most writes/s whose events all arrive with p99 under 10 ms.
//! - `redis-events`: events/s through Redis alone (one server or a Redis
//!   Cluster), published as the api-node does and received by the
//!   ws-node's own broker; with the Redis CPU per event.
//! - `watch`: prints a user's live events (for trying the system by hand).
//! - `tcp-floor`: the least one message to N loopback sockets can cost
//!   here (the limit the broadcast is compared with).
//! - `paced-get`: GETs at a fixed rate, with their latency (the reads
//!   beside the login storm).
//! - `soak`: REST traffic and subscribers that resume after every close,
//!   while something disruptive runs beside it (the rolling restart).
//!
//! `idle`, `fanout` and `broadcast` take `--deflate 1` (offer
//! permessage-deflate, require it agreed, inflate the node's compressed
//! events with ws-node's own layer); `fanout` and `broadcast` take
//! `--description 1` (tasks with a ~420-character description). `fanout`
//! and `broadcast` report the bytes read from the wire per event received.
//!
//! A ws-node refuses a user's sockets past `WS_MAX_SOCKETS_PER_USER` (100
//! by default) with 429: `broadcast`, and `idle` or `fanout` with more
//! than 100 connections per user, need it raised on the node (as
//! `loadtest/bench.sh` does).
//!
//! Only ever point it at 127.0.0.1: every loop is bounded in count and time.

mod args;
mod client;
mod paced;
mod redis_events;
mod scenarios;
mod soak;
mod tcp_floor;
mod watch;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args = args::Args::from_env();
    let result = match args.command.as_str() {
        "idle" => scenarios::idle(&args).await,
        "fanout" => scenarios::fanout(&args).await,
        "broadcast" => scenarios::broadcast(&args).await,
        "capacity" => scenarios::capacity(&args).await,
        "soak" => soak::soak(&args).await,
        "paced-get" => paced::paced_get(&args).await,
        "tcp-floor" => tcp_floor::tcp_floor(&args).await,
        "watch" => watch::watch(&args).await,
        "redis-events" => redis_events::redis_events(&args).await,
        _ => {
            eprintln!("usage: loadgen idle|fanout|broadcast|capacity|soak|paced-get|tcp-floor|watch|redis-events [--redis URL] [--api URL] [--ws URL] [--conns N] [--users N] [--rate N] [--secs N] [--pid PID] [--hold SECS] [--deflate 1] [--description 1]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("loadgen: {err:#}");
            ExitCode::FAILURE
        }
    }
}
