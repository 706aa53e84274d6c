//! SQL on `register_attempts`, which backs the registration rate limit per
//! client address. Like the login limits, an attempt is reserved (checked
//! and written under an advisory lock per address) before its password is
//! hashed, so concurrent registrations cannot all pass the check.

use std::net::IpAddr;

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::DbError;
use crate::config::LoginLimit;

/// A reserved registration: the id of its row.
#[derive(Debug, Clone, Copy)]
#[must_use = "a reservation counts against the limit until released"]
pub struct Reservation(i64);

/// Reserves one registration from `ip`, or answers
/// [`DbError::Limited`] with the seconds until another is allowed.
pub async fn reserve(
    client: &mut deadpool_postgres::Client,
    ip: IpAddr,
    limit: LoginLimit,
) -> Result<Reservation, DbError> {
    let tx = client.transaction().await?;
    // The wait is counted from `clock_timestamp()`, not `now()` (when the
    // transaction began): after waiting for the lock, a reservation
    // committed meanwhile may be younger than `now()`, and the wait would
    // come out longer than the window.
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .await?;
    let check = tx
        .prepare_cached(
            "WITH blocked AS (
                 SELECT (SELECT attempted_at + make_interval(secs => $2) FROM register_attempts
                         WHERE client_ip = $1 AND attempted_at > now() - make_interval(secs => $2)
                         ORDER BY attempted_at DESC OFFSET $3 LIMIT 1) AS until
             ), reserved AS (
                 INSERT INTO register_attempts (client_ip)
                 SELECT $1 FROM blocked WHERE until IS NULL
                 RETURNING id
             )
             SELECT (SELECT id FROM reserved),
                    ceil(extract(epoch FROM (SELECT until FROM blocked) - clock_timestamp()))::bigint",
        )
        .await?;
    let key = format!("register-client:{ip}");
    let (window, skip) = (limit.window.as_secs_f64(), (limit.max_failures - 1).max(0));
    // One round trip, sent in this order (`biased`); the check is a
    // statement of its own, so it reads after the lock is held.
    let lock_params: [&(dyn ToSql + Sync); 1] = [&key];
    let check_params: [&(dyn ToSql + Sync); 3] = [&ip, &window, &skip];
    let (_, row) = tokio::try_join!(
        biased;
        tx.execute(&lock, &lock_params),
        tx.query_one(&check, &check_params),
    )?;
    tx.commit().await?;
    let (id, wait): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
    match id {
        Some(id) => Ok(Reservation(id)),
        None => {
            metrics::counter!(crate::metrics::RATE_LIMITED, "limit" => "register_client")
                .increment(1);
            Err(DbError::Limited(wait.unwrap_or(1).max(1) as u64))
        }
    }
}

/// Forgets a reserved registration that was never attempted (its hash was
/// refused).
pub async fn release(client: &impl GenericClient, reservation: Reservation) -> Result<(), DbError> {
    client
        .execute(
            &client
                .prepare_cached("DELETE FROM register_attempts WHERE id = $1")
                .await?,
            &[&reservation.0],
        )
        .await?;
    Ok(())
}

/// Forgets attempts older than any window could need.
pub async fn prune(client: &impl GenericClient, older_than_secs: f64) -> Result<u64, DbError> {
    Ok(client
        .execute(
            &client
                .prepare_cached(
                    "DELETE FROM register_attempts
                     WHERE attempted_at < now() - make_interval(secs => $1)",
                )
                .await?,
            &[&older_than_secs],
        )
        .await?)
}
