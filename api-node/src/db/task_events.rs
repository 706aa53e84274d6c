//! SQL on `task_events`, the outbox.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use shared::events::{EventKind, EventView};
use uuid::Uuid;

use super::DbError;

/// One committed event.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// The task's owner.
    pub user_id: Uuid,
    /// The owner's sequence number.
    pub seq: i64,
    /// What happened to the task.
    pub kind: EventKind,
    /// The task.
    pub task_id: Uuid,
    /// The task's version after the change; `None` for a deletion.
    pub version: Option<i64>,
    /// The event JSON, exactly as it is published.
    pub payload: String,
}

impl OutboxEvent {
    /// An event of a row written before the outbox named its change (or by
    /// a node not yet upgraded): the change read from the payload. `None`
    /// if the payload is not an event, which only a bug could store.
    fn from_payload(user_id: Uuid, seq: i64, payload: String) -> Option<Self> {
        let view = EventView::parse(&payload).ok()?;
        let (kind, key) = (EventKind::from_wire(view.kind)?, view.task_key().ok()?);
        Some(Self {
            user_id,
            seq,
            kind,
            task_id: key.id,
            version: key.version,
            payload,
        })
    }
}

/// Records an event in the writing transaction.
pub async fn insert(client: &impl GenericClient, event: &OutboxEvent) -> Result<(), DbError> {
    client
        .execute(
            &client
                .prepare_cached(
                    "INSERT INTO task_events (user_id, seq, kind, task_id, version, payload)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .await?,
            &[
                &event.user_id,
                &event.seq,
                &event.kind.as_str(),
                &event.task_id,
                &event.version,
                &event.payload,
            ],
        )
        .await?;
    Ok(())
}

/// Marks events as being on Redis, in one statement for a whole batch.
pub async fn mark_published(
    client: &impl GenericClient,
    events: &[(Uuid, i64)],
) -> Result<(), DbError> {
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
) -> Result<Vec<OutboxEvent>, DbError> {
    let rows = client
        .query(
            &client
                .prepare_cached(
                    "SELECT user_id, seq, payload, kind, task_id, version FROM task_events
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
        .into_iter()
        .filter_map(|row| {
            let (user_id, seq, payload) = (row.get(0), row.get(1), row.get(2));
            let named = row.get::<_, Option<&str>>(3).and_then(EventKind::from_wire);
            let event = match (named, row.get(4)) {
                (Some(kind), Some(task_id)) => Some(OutboxEvent {
                    user_id,
                    seq,
                    kind,
                    task_id,
                    version: row.get(5),
                    payload,
                }),
                _ => OutboxEvent::from_payload(user_id, seq, payload),
            };
            if event.is_none() {
                tracing::error!(%user_id, seq, "BUG: unreadable event in the outbox; not relayed");
            }
            event
        })
        .collect())
}

/// Seconds since the oldest unpublished event was committed (0 when every
/// event is on Redis): the relay's backlog. The partial index on
/// unpublished rows makes it one index probe.
pub async fn oldest_unpublished_age(client: &impl GenericClient) -> Result<f64, DbError> {
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
pub async fn prune(client: &impl GenericClient, keep: Duration) -> Result<u64, DbError> {
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
