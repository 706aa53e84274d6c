//! Reading requests and building responses: the JSON body rules of the
//! contract (415, then 413, then 400) and the response headers it names.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::error::ApiError;

pub use shared::node_http::{json_bytes, Resp};

/// The largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Reads a JSON object body, in the contract's order of checks. The whole
/// body must arrive within `timeout` (`BODY_READ_TIMEOUT_SECS`): a client
/// that sends its headers and then trickles the body would otherwise hold
/// a connection and a task for as long as it likes.
pub async fn json_object(
    req: Request<Incoming>,
    timeout: Duration,
) -> Result<Map<String, Value>, ApiError> {
    let deadline = Instant::now() + timeout;
    let (parts, body) = req.into_parts();
    if !content_type_is_json(&parts.headers) && !declares_empty_body(&parts.headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY) {
        return Err(ApiError::PayloadTooLarge);
    }
    let collected = tokio::time::timeout_at(deadline, Limited::new(body, MAX_BODY).collect())
        .await
        .map_err(|_| ApiError::BodyTimeout)?;
    let bytes = collected
        .map_err(|err| {
            if err.is::<http_body_util::LengthLimitError>() {
                ApiError::PayloadTooLarge
            } else {
                ApiError::InvalidJson("the request body could not be read")
            }
        })?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidJson(
            "request body is empty; a JSON object is required",
        ));
    }
    if !content_type_is_json(&parts.headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    parse_object(&bytes)
}

/// A body's bytes as a JSON object (anything else is `INVALID_JSON`).
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::InvalidJson("request body must be a JSON object")),
        Err(_) => Err(ApiError::InvalidJson("request body is not valid JSON")),
    }
}

/// `application/json`, with or without parameters such as `charset`.
fn content_type_is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// A request with no body at all may omit the content type; it then gets
/// `INVALID_JSON` (empty body) rather than 415.
fn declares_empty_body(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_none()
        && headers.get(header::TRANSFER_ENCODING).is_none()
        && headers
            .get(header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0")
}

/// The query string as name/value pairs, decoded.
pub fn query_pairs(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// A JSON response from a serializable value.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Resp {
    let body = serde_json::to_vec(value).expect("BUG: response types always serialize");
    json_bytes(status, body)
}

/// 204 with no body.
pub fn no_content() -> Resp {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// Adds `ETag: "<version>"`.
pub fn with_etag(mut response: Resp, version: i64) -> Resp {
    let value = etag_value(version);
    response.headers_mut().insert(header::ETAG, value);
    response
}

/// The ETags of versions 0–99 (most tasks are edited a few times), made
/// once, as static text: a header value of text made at run time is a
/// copy in an allocation of its own, and every task response has one.
static SMALL_ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    (0..100)
        .map(|version| {
            let text: &'static str = Box::leak(format!("\"{version}\"").into_boxed_str());
            HeaderValue::from_static(text)
        })
        .collect()
});

/// `"<version>"`.
fn etag_value(version: i64) -> HeaderValue {
    if let Some(value) = usize::try_from(version)
        .ok()
        .and_then(|v| SMALL_ETAGS.get(v))
    {
        return value.clone();
    }
    let mut buf = [0u8; 22]; // a quote, a sign, 19 digits, a quote
    let mut at = buf.len() - 1;
    buf[at] = b'"';
    let mut n = version.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if version < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    at -= 1;
    buf[at] = b'"';
    HeaderValue::from_bytes(&buf[at..]).expect("BUG: digits are a valid header")
}

/// Adds a header whose value is known to be valid.
pub fn with_header(mut response: Resp, name: header::HeaderName, value: &str) -> Resp {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
    response
}

/// What `If-Match` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// No `If-Match`, or `*`.
    Any,
    /// `If-Match: "<version>"`.
    Version(i32),
}

impl Precondition {
    /// The version a conditional write requires, if any.
    pub fn version(self) -> Option<i32> {
        match self {
            Self::Any => None,
            Self::Version(v) => Some(v),
        }
    }
}

/// Reads `If-Match`. A value that names no version of ours can match
/// nothing, so it is a 412 whatever the task's state.
pub fn if_match(headers: &HeaderMap) -> Result<Precondition, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(Precondition::Any);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::field("If-Match", "must be \"<version>\" or *"))?;
    let value = value.trim();
    if value == "*" {
        return Ok(Precondition::Any);
    }
    value
        .strip_prefix("W/")
        .unwrap_or(value)
        .trim_matches('"')
        .parse()
        .map(Precondition::Version)
        .map_err(|_| ApiError::field("If-Match", "must be \"<version>\" or *"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_quote_the_version() {
        for version in [
            0,
            1,
            9,
            10,
            42,
            99,
            100,
            101,
            1 << 53,
            i64::MAX,
            -7,
            i64::MIN,
        ] {
            assert_eq!(etag_value(version), format!("\"{version}\"").as_str());
        }
    }

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(header::IF_MATCH, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn if_match_forms() {
        assert_eq!(if_match(&HeaderMap::new()).unwrap(), Precondition::Any);
        assert_eq!(if_match(&headers("*")).unwrap(), Precondition::Any);
        assert_eq!(
            if_match(&headers("\"3\"")).unwrap(),
            Precondition::Version(3)
        );
        assert_eq!(
            if_match(&headers("W/\"4\"")).unwrap(),
            Precondition::Version(4)
        );
        assert!(if_match(&headers("\"abc\"")).is_err());
    }

    use proptest::prelude::*;

    proptest! {
        /// Any bytes at all: the object they encode, or `INVALID_JSON`.
        #[test]
        fn any_bytes_are_an_object_or_invalid_json(
            bytes in prop_oneof![
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
                "(?s)\\{.{0,40}\\}".prop_map(String::into_bytes),
                "[\\[\\]{}\"a-z0-9:,. \\\\]{0,40}".prop_map(String::into_bytes),
            ]
        ) {
            match parse_object(&bytes) {
                Ok(map) => prop_assert_eq!(
                    serde_json::from_slice::<Value>(&bytes).ok(),
                    Some(Value::Object(map))
                ),
                Err(ApiError::InvalidJson(_)) => prop_assert!(
                    !matches!(serde_json::from_slice::<Value>(&bytes), Ok(Value::Object(_)))
                ),
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }

    #[test]
    fn json_content_type_accepts_parameters_only() {
        let mut map = HeaderMap::new();
        map.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(content_type_is_json(&map));
        map.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!content_type_is_json(&map));
    }
}
