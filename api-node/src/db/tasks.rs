//! SQL on `tasks`. Every query is scoped by `user_id`: a task of someone
//! else is indistinguishable from one that does not exist.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::DbError;
use crate::domain::list_query::{ListQuery, Sort};
use crate::domain::task_input::{NewTask, TaskPatch};
use crate::models::{Task, TASK_COLUMNS};

/// What a conditional write found.
#[derive(Debug)]
pub enum Outcome<T> {
    /// Done.
    Done(T),
    /// No such task of this user.
    NotFound,
    /// The task exists but is at another version than `If-Match` named.
    VersionMismatch,
}

/// Inserts a task.
pub async fn insert(
    client: &impl GenericClient,
    user_id: Uuid,
    new: &NewTask,
) -> Result<Task, DbError> {
    let sql = format!(
        "INSERT INTO tasks (user_id, title, description, status, priority)
         VALUES ($1, $2, $3, $4, $5) RETURNING {TASK_COLUMNS}"
    );
    let row = client
        .query_one(
            &client.prepare_cached(&sql).await?,
            &[
                &user_id,
                &new.title.as_str(),
                &new.description,
                &new.status.as_str(),
                &new.priority.get(),
            ],
        )
        .await?;
    Ok(Task::from_row(&row))
}

/// One task of this user.
pub async fn get(
    client: &impl GenericClient,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<Task>, DbError> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1 AND user_id = $2");
    Ok(client
        .query_opt(&client.prepare_cached(&sql).await?, &[&id, &user_id])
        .await?
        .as_ref()
        .map(Task::from_row))
}

/// Tells a missing task from one at another version, after a conditional
/// write changed nothing.
async fn why_unchanged<T>(
    client: &impl GenericClient,
    user_id: Uuid,
    id: Uuid,
) -> Result<Outcome<T>, DbError> {
    let exists = client
        .query_opt(
            &client
                .prepare_cached("SELECT 1 FROM tasks WHERE id = $1 AND user_id = $2")
                .await?,
            &[&id, &user_id],
        )
        .await?
        .is_some();
    Ok(if exists {
        Outcome::VersionMismatch
    } else {
        Outcome::NotFound
    })
}

/// Applies a patch if the task is at `version` (any version when None);
/// bumps the version.
pub async fn update(
    client: &impl GenericClient,
    user_id: Uuid,
    id: Uuid,
    patch: &TaskPatch,
    version: Option<i32>,
) -> Result<Outcome<Task>, DbError> {
    let sql = format!(
        "UPDATE tasks SET
             title = COALESCE($3, title),
             description = CASE WHEN $4 THEN $5 ELSE description END,
             status = COALESCE($6, status),
             priority = COALESCE($7, priority),
             version = version + 1,
             updated_at = now()
         WHERE id = $1 AND user_id = $2 AND ($8::integer IS NULL OR version = $8)
         RETURNING {TASK_COLUMNS}"
    );
    let title = patch.title.as_ref().map(|t| t.as_str());
    let set_description = patch.description.is_some();
    let description = patch.description.clone().flatten();
    let status = patch.status.map(|s| s.as_str());
    let priority = patch.priority.map(|p| p.get());
    let row = client
        .query_opt(
            &client.prepare_cached(&sql).await?,
            &[
                &id,
                &user_id,
                &title,
                &set_description,
                &description,
                &status,
                &priority,
                &version,
            ],
        )
        .await?;
    match row {
        Some(row) => Ok(Outcome::Done(Task::from_row(&row))),
        None => why_unchanged(client, user_id, id).await,
    }
}

/// Deletes a task if it is at `version` (any version when None); gives the
/// deletion time.
pub async fn delete(
    client: &impl GenericClient,
    user_id: Uuid,
    id: Uuid,
    version: Option<i32>,
) -> Result<Outcome<DateTime<Utc>>, DbError> {
    let row = client
        .query_opt(
            &client.prepare_cached("DELETE FROM tasks WHERE id = $1 AND user_id = $2 AND ($3::integer IS NULL OR version = $3)
             RETURNING now()").await?,
            &[&id, &user_id, &version],
        )
        .await?;
    match row {
        Some(row) => Ok(Outcome::Done(row.get(0))),
        None => why_unchanged(client, user_id, id).await,
    }
}

/// One page of the user's tasks: up to `limit + 1` rows, so the caller can
/// tell whether another page follows. Keyset pagination: the page starts
/// strictly after the cursor's sort key, so concurrent inserts never shift
/// it.
pub async fn list(
    client: &impl GenericClient,
    user_id: Uuid,
    query: &ListQuery,
) -> Result<Vec<Task>, DbError> {
    let mut sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE user_id = $1");
    let status = query.status.map(|s| s.as_str());
    let limit = query.limit + 1;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&user_id];
    if let Some(status) = &status {
        params.push(status);
        sql += &format!(" AND status = ${}", params.len());
    }
    if let Some(priority) = &query.priority {
        params.push(priority);
        sql += &format!(" AND priority = ${}", params.len());
    }
    let key = if query.sort.by_priority() {
        "(priority, created_at, id)"
    } else {
        "(created_at, id)"
    };
    let direction = if query.sort.descending() {
        "DESC"
    } else {
        "ASC"
    };
    if let Some(after) = &query.after {
        let op = if query.sort.descending() { "<" } else { ">" };
        let n = params.len();
        if query.sort.by_priority() {
            params.extend([
                &after.priority as &(dyn ToSql + Sync),
                &after.created_at,
                &after.id,
            ]);
            sql += &format!(" AND {key} {op} (${}, ${}, ${})", n + 1, n + 2, n + 3);
        } else {
            params.extend([&after.created_at as &(dyn ToSql + Sync), &after.id]);
            sql += &format!(" AND {key} {op} (${}, ${})", n + 1, n + 2);
        }
    }
    let order = match query.sort {
        Sort::CreatedDesc | Sort::CreatedAsc => format!("created_at {direction}, id {direction}"),
        Sort::PriorityDesc | Sort::PriorityAsc => {
            format!("priority {direction}, created_at {direction}, id {direction}")
        }
    };
    params.push(&limit);
    sql += &format!(" ORDER BY {order} LIMIT ${}", params.len());
    let rows = client
        .query(&client.prepare_cached(&sql).await?, &params)
        .await?;
    Ok(rows.iter().map(Task::from_row).collect())
}
