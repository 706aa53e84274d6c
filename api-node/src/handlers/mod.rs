//! Request handlers, one module per resource. Each is short: parse →
//! authorize → do → respond. [`dispatch`] is the only place that maps a
//! route and method to a handler.

mod auth;
mod ops;
mod profile;
mod tasks;

use std::net::SocketAddr;

use futures_util::future::BoxFuture;
use http::{Method, Request};
use hyper::body::Incoming;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::router::Route;
use crate::state::AppState;
use crate::web::Resp;

/// Runs the handler for `route`, after the route checks (404, 405).
pub async fn dispatch(
    state: &AppState,
    route: Option<Route>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Resp, ApiError> {
    let route = route.ok_or(ApiError::NotFound("route"))?;
    if !route.allows(req.method()) {
        return Err(ApiError::MethodNotAllowed(route.allow()));
    }
    // Every request's future is moved on its way into hyper, at its full
    // size: the size of the biggest handler's. So only the cached read is
    // awaited in place; the others (a database round trip or a password
    // hash each, where one allocation is nothing) are boxed.
    match (route, req.method()) {
        (Route::Task(id), &Method::GET) => tasks::get(state, req, id).await,
        _ => boxed(state, route, req, peer).await,
    }
}

/// Every handler but the cached read's, boxed. Not `async`: a future built
/// in an `async fn` and then boxed still takes its room in the caller's
/// state, so boxing there saves nothing.
fn boxed<'a>(
    state: &'a AppState,
    route: Route,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> BoxFuture<'a, Result<Resp, ApiError>> {
    let method = req.method().clone();
    match (route, method) {
        (Route::Register, _) => Box::pin(auth::register(state, req, peer)),
        (Route::Login, _) => Box::pin(auth::login(state, req, peer)),
        (Route::Logout, _) => Box::pin(auth::logout(state, req)),
        (Route::Profile, Method::GET) => Box::pin(profile::get(state, req)),
        (Route::Profile, _) => Box::pin(profile::update(state, req)),
        (Route::Tasks, Method::GET) => Box::pin(tasks::list(state, req)),
        (Route::Tasks, _) => Box::pin(tasks::create(state, req)),
        // `dispatch` awaits this one in place; here it keeps the match total.
        (Route::Task(id), Method::GET) => Box::pin(tasks::get(state, req, id)),
        (Route::Task(id), Method::PUT) => Box::pin(tasks::update(state, req, id)),
        (Route::Task(id), _) => Box::pin(tasks::delete(state, req, id)),
        (Route::Healthz, _) => Box::pin(async { Ok(ops::healthz()) }),
        (Route::Readyz, _) => Box::pin(async { Ok(ops::readyz(state).await) }),
        (Route::Metrics, _) => Box::pin(async { Ok(ops::metrics(state)) }),
        (Route::OpenApi, _) => Box::pin(async { Ok(ops::openapi()) }),
    }
}

/// The caller. Handlers call it before reading anything else of the
/// request: the contract checks authentication before the contents.
fn authenticate(state: &AppState, req: &Request<Incoming>) -> Result<AuthUser, ApiError> {
    AuthUser::from_headers(req.headers(), &state.config.jwt, &state.revocations)
}

/// Unknown query parameters are a validation error.
fn no_query(req: &Request<Incoming>) -> Result<(), ApiError> {
    let pairs = crate::web::query_pairs(req);
    if pairs.is_empty() {
        return Ok(());
    }
    Err(ApiError::Validation(
        pairs
            .into_iter()
            .map(|(name, _)| shared::error_body::FieldError::new(name, "is not allowed"))
            .collect(),
    ))
}
