#!/usr/bin/env bash
#
# scripts/rolling-restart.sh — restarts every node of the running local
# cluster (scripts/up.sh) in turn, without failing a request or losing an
# event. Each node is stopped with SIGTERM and started again on its port;
# nginx needs no reload:
# - a stopping api-node refuses new connections at once (nginx's connect
#   fails and it tries the other node, safely even for a POST), finishes
#   what it has in flight, answers with `Connection: close`, and leaves idle
#   keep-alive connections for nginx to close;
# - a stopping ws-node closes its sockets with 1001; clients reconnect
#   through nginx, land on another node, and resume with `since`.
#
#   PAUSE=3   seconds to wait between nodes (longer than nginx's 2 s
#             fail_timeout, so the restarted node is back in rotation)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
CLUSTER_DIR="${CLUSTER_DIR:-$REPO/.local/dev}"
[[ -s "$CLUSTER_DIR/env" ]] || { echo "no cluster in $CLUSTER_DIR: start scripts/up.sh first" >&2; exit 1; }
# shellcheck disable=SC1091
source "$CLUSTER_DIR/env"
# shellcheck source=scripts/services.sh
source "$REPO/scripts/services.sh"
# shellcheck source=scripts/cluster.sh
source "$REPO/scripts/cluster.sh"
PAUSE="${PAUSE:-3}"

log() { printf '[rolling-restart] %s\n' "$*" >&2; }

started=$(date +%s)
for name in $(api_names) $(ws_names); do
    log "restarting $name"
    stop_process "$name" 40
    start_node "$name"
    log "$name is back"
    sleep "$PAUSE"
done
log "restarted $((API_NODES + WS_NODES)) nodes in $(($(date +%s) - started)) s"
