//! The PostgreSQL pool both node kinds use.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

/// A pool whose every wait is bounded by `timeout`, so an unreachable
/// database answers 503 quickly instead of hanging requests. Connections
/// are made lazily: a node starts while PostgreSQL is down.
pub fn pool(
    url: &str,
    size: usize,
    timeout: Duration,
    application_name: &str,
) -> anyhow::Result<Pool> {
    let mut config = tokio_postgres::Config::from_str(url)?;
    config.connect_timeout(timeout);
    config.application_name(application_name);
    let manager = Manager::from_config(
        config,
        NoTls,
        // Fast recycling checks only that the connection is open: a verify
        // round trip on every checkout would double the cost of short queries.
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .runtime(Runtime::Tokio1)
        .build()?)
}
