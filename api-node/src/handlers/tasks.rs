//! The caller's tasks.

use futures_util::future::BoxFuture;
use http::{header, Request, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use uuid::Uuid;

use super::{authenticate, no_query};
use crate::cache::{Cached, FillLease, Lookup};
use crate::db::tasks;
use crate::domain::list_query::ListQuery;
use crate::domain::task_input::{NewTask, TaskPatch};
use crate::error::ApiError;
use crate::metrics::count_cache_lookup;
use crate::models::Task;
use crate::state::AppState;
use crate::task_writes;
use crate::web::{self, Resp};

/// The task id the router found in the path, or the contract's 400.
fn task_id(id: Option<Uuid>) -> Result<Uuid, ApiError> {
    id.ok_or_else(|| ApiError::field("id", "must be a UUID"))
}

fn task_response(status: StatusCode, task: &Task) -> Resp {
    web::with_etag(
        web::json_bytes(status, task.to_json()),
        i64::from(task.version),
    )
}

/// `X-Cache: HIT` or `MISS` (a static value: no copy per request).
fn cache_status(mut response: Resp, status: &'static str) -> Resp {
    // A constant: `from_static` called at run time checks the name anew.
    const X_CACHE: header::HeaderName = header::HeaderName::from_static("x-cache");
    response
        .headers_mut()
        .insert(X_CACHE, header::HeaderValue::from_static(status));
    response
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    tasks: Vec<Task>,
    next_cursor: Option<String>,
}

/// `GET /api/tasks` → 200 `{ tasks, nextCursor }`.
pub async fn list(state: &AppState, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let caller = authenticate(state, &req)?;
    let query = ListQuery::parse(&web::query_pairs(&req), &state.cursor_key)?;
    let client = state.pool.get().await?;
    let mut tasks = tasks::list(&client, caller.id, &query).await?;
    let more = tasks.len() as i64 > query.limit;
    tasks.truncate(query.limit as usize);
    let next_cursor = match tasks.last() {
        Some(last) if more => Some(query.cursor_after(last, &state.cursor_key)),
        _ => None,
    };
    Ok(web::json(StatusCode::OK, &Page { tasks, next_cursor }))
}

/// `GET /api/tasks/:id` → 200 Task, from the cache when it can.
pub async fn get(
    state: &AppState,
    req: Request<Incoming>,
    id: Option<Uuid>,
) -> Result<Resp, ApiError> {
    let caller = authenticate(state, &req)?;
    let id = task_id(id)?;
    no_query(&req)?;
    // A write of ours that has not reached Redis may have left an older
    // copy there: read from PostgreSQL (and fill nothing) until it has.
    let lookup = if state.publisher.has_pending() {
        Lookup::Miss(None)
    } else {
        state.cache.lookup(caller.id, id).await
    };
    match lookup {
        Lookup::Hit(cached) => {
            count_cache_lookup(true);
            let response = match cached {
                Cached::Task { version, json } => {
                    web::with_etag(web::json_bytes(StatusCode::OK, json), version)
                }
                // Deleted, or someone else's: the same 404 as a missing task.
                Cached::Deleted | Cached::NotOwned => ApiError::NotFound("task").into_response(),
            };
            Ok(cache_status(response, "HIT"))
        }
        Lookup::Miss(lease) => {
            count_cache_lookup(false);
            let task = read_through(state, caller.id, id, lease).await?;
            let response = task_response(StatusCode::OK, &task);
            Ok(cache_status(response, "MISS"))
        }
    }
}

/// A cache miss: the task from PostgreSQL, cached if `lease` still allows.
/// Boxed, by a function that is not `async` (see `handlers::boxed`): the
/// database read's future would otherwise set the size of every read's.
fn read_through(
    state: &AppState,
    user_id: Uuid,
    id: Uuid,
    lease: Option<FillLease>,
) -> BoxFuture<'_, Result<Task, ApiError>> {
    Box::pin(read_from_postgres(state, user_id, id, lease))
}

async fn read_from_postgres(
    state: &AppState,
    user_id: Uuid,
    id: Uuid,
    lease: Option<FillLease>,
) -> Result<Task, ApiError> {
    let client = state.pool.get().await?;
    let task = tasks::get(&client, user_id, id)
        .await?
        .ok_or(ApiError::NotFound("task"))?;
    if let Some(lease) = lease {
        state.cache.fill(&task, lease);
    }
    Ok(task)
}

/// `POST /api/tasks` → 201 Task with `Location`.
pub async fn create(state: &AppState, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let caller = authenticate(state, &req)?;
    no_query(&req)?;
    let new = NewTask::parse(web::json_object(req, state.config.body_read_timeout).await?)?;
    let task = task_writes::create(&state.pool, &state.publisher, caller.id, new).await?;
    let location = format!("/api/tasks/{}", task.id);
    Ok(web::with_header(
        task_response(StatusCode::CREATED, &task),
        header::LOCATION,
        &location,
    ))
}

/// `PUT /api/tasks/:id` → 200 Task; `If-Match` honoured.
pub async fn update(
    state: &AppState,
    req: Request<Incoming>,
    id: Option<Uuid>,
) -> Result<Resp, ApiError> {
    let caller = authenticate(state, &req)?;
    let id = task_id(id)?;
    no_query(&req)?;
    let precondition = web::if_match(req.headers())?;
    let patch = TaskPatch::parse(web::json_object(req, state.config.body_read_timeout).await?)?;
    let task = task_writes::update(
        &state.pool,
        &state.publisher,
        caller.id,
        id,
        patch,
        precondition,
    )
    .await?;
    Ok(task_response(StatusCode::OK, &task))
}

/// `DELETE /api/tasks/:id` → 204; `If-Match` honoured.
pub async fn delete(
    state: &AppState,
    req: Request<Incoming>,
    id: Option<Uuid>,
) -> Result<Resp, ApiError> {
    let caller = authenticate(state, &req)?;
    let id = task_id(id)?;
    no_query(&req)?;
    let precondition = web::if_match(req.headers())?;
    task_writes::delete(&state.pool, &state.publisher, caller.id, id, precondition).await?;
    Ok(web::no_content())
}
