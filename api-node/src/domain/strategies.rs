//! Proptest strategies for untrusted input: strings with control characters,
//! surrounding blanks, multi-byte characters and lengths around every cap,
//! and arbitrary JSON values made of them.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// A string a hostile client might send: any characters (NUL, the other
/// control characters, 4-byte ones), or a valid-looking value near a cap.
pub fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "(?s).{0,20}",
        "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f} a-z@.]{0,20}",
        "[a-z]{1,10}@[a-z]{1,10}\\.[a-z]{2,3}",
        " {0,3}[a-zA-Z0-9 ]{0,12} {0,3}",
        (0usize..4, 195usize..260).prop_map(|(pick, n)| {
            let c = ['a', 'é', '名', '😀'][pick];
            std::iter::repeat_n(c, n).collect()
        }),
        (9_990usize..10_010).prop_map(|n| "d".repeat(n)),
    ]
}

/// Any JSON value, with hostile strings in it.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-20i64..20).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        hostile_string().prop_map(Value::from),
        prop::sample::select(vec!["TODO", "IN_PROGRESS", "DONE", "todo"]).prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body: some of `names` (and perhaps an unknown field) with any values.
pub fn body(names: &'static [&'static str]) -> impl Strategy<Value = Map<String, Value>> {
    let name = prop_oneof![
        prop::sample::select(names.to_vec()).prop_map(str::to_owned),
        "[a-zA-Z]{1,6}",
    ];
    prop::collection::btree_map(name, json_value(), 0..5).prop_map(|m| m.into_iter().collect())
}

/// The field names a validation error reports.
pub fn invalid_fields(err: &crate::error::ApiError) -> Vec<String> {
    match err {
        crate::error::ApiError::Validation(fields) => {
            fields.iter().map(|f| f.field.clone()).collect()
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}
