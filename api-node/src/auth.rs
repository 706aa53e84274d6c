//! Who is calling: the bearer token, verified in-process (no round trip)
//! and checked against the in-memory revocation set.

use http::HeaderMap;
use shared::jwt::{bearer_token_bytes, Claims, JwtKeys, TokenError};
use shared::revocation::Revocations;
use uuid::Uuid;

use crate::error::ApiError;

/// An authenticated caller. A bad token is an error, never "anonymous".
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user's id.
    pub id: Uuid,
    /// The token's claims (logout needs `jti` and `exp`).
    pub claims: Claims,
}

impl AuthUser {
    /// Reads and checks `Authorization: Bearer <token>`.
    pub fn from_headers(
        headers: &HeaderMap,
        jwt: &JwtKeys,
        revocations: &Revocations,
    ) -> Result<Self, ApiError> {
        let token = bearer_token_bytes(headers)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized("a bearer token is required"))?;
        let claims = jwt.verify(token).map_err(|err| match err {
            TokenError::Expired => ApiError::Unauthorized("token expired"),
            TokenError::Invalid => ApiError::Unauthorized("invalid token"),
        })?;
        if !revocations.is_loaded() {
            return Err(ApiError::Unavailable("revocations not loaded yet".into()));
        }
        if revocations.is_revoked(&claims.jti) {
            return Err(ApiError::Unauthorized("token revoked"));
        }
        Ok(Self {
            id: claims.sub,
            claims,
        })
    }
}
