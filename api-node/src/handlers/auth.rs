//! Register, login, logout.

use std::net::SocketAddr;

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use shared::revocation;

use super::{authenticate, no_query};
use crate::client_addr::client_ip;
use crate::db::{login_failures, users};
use crate::domain::user_input::{Credentials, Registration};
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::{self, Resp};

/// `POST /api/auth/register` → 201 `{ user, token }`.
pub async fn register(state: &AppState, req: Request<Incoming>) -> Result<Resp, ApiError> {
    no_query(&req)?;
    let input = Registration::parse(web::json_object(req).await?)?;
    let hash = state.passwords.hash(input.password.into_inner()).await?;
    let client = state.pool.get().await?;
    let user = users::insert(&client, input.email.as_str(), input.name.as_str(), &hash).await?;
    let (token, _) = state.config.jwt.issue(user.id);
    Ok(web::json(
        StatusCode::CREATED,
        &json!({ "user": user, "token": token }),
    ))
}

/// `POST /api/auth/login` → 200 `{ user, token }`. Unknown email and wrong
/// password cost the same hash and give the same 401.
pub async fn login(
    state: &AppState,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Resp, ApiError> {
    no_query(&req)?;
    let ip = client_ip(peer, req.headers(), &state.config.trusted_proxies);
    let input = Credentials::parse(web::json_object(req).await?)?;
    let (limits, email) = (
        (state.config.email_limit, state.config.client_limit),
        input.email.as_str(),
    );
    let found = {
        // The connection goes back to the pool before the slow hash.
        let client = state.pool.get().await?;
        if let Some(secs) =
            login_failures::blocked_for(&client, email, ip, limits.0, limits.1).await?
        {
            return Err(ApiError::RateLimited(secs));
        }
        users::find_for_login(&client, email).await?
    };
    let (user, hash) = found.map_or((None, None), |(user, hash)| (Some(user), Some(hash)));
    let matches = state.passwords.verify(input.password, hash).await?;
    match user {
        Some(user) if matches => {
            let (token, _) = state.config.jwt.issue(user.id);
            Ok(web::json(
                StatusCode::OK,
                &json!({ "user": user, "token": token }),
            ))
        }
        _ => {
            let client = state.pool.get().await?;
            login_failures::record(&client, email, ip).await?;
            Err(ApiError::Unauthorized("invalid email or password"))
        }
    }
}

/// `POST /api/auth/logout` → 204. Durable in PostgreSQL first, then in this
/// node's memory, then announced to the others through Redis (best effort:
/// their PostgreSQL poll catches up within a second either way).
pub async fn logout(state: &AppState, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let user = authenticate(state, &req)?;
    no_query(&req)?;
    let (jti, exp) = (user.claims.jti, user.claims.exp);
    let client = state.pool.get().await?;
    revocation::record(&client, jti, user.id, exp).await?;
    state.revocations.insert(jti, exp);
    let announce = redis::cmd("PUBLISH")
        .arg(state.keys.revocations_channel())
        .arg(revocation::announcement(jti, exp))
        .to_owned();
    if let Err(err) = state.redis.cmd::<()>(&announce).await {
        tracing::warn!(error = %err, "announcing a logout failed; nodes will see it by polling");
    }
    Ok(web::no_content())
}
