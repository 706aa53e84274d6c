//! The Grafana dashboard (`deploy/grafana/dashboard.json`): importable
//! (a Prometheus data-source input, unique panel ids, grid positions), and
//! every query reads only metrics the nodes export.

use crate::metrics::{base_name, exported, PROMETHEUS_OWN};
use crate::promql::metric_names;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

const PATH: &str = "deploy/grafana/dashboard.json";

/// The dashboard, parsed.
pub fn load(root: &Path) -> Result<Value, Vec<String>> {
    let text = crate::yaml::read(&root.join(PATH)).map_err(|err| vec![err])?;
    serde_json::from_str(&text).map_err(|err| vec![format!("{PATH}: {err}")])
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut found = Vec::new();
    let mut pending: Vec<&Value> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .collect();
    while let Some(panel) = pending.pop() {
        found.push(panel);
        pending.extend(panel["panels"].as_array().into_iter().flatten().rev());
    }
    found
}

/// Every query of the dashboard.
pub fn queries(dashboard: &Value) -> Vec<String> {
    panels(dashboard)
        .into_iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .map(|t| crate::text(&t["expr"]))
        .collect()
}

/// The queries as recording rules, so `promtool check rules` parses their
/// PromQL (JSON is YAML, which promtool reads).
pub fn queries_as_rules(dashboard: &Value) -> String {
    let rules: Vec<Value> = queries(dashboard)
        .iter()
        .enumerate()
        .map(|(i, expr)| json!({ "record": format!("dashboard:query{i}"), "expr": expr }))
        .collect();
    json!({ "groups": [{ "name": "dashboard", "rules": rules }] }).to_string()
}

/// Checks the repository's dashboard.
pub fn check(root: &Path) -> crate::Outcome {
    problems(&load(root)?, &exported())
}

/// Checks a dashboard against the metric names `known`.
pub fn problems(dashboard: &Value, known: &BTreeSet<&str>) -> crate::Outcome {
    let mut errors = Vec::new();
    let inputs = dashboard["__inputs"].as_array().into_iter().flatten();
    if !inputs
        .into_iter()
        .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus")
    {
        errors.push("no __inputs entry DS_PROMETHEUS".into());
    }
    if !dashboard["schemaVersion"].is_i64() {
        errors.push("no schemaVersion".into());
    }
    let mut ids = BTreeSet::new();
    let mut used = BTreeSet::new();
    let mut queries = 0;
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("?");
        if !ids.insert(panel["id"].to_string()) {
            errors.push(format!("panel {title}: duplicate id {}", panel["id"]));
        }
        let kind = panel["type"].as_str().unwrap_or("");
        if !["row", "timeseries", "stat", "table"].contains(&kind) {
            errors.push(format!("panel {title}: type {kind:?}"));
        }
        if panel["gridPos"].is_null() {
            errors.push(format!("panel {title}: no gridPos"));
        }
        if kind == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
        if targets.is_empty() {
            errors.push(format!("panel {title}: no targets"));
        }
        for source in std::iter::once(panel).chain(targets) {
            if source["datasource"]["uid"] != "${DS_PROMETHEUS}" {
                errors.push(format!(
                    "panel {title}: datasource is not ${{DS_PROMETHEUS}}"
                ));
            }
        }
        for target in targets {
            queries += 1;
            let expr = crate::text(&target["expr"]);
            let names = metric_names(&expr);
            if names.is_empty() {
                errors.push(format!("panel {title}: no metric in {expr:?}"));
            }
            for name in names
                .iter()
                .filter(|n| !PROMETHEUS_OWN.contains(&n.as_str()))
            {
                match base_name(name, known) {
                    Some(base) => {
                        used.insert(base);
                    }
                    None => {
                        errors.push(format!("panel {title}: unknown metric {name} in {expr:?}"))
                    }
                }
            }
        }
    }
    crate::outcome(errors, || {
        let unused: Vec<&str> = known.difference(&used).copied().collect();
        let mut line = format!(
            "{queries} queries name {} metrics, all exported",
            used.len()
        );
        if !unused.is_empty() {
            line += &format!(" (not shown: {})", unused.join(", "));
        }
        line
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dashboard(expr: &str, second_id: u32) -> Value {
        let ds = json!({ "uid": "${DS_PROMETHEUS}" });
        json!({
            "__inputs": [{ "name": "DS_PROMETHEUS", "pluginId": "prometheus" }],
            "schemaVersion": 39,
            "panels": [
                { "id": 1, "type": "row", "title": "r", "gridPos": {}, "panels": [
                    { "id": second_id, "type": "timeseries", "title": "p", "gridPos": {}, "datasource": ds,
                      "targets": [{ "datasource": ds, "expr": expr }] }
                ]}
            ]
        })
    }

    #[test]
    fn reports_unknown_metrics_and_duplicate_ids() {
        let known: BTreeSet<&str> = ["a_seconds", "b_total"].into();
        let ok = problems(
            &dashboard("rate(a_seconds_sum[5m]) / rate(a_seconds_count[5m])", 2),
            &known,
        );
        assert_eq!(
            ok,
            Ok("1 queries name 1 metrics, all exported (not shown: b_total)".into())
        );
        let unknown = problems(&dashboard("rate(c_total[5m])", 2), &known).unwrap_err();
        assert!(unknown[0].contains("unknown metric c_total"), "{unknown:?}");
        let duplicate = problems(&dashboard("up", 1), &known).unwrap_err();
        assert!(duplicate[0].contains("duplicate id 1"), "{duplicate:?}");
        assert_eq!(
            queries_as_rules(&dashboard("up", 2)),
            r#"{"groups":[{"name":"dashboard","rules":[{"expr":"up","record":"dashboard:query0"}]}]}"#
        );
    }
}
