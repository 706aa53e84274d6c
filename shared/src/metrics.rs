//! Prometheus metrics both node kinds export, for what they share
//! (dependency checks, revocations): the one place that names them. Each
//! node's own are in its crate's `metrics.rs`.
//!
//! Each node registers these at start (via its own `register`), so every
//! series exists from the first scrape.

/// 1 while the node's last check of a dependency got an answer, else 0,
/// by `dependency` (`postgres`, `redis`); checked every 2 s and on each
/// `/readyz` (see [`crate::health`]).
pub const DEPENDENCY_UP: &str = "dependency_up";
/// Revoked tokens (not yet expired) in the node's in-memory set.
pub const REVOCATIONS: &str = "revocations_known";
/// When the node last read the revocations from PostgreSQL (Unix
/// seconds): `time() - revocation_last_sync_timestamp_seconds` is how far
/// behind the node's set may be when the Redis channel is lost.
pub const REVOCATION_SYNC: &str = "revocation_last_sync_timestamp_seconds";
/// 1 while the node follows the Redis revocation channel (logouts reach it
/// in milliseconds), 0 while it relies on the PostgreSQL poll alone.
pub const REVOCATION_CHANNEL: &str = "revocation_channel_connected";

/// The values of the `dependency` label.
pub const DEPENDENCIES: [&str; 2] = ["postgres", "redis"];

/// Registers the shared series at zero.
pub fn register() {
    for dependency in DEPENDENCIES {
        metrics::gauge!(DEPENDENCY_UP, "dependency" => dependency).set(0.0);
    }
    for name in [REVOCATIONS, REVOCATION_SYNC, REVOCATION_CHANNEL] {
        metrics::gauge!(name).set(0.0);
    }
}
