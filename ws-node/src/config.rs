//! The ws-node's settings, read once at start-up. `.env.example` lists
//! every one with its default.

use std::net::SocketAddr;
use std::time::Duration;

use shared::jwt::JwtKeys;
use shared::settings::{parsed_or, required, string_or};

/// Everything the node is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// `WS_LISTEN_ADDR` (or `LISTEN_ADDR`): where to serve.
    pub listen_addr: SocketAddr,
    /// `DATABASE_URL`: for revocations, latest seqs and older events.
    pub database_url: String,
    /// `WS_DB_POOL_SIZE`.
    pub db_pool_size: usize,
    /// `DB_TIMEOUT_MS`.
    pub db_timeout: Duration,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `REDIS_NAMESPACE`: must match the api-nodes'.
    pub redis_namespace: String,
    /// `JWT_SECRET`, `JWT_ALGORITHM` (`JWT_TTL_SECS` is the api-node's).
    pub jwt: JwtKeys,
    /// `WS_MAX_CONNECTIONS`: open sockets per node.
    pub max_connections: usize,
    /// `WS_MAX_SOCKETS_PER_USER`: open sockets of one user on this node;
    /// past it the upgrade answers 429.
    pub max_sockets_per_user: usize,
    /// `WS_QUEUE_LEN`: events queued per connection before it counts as too slow.
    pub queue_len: usize,
    /// `WS_MAX_MESSAGES_PER_SEC`: client messages per second before 1008.
    pub max_messages_per_sec: u32,
    /// `WS_PING_INTERVAL_SECS`: protocol ping period.
    pub ping_interval: Duration,
    /// `WS_IDLE_TIMEOUT_SECS`: a peer silent this long is dropped.
    pub idle_timeout: Duration,
    /// `WS_WRITE_TIMEOUT_SECS`: a socket that accepts no bytes this long is dropped.
    pub write_timeout: Duration,
    /// `SHUTDOWN_GRACE_SECS`: how long SIGTERM waits for sockets to close.
    pub shutdown_grace: Duration,
    /// `WS_COMPRESSION`: agree permessage-deflate with clients that offer it.
    pub compression: bool,
}

impl Config {
    /// Reads the settings from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let listen_default = parsed_or("LISTEN_ADDR", SocketAddr::from(([127, 0, 0, 1], 8090)))?;
        Ok(Self {
            listen_addr: parsed_or("WS_LISTEN_ADDR", listen_default)?,
            database_url: required("DATABASE_URL")?,
            db_pool_size: parsed_or("WS_DB_POOL_SIZE", 8)?,
            db_timeout: Duration::from_millis(parsed_or("DB_TIMEOUT_MS", 2000)?),
            redis_url: required("REDIS_URL")?,
            redis_namespace: string_or("REDIS_NAMESPACE", "tasks"),
            jwt: JwtKeys::from_env()?,
            max_connections: parsed_or("WS_MAX_CONNECTIONS", 100_000)?,
            max_sockets_per_user: parsed_or("WS_MAX_SOCKETS_PER_USER", 100)?,
            queue_len: parsed_or("WS_QUEUE_LEN", 256)?,
            max_messages_per_sec: parsed_or("WS_MAX_MESSAGES_PER_SEC", 50)?,
            ping_interval: Duration::from_secs(parsed_or("WS_PING_INTERVAL_SECS", 25)?),
            idle_timeout: Duration::from_secs(parsed_or("WS_IDLE_TIMEOUT_SECS", 60)?),
            write_timeout: Duration::from_secs(parsed_or("WS_WRITE_TIMEOUT_SECS", 10)?),
            shutdown_grace: Duration::from_secs(parsed_or("SHUTDOWN_GRACE_SECS", 10)?),
            compression: parsed_or("WS_COMPRESSION", true)?,
        })
    }
}
