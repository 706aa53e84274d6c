//! Reading a JSON object field by field, collecting every error, and
//! refusing fields nobody asked for.

use serde_json::{Map, Value};
use shared::error_body::FieldError;

use crate::error::ApiError;

/// A JSON object being taken apart. Each `take_*` removes its field; what is
/// left at [`Fields::finish`] is unknown and reported.
pub struct Fields {
    map: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Fields {
    /// Starts reading `map`.
    pub fn new(map: Map<String, Value>) -> Self {
        Self {
            map,
            errors: Vec::new(),
        }
    }

    /// Records an error against `field`.
    pub fn error(&mut self, field: &str, message: &str) {
        self.errors.push(FieldError::new(field, message));
    }

    /// Removes and returns a field, `None` when absent.
    pub fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name)
    }

    /// A string field. Absent gives `None`, recording "is required" when
    /// `required`; another type records "must be a string".
    pub fn take_string(&mut self, name: &str, required: bool) -> Option<String> {
        match self.take(name) {
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.error(name, "must be a string");
                None
            }
            None => {
                if required {
                    self.error(name, "is required");
                }
                None
            }
        }
    }

    /// Parses an optional string field with `parse`, which returns the error
    /// message on failure.
    pub fn parse_string<T>(
        &mut self,
        name: &str,
        required: bool,
        parse: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Option<T> {
        let raw = self.take_string(name, required)?;
        match parse(&raw) {
            Ok(value) => Some(value),
            Err(message) => {
                self.error(name, message);
                None
            }
        }
    }

    /// Reports unknown fields, then every error collected.
    pub fn finish(mut self) -> Result<(), ApiError> {
        let mut unknown: Vec<String> = self.map.keys().cloned().collect();
        unknown.sort();
        for name in unknown {
            self.errors.push(FieldError::new(name, "is not allowed"));
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// Length in Unicode code points, as the contract counts.
pub fn chars(s: &str) -> usize {
    s.chars().count()
}

/// The rule for every string field but `description`.
pub const NO_CONTROL_RULE: &str = "must not contain control characters";

/// Whether `s` holds a control character (Unicode category Cc: U+0000 to
/// U+001F and U+007F to U+009F) other than the ones in `allowed`.
/// PostgreSQL refuses NUL in text, and no field has a use for the others.
/// Fields stored trimmed are checked once trimmed: tab, newline and the
/// other white-space controls around a value go the way of spaces.
pub fn has_control(s: &str, allowed: &[char]) -> bool {
    s.chars().any(|c| c.is_control() && !allowed.contains(&c))
}
