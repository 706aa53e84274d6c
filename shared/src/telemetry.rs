//! Tracing set-up: `RUST_LOG` filters, `LOG_FORMAT=json` switches to one JSON
//! object per line for log shippers.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call more than once (tests start
/// several nodes in one process): later calls are no-ops.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
