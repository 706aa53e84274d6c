//! The node's Redis connection: one multiplexed connection that reconnects
//! by itself, with every call bounded by a timeout so that a slow or absent
//! Redis degrades to cache misses instead of stalling requests.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Pipeline};

/// A cloneable handle; clones share one connection.
#[derive(Clone)]
pub struct RedisConn {
    manager: ConnectionManager,
    timeout: Duration,
}

/// Why a Redis call did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RedisFailure {
    /// Redis answered with an error, or the connection failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// No answer within the timeout.
    #[error("redis timed out")]
    Timeout,
}

impl RedisConn {
    /// A lazy connection: nothing is dialled until the first call, so the
    /// node starts (and serves from PostgreSQL) while Redis is down.
    pub fn new(client: redis::Client, timeout: Duration) -> anyhow::Result<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let manager = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self { manager, timeout })
    }

    /// Runs a command or pipeline within the timeout.
    pub async fn run<T: FromRedisValue + Send>(&self, pipe: &Pipeline) -> Result<T, RedisFailure> {
        let mut conn = self.manager.clone();
        match tokio::time::timeout(self.timeout, pipe.query_async(&mut conn)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(RedisFailure::Timeout),
        }
    }

    /// Runs a single command within the timeout.
    pub async fn cmd<T: FromRedisValue + Send>(&self, cmd: &redis::Cmd) -> Result<T, RedisFailure> {
        let mut conn = self.manager.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async(&mut conn)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(RedisFailure::Timeout),
        }
    }
}
