//! The Kubernetes manifests (`deploy/k8s`): well formed, in namespace
//! `tasks`, and consistent with each other: every reference resolves,
//! probes and drains fit the nodes, the ingress routes the public paths
//! only, and the per-address limits key on real clients.

use crate::{is_set, text, yaml};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// A manifest object and where it was found (`file#document`).
pub struct Object {
    pub at: String,
    pub doc: Value,
}

/// Loads and checks `deploy/k8s/*.yaml`.
pub fn check(root: &Path) -> crate::Outcome {
    let dir = root.join("deploy/k8s");
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for path in yaml::files_under(&dir) {
        let name = yaml::rel(root, &path);
        match yaml::read(&path).and_then(|t| yaml::documents(&t)) {
            Ok(docs) => objects.extend(
                docs.into_iter()
                    .enumerate()
                    .filter(|(_, doc)| !doc.is_null())
                    .map(|(i, doc)| Object {
                        at: format!("{name}#{i}"),
                        doc,
                    }),
            ),
            Err(err) => errors.push(format!("{name}: {err}")),
        }
    }
    errors.extend(problems(&objects));
    crate::outcome(errors, || {
        let mut kinds: Vec<_> = objects.iter().map(|o| text(&o.doc["kind"])).collect();
        kinds.sort();
        kinds.dedup();
        format!(
            "{} objects ({}): well formed and consistent",
            objects.len(),
            kinds.join(", ")
        )
    })
}

/// Everything wrong with a set of objects.
pub fn problems(objects: &[Object]) -> Vec<String> {
    let mut errors = Vec::new();
    for o in objects {
        if !o.doc.is_object() {
            errors.push(format!("{}: not a mapping", o.at));
            continue;
        }
        for key in ["apiVersion", "kind"] {
            if !is_set(&o.doc[key]) {
                errors.push(format!("{}: no {key}", o.at));
            }
        }
        if !is_set(&o.doc["metadata"]["name"]) {
            errors.push(format!("{}: no metadata.name", o.at));
        }
    }
    if objects.is_empty() {
        errors.push("no manifests in deploy/k8s".into());
    }
    if !errors.is_empty() {
        return errors;
    }
    let set = Objects(objects);
    set.namespaces(&mut errors);
    set.pods(&mut errors);
    set.deployments(&mut errors);
    set.services(&mut errors);
    set.scaling(&mut errors);
    set.ingress(&mut errors);
    set.trusted_proxies(&mut errors);
    errors
}

struct Objects<'a>(&'a [Object]);

/// Whether every label of `selector` is on `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_none_or(|sel| sel.iter().all(|(k, v)| &labels[k] == v))
}

/// A container's ports, by name and by number.
fn ports_of(container: &Value) -> Vec<Value> {
    let ports = container["ports"].as_array().cloned().unwrap_or_default();
    let names = ports
        .iter()
        .map(|p| p["name"].clone())
        .filter(|n| !n.is_null());
    let numbers = ports.iter().map(|p| p["containerPort"].clone());
    names.chain(numbers).collect()
}

fn items(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

impl<'a> Objects<'a> {
    fn of(&self, kind: &str) -> BTreeMap<String, &'a Object> {
        self.0
            .iter()
            .filter(|o| o.doc["kind"] == kind)
            .map(|o| (text(&o.doc["metadata"]["name"]), o))
            .collect()
    }

    fn pod_labels(o: &Object) -> &Value {
        &o.doc["spec"]["template"]["metadata"]["labels"]
    }

    /// Everything but the Namespace lives in namespace `tasks`.
    fn namespaces(&self, errors: &mut Vec<String>) {
        for o in self.0 {
            let (kind, meta) = (&o.doc["kind"], &o.doc["metadata"]);
            if kind == "Namespace" {
                if meta["name"] != "tasks" {
                    errors.push(format!("{}: namespace is not `tasks`", o.at));
                }
            } else if meta["namespace"] != "tasks" {
                errors.push(format!(
                    "{}: {} {} is not in namespace tasks",
                    o.at,
                    text(kind),
                    text(&meta["name"])
                ));
            }
        }
        if !self.of("Namespace").contains_key("tasks") {
            errors.push("no Namespace tasks".into());
        }
    }

    /// Pods of Deployments and Jobs: their ConfigMaps and Secrets exist,
    /// every container has resource requests and limits.
    fn pods(&self, errors: &mut Vec<String>) {
        let sources = [
            ("configMapRef", "ConfigMap", self.of("ConfigMap")),
            ("secretRef", "Secret", self.of("Secret")),
        ];
        for kind in ["Deployment", "Job"] {
            for (name, o) in self.of(kind) {
                for c in items(&o.doc["spec"]["template"]["spec"]["containers"]) {
                    for source in items(&c["envFrom"]) {
                        for (reference, kind, known) in &sources {
                            let wanted = &source[*reference]["name"];
                            if !wanted.is_null() && !known.contains_key(&text(wanted)) {
                                let wanted = text(wanted);
                                errors
                                    .push(format!("{}: {name} uses missing {kind} {wanted}", o.at));
                            }
                        }
                    }
                    let resources = &c["resources"];
                    if !is_set(&resources["requests"]) || !is_set(&resources["limits"]) {
                        errors.push(format!(
                            "{}: {name}/{} has no resource requests/limits",
                            o.at,
                            text(&c["name"])
                        ));
                    }
                }
            }
        }
    }

    /// Deployments: selectors match, probes on /readyz and /healthz, the
    /// pod outlives preStop plus the node's drain, scraped on a real port,
    /// listening on its container port.
    fn deployments(&self, errors: &mut Vec<String>) {
        for (name, o) in self.of("Deployment") {
            let at = &o.at;
            let spec = &o.doc["spec"];
            let template = &spec["template"];
            if !selects(
                &spec["selector"]["matchLabels"],
                &template["metadata"]["labels"],
            ) {
                errors.push(format!("{at}: selector does not match the pod labels"));
            }
            let pod = &template["spec"];
            let c = &pod["containers"][0];
            let env: BTreeMap<String, String> = items(&c["env"])
                .iter()
                .map(|e| (text(&e["name"]), text(&e["value"])))
                .collect();
            let numbers: Vec<String> = items(&c["ports"])
                .iter()
                .map(|p| text(&p["containerPort"]))
                .collect();
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                if c[probe].is_null() {
                    errors.push(format!("{at}: {name} has no {probe}"));
                }
            }
            if c["readinessProbe"]["httpGet"]["path"] != "/readyz" {
                errors.push(format!("{at}: {name} readinessProbe is not GET /readyz"));
            }
            if c["livenessProbe"]["httpGet"]["path"] != "/healthz" {
                errors.push(format!("{at}: {name} livenessProbe is not GET /healthz"));
            }
            // The pod must outlive preStop + the node's own drain.
            let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
            let pre = &c["lifecycle"]["preStop"];
            let sleep = if pre["exec"]["command"][0] == "sleep" {
                text(&pre["exec"]["command"][1]).parse().unwrap_or(0)
            } else {
                text(&pre["sleep"]["seconds"]).parse().unwrap_or(0)
            };
            let drain: u64 = env
                .get("SHUTDOWN_GRACE_SECS")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if drain == 0 {
                errors.push(format!("{at}: {name} does not set SHUTDOWN_GRACE_SECS"));
            }
            if grace <= sleep + drain {
                errors.push(format!(
                    "{at}: terminationGracePeriodSeconds {grace} <= preStop {sleep} + SHUTDOWN_GRACE_SECS {drain}"
                ));
            }
            let annotations = &template["metadata"]["annotations"];
            let scrape_port = text(&annotations["prometheus.io/port"]);
            if annotations["prometheus.io/scrape"] != "true" {
                errors.push(format!(
                    "{at}: {name} pods are not annotated prometheus.io/scrape"
                ));
            } else if !numbers.contains(&scrape_port) {
                errors.push(format!(
                    "{at}: prometheus.io/port {scrape_port} is not a container port"
                ));
            }
            let listen_var = if name == "ws-node" {
                "WS_LISTEN_ADDR"
            } else {
                "LISTEN_ADDR"
            };
            let listen = env.get(listen_var).map_or("", String::as_str);
            let port = listen
                .strip_prefix("0.0.0.0:")
                .and_then(|p| p.parse::<u16>().ok());
            if !port.is_some_and(|p| numbers.contains(&p.to_string())) {
                errors.push(format!(
                    "{at}: {name} listen address {listen:?} does not match its container port"
                ));
            }
        }
    }

    /// Services select some Deployment's pods, on ports those pods have.
    fn services(&self, errors: &mut Vec<String>) {
        let deployments = self.of("Deployment");
        for (name, o) in self.of("Service") {
            let selector = &o.doc["spec"]["selector"];
            let targets: Vec<_> = deployments
                .iter()
                .filter(|(_, d)| selects(selector, Self::pod_labels(d)))
                .collect();
            if targets.is_empty() {
                errors.push(format!(
                    "{}: Service {name} selects no Deployment's pods",
                    o.at
                ));
            }
            for port in items(&o.doc["spec"]["ports"]) {
                let target = &port["targetPort"];
                for (dn, d) in &targets {
                    if !ports_of(&d.doc["spec"]["template"]["spec"]["containers"][0])
                        .contains(target)
                    {
                        errors.push(format!(
                            "{}: Service {name} targetPort {} is not a port of {dn}",
                            o.at,
                            text(target)
                        ));
                    }
                }
            }
        }
    }

    /// Autoscalers target Deployments; disruption budgets select pods.
    fn scaling(&self, errors: &mut Vec<String>) {
        let deployments = self.of("Deployment");
        for (name, o) in self.of("HorizontalPodAutoscaler") {
            let target = &o.doc["spec"]["scaleTargetRef"];
            if target["kind"] != "Deployment" || !deployments.contains_key(&text(&target["name"])) {
                errors.push(format!(
                    "{}: HorizontalPodAutoscaler {name} targets missing {target}",
                    o.at
                ));
            }
        }
        for (name, o) in self.of("PodDisruptionBudget") {
            let selector = &o.doc["spec"]["selector"]["matchLabels"];
            if !deployments
                .values()
                .any(|d| selects(selector, Self::pod_labels(d)))
            {
                errors.push(format!(
                    "{}: PodDisruptionBudget {name} selects no pods",
                    o.at
                ));
            }
        }
    }

    /// The ingress routes the public paths to existing Service ports, and
    /// never the operational ones.
    fn ingress(&self, errors: &mut Vec<String>) {
        let services = self.of("Service");
        let mut routed = Vec::new();
        for (name, o) in self.of("Ingress") {
            for rule in items(&o.doc["spec"]["rules"]) {
                for path in items(&rule["http"]["paths"]) {
                    let (route, backend) = (text(&path["path"]), &path["backend"]["service"]);
                    routed.push(route.clone());
                    let service = text(&backend["name"]);
                    let Some(s) = services.get(&service) else {
                        errors.push(format!(
                            "{}: Ingress {name} routes {route} to missing Service {service}",
                            o.at
                        ));
                        continue;
                    };
                    let want = if backend["port"]["name"].is_null() {
                        &backend["port"]["number"]
                    } else {
                        &backend["port"]["name"]
                    };
                    let has = items(&s.doc["spec"]["ports"])
                        .iter()
                        .any(|p| &p["name"] == want || &p["port"] == want);
                    if !has {
                        errors.push(format!(
                            "{}: Ingress {name} uses port {} that Service {service} lacks",
                            o.at,
                            text(want)
                        ));
                    }
                }
            }
        }
        for path in ["/api", "/openapi.json", "/ws"] {
            if !routed.iter().any(|r| r == path) {
                errors.push(format!("Ingress: {path} is not routed"));
            }
        }
        for path in routed {
            if ["/", "/metrics", "/healthz", "/readyz"].contains(&path.as_str()) {
                errors.push(format!("Ingress: {path} must not be routed"));
            }
        }
    }

    /// The per-address limits key on the real client, never on the ingress
    /// controller: its pods (anywhere in the pod network) are trusted
    /// proxies, written as the api-node parses them.
    fn trusted_proxies(&self, errors: &mut Vec<String>) {
        let config = self.of("ConfigMap");
        let value = config
            .get("tasks-config")
            .map(|o| text(&o.doc["data"]["TRUSTED_PROXIES"]))
            .unwrap_or_default();
        let ranges: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .collect();
        if ranges.is_empty() {
            errors.push("ConfigMap tasks-config: TRUSTED_PROXIES is empty (the ingress would be the client)".into());
        }
        for range in ranges {
            if range.parse::<api_node::client_addr::IpRange>().is_err() {
                errors.push(format!(
                    "ConfigMap tasks-config: TRUSTED_PROXIES entry {range:?} is not an address or CIDR range"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(text: &str) -> Vec<Object> {
        yaml::documents(text)
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(i, doc)| Object {
                at: format!("t#{i}"),
                doc,
            })
            .collect()
    }

    /// A small deployment that passes every rule; tests break one thing.
    const GOOD: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: tasks}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: tasks-config, namespace: tasks}
data: {TRUSTED_PROXIES: "10.0.0.0/8, fd00::/8"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api-node, namespace: tasks}
spec:
  selector: {matchLabels: {app: api-node}}
  template:
    metadata:
      labels: {app: api-node}
      annotations: {prometheus.io/scrape: "true", prometheus.io/port: "8080"}
    spec:
      terminationGracePeriodSeconds: 40
      containers:
        - name: api-node
          envFrom: [{configMapRef: {name: tasks-config}}]
          env: [{name: LISTEN_ADDR, value: "0.0.0.0:8080"}, {name: SHUTDOWN_GRACE_SECS, value: "25"}]
          ports: [{name: http, containerPort: 8080}]
          resources: {requests: {cpu: 1}, limits: {cpu: 2}}
          lifecycle: {preStop: {exec: {command: [sleep, "5"]}}}
          livenessProbe: {httpGet: {path: /healthz, port: http}}
          readinessProbe: {httpGet: {path: /readyz, port: http}}
          startupProbe: {httpGet: {path: /readyz, port: http}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: tasks}
spec:
  selector: {app: api-node}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: public, namespace: tasks}
spec:
  rules:
    - http:
        paths:
          - {path: /api, backend: {service: {name: api, port: {name: http}}}}
          - {path: /openapi.json, backend: {service: {name: api, port: {number: 80}}}}
          - {path: /ws, backend: {service: {name: api, port: {name: http}}}}
"#;

    fn problems_after(from: &str, to: &str) -> Vec<String> {
        assert!(GOOD.contains(from), "{from}");
        problems(&objects(&GOOD.replacen(from, to, 1)))
    }

    #[test]
    fn a_consistent_set_passes() {
        assert_eq!(problems(&objects(GOOD)), Vec::<String>::new());
    }

    #[test]
    fn each_broken_reference_or_rule_is_reported() {
        let cases = [
            (
                "name: tasks-config}}]",
                "name: other}}]",
                "uses missing ConfigMap other",
            ),
            (
                "targetPort: http",
                "targetPort: metrics",
                "targetPort metrics is not a port of api-node",
            ),
            (
                "selector: {app: api-node}",
                "selector: {app: ws}",
                "selects no Deployment's pods",
            ),
            (
                "terminationGracePeriodSeconds: 40",
                "terminationGracePeriodSeconds: 30",
                "30 <= preStop 5 + SHUTDOWN_GRACE_SECS 25",
            ),
            (
                "path: /readyz, port: http}}\n          startupProbe",
                "path: /, port: http}}\n          startupProbe",
                "readinessProbe is not GET /readyz",
            ),
            ("\"0.0.0.0:8080\"", "\"127.0.0.1:8080\"", "listen address"),
            (
                "prometheus.io/port: \"8080\"",
                "prometheus.io/port: \"9\"",
                "prometheus.io/port 9 is not a container port",
            ),
            (
                "{path: /ws,",
                "{path: /metrics,",
                "/metrics must not be routed",
            ),
            (
                "port: {number: 80}",
                "port: {number: 81}",
                "uses port 81 that Service api lacks",
            ),
            (
                "10.0.0.0/8, fd00::/8",
                "10.0.0.0/8, proxy",
                "entry \"proxy\" is not an address",
            ),
            (
                "metadata: {name: api, namespace: tasks}",
                "metadata: {name: api}",
                "Service api is not in namespace tasks",
            ),
            (
                "resources: {requests: {cpu: 1}, limits: {cpu: 2}}",
                "resources: {requests: {cpu: 1}}",
                "has no resource requests/limits",
            ),
        ];
        for (from, to, expected) in cases {
            let found = problems_after(from, to);
            assert!(
                found.iter().any(|p| p.contains(expected)),
                "{from} -> {to}: expected {expected:?} in {found:?}"
            );
        }
    }
}
