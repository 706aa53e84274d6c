//! `cargo xtask deploy CHECK [DIR]`: one deploy check (see the crate docs
//! and `deploy/check.sh`, which runs them all). Prints the check's summary
//! line, or its problems one per line and exits 1.
//!
//! `cargo xtask redis-cluster DIR`: a local Redis Cluster, for
//! `start_redis_cluster` of `scripts/services.sh`.
//!
//! `cargo xtask metrics`: every metric the nodes export, one per line with
//! the node kinds exporting it (`scripts/cluster-check.sh` asks Prometheus
//! for each).

use std::path::Path;
#[cfg(feature = "nodes")]
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use xtask::Outcome;
#[cfg(feature = "nodes")]
use xtask::{alerts, compose, dashboard, dockerfiles, k8s, prometheus, yaml};

const USAGE: &str = "usage: xtask redis-cluster DIR
       xtask metrics
       xtask deploy yaml|k8s|compose|dockerfiles|dashboard|alerts
       xtask deploy dashboard-rules FILE
       xtask deploy prometheus-template|prometheus-compose|prometheus-k8s|prometheus-k8s-static DIR";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = match words.as_slice() {
        ["redis-cluster", dir] => redis_cluster(Path::new(dir)),
        #[cfg(feature = "nodes")]
        ["metrics"] => Ok(metrics()),
        #[cfg(feature = "nodes")]
        ["deploy", check] => deploy(&root(), check),
        #[cfg(feature = "nodes")]
        ["deploy", check, out] => deploy_into(&root(), check, Path::new(out)),
        _ => Err(vec![USAGE.to_string()]),
    };
    match outcome {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for problem in problems {
                println!("{problem}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Starts a Redis Cluster in `dir`; prints its URL (the primaries) and
/// then every node's port. REDIS_MAXMEMORY (default 256mb) bounds each
/// node, SVC_START_TIMEOUT (seconds, default 30) each wait.
fn redis_cluster(dir: &Path) -> Outcome {
    let settings = xtask::redis_cluster::Settings {
        maxmemory: std::env::var("REDIS_MAXMEMORY").unwrap_or_else(|_| "256mb".into()),
        timeout: Duration::from_secs(
            std::env::var("SVC_START_TIMEOUT")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(30),
        ),
    };
    let cluster = xtask::redis_cluster::start(dir, &settings).map_err(|e| vec![e])?;
    let ports: Vec<String> = cluster.ports.iter().map(u16::to_string).collect();
    Ok(format!("{}\n{}", cluster.url(), ports.join(" ")))
}

/// The repository's root (this crate's parent directory).
#[cfg(feature = "nodes")]
fn root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// One line per exported metric: its name and the node kinds exporting it.
#[cfg(feature = "nodes")]
fn metrics() -> String {
    let lines: Vec<String> = xtask::metrics::exported_by()
        .into_iter()
        .map(|(name, kinds)| format!("{name} {}", kinds.join(",")))
        .collect();
    lines.join("\n")
}

#[cfg(feature = "nodes")]
fn deploy(root: &Path, check: &str) -> Outcome {
    match check {
        "yaml" => yaml::check_all_parse(root),
        "k8s" => k8s::check(root),
        "compose" => compose::check(root),
        "dockerfiles" => dockerfiles::check(root),
        "dashboard" => dashboard::check(root),
        "alerts" => alerts::check(root),
        _ => Err(vec![USAGE.to_string()]),
    }
}

#[cfg(feature = "nodes")]
fn deploy_into(root: &Path, check: &str, out: &Path) -> Outcome {
    match check {
        "dashboard-rules" => {
            let board = dashboard::load(root)?;
            std::fs::write(out, dashboard::queries_as_rules(&board))
                .map_err(|e| vec![e.to_string()])?;
            Ok(format!("{} queries", dashboard::queries(&board).len()))
        }
        "prometheus-template" => prometheus::template(root, out),
        "prometheus-compose" => prometheus::compose(root, out),
        "prometheus-k8s" => prometheus::k8s(root, out, false),
        "prometheus-k8s-static" => prometheus::k8s(root, out, true),
        _ => Err(vec![USAGE.to_string()]),
    }
}
