//! PostgreSQL: the pool, and one module of queries per table. Queries
//! know nothing of HTTP: they fail with [`DbError`], which `error.rs` maps
//! to the contract's answers in one place.

pub mod login_failures;
pub mod migrate;
pub mod register_attempts;
pub mod task_events;
pub mod tasks;
pub mod users;

use std::time::Duration;

use deadpool_postgres::Pool;

/// What a query can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database's own error (unavailable, or a bug).
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection from the pool in time.
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The email belongs to another user (`users_email_key`).
    #[error("the email is already registered")]
    EmailTaken,
    /// An attempt limit is reached; another is allowed in this many seconds.
    #[error("attempt limit reached; retry in {0} s")]
    Limited(u64),
}

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
