//! The Prometheus configurations, rendered the way each deployment renders
//! them into a directory where `promtool check config` then reads them
//! (with the alerting rules next to them, where `rule_files` looks):
//! the template with local targets, the compose service's own rendering,
//! and the Kubernetes ConfigMap.

use crate::{text, yaml};
use serde_json::Value;
use std::path::Path;

const TEMPLATE: &str = "deploy/prometheus/prometheus.yml";
const RULES: &str = "deploy/prometheus/alerts.yml";

fn write(path: &Path, contents: &str) -> Result<(), Vec<String>> {
    std::fs::write(path, contents).map_err(|err| vec![format!("{}: {err}", path.display())])
}

fn expect(ok: bool, problem: impl FnOnce() -> String) -> Result<(), Vec<String>> {
    if ok {
        Ok(())
    } else {
        Err(vec![problem()])
    }
}

/// The configuration's `rule_files` must be the rules beside it.
fn expect_rules_beside(config: &Value) -> Result<(), Vec<String>> {
    expect(
        config["rule_files"] == serde_json::json!(["alerts.yml"]),
        || format!("rule_files is {}, not [alerts.yml]", config["rule_files"]),
    )
}

/// The template with two local targets per node kind, into `out`.
pub fn template(root: &Path, out: &Path) -> crate::Outcome {
    let (api, ws) = (
        ["127.0.0.1:8081", "127.0.0.1:8082"],
        ["127.0.0.1:8091", "127.0.0.1:8092"],
    );
    let list = |targets: [&str; 2]| format!("['{}', '{}']", targets[0], targets[1]);
    let rendered = yaml::read(&root.join(TEMPLATE))
        .map_err(|e| vec![e])?
        .replace("__API_TARGETS__", &list(api))
        .replace("__WS_TARGETS__", &list(ws));
    write(&out.join("prometheus.yml"), &rendered)?;
    write(
        &out.join("alerts.yml"),
        &yaml::read(&root.join(RULES)).map_err(|e| vec![e])?,
    )?;
    let config: Value = yaml::parse(&rendered).map_err(|e| vec![format!("rendered: {e}")])?;
    expect(config["global"]["scrape_interval"] == "5s", || {
        "scrape_interval is not 5s".into()
    })?;
    expect_rules_beside(&config)?;
    for (job, want) in [("api-node", api), ("ws-node", ws)] {
        let got = scrape_targets(&config, job);
        expect(got == want, || format!("{job} targets rendered as {got:?}"))?;
    }
    Ok("renders with local targets".into())
}

/// The static targets of a scrape job.
fn scrape_targets(config: &Value, job: &str) -> Vec<String> {
    config["scrape_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| j["job_name"] == job)
        .flat_map(|j| {
            j["static_configs"][0]["targets"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .map(text)
        .collect()
}

/// The compose service's own rendering (its `sed` and `cp`, with paths
/// mapped into the repository and `out`), run by `sh`.
pub fn compose(root: &Path, out: &Path) -> crate::Outcome {
    let compose = yaml::load(&root.join("deploy/docker/compose.yml")).map_err(|e| vec![e])?;
    let service = &compose["services"]["prometheus"];
    let command = match &service["command"] {
        Value::Array(words) => text(&words[0]),
        other => text(other),
    };
    let render = command
        .split("&& exec")
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let (template, rendered) = (
        "/etc/prometheus/prometheus.yml.template",
        "/prometheus/prometheus.yml",
    );
    expect(
        render.contains(template) && render.contains(rendered),
        || format!("the command does not render the template: {render}"),
    )?;
    // The rules go next to the rendered configuration, from a mounted file.
    let rules_source = "/etc/prometheus/alerts.yml.source";
    let copy = format!("cp {rules_source} /prometheus/alerts.yml");
    expect(render.contains(&copy), || {
        format!("the command does not copy the rules: {render}")
    })?;
    let mount = format!("../prometheus/alerts.yml:{rules_source}:ro");
    let mounted = service["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|v| v == mount.as_str());
    expect(mounted, || {
        format!("deploy/prometheus/alerts.yml is not mounted at {rules_source}")
    })?;
    let script = render
        .replace(
            &copy,
            &format!(
                "cp {} {}",
                root.join(RULES).display(),
                out.join("alerts.yml").display()
            ),
        )
        .replace(template, &root.join(TEMPLATE).display().to_string())
        .replace(
            &format!("> {rendered}"),
            &format!("> {}", out.join("prometheus.yml").display()),
        );
    let status = std::process::Command::new("sh")
        .args(["-c", &script])
        .status()
        .map_err(|e| vec![format!("sh: {e}")])?;
    expect(status.success(), || {
        format!("the rendering failed ({status}): {script}")
    })?;
    let config = yaml::load(&out.join("prometheus.yml")).map_err(|e| vec![e])?;
    expect_rules_beside(&config)?;
    let targets: Vec<Vec<String>> = ["api-node", "ws-node"]
        .iter()
        .map(|job| scrape_targets(&config, job))
        .collect();
    expect(targets.iter().all(|t| !t.is_empty()), || {
        format!("no targets rendered: {targets:?}")
    })?;
    Ok(format!("renders with targets {targets:?}"))
}

/// The Kubernetes ConfigMap's configuration and rules (which must equal
/// `deploy/prometheus/alerts.yml`), into `out`. With `static_targets`, pod
/// discovery is swapped for a static target, for a promtool built without
/// Kubernetes discovery (Debian's).
pub fn k8s(root: &Path, out: &Path, static_targets: bool) -> crate::Outcome {
    let docs = yaml::read(&root.join("deploy/k8s/prometheus-config.yaml"))
        .and_then(|t| yaml::documents(&t))
        .map_err(|e| vec![e])?;
    let map = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .ok_or_else(|| vec!["no ConfigMap in deploy/k8s/prometheus-config.yaml".to_string()])?;
    let config_text = text(&map["data"]["prometheus.yml"]);
    let mut config: Value =
        yaml::parse(&config_text).map_err(|e| vec![format!("prometheus.yml: {e}")])?;
    expect_rules_beside(&config)?;
    let rules = yaml::read(&root.join(RULES)).map_err(|e| vec![e])?;
    if text(&map["data"]["alerts.yml"]) != rules {
        return Err(vec![
            "the ConfigMap's alerts.yml is not deploy/prometheus/alerts.yml: copy it there, indented by four spaces".into(),
        ]);
    }
    let job = &config["scrape_configs"][0];
    expect(job["kubernetes_sd_configs"][0]["role"] == "pod", || {
        "not role: pod".into()
    })?;
    let keeps_annotated = job["relabel_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| {
            r["action"] == "keep" && text(&r["source_labels"][0]).contains("prometheus_io_scrape")
        });
    expect(keeps_annotated, || "no keep on prometheus.io/scrape".into())?;
    write(&out.join("alerts.yml"), &rules)?;
    if static_targets {
        for job in config["scrape_configs"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if let Some(job) = job.as_object_mut() {
                if job.remove("kubernetes_sd_configs").is_some() {
                    job.insert(
                        "static_configs".into(),
                        serde_json::json!([{ "targets": ["127.0.0.1:1"] }]),
                    );
                }
            }
        }
        write(&out.join("prometheus.yml"), &config.to_string())?;
        Ok("rendered with a static target in place of pod discovery".into())
    } else {
        write(&out.join("prometheus.yml"), &config_text)?;
        Ok("rendered, pods discovered by annotation, rules the same as deploy/prometheus/alerts.yml".into())
    }
}
