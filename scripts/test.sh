#!/usr/bin/env bash
#
# scripts/test.sh — run the whole test suite against throwaway PostgreSQL and
# Redis instances (fresh ones on free ports, wiped at exit).
#
#   bash scripts/test.sh [cargo test args...]
#
# Order: cargo fmt --check, cargo clippy -D warnings (both skipped when
# SKIP_LINT is set), deploy/check.sh (skipped when SKIP_DEPLOY_CHECK is set),
# scripts/cluster-check.sh (skipped when SKIP_CLUSTER_CHECK is set),
# scripts/browser-check.sh (the JS client's unit tests and the live board in
# headless Chromium; skipped when SKIP_BROWSER is set),
# scripts/chaos.sh (skipped when SKIP_CHAOS is set), scripts/schemathesis.sh
# (skipped when SKIP_SCHEMATHESIS is set), then cargo test --workspace --locked "$@".
# Exports for the tests:
#   TEST_DATABASE_URL  postgres://postgres@127.0.0.1:PORT/postgres (admin URL)
#   TEST_REDIS_URL     redis://127.0.0.1:PORT
#   TEST_REDIS_CLUSTER_URL  redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
#                      a throwaway Redis Cluster, 3 masters (the seeds) and 3
#                      replicas, node timeout 2 s (start_redis_cluster in
#                      scripts/services.sh; nodes in .local/test-PID/redis-cluster/)
#   REDIS_SERVER_BIN   path of redis-server
#   PG_BIN_DIR         PostgreSQL server binaries directory
# Other knobs:
#   TEST_CMD='...'     run `bash -c "$TEST_CMD"` instead of lint + cargo test
#   KEEP_TEST_STATE=1  keep .local/test-PID (logs) after the run (processes are still stopped)
#   CARGO_INCREMENTAL  0 unless set (set 1 when iterating on one tree)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=scripts/services.sh
source "$REPO/scripts/services.sh"

TEST_STATE="$REPO/.local/test-$$"

# shellcheck disable=SC2317 # invoked via trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_services
    if [[ -n "${KEEP_TEST_STATE:-}" ]]; then
        echo "[test] kept $TEST_STATE${SVC_PG_DIR:+ (PostgreSQL cluster: $SVC_PG_DIR)}" >&2
    else
        wipe_state_dir "$TEST_STATE"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Incremental caches only pay when the same tree is rebuilt again and again;
# on a clean clone (CI, a first run) they are gigabytes of dead weight.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# A full run needs a few GB (one debug build of the workspace and its ~50
# test binaries): say so up front rather than fail mid-link.
avail_kb=$(df -Pk "$REPO" | awk 'NR == 2 { print $4 }')
echo "[test] free disk where the build goes: $((avail_kb / 1024)) MB" >&2
if ((avail_kb < 3 * 1024 * 1024)); then
    echo "[test] WARNING: under 3 GB free; the build may run out of space" >&2
fi

ensure_packages nginx curl prometheus
# Python's websockets: a client we did not write, for the compression test.
if ! python3 -c 'import websockets' 2>/dev/null; then
    echo "[test] installing the Python websockets package" >&2
    python3 -m pip install -q websockets 2>/dev/null ||
        python3 -m pip install -q --break-system-packages websockets
fi
# Schemathesis: fuzzes an api-node against its OpenAPI document.
if [[ -z "${SKIP_SCHEMATHESIS:-}" ]] && ! python3 -m schemathesis.cli --version >/dev/null 2>&1; then
    echo "[test] installing Schemathesis" >&2
    python3 -m pip install -q schemathesis 2>/dev/null ||
        python3 -m pip install -q --break-system-packages schemathesis
fi

# Remove state left behind by earlier runs that were killed (their PID is gone).
for d in "$REPO"/.local/test-*; do
    [[ -d "$d" ]] || continue
    pid=${d##*/test-}
    if [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$pid" != "$$" ]] && ! pid_running "$pid"; then
        echo "[test] removing stale $d" >&2
        wipe_state_dir "$d"
    fi
done

mkdir -p "$TEST_STATE"

# Free ports can be raced by other processes; retry a few times.
for attempt in 1 2 3; do
    PGPORT="$(free_port)"
    if PG_FAST=1 start_postgres "$TEST_STATE/pg" "$PGPORT"; then break; fi
    [[ $attempt == 3 ]] && { echo "[test] could not start PostgreSQL" >&2; exit 1; }
done
for attempt in 1 2 3; do
    REDISPORT="$(free_port)"
    if start_redis "$TEST_STATE/redis" "$REDISPORT"; then break; fi
    [[ $attempt == 3 ]] && { echo "[test] could not start Redis" >&2; exit 1; }
done
for attempt in 1 2 3; do
    if start_redis_cluster "$TEST_STATE/redis-cluster"; then break; fi
    [[ $attempt == 3 ]] && { echo "[test] could not start the Redis Cluster" >&2; exit 1; }
done

export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
export TEST_REDIS_URL="redis://127.0.0.1:$REDISPORT"
export TEST_REDIS_CLUSTER_URL="$SVC_REDIS_CLUSTER_URL"
REDIS_SERVER_BIN="$(command -v redis-server)"
export REDIS_SERVER_BIN
export PG_BIN_DIR
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
NGINX_BIN="$(command -v nginx)"
export NGINX_BIN

echo "[test] TEST_DATABASE_URL=$TEST_DATABASE_URL" >&2
echo "[test] TEST_REDIS_URL=$TEST_REDIS_URL" >&2
echo "[test] TEST_REDIS_CLUSTER_URL=$TEST_REDIS_CLUSTER_URL" >&2

if [[ -n "${TEST_CMD:-}" ]]; then
    echo "[test] running TEST_CMD: $TEST_CMD" >&2
    status=0
    bash -c "$TEST_CMD" || status=$?
    exit "$status"
fi

# step SKIP_VAR WHAT ON_FAILURE COMMAND... — one check of the suite, unless
# SKIP_VAR is set; a failing check ends the run (ON_FAILURE says where to look).
step() {
    local skip=$1 what=$2 on_failure=$3
    shift 3
    [[ -z "${!skip:-}" ]] || return 0
    echo "[test] $what" >&2
    if ! "$@"; then
        echo "[test] FAILED: $on_failure" >&2
        exit 1
    fi
}

step SKIP_LINT "cargo fmt --all --check" "formatting (run: cargo fmt --all)" \
    cargo fmt --all --check
step SKIP_LINT "cargo clippy --workspace --all-targets --locked -- -D warnings" "clippy" \
    cargo clippy --workspace --all-targets --locked -- -D warnings
step SKIP_DEPLOY_CHECK "deploy/check.sh" "deploy checks" \
    bash deploy/check.sh
step SKIP_CLUSTER_CHECK "scripts/cluster-check.sh (nginx, 2+2 nodes, Prometheus, rolling restart under traffic)" \
    "cluster check" bash scripts/cluster-check.sh
step SKIP_BROWSER "scripts/browser-check.sh (the JS client's unit tests; the live board in headless Chromium against 2+2 nodes, a ws-node killed under it)" \
    "browser check (logs in .local/browser-check-failed/, screenshots in .local/browser-artifacts/)" \
    bash scripts/browser-check.sh
step SKIP_CHAOS "scripts/chaos.sh (faults a-i against 2 api-nodes and 2 ws-nodes under traffic, then a Redis Cluster pass with a primary killed; rewrites FAULTS.md and FAILOVER.md)" \
    "chaos suite (logs in .local/chaos-failed/)" bash scripts/chaos.sh
step SKIP_SCHEMATHESIS "scripts/schemathesis.sh (Schemathesis against one api-node's /openapi.json: every check, positive and negative data, stateful links)" \
    "Schemathesis (reports and the node's log in .local/schemathesis-failed/)" bash scripts/schemathesis.sh

echo "[test] cargo test --workspace --locked --no-fail-fast $*" >&2
status=0
# --no-fail-fast: one failing test binary must not hide the others.
cargo test --workspace --locked --no-fail-fast "$@" || status=$?
if ((status == 0)); then
    echo "[test] all tests passed" >&2
else
    echo "[test] FAILED: cargo test exited with status $status" >&2
fi
exit "$status"
