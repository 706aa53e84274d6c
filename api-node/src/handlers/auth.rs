//! Register, login, logout.

use std::net::SocketAddr;

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use shared::revocation;

use super::{authenticate, no_query};
use crate::client_addr::client_key;
use crate::db::{login_failures, register_attempts, users};
use crate::domain::user_input::{Credentials, Registration};
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::{self, Resp};

/// `POST /api/auth/register` → 201 `{ user, token }`. The attempt is
/// counted against the client address's limit before the password is
/// hashed; one the hash queue refuses (503) is not counted.
pub async fn register(
    state: &AppState,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Resp, ApiError> {
    no_query(&req)?;
    let ip = client_key(peer, req.headers(), &state.config.trusted_proxies);
    let input = Registration::parse(web::json_object(req, state.config.body_read_timeout).await?)?;
    let reservation = {
        // The connection goes back to the pool before the slow hash.
        let mut client = state.pool.get().await?;
        register_attempts::reserve(&mut client, ip, state.config.register_limit).await?
    };
    let hash = match state.passwords.hash(input.password.into_inner()).await {
        Ok(hash) => hash,
        Err(err) => {
            let client = state.pool.get().await?;
            register_attempts::release(&client, reservation).await?;
            return Err(err);
        }
    };
    let client = state.pool.get().await?;
    let user = users::insert(&client, input.email.as_str(), input.name.as_str(), &hash).await?;
    let (token, _) = state.config.jwt.issue(user.id);
    Ok(web::json(
        StatusCode::CREATED,
        &json!({ "user": user, "token": token }),
    ))
}

/// `POST /api/auth/login` → 200 `{ user, token }`. Unknown email and wrong
/// password cost the same hash and give the same 401. The attempt is
/// reserved as a failure before the hash, so concurrent attempts cannot
/// outrun the limits; a success (or a hash the queue refused) releases it.
pub async fn login(
    state: &AppState,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Resp, ApiError> {
    no_query(&req)?;
    let ip = client_key(peer, req.headers(), &state.config.trusted_proxies);
    let input = Credentials::parse(web::json_object(req, state.config.body_read_timeout).await?)?;
    let (limits, email) = (
        (state.config.email_limit, state.config.client_limit),
        input.email.as_str(),
    );
    let (reservation, found) = {
        // The connection goes back to the pool before the slow hash.
        let mut client = state.pool.get().await?;
        let reservation =
            login_failures::reserve(&mut client, email, ip, limits.0, limits.1).await?;
        (reservation, users::find_for_login(&client, email).await?)
    };
    let (user, hash) = found.map_or((None, None), |(user, hash)| (Some(user), Some(hash)));
    let verified = state.passwords.verify(input.password, hash).await;
    match (user, verified) {
        (Some(user), Ok(true)) => {
            let client = state.pool.get().await?;
            login_failures::release(&client, reservation).await?;
            let (token, _) = state.config.jwt.issue(user.id);
            Ok(web::json(
                StatusCode::OK,
                &json!({ "user": user, "token": token }),
            ))
        }
        // The reservation stays: it is the recorded failure.
        (_, Ok(_)) => Err(ApiError::Unauthorized("invalid email or password")),
        // Never evaluated: not a failure.
        (_, Err(err)) => {
            let client = state.pool.get().await?;
            login_failures::release(&client, reservation).await?;
            Err(err)
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
