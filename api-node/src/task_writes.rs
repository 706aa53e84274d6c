//! Every task change, as one PostgreSQL transaction that changes the task,
//! advances the owner's event `seq` and records the event in the outbox;
//! then, after commit, one Redis round trip that updates the cache and
//! publishes. The client is answered only after both, so it reads its own
//! write through any node.

use deadpool_postgres::{Pool, Transaction};
use shared::events::{event_json, EventKind};
use uuid::Uuid;

use crate::db::task_events::{self, OutboxEvent};
use crate::db::tasks::{self, Outcome};
use crate::db::users;
use crate::domain::task_input::{NewTask, TaskPatch};
use crate::error::ApiError;
use crate::models::Task;
use crate::publisher::Publisher;
use crate::web::Precondition;

/// Creates a task.
pub async fn create(
    pool: &Pool,
    publisher: &Publisher,
    user_id: Uuid,
    new: &NewTask,
) -> Result<Task, ApiError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let task = tasks::insert(&tx, user_id, new).await?;
    let event = record(
        &tx,
        user_id,
        EventKind::Created,
        task.updated_at.timestamp_millis(),
        &task.to_json(),
    )
    .await?;
    tx.commit().await?;
    publisher.publish(&[event]).await;
    Ok(task)
}

/// Updates a task.
pub async fn update(
    pool: &Pool,
    publisher: &Publisher,
    user_id: Uuid,
    id: Uuid,
    patch: &TaskPatch,
    precondition: Precondition,
) -> Result<Task, ApiError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let task = match tasks::update(&tx, user_id, id, patch, precondition).await? {
        Outcome::Done(task) => task,
        Outcome::NotFound => return Err(ApiError::NotFound("task")),
        Outcome::VersionMismatch => return Err(ApiError::VersionMismatch),
    };
    let event = record(
        &tx,
        user_id,
        EventKind::Updated,
        task.updated_at.timestamp_millis(),
        &task.to_json(),
    )
    .await?;
    tx.commit().await?;
    publisher.publish(&[event]).await;
    Ok(task)
}

/// Deletes a task.
pub async fn delete(
    pool: &Pool,
    publisher: &Publisher,
    user_id: Uuid,
    id: Uuid,
    precondition: Precondition,
) -> Result<(), ApiError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let deleted_at = match tasks::delete(&tx, user_id, id, precondition).await? {
        Outcome::Done(at) => at,
        Outcome::NotFound => return Err(ApiError::NotFound("task")),
        Outcome::VersionMismatch => return Err(ApiError::VersionMismatch),
    };
    let task_json = format!(r#"{{"id":"{id}"}}"#);
    let event = record(
        &tx,
        user_id,
        EventKind::Deleted,
        deleted_at.timestamp_millis(),
        &task_json,
    )
    .await?;
    tx.commit().await?;
    publisher.publish(&[event]).await;
    Ok(())
}

/// Takes the next seq (locking the owner's row until commit) and writes the
/// event to the outbox.
async fn record(
    tx: &Transaction<'_>,
    user_id: Uuid,
    kind: EventKind,
    timestamp_ms: i64,
    task_json: &str,
) -> Result<OutboxEvent, ApiError> {
    let seq = users::next_event_seq(tx, user_id).await?;
    let event = OutboxEvent {
        user_id,
        seq,
        payload: event_json(kind, seq, timestamp_ms, task_json),
    };
    task_events::insert(tx, &event).await?;
    Ok(event)
}
