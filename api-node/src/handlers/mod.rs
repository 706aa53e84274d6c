//! Request handlers, one module per resource. Each is short: parse →
//! authorize → do → respond. [`dispatch`] is the only place that maps a
//! route and method to a handler.

mod auth;
mod ops;
mod profile;
mod tasks;

use std::net::SocketAddr;

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
    let method = req.method().clone();
    // Every request's future is moved a few times on its way into hyper,
    // at its full size: the size of the biggest handler's. So only the
    // cached read is awaited in place; the others (a database round trip
    // or a password hash each, where one allocation is nothing) are boxed.
    match (route, method) {
        (Route::Task(id), Method::GET) => tasks::get(state, req, id).await,
        (Route::Register, _) => Box::pin(auth::register(state, req, peer)).await,
        (Route::Login, _) => Box::pin(auth::login(state, req, peer)).await,
        (Route::Logout, _) => Box::pin(auth::logout(state, req)).await,
        (Route::Profile, Method::GET) => Box::pin(profile::get(state, req)).await,
        (Route::Profile, _) => Box::pin(profile::update(state, req)).await,
        (Route::Tasks, Method::GET) => Box::pin(tasks::list(state, req)).await,
        (Route::Tasks, _) => Box::pin(tasks::create(state, req)).await,
        (Route::Task(id), Method::PUT) => Box::pin(tasks::update(state, req, id)).await,
        (Route::Task(id), _) => Box::pin(tasks::delete(state, req, id)).await,
        (Route::Healthz, _) => Ok(ops::healthz()),
        (Route::Readyz, _) => Ok(Box::pin(ops::readyz(state)).await),
        (Route::Metrics, _) => Ok(ops::metrics(state)),
        (Route::OpenApi, _) => Ok(ops::openapi()),
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
