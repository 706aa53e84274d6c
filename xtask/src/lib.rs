//! Repository tasks that need more than a shell line: the content checks
//! of everything under `deploy/` (Kubernetes manifests, the compose file,
//! Dockerfiles, the Grafana dashboard, the alerting rules and the
//! Prometheus configurations), run by `deploy/check.sh` beside the tools
//! only a shell can drive (`nginx -t`, `promtool`, a compose client); and
//! bringing up a local Redis Cluster ([`redis_cluster`]) for
//! `scripts/services.sh`.
//!
//! Each check returns an [`Outcome`]: its summary line when it passes, else
//! one line per problem. The checks work on parsed documents, so each is
//! unit-tested on small broken inputs as well as run on the repository.

#[cfg(feature = "nodes")]
pub mod alerts;
pub mod compose;
#[cfg(feature = "nodes")]
pub mod dashboard;
pub mod dockerfiles;
#[cfg(feature = "nodes")]
pub mod k8s;
#[cfg(feature = "nodes")]
pub mod metrics;
pub mod prometheus;
pub mod promql;
pub mod redis_cluster;
pub mod yaml;

/// A check's result: the summary line, or every problem found.
pub type Outcome = Result<String, Vec<String>>;

/// `Ok(summary)` when `errors` is empty.
pub fn outcome(errors: Vec<String>, summary: impl FnOnce() -> String) -> Outcome {
    if errors.is_empty() {
        Ok(summary())
    } else {
        Err(errors)
    }
}

/// A value as text the way a YAML author reads it: strings bare, numbers
/// and the rest as written.
pub fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Whether a value counts as set (present, not empty, not false or zero).
pub fn is_set(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
    }
}
