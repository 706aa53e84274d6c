//! Tasks' input: the fields and the create and update bodies.

use serde_json::{Map, Value};

use super::fields::{chars, has_control, Fields, NO_CONTROL_RULE};
use crate::error::ApiError;
use crate::models::TaskStatus;

/// A trimmed title of 1 to 200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTitle(String);

impl TaskTitle {
    /// Trims and checks a title. Control characters that are white space
    /// (tab, newline, ...) are trimmed like spaces; inside they are refused.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let title = raw.trim();
        if has_control(title, &[]) {
            return Err(NO_CONTROL_RULE);
        }
        if (1..=200).contains(&chars(title)) {
            Ok(Self(title.to_owned()))
        } else {
            Err("must be 1 to 200 characters")
        }
    }

    /// The trimmed title.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A priority from 0 to 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority(i16);

const PRIORITY_RULE: &str = "must be an integer from 0 to 10";

impl Priority {
    /// From a JSON value: an integer (not `1.0`, not `"1"`).
    pub fn from_json(value: &Value) -> Result<Self, &'static str> {
        value.as_i64().ok_or(PRIORITY_RULE).and_then(Self::from_i64)
    }

    /// From a query parameter.
    pub fn from_query(raw: &str) -> Result<Self, &'static str> {
        raw.parse::<i64>()
            .map_err(|_| PRIORITY_RULE)
            .and_then(Self::from_i64)
    }

    fn from_i64(n: i64) -> Result<Self, &'static str> {
        if (0..=10).contains(&n) {
            Ok(Self(n as i16))
        } else {
            Err(PRIORITY_RULE)
        }
    }

    /// The value.
    pub fn get(self) -> i16 {
        self.0
    }
}

const DESCRIPTION_RULE: &str = "must be a string of at most 10000 characters, or null";
const DESCRIPTION_CONTROL_RULE: &str =
    "must not contain control characters other than tab and newline";

/// `description`: `Some(None)` is an explicit null. Free text, so tab and
/// newline are the control characters it may hold.
fn take_description(f: &mut Fields) -> Option<Option<String>> {
    match f.take("description")? {
        Value::Null => Some(None),
        Value::String(s) if has_control(&s, &['\t', '\n']) => {
            f.error("description", DESCRIPTION_CONTROL_RULE);
            None
        }
        Value::String(s) if chars(&s) <= 10_000 => Some(Some(s)),
        _ => {
            f.error("description", DESCRIPTION_RULE);
            None
        }
    }
}

fn take_status(f: &mut Fields) -> Option<TaskStatus> {
    match f.take("status")? {
        Value::String(s) => TaskStatus::parse(&s).map_err(|m| f.error("status", m)).ok(),
        _ => {
            f.error("status", "must be one of TODO, IN_PROGRESS, DONE");
            None
        }
    }
}

fn take_priority(f: &mut Fields) -> Option<Priority> {
    let value = f.take("priority")?;
    Priority::from_json(&value)
        .map_err(|m| f.error("priority", m))
        .ok()
}

/// `POST /api/tasks`.
#[derive(Debug)]
pub struct NewTask {
    /// Required.
    pub title: TaskTitle,
    /// Default null.
    pub description: Option<String>,
    /// Default TODO.
    pub status: TaskStatus,
    /// Default 0.
    pub priority: Priority,
}

impl NewTask {
    /// Parses the body.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut f = Fields::new(body);
        let title = f.parse_string("title", true, TaskTitle::parse);
        let description = take_description(&mut f).flatten();
        let status = take_status(&mut f).unwrap_or(TaskStatus::Todo);
        let priority = take_priority(&mut f).unwrap_or(Priority(0));
        f.finish()?;
        Ok(Self {
            title: title.expect("BUG: finish() passed without a title"),
            description,
            status,
            priority,
        })
    }
}

/// `PUT /api/tasks/:id`: the fields given; the rest keep their values.
#[derive(Debug, Default)]
pub struct TaskPatch {
    /// New title.
    pub title: Option<TaskTitle>,
    /// New description; `Some(None)` clears it.
    pub description: Option<Option<String>>,
    /// New status.
    pub status: Option<TaskStatus>,
    /// New priority.
    pub priority: Option<Priority>,
}

impl TaskPatch {
    /// Parses the body; at least one field is required.
    pub fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let empty = body.is_empty();
        let mut f = Fields::new(body);
        let patch = Self {
            title: f.parse_string("title", false, TaskTitle::parse),
            description: take_description(&mut f),
            status: take_status(&mut f),
            priority: take_priority(&mut f),
        };
        if empty {
            f.error(
                "body",
                "must contain at least one of title, description, status, priority",
            );
        }
        f.finish()?;
        Ok(patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::strategies::{body, invalid_fields};
    use proptest::prelude::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn fields_of(err: ApiError) -> Vec<String> {
        match err {
            ApiError::Validation(f) => f.into_iter().map(|f| f.field).collect(),
            other => panic!("expected validation, got {other:?}"),
        }
    }

    #[test]
    fn title_boundaries() {
        assert_eq!(TaskTitle::parse("  a  ").unwrap().as_str(), "a");
        assert!(TaskTitle::parse("   ").is_err());
        assert!(TaskTitle::parse(&"t".repeat(200)).is_ok());
        assert!(TaskTitle::parse(&"t".repeat(201)).is_err());
    }

    #[test]
    fn priority_must_be_an_integer_in_range() {
        for ok in [json!(0), json!(10)] {
            assert!(Priority::from_json(&ok).is_ok());
        }
        for bad in [json!(-1), json!(11), json!(1.5), json!("3"), json!(null)] {
            assert!(Priority::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn new_task_defaults_and_errors() {
        let task = NewTask::parse(obj(json!({"title": " x "}))).unwrap();
        assert_eq!(task.title.as_str(), "x");
        assert_eq!(
            (task.description, task.status, task.priority.get()),
            (None, TaskStatus::Todo, 0)
        );

        let err = NewTask::parse(obj(json!({
            "description": "d".repeat(10_001), "status": "NOPE", "priority": 11, "userId": "x"
        })))
        .unwrap_err();
        assert_eq!(
            fields_of(err),
            ["title", "description", "status", "priority", "userId"]
        );
    }

    #[test]
    fn patch_distinguishes_null_from_absent() {
        let patch = TaskPatch::parse(obj(json!({"description": null}))).unwrap();
        assert_eq!(patch.description, Some(None));
        let patch = TaskPatch::parse(obj(json!({"priority": 3}))).unwrap();
        assert_eq!(patch.description, None);
        assert_eq!(
            fields_of(TaskPatch::parse(Map::new()).unwrap_err()),
            ["body"]
        );
    }

    #[test]
    fn control_characters_are_refused_but_tab_and_newline_in_a_description() {
        for c in ['\0', '\u{1}', '\t', '\n', '\r', '\u{7f}', '\u{9f}'] {
            assert_eq!(TaskTitle::parse(&format!("a{c}b")), Err(NO_CONTROL_RULE));
        }
        // White-space controls around a title are trimmed like spaces; NUL
        // is not white space.
        assert_eq!(TaskTitle::parse("\t x \r\n").unwrap().as_str(), "x");
        assert_eq!(TaskTitle::parse("x\0"), Err(NO_CONTROL_RULE));
        let kept = "one\n\ttwo\n";
        let task = NewTask::parse(obj(json!({"title": "t", "description": kept}))).unwrap();
        assert_eq!(task.description.as_deref(), Some(kept));
        for c in ['\0', '\r', '\u{1b}', '\u{85}'] {
            let err = NewTask::parse(obj(json!({"title": "t", "description": format!("a{c}")})))
                .unwrap_err();
            assert_eq!(fields_of(err), ["description"]);
        }
    }

    /// What every accepted task field must satisfy.
    fn assert_valid_title(title: &TaskTitle) -> Result<(), TestCaseError> {
        let t = title.as_str();
        prop_assert!((1..=200).contains(&chars(t)));
        prop_assert_eq!(t, t.trim());
        prop_assert!(!has_control(t, &[]));
        Ok(())
    }

    fn assert_valid_description(d: &str) -> Result<(), TestCaseError> {
        prop_assert!(chars(d) <= 10_000);
        prop_assert!(!has_control(d, &['\t', '\n']));
        Ok(())
    }

    /// Fields a validation error may name: the body's own keys, or `body`.
    fn names_only_given_fields(
        err: &ApiError,
        body: &Map<String, Value>,
        required: &[&str],
    ) -> Result<(), TestCaseError> {
        let named = invalid_fields(err);
        prop_assert!(!named.is_empty());
        for field in named {
            prop_assert!(
                body.contains_key(&field) || field == "body" || required.contains(&field.as_str()),
                "{} named but not given",
                field
            );
        }
        Ok(())
    }

    proptest! {
        /// Any JSON object: a valid new task, or a validation error naming
        /// fields of the body; never a panic, never an invalid value.
        #[test]
        fn new_task_bodies(b in body(&["title", "description", "status", "priority"])) {
            match NewTask::parse(b.clone()) {
                Ok(task) => {
                    assert_valid_title(&task.title)?;
                    if let Some(d) = &task.description {
                        assert_valid_description(d)?;
                    }
                    prop_assert!((0..=10).contains(&task.priority.get()));
                }
                Err(err) => names_only_given_fields(&err, &b, &["title"])?,
            }
        }

        #[test]
        fn task_patch_bodies(b in body(&["title", "description", "status", "priority"])) {
            match TaskPatch::parse(b.clone()) {
                Ok(patch) => {
                    prop_assert!(!b.is_empty());
                    if let Some(title) = &patch.title {
                        assert_valid_title(title)?;
                    }
                    if let Some(Some(d)) = &patch.description {
                        assert_valid_description(d)?;
                    }
                    prop_assert!(patch.priority.is_none_or(|p| (0..=10).contains(&p.get())));
                }
                Err(err) => names_only_given_fields(&err, &b, &[])?,
            }
        }
    }
}
