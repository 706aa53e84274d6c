#!/usr/bin/env bash
#
# scripts/up.sh — bring the system up locally for development.
#
# Starts PostgreSQL (127.0.0.1:${PG_PORT:-15432}) and Redis
# (127.0.0.1:${REDIS_PORT:-16379}) with state under .local/dev (data persists
# between runs), builds and starts api-node on 127.0.0.1:${API_PORT:-8080}
# and ws-node on 127.0.0.1:${WS_PORT:-8090},
# and stops everything again on Ctrl-C / SIGTERM / exit.
#
# Environment for the node (also written to .local/dev/env):
#   DATABASE_URL  postgres://postgres@127.0.0.1:$PG_PORT/tasks
#   REDIS_URL     redis://127.0.0.1:$REDIS_PORT
#   JWT_SECRET    random, generated once into .local/dev/jwt_secret
#   LISTEN_ADDR   127.0.0.1:$API_PORT
# Knobs:
#   UP_DRY_RUN=1  stop right after the services are up and the database exists
#   UP_NO_BUILD=1 skip `cargo build`, use the existing target/release/api-node
#   SVC_START_TIMEOUT  seconds to wait for each service / node (default 30)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=scripts/services.sh
source "$REPO/scripts/services.sh"

if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

PG_PORT="${PG_PORT:-15432}"
REDIS_PORT="${REDIS_PORT:-16379}"
API_PORT="${API_PORT:-8080}"
WS_PORT="${WS_PORT:-8090}"
DEV_STATE="$REPO/.local/dev"
LOG_DIR="$DEV_STATE/logs"
API_NODE_BIN="$REPO/target/release/api-node"
WS_NODE_BIN="$REPO/target/release/ws-node"
TIMEOUT="${SVC_START_TIMEOUT:-30}"

log() { printf '[up] %s\n' "$*" >&2; }
die() { printf '[up] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- processes
# Every long-running process started here is recorded as "pid name".
NODE_PIDS=()
NODE_NAMES=()

# shellcheck disable=SC2317 # invoked via trap
stop_nodes() {
    local i pid n
    ((${#NODE_PIDS[@]} > 0)) || return 0
    for i in "${!NODE_PIDS[@]}"; do
        pid=${NODE_PIDS[$i]}
        if kill -0 "$pid" 2>/dev/null; then
            log "stopping ${NODE_NAMES[$i]} (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for i in "${!NODE_PIDS[@]}"; do
        pid=${NODE_PIDS[$i]}
        for ((n = 0; n < 100; n++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "${NODE_NAMES[$i]} (pid $pid) did not stop within 10s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    NODE_PIDS=()
    NODE_NAMES=()
}

# shellcheck disable=SC2317 # invoked via trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    stop_nodes
    stop_services
    log "everything stopped"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# wait_http NAME URL PID — wait until URL answers 2xx, failing early if PID dies.
wait_http() {
    local name=$1 url=$2 pid=$3 logfile=$4 i
    for ((i = 0; i < TIMEOUT * 5; i++)); do
        if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited before becoming ready"
            _svc_log_tail "$logfile"
            return 1
        fi
        sleep 0.2
    done
    log "$name did not answer $url within ${TIMEOUT}s"
    _svc_log_tail "$logfile"
    return 1
}

# start_node NAME BIN ADDR_VAR LISTEN_ADDR — start one node in the background
# with the environment exported below and ADDR_VAR=LISTEN_ADDR; logs to
# .local/dev/logs/NAME.log.
start_node() {
    local name=$1 bin=$2 addr_var=$3 addr=$4 logfile pid
    logfile="$LOG_DIR/$name.log"
    if port_in_use "${addr##*:}"; then
        die "$addr is already in use (set API_PORT / WS_PORT to other ports)"
    fi
    log "starting $name on $addr (log: ${logfile#"$REPO"/})"
    env "$addr_var=$addr" "$bin" </dev/null >"$logfile" 2>&1 &
    pid=$!
    NODE_PIDS+=("$pid")
    NODE_NAMES+=("$name")
    wait_http "$name" "http://$addr/readyz" "$pid" "$logfile" || die "$name failed to start"
    log "$name is ready"
}

start_nodes() {
    start_node api-node-1 "$API_NODE_BIN" LISTEN_ADDR "127.0.0.1:$API_PORT"
    start_node ws-node-1 "$WS_NODE_BIN" WS_LISTEN_ADDR "127.0.0.1:$WS_PORT"
}

# ---------------------------------------------------------------- services
ensure_packages curl
mkdir -p "$DEV_STATE" "$LOG_DIR"

start_postgres "$DEV_STATE/pg" "$PG_PORT" || die "PostgreSQL failed to start (is PG_PORT=$PG_PORT free?)"
start_redis "$DEV_STATE/redis" "$REDIS_PORT" || die "Redis failed to start (is REDIS_PORT=$REDIS_PORT free?)"

PSQL=("$PG_BIN_DIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres)
if [[ "$("${PSQL[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'tasks'")" != 1 ]]; then
    log "creating database tasks"
    "${PSQL[@]}" -c 'CREATE DATABASE tasks'
fi

if [[ ! -s "$DEV_STATE/jwt_secret" ]]; then
    log "generating JWT secret in ${DEV_STATE#"$REPO"/}/jwt_secret"
    (umask 077 && od -An -tx1 -N48 /dev/urandom | tr -d ' \n' >"$DEV_STATE/jwt_secret")
fi

export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/tasks"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
JWT_SECRET="$(cat "$DEV_STATE/jwt_secret")"
export JWT_SECRET
export LISTEN_ADDR="127.0.0.1:$API_PORT"
(
    umask 077
    cat >"$DEV_STATE/env" <<EOF
# written by scripts/up.sh; \`source .local/dev/env\` to talk to the dev services
export DATABASE_URL='$DATABASE_URL'
export REDIS_URL='$REDIS_URL'
export JWT_SECRET='$JWT_SECRET'
export LISTEN_ADDR='$LISTEN_ADDR'
EOF
)

if [[ "${UP_DRY_RUN:-}" == 1 ]]; then
    log "UP_DRY_RUN=1: services are up (DATABASE_URL=$DATABASE_URL, REDIS_URL=$REDIS_URL); stopping"
    exit 0
fi

# ---------------------------------------------------------------- api-node
if [[ "${UP_NO_BUILD:-}" == 1 ]]; then
    log "UP_NO_BUILD=1: using the existing ${API_NODE_BIN#"$REPO"/}"
else
    log "cargo build --release --locked -p api-node -p ws-node"
    cargo build --release --locked -p api-node -p ws-node
fi
[[ -x "$API_NODE_BIN" && -x "$WS_NODE_BIN" ]] || die "the nodes were not built"

log "api-node migrate"
"$API_NODE_BIN" migrate </dev/null
log "api-node seed"
"$API_NODE_BIN" seed </dev/null

start_nodes

API="http://127.0.0.1:$API_PORT"
cat <<EOF

  ============================================================
   API:      $API
   OpenAPI:  GET $API/openapi.json
   Live:     ws://127.0.0.1:$WS_PORT/ws/updates?token=<token>
   Demo login: demo@example.com / demo-password

     curl -sS -X POST $API/api/auth/login \\
          -H 'content-type: application/json' \\
          -d '{"email":"demo@example.com","password":"demo-password"}'

   Logs:     ${LOG_DIR#"$REPO"/}/
   Env:      source ${DEV_STATE#"$REPO"/}/env
   PostgreSQL: $DATABASE_URL
   Redis:      $REDIS_URL

   Press Ctrl-C to stop
  ============================================================

EOF

# Wait until a node exits on its own, or a signal arrives (the traps clean up).
status=0
wait -n "${NODE_PIDS[@]}" || status=$?
log "a node exited (status $status); shutting down"
exit "$status"
