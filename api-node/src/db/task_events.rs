//! SQL on `task_events`, the outbox.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use crate::error::ApiError;

/// One committed event.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// The task's owner.
    pub user_id: Uuid,
    /// The owner's sequence number.
    pub seq: i64,
    /// The event JSON, exactly as it is published.
    pub payload: String,
}

/// Records an event in the writing transaction.
pub async fn insert(client: &impl GenericClient, event: &OutboxEvent) -> Result<(), ApiError> {
    client
        .execute(
            &client
                .prepare_cached(
                    "INSERT INTO task_events (user_id, seq, payload) VALUES ($1, $2, $3)",
                )
                .await?,
            &[&event.user_id, &event.seq, &event.payload],
        )
        .await?;
    Ok(())
}

/// Marks events as being on Redis, in one statement for a whole batch.
pub async fn mark_published(
    client: &impl GenericClient,
    events: &[(Uuid, i64)],
) -> Result<(), ApiError> {
    let (users, seqs): (Vec<Uuid>, Vec<i64>) = events.iter().copied().unzip();
    client
        .execute(
            &client
                .prepare_cached(
                    "UPDATE task_events SET published_at = now()
             WHERE (user_id, seq) IN (SELECT * FROM unnest($1::uuid[], $2::bigint[]))
               AND published_at IS NULL",
                )
                .await?,
            &[&users, &seqs],
        )
        .await?;
    Ok(())
}

/// Locks up to `limit` events committed more than `grace` ago and still
/// unpublished, oldest first. Rows another relay holds are skipped, so
/// several relays share the work instead of queueing on each other.
pub async fn claim_unpublished(
    client: &impl GenericClient,
    grace: Duration,
    limit: i64,
) -> Result<Vec<OutboxEvent>, ApiError> {
    let rows = client
        .query(
            &client
                .prepare_cached(
                    "SELECT user_id, seq, payload FROM task_events
             WHERE published_at IS NULL AND created_at < now() - make_interval(secs => $1)
             ORDER BY created_at, user_id, seq
             LIMIT $2
             FOR UPDATE SKIP LOCKED",
                )
                .await?,
            &[&grace.as_secs_f64(), &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| OutboxEvent {
            user_id: row.get(0),
            seq: row.get(1),
            payload: row.get(2),
        })
        .collect())
}

/// Seconds since the oldest unpublished event was committed (0 when every
/// event is on Redis): the relay's backlog. The partial index on
/// unpublished rows makes it one index probe.
pub async fn oldest_unpublished_age(client: &impl GenericClient) -> Result<f64, ApiError> {
    let row = client
        .query_one(
            &client
                .prepare_cached(
                    "SELECT COALESCE(extract(epoch FROM now() - min(created_at)), 0)::float8
             FROM task_events WHERE published_at IS NULL",
                )
                .await?,
            &[],
        )
        .await?;
    Ok(row.get::<_, f64>(0).max(0.0))
}

/// Deletes published events older than `keep` beyond the newest 1,000 of
/// each user: the recent-event store's guarantee, with room to spare.
pub async fn prune(client: &impl GenericClient, keep: Duration) -> Result<u64, ApiError> {
    Ok(client
        .execute(
            &client
                .prepare_cached(
                    "DELETE FROM task_events e USING users u
             WHERE e.user_id = u.id AND e.published_at IS NOT NULL
               AND e.created_at < now() - make_interval(secs => $1)
               AND e.seq <= u.event_seq - 1000",
                )
                .await?,
            &[&keep.as_secs_f64()],
        )
        .await?)
}
