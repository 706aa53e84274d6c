//! The api-node's settings, read once at start-up. `.env.example` lists
//! every one with its default.

use std::net::SocketAddr;
use std::time::Duration;

use shared::jwt::JwtKeys;
use shared::settings::{parsed_or, required, string_or};

use crate::client_addr::IpRange;

/// Everything the node is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// `LISTEN_ADDR`: where to serve HTTP (port 0 picks a free one).
    pub listen_addr: SocketAddr,
    /// `DATABASE_URL`: the PostgreSQL connection string.
    pub database_url: String,
    /// `DB_POOL_SIZE`: connections per node.
    pub db_pool_size: usize,
    /// `DB_TIMEOUT_MS`: how long to wait for a connection before answering 503.
    pub db_timeout: Duration,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `REDIS_NAMESPACE`: prefix of every Redis key and channel.
    pub redis_namespace: String,
    /// `REDIS_TIMEOUT_MS`: a Redis call slower than this counts as a miss.
    pub redis_timeout: Duration,
    /// Replicas a published event must reach before it counts as published
    /// (`REDIS_WAIT_REPLICAS`; default 1 on a Redis Cluster, 0 on one
    /// server).
    pub redis_wait_replicas: u32,
    /// `CACHE_TTL_SECS`: lifetime of a cached task.
    pub cache_ttl: Duration,
    /// `JWT_SECRET`, `JWT_ALGORITHM`, `JWT_TTL_SECS`.
    pub jwt: JwtKeys,
    /// `LOGIN_MAX_FAILURES_PER_EMAIL` within `LOGIN_EMAIL_WINDOW_SECS`.
    pub email_limit: LoginLimit,
    /// `LOGIN_MAX_FAILURES_PER_CLIENT` within `LOGIN_CLIENT_WINDOW_SECS`.
    pub client_limit: LoginLimit,
    /// `REGISTER_MAX_PER_CLIENT` registrations within
    /// `REGISTER_CLIENT_WINDOW_SECS` per client address.
    pub register_limit: LoginLimit,
    /// `TRUSTED_PROXIES`: comma-separated peer addresses and CIDR ranges
    /// whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpRange>,
    /// `HASH_CONCURRENCY`: password hashes running at once (default: cores).
    pub hash_concurrency: usize,
    /// `HASH_QUEUE_LEN`: hashes waiting for a slot; past it register and
    /// login answer 503.
    pub hash_queue_len: usize,
    /// `MAX_CONNECTIONS`: open client connections per node.
    pub max_connections: usize,
    /// `HEADER_READ_TIMEOUT_SECS`: a connection idle this long (no request
    /// read whole or answered, none in progress) is closed, which bounds
    /// slow headers and idle keep-alive connections.
    pub header_read_timeout: Duration,
    /// `BODY_READ_TIMEOUT_SECS`: and then its whole body within this long,
    /// else the connection is closed without an answer.
    pub body_read_timeout: Duration,
    /// `SHUTDOWN_GRACE_SECS`: how long SIGTERM waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// `RELAY_INTERVAL_MS`: how often the outbox relay looks for unpublished events.
    pub relay_interval: Duration,
    /// `RELAY_GRACE_MS`: an event younger than this is left to the node that wrote it.
    pub relay_grace: Duration,
}

/// "More than `max_failures` failures within `window`" is refused. The
/// registration limit uses it too: there every attempt counts.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimit {
    /// Failures (registrations) allowed in the window.
    pub max_failures: i64,
    /// The sliding window.
    pub window: Duration,
}

impl Config {
    /// Reads the settings from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let trusted_proxies = string_or("TRUSTED_PROXIES", "")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .map_err(|err| anyhow::anyhow!("TRUSTED_PROXIES: {err}"))
            })
            .collect::<anyhow::Result<_>>()?;
        let redis_url = required("REDIS_URL")?;
        let on_cluster = redis_url.starts_with(shared::redis_conn::CLUSTER_SCHEME);
        Ok(Self {
            listen_addr: parsed_or("LISTEN_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            database_url: required("DATABASE_URL")?,
            db_pool_size: parsed_or("DB_POOL_SIZE", 16)?,
            db_timeout: Duration::from_millis(parsed_or("DB_TIMEOUT_MS", 2000)?),
            redis_url,
            redis_namespace: string_or("REDIS_NAMESPACE", "tasks"),
            redis_timeout: Duration::from_millis(parsed_or("REDIS_TIMEOUT_MS", 250)?),
            redis_wait_replicas: parsed_or("REDIS_WAIT_REPLICAS", u32::from(on_cluster))?,
            cache_ttl: Duration::from_secs(parsed_or("CACHE_TTL_SECS", 300)?),
            jwt: JwtKeys::from_env()?,
            email_limit: LoginLimit {
                max_failures: parsed_or("LOGIN_MAX_FAILURES_PER_EMAIL", 10)?,
                window: Duration::from_secs(parsed_or("LOGIN_EMAIL_WINDOW_SECS", 900)?),
            },
            client_limit: LoginLimit {
                max_failures: parsed_or("LOGIN_MAX_FAILURES_PER_CLIENT", 100)?,
                window: Duration::from_secs(parsed_or("LOGIN_CLIENT_WINDOW_SECS", 60)?),
            },
            register_limit: LoginLimit {
                max_failures: parsed_or("REGISTER_MAX_PER_CLIENT", 20)?,
                window: Duration::from_secs(parsed_or("REGISTER_CLIENT_WINDOW_SECS", 3600)?),
            },
            trusted_proxies,
            hash_concurrency: parsed_or("HASH_CONCURRENCY", cores)?.max(1),
            hash_queue_len: parsed_or("HASH_QUEUE_LEN", 64)?,
            max_connections: parsed_or("MAX_CONNECTIONS", 10_000)?,
            header_read_timeout: Duration::from_secs(parsed_or("HEADER_READ_TIMEOUT_SECS", 10)?),
            body_read_timeout: Duration::from_secs(parsed_or("BODY_READ_TIMEOUT_SECS", 10)?),
            shutdown_grace: Duration::from_secs(parsed_or("SHUTDOWN_GRACE_SECS", 25)?),
            relay_interval: Duration::from_millis(parsed_or("RELAY_INTERVAL_MS", 1000)?),
            relay_grace: Duration::from_millis(parsed_or("RELAY_GRACE_MS", 2000)?),
        })
    }
}
