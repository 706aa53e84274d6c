#!/usr/bin/env bash
#
# scripts/schemathesis.sh — fuzz one api-node against the OpenAPI document it
# serves (GET /openapi.json) with Schemathesis (https://schemathesis.io, from
# PyPI): every check, positive and negative data, and the stateful phase,
# which follows the document's `links` (register → login; create → get,
# update, delete; get → update, delete; update → get, update, delete, with
# the ETag as If-Match) and the ones it infers from `Location`.
#
# It builds the api-node (debug), starts a throwaway PostgreSQL and Redis
# under .local/schemathesis-<pid>/ (wiped at exit), migrates, serves on a
# free port of 127.0.0.1, registers a user with curl and runs `st run` with
# that user's token. Exits non-zero on any finding; the reports and the
# node's log are then kept in .local/schemathesis-failed/.
#
#   ST_MAX_EXAMPLES=100    test cases per operation and phase
#   ST_TIMEOUT=240         hard limit of the `st run` steps together (s)
#   ST_SEED=N              replay a run (its seed is printed at the start)
#   ST_WORKERS=1           concurrent workers
#   ST_ARGS='...'          more arguments for `st run`
#
# Logout revokes the token it is called with, so the main run leaves it out
# (the whole run would otherwise go on as 401s) and a second, short run
# fuzzes it alone at the end (no stateful phase: no link leads to it).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=scripts/services.sh
source "$REPO/scripts/services.sh"

ST_MAX_EXAMPLES="${ST_MAX_EXAMPLES:-100}"
ST_TIMEOUT="${ST_TIMEOUT:-240}"
ST_WORKERS="${ST_WORKERS:-1}"
STATE="$REPO/.local/schemathesis-$$"
NODE_PID=""

log() { printf '[schemathesis] %s\n' "$*" >&2; }

# shellcheck disable=SC2317 # invoked via trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$NODE_PID" ]] && pid_running "$NODE_PID"; then
        kill -TERM "$NODE_PID" 2>/dev/null || true
        for _ in $(seq 50); do pid_running "$NODE_PID" || break; sleep 0.1; done
        kill -KILL "$NODE_PID" 2>/dev/null || true
    fi
    stop_services
    if ((rc != 0)) && [[ -d "$STATE" ]]; then
        rm -rf "$REPO/.local/schemathesis-failed"
        mkdir -p "$REPO/.local/schemathesis-failed"
        cp -r "$STATE/report" "$STATE/.schemathesis" "$REPO/.local/schemathesis-failed/" 2>/dev/null || true
        cp "$STATE/api-node.log" "$REPO/.local/schemathesis-failed/" 2>/dev/null || true
        log "reports and the node's log kept in .local/schemathesis-failed/"
    fi
    wipe_state_dir "$STATE"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# `st` may be another program (suckless's terminal): call the module.
ST=(python3 -m schemathesis.cli)
if ! "${ST[@]}" --version >/dev/null 2>&1; then
    log "Schemathesis is not installed: python3 -m pip install schemathesis"
    exit 1
fi
ensure_packages curl

# State left behind by earlier runs that were killed (their pid is gone).
for d in "$REPO"/.local/schemathesis-[0-9]*; do
    [[ -d "$d" ]] || continue
    pid=${d##*/schemathesis-}
    if [[ "$pid" != "$$" ]] && ! pid_running "$pid"; then
        log "removing stale $d"
        wipe_state_dir "$d"
    fi
done
mkdir -p "$STATE"

log "cargo build -p api-node --locked"
cargo build -q -p api-node --locked

for attempt in 1 2 3; do
    PGPORT="$(free_port)"
    if PG_FAST=1 start_postgres "$STATE/pg" "$PGPORT"; then break; fi
    [[ $attempt == 3 ]] && { log "could not start PostgreSQL"; exit 1; }
done
for attempt in 1 2 3; do
    REDISPORT="$(free_port)"
    if start_redis "$STATE/redis" "$REDISPORT"; then break; fi
    [[ $attempt == 3 ]] && { log "could not start Redis"; exit 1; }
done

# The node's settings (.env.example). The abuse limits are raised: the run
# registers and fails logins from one address far more often than a person
# would, and should reach the handlers behind the limits (the limits
# themselves are api-node/tests/rate_limit.rs's business).
export DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
export REDIS_URL="redis://127.0.0.1:$REDISPORT"
export REDIS_NAMESPACE="schemathesis"
JWT_SECRET="$(openssl rand -hex 32 2>/dev/null ||
    python3 -c 'import secrets; print(secrets.token_hex(32))')"
export JWT_SECRET
export RUST_LOG="${RUST_LOG:-warn}"
export LOG_FORMAT=text
export REGISTER_MAX_PER_CLIENT=1000000
export LOGIN_MAX_FAILURES_PER_CLIENT=1000000
export LOGIN_MAX_FAILURES_PER_EMAIL=1000000

log "api-node migrate"
target/debug/api-node migrate >"$STATE/migrate.log" 2>&1 || {
    cat "$STATE/migrate.log" >&2
    exit 1
}

for attempt in 1 2 3; do
    PORT="$(free_port)"
    LISTEN_ADDR="127.0.0.1:$PORT" target/debug/api-node >"$STATE/api-node.log" 2>&1 &
    NODE_PID=$!
    for _ in $(seq 150); do
        if curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 || ! pid_running "$NODE_PID"; then
            break
        fi
        sleep 0.2
    done
    curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    kill -KILL "$NODE_PID" 2>/dev/null || true
    NODE_PID=""
    tail -n 20 "$STATE/api-node.log" >&2
    [[ $attempt == 3 ]] && { log "the api-node did not become ready"; exit 1; }
done
BASE="http://127.0.0.1:$PORT"
log "api-node on $BASE (log: $STATE/api-node.log)"

# The fuzzed user. Its password never reaches a log.
PASSWORD="$(openssl rand -hex 16 2>/dev/null ||
    python3 -c 'import secrets; print(secrets.token_hex(16))')"
REGISTERED="$(curl -fsS -X POST "$BASE/api/auth/register" -H 'content-type: application/json' \
    -d "{\"email\":\"fuzz-$$@example.com\",\"password\":\"$PASSWORD\",\"name\":\"Fuzz\"}")"
TOKEN="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' <<<"$REGISTERED")"

# Every check, both data modes, all four phases (examples, coverage,
# fuzzing, stateful). scripts/schemathesis_hooks.py accepts the two answers
# JSON Schema cannot predict (a made-up cursor, a stale If-Match). Run from
# the state dir: Schemathesis keeps its crash cache in ./.schemathesis.
export PYTHONPATH="$REPO/scripts${PYTHONPATH:+:$PYTHONPATH}"
export SCHEMATHESIS_HOOKS=schemathesis_hooks
cd "$STATE"
common=(
    --checks all
    --mode all
    --max-examples "$ST_MAX_EXAMPLES"
    --workers "$ST_WORKERS"
    --request-timeout 10
    --generation-database none
    --suppress-health-check all
    --no-color
    --header "Authorization: Bearer $TOKEN"
)
[[ -n "${ST_SEED:-}" ]] && common+=(--seed "$ST_SEED")
# shellcheck disable=SC2206 # ST_ARGS is split on purpose
[[ -n "${ST_ARGS:-}" ]] && common+=($ST_ARGS)

started=$SECONDS
deadline=$((SECONDS + ST_TIMEOUT))
status=0
log "st run $BASE/openapi.json (everything but logout; at most ${ST_TIMEOUT}s for both runs)"
timeout --kill-after=10 "$ST_TIMEOUT" "${ST[@]}" run "$BASE/openapi.json" "${common[@]}" \
    --exclude-operation-id logout \
    --report junit,har --report-dir "$STATE/report/main" || status=$?
if ((status == 0)); then
    left=$((deadline - SECONDS))
    if ((left < 10)); then
        log "FAILED: no time left for the logout run"
        status=124
    else
        log "st run $BASE/openapi.json (logout alone; it revokes the token, so it comes last)"
        timeout --kill-after=10 "$left" "${ST[@]}" run "$BASE/openapi.json" "${common[@]}" \
            --include-operation-id logout --phases examples,coverage,fuzzing \
            --report junit,har --report-dir "$STATE/report/logout" || status=$?
    fi
fi
elapsed=$((SECONDS - started))

# The node logs at warn: an internal error, an unavailable dependency or a
# panic is worth seeing whatever Schemathesis made of it.
if grep -qE 'ERROR|WARN|panicked' "$STATE/api-node.log" 2>/dev/null; then
    log "the node logged (last 20 such lines):"
    grep -E 'ERROR|WARN|panicked' "$STATE/api-node.log" | tail -n 20 >&2
fi
if ((status == 124 || status == 137)); then
    log "FAILED: Schemathesis did not finish within ${ST_TIMEOUT}s"
elif ((status != 0)); then
    log "FAILED: Schemathesis reported findings (exit $status) after ${elapsed}s"
else
    log "clean after ${elapsed}s"
fi
exit "$status"
