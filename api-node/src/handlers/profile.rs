//! The caller's own user.

use http::{Request, StatusCode};
use hyper::body::Incoming;

use super::{authenticate, no_query};
use crate::db::users;
use crate::domain::user_input::ProfileUpdate;
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::{self, Resp};

/// `GET /api/profile` → 200 User.
pub async fn get(state: &AppState, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let caller = authenticate(state, &req)?;
    no_query(&req)?;
    let client = state.pool.get().await?;
    let user = users::get(&client, caller.id)
        .await?
        .ok_or(ApiError::Unauthorized("the token's user no longer exists"))?;
    Ok(web::json(StatusCode::OK, &user))
}

/// `PUT /api/profile` → 200 User.
pub async fn update(state: &AppState, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let caller = authenticate(state, &req)?;
    no_query(&req)?;
    let update =
        ProfileUpdate::parse(web::json_object(req, state.config.body_read_timeout).await?)?;
    let client = state.pool.get().await?;
    let name = update.name.as_ref().map(|n| n.as_str());
    let email = update.email.as_ref().map(|e| e.as_str());
    let user = users::update_profile(&client, caller.id, name, email)
        .await?
        .ok_or(ApiError::Unauthorized("the token's user no longer exists"))?;
    Ok(web::json(StatusCode::OK, &user))
}
