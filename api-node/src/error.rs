//! The api-node's one error type, mapped once to the contract's responses.
//! Database and internal details are logged here and never sent.

use http::{header, HeaderValue, StatusCode};
use shared::error_body::FieldError;
use shared::node_http::{self, Resp};
use tracing::{error, warn};

use crate::db::DbError;

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// One or more invalid fields; all of them are listed.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// The body is empty, not JSON, or not an object.
    #[error("invalid JSON: {0}")]
    InvalidJson(&'static str),
    /// No, bad, expired or revoked token; or wrong credentials.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// No such route, or no such task of the caller's.
    #[error("not found")]
    NotFound(&'static str),
    /// Known path, wrong method; carries the `Allow` header's value.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// The email belongs to another user.
    #[error("email taken")]
    EmailTaken,
    /// `If-Match` named a version the task is no longer at.
    #[error("version mismatch")]
    VersionMismatch,
    /// Body over the limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// The body did not arrive within `BODY_READ_TIMEOUT_SECS`. Never
    /// answered: the service closes the connection instead, as nginx does.
    #[error("request body timed out")]
    BodyTimeout,
    /// A body whose content type is not JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// Too many failed logins; retry after this many seconds.
    #[error("rate limited")]
    RateLimited(u64),
    /// PostgreSQL cannot be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Password hashing is saturated (its queue is full); retry after this
    /// many seconds.
    #[error("password hashing saturated")]
    HashingSaturated(u64),
    /// Anything else.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A validation error about one field.
    pub fn field(field: &str, message: &str) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Validation(_) => (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"),
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "INVALID_JSON"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
            ApiError::EmailTaken => (StatusCode::CONFLICT, "EMAIL_TAKEN"),
            ApiError::VersionMismatch => (StatusCode::PRECONDITION_FAILED, "VERSION_MISMATCH"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            // Only if something answers it after all; see the variant.
            ApiError::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "INVALID_JSON"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE")
            }
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"),
            ApiError::Unavailable(_) | ApiError::HashingSaturated(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Validation(fields) => fields
                .iter()
                .map(|f| format!("{} {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; "),
            ApiError::InvalidJson(why) => (*why).to_owned(),
            ApiError::Unauthorized(why) => (*why).to_owned(),
            ApiError::NotFound(what) => format!("{what} not found"),
            ApiError::MethodNotAllowed(allow) => format!("method not allowed; use {allow}"),
            ApiError::EmailTaken => "email is already in use".to_owned(),
            ApiError::VersionMismatch => "the task has changed since that version".to_owned(),
            ApiError::PayloadTooLarge => "request body is over 64 KiB".to_owned(),
            ApiError::BodyTimeout => "the request body did not arrive in time".to_owned(),
            ApiError::UnsupportedMediaType => "Content-Type must be application/json".to_owned(),
            ApiError::RateLimited(secs) => format!("too many attempts; retry in {secs} s"),
            ApiError::Unavailable(_) | ApiError::HashingSaturated(_) => {
                "the service is temporarily unavailable".to_owned()
            }
            ApiError::Internal(_) => "internal error".to_owned(),
        }
    }

    /// Whether [`ApiError::into_response`] logs it (a 500 or a 503 for a
    /// dependency).
    pub fn is_logged(&self) -> bool {
        matches!(self, ApiError::Internal(_) | ApiError::Unavailable(_))
    }

    /// The response the client sees.
    pub fn into_response(self) -> Resp {
        match &self {
            ApiError::Internal(err) => error!(error = ?err, "internal error"),
            ApiError::Unavailable(why) => warn!(why, "dependency unavailable"),
            _ => {}
        }
        let (status, code) = self.status_and_code();
        let message = self.message();
        let details = match &self {
            ApiError::Validation(fields) => Some(fields.as_slice()),
            _ => None,
        };
        let mut response = node_http::error(status, code, &message, details);
        let headers = response.headers_mut();
        match self {
            ApiError::MethodNotAllowed(allow) => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::RateLimited(secs) | ApiError::HashingSaturated(secs) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            ApiError::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Postgres(err) => err.into(),
            DbError::Pool(err) => err.into(),
            DbError::EmailTaken => ApiError::EmailTaken,
            DbError::Limited(secs) => ApiError::RateLimited(secs),
        }
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(err: tokio_postgres::Error) -> Self {
        // A lost connection or a server shutting down is 503; any other
        // database error (constraint, syntax) is a bug or a race the call
        // site did not handle.
        if shared::postgres::is_unavailable(&err) {
            ApiError::Unavailable(err.to_string())
        } else {
            ApiError::Internal(err.into())
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        match err {
            deadpool_postgres::PoolError::Backend(err) => err.into(),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}
