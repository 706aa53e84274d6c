#!/usr/bin/env bash
#
# scripts/cluster-check.sh — the end-to-end check of the whole topology:
# brings the local cluster up (scripts/up.sh, on its own ports and state
# directory, with Prometheus), runs traffic through nginx (loadgen soak:
# REST calls and WebSocket subscribers that resume after every close) while
# scripts/rolling-restart.sh restarts every node, then asks Prometheus for
# every query of the Grafana dashboard. Fails on any failed request, any
# lost, duplicated or reordered event, or any dashboard query with no series.
#
#   BUILD_PROFILE=debug (default; release for realistic numbers)
#   SOAK_SECS=40 SOAK_RATE=20 SOAK_CONNS=20
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

export BUILD_PROFILE="${BUILD_PROFILE:-debug}"
export CLUSTER_DIR="$REPO/.local/check-$$"
export PUBLIC_PORT=18080 API_BASE_PORT=18081 WS_BASE_PORT=18091 PG_PORT=25432 REDIS_PORT=26379
export PROMETHEUS=1 PROMETHEUS_PORT=19090 API_NODES=2 WS_NODES=2
SOAK_SECS="${SOAK_SECS:-40}"
PUBLIC="http://127.0.0.1:$PUBLIC_PORT"

log() { printf '[cluster-check] %s\n' "$*" >&2; }

profile_flag=()
[[ $BUILD_PROFILE == release ]] && profile_flag=(--release)
log "building api-node, ws-node and loadgen ($BUILD_PROFILE)"
cargo build "${profile_flag[@]}" --locked -p api-node -p ws-node -p loadgen
LOADGEN="$REPO/target/$BUILD_PROFILE/loadgen"

mkdir -p "$CLUSTER_DIR"
UP_NO_BUILD=1 bash scripts/up.sh >"$CLUSTER_DIR/up.log" 2>&1 &
up_pid=$!
# shellcheck disable=SC2317 # invoked via trap
finish() {
    local rc=$?
    trap - EXIT
    kill -TERM "$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
    if ((rc != 0)); then
        log "failed; the cluster's log:"
        tail -n 40 "$CLUSTER_DIR/up.log" >&2 || true
        rm -rf "$REPO/.local/cluster-check-failed"
        mkdir -p "$REPO/.local/cluster-check-failed"
        cp -r "$CLUSTER_DIR/logs" "$CLUSTER_DIR/run/nginx" "$CLUSTER_DIR"/*.log "$REPO/.local/cluster-check-failed/" 2>/dev/null || true
        log "logs kept in .local/cluster-check-failed/"
    fi
    rm -rf "$CLUSTER_DIR"
    exit "$rc"
}
trap finish EXIT

for ((i = 0; i < 600; i++)); do
    curl -fsS -o /dev/null "$PUBLIC/openapi.json" 2>/dev/null && grep -q "Press Ctrl-C\|Stop:" "$CLUSTER_DIR/up.log" && break
    kill -0 "$up_pid" 2>/dev/null || { log "scripts/up.sh exited"; exit 1; }
    sleep 0.2
done
curl -fsS -o /dev/null "$PUBLIC/openapi.json" || { log "the cluster did not come up"; exit 1; }
log "cluster up behind $PUBLIC; traffic for ${SOAK_SECS}s with a rolling restart"

"$LOADGEN" soak --api "$PUBLIC" --ws "ws://127.0.0.1:$PUBLIC_PORT/ws/updates" \
    --secs "$SOAK_SECS" --rate "${SOAK_RATE:-20}" --conns "${SOAK_CONNS:-20}" --users 5 >"$CLUSTER_DIR/soak.log" 2>&1 &
soak_pid=$!
sleep 3
bash scripts/rolling-restart.sh
soak_status=0
wait "$soak_pid" || soak_status=$?
grep -v '^RESULT' "$CLUSTER_DIR/soak.log" >&2 || true
grep '^RESULT' "$CLUSTER_DIR/soak.log" || true
if ((soak_status != 0)); then
    log "FAILED: requests failed or events were lost during the rolling restart"
    exit 1
fi

log "asking Prometheus for every dashboard query"
sleep 6 # one more scrape after the last traffic
python3 - "$REPO/deploy/grafana/dashboard.json" "http://127.0.0.1:$PROMETHEUS_PORT" <<'PY'
import json, sys, urllib.parse, urllib.request

dashboard, prometheus = sys.argv[1], sys.argv[2]
exprs = []
def walk(panels):
    for panel in panels:
        walk(panel.get("panels", []))
        exprs.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
walk(json.load(open(dashboard))["panels"])
empty = []
for expr in exprs:
    url = prometheus + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    result = json.load(urllib.request.urlopen(url, timeout=10))["data"]["result"]
    print(f"  {len(result):3d} series  {expr}")
    if not result:
        empty.append(expr)
print(f"prometheus-checks: {len(exprs) - len(empty)} passed, {len(empty)} failed")
sys.exit(1 if empty else 0)
PY
