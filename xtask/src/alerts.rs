//! The alerting rules (`deploy/prometheus/alerts.yml`): every alert has a
//! severity of `critical` (pages) or `warning`, a summary, and a
//! `runbook_url` naming a section of `docs/runbook.md` that names it; every
//! metric a rule reads is exported by the nodes, Prometheus's own, or
//! recorded in the same file; and `alerts.test.yml` has, for every alert, a
//! case where it fires and one where it stays quiet.

use crate::metrics::{base_name, exported, PROMETHEUS_OWN};
use crate::promql::metric_names;
use crate::{text, yaml};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Checks the repository's rules, runbook and rule tests.
pub fn check(root: &Path) -> crate::Outcome {
    let rules = yaml::load(&root.join("deploy/prometheus/alerts.yml")).map_err(|e| vec![e])?;
    let tests = yaml::load(&root.join("deploy/prometheus/alerts.test.yml")).map_err(|e| vec![e])?;
    let runbook = yaml::read(&root.join("docs/runbook.md")).map_err(|e| vec![e])?;
    problems(&rules, &tests, &runbook, &exported())
}

/// A Markdown heading's anchor as GitHub makes it: lower case, punctuation
/// dropped, spaces to hyphens.
pub fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Each section of a Markdown text by its anchor: the heading and what
/// follows it up to the next heading of the same or a higher level.
pub fn sections(markdown: &str) -> BTreeMap<String, String> {
    let lines: Vec<&str> = markdown.lines().collect();
    let level = |line: &str| {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        (hashes > 0 && line[hashes..].starts_with([' ', '\t'])).then_some(hashes)
    };
    let mut found = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(depth) = level(line) else { continue };
        let end = (i + 1..lines.len())
            .find(|&j| level(lines[j]).is_some_and(|d| d <= depth))
            .unwrap_or(lines.len());
        found.insert(anchor(&line[depth..]), lines[i..end].join("\n"));
    }
    found
}

/// Checks rules, their tests and the runbook against the metric names
/// `known`.
pub fn problems(
    rules: &Value,
    tests: &Value,
    runbook: &str,
    known: &BTreeSet<&str>,
) -> crate::Outcome {
    let mut errors = Vec::new();
    let all: Vec<&Value> = rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    let recorded: BTreeSet<String> = all
        .iter()
        .filter(|r| !r["record"].is_null())
        .map(|r| text(&r["record"]))
        .collect();
    let sections = sections(runbook);
    let mut alerts = BTreeSet::new();
    for rule in &all {
        let is_alert = !rule["alert"].is_null();
        let name = text(if is_alert {
            &rule["alert"]
        } else {
            &rule["record"]
        });
        for metric in metric_names(&text(&rule["expr"])) {
            let ours = PROMETHEUS_OWN.contains(&metric.as_str())
                || recorded.contains(&metric)
                || base_name(&metric, known).is_some();
            if !ours {
                errors.push(format!(
                    "{name}: {metric} is not exported by the nodes nor recorded here"
                ));
            }
        }
        if !is_alert {
            continue;
        }
        let severity = text(&rule["labels"]["severity"]);
        if !["critical", "warning"].contains(&severity.as_str()) {
            errors.push(format!(
                "{name}: severity {severity:?} (critical or warning)"
            ));
        }
        let annotations = &rule["annotations"];
        if !crate::is_set(&annotations["summary"]) {
            errors.push(format!("{name}: no summary"));
        }
        let url = text(&annotations["runbook_url"]);
        let section = url.strip_prefix("docs/runbook.md#").filter(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        });
        match section {
            None => errors.push(format!(
                "{name}: runbook_url {url:?} is not docs/runbook.md#<section>"
            )),
            Some(s) => match sections.get(s) {
                None => errors.push(format!("{name}: docs/runbook.md has no section #{s}")),
                Some(body) if !body.contains(&name) => errors.push(format!(
                    "{name}: section #{s} of docs/runbook.md does not name it"
                )),
                Some(_) => {}
            },
        }
        alerts.insert(name);
    }

    if tests["rule_files"] != serde_json::json!(["alerts.yml"]) {
        errors.push("alerts.test.yml: rule_files is not [alerts.yml]".into());
    }
    let (mut fires, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for test in tests["tests"].as_array().into_iter().flatten() {
        for case in test["alert_rule_test"].as_array().into_iter().flatten() {
            let set = if crate::is_set(&case["exp_alerts"]) {
                &mut fires
            } else {
                &mut quiet
            };
            set.insert(text(&case["alertname"]));
        }
    }
    for name in &alerts {
        if !fires.contains(name) {
            errors.push(format!("{name}: no test in alerts.test.yml where it fires"));
        }
        if !quiet.contains(name) {
            errors.push(format!(
                "{name}: no test in alerts.test.yml where it stays quiet"
            ));
        }
    }
    for name in fires.union(&quiet).filter(|n| !alerts.contains(*n)) {
        errors.push(format!(
            "alerts.test.yml tests {name}, which alerts.yml does not define"
        ));
    }
    crate::outcome(errors, || {
        format!(
            "{} alerts with severity, summary and runbook section, each tested firing and quiet; {} recording rules; every metric exported",
            alerts.len(),
            recorded.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
groups:
  - name: g
    rules:
      - record: job:errors:rate5m
        expr: sum(rate(errors_total[5m]))
      - alert: ErrorsHigh
        expr: job:errors:rate5m > 1
        labels: {severity: warning}
        annotations: {summary: errors, runbook_url: "docs/runbook.md#errors-are-high"}
"#;
    const TESTS: &str = r#"
rule_files: [alerts.yml]
tests:
  - alert_rule_test:
      - {alertname: ErrorsHigh, exp_alerts: [{exp_labels: {severity: warning}}]}
      - {alertname: ErrorsHigh, exp_alerts: []}
"#;
    const RUNBOOK: &str =
        "# Runbook\n\n## Errors are high!\n\nErrorsHigh fires when...\n\n## Other\n";

    fn check(rules: &str, tests: &str, runbook: &str) -> crate::Outcome {
        let known: BTreeSet<&str> = ["errors_total"].into();
        let doc = |t: &str| yaml::documents(t).unwrap().remove(0);
        problems(&doc(rules), &doc(tests), runbook, &known)
    }

    #[test]
    fn anchors_and_sections_follow_github() {
        assert_eq!(anchor(" Errors are high! "), "errors-are-high");
        let found = sections(RUNBOOK);
        assert!(found["errors-are-high"].contains("ErrorsHigh"));
        assert!(!found["errors-are-high"].contains("Other"));
        assert!(found["runbook"].contains("Other"));
    }

    #[test]
    fn a_complete_rule_passes_and_each_gap_is_reported() {
        assert!(
            check(RULES, TESTS, RUNBOOK).is_ok(),
            "{:?}",
            check(RULES, TESTS, RUNBOOK)
        );
        let cases = [
            (
                RULES.replace("warning}", "info}"),
                TESTS.into(),
                RUNBOOK.into(),
                "severity \"info\"",
            ),
            (
                RULES.replace("errors_total", "errs_total"),
                TESTS.into(),
                RUNBOOK.into(),
                "errs_total is not exported",
            ),
            (
                RULES.replace("#errors-are-high", "#missing"),
                TESTS.into(),
                RUNBOOK.into(),
                "has no section #missing",
            ),
            (
                RULES.into(),
                TESTS.into(),
                RUNBOOK.replace("ErrorsHigh", "It"),
                "does not name it",
            ),
            (
                RULES.into(),
                TESTS.replace("      - {alertname: ErrorsHigh, exp_alerts: []}\n", ""),
                RUNBOOK.into(),
                "where it stays quiet",
            ),
            (
                RULES.into(),
                TESTS.replace("[alerts.yml]", "[x.yml]"),
                RUNBOOK.into(),
                "rule_files",
            ),
        ];
        for (rules, tests, runbook, expected) in cases {
            let found = check(&rules, &tests, &runbook).unwrap_err();
            assert!(
                found.iter().any(|p| p.contains(expected)),
                "expected {expected:?} in {found:?}"
            );
        }
    }
}
