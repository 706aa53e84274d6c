#!/usr/bin/env bash
#
# scripts/chaos.sh — the chaos suite (chaos/, issue 8): builds the nodes and
# the suite, starts a throwaway PostgreSQL under .local/chaos-<pid>/ (wiped
# at exit) and runs `chaos`, which runs Redis, two api-nodes and two
# ws-nodes itself on free ports of 127.0.0.1, injects faults a to i one
# after another under a bounded workload, and checks every socket's stream
# and every write against PostgreSQL's task_events. A full run rewrites
# FAULTS.md at the repository root. Exits non-zero if any check failed.
#
#   BUILD_PROFILE=debug (default) | release
#   CHAOS_ONLY=b,h           only these faults (FAULTS.md is left alone)
#   CHAOS_USERS=20 CHAOS_RATE=40
#   CHAOS_API_NODE_BIN, CHAOS_WS_NODE_BIN   other node binaries to put through it
#                            (e.g. an older build, to see a fixed defect caught)
# When it fails, the logs of every process are copied to .local/chaos-failed/.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=scripts/services.sh
source "$REPO/scripts/services.sh"
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

BUILD_PROFILE="${BUILD_PROFILE:-debug}"
STATE="$REPO/.local/chaos-$$"

log() { printf '[chaos.sh] %s\n' "$*" >&2; }

# Processes the suite started and could not stop itself (it was killed):
# each by the pid it wrote, and only while that pid is still one of ours.
kill_leftovers() {
    local dir=$1 f pid
    for f in "$dir"/run/pids/*.pid; do
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
    if ((rc != 0)) && [[ -d "$STATE/run/logs" ]]; then
        rm -rf "$REPO/.local/chaos-failed"
        mkdir -p "$REPO/.local/chaos-failed"
        cp -r "$STATE/run/logs/." "$REPO/.local/chaos-failed/" 2>/dev/null || true
        cp "${SVC_PG_DIR:-$STATE/pg}/postgres.log" "$REPO/.local/chaos-failed/" 2>/dev/null || true
        log "logs kept in .local/chaos-failed/"
    fi
    wipe_state_dir "$STATE"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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
export CHAOS_DIR="$STATE/run"
export CHAOS_REPO="$REPO"
# FAULTS.md describes this checkout's nodes: other binaries leave it alone.
if [[ $CHAOS_API_NODE_BIN == "$BIN/api-node" && $CHAOS_WS_NODE_BIN == "$BIN/ws-node" ]]; then
    export CHAOS_FAULTS_MD="${CHAOS_FAULTS_MD:-$REPO/FAULTS.md}"
fi
mkdir -p "$CHAOS_DIR"

log "running the suite (PostgreSQL on 127.0.0.1:$PGPORT)"
"$BIN/chaos"
