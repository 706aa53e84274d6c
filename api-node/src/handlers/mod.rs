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
    match (route, method) {
        (Route::Register, _) => auth::register(state, req, peer).await,
        (Route::Login, _) => auth::login(state, req, peer).await,
        (Route::Logout, _) => auth::logout(state, req).await,
        (Route::Profile, Method::GET) => profile::get(state, req).await,
        (Route::Profile, _) => profile::update(state, req).await,
        (Route::Tasks, Method::GET) => tasks::list(state, req).await,
        (Route::Tasks, _) => tasks::create(state, req).await,
        (Route::Task(id), Method::GET) => tasks::get(state, req, &id).await,
        (Route::Task(id), Method::PUT) => tasks::update(state, req, &id).await,
        (Route::Task(id), _) => tasks::delete(state, req, &id).await,
        (Route::Healthz, _) => Ok(ops::healthz()),
        (Route::Readyz, _) => Ok(ops::readyz(state).await),
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
