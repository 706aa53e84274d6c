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
#     (their `metric_names!` catalogues) or Prometheus's own (up, ALERTS),
#     in valid PromQL;
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
# The checks of the files' contents are Rust (the `xtask` crate, unit-tested
# there: `cargo xtask deploy CHECK`); this script drives the tools and
# prints the report.
#
# Installs what it needs from Debian's packages when missing (prometheus for
# promtool, docker-compose; with sudo when not root), and
# kubernetes-validate from PyPI into .local/deploy-check/venv. DEPLOY_CHECK_NO_INSTALL=1 installs
# nothing (the checks needing a missing tool are then skipped).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# free_port, and rustup's cargo on PATH.
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"
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

# --- tools ------------------------------------------------------------------

# The content checks, built once (the workspace's own target directory).
cargo build -q --locked -p xtask
XTASK=${CARGO_TARGET_DIR:-$ROOT/target}/debug/xtask

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

check_yaml_parses() { "$XTASK" deploy yaml; }

check_k8s_manifests() { "$XTASK" deploy k8s; }

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

check_compose() { "$XTASK" deploy compose; }

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

check_dockerfiles() { "$XTASK" deploy dockerfiles; }

# --- (d) Grafana dashboard ------------------------------------------------------

check_dashboard() { "$XTASK" deploy dashboard; }

check_dashboard_promql() {
    if [ -z "$PROMTOOL" ]; then
        echo "promtool not available (apt-get install prometheus failed)"
        exit 77
    fi
    # Each query as a recording rule: `promtool check rules` parses its PromQL.
    local queries
    queries=$("$XTASK" deploy dashboard-rules "$WORK/dashboard-rules.yml")
    "$PROMTOOL" check rules "$WORK/dashboard-rules.yml" >"$WORK/rules.out" 2>&1 || {
        cat "$WORK/rules.out"
        exit 1
    }
    echo "promtool parses all $queries"
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

# Every alert: a severity, a summary and a runbook section naming it; every
# metric read exported or recorded; a test where it fires and one where it
# stays quiet (xtask/src/alerts.rs).
check_alert_rules_contents() { "$XTASK" deploy alerts; }

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
    "$XTASK" deploy prometheus-template "$WORK"
    promtool_config "$WORK/prometheus.yml"
    echo "renders; promtool check config accepts it, with the alerting rules"
}

# The compose service's own rendering (its sed and cp, paths mapped).
check_prometheus_compose() {
    mkdir -p "$WORK/compose"
    "$XTASK" deploy prometheus-compose "$WORK/compose"
    promtool_config "$WORK/compose/prometheus.yml"
    echo "the compose service's rendering is a valid configuration, with the alerting rules"
}

check_prometheus_k8s() {
    mkdir -p "$WORK/k8s"
    "$XTASK" deploy prometheus-k8s "$WORK/k8s"
    if [ -z "$PROMTOOL" ]; then promtool_config "$WORK/k8s/prometheus.yml"; fi
    if "$PROMTOOL" check config "$WORK/k8s/prometheus.yml" >"$WORK/promtool.out" 2>&1; then
        echo "promtool check config accepts it, with the alerting rules (the same as deploy/prometheus/alerts.yml)"
    elif grep -q 'field kubernetes_sd_configs not found' "$WORK/promtool.out"; then
        # Debian builds Prometheus without Kubernetes discovery: check the rest
        # (relabelling regexes and all) with a static target in its place.
        "$XTASK" deploy prometheus-k8s-static "$WORK/k8s"
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
