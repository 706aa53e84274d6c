//! PostgreSQL: the pool, and one module of queries per table.

pub mod login_failures;
pub mod migrate;
pub mod register_attempts;
pub mod task_events;
pub mod tasks;
pub mod users;

use std::time::Duration;

use deadpool_postgres::Pool;

/// The api-node's pool (see [`shared::postgres::pool`]).
pub fn pool(url: &str, size: usize, timeout: Duration) -> anyhow::Result<Pool> {
    shared::postgres::pool(url, size, timeout, "api-node")
}

/// Whether `err` is a violation of the named constraint.
pub fn violates(err: &tokio_postgres::Error, constraint: &str) -> bool {
    err.as_db_error()
        .and_then(|db| db.constraint())
        .is_some_and(|name| name == constraint)
}
