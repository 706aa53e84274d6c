//! The HTTP rules every route shares: error shape, 404/405, body checks and
//! their order, query parameters, request ids and the operations endpoints.

use test_support::api as common;

use common::{Reply, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const JSON: &str = "application/json";
const MAX_BODY: usize = 64 * 1024;

/// A request with a raw body and content type (either may be absent).
async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
) -> Reply {
    let mut req = app.http.request(method, app.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(content_type) = content_type {
        req = req.header("content-type", content_type);
    }
    if let Some(body) = body {
        req = req.body(body);
    }
    TestApp::read(req).await
}

/// The contract's error body: exactly these fields, `details` only for
/// validation errors, `error` the status's reason phrase.
fn assert_error_shape(reply: &Reply, status: u16, code: &str) {
    reply.assert_error(status, code);
    let mut keys: Vec<&str> = reply
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let expected: &[&str] = if code == "VALIDATION_ERROR" {
        &["code", "details", "error", "message", "statusCode"]
    } else {
        &["code", "error", "message", "statusCode"]
    };
    assert_eq!(keys, expected, "body: {}", reply.body);
    let reason = StatusCode::from_u16(status)
        .unwrap()
        .canonical_reason()
        .unwrap();
    assert_eq!(reply.body["error"], reason, "body: {}", reply.body);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|v| v.starts_with(JSON)),
        "content-type: {:?}",
        reply.header("content-type")
    );
}

/// The methods an `Allow` header lists, sorted.
fn allowed(reply: &Reply) -> Vec<String> {
    let allow = reply
        .header("allow")
        .unwrap_or_else(|| panic!("405 carries Allow; headers: {:?}", reply.headers));
    let mut methods: Vec<String> = allow
        .split(',')
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    methods.sort();
    methods
}

/// `{"title":"x"}` padded with trailing whitespace to exactly `len` bytes.
fn padded_task_body(len: usize) -> Vec<u8> {
    let mut body = br#"{"title":"x"}"#.to_vec();
    body.resize(len, b' ');
    body
}

// ---- routes -----------------------------------------------------------------

#[tokio::test]
async fn an_unknown_route_is_404_in_the_contract_shape() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    for path in ["/api/nope", "/", "/api/tasks/a/b", "/api/auth"] {
        let reply = app.get(path, &user.token).await;
        assert_error_shape(&reply, 404, "NOT_FOUND");
    }
}

#[tokio::test]
async fn a_known_path_with_a_wrong_method_is_405_with_allow() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let task = "/api/tasks/6f1c1a4e-0000-4000-8000-000000000000";
    let cases: [(Method, &str, &[&str]); 6] = [
        (Method::DELETE, "/api/tasks", &["GET", "POST"]),
        (Method::PATCH, task, &["DELETE", "GET", "PUT"]),
        (Method::POST, task, &["DELETE", "GET", "PUT"]),
        (Method::GET, "/api/auth/login", &["POST"]),
        (Method::DELETE, "/api/profile", &["GET", "PUT"]),
        (Method::POST, "/healthz", &["GET"]),
    ];

    for (method, path, allow) in cases {
        let reply = app
            .call(method.clone(), path, Some(&user.token), None)
            .await;
        assert_error_shape(&reply, 405, "METHOD_NOT_ALLOWED");
        assert_eq!(allowed(&reply), allow, "{method} {path}");
    }
}

// ---- bodies -----------------------------------------------------------------

#[tokio::test]
async fn a_non_json_content_type_is_415() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let cases = [
        (Method::POST, "/api/tasks", Some(user.token.as_str())),
        (Method::PUT, "/api/profile", Some(user.token.as_str())),
        (Method::POST, "/api/auth/register", None),
        (Method::POST, "/api/auth/login", None),
    ];

    for (method, path, token) in cases {
        for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
            let reply = raw(
                &app,
                method.clone(),
                path,
                token,
                Some(content_type),
                Some(br#"{"title":"x","name":"x"}"#.to_vec()),
            )
            .await;
            assert_error_shape(&reply, 415, "UNSUPPORTED_MEDIA_TYPE");
        }
    }
}

#[tokio::test]
async fn json_with_a_charset_parameter_is_accepted() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let reply = raw(
        &app,
        Method::POST,
        "/api/tasks",
        Some(&user.token),
        Some("application/json; charset=utf-8"),
        Some(br#"{"title":"x"}"#.to_vec()),
    )
    .await;

    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

#[tokio::test]
async fn a_body_over_64_kib_is_413() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let big = json!({ "title": "x", "description": "a".repeat(65 * 1024) });
    let big_registration = json!({
        "email": "ann@example.com", "password": "long enough", "name": "a".repeat(65 * 1024)
    });

    let task = app.post("/api/tasks", Some(&user.token), big).await;
    let register = app.post("/api/auth/register", None, big_registration).await;

    assert_error_shape(&task, 413, "PAYLOAD_TOO_LARGE");
    assert_error_shape(&register, 413, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn a_chunked_body_over_64_kib_is_413() {
    // No Content-Length: the limit must hold while the body is read.
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let mut body = br#"{"title":"x","description":""#.to_vec();
    body.resize(MAX_BODY + 1024, b'a');
    body.extend_from_slice(br#""}"#);

    let (status, reply) = chunked_post(&app, "/api/tasks", &user.token, &body).await;

    assert_eq!(status, 413, "{reply}");
    assert_eq!(reply["statusCode"], 413, "{reply}");
    assert_eq!(reply["code"], "PAYLOAD_TOO_LARGE", "{reply}");
}

/// Sends a POST with `Transfer-Encoding: chunked` over a raw connection and
/// returns the status and the JSON body.
async fn chunked_post(app: &TestApp, path: &str, token: &str, body: &[u8]) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(8 * 1024) {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(chunk);
        frame.extend_from_slice(b"\r\n");
        // The server may answer (and stop reading) before the end.
        if stream.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP response: {text:?}"));
    let (headers, payload) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let payload = if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // One data chunk: "<len>\r\n<data>\r\n0\r\n\r\n".
        payload.split("\r\n").nth(1).unwrap_or("")
    } else {
        payload
    };
    (status, serde_json::from_str(payload).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_64_kib_limit_is_exact() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let at_limit = raw(
        &app,
        Method::POST,
        "/api/tasks",
        Some(&user.token),
        Some(JSON),
        Some(padded_task_body(MAX_BODY)),
    )
    .await;
    let over = raw(
        &app,
        Method::POST,
        "/api/tasks",
        Some(&user.token),
        Some(JSON),
        Some(padded_task_body(MAX_BODY + 1)),
    )
    .await;

    assert_eq!(at_limit.status, StatusCode::CREATED, "{}", at_limit.body);
    assert_error_shape(&over, 413, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn bodies_that_are_not_a_json_object_are_invalid_json() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let bodies: [&[u8]; 9] = [
        b"",
        b"   ",
        b"{\"title\":",
        b"not json",
        b"[]",
        b"[{\"title\":\"x\"}]",
        b"\"a string\"",
        b"42",
        b"null",
    ];

    for body in bodies {
        let reply = raw(
            &app,
            Method::POST,
            "/api/tasks",
            Some(&user.token),
            Some(JSON),
            Some(body.to_vec()),
        )
        .await;
        assert_error_shape(&reply, 400, "INVALID_JSON");
        assert!(
            reply.body.get("details").is_none(),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[tokio::test]
async fn a_missing_body_is_invalid_json() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let no_body_no_type = raw(
        &app,
        Method::POST,
        "/api/tasks",
        Some(&user.token),
        None,
        None,
    )
    .await;
    let put_no_body = app
        .call(Method::PUT, "/api/profile", Some(&user.token), None)
        .await;
    let register_no_body = app
        .call(Method::POST, "/api/auth/register", None, None)
        .await;

    assert_error_shape(&no_body_no_type, 400, "INVALID_JSON");
    assert_error_shape(&put_no_body, 400, "INVALID_JSON");
    assert_error_shape(&register_no_body, 400, "INVALID_JSON");
}

// ---- order of checks --------------------------------------------------------

/// A request that breaks several rules at once gets the error of the first
/// one in the contract's order: the route (404, 405), then the token (401),
/// then the body (415, 413, 400), then the resource (404).
#[tokio::test]
async fn each_request_gets_the_error_of_the_first_rule_it_breaks() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    let (good, bad) = (Some(user.token.as_str()), Some("not-a-token"));
    let missing = format!("/api/tasks/{}", uuid::Uuid::new_v4());
    let text = Some("text/plain");
    let over = |start: &[u8]| {
        let mut body = start.to_vec();
        body.resize(MAX_BODY + 1024, b'x');
        Some(body)
    };
    let body = |b: &[u8]| Some(b.to_vec());
    /// What is sent (method, path, token, content type, body) and what
    /// must come back (status, code).
    type Case<'a> = (
        &'a str,
        Method,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<Vec<u8>>,
        u16,
        &'a str,
    );
    #[rustfmt::skip]
    let cases: [Case; 13] = [
        ("unknown route, no token", Method::POST, "/api/nothing-here", None, Some(JSON), body(b"{}"), 404, "NOT_FOUND"),
        ("wrong method, no token", Method::DELETE, "/api/tasks", None, None, None, 405, "METHOD_NOT_ALLOWED"),
        ("wrong method, bad token", Method::DELETE, "/api/tasks", Some("garbage"), None, None, 405, "METHOD_NOT_ALLOWED"),
        ("no token, not JSON", Method::POST, "/api/tasks", None, Some(JSON), body(b"{not json"), 401, "UNAUTHORIZED"),
        ("bad token, wrong type", Method::POST, "/api/tasks", bad, text, body(b"hello"), 401, "UNAUTHORIZED"),
        ("no token, too large", Method::POST, "/api/tasks", None, Some(JSON), Some(padded_task_body(MAX_BODY + 1024)), 401, "UNAUTHORIZED"),
        ("no token, unknown query parameter", Method::GET, "/api/profile?verbose=1", None, None, None, 401, "UNAUTHORIZED"),
        ("no token, unknown field", Method::PUT, "/api/profile", None, Some(JSON), body(br#"{"bogus":true}"#), 401, "UNAUTHORIZED"),
        ("wrong type, too large", Method::POST, "/api/tasks", good, text, over(b"a"), 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("too large, not JSON", Method::POST, "/api/tasks", good, Some(JSON), over(b"{not json at all"), 413, "PAYLOAD_TOO_LARGE"),
        ("not JSON, missing task", Method::PUT, &missing, good, Some(JSON), body(b"{"), 400, "INVALID_JSON"),
        ("invalid field, missing task", Method::PUT, &missing, good, Some(JSON), body(br#"{"priority":"high"}"#), 400, "VALIDATION_ERROR"),
        ("valid body, missing task", Method::PUT, &missing, good, Some(JSON), body(br#"{"priority":1}"#), 404, "NOT_FOUND"),
    ];

    for (what, method, path, token, content_type, body, status, code) in cases {
        let reply = raw(&app, method, path, token, content_type, body).await;
        assert_eq!(
            (reply.status.as_u16(), reply.body["code"].as_str()),
            (status, Some(code)),
            "{what}: {}",
            reply.body
        );
        assert_error_shape(&reply, status, code);
    }
    let reply = app.call(Method::DELETE, "/api/tasks", None, None).await;
    assert_eq!(allowed(&reply), ["GET", "POST"]);
}

// ---- query parameters -------------------------------------------------------

#[tokio::test]
async fn an_unknown_query_parameter_is_a_validation_error() {
    let app = TestApp::spawn().await;
    let user = app.register().await;

    let profile = app.get("/api/profile?verbose=1", &user.token).await;
    let login = app
        .post(
            "/api/auth/login?remember=yes",
            None,
            json!({ "email": user.email, "password": user.password }),
        )
        .await;
    let register = app
        .post(
            "/api/auth/register?invite=abc",
            None,
            json!({ "email": "new@example.com", "password": "long enough", "name": "New" }),
        )
        .await;
    let logout = app
        .call(
            Method::POST,
            "/api/auth/logout?everywhere=1",
            Some(&user.token),
            None,
        )
        .await;

    assert_error_shape(&profile, 400, "VALIDATION_ERROR");
    assert_eq!(profile.invalid_fields(), ["verbose"]);
    assert_eq!(login.invalid_fields(), ["remember"]);
    assert_eq!(register.invalid_fields(), ["invite"]);
    assert_eq!(logout.invalid_fields(), ["everywhere"]);
    // Nothing happened: the token still works, the email is still free.
    assert_eq!(
        app.get("/api/profile", &user.token).await.status,
        StatusCode::OK
    );
    app.login("new@example.com", "long enough")
        .await
        .assert_error(401, "UNAUTHORIZED");
}

// ---- request ids ------------------------------------------------------------

#[tokio::test]
async fn x_request_id_is_echoed_when_sent() {
    let app = TestApp::spawn().await;

    let ok = TestApp::read(
        app.http
            .get(app.url("/healthz"))
            .header("x-request-id", "trace-me-123"),
    )
    .await;
    let error = TestApp::read(
        app.http
            .get(app.url("/api/nope"))
            .header("x-request-id", "trace-me-456"),
    )
    .await;

    assert_eq!(ok.header("x-request-id"), Some("trace-me-123"));
    assert_eq!(error.header("x-request-id"), Some("trace-me-456"));
}

#[tokio::test]
async fn x_request_id_is_generated_when_not_sent() {
    let app = TestApp::spawn().await;

    let first = TestApp::read(app.http.get(app.url("/healthz"))).await;
    let second = TestApp::read(app.http.get(app.url("/api/nope"))).await;

    let (a, b) = (
        first.header("x-request-id").expect("a generated id"),
        second.header("x-request-id").expect("a generated id"),
    );
    assert!(!a.is_empty() && !b.is_empty());
    assert_ne!(a, b, "each request gets its own id");
}

// ---- operations -------------------------------------------------------------

#[tokio::test]
async fn healthz_is_200() {
    let app = TestApp::spawn().await;

    let reply = TestApp::read(app.http.get(app.url("/healthz"))).await;

    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn readyz_is_200_with_postgres_and_redis_up() {
    let app = TestApp::spawn().await;

    let reply = TestApp::read(app.http.get(app.url("/readyz"))).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn metrics_exposes_http_requests_total_after_traffic() {
    let app = TestApp::spawn().await;
    let user = app.register().await;
    assert_eq!(
        app.get("/api/profile", &user.token).await.status,
        StatusCode::OK
    );

    let reply = TestApp::read(app.http.get(app.url("/metrics"))).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/plain")),
        "content-type: {:?}",
        reply.header("content-type")
    );
    let Value::String(text) = &reply.body else {
        panic!("metrics are text, got JSON: {}", reply.body)
    };
    assert!(text.contains("http_requests_total"), "{text}");
}

#[tokio::test]
async fn openapi_json_is_an_openapi_3_document() {
    let app = TestApp::spawn().await;

    let reply = TestApp::read(app.http.get(app.url("/openapi.json"))).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|v| v.starts_with(JSON)),
        "content-type: {:?}",
        reply.header("content-type")
    );
    let version = reply.body["openapi"]
        .as_str()
        .unwrap_or_else(|| panic!("an openapi field: {}", reply.body));
    assert!(version.starts_with('3'), "openapi {version:?}");
}
