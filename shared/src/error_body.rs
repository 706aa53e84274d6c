//! The error body every non-2xx response carries (the shape Fastify clients
//! already parse).

use serde::Serialize;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's name as the client sent it, or `body` for a rule about
    /// the body as a whole.
    pub field: String,
    /// What is wrong with it, without the field name.
    pub message: String,
}

impl FieldError {
    /// A field error from anything string-like.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// `{ statusCode, error, code, message, details? }`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody<'a> {
    /// The HTTP status, repeated in the body.
    pub status_code: u16,
    /// The status's reason phrase ("Bad Request").
    pub error: &'a str,
    /// The machine-readable code (`VALIDATION_ERROR`, ...).
    pub code: &'a str,
    /// A human-readable sentence.
    pub message: &'a str,
    /// Every invalid field, for validation errors only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<&'a [FieldError]>,
}

impl ErrorBody<'_> {
    /// The body as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("BUG: an error body always serializes")
    }
}
