//! The suite's own view of PostgreSQL, the truth everything is checked
//! against: users' latest seqs and the `task_events` outbox. One cached
//! connection, reopened after an error (PostgreSQL is restarted mid-run).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

/// One row of `task_events`.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The owner.
    pub user: Uuid,
    /// The owner's seq.
    pub seq: i64,
    /// The event JSON as published.
    pub payload: String,
}

/// A connection to the runner's PostgreSQL.
pub struct Db {
    url: String,
    client: Mutex<Option<Client>>,
}

impl Db {
    /// Connects lazily to `url`.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            client: Mutex::new(None),
        }
    }

    /// Runs `query` with `params` on the cached connection, opening one if
    /// needed; drops the connection when the query fails.
    async fn query(
        &self,
        query: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> anyhow::Result<Vec<tokio_postgres::Row>> {
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_none_or(Client::is_closed) {
            let connecting = tokio_postgres::connect(&self.url, NoTls);
            let (client, connection) = tokio::time::timeout(Duration::from_secs(3), connecting)
                .await
                .context("connecting to PostgreSQL timed out")??;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            *slot = Some(client);
        }
        let client = slot.as_ref().expect("just connected");
        let result =
            tokio::time::timeout(Duration::from_secs(10), client.query(query, params)).await;
        match result {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(err)) => {
                *slot = None;
                Err(err.into())
            }
            Err(_) => {
                *slot = None;
                anyhow::bail!("query timed out: {query}")
            }
        }
    }

    /// Each user's latest seq (`users.event_seq`).
    pub async fn latest_seqs(&self, users: &[Uuid]) -> anyhow::Result<HashMap<Uuid, i64>> {
        let users = users.to_vec();
        let rows = self
            .query(
                "SELECT id, event_seq FROM users WHERE id = ANY($1)",
                &[&users],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Events not yet marked as published, as (user, seq).
    pub async fn unpublished(&self) -> anyhow::Result<Vec<(Uuid, i64)>> {
        let rows = self
            .query(
                "SELECT user_id, seq FROM task_events WHERE published_at IS NULL",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// How many of `keys` are still unpublished.
    pub async fn still_unpublished(&self, keys: &[(Uuid, i64)]) -> anyhow::Result<usize> {
        let (users, seqs): (Vec<Uuid>, Vec<i64>) = keys.iter().copied().unzip();
        let rows = self
            .query(
                "SELECT count(*) FROM task_events
                 WHERE (user_id, seq) IN (SELECT * FROM unnest($1::uuid[], $2::bigint[]))
                   AND published_at IS NULL",
                &[&users, &seqs],
            )
            .await?;
        Ok(rows[0].get::<_, i64>(0) as usize)
    }

    /// Every event of `users`, in (user, seq) order.
    pub async fn events(&self, users: &[Uuid]) -> anyhow::Result<Vec<StoredEvent>> {
        let users = users.to_vec();
        let rows = self
            .query(
                "SELECT user_id, seq, payload FROM task_events WHERE user_id = ANY($1) ORDER BY user_id, seq",
                &[&users],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredEvent {
                user: r.get(0),
                seq: r.get(1),
                payload: r.get(2),
            })
            .collect())
    }
}
