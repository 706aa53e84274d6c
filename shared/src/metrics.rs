//! Prometheus metrics both node kinds export, for what they share
//! (dependency checks, revocations): the one place that names them. Each
//! node's own are in its crate's `metrics.rs`.
//!
//! Each node registers these at start (via its own `register`), so every
//! series exists from the first scrape.

/// Declares a node's metric names: one `pub const` per name (with its
/// doc), and `ALL`, every name declared, so tools such as the deploy checks
/// (`xtask`) know what a node exports without reading its source.
#[macro_export]
macro_rules! metric_names {
    ($($(#[$doc:meta])* $name:ident = $value:literal;)*) => {
        $($(#[$doc])* pub const $name: &str = $value;)*
        /// Every metric name declared above.
        pub const ALL: &[&str] = &[$($name),*];
    };
}

crate::metric_names! {
    /// 1 while the node's last check of a dependency got an answer, else 0,
    /// by `dependency` (`postgres`, `redis`); checked every 2 s and on each
    /// `/readyz` (see [`crate::health`]).
    DEPENDENCY_UP = "dependency_up";
    /// Revoked tokens (not yet expired) in the node's in-memory set.
    REVOCATIONS = "revocations_known";
    /// When the node last read the revocations from PostgreSQL (Unix
    /// seconds): `time() - revocation_last_sync_timestamp_seconds` is how far
    /// behind the node's set may be when the Redis channel is lost.
    REVOCATION_SYNC = "revocation_last_sync_timestamp_seconds";
    /// 1 while the node follows the Redis revocation channel (logouts reach it
    /// in milliseconds), 0 while it relies on the PostgreSQL poll alone.
    REVOCATION_CHANNEL = "revocation_channel_connected";
}

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
