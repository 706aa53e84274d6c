//! SQL on `users`.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::violates;
use super::DbError;
use crate::models::{User, USER_COLUMNS};

const EMAIL_KEY: &str = "users_email_key";

fn email_taken(err: tokio_postgres::Error) -> DbError {
    if violates(&err, EMAIL_KEY) {
        DbError::EmailTaken
    } else {
        err.into()
    }
}

/// Creates a user; `EMAIL_TAKEN` if the email exists.
pub async fn insert(
    client: &impl GenericClient,
    email: &str,
    name: &str,
    password_hash: &str,
) -> Result<User, DbError> {
    let sql = format!(
        "INSERT INTO users (email, name, password_hash) VALUES ($1, $2, $3) RETURNING {USER_COLUMNS}"
    );
    let row = client
        .query_one(
            &client.prepare_cached(&sql).await?,
            &[&email, &name, &password_hash],
        )
        .await
        .map_err(email_taken)?;
    Ok(User::from_row(&row))
}

/// The user with this email and their password hash.
pub async fn find_for_login(
    client: &impl GenericClient,
    email: &str,
) -> Result<Option<(User, String)>, DbError> {
    let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1");
    let row = client
        .query_opt(&client.prepare_cached(&sql).await?, &[&email])
        .await?;
    Ok(row.map(|row| (User::from_row(&row), row.get("password_hash"))))
}

/// The user with this id.
pub async fn get(client: &impl GenericClient, id: Uuid) -> Result<Option<User>, DbError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    Ok(client
        .query_opt(&client.prepare_cached(&sql).await?, &[&id])
        .await?
        .as_ref()
        .map(User::from_row))
}

/// Changes name and/or email; `EMAIL_TAKEN` if the email is someone else's.
pub async fn update_profile(
    client: &impl GenericClient,
    id: Uuid,
    name: Option<&str>,
    email: Option<&str>,
) -> Result<Option<User>, DbError> {
    let sql = format!(
        "UPDATE users SET name = COALESCE($2, name), email = COALESCE($3, email), updated_at = now()
         WHERE id = $1 RETURNING {USER_COLUMNS}"
    );
    let row = client
        .query_opt(&client.prepare_cached(&sql).await?, &[&id, &name, &email])
        .await
        .map_err(email_taken)?;
    Ok(row.as_ref().map(User::from_row))
}

/// Hands out the user's next event `seq`. Holds the user's row lock until
/// the transaction ends, which is what makes seq order the commit order.
pub async fn next_event_seq(client: &impl GenericClient, id: Uuid) -> Result<i64, DbError> {
    let row = client
        .query_one(
            &client
                .prepare_cached(
                    "UPDATE users SET event_seq = event_seq + 1 WHERE id = $1 RETURNING event_seq",
                )
                .await?,
            &[&id],
        )
        .await?;
    Ok(row.get(0))
}
