#!/usr/bin/env bash
#
# scripts/up.sh — bring the whole system up locally: its own PostgreSQL and
# Redis (private instances under .local/dev, data kept between runs), two
# api-nodes and two ws-nodes, nginx in front on one public port, and
# optionally Prometheus. Ctrl-C (or SIGTERM) stops everything.
#
# Settings (defaults): PUBLIC_PORT=8080, API_NODES=2, WS_NODES=2,
# API_BASE_PORT=8081, WS_BASE_PORT=8091, PG_PORT=15432, REDIS_PORT=16379,
# PROMETHEUS=0 (1: run Prometheus on PROMETHEUS_PORT=9090),
# BUILD_PROFILE=release (debug: use the test build), UP_NO_BUILD=1 (skip
# cargo build), UP_DRY_RUN=1 (stop once PostgreSQL and Redis are up).
#
# REDIS_CLUSTER=1 runs a Redis Cluster instead of the single Redis: 3 masters
# and 3 replicas on free ports (start_redis_cluster in scripts/services.sh),
# under .local/dev/redis-cluster/ and new on every start (REDIS_PORT is then
# unused); every api-node and ws-node gets REDIS_URL=redis+cluster://... (the
# masters as seeds).
#
# The nodes' environment is written to .local/dev/env (`source` it to use
# the api-node binary or psql against the dev database).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=scripts/services.sh
source "$REPO/scripts/services.sh"
# shellcheck source=scripts/cluster.sh
source "$REPO/scripts/cluster.sh"


PG_PORT="${PG_PORT:-15432}"
REDIS_PORT="${REDIS_PORT:-16379}"
DEV_STATE="$CLUSTER_DIR"

log() { printf '[up] %s\n' "$*" >&2; }
die() { printf '[up] ERROR: %s\n' "$*" >&2; exit 1; }

# shellcheck disable=SC2317 # invoked via trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    stop_cluster
    stop_services
    log "everything stopped"
    exit "$rc"
}

packages=(curl nginx)
[[ $PROMETHEUS == 1 ]] && packages+=(prometheus)
ensure_packages "${packages[@]}"
mkdir -p "$DEV_STATE" "$LOG_DIR" "$RUN_DIR"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
# A cluster left behind by a killed run would hold the ports.
stop_cluster

start_postgres "$DEV_STATE/pg" "$PG_PORT" || die "PostgreSQL failed to start (is PG_PORT=$PG_PORT free?)"
if [[ "${REDIS_CLUSTER:-}" == 1 ]]; then
    start_redis_cluster "$DEV_STATE/redis-cluster" || die "the Redis Cluster failed to start (logs in ${DEV_STATE#"$REPO"/}/redis-cluster/)"
else
    # Nodes of a REDIS_CLUSTER=1 run that was killed.
    stop_redis_cluster "$DEV_STATE/redis-cluster"
    start_redis "$DEV_STATE/redis" "$REDIS_PORT" || die "Redis failed to start (is REDIS_PORT=$REDIS_PORT free?)"
fi

PSQL=("$PG_BIN_DIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres)
if [[ "$("${PSQL[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'tasks'")" != 1 ]]; then
    log "creating database tasks"
    "${PSQL[@]}" -c 'CREATE DATABASE tasks'
fi
if [[ ! -s "$DEV_STATE/jwt_secret" ]]; then
    (umask 077 && od -An -tx1 -N48 /dev/urandom | tr -d ' \n' >"$DEV_STATE/jwt_secret")
fi

export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/tasks"
if [[ "${REDIS_CLUSTER:-}" == 1 ]]; then
    export REDIS_URL="$SVC_REDIS_CLUSTER_URL"
else
    export REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
fi
JWT_SECRET="$(cat "$DEV_STATE/jwt_secret")"
export JWT_SECRET
(
    umask 077
    cat >"$DEV_STATE/env" <<ENV
# written by scripts/up.sh; \`source .local/dev/env\` to talk to the dev services
export DATABASE_URL='$DATABASE_URL'
export REDIS_URL='$REDIS_URL'
export JWT_SECRET='$JWT_SECRET'
export PUBLIC_PORT='$PUBLIC_PORT' API_NODES='$API_NODES' WS_NODES='$WS_NODES'
export API_BASE_PORT='$API_BASE_PORT' WS_BASE_PORT='$WS_BASE_PORT' BUILD_PROFILE='$BUILD_PROFILE'
export CLUSTER_DIR='$CLUSTER_DIR' PROMETHEUS='$PROMETHEUS' PROMETHEUS_PORT='$PROMETHEUS_PORT'
ENV
)

if [[ "${UP_DRY_RUN:-}" == 1 ]]; then
    log "UP_DRY_RUN=1: services are up (DATABASE_URL=$DATABASE_URL, REDIS_URL=$REDIS_URL); stopping"
    exit 0
fi

if [[ "${UP_NO_BUILD:-}" != 1 ]]; then
    profile_flag=()
    [[ $BUILD_PROFILE == release ]] && profile_flag=(--release)
    log "cargo build ${profile_flag[*]} --locked -p api-node -p ws-node -p loadgen"
    cargo build "${profile_flag[@]}" --locked -p api-node -p ws-node -p loadgen
fi
[[ -x "$BIN_DIR/api-node" && -x "$BIN_DIR/ws-node" ]] || die "the nodes were not built in $BIN_DIR"

log "api-node migrate"
"$BIN_DIR/api-node" migrate </dev/null >>"$LOG_DIR/migrate.log" 2>&1 || die "migrate failed (see $LOG_DIR/migrate.log)"
log "api-node seed"
"$BIN_DIR/api-node" seed </dev/null >>"$LOG_DIR/migrate.log" 2>&1 || die "seed failed (see $LOG_DIR/migrate.log)"

start_cluster || die "the cluster did not start (logs in ${LOG_DIR#"$REPO"/})"

PUBLIC="http://127.0.0.1:$PUBLIC_PORT"
prometheus_line=""
[[ $PROMETHEUS == 1 ]] && prometheus_line=$'\n'"   Prometheus: http://127.0.0.1:$PROMETHEUS_PORT"
cat <<BANNER

  ============================================================
   Live board: $PUBLIC/   (open it in a browser; changes show live)
   API:        $PUBLIC/api/...   (OpenAPI: $PUBLIC/openapi.json)
   WebSocket:  ws://127.0.0.1:$PUBLIC_PORT/ws/updates?token=<token>
   Redis:      $REDIS_URL
   Nodes:      $(for n in $(api_names) $(ws_names); do printf '%s=:%s ' "$n" "$(node_port "$n")"; done)$prometheus_line
   Demo login: demo@example.com / demo-password

     curl -sS -X POST $PUBLIC/api/auth/login \\
          -H 'content-type: application/json' \\
          -d '{"email":"demo@example.com","password":"demo-password"}'

   Logs:       ${LOG_DIR#"$REPO"/}/      Env: source ${DEV_STATE#"$REPO"/}/env
   Live events: $BIN_DIR/loadgen watch --ws ws://127.0.0.1:$PUBLIC_PORT/ws/updates --token <token>
   Rolling restart under traffic: scripts/rolling-restart.sh
   Stop:       Ctrl-C
  ============================================================

BANNER

# Wait for a signal (the traps clean up). Nodes may be restarted by the
# rolling-restart script meanwhile, so no single child is waited on.
while true; do
    sleep 1 &
    wait $! || true
done
