//! The OpenAPI document served at `GET /openapi.json` agrees with the router
//! and with the contract. Pure checks on the file: no services needed.

use std::collections::BTreeSet;

use api_node::router::Route;
use serde_json::Value;

/// The document, exactly as compiled into the binary.
const DOCUMENT: &str = include_str!("../openapi.json");

/// The operation keys a Path Item may hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every error code in the contract's table.
const CONTRACT_CODES: [&str; 12] = [
    "VALIDATION_ERROR",
    "INVALID_JSON",
    "UNAUTHORIZED",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "EMAIL_TAKEN",
    "VERSION_MISMATCH",
    "PAYLOAD_TOO_LARGE",
    "UNSUPPORTED_MEDIA_TYPE",
    "RATE_LIMITED",
    "UNAVAILABLE",
    "INTERNAL",
];

/// The contract's task and user fields.
const TASK_FIELDS: [&str; 9] = [
    "id",
    "userId",
    "title",
    "description",
    "status",
    "priority",
    "version",
    "createdAt",
    "updatedAt",
];
const USER_FIELDS: [&str; 5] = ["id", "email", "name", "createdAt", "updatedAt"];

/// The list's sorts.
const SORTS: [&str; 4] = ["-createdAt", "createdAt", "-priority", "priority"];

const ERROR_REF: &str = "#/components/schemas/Error";

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("openapi.json is valid JSON")
}

/// Follows local `$ref`s (`#/components/...`) to the object they name.
fn resolve<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(target) = value.get("$ref").and_then(Value::as_str) else {
            return value;
        };
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local $refs are used, got {target}"));
        value = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling $ref {target}"));
    }
    panic!("$ref chain too long (a cycle?)")
}

/// Every operation: (path, method, operation object).
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let paths = doc["paths"].as_object().expect("paths is an object");
    let mut out = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for (key, op) in item {
            if METHODS.contains(&key.as_str()) {
                out.push((path.clone(), key.clone(), op));
            }
        }
    }
    out
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "components.schemas.{name} is missing");
    schema
}

fn string_set(value: &Value, what: &str) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{what} is an array"))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("{what} holds strings"))
                .to_owned()
        })
        .collect()
}

fn set_of(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn is_an_openapi_3_document() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("`openapi` is a string");
    assert!(version.starts_with("3."), "openapi is {version}");
    assert!(doc["info"]["title"].is_string());
    assert!(doc["info"]["version"].is_string());
    assert!(
        doc["info"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("/ws/updates")),
        "info.description mentions the WebSocket endpoint served by the ws-nodes"
    );
    assert_eq!(doc["servers"][0]["url"], "/");
    let bearer = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(bearer["type"], "http");
    assert_eq!(bearer["scheme"], "bearer");
    assert_eq!(bearer["bearerFormat"], "JWT");
}

#[test]
fn paths_and_methods_are_exactly_the_routers() {
    let expected: BTreeSet<(String, String)> = Route::table()
        .into_iter()
        .flat_map(|(label, allow)| {
            let path = label.replace(":id", "{id}");
            allow
                .split(", ")
                .map(move |method| (path.clone(), method.to_lowercase()))
        })
        .collect();
    let doc = document();
    let actual: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(path, method, _)| (path, method))
        .collect();
    let missing: Vec<_> = expected.difference(&actual).collect();
    let extra: Vec<_> = actual.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the document disagrees with the router: missing {missing:?}, not routed {extra:?}"
    );
}

#[test]
fn every_operation_answers_and_every_error_is_the_error_body() {
    let doc = document();
    for (path, method, op) in operations(&doc) {
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} has no responses"));
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{method} {path} has no 2xx response"
        );
        for (status, response) in responses {
            let response = resolve(&doc, response);
            assert!(
                response["description"].is_string(),
                "{method} {path} {status} has no description"
            );
            if status.starts_with('2') {
                continue;
            }
            assert_eq!(
                response["content"]["application/json"]["schema"]["$ref"], ERROR_REF,
                "{method} {path} {status} does not answer with the Error body"
            );
        }
    }
    let shared = doc["components"]["responses"]
        .as_object()
        .expect("components.responses is an object");
    for (name, response) in shared {
        assert_eq!(
            response["content"]["application/json"]["schema"]["$ref"], ERROR_REF,
            "components.responses.{name} does not use the Error body"
        );
    }
}

#[test]
fn every_ref_resolves() {
    fn walk(doc: &Value, value: &Value) {
        match value {
            Value::Object(map) => {
                if let Some(target) = map.get("$ref").and_then(Value::as_str) {
                    resolve(doc, value);
                    assert!(target.starts_with("#/components/"), "{target}");
                }
                map.values().for_each(|v| walk(doc, v));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(doc, v)),
            _ => {}
        }
    }
    let doc = document();
    walk(&doc, &doc);
}

#[test]
fn error_schema_lists_every_contract_code() {
    let doc = document();
    let error = schema(&doc, "Error");
    let codes = string_set(&error["properties"]["code"]["enum"], "Error.code enum");
    for code in CONTRACT_CODES {
        assert!(codes.contains(code), "Error.code enum lacks {code}");
    }
    assert_eq!(
        codes,
        set_of(&CONTRACT_CODES),
        "Error.code enum has codes the contract does not"
    );
    assert_eq!(
        string_set(&error["required"], "Error.required"),
        set_of(&["statusCode", "error", "code", "message"])
    );
    assert_eq!(error["properties"]["details"]["type"], "array");
    let field_error = resolve(&doc, &error["properties"]["details"]["items"]);
    assert_eq!(
        string_set(&field_error["required"], "details item required"),
        set_of(&["field", "message"])
    );
}

#[test]
fn task_and_user_have_the_contracts_fields() {
    let doc = document();
    for (name, fields) in [("Task", &TASK_FIELDS[..]), ("User", &USER_FIELDS[..])] {
        let schema = schema(&doc, name);
        assert_eq!(
            string_set(&schema["required"], &format!("{name}.required")),
            set_of(fields),
            "{name}'s required properties"
        );
        let properties: BTreeSet<String> = schema["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} has properties"))
            .keys()
            .cloned()
            .collect();
        assert_eq!(properties, set_of(fields), "{name}'s properties");
    }
    let task = &schema(&doc, "Task")["properties"];
    assert_eq!(task["priority"]["type"], "integer");
    assert_eq!(task["priority"]["minimum"], 0);
    assert_eq!(task["priority"]["maximum"], 10);
    assert_eq!(task["description"]["nullable"], true);
    assert_eq!(task["description"]["maxLength"], 10000);
    assert_eq!(task["version"]["minimum"], 1);
    let status = resolve(&doc, &task["status"]);
    assert_eq!(
        string_set(&status["enum"], "TaskStatus enum"),
        set_of(&["TODO", "IN_PROGRESS", "DONE"])
    );
}

#[test]
fn task_list_offers_the_four_sorts() {
    let doc = document();
    let parameters = doc["paths"]["/api/tasks"]["get"]["parameters"]
        .as_array()
        .expect("GET /api/tasks has parameters");
    let find = |name: &str| {
        parameters
            .iter()
            .map(|p| resolve(&doc, p))
            .find(|p| p["name"] == name && p["in"] == "query")
            .unwrap_or_else(|| panic!("GET /api/tasks has no `{name}` query parameter"))
    };
    let sort = resolve(&doc, &find("sort")["schema"]);
    assert_eq!(string_set(&sort["enum"], "sort enum"), set_of(&SORTS));
    assert_eq!(sort["default"], "-createdAt");
    let limit = resolve(&doc, &find("limit")["schema"]);
    assert_eq!(
        (&limit["minimum"], &limit["maximum"], &limit["default"]),
        (&Value::from(1), &Value::from(200), &Value::from(50))
    );
    for name in ["status", "priority", "cursor"] {
        find(name);
    }
}

#[test]
fn error_responses_carry_their_headers() {
    let doc = document();
    let responses = &doc["components"]["responses"];
    assert!(responses["MethodNotAllowed"]["headers"]["Allow"].is_object());
    assert!(responses["RateLimited"]["headers"]["Retry-After"].is_object());
    // Register and login: rate-limited (429), and refused while password
    // hashing is saturated (503); both say when to retry.
    for path in ["/api/auth/login", "/api/auth/register"] {
        let responses = &doc["paths"][path]["post"]["responses"];
        for status in ["429", "503"] {
            assert!(
                resolve(&doc, &responses[status])["headers"]["Retry-After"].is_object(),
                "{path} {status} has no Retry-After"
            );
        }
    }
    let created = &doc["paths"]["/api/tasks"]["post"]["responses"]["201"];
    assert!(created["headers"]["Location"].is_object());
    assert!(created["headers"]["ETag"].is_object());
}

#[test]
fn request_strings_refuse_control_characters_and_the_cursor_is_opaque() {
    // The ranges each field's pattern must exclude (whatever else it says).
    const C0: &[&str] = &["\\u0000-\\u001F"];
    const C0_BUT_TAB_AND_NEWLINE: &[&str] = &["\\u0000-\\u0008", "\\u000B-\\u001F"];
    const C1: &str = "\\u007F-\\u009F";
    let doc = document();
    for (body, fields) in [
        ("RegisterRequest", &["email", "password", "name"][..]),
        ("LoginRequest", &["email", "password"][..]),
        ("ProfileUpdate", &["email", "name"][..]),
        ("TaskCreate", &["title", "description"][..]),
        ("TaskUpdate", &["title", "description"][..]),
    ] {
        for field in fields {
            let pattern = schema(&doc, body)["properties"][field]["pattern"]
                .as_str()
                .unwrap_or_else(|| panic!("{body}.{field} has no pattern"));
            let c0 = if *field == "description" {
                C0_BUT_TAB_AND_NEWLINE
            } else {
                C0
            };
            for range in c0.iter().chain([&C1]) {
                assert!(
                    pattern.contains(range),
                    "{body}.{field}: {pattern} does not exclude {range}"
                );
            }
        }
    }
    let login = &schema(&doc, "LoginRequest")["properties"];
    assert_eq!(login["email"]["maxLength"], 254);
    assert_eq!(login["password"]["maxLength"], 128);

    let cursor = doc["paths"]["/api/tasks"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "cursor")
        .expect("a cursor parameter");
    assert!(cursor["description"]
        .as_str()
        .is_some_and(|d| d.starts_with("Opaque")));
    assert_eq!(cursor["schema"]["maxLength"], 512);
}

/// The operations `docs/api.md` names (`GET /api/tasks/:id` and the like),
/// paths written the router's way.
fn documented_operations(page: &str) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
        let marker = format!("{method} /");
        for (at, _) in page.match_indices(&marker) {
            let path: String = page[at + method.len() + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "/:._-".contains(*c))
                .collect();
            found.insert((path, method.to_lowercase()));
        }
    }
    found
}

/// The repository's own API reference (docs/api.md) names every operation
/// of the document and no other, and every error code of the contract.
#[test]
fn the_api_reference_page_agrees_with_the_document() {
    let page = include_str!("../../docs/api.md");
    let doc = document();
    let in_document: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(path, method, _)| (path.replace("{id}", ":id"), method))
        .collect();
    let documented = documented_operations(page);
    let undocumented: Vec<_> = in_document.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "docs/api.md does not describe {undocumented:?}"
    );
    // Beyond the document: the WebSocket upgrade and the operations
    // endpoints the nodes serve outside the public API.
    let outside = [
        "/ws/updates",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ];
    let unknown: Vec<_> = documented
        .difference(&in_document)
        .filter(|(path, _)| !outside.contains(&path.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/api.md describes operations the document lacks: {unknown:?}"
    );
    for code in CONTRACT_CODES {
        assert!(
            page.contains(&format!("| `{code}` |")),
            "docs/api.md's error table lacks {code}"
        );
    }
}
