#!/usr/bin/env bash
# Static checks of everything under deploy/ that this machine can check
# without a Docker engine or a Kubernetes cluster:
#   - the nginx template renders through deploy/docker/nginx-entrypoint.sh
#     (its one renderer, also used by scripts/cluster.sh and the tests) and
#     `nginx -t` accepts it;
#   - every YAML file parses; the Kubernetes manifests are well formed, refer
#     to each other consistently and (when kubernetes-validate can be
#     installed) pass the Kubernetes schemas;
#   - the compose file is consistent (and `docker compose config` accepts it
#     when a compose client is installed);
#   - the Dockerfiles copy only paths that exist;
#   - the Grafana dashboard loads and names only metrics the nodes export
#     (api-node/src/metrics.rs, ws-node/src/metrics.rs, shared/src/metrics.rs)
#     or Prometheus's own (up, ALERTS), in valid PromQL;
#   - the alerting rules (deploy/prometheus/alerts.yml) pass `promtool check
#     rules`; each alert has a severity, a summary and a runbook section of
#     docs/runbook.md, reads only exported metrics, and has unit tests in
#     alerts.test.yml where it fires and where it stays quiet, which
#     `promtool test rules` runs;
#   - the Prometheus template renders and `promtool check config` accepts it
#     with its rules, as does the compose rendering and the Kubernetes
#     configuration (whose copy of the rules must equal alerts.yml);
#   - the shell scripts parse.
# One line per check, then `deploy checks: N passed, M failed[, K skipped]`;
# exits 1 when any check failed.
#
# Installs what it needs from Debian's packages when missing (python3-yaml,
# prometheus for promtool, docker-compose; with sudo when not root), and
# kubernetes-validate from PyPI into .local/deploy-check/venv. DEPLOY_CHECK_NO_INSTALL=1 installs
# nothing (the checks needing a missing tool are then skipped).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
NGINX=${NGINX:-/usr/sbin/nginx}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/deploy-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
skipped=0

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

# apt_install PKG...: installs Debian packages, refreshing the package lists
# once if the first try fails. Quiet; returns non-zero when it cannot.
apt_updated=0
apt_install() {
    [ "${DEPLOY_CHECK_NO_INSTALL:-0}" = 1 ] && return 1
    command -v apt-get >/dev/null || return 1
    if as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
        >>"$WORK/apt.log" 2>&1; then
        return 0
    fi
    if [ "$apt_updated" = 0 ]; then
        apt_updated=1
        as_root apt-get update -qq >>"$WORK/apt.log" 2>&1 || true
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
            >>"$WORK/apt.log" 2>&1 && return 0
    fi
    return 1
}

# check NAME FUNCTION [ARGS...]: runs FUNCTION in a subshell with `set -e`
# in force; its output is shown (indented) only when it fails. The last line
# it prints is the detail on the summary line. A function that exits 77 was
# skipped (the last line says why).
check() {
    local name=$1 rc=0 detail
    shift
    set +e
    ( set -euo pipefail; "$@" ) >"$WORK/out" 2>&1
    rc=$?
    set -e
    detail=$(tail -n 1 "$WORK/out")
    if [ "$rc" = 0 ]; then
        passed=$((passed + 1))
        echo "ok    $name${detail:+: $detail}"
    elif [ "$rc" = 77 ]; then
        skipped=$((skipped + 1))
        echo "skip  $name${detail:+: $detail}"
    else
        failed=$((failed + 1))
        echo "FAIL  $name"
        sed 's/^/        /' "$WORK/out"
    fi
}

# py ARGS...: python3 on the script from stdin, failures as one short line
# (the exception) rather than a traceback.
py() {
    "$PYTHON" -c '
import sys
def hook(kind, value, tb):
    print(f"{kind.__name__}: {value}")
    sys.exit(1)
sys.excepthook = hook
source = sys.stdin.read()
exec(compile(source, "check", "exec"), {"__name__": "__main__"})
' "$@"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- tools ------------------------------------------------------------------

# PyYAML: Debian's python3-yaml serves /usr/bin/python3, which need not be
# the python3 first on PATH (pyenv and the like).
PYTHON=python3
have_yaml=0
if python3 -c 'import yaml' 2>/dev/null; then
    have_yaml=1
else
    apt_install python3-yaml || true
    for candidate in python3 /usr/bin/python3; do
        if "$candidate" -c 'import yaml' 2>/dev/null; then
            PYTHON=$candidate
            have_yaml=1
            break
        fi
    done
fi

PROMTOOL=$(command -v promtool || true)
if [ -z "$PROMTOOL" ]; then
    apt_install prometheus || true
    PROMTOOL=$(command -v promtool || true)
fi

# A compose client, for `compose config` (Debian's docker-compose is the
# Python one; the Docker CLI's plugin is used when present).
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
    apt_install docker-compose || true
fi

KV_VENV=$ROOT/.local/deploy-check/venv
KV=""
if [ -x "$KV_VENV/bin/kubernetes-validate" ]; then
    KV=$KV_VENV/bin/kubernetes-validate
elif [ "${DEPLOY_CHECK_NO_INSTALL:-0}" != 1 ]; then
    if python3 -m venv "$KV_VENV" >>"$WORK/pip.log" 2>&1 \
        && "$KV_VENV/bin/pip" install -q kubernetes-validate >>"$WORK/pip.log" 2>&1; then
        KV=$KV_VENV/bin/kubernetes-validate
    else
        rm -rf "$KV_VENV"
    fi
fi

need_yaml() {
    if [ "$have_yaml" != 1 ]; then
        echo "PyYAML is not available (apt-get install python3-yaml failed)"
        exit 1
    fi
}

# --- (a) nginx template -------------------------------------------------------

check_nginx_entrypoint() {
    local dir port
    dir=$WORK/nginx-entrypoint
    port=$(free_port)
    API_SERVERS="127.0.0.1:1 127.0.0.1:2" WS_SERVERS="127.0.0.1:3 127.0.0.1:4" \
        LISTEN="127.0.0.1:$port" RUNTIME_DIR="$dir" NGINX_TEMPLATE=deploy/nginx/nginx.conf \
        NGINX_BIN="$NGINX" NGINX_LOG_FILES=1 \
        sh deploy/docker/nginx-entrypoint.sh -t -q -e "$dir/startup-error.log"
    grep -q 'server 127.0.0.1:1 max_fails=1 fail_timeout=2s; server 127.0.0.1:2 max_fails=1 fail_timeout=2s;' "$dir/nginx.conf"
    grep -q 'server 127.0.0.1:3 max_fails=0; server 127.0.0.1:4 max_fails=0;' "$dir/nginx.conf"
    # A bad server list is refused before nginx starts.
    if API_SERVERS="a;b" WS_SERVERS="c:1" RUNTIME_DIR="$dir-bad" NGINX_TEMPLATE=deploy/nginx/nginx.conf \
        NGINX_BIN=false sh deploy/docker/nginx-entrypoint.sh 2>/dev/null; then
        echo "the entrypoint accepted API_SERVERS='a;b'"
        exit 1
    fi
    echo "renders from API_SERVERS/WS_SERVERS/LISTEN/RUNTIME_DIR, nginx -t accepts it, bad input refused"
}

# No secret in nginx's logs: the access log format leaves out the query
# string (browsers send their token in /ws/updates?token=), the Referer and
# credentials; the error log, whose lines end with the raw request line, is
# `crit` only where tokens travel in URLs.
check_nginx_logs() {
    local conf=deploy/nginx/nginx.conf formats
    formats=$(sed -n '/^ *log_format/,/;$/p' "$conf")
    [ -n "$formats" ] || { echo "no log_format"; exit 1; }
    if grep -Eq '\$(request|request_uri|args|query_string|arg_[a-z_]+|http_referer|http_authorization|http_cookie)\b' <<<"$formats"; then
        echo "a log_format logs the query string, the Referer or credentials:"
        echo "$formats"
        exit 1
    fi
    if grep -E '^ *access_log ' "$conf" | grep -Eqv 'access_log [^ ]+ tasks |access_log off'; then
        echo "an access_log does not use the tasks format"
        exit 1
    fi
    sed -n '/location \/ws\/ {/,/}/p' "$conf" | grep -Eq '^ *error_log [^ ]+ crit;' || {
        echo "location /ws/ logs errors below crit (its lines would carry ?token=)"
        exit 1
    }
    echo "access log without query strings, /ws/ error log crit only"
}

# --- (b) YAML, Kubernetes ------------------------------------------------------

check_yaml_parses() {
    need_yaml
    py <<'PY'
import pathlib, sys, yaml
files = sorted(p for p in pathlib.Path("deploy").rglob("*") if p.suffix in (".yml", ".yaml"))
bad = 0
docs = 0
for p in files:
    try:
        docs += sum(1 for d in yaml.safe_load_all(p.read_text()) if d is not None)
    except yaml.YAMLError as e:
        print(f"{p}: {e}")
        bad += 1
if bad:
    sys.exit(1)
print(f"{len(files)} files, {docs} documents")
PY
}

check_k8s_manifests() {
    need_yaml
    py <<'PY'
import pathlib, re, sys, yaml
errors = []
objs = []
for p in sorted(pathlib.Path("deploy/k8s").glob("*.y*ml")):
    for i, d in enumerate(yaml.safe_load_all(p.read_text())):
        if d is None:
            continue
        where = f"{p}#{i}"
        if not isinstance(d, dict):
            errors.append(f"{where}: not a mapping")
            continue
        for key in ("apiVersion", "kind"):
            if not d.get(key):
                errors.append(f"{where}: no {key}")
        name = (d.get("metadata") or {}).get("name")
        if not name:
            errors.append(f"{where}: no metadata.name")
        objs.append((where, d))
if not objs:
    errors.append("no manifests in deploy/k8s")

def of(kind):
    return {d["metadata"]["name"]: (w, d) for w, d in objs if d.get("kind") == kind}

# Everything but the Namespace lives in namespace `tasks`.
for w, d in objs:
    if d.get("kind") == "Namespace":
        if d["metadata"]["name"] != "tasks":
            errors.append(f"{w}: namespace is not `tasks`")
    elif d["metadata"].get("namespace") != "tasks":
        errors.append(f"{w}: {d['kind']} {d['metadata'].get('name')} is not in namespace tasks")
if "tasks" not in of("Namespace"):
    errors.append("no Namespace tasks")

deployments, services = of("Deployment"), of("Service")
configmaps, secrets = of("ConfigMap"), of("Secret")

def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())

def pod_specs():
    for kind in ("Deployment", "Job"):
        for name, (w, d) in of(kind).items():
            yield kind, name, w, d["spec"]["template"]

for kind, name, w, tmpl in pod_specs():
    spec = tmpl["spec"]
    for c in spec.get("containers", []):
        for ref in c.get("envFrom", []):
            if "configMapRef" in ref and ref["configMapRef"]["name"] not in configmaps:
                errors.append(f"{w}: {name} uses missing ConfigMap {ref['configMapRef']['name']}")
            if "secretRef" in ref and ref["secretRef"]["name"] not in secrets:
                errors.append(f"{w}: {name} uses missing Secret {ref['secretRef']['name']}")
        if not c.get("resources", {}).get("requests") or not c.get("resources", {}).get("limits"):
            errors.append(f"{w}: {name}/{c['name']} has no resource requests/limits")

for name, (w, d) in deployments.items():
    spec = d["spec"]
    tmpl = spec["template"]
    if not labels_match(spec["selector"].get("matchLabels"), tmpl["metadata"].get("labels", {})):
        errors.append(f"{w}: selector does not match the pod labels")
    podspec = tmpl["spec"]
    c = podspec["containers"][0]
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe not in c:
            errors.append(f"{w}: {name} has no {probe}")
    if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
        errors.append(f"{w}: {name} readinessProbe is not GET /readyz")
    if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
        errors.append(f"{w}: {name} livenessProbe is not GET /healthz")
    # The pod must outlive preStop + the node's own drain.
    grace = podspec.get("terminationGracePeriodSeconds", 30)
    pre = c.get("lifecycle", {}).get("preStop", {})
    sleep = 0
    if "exec" in pre and pre["exec"]["command"][:1] == ["sleep"]:
        sleep = int(pre["exec"]["command"][1])
    elif "sleep" in pre:
        sleep = int(pre["sleep"]["seconds"])
    drain = int(env.get("SHUTDOWN_GRACE_SECS") or 0)
    if not drain:
        errors.append(f"{w}: {name} does not set SHUTDOWN_GRACE_SECS")
    if grace <= sleep + drain:
        errors.append(f"{w}: terminationGracePeriodSeconds {grace} <= preStop {sleep} + SHUTDOWN_GRACE_SECS {drain}")
    ann = tmpl["metadata"].get("annotations", {})
    if ann.get("prometheus.io/scrape") != "true":
        errors.append(f"{w}: {name} pods are not annotated prometheus.io/scrape")
    elif str(ann.get("prometheus.io/port")) not in {str(v) for v in ports.values()}:
        errors.append(f"{w}: prometheus.io/port {ann.get('prometheus.io/port')} is not a container port")
    listen = env.get("WS_LISTEN_ADDR") if name == "ws-node" else env.get("LISTEN_ADDR")
    if not listen or not listen.startswith("0.0.0.0:") or int(listen.rsplit(":", 1)[1]) not in ports.values():
        errors.append(f"{w}: {name} listen address {listen!r} does not match its container port")

for name, (w, d) in services.items():
    sel = d["spec"].get("selector", {})
    targets = [dn for dn, (_, dd) in deployments.items()
               if labels_match(sel, dd["spec"]["template"]["metadata"].get("labels", {}))]
    if not targets:
        errors.append(f"{w}: Service {name} selects no Deployment's pods")
    for port in d["spec"]["ports"]:
        tp = port.get("targetPort")
        for dn in targets:
            cports = deployments[dn][1]["spec"]["template"]["spec"]["containers"][0].get("ports", [])
            if tp not in [p.get("name") for p in cports] + [p["containerPort"] for p in cports]:
                errors.append(f"{w}: Service {name} targetPort {tp} is not a port of {dn}")

for kind in ("HorizontalPodAutoscaler",):
    for name, (w, d) in of(kind).items():
        ref = d["spec"]["scaleTargetRef"]
        if ref.get("kind") != "Deployment" or ref.get("name") not in deployments:
            errors.append(f"{w}: {kind} {name} targets missing {ref}")
for name, (w, d) in of("PodDisruptionBudget").items():
    sel = d["spec"]["selector"].get("matchLabels", {})
    if not any(labels_match(sel, dd["spec"]["template"]["metadata"].get("labels", {}))
               for _, dd in deployments.values()):
        errors.append(f"{w}: PodDisruptionBudget {name} selects no pods")

routed = set()
for name, (w, d) in of("Ingress").items():
    for rule in d["spec"].get("rules", []):
        for path in rule.get("http", {}).get("paths", []):
            svc = path["backend"]["service"]
            routed.add(path["path"])
            if svc["name"] not in services:
                errors.append(f"{w}: Ingress {name} routes {path['path']} to missing Service {svc['name']}")
                continue
            sports = services[svc["name"]][1]["spec"]["ports"]
            want = svc["port"].get("name", svc["port"].get("number"))
            if want not in [p.get("name") for p in sports] + [p["port"] for p in sports]:
                errors.append(f"{w}: Ingress {name} uses port {want} that Service {svc['name']} lacks")
for path in ("/api", "/openapi.json", "/ws"):
    if path not in routed:
        errors.append(f"Ingress: {path} is not routed")
for path in routed:
    if path in ("/", "/metrics", "/healthz", "/readyz"):
        errors.append(f"Ingress: {path} must not be routed")

# The per-address limits key on the real client, never on the ingress
# controller: its pods (anywhere in the pod network) are trusted proxies.
import ipaddress
cfg = ((configmaps.get("tasks-config") or (None, {}))[1].get("data") or {})
ranges = [r.strip() for r in str(cfg.get("TRUSTED_PROXIES") or "").split(",") if r.strip()]
if not ranges:
    errors.append("ConfigMap tasks-config: TRUSTED_PROXIES is empty (the ingress would be the client)")
for r in ranges:
    try:
        ipaddress.ip_network(r)
    except ValueError:
        errors.append(f"ConfigMap tasks-config: TRUSTED_PROXIES entry {r!r} is not an address or CIDR range")

for e in errors:
    print(e)
if errors:
    sys.exit(1)
kinds = sorted({d["kind"] for _, d in objs})
print(f"{len(objs)} objects ({', '.join(kinds)}): well formed and consistent")
PY
}

check_k8s_schemas() {
    if [ -z "$KV" ]; then
        echo "kubernetes-validate not available (pip install failed or DEPLOY_CHECK_NO_INSTALL=1)"
        exit 77
    fi
    "$KV" --strict --quiet -k 1.27.0 deploy/k8s/*.yaml
    "$KV" --strict --quiet deploy/k8s/*.yaml
    echo "strict Kubernetes schemas of 1.27 and $("$KV" --version) accept every object"
}

# --- (c) compose ----------------------------------------------------------------

check_compose() {
    need_yaml
    py <<'PY'
import pathlib, re, subprocess, sys, yaml
path = pathlib.Path("deploy/docker/compose.yml")
base = path.parent
d = yaml.safe_load(path.read_text())
services = d.get("services") or {}
errors = []
if not services:
    errors.append("no services")
for name, s in services.items():
    if not isinstance(s, dict) or not (s.get("image") or s.get("build")):
        errors.append(f"{name}: neither image nor build")
        continue
    build = s.get("build")
    if build:
        ctx = base / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        if not (ctx / dockerfile).is_file():
            errors.append(f"{name}: no Dockerfile {ctx / dockerfile}")
    deps = s.get("depends_on") or {}
    for dep, cond in (deps.items() if isinstance(deps, dict) else ((x, {}) for x in deps)):
        if dep not in services:
            errors.append(f"{name}: depends on unknown service {dep}")
            continue
        c = (cond or {}).get("condition")
        if c == "service_healthy" and not services[dep].get("healthcheck"):
            errors.append(f"{name}: waits for {dep} healthy, which has no healthcheck")
        if c == "service_completed_successfully" and services[dep].get("restart") not in ("no", None):
            errors.append(f"{name}: waits for {dep} to complete, but {dep} restarts")
    for v in s.get("volumes", []) or []:
        src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
        if src.startswith("."):
            if not (base / src).exists():
                errors.append(f"{name}: mounts missing {src}")
        elif src and src not in (d.get("volumes") or {}):
            errors.append(f"{name}: named volume {src} is not declared")
    hc = s.get("healthcheck")
    if hc and isinstance(hc.get("test"), list) and hc["test"][:3] == ["CMD", "bash", "-c"]:
        r = subprocess.run(["bash", "-n", "-c", hc["test"][3]], capture_output=True, text=True)
        if r.returncode:
            errors.append(f"{name}: healthcheck script does not parse: {r.stderr.strip()}")
# The load balancer's upstreams are services of this file.
env = services.get("nginx", {}).get("environment", {})
for var in ("API_SERVERS", "WS_SERVERS"):
    for hp in str(env.get(var, "")).split():
        host, _, port = hp.rpartition(":")
        if host not in services:
            errors.append(f"nginx {var}: {host} is not a service")
if not env.get("API_SERVERS") or not env.get("WS_SERVERS"):
    errors.append("nginx: API_SERVERS / WS_SERVERS not set")
# The demo account (a public password) only when asked for.
if "seed" in services and "demo" not in (services["seed"].get("profiles") or []):
    errors.append("seed: runs by default; it must need the `demo` profile")
# Redis memory is bounded, evicting least recently used keys.
redis_cmd = " ".join(map(str, services.get("redis", {}).get("command") or []))
if "--maxmemory " not in redis_cmd or "--maxmemory-policy allkeys-lru" not in redis_cmd:
    errors.append("redis: no --maxmemory with --maxmemory-policy allkeys-lru")
# TRUSTED_PROXIES must be exactly nginx's fixed address, on every api-node:
# then the per-address limits key on the real client, never on nginx.
nginx_ip = (((services.get("nginx", {}).get("networks") or {}).get("default") or {}).get("ipv4_address"))
for name, s in services.items():
    tp = (s.get("environment") or {}).get("TRUSTED_PROXIES") if isinstance(s.get("environment"), dict) else None
    if tp is None and name.startswith("api-node"):
        errors.append(f"{name}: TRUSTED_PROXIES is not set (nginx would be the client)")
    if tp is not None and tp != nginx_ip:
        errors.append(f"{name}: TRUSTED_PROXIES {tp!r} is not nginx's address {nginx_ip!r}")
for e in errors:
    print(e)
if errors:
    sys.exit(1)
print(f"{len(services)} services, each with an image or build, references consistent")
PY
}

check_compose_client() {
    local -a compose
    if docker compose version >/dev/null 2>&1; then
        compose=(docker compose)
    elif command -v docker-compose >/dev/null; then
        compose=(docker-compose)
    else
        echo "no compose client (docker compose / docker-compose) installed"
        exit 77
    fi
    JWT_SECRET=0123456789abcdef0123456789abcdef "${compose[@]}" -f deploy/docker/compose.yml config -q
    # JWT_SECRET is required: without it compose must refuse the file.
    if env -u JWT_SECRET "${compose[@]}" -f deploy/docker/compose.yml config -q >/dev/null 2>&1; then
        echo "${compose[*]} accepted the file without JWT_SECRET"
        exit 1
    fi
    echo "${compose[*]} $("${compose[@]}" version --short 2>/dev/null || true): config accepts it, refuses it without JWT_SECRET"
}

# --- Dockerfiles ------------------------------------------------------------------

check_dockerfiles() {
    py <<'PY'
import pathlib, re, shlex, sys
errors = []
files = sorted(pathlib.Path("deploy/docker").glob("*Dockerfile"))
for f in files:
    text = f.read_text()
    if not re.search(r"^FROM\s", text, re.M):
        errors.append(f"{f}: no FROM")
    # Join continuation lines, then check each COPY from the context.
    for line in re.sub(r"\\\n", " ", text).splitlines():
        words = shlex.split(line, comments=True) if line.strip() else []
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]):
            continue
        for src in args[:-1]:
            if not pathlib.Path(src).exists():
                errors.append(f"{f}: COPY source {src} does not exist in the repository")
    ignore = f.with_name(f.name + ".dockerignore")
    if not ignore.is_file():
        errors.append(f"{f}: no {ignore.name} (the context is the repository root)")
for e in errors:
    print(e)
if errors:
    sys.exit(1)
print(f"{len(files)} Dockerfiles: every COPY source exists, each has its .dockerignore")
PY
}

# --- (d) Grafana dashboard ------------------------------------------------------

dashboard_exprs() {
    py "$1" <<'PY'
import json, sys
d = json.load(open("deploy/grafana/dashboard.json"))
out = []
def walk(panels):
    for p in panels:
        yield p
        yield from walk(p.get("panels", []))
for p in walk(d["panels"]):
    for t in p.get("targets", []):
        out.append(t["expr"])
json.dump(out, open(sys.argv[1], "w"))
PY
}

# PROMQL_PY: Python that both the dashboard's and the alerts' checks run
# first: the metric names the nodes export (every `pub const NAME: &str`
# of the three metrics.rs files), and the metric names a PromQL expression
# reads.
PROMQL_PY=$(
    cat <<'PY'
import pathlib, re
METRICS_SOURCES = ("shared/src/metrics.rs", "api-node/src/metrics.rs", "ws-node/src/metrics.rs")
# Series Prometheus itself makes: targets' `up`, and the firing alerts.
PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE"}
# PromQL words that are not metric names.
WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
         "unless", "offset", "inf", "nan", "le", "atan2"}

def known_metrics():
    known = set()
    for src in METRICS_SOURCES:
        text = pathlib.Path(src).read_text()
        for m in re.finditer(r'pub\s+const\s+[A-Z0-9_]+\s*:\s*&str\s*=\s*"([^"]+)"\s*;', text):
            known.add(m.group(1))
    return known

def metric_names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)       # string literals
    e = re.sub(r"\$\{?\w+\}?", "", e)                   # dashboard variables
    e = re.sub(r"\{[^}]*\}", "", e)                     # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                    # range selectors
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = []
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)\s*(\()?", e):
        word, call = m.group(1), m.group(2)
        if not call and word not in WORDS:
            names.append(word)
    return names

def base_name(name, known):
    """The exported metric `name` reads (a histogram's _bucket, _sum or
    _count are its own), or None."""
    if name in known:
        return name
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return base if base in known else None
PY
)

# py_promql ARGS...: py on PROMQL_PY followed by the script on stdin.
py_promql() {
    { printf '%s\n' "$PROMQL_PY"; cat; } | py "$@"
}

check_dashboard() {
    py_promql <<'PY'
import json, sys
errors = []
known = known_metrics()
if not known:
    errors.append("no metric names found in the metrics.rs files")
d = json.load(open("deploy/grafana/dashboard.json"))
if not any(i.get("name") == "DS_PROMETHEUS" and i.get("pluginId") == "prometheus" for i in d.get("__inputs", [])):
    errors.append("no __inputs entry DS_PROMETHEUS")
if not isinstance(d.get("schemaVersion"), int):
    errors.append("no schemaVersion")
def walk(panels):
    for p in panels:
        yield p
        yield from walk(p.get("panels", []))
ids = set()
used = set()
n = 0
for p in walk(d.get("panels", [])):
    title = p.get("title", "?")
    if p.get("id") in ids:
        errors.append(f"panel {title}: duplicate id {p.get('id')}")
    ids.add(p.get("id"))
    if p.get("type") not in ("row", "timeseries", "stat", "table"):
        errors.append(f"panel {title}: type {p.get('type')}")
    if "gridPos" not in p:
        errors.append(f"panel {title}: no gridPos")
    if p.get("type") == "row":
        continue
    if not p.get("targets"):
        errors.append(f"panel {title}: no targets")
    for t in [p] + p.get("targets", []):
        if t.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
            errors.append(f"panel {title}: datasource is not ${{DS_PROMETHEUS}}")
    for t in p.get("targets", []):
        n += 1
        names = metric_names(t.get("expr", ""))
        if not names:
            errors.append(f"panel {title}: no metric in {t.get('expr')!r}")
        for name in names:
            if name in PROMETHEUS_OWN:
                continue
            base = base_name(name, known)
            if base is None:
                errors.append(f"panel {title}: unknown metric {name} in {t.get('expr')!r}")
            used.add(base)
for e in errors:
    print(e)
if errors:
    sys.exit(1)
unused = sorted(known - used)
print(f"{n} queries name {len(used)} metrics, all exported"
      + (f" (not shown: {', '.join(unused)})" if unused else ""))
PY
}

check_dashboard_promql() {
    if [ -z "$PROMTOOL" ]; then
        echo "promtool not available (apt-get install prometheus failed)"
        exit 77
    fi
    need_yaml
    dashboard_exprs "$WORK/exprs.json"
    # Each query as a recording rule: `promtool check rules` parses its PromQL.
    py "$WORK/exprs.json" "$WORK/dashboard-rules.yml" <<'PY'
import json, sys, yaml
exprs = json.load(open(sys.argv[1]))
rules = [{"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)]
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[2], "w"))
PY
    "$PROMTOOL" check rules "$WORK/dashboard-rules.yml" >"$WORK/rules.out" 2>&1 || {
        cat "$WORK/rules.out"
        exit 1
    }
    echo "promtool parses all $("$PYTHON" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/exprs.json") queries"
}

# --- (e) alerting rules ------------------------------------------------------------

need_promtool() {
    if [ -z "$PROMTOOL" ]; then
        echo "promtool not available (apt-get install prometheus failed)"
        exit 77
    fi
}

check_alert_rules_promtool() {
    need_promtool
    "$PROMTOOL" check rules deploy/prometheus/alerts.yml >"$WORK/alerts.out" 2>&1 || {
        cat "$WORK/alerts.out"
        exit 1
    }
    grep -o 'SUCCESS: [0-9]* rules found' "$WORK/alerts.out"
}

# Every alert: a severity of critical (pages) or warning, a summary, and a
# runbook_url naming a section of docs/runbook.md that names the alert;
# every metric an expression reads is one the nodes export, Prometheus's
# own, or recorded in the same file; and alerts.test.yml has, for every
# alert, a case where it fires and a case where it stays quiet.
check_alert_rules_contents() {
    need_yaml
    py_promql <<'PY'
import re, sys, yaml
errors = []
known = known_metrics()
groups = yaml.safe_load(open("deploy/prometheus/alerts.yml"))["groups"]
rules = [r for g in groups for r in g["rules"]]
recorded = {r["record"] for r in rules if "record" in r}

runbook = open("docs/runbook.md").read().splitlines()
def slug(heading):
    # GitHub's anchors: lower case, punctuation dropped, spaces to hyphens.
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
sections = {}
for i, line in enumerate(runbook):
    m = re.match(r"(#+)\s+(.*)", line)
    if not m:
        continue
    level, end = len(m.group(1)), len(runbook)
    for j in range(i + 1, len(runbook)):
        n = re.match(r"(#+)\s", runbook[j])
        if n and len(n.group(1)) <= level:
            end = j
            break
    sections[slug(m.group(2))] = "\n".join(runbook[i:end])

alerts = set()
for r in rules:
    name = r.get("alert") or r.get("record")
    for metric in metric_names(r["expr"]):
        if metric not in PROMETHEUS_OWN and metric not in recorded and base_name(metric, known) is None:
            errors.append(f"{name}: {metric} is not exported by the nodes nor recorded here")
    if "alert" not in r:
        continue
    alerts.add(name)
    severity = (r.get("labels") or {}).get("severity")
    if severity not in ("critical", "warning"):
        errors.append(f"{name}: severity {severity!r} (critical or warning)")
    annotations = r.get("annotations") or {}
    if not annotations.get("summary"):
        errors.append(f"{name}: no summary")
    url = annotations.get("runbook_url", "")
    m = re.fullmatch(r"docs/runbook\.md#([\w-]+)", url)
    if not m:
        errors.append(f"{name}: runbook_url {url!r} is not docs/runbook.md#<section>")
    elif m.group(1) not in sections:
        errors.append(f"{name}: docs/runbook.md has no section #{m.group(1)}")
    elif name not in sections[m.group(1)]:
        errors.append(f"{name}: section #{m.group(1)} of docs/runbook.md does not name it")

tests = yaml.safe_load(open("deploy/prometheus/alerts.test.yml"))
if tests.get("rule_files") != ["alerts.yml"]:
    errors.append("alerts.test.yml: rule_files is not [alerts.yml]")
fires, quiet = set(), set()
for test in tests["tests"]:
    for case in test.get("alert_rule_test", []):
        (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
for name in sorted(alerts):
    if name not in fires:
        errors.append(f"{name}: no test in alerts.test.yml where it fires")
    if name not in quiet:
        errors.append(f"{name}: no test in alerts.test.yml where it stays quiet")
for name in sorted((fires | quiet) - alerts):
    errors.append(f"alerts.test.yml tests {name}, which alerts.yml does not define")
for e in errors:
    print(e)
if errors:
    sys.exit(1)
print(f"{len(alerts)} alerts with severity, summary and runbook section, each tested firing and quiet;"
      f" {len(recorded)} recording rules; every metric exported")
PY
}

check_alert_rules_tests() {
    need_promtool
    "$PROMTOOL" test rules deploy/prometheus/alerts.test.yml >"$WORK/alert-tests.out" 2>&1 || {
        cat "$WORK/alert-tests.out"
        exit 1
    }
    echo "promtool test rules: $(grep -c '^  - name:' deploy/prometheus/alerts.test.yml) cases pass"
}

# --- (f) Prometheus ---------------------------------------------------------------

promtool_config() {
    # promtool_config FILE: `promtool check config`, or exit 77 without promtool.
    if [ -z "$PROMTOOL" ]; then
        echo "YAML ok; promtool not available (apt-get install prometheus failed), not checked further"
        exit 77
    fi
    "$PROMTOOL" check config "$1" >"$WORK/promtool.out" 2>&1 || {
        cat "$WORK/promtool.out"
        return 1
    }
}

check_prometheus_template() {
    need_yaml
    sed -e "s/__API_TARGETS__/['127.0.0.1:8081', '127.0.0.1:8082']/" \
        -e "s/__WS_TARGETS__/['127.0.0.1:8091', '127.0.0.1:8092']/" \
        deploy/prometheus/prometheus.yml >"$WORK/prometheus.yml"
    # Where the launchers put them: next to the rendered configuration.
    cp deploy/prometheus/alerts.yml "$WORK/alerts.yml"
    py "$WORK/prometheus.yml" <<'PY'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
assert d["global"]["scrape_interval"] == "5s", "scrape_interval is not 5s"
assert d.get("rule_files") == ["alerts.yml"], f"rule_files is {d.get('rule_files')!r}, not [alerts.yml]"
jobs = {j["job_name"]: j for j in d["scrape_configs"]}
want = {"api-node": ["127.0.0.1:8081", "127.0.0.1:8082"], "ws-node": ["127.0.0.1:8091", "127.0.0.1:8092"]}
for job, targets in want.items():
    got = jobs[job]["static_configs"][0]["targets"]
    assert got == targets, f"{job} targets rendered as {got!r}"
PY
    promtool_config "$WORK/prometheus.yml"
    echo "renders; promtool check config accepts it, with the alerting rules"
}

check_prometheus_compose() {
    need_yaml
    # Run the compose service's own sed on the template (paths mapped to the
    # repository), then check the result.
    mkdir -p "$WORK/compose"
    py "$WORK/compose-prometheus.sh" "$WORK/compose/prometheus.yml" <<'PY'
import sys, yaml
d = yaml.safe_load(open("deploy/docker/compose.yml"))
cmd = d["services"]["prometheus"]["command"]
cmd = cmd[0] if isinstance(cmd, list) else cmd
render = cmd.split("&& exec")[0]
assert "/etc/prometheus/prometheus.yml.template" in render and "/prometheus/prometheus.yml" in render, render
# The rules go next to the rendered configuration, from a mounted file.
rules_src = "/etc/prometheus/alerts.yml.source"
assert f"cp {rules_src} /prometheus/alerts.yml" in render, f"the command does not copy the rules: {render}"
mounts = d["services"]["prometheus"]["volumes"]
assert f"../prometheus/alerts.yml:{rules_src}:ro" in mounts, f"deploy/prometheus/alerts.yml is not mounted at {rules_src}"
out_dir = sys.argv[2].rsplit("/", 1)[0]
render = render.replace(f"cp {rules_src} /prometheus/alerts.yml", f"cp deploy/prometheus/alerts.yml {out_dir}/alerts.yml")
render = render.replace("/etc/prometheus/prometheus.yml.template", "deploy/prometheus/prometheus.yml")
render = render.replace("> /prometheus/prometheus.yml", "> " + sys.argv[2])
open(sys.argv[1], "w").write(render + "\n")
PY
    sh "$WORK/compose-prometheus.sh"
    "$PYTHON" -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); print([j["static_configs"][0]["targets"] for j in d["scrape_configs"]])' \
        "$WORK/compose/prometheus.yml"
    promtool_config "$WORK/compose/prometheus.yml"
    echo "the compose service's rendering is a valid configuration, with the alerting rules"
}

check_prometheus_k8s() {
    need_yaml
    mkdir -p "$WORK/k8s"
    py "$WORK/k8s/prometheus.yml" <<'PY'
import difflib, sys, yaml
docs = [d for d in yaml.safe_load_all(open("deploy/k8s/prometheus-config.yaml")) if d]
cm = [d for d in docs if d["kind"] == "ConfigMap"][0]
text = cm["data"]["prometheus.yml"]
d = yaml.safe_load(text)
assert d.get("rule_files") == ["alerts.yml"], f"rule_files is {d.get('rule_files')!r}, not [alerts.yml]"
# The rules, as mounted next to the configuration.
rules = open("deploy/prometheus/alerts.yml").read()
if cm["data"].get("alerts.yml") != rules:
    sys.stdout.writelines(difflib.unified_diff(
        rules.splitlines(True), (cm["data"].get("alerts.yml") or "").splitlines(True),
        "deploy/prometheus/alerts.yml", "prometheus-config.yaml: alerts.yml", n=1))
    raise SystemExit("the ConfigMap's alerts.yml is not deploy/prometheus/alerts.yml: "
                     "copy it there, indented by four spaces")
open(sys.argv[1].rsplit("/", 1)[0] + "/alerts.yml", "w").write(cm["data"]["alerts.yml"])
sd = d["scrape_configs"][0]["kubernetes_sd_configs"][0]
assert sd["role"] == "pod", "not role: pod"
relabel = d["scrape_configs"][0]["relabel_configs"]
assert any(r.get("action") == "keep" and "prometheus_io_scrape" in r["source_labels"][0] for r in relabel), \
    "no keep on prometheus.io/scrape"
open(sys.argv[1], "w").write(text)
PY
    if [ -z "$PROMTOOL" ]; then promtool_config "$WORK/k8s/prometheus.yml"; fi
    if "$PROMTOOL" check config "$WORK/k8s/prometheus.yml" >"$WORK/promtool.out" 2>&1; then
        echo "promtool check config accepts it, with the alerting rules (the same as deploy/prometheus/alerts.yml)"
    elif grep -q 'field kubernetes_sd_configs not found' "$WORK/promtool.out"; then
        # Debian builds Prometheus without Kubernetes discovery: check the rest
        # (relabelling regexes and all) with the discovery swapped for a static
        # target.
        py "$WORK/k8s/prometheus.yml" <<'PY'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
for job in d["scrape_configs"]:
    if job.pop("kubernetes_sd_configs", None) is not None:
        job["static_configs"] = [{"targets": ["127.0.0.1:1"]}]
yaml.safe_dump(d, open(sys.argv[1], "w"))
PY
        promtool_config "$WORK/k8s/prometheus.yml"
        echo "promtool accepts it, with the alerting rules (the same as deploy/prometheus/alerts.yml; this promtool lacks Kubernetes discovery: checked with a static target in its place)"
    else
        cat "$WORK/promtool.out"
        exit 1
    fi
}

# --- (g) shell scripts --------------------------------------------------------------

check_shell() {
    local f n=0
    for f in deploy/docker/*.sh; do
        sh -n "$f"
        if command -v dash >/dev/null; then dash -n "$f"; fi
        n=$((n + 1))
    done
    bash -n deploy/check.sh
    [ -x deploy/check.sh ] || { echo "deploy/check.sh is not executable"; exit 1; }
    echo "$n entrypoint script(s) and check.sh parse"
}

check "nginx template rendered by its entrypoint (nginx -t)" check_nginx_entrypoint
check "nginx logs carry no secrets" check_nginx_logs
check "YAML files parse" check_yaml_parses
check "k8s manifests" check_k8s_manifests
check "k8s schemas (kubernetes-validate)" check_k8s_schemas
check "compose file" check_compose
check "compose client" check_compose_client
check "Dockerfiles" check_dockerfiles
check "dashboard metrics" check_dashboard
check "dashboard PromQL" check_dashboard_promql
check "alert rules (promtool check rules)" check_alert_rules_promtool
check "alert rules: severity, summary, runbook, metrics, tests" check_alert_rules_contents
check "alert rule tests (promtool test rules)" check_alert_rules_tests
check "prometheus template" check_prometheus_template
check "prometheus config of compose" check_prometheus_compose
check "prometheus config of k8s" check_prometheus_k8s
check "shell scripts (sh -n)" check_shell

if [ "$skipped" -gt 0 ]; then
    echo "deploy checks: $passed passed, $failed failed, $skipped skipped"
else
    echo "deploy checks: $passed passed, $failed failed"
fi
[ "$failed" = 0 ]
