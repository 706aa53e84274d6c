//! The compose file (`deploy/docker/compose.yml`): every service has an
//! image or a build whose Dockerfile exists, dependencies and mounts
//! resolve, health checks parse, nginx balances over services of the file,
//! the demo seed is opt-in, Redis memory is bounded, and the api-nodes
//! trust nginx (and only nginx) as their proxy.

use crate::{is_set, text, yaml};
use serde_json::Value;
use std::path::Path;

/// Loads and checks the compose file.
pub fn check(root: &Path) -> crate::Outcome {
    let path = root.join("deploy/docker/compose.yml");
    let doc = yaml::load(&path).map_err(|err| vec![err])?;
    let base = path.parent().unwrap_or(root);
    let errors = problems(&doc, &|rel| base.join(rel).exists(), &bash_parses);
    let services = doc["services"].as_object().map_or(0, |s| s.len());
    crate::outcome(errors, || {
        format!("{services} services, each with an image or build, references consistent")
    })
}

/// `Err(message)` when bash cannot parse `script`.
fn bash_parses(script: &str) -> Result<(), String> {
    let out = std::process::Command::new("bash")
        .args(["-n", "-c", script])
        .output()
        .map_err(|err| format!("bash: {err}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Everything wrong with a compose document; `exists` says whether a path
/// relative to the file exists, `parses` whether a bash script parses.
pub fn problems(
    doc: &Value,
    exists: &dyn Fn(&str) -> bool,
    parses: &dyn Fn(&str) -> Result<(), String>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let empty = serde_json::Map::new();
    let services = doc["services"].as_object().unwrap_or(&empty);
    if services.is_empty() {
        errors.push("no services".into());
    }
    for (name, s) in services {
        if !is_set(&s["image"]) && !is_set(&s["build"]) {
            errors.push(format!("{name}: neither image nor build"));
            continue;
        }
        let build = &s["build"];
        if is_set(build) {
            let (context, dockerfile) = match build {
                Value::String(context) => (context.clone(), "Dockerfile".to_string()),
                _ => (
                    build.get("context").map_or(".".into(), text),
                    build.get("dockerfile").map_or("Dockerfile".into(), text),
                ),
            };
            let file = format!("{context}/{dockerfile}");
            if !exists(&file) {
                errors.push(format!("{name}: no Dockerfile {file}"));
            }
        }
        let depends: Vec<(String, Value)> = match &s["depends_on"] {
            Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Value::Array(list) => list.iter().map(|d| (text(d), Value::Null)).collect(),
            _ => Vec::new(),
        };
        for (dep, condition) in depends {
            let Some(other) = services.get(&dep) else {
                errors.push(format!("{name}: depends on unknown service {dep}"));
                continue;
            };
            let condition = &condition["condition"];
            if condition == "service_healthy" && !is_set(&other["healthcheck"]) {
                errors.push(format!(
                    "{name}: waits for {dep} healthy, which has no healthcheck"
                ));
            }
            if condition == "service_completed_successfully"
                && !(other["restart"].is_null() || other["restart"] == "no")
            {
                errors.push(format!(
                    "{name}: waits for {dep} to complete, but {dep} restarts"
                ));
            }
        }
        for volume in s["volumes"].as_array().map_or(&[][..], Vec::as_slice) {
            let source = match volume {
                Value::String(v) => v.split(':').next().unwrap_or("").to_string(),
                other => text(&other["source"]),
            };
            if source.starts_with('.') {
                if !exists(&source) {
                    errors.push(format!("{name}: mounts missing {source}"));
                }
            } else if !source.is_empty() && doc["volumes"].get(&source).is_none() {
                errors.push(format!("{name}: named volume {source} is not declared"));
            }
        }
        let test = &s["healthcheck"]["test"];
        if test[0] == "CMD" && test[1] == "bash" && test[2] == "-c" {
            if let Err(err) = parses(&text(&test[3])) {
                errors.push(format!("{name}: healthcheck script does not parse: {err}"));
            }
        }
    }
    // The load balancer's upstreams are services of this file.
    let env = &doc["services"]["nginx"]["environment"];
    for var in ["API_SERVERS", "WS_SERVERS"] {
        for server in text(&env[var]).split_whitespace() {
            let host = server.rsplit_once(':').map_or("", |(host, _)| host);
            if !services.contains_key(host) {
                errors.push(format!("nginx {var}: {host} is not a service"));
            }
        }
    }
    if !is_set(&env["API_SERVERS"]) || !is_set(&env["WS_SERVERS"]) {
        errors.push("nginx: API_SERVERS / WS_SERVERS not set".into());
    }
    // The demo account (a public password) only when asked for.
    if let Some(seed) = services.get("seed") {
        let profiles = seed["profiles"].as_array();
        if !profiles.is_some_and(|p| p.iter().any(|p| p == "demo")) {
            errors.push("seed: runs by default; it must need the `demo` profile".into());
        }
    }
    // Redis memory is bounded, evicting least recently used keys.
    let redis = match &doc["services"]["redis"]["command"] {
        Value::Array(words) => words.iter().map(text).collect::<Vec<_>>().join(" "),
        other => text(other),
    };
    if !redis.contains("--maxmemory ") || !redis.contains("--maxmemory-policy allkeys-lru") {
        errors.push("redis: no --maxmemory with --maxmemory-policy allkeys-lru".into());
    }
    // TRUSTED_PROXIES must be exactly nginx's fixed address, on every
    // api-node: then the per-address limits key on the real client.
    let nginx_ip = text(&doc["services"]["nginx"]["networks"]["default"]["ipv4_address"]);
    for (name, s) in services {
        let proxies = &s["environment"]["TRUSTED_PROXIES"];
        if proxies.is_null() {
            if name.starts_with("api-node") {
                errors.push(format!(
                    "{name}: TRUSTED_PROXIES is not set (nginx would be the client)"
                ));
            }
        } else if text(proxies) != nginx_ip || nginx_ip.is_empty() {
            errors.push(format!(
                "{name}: TRUSTED_PROXIES {:?} is not nginx's address {nginx_ip:?}",
                text(proxies)
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
services:
  redis:
    image: redis:7
    command: [redis-server, --maxmemory, 256mb, --maxmemory-policy, allkeys-lru]
    healthcheck: {test: [CMD, bash, -c, "redis-cli ping | grep -q PONG"]}
  api-node-1:
    build: {context: ../.., dockerfile: deploy/docker/Dockerfile}
    environment: {TRUSTED_PROXIES: 172.28.0.10}
    depends_on: {redis: {condition: service_healthy}}
    volumes: [data:/data]
  nginx:
    image: nginx
    environment: {API_SERVERS: "api-node-1:8080", WS_SERVERS: "api-node-1:9000"}
    networks: {default: {ipv4_address: 172.28.0.10}}
    volumes: [./nginx.conf:/etc/nginx/nginx.conf:ro]
  seed:
    image: seed
    profiles: [demo]
volumes:
  data: {}
"#;

    fn problems_of(text: &str) -> Vec<String> {
        let doc = yaml::documents(text).unwrap().remove(0);
        let exists = |p: &str| ["../../deploy/docker/Dockerfile", "./nginx.conf"].contains(&p);
        let parses = |s: &str| {
            if s.contains("((") {
                Err("syntax error".to_string())
            } else {
                Ok(())
            }
        };
        problems(&doc, &exists, &parses)
    }

    #[test]
    fn a_consistent_file_passes() {
        assert_eq!(problems_of(GOOD), Vec::<String>::new());
    }

    #[test]
    fn each_broken_rule_is_reported() {
        let cases = [
            (
                "TRUSTED_PROXIES: 172.28.0.10",
                "TRUSTED_PROXIES: 0.0.0.0/0",
                "is not nginx's address",
            ),
            (
                "environment: {TRUSTED_PROXIES: 172.28.0.10}",
                "environment: {}",
                "TRUSTED_PROXIES is not set",
            ),
            (
                "api-node-1:9000",
                "ws-node:9000",
                "WS_SERVERS: ws-node is not a service",
            ),
            (
                "profiles: [demo]",
                "profiles: []",
                "must need the `demo` profile",
            ),
            ("allkeys-lru", "noeviction", "no --maxmemory"),
            (
                "dockerfile: deploy/docker/Dockerfile",
                "dockerfile: gone",
                "no Dockerfile ../../gone",
            ),
            (
                "[data:/data]",
                "[cache:/data]",
                "named volume cache is not declared",
            ),
            (
                "./nginx.conf:",
                "./gone.conf:",
                "mounts missing ./gone.conf",
            ),
            ("grep -q PONG", "((", "healthcheck script does not parse"),
            (
                "    healthcheck: {test: [CMD, bash, -c, \"redis-cli ping | grep -q PONG\"]}\n",
                "",
                "which has no healthcheck",
            ),
        ];
        for (from, to, expected) in cases {
            assert!(GOOD.contains(from), "{from}");
            let found = problems_of(&GOOD.replacen(from, to, 1));
            assert!(
                found.iter().any(|p| p.contains(expected)),
                "{from} -> {to}: expected {expected:?} in {found:?}"
            );
        }
    }
}
