//! SQL on `login_failures`, which backs the failed-login rate limits.
//!
//! An attempt is reserved before its password is hashed: under an advisory
//! lock per email and per client address, the limits are checked and a
//! failure row is written in one transaction. Concurrent attempts for the
//! same email or address therefore queue on the lock and each sees every
//! reservation before it, so of any number sent at once no more than the
//! limit are evaluated. A login that succeeds deletes its row (successes do
//! not count); a failed one leaves it as the recorded failure.

use std::net::IpAddr;

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::DbError;
use crate::config::LoginLimit;

/// A reserved attempt: the id of its pending failure row.
#[derive(Debug, Clone, Copy)]
#[must_use = "a reservation counts as a failure until released"]
pub struct Reservation(i64);

/// Reserves one attempt for `email` from `ip`, or answers
/// [`DbError::Limited`] with the seconds until another is allowed. A
/// limit is reached while its `max_failures`-th most recent failure (or
/// pending attempt) is still inside the window. A refusal is counted in
/// `auth_rate_limited_total` under the limit that decided the wait (the
/// one whose window ends later when both are reached).
pub async fn reserve(
    client: &mut deadpool_postgres::Client,
    email: &str,
    ip: IpAddr,
    by_email: LoginLimit,
    by_client: LoginLimit,
) -> Result<Reservation, DbError> {
    let tx = client.transaction().await?;
    // The wait is counted from `clock_timestamp()`, not `now()` (when the
    // transaction began): after waiting for the lock, a reservation
    // committed meanwhile may be younger than `now()`, and the wait would
    // come out longer than the window.
    // Always the email's lock before the address's, so two attempts can
    // never each hold the lock the other waits for.
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .await?;
    let check = tx
        .prepare_cached(
            "WITH limits AS (
                 SELECT
                     (SELECT failed_at + make_interval(secs => $3) FROM login_failures
                      WHERE email = $1 AND failed_at > now() - make_interval(secs => $3)
                      ORDER BY failed_at DESC OFFSET $4 LIMIT 1) AS by_email,
                     (SELECT failed_at + make_interval(secs => $5) FROM login_failures
                      WHERE client_ip = $2 AND failed_at > now() - make_interval(secs => $5)
                      ORDER BY failed_at DESC OFFSET $6 LIMIT 1) AS by_client
             ), blocked AS (
                 SELECT GREATEST(by_email, by_client) AS until,
                        by_email IS NOT NULL AND (by_email >= by_client) IS NOT FALSE AS email_decides
                 FROM limits
             ), reserved AS (
                 INSERT INTO login_failures (email, client_ip)
                 SELECT $1, $2 FROM blocked WHERE until IS NULL
                 RETURNING id
             )
             SELECT (SELECT id FROM reserved),
                    ceil(extract(epoch FROM (SELECT until FROM blocked) - clock_timestamp()))::bigint,
                    (SELECT email_decides FROM blocked)",
        )
        .await?;
    let (email_key, client_key) = (format!("login-email:{email}"), format!("login-client:{ip}"));
    let (window_email, skip_email) = (
        by_email.window.as_secs_f64(),
        (by_email.max_failures - 1).max(0),
    );
    let (window_client, skip_client) = (
        by_client.window.as_secs_f64(),
        (by_client.max_failures - 1).max(0),
    );
    // Pipelined in one round trip: `biased` polls, so sends, them in this
    // order. The check is a statement of its own, so (read committed) it
    // reads after both locks are held and sees every reservation committed
    // before.
    let email_lock: [&(dyn ToSql + Sync); 1] = [&email_key];
    let client_lock: [&(dyn ToSql + Sync); 1] = [&client_key];
    let check_params: [&(dyn ToSql + Sync); 6] = [
        &email,
        &ip,
        &window_email,
        &skip_email,
        &window_client,
        &skip_client,
    ];
    let (_, _, row) = tokio::try_join!(
        biased;
        tx.execute(&lock, &email_lock),
        tx.execute(&lock, &client_lock),
        tx.query_one(&check, &check_params),
    )?;
    tx.commit().await?;
    let (id, wait, email_decides): (Option<i64>, Option<i64>, bool) =
        (row.get(0), row.get(1), row.get(2));
    match id {
        Some(id) => Ok(Reservation(id)),
        None => {
            // The limit whose window ends later decides the wait.
            let limit = if email_decides {
                "login_email"
            } else {
                "login_client"
            };
            metrics::counter!(crate::metrics::RATE_LIMITED, "limit" => limit).increment(1);
            Err(DbError::Limited(wait.unwrap_or(1).max(1) as u64))
        }
    }
}

/// Forgets a reserved attempt: the login succeeded, or was never evaluated.
pub async fn release(client: &impl GenericClient, reservation: Reservation) -> Result<(), DbError> {
    client
        .execute(
            &client
                .prepare_cached("DELETE FROM login_failures WHERE id = $1")
                .await?,
            &[&reservation.0],
        )
        .await?;
    Ok(())
}

/// Forgets failures older than any window could need.
pub async fn prune(client: &impl GenericClient, older_than_secs: f64) -> Result<u64, DbError> {
    Ok(client
        .execute(
            &client.prepare_cached("DELETE FROM login_failures WHERE failed_at < now() - make_interval(secs => $1)").await?,
            &[&older_than_secs],
        )
        .await?)
}
