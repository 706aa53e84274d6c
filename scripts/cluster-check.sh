#!/usr/bin/env bash
#
# scripts/cluster-check.sh — the end-to-end check of the whole topology:
# brings the local cluster up (scripts/up.sh, on its own ports and state
# directory, with Prometheus), runs traffic through nginx (loadgen soak:
# REST calls and WebSocket subscribers that resume after every close) while
# scripts/rolling-restart.sh restarts every node, then asks Prometheus for
# every query of the Grafana dashboard, for every metric the nodes export
# (their catalogues, as `cargo xtask metrics` lists them) and for its
# alerting rules. Fails on any failed
# request, any lost, duplicated or reordered event, any dashboard query with
# no series (but those listing firing alerts), any exported metric with no
# series, any rule of deploy/prometheus/alerts.yml not loaded or failing to
# evaluate, or any alert firing.
#
#   BUILD_PROFILE=debug (default; release for realistic numbers)
#   SOAK_SECS=40 SOAK_RATE=20 SOAK_CONNS=20
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=scripts/services.sh
source "$REPO/scripts/services.sh"

export BUILD_PROFILE="${BUILD_PROFILE:-debug}"
export CLUSTER_DIR="$REPO/.local/check-$$"
export PUBLIC_PORT=18080 API_BASE_PORT=18081 WS_BASE_PORT=18091 PG_PORT=25432 REDIS_PORT=26379
export PROMETHEUS=1 PROMETHEUS_PORT=19090 API_NODES=2 WS_NODES=2
SOAK_SECS="${SOAK_SECS:-40}"
PUBLIC="http://127.0.0.1:$PUBLIC_PORT"

log() { printf '[cluster-check] %s\n' "$*" >&2; }
# shellcheck source=scripts/local-cluster.sh
source "$REPO/scripts/local-cluster.sh"

profile_flag=()
[[ $BUILD_PROFILE == release ]] && profile_flag=(--release)
log "building api-node, ws-node and loadgen ($BUILD_PROFILE)"
cargo build "${profile_flag[@]}" --locked -p api-node -p ws-node -p loadgen
LOADGEN="$REPO/target/$BUILD_PROFILE/loadgen"

start_local_cluster cluster-check
cargo xtask metrics >"$CLUSTER_DIR/metrics.txt"
log "cluster up behind $PUBLIC; traffic for ${SOAK_SECS}s with a rolling restart"

"$LOADGEN" soak --api "$PUBLIC" --ws "ws://127.0.0.1:$PUBLIC_PORT/ws/updates" \
    --secs "$SOAK_SECS" --rate "${SOAK_RATE:-20}" --conns "${SOAK_CONNS:-20}" --users 5 >"$CLUSTER_DIR/soak.log" 2>&1 &
soak_pid=$!
# Restart only once every subscriber is subscribed and the writes begin.
deadline=$((SECONDS + 120))
until grep -q '^soak: .* subscribed; writing' "$CLUSTER_DIR/soak.log"; do
    if ! kill -0 "$soak_pid" 2>/dev/null || ((SECONDS >= deadline)); then
        cat "$CLUSTER_DIR/soak.log" >&2
        log "FAILED: the soak did not start"
        exit 1
    fi
    sleep 0.2
done
bash scripts/rolling-restart.sh
soak_status=0
wait "$soak_pid" || soak_status=$?
grep -v '^RESULT' "$CLUSTER_DIR/soak.log" >&2 || true
grep '^RESULT' "$CLUSTER_DIR/soak.log" || true
if ((soak_status != 0)); then
    log "FAILED: requests failed or events were lost during the rolling restart"
    exit 1
fi

log "asking Prometheus for every dashboard query, every exported metric and the alerting rules"
python3 - "$REPO" "http://127.0.0.1:$PROMETHEUS_PORT" "$CLUSTER_DIR/metrics.txt" "$(date +%s)" <<'PY'
import datetime, json, pathlib, re, sys, time, urllib.parse, urllib.request

repo, prometheus, metrics = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
traffic_ended = float(sys.argv[4])
failed = []

def api(path, **params):
    url = prometheus + path + ("?" + urllib.parse.urlencode(params) if params else "")
    answer = json.load(urllib.request.urlopen(url, timeout=10))
    assert answer["status"] == "success", answer
    return answer["data"]

# 0. Wait until Prometheus has scraped every node, up, since the traffic
# ended (its lastScrape is an RFC 3339 time with nanoseconds).
def scraped_after(target, moment):
    when = re.sub(r"(\.\d{6})\d*", r"\1", target["lastScrape"]).replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(when).timestamp() > moment
deadline = time.time() + 60
while True:
    targets = api("/api/v1/targets")["activeTargets"]
    fresh = [t for t in targets if t["health"] == "up" and scraped_after(t, traffic_ended)]
    if targets and len(fresh) == len(targets):
        break
    if time.time() > deadline:
        sys.exit(f"Prometheus did not scrape every target after the traffic: {[(t['scrapeUrl'], t['health'], t['lastScrape']) for t in targets]}")
    time.sleep(0.5)

def query(expr):
    return api("/api/v1/query", query=expr)["result"]

# 1. Every query of the dashboard answers with series. Those over ALERTS
# may answer with none: nothing firing is the healthy answer.
exprs = []
def walk(panels):
    for panel in panels:
        walk(panel.get("panels", []))
        exprs.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
walk(json.load(open(repo / "deploy/grafana/dashboard.json"))["panels"])
for expr in exprs:
    result = query(expr)
    print(f"  {len(result):3d} series  {expr}")
    if not result and "ALERTS" not in expr:
        failed.append(f"dashboard query with no series: {expr}")

# 2. Every metric a node exports (its catalogue; the shared ones by both
# kinds) has series from that kind of node.
jobs_of = {}
for line in open(metrics).read().splitlines():
    name, jobs = line.split()
    jobs_of[name] = jobs.split(",")
for name, jobs in sorted(jobs_of.items()):
    for job in jobs:
        # A histogram's series are NAME_bucket, NAME_sum and NAME_count.
        result = query(f'count({{__name__=~"{name}|{name}_count",job="{job}"}})')
        count = int(float(result[0]["value"][1])) if result else 0
        print(f"  {count:3d} series  {name} ({job})")
        if not count:
            failed.append(f"no series of {name} from the {job}s")

# 3. The alerting rules are loaded and evaluate without error.
rules_text = (repo / "deploy/prometheus/alerts.yml").read_text()
want = set(re.findall(r"^\s*- (?:alert|record): (\S+)", rules_text, re.M))
loaded = [r for g in api("/api/v1/rules")["groups"] for r in g["rules"]]
missing = sorted(want - {r["name"] for r in loaded})
if missing:
    failed.append(f"rules not loaded: {', '.join(missing)}")
for r in loaded:
    if r.get("health") != "ok" or r.get("lastError"):
        failed.append(f"rule {r['name']}: health {r.get('health')!r} {r.get('lastError', '')}")
print(f"  {len(loaded):3d} rules loaded ({len(want)} names in alerts.yml), "
      f"{sum(r.get('health') == 'ok' for r in loaded)} evaluating fine")

# 4. A healthy cluster fires no alert (a pending one, such as a node's
# missed scrape during the rolling restart, is shown, not failed).
for alert in api("/api/v1/alerts")["alerts"]:
    line = f"{alert['labels'].get('alertname')} {alert['state']} {alert['labels']}"
    print(f"  alert {line}")
    if alert["state"] == "firing":
        failed.append(f"alert firing: {line}")

for f in failed:
    print(f"FAILED: {f}")
checks = len(exprs) + sum(len(j) for j in jobs_of.values()) + 2
print(f"prometheus-checks: {checks - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
PY
