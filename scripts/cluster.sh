#!/usr/bin/env bash
#
# scripts/cluster.sh — the local cluster's processes, sourced by up.sh and
# rolling-restart.sh: N api-nodes, M ws-nodes, nginx in front (rendered from
# deploy/nginx/nginx.conf) and, when asked, Prometheus (rendered from
# deploy/prometheus/prometheus.yml).
#
# Every process writes a pid file under $RUN_DIR, so another script (the
# rolling restart) can stop and start nodes of a cluster it did not start.
#
# Settings (defaults):
#   PUBLIC_PORT=8080     nginx, the only port clients need
#   API_NODES=2          api-nodes on API_BASE_PORT (8081), 8082, ...
#   WS_NODES=2           ws-nodes on WS_BASE_PORT (8091), 8092, ...
#   PROMETHEUS=0         1: also run Prometheus on PROMETHEUS_PORT (9090)
#   BUILD_PROFILE=release  which target/ directory the binaries come from
# The nodes' own settings (DATABASE_URL, REDIS_URL, JWT_SECRET, ...) come from
# the environment.

: "${REPO:?source scripts/cluster.sh from a script that sets REPO}"
declare -F pid_running >/dev/null || {
    echo "[cluster] source scripts/services.sh before scripts/cluster.sh" >&2
    return 1
}
PUBLIC_PORT="${PUBLIC_PORT:-8080}"
API_NODES="${API_NODES:-2}"
WS_NODES="${WS_NODES:-2}"
API_BASE_PORT="${API_BASE_PORT:-8081}"
WS_BASE_PORT="${WS_BASE_PORT:-8091}"
PROMETHEUS="${PROMETHEUS:-0}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
BUILD_PROFILE="${BUILD_PROFILE:-release}"
CLUSTER_DIR="${CLUSTER_DIR:-$REPO/.local/dev}"
RUN_DIR="$CLUSTER_DIR/run"
LOG_DIR="$CLUSTER_DIR/logs"
BIN_DIR="$REPO/target/$BUILD_PROFILE"
CLUSTER_TIMEOUT="${SVC_START_TIMEOUT:-30}"

clog() { printf '[cluster] %s\n' "$*" >&2; }

api_names() { local i; for ((i = 1; i <= API_NODES; i++)); do echo "api-node-$i"; done; }
ws_names() { local i; for ((i = 1; i <= WS_NODES; i++)); do echo "ws-node-$i"; done; }

# node_port NAME — the port of api-node-N / ws-node-N.
node_port() {
    local name=$1 n=${1##*-}
    case $name in
        api-node-*) echo $((API_BASE_PORT + n - 1)) ;;
        ws-node-*) echo $((WS_BASE_PORT + n - 1)) ;;
        *) return 1 ;;
    esac
}

_pid_of() { [[ -s "$RUN_DIR/$1.pid" ]] && cat "$RUN_DIR/$1.pid"; }

_alive() { local pid; pid=$(_pid_of "$1") && pid_running "$pid"; }

# wait_ready NAME URL — until URL answers 2xx, or the process dies.
wait_ready() {
    local name=$1 url=$2 i
    for ((i = 0; i < CLUSTER_TIMEOUT * 10; i++)); do
        curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
        if ! _alive "$name"; then
            clog "$name exited before becoming ready; last log lines:"
            tail -n 20 "$LOG_DIR/$name.log" >&2 || true
            return 1
        fi
        sleep 0.1
    done
    clog "$name did not become ready within ${CLUSTER_TIMEOUT}s"
    return 1
}

# start_node NAME — starts api-node-N or ws-node-N and waits until ready.
start_node() {
    local name=$1 port bin addr_var
    port=$(node_port "$name")
    case $name in
        api-node-*) bin="$BIN_DIR/api-node" addr_var=LISTEN_ADDR ;;
        ws-node-*) bin="$BIN_DIR/ws-node" addr_var=WS_LISTEN_ADDR ;;
    esac
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    if port_in_use "$port"; then
        clog "127.0.0.1:$port is in use; cannot start $name"
        return 1
    fi
    # nginx is the only proxy in front: its X-Forwarded-For is believed.
    env "$addr_var=127.0.0.1:$port" TRUSTED_PROXIES=127.0.0.1 "$bin" </dev/null >>"$LOG_DIR/$name.log" 2>&1 &
    echo $! >"$RUN_DIR/$name.pid"
    wait_ready "$name" "http://127.0.0.1:$port/readyz"
}

# stop_process NAME [SECONDS] — SIGTERM, wait (default 30 s), then SIGKILL.
# A process that has exited counts as stopped even before its parent reaps
# it (a zombie still answers `kill -0`).
stop_process() {
    local name=$1 grace=${2:-30} pid i
    pid=$(_pid_of "$name") || return 0
    if pid_running "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < grace * 10; i++)); do
            pid_running "$pid" || break
            sleep 0.1
        done
        if pid_running "$pid"; then
            clog "$name did not stop within ${grace}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$RUN_DIR/$name.pid"
}

# stage_board DIR — the live board, for the entrypoint to copy where the
# template serves it: clients/board, with the client library
# (clients/js/src) as lib/.
stage_board() {
    local www=$1
    rm -rf "$www.new"
    mkdir -p "$www.new/lib"
    cp "$REPO"/clients/board/*.html "$REPO"/clients/board/*.css "$REPO"/clients/board/*.js "$www.new/"
    cp "$REPO"/clients/js/src/*.js "$www.new/lib/"
    rm -rf "$www"
    mv "$www.new" "$www"
}

# render_nginx [EXCLUDED_NODE...] — the config, with these nodes left out,
# rendered by the container's entrypoint (the template's one renderer).
render_nginx() {
    local dir="$RUN_DIR/nginx" api="" ws="" name skip x
    mkdir -p "$dir"
    stage_board "$RUN_DIR/board"
    for name in $(api_names) $(ws_names); do
        skip=0
        for x in "$@"; do [[ $x == "$name" ]] && skip=1; done
        ((skip)) && continue
        case $name in
            api-node-*) api+="127.0.0.1:$(node_port "$name") " ;;
            ws-node-*) ws+="127.0.0.1:$(node_port "$name") " ;;
        esac
    done
    API_SERVERS="$api" WS_SERVERS="$ws" LISTEN="127.0.0.1:$PUBLIC_PORT" RUNTIME_DIR="$dir" \
        NGINX_TEMPLATE="$REPO/deploy/nginx/nginx.conf" BOARD_DIR="$RUN_DIR/board" NGINX_LOG_FILES=1 \
        sh "$REPO/deploy/docker/nginx-entrypoint.sh" --render-only
}

_nginx() { nginx -e "$RUN_DIR/nginx/error.log" -p "$RUN_DIR/nginx" -c "$RUN_DIR/nginx/nginx.conf" "$@"; }

start_nginx() {
    render_nginx
    _nginx -t -q || return 1
    # Not through _nginx: `$!` must be nginx's own pid, not a subshell's.
    nginx -e "$RUN_DIR/nginx/error.log" -p "$RUN_DIR/nginx" -c "$RUN_DIR/nginx/nginx.conf" \
        </dev/null >>"$LOG_DIR/nginx.log" 2>&1 &
    echo $! >"$RUN_DIR/nginx.pid"
    local i
    for ((i = 0; i < 100; i++)); do
        curl -s -o /dev/null "http://127.0.0.1:$PUBLIC_PORT/" && return 0
        sleep 0.1
    done
    clog "nginx did not start; see $RUN_DIR/nginx/error.log"
    return 1
}

# reload_nginx [EXCLUDED_NODE...] — re-render and reload gracefully: old
# workers finish the requests they have.
reload_nginx() {
    render_nginx "$@"
    _nginx -t -q && _nginx -s reload
}

start_prometheus() {
    local dir="$RUN_DIR/prometheus" api="" ws="" name
    mkdir -p "$dir"
    for name in $(api_names); do api+="'127.0.0.1:$(node_port "$name")', "; done
    for name in $(ws_names); do ws+="'127.0.0.1:$(node_port "$name")', "; done
    sed -e "s|__API_TARGETS__|[${api%, }]|" -e "s|__WS_TARGETS__|[${ws%, }]|" \
        "$REPO/deploy/prometheus/prometheus.yml" >"$dir/prometheus.yml"
    # The alerting rules, where the configuration's rule_files looks.
    cp "$REPO/deploy/prometheus/alerts.yml" "$dir/alerts.yml"
    prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
        --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" </dev/null >>"$LOG_DIR/prometheus.log" 2>&1 &
    echo $! >"$RUN_DIR/prometheus.pid"
    wait_ready prometheus "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
}

# start_cluster — every node, then nginx (and Prometheus).
start_cluster() {
    local name
    for name in $(api_names) $(ws_names); do
        clog "starting $name on 127.0.0.1:$(node_port "$name")"
        start_node "$name" || return 1
    done
    clog "starting nginx on 127.0.0.1:$PUBLIC_PORT"
    start_nginx || return 1
    if [[ $PROMETHEUS == 1 ]]; then
        clog "starting Prometheus on 127.0.0.1:$PROMETHEUS_PORT"
        start_prometheus || return 1
    fi
}

# stop_cluster — whatever has a pid file: nginx first, then the nodes
# (draining), then Prometheus.
stop_cluster() {
    local f name stoppers=()
    stop_process nginx 15
    for f in "$RUN_DIR"/*-node-*.pid; do
        [[ -e $f ]] || continue
        name=$(basename "$f" .pid)
        clog "stopping $name"
        stop_process "$name" 40 &
        stoppers+=($!)
    done
    ((${#stoppers[@]} == 0)) || wait "${stoppers[@]}"
    stop_process prometheus 10
}
