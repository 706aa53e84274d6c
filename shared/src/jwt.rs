//! Access tokens: HMAC-signed JWTs with the algorithm pinned by
//! configuration. A token signed with any other algorithm, `none` included,
//! is refused, and expiry has no leeway: the contract says expired is 401.
//!
//! Verified tokens are remembered (by their exact bytes, with their claims)
//! so that a client's next request skips the base64, JSON and HMAC work;
//! expiry is still checked on every use, and revocation is the caller's
//! check, made every time.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use chrono::Utc;
use dashmap::DashMap;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::settings::{self, Secret};

/// The claims every token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The token's own id, the handle by which it is revoked.
    pub jti: Uuid,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

/// The token of an `Authorization: Bearer <token>` header, trimmed (empty
/// when the header names no token); None when there is no such header.
/// Both node kinds read it here.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    bearer_token_bytes(headers).and_then(|t| std::str::from_utf8(t).ok())
}

/// [`bearer_token`] as bytes, not yet checked to be text: a token that
/// verified before is found by [`JwtKeys::verify`] by its bytes, with no
/// pass over them to check they are text first.
pub fn bearer_token_bytes(headers: &http::HeaderMap) -> Option<&[u8]> {
    let value = headers.get(http::header::AUTHORIZATION)?.as_bytes();
    let token = value
        .strip_prefix(b"Bearer ")
        .or_else(|| value.strip_prefix(b"bearer "))?;
    Some(token.trim_ascii())
}

/// Why a token was refused; every variant is a 401 to the client.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Expired.
    #[error("token expired")]
    Expired,
    /// Malformed, wrongly signed, of another algorithm, or missing claims.
    #[error("invalid token")]
    Invalid,
}

/// JWT settings: `JWT_SECRET` (required, at least 32 bytes, neither a
/// shipped placeholder nor guessable: see [`crate::weak_secret`]),
/// `JWT_ALGORITHM` (`HS256` default, `HS384`, `HS512`), `JWT_TTL_SECS`
/// (3600 default).
#[derive(Clone)]
pub struct JwtKeys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: i64,
    /// Kept to derive the keys of other purposes ([`JwtKeys::derive_key`]).
    secret: Secret,
    /// Tokens that verified, shared by every clone of these keys.
    verified: Arc<DashMap<Box<[u8]>, Claims, TokenHasher>>,
}

/// Hashes a token by its last [`HASHED_TAIL`] bytes, part of its
/// signature, with a fast hash seeded at random per map: a whole ~200-byte
/// token went through the hash on every request. Only tokens this node's
/// secret signed get in, and their signatures differ, so a client can
/// neither choose colliding keys nor make two stored tokens share a tail.
#[derive(Clone, Default)]
struct TokenHasher(foldhash::quality::RandomState);

/// Bytes of a token's end that are hashed: 24 of the 43 characters of
/// an HS256 signature (144 bits).
const HASHED_TAIL: usize = 24;

impl BuildHasher for TokenHasher {
    type Hasher = TailHasher;

    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

/// See [`TokenHasher`].
struct TailHasher(<foldhash::quality::RandomState as BuildHasher>::Hasher);

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0
            .write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
    }

    fn write_usize(&mut self, n: usize) {
        self.0.write_usize(n);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// Verified tokens remembered at most (each ~300 bytes: ~5 MB). Only tokens
/// with a valid signature get in, so filling it takes tokens this node's
/// own secret signed; when full it starts afresh.
const VERIFIED_CAPACITY: usize = 16_384;

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("algorithm", &self.algorithm)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// Reads the JWT settings from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let secret = Secret::new(settings::required("JWT_SECRET")?);
        let algorithm = settings::string_or("JWT_ALGORITHM", "HS256");
        let ttl_secs = settings::parsed_or("JWT_TTL_SECS", 3600_i64)?;
        Self::new(&secret, &algorithm, ttl_secs)
    }

    /// Keys for `secret`, pinned to `algorithm` (an HMAC one).
    pub fn new(secret: &Secret, algorithm: &str, ttl_secs: i64) -> anyhow::Result<Self> {
        crate::weak_secret::check("JWT_SECRET", secret.expose())?;
        if ttl_secs <= 0 {
            anyhow::bail!("JWT_TTL_SECS must be positive");
        }
        let algorithm = match algorithm {
            "HS256" => Algorithm::HS256,
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            other => anyhow::bail!("JWT_ALGORITHM={other:?}: use HS256, HS384 or HS512"),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let bytes = secret.expose().as_bytes();
        Ok(Self {
            algorithm,
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            ttl_secs,
            secret: secret.clone(),
            verified: Arc::default(),
        })
    }

    /// A 32-byte key for `purpose`, derived from the secret (HMAC-SHA256 of
    /// the purpose under it): one secret to manage, and neither the secret
    /// nor another purpose's key can be worked out from a derived key.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose().as_bytes())
            .expect("BUG: HMAC takes keys of any length");
        mac.update(b"tasks key derivation v1: ");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A fresh token for `user_id`, with its claims.
    pub fn issue(&self, user_id: Uuid) -> (String, Claims) {
        let iat = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            jti: Uuid::new_v4(),
            iat,
            exp: iat + self.ttl_secs,
        };
        (self.sign(&claims), claims)
    }

    /// Signs arbitrary claims (tests use it for expired tokens).
    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, &self.encoding)
            .expect("BUG: HMAC signing cannot fail")
    }

    /// Verifies signature, algorithm and expiry, and returns the claims.
    pub fn verify(&self, token: impl AsRef<[u8]>) -> Result<Claims, TokenError> {
        let token = token.as_ref();
        if let Some(claims) = self.verified.get(token).map(|c| c.clone()) {
            // jsonwebtoken's rule with no leeway: expired once exp < now.
            if claims.exp < unix_now() {
                self.verified.remove(token);
                return Err(TokenError::Expired);
            }
            return Ok(claims);
        }
        let text = std::str::from_utf8(token).map_err(|_| TokenError::Invalid)?;
        match jsonwebtoken::decode::<Claims>(text, &self.decoding, &self.validation) {
            Ok(data) => {
                if self.verified.len() >= VERIFIED_CAPACITY {
                    self.verified.clear();
                }
                self.verified.insert(token.into(), data.claims.clone());
                Ok(data.claims)
            }
            Err(err)
                if matches!(
                    err.kind(),
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature
                ) =>
            {
                Err(TokenError::Expired)
            }
            Err(_) => Err(TokenError::Invalid),
        }
    }
}

/// Seconds since the epoch, read on every cached token's check: the
/// system clock alone, without chrono's calendar conversion.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "3c9d1e7a5b2f8064a1d9c3e7b5f20486";
    const OTHER_SECRET: &str = "e0b8a46f2c1d9357b6a0f4e8c2d1b973";

    fn keys(alg: &str) -> JwtKeys {
        JwtKeys::new(&Secret::new(SECRET.into()), alg, 3600).unwrap()
    }

    #[test]
    fn issued_tokens_verify_with_their_claims() {
        let keys = keys("HS256");
        let user = Uuid::new_v4();
        let (token, claims) = keys.issue(user);
        let verified = keys.verify(&token).unwrap();
        assert_eq!(verified, claims);
        assert_eq!(verified.sub, user);
        assert_eq!(verified.exp - verified.iat, 3600);
    }

    #[test]
    fn refuses_other_algorithms_including_none() {
        let (token, _) = keys("HS512").issue(Uuid::new_v4());
        assert!(matches!(
            keys("HS256").verify(&token),
            Err(TokenError::Invalid)
        ));

        // Same header and claims, alg "none", no signature.
        let (token, _) = keys("HS256").issue(Uuid::new_v4());
        let mut parts = token.split('.');
        let _header = parts.next().unwrap();
        let payload = parts.next().unwrap();
        let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
        let forged = format!("{none_header}.{payload}.");
        assert!(matches!(
            keys("HS256").verify(&forged),
            Err(TokenError::Invalid)
        ));
    }

    #[test]
    fn refuses_wrong_secret_tampering_and_expiry() {
        let keys = keys("HS256");
        let other = JwtKeys::new(&Secret::new(OTHER_SECRET.into()), "HS256", 3600).unwrap();
        let (token, mut claims) = other.issue(Uuid::new_v4());
        assert!(matches!(keys.verify(&token), Err(TokenError::Invalid)));
        assert!(matches!(
            keys.verify("not.a.token"),
            Err(TokenError::Invalid)
        ));
        assert!(matches!(
            keys.verify(b"\xff\xfe.not.text"),
            Err(TokenError::Invalid)
        ));

        claims.exp = Utc::now().timestamp() - 1;
        let expired = keys.sign(&claims);
        assert!(matches!(keys.verify(&expired), Err(TokenError::Expired)));
    }

    #[test]
    fn remembered_tokens_still_expire_and_only_the_exact_bytes_are_remembered() {
        let keys = keys("HS256");
        let (token, claims) = keys.issue(Uuid::new_v4());
        assert_eq!(keys.verify(&token).unwrap(), claims);
        assert_eq!(keys.verify(&token).unwrap(), claims, "from memory");
        // Tampering with a remembered token's signature: verified afresh.
        let mut tampered = token.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(matches!(keys.verify(&tampered), Err(TokenError::Invalid)));
        // Tampering with its claims, keeping its signature (the part that
        // is hashed): the same slot, but not the same bytes.
        let dot = token.find('.').unwrap() + 5;
        let mut tampered = token.clone().into_bytes();
        tampered[dot] = if tampered[dot] == b'A' { b'B' } else { b'A' };
        assert!(matches!(keys.verify(&tampered), Err(TokenError::Invalid)));
        // Time passes past the remembered token's expiry.
        keys.verified.get_mut(token.as_bytes()).unwrap().exp = Utc::now().timestamp() - 1;
        assert!(matches!(keys.verify(&token), Err(TokenError::Expired)));
        assert!(keys.verified.get(token.as_bytes()).is_none());
        // Clones share what they remember.
        let (other, _) = keys.issue(Uuid::new_v4());
        keys.clone().verify(&other).unwrap();
        assert!(keys.verified.contains_key(other.as_bytes()));
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let with = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
            headers
        };
        assert_eq!(bearer_token(&with("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&with("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&with("Bearer ")), Some(""));
        assert_eq!(bearer_token(&with("Basic abc")), None);
        assert_eq!(bearer_token(&http::HeaderMap::new()), None);
        // Header bytes that are not text: found as bytes (the token cache
        // cannot hold them, and verifying refuses them), never as text.
        let mut headers = http::HeaderMap::new();
        let value = http::HeaderValue::from_bytes(b"Bearer ab\xffc").unwrap();
        headers.insert(http::header::AUTHORIZATION, value);
        assert_eq!(bearer_token_bytes(&headers), Some(&b"ab\xffc"[..]));
        assert_eq!(bearer_token(&headers), None);
    }

    #[test]
    fn refuses_weak_secrets_and_unknown_algorithms() {
        assert!(JwtKeys::new(&Secret::new("short".into()), "HS256", 60).is_err());
        assert!(JwtKeys::new(&Secret::new("x".repeat(32)), "HS256", 60).is_err());
        for placeholder in crate::weak_secret::KNOWN_PLACEHOLDERS {
            assert!(JwtKeys::new(&Secret::new((*placeholder).into()), "HS256", 60).is_err());
        }
        assert!(JwtKeys::new(&Secret::new(SECRET.into()), "none", 60).is_err());
        assert!(JwtKeys::new(&Secret::new(SECRET.into()), "RS256", 60).is_err());
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_secret() {
        let keys = keys("HS256");
        let other = JwtKeys::new(&Secret::new(OTHER_SECRET.into()), "HS256", 60).unwrap();
        assert_eq!(keys.derive_key("a"), keys.derive_key("a"));
        assert_ne!(keys.derive_key("a"), keys.derive_key("b"));
        assert_ne!(keys.derive_key("a"), other.derive_key("a"));
    }
}
