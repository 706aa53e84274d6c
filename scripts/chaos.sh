#!/usr/bin/env bash
#
# scripts/chaos.sh — the chaos suite (chaos/, issues 8 and 12): builds the
# nodes and the suite, starts a throwaway PostgreSQL under .local/chaos-<pid>/
# (wiped at exit) and runs `chaos` in two passes, each checking every
# socket's stream and every write against PostgreSQL's task_events:
#
#   1. single Redis: `chaos` runs Redis, two api-nodes and two ws-nodes
#      itself on free ports of 127.0.0.1 and injects faults a to i one after
#      another under a bounded workload. A full pass rewrites FAULTS.md.
#   2. Redis Cluster: a throwaway cluster (3 primaries + 3 replicas,
#      start_redis_cluster) under .local/chaos-<pid>/redis-cluster/ and a
#      fresh database; `chaos` runs with CHAOS_REDIS_CLUSTER_URL/DIR, starts
#      no Redis, gives every node REDIS_URL=redis+cluster://..., and injects
#      a and c (kill -9 of an api-node, of a ws-node) and j (kill -9 of the
#      Redis primary owning the most users' channels, under traffic; its
#      replica is promoted). A full pass rewrites FAILOVER.md.
#
# Exits non-zero if any check of either pass failed.
#
#   BUILD_PROFILE=debug (default) | release
#   CHAOS_CLUSTER=1 (default, both passes) | 0 (single Redis only) | only (cluster only)
#   CHAOS_ONLY=b,h           only these faults (FAULTS.md and FAILOVER.md are
#                            left alone); a pass with none of them is skipped
#                            (b, e, h need the single Redis; j a cluster)
#   CHAOS_USERS=20 CHAOS_RATE=40
#   CHAOS_API_NODE_BIN, CHAOS_WS_NODE_BIN   other node binaries to put through it
#                            (e.g. an older build, to see a fixed defect caught)
# When it fails, the logs of every process are copied to .local/chaos-failed/
# (the cluster pass's, with the Redis nodes' logs, to .local/chaos-failed/cluster/).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=scripts/services.sh
source "$REPO/scripts/services.sh"

BUILD_PROFILE="${BUILD_PROFILE:-debug}"
CHAOS_CLUSTER="${CHAOS_CLUSTER:-1}"
STATE="$REPO/.local/chaos-$$"

log() { printf '[chaos.sh] %s\n' "$*" >&2; }

# Processes the suite started and could not stop itself (it was killed):
# each by the pid it wrote, and only while that pid is still one of ours.
kill_leftovers() {
    local dir=$1 f pid
    for f in "$dir"/run/pids/*.pid "$dir"/run-cluster/pids/*.pid; do
        [[ -e $f ]] || continue
        pid=$(cat "$f" 2>/dev/null || true)
        [[ $pid =~ ^[0-9]+$ ]] || continue
        case "$(cat "/proc/$pid/comm" 2>/dev/null || true)" in
            api-node | ws-node | redis-server)
                kill -CONT "$pid" 2>/dev/null || true
                kill -KILL "$pid" 2>/dev/null || true
                ;;
        esac
    done
}

# shellcheck disable=SC2317 # invoked via trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    kill_leftovers "$STATE"
    stop_services
    if ((rc != 0)) && [[ -d "$STATE/run/logs" || -d "$STATE/run-cluster/logs" ]]; then
        local failed="$REPO/.local/chaos-failed" node
        rm -rf "$failed"
        mkdir -p "$failed"
        if [[ -d "$STATE/run/logs" ]]; then
            cp -r "$STATE/run/logs/." "$failed/" 2>/dev/null || true
        fi
        if [[ -d "$STATE/run-cluster/logs" ]]; then
            mkdir -p "$failed/cluster"
            cp -r "$STATE/run-cluster/logs/." "$failed/cluster/" 2>/dev/null || true
            for node in "$STATE"/redis-cluster/node*; do
                [[ -d $node ]] || continue
                cp "$node/redis.log" "$failed/cluster/redis-${node##*/}.log" 2>/dev/null || true
            done
        fi
        cp "${SVC_PG_DIR:-$STATE/pg}/postgres.log" "$failed/" 2>/dev/null || true
        log "logs kept in .local/chaos-failed/${failed_passes:+ (failed: $failed_passes)}"
    fi
    wipe_state_dir "$STATE"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

case $CHAOS_CLUSTER in
    0 | 1 | only) ;;
    *)
        log "CHAOS_CLUSTER must be 0, 1 or only (not '$CHAOS_CLUSTER')"
        exit 2
        ;;
esac

# Whether CHAOS_ONLY (if set) names any of these faults (letters, e.g. "acdfgij").
only_names_any() {
    [[ -z ${CHAOS_ONLY:-} ]] && return 0
    [[ ${CHAOS_ONLY,,} =~ [$1] ]]
}
single_pass=1
cluster_pass=1
[[ $CHAOS_CLUSTER == only ]] && single_pass=0
[[ $CHAOS_CLUSTER == 0 ]] && cluster_pass=0
if ((single_pass)) && ! only_names_any abcdefghi; then
    log "CHAOS_ONLY=$CHAOS_ONLY names no fault of the single-Redis pass: skipping it"
    single_pass=0
fi
if ((cluster_pass)) && ! only_names_any acdfgij; then
    log "CHAOS_ONLY=$CHAOS_ONLY names no fault of the Redis Cluster pass: skipping it"
    cluster_pass=0
fi
if ((!single_pass && !cluster_pass)); then
    log "nothing to run (CHAOS_CLUSTER=$CHAOS_CLUSTER${CHAOS_ONLY:+, CHAOS_ONLY=$CHAOS_ONLY})"
    exit 2
fi
failed_passes=""

ensure_packages

# State left behind by earlier runs that were killed (their pid is gone).
for d in "$REPO"/.local/chaos-[0-9]*; do
    [[ -d "$d" ]] || continue
    pid=${d##*/chaos-}
    if [[ "$pid" != "$$" ]] && ! pid_running "$pid"; then
        log "removing stale $d"
        kill_leftovers "$d"
        wipe_state_dir "$d"
    fi
done

profile_flag=()
[[ $BUILD_PROFILE == release ]] && profile_flag=(--release)
log "building api-node, ws-node and chaos ($BUILD_PROFILE)"
cargo build "${profile_flag[@]}" --locked -p api-node -p ws-node -p chaos
BIN="$REPO/target/$BUILD_PROFILE"

mkdir -p "$STATE"
# Free ports can be raced by other processes; retry a few times.
for attempt in 1 2 3; do
    PGPORT="$(free_port)"
    if PG_FAST=1 start_postgres "$STATE/pg" "$PGPORT"; then break; fi
    [[ $attempt == 3 ]] && { log "could not start PostgreSQL"; exit 1; }
done

# How the suite restarts PostgreSQL: the same helpers, in a fresh bash
# (PostgreSQL runs as user postgres when we are root).
pg_ctl="source $(printf %q "$REPO/scripts/services.sh") && _svc_as_pg $(printf %q "$PG_BIN_DIR/pg_ctl")"
pg_data="$(printf %q "$SVC_PG_DATA")"
export CHAOS_PG_STOP="$pg_ctl stop -D $pg_data -m fast -w -t 30 >/dev/null"
export CHAOS_PG_START="$pg_ctl start -D $pg_data -l $(printf %q "$SVC_PG_DIR/postgres.log") -w -t 30 >/dev/null"
export DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
export CHAOS_API_NODE_BIN="${CHAOS_API_NODE_BIN:-$BIN/api-node}"
export CHAOS_WS_NODE_BIN="${CHAOS_WS_NODE_BIN:-$BIN/ws-node}"
CHAOS_REDIS_SERVER="$(command -v redis-server)"
export CHAOS_REDIS_SERVER
export CHAOS_REPO="$REPO"
# FAULTS.md and FAILOVER.md describe this checkout's nodes: other binaries
# leave them alone.
if [[ $CHAOS_API_NODE_BIN == "$BIN/api-node" && $CHAOS_WS_NODE_BIN == "$BIN/ws-node" ]]; then
    export CHAOS_FAULTS_MD="${CHAOS_FAULTS_MD:-$REPO/FAULTS.md}"
    export CHAOS_FAILOVER_MD="${CHAOS_FAILOVER_MD:-$REPO/FAILOVER.md}"
fi

if ((single_pass)); then
    export CHAOS_DIR="$STATE/run"
    mkdir -p "$CHAOS_DIR"
    log "pass 1, single Redis: running the suite (PostgreSQL on 127.0.0.1:$PGPORT)"
    "$BIN/chaos" || failed_passes+="single-Redis "
fi

if ((cluster_pass)); then
    log "pass 2, Redis Cluster: starting a cluster and a fresh database"
    start_redis_cluster "$STATE/redis-cluster"
    "$PG_BIN_DIR/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres chaos_cluster
    export CHAOS_DIR="$STATE/run-cluster"
    mkdir -p "$CHAOS_DIR"
    log "pass 2, Redis Cluster: running the suite ($SVC_REDIS_CLUSTER_URL, PostgreSQL on 127.0.0.1:$PGPORT)"
    DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/chaos_cluster" \
        CHAOS_REDIS_CLUSTER_URL="$SVC_REDIS_CLUSTER_URL" \
        CHAOS_REDIS_CLUSTER_DIR="$SVC_REDIS_CLUSTER_DIR" \
        "$BIN/chaos" || failed_passes+="Redis-Cluster "
fi

if [[ -n $failed_passes ]]; then
    log "failed: ${failed_passes% }"
    exit 1
fi
