//! SQL on `login_failures`, which backs the failed-login rate limits.

use std::net::IpAddr;

use deadpool_postgres::GenericClient;

use crate::config::LoginLimit;
use crate::error::ApiError;

/// Seconds until another attempt is allowed for this email or address, or
/// `None` when neither limit is reached. A limit is reached while its
/// `max_failures`-th most recent failure is still inside the window.
pub async fn blocked_for(
    client: &impl GenericClient,
    email: &str,
    ip: IpAddr,
    by_email: LoginLimit,
    by_client: LoginLimit,
) -> Result<Option<u64>, ApiError> {
    let row = client
        .query_one(
            &client
                .prepare_cached(
                    "SELECT ceil(extract(epoch FROM GREATEST(
                 (SELECT failed_at + make_interval(secs => $3) FROM login_failures
                  WHERE email = $1 AND failed_at > now() - make_interval(secs => $3)
                  ORDER BY failed_at DESC OFFSET $4 LIMIT 1),
                 (SELECT failed_at + make_interval(secs => $5) FROM login_failures
                  WHERE client_ip = $2 AND failed_at > now() - make_interval(secs => $5)
                  ORDER BY failed_at DESC OFFSET $6 LIMIT 1)
             ) - now()))::bigint",
                )
                .await?,
            &[
                &email,
                &ip,
                &by_email.window.as_secs_f64(),
                &(by_email.max_failures - 1).max(0),
                &by_client.window.as_secs_f64(),
                &(by_client.max_failures - 1).max(0),
            ],
        )
        .await?;
    let wait: Option<i64> = row.get(0);
    Ok(wait.filter(|s| *s > 0).map(|s| s as u64))
}

/// Records one failed attempt.
pub async fn record(client: &impl GenericClient, email: &str, ip: IpAddr) -> Result<(), ApiError> {
    client
        .execute(
            &client
                .prepare_cached("INSERT INTO login_failures (email, client_ip) VALUES ($1, $2)")
                .await?,
            &[&email, &ip],
        )
        .await?;
    Ok(())
}

/// Forgets failures older than any window could need.
pub async fn prune(client: &impl GenericClient, older_than_secs: f64) -> Result<u64, ApiError> {
    Ok(client
        .execute(
            &client.prepare_cached("DELETE FROM login_failures WHERE failed_at < now() - make_interval(secs => $1)").await?,
            &[&older_than_secs],
        )
        .await?)
}
