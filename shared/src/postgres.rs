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

/// Whether a PostgreSQL error means the database is out of reach for now
/// (the connection is gone, the server is shutting down, starting up or
/// out of connections) rather than that the statement itself failed.
///
/// A restart shows up both ways: as a dropped connection, and as an error
/// the server sends before it closes ("terminating connection due to
/// administrator command", SQLSTATE 57P01) or while it cannot take
/// connections yet (57P03). Both are 503 to a client, never 500.
pub fn is_unavailable(err: &tokio_postgres::Error) -> bool {
    let Some(db) = err.as_db_error() else {
        // No server error: an I/O error, a closed connection, a timeout.
        return true;
    };
    let code = db.code().code();
    // Class 08: connection exception; class 57: operator intervention
    // (shutdown, crash shutdown, cannot connect now); 53300: too many
    // connections.
    code.starts_with("08") || code.starts_with("57") || code == "53300"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_to_nowhere_is_built_lazily() {
        // Building never connects; the first checkout would fail.
        assert!(pool(
            "postgres://127.0.0.1:1/x",
            1,
            Duration::from_millis(10),
            "t"
        )
        .is_ok());
    }
}
