//! Every task change, as one PostgreSQL transaction that changes the task,
//! advances the owner's event `seq` and records the event in the outbox;
//! then, after commit, one Redis round trip that updates the cache and
//! publishes. The client is answered only after both, so it reads its own
//! write through any node.
//!
//! The transaction's statements are pipelined on the connection where their
//! order allows: BEGIN goes out with the seq update, and COMMIT right behind
//! the outbox insert, so a write costs three round trips to PostgreSQL, not
//! five. The seq update comes first, before the task change: every task
//! write takes the owner's row lock before any task's, so two writes never
//! wait on each other in opposite orders. If any statement fails, the
//! transaction is rolled back before the connection returns to the pool.
//!
//! Each write runs on a task of its own, to its end, whatever happens to the
//! request that asked for it: hyper drops a request's future when its client
//! hangs up, and a write stopped between two awaits would leave its
//! transaction open on a pooled connection, holding the owner's row lock
//! (the user's next writes would wait on it, or commit its half).

use deadpool_postgres::{Client, Pool};
use futures_util::future::BoxFuture;
use shared::events::{event_json, EventKind};
use uuid::Uuid;

use crate::db::task_events::{self, OutboxEvent};
use crate::db::tasks::{self, Outcome};
use crate::db::{users, DbError};
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
    new: NewTask,
) -> Result<Task, ApiError> {
    to_the_end(pool, publisher, move |client| {
        Box::pin(async move {
            let seq = begin_with_seq(client, user_id).await?;
            let task = tasks::insert(client, user_id, &new).await?;
            commit_task(client, seq, EventKind::Created, task).await
        })
    })
    .await
}

/// Updates a task.
pub async fn update(
    pool: &Pool,
    publisher: &Publisher,
    user_id: Uuid,
    id: Uuid,
    patch: TaskPatch,
    precondition: Precondition,
) -> Result<Task, ApiError> {
    to_the_end(pool, publisher, move |client| {
        Box::pin(async move {
            // If the task is not changed after all, the rollback returns the seq.
            let seq = begin_with_seq(client, user_id).await?;
            let version = precondition.version();
            let task = changed(tasks::update(client, user_id, id, &patch, version).await?)?;
            commit_task(client, seq, EventKind::Updated, task).await
        })
    })
    .await
}

/// Deletes a task.
pub async fn delete(
    pool: &Pool,
    publisher: &Publisher,
    user_id: Uuid,
    id: Uuid,
    precondition: Precondition,
) -> Result<(), ApiError> {
    to_the_end(pool, publisher, move |client| {
        Box::pin(async move {
            let seq = begin_with_seq(client, user_id).await?;
            let version = precondition.version();
            let deleted_at = changed(tasks::delete(client, user_id, id, version).await?)?;
            let task_json = format!(r#"{{"id":"{id}"}}"#);
            let event = record_and_commit(
                client,
                user_id,
                seq,
                (EventKind::Deleted, id, None),
                deleted_at.timestamp_millis(),
                &task_json,
            )
            .await?;
            Ok(((), event))
        })
    })
    .await
}

/// What a write's transaction yields: its result and the event it committed.
type Written<T> = Result<(T, OutboxEvent), ApiError>;

/// Runs one write on a task of its own and waits for it: the transaction
/// (`statements`, rolled back if they fail), then the publish of its event.
/// If the caller is dropped meanwhile, the write still ends as one unit.
async fn to_the_end<T: Send + 'static>(
    pool: &Pool,
    publisher: &Publisher,
    statements: impl for<'c> FnOnce(&'c Client) -> BoxFuture<'c, Written<T>> + Send + 'static,
) -> Result<T, ApiError> {
    let (pool, publisher) = (pool.clone(), publisher.clone());
    let write = async move {
        let client = pool.get().await?;
        let written = statements(&client).await;
        let (value, event) = or_rollback(&client, written).await?;
        publisher.publish(&[event]).await;
        Ok(value)
    };
    match tokio::spawn(write).await {
        Ok(result) => result,
        // A panic in the write is the request's panic, as if run inline.
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        // Cancelled: only when the runtime itself is shutting down.
        Err(_) => Err(ApiError::Unavailable(
            "the node is shutting down".to_owned(),
        )),
    }
}

/// The change, or the contract's error for why nothing changed.
fn changed<T>(outcome: Outcome<T>) -> Result<T, ApiError> {
    match outcome {
        Outcome::Done(value) => Ok(value),
        Outcome::NotFound => Err(ApiError::NotFound("task")),
        Outcome::VersionMismatch => Err(ApiError::VersionMismatch),
    }
}

/// BEGIN and the owner's next seq, in one round trip. Holds the owner's
/// row lock until the transaction ends: seq order is commit order.
async fn begin_with_seq(client: &Client, user_id: Uuid) -> Result<i64, ApiError> {
    let (_, seq) = tokio::try_join!(
        async { Ok::<_, DbError>(client.batch_execute("BEGIN").await?) },
        users::next_event_seq(client, user_id)
    )?;
    Ok(seq)
}

/// Records the change that made `task` as its owner's event `seq`, and
/// commits.
async fn commit_task(
    client: &Client,
    seq: i64,
    kind: EventKind,
    task: Task,
) -> Result<(Task, OutboxEvent), ApiError> {
    let event = record_and_commit(
        client,
        task.user_id,
        seq,
        (kind, task.id, Some(task.version.into())),
        task.updated_at.timestamp_millis(),
        &task.to_json(),
    )
    .await?;
    Ok((task, event))
}

/// Writes the event to the outbox and commits, in one round trip.
async fn record_and_commit(
    client: &Client,
    user_id: Uuid,
    seq: i64,
    (kind, task_id, version): (EventKind, Uuid, Option<i64>),
    timestamp_ms: i64,
    task_json: &str,
) -> Result<OutboxEvent, ApiError> {
    let event = OutboxEvent {
        user_id,
        seq,
        kind,
        task_id,
        version,
        payload: event_json(kind, seq, timestamp_ms, task_json),
    };
    tokio::try_join!(task_events::insert(client, &event), async {
        Ok::<_, DbError>(client.batch_execute("COMMIT").await?)
    })?;
    Ok(event)
}

/// Rolls the transaction back when the write failed, so the connection
/// goes back to the pool idle. (A broken connection fails the rollback too,
/// and the pool discards it.)
async fn or_rollback<T>(client: &Client, written: Result<T, ApiError>) -> Result<T, ApiError> {
    if written.is_err() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    written
}
