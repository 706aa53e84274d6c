//! `--name value` arguments, with defaults.

use std::collections::HashMap;

/// The command and its options.
pub struct Args {
    pub command: String,
    options: HashMap<String, String>,
}

impl Args {
    pub fn from_env() -> Self {
        let mut raw = std::env::args().skip(1);
        let command = raw.next().unwrap_or_default();
        let mut options = HashMap::new();
        while let Some(name) = raw.next() {
            if let Some(name) = name.strip_prefix("--") {
                options.insert(name.to_owned(), raw.next().unwrap_or_default());
            }
        }
        Self { command, options }
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.options
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }

    pub fn number(&self, name: &str, default: u64) -> u64 {
        self.options
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    pub fn api(&self) -> String {
        self.string("api", "http://127.0.0.1:8080")
    }

    pub fn ws(&self) -> String {
        self.string("ws", "ws://127.0.0.1:8090/ws/updates")
    }
}

impl Args {
    /// Overrides an option (scenarios built on others).
    pub fn set(&mut self, name: &str, value: &str) {
        self.options.insert(name.to_owned(), value.to_owned());
    }
}
