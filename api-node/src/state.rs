//! What every request can reach.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use deadpool_postgres::Pool;
use metrics_exporter_prometheus::PrometheusHandle;
use shared::redis_keys::RedisKeys;
use shared::revocation::Revocations;

use crate::cache::TaskCache;
use crate::config::Config;
use crate::domain::list_query::CursorKey;
use crate::passwords::Passwords;
use crate::publisher::Publisher;
use shared::redis_conn::RedisConn;

/// Shared, read-only after start-up (interior state is in the handles).
pub struct AppState {
    /// Settings.
    pub config: Config,
    /// PostgreSQL connections.
    pub pool: Pool,
    /// The multiplexed Redis connection.
    pub redis: RedisConn,
    /// Redis key and channel names.
    pub keys: RedisKeys,
    /// Revoked token ids, kept current in the background.
    pub revocations: Arc<Revocations>,
    /// The bounded hashing pool.
    pub passwords: Passwords,
    /// The task cache.
    pub cache: TaskCache,
    /// Puts committed events on Redis.
    pub publisher: Publisher,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Signs list cursors (derived from the JWT secret).
    pub cursor_key: CursorKey,
    /// Set once shutdown began: responses then close their connection.
    pub draining: AtomicBool,
}
