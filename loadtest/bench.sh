#!/usr/bin/env bash
#
# loadtest/bench.sh — the benchmark. Runs, in one go on this machine, the
# project against the limits measured in the same run, and writes
# loadtest/RESULTS.md, loadtest/results/latency.png and the raw outputs in
# loadtest/results/raw/.
#
# One api-node and one ws-node (release builds) on their own PostgreSQL and
# Redis (throwaway, under .local/bench-<pid>), the load generators beside
# them on the same 2 cores. Limits measured in the same run:
# - floor: a minimal hyper server with a fixed JSON body (loadgen's `floor`);
# - the cached-read floor: the same server doing one Redis GET per request
#   through the same crate and connection type as the api-node;
# - redis-benchmark GET (what a cached read needs);
# - pgbench with the exact SQL of a task write and of an uncached read;
# - one argon2 hash (loadgen's `hash_time`): login limit = cores / hash time.
#
#   BENCH_SECS=10      seconds per HTTP scenario
#   BENCH_READ_ROUNDS=9  paired rounds of the cached read and its floor (each
#                      with an A/A pair: the floor against a twin of itself)
#   BENCH_READ_SECS=6  seconds per server per read round (more, shorter rounds
#                      than the other scenarios: the report takes the median
#                      of the rounds, and one stall of this host spoils a round)
#   BENCH_READ_FLOOR_PAD=470  busy-work iterations per request of the padded
#                      floor (470: the api-node's instructions per cached read)
#   BENCH_WRITE_ROUNDS=3 paired rounds of POST /api/tasks and pgbench's write
#   WS_IDLE_CONNS=19000  idle sockets (the process fd limit here is 20,000)
#   WS_FANOUT_CONNS=10000 WS_FANOUT_USERS=1000 WS_FANOUT_RATE=500
#   WS_CAPACITY_RATES=500,1000,...  the writer's steps (writes/s) in ws_capacity
#   BENCH_ONLY="create_task pgbench_create"   (redis_events_cluster also runs
#                      redis_events_cluster_wait)  run only these scenarios, for
#                      iterating on one figure: outputs go to .local/bench-last/
#                      and RESULTS.md is left alone
#   BENCH_API_NODE_BIN=path  measure that api-node binary instead (A/B runs)
#   BENCH_PERF=api-node|ws-node  run that node under `perf record -g` (cpu-clock
#                      samples); the profile lands in .local/bench-last/<node>.perf
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=scripts/services.sh
source "$REPO/scripts/services.sh"

SECS="${BENCH_SECS:-10}"
READ_ROUNDS="${BENCH_READ_ROUNDS:-9}"
READ_SECS="${BENCH_READ_SECS:-6}"
READ_FLOOR_PAD="${BENCH_READ_FLOOR_PAD:-470}"
WRITE_ROUNDS="${BENCH_WRITE_ROUNDS:-3}"
STATE="$REPO/.local/bench-$$"
RESULTS="$REPO/loadtest/results"
RAW="$RESULTS/raw"
REPORT_DIR="$REPO/loadtest"
if [[ -n "${BENCH_ONLY:-}" ]]; then
    RAW="$REPO/.local/bench-last/results/raw"
    REPORT_DIR="$REPO/.local/bench-last"
fi
BIN="$REPO/target/release"
# Another api-node build to measure (an A/B of one change, with BENCH_ONLY).
API_NODE_BIN="${BENCH_API_NODE_BIN:-$BIN/api-node}"
API_PORT=38081 WS_PORT=38091 FLOOR_PORT=38999 READ_FLOOR_PORT=38998 TWIN_PORT=38997 PADDED_PORT=38996
API="http://127.0.0.1:$API_PORT"
PIDS=()

log() { printf '[bench] %s\n' "$*" >&2; }

stop_all_at_exit "$STATE"

ensure_packages wrk curl
if [[ ! -x "$REPO/.local/venv/bin/python" ]] || ! "$REPO/.local/venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    log "installing matplotlib into .local/venv (for the chart)"
    python3 -m venv "$REPO/.local/venv"
    "$REPO/.local/venv/bin/pip" install -q matplotlib
fi
log "building (release)"
cargo build --release --locked -p api-node -p ws-node -p loadgen

mkdir -p "$STATE" "$RAW"
rm -f "$RAW"/*
# When and what was measured, for the report.
dirty=""
# (Not counting the raw outputs just removed above: they are this run's.)
[[ -z "$(git status --porcelain --untracked-files=no -- . ':!loadtest/results' ':!loadtest/RESULTS.md' 2>/dev/null)" ]] || dirty="+uncommitted changes"
printf '{"date": "%s", "commit": "%s%s"}\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" \
    "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$dirty" >"$RAW/run.json"
PGPORT="$(free_port)"
start_postgres "$STATE/pg" "$PGPORT"
REDISPORT="$(free_port)"
start_redis "$STATE/redis" "$REDISPORT"
PSQL=("$PG_BIN_DIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U postgres)
"${PSQL[@]}" -d postgres -c 'CREATE DATABASE bench'

export DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/bench"
export REDIS_URL="redis://127.0.0.1:$REDISPORT"
JWT_SECRET="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
export JWT_SECRET RUST_LOG=warn
# Every bench user registers from 127.0.0.1: lift the per-address
# registration limit (20 an hour by default) for this run.
export REGISTER_MAX_PER_CLIENT=1000000
"$API_NODE_BIN" migrate
profiled() { # NODE — the command prefix that runs NODE, under perf when asked
    if [[ "${BENCH_PERF:-}" == "$1" ]]; then
        mkdir -p "$REPO/.local/bench-last"
        echo perf record -F 499 -g -o "$REPO/.local/bench-last/$1.perf" --
    fi
}
# shellcheck disable=SC2046 # the prefix is words on purpose
LISTEN_ADDR="127.0.0.1:$API_PORT" $(profiled api-node) "$API_NODE_BIN" >"$STATE/api-node.log" 2>&1 &
API_PID=$!
PIDS+=("$API_PID")
# ws_idle holds 190 sockets per user and ws_broadcast 10,000 of one user:
# lift the per-user socket cap (100 by default) for this run.
start_ws_node() {
    # shellcheck disable=SC2046
    WS_LISTEN_ADDR="127.0.0.1:$WS_PORT" WS_MAX_SOCKETS_PER_USER=1000000 $(profiled ws-node) "$BIN/ws-node" >>"$STATE/ws-node.log" 2>&1 &
    WS_PID=$!
    PIDS+=("$WS_PID")
}
start_ws_node
"$BIN/floor" "127.0.0.1:$FLOOR_PORT" &
PIDS+=($!)
"$BIN/floor" "127.0.0.1:$READ_FLOOR_PORT" "$REDIS_URL" &
READ_FLOOR_PID=$!
PIDS+=("$READ_FLOOR_PID")
# A second copy of the cached-read floor: the A/A pair that shows how far
# two identical servers' figures drift apart here, round to round.
"$BIN/floor" "127.0.0.1:$TWIN_PORT" "$REDIS_URL" &
TWIN_PID=$!
PIDS+=("$TWIN_PID")
# The cached-read floor padded with busy work to the api-node's count of
# instructions per cached read (callgrind: `loadtest/variants.sh` with
# VARIANT_INSTRUCTIONS=1 VARIANT_PAD=N), sent the api-node's request: what
# that many instructions alone cost here, apart from how the node is built.
"$BIN/floor" "127.0.0.1:$PADDED_PORT" "$REDIS_URL" "$READ_FLOOR_PAD" &
PADDED_PID=$!
PIDS+=("$PADDED_PID")
for url in "$API/readyz" "http://127.0.0.1:$WS_PORT/readyz" "http://127.0.0.1:$FLOOR_PORT/" "http://127.0.0.1:$READ_FLOOR_PORT/" "http://127.0.0.1:$TWIN_PORT/" "http://127.0.0.1:$PADDED_PORT/"; do
    for ((i = 0; i < 100; i++)); do curl -fsS -o /dev/null "$url" 2>/dev/null && break; sleep 0.1; done
done

log "64 bench users (ids 00000000-0000-0000-0000-<n>, for pgbench)"
: >"$STATE/emails"
for n in $(seq 1 64); do
    email="bench-$n@example.com"
    curl -fsS -o /dev/null -X POST "$API/api/auth/register" -H 'content-type: application/json' \
        -d "{\"email\":\"$email\",\"password\":\"bench-password-1\",\"name\":\"Bench $n\"}"
    "${PSQL[@]}" -d bench -c "UPDATE users SET id = ('00000000-0000-0000-0000-' || lpad('$n', 12, '0'))::uuid WHERE email = '$email'"
    echo "$email" >>"$STATE/emails"
done
: >"$STATE/tokens"
while read -r email; do
    curl -fsS -X POST "$API/api/auth/login" -H 'content-type: application/json' \
        -d "{\"email\":\"$email\",\"password\":\"bench-password-1\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' >>"$STATE/tokens"
done <"$STATE/emails"
TOKEN="$(head -n 1 "$STATE/tokens")"
TASK="$(curl -fsS -X POST "$API/api/tasks" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d '{"title":"the cached task","description":"read over and over","priority":5}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
curl -fsS -o /dev/null -H "authorization: Bearer $TOKEN" "$API/api/tasks/$TASK"
sed -e "s/@TASK@/$TASK/" -e "s/@USER@/00000000-0000-0000-0000-000000000001/" \
    loadtest/bench/read_task.sql.in >"$STATE/read_task.sql"

run() { # NAME COMMAND... — runs a scenario, keeping its output
    local name=$1
    shift
    # A round's name (cached_get_r2) is selected by its scenario's (cached_get);
    # the floor's twin and padded copy (read_floor_twin_r2) come with the floor.
    local scenario=${name%_r[0-9]*}
    scenario=${scenario%_twin}
    scenario=${scenario%_padded}
    if [[ -n "${BENCH_ONLY:-}" && " $BENCH_ONLY " != *" $scenario "* ]]; then
        return 0
    fi
    log "$name"
    "$@" >"$RAW/$name.txt" 2>&1 || log "$name exited with status $?"
}

cpu_secs() { # PID — the CPU time (user + system, seconds) PID has used so far
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}
timed() { # PID NAME COMMAND... — `run`, then adds the CPU PID used meanwhile to NAME's output
    local pid=$1 name=$2 before
    shift 2
    before=$(cpu_secs "$pid")
    run "$name" "$@"
    [[ ! -f "$RAW/$name.txt" ]] ||
        echo "server_cpu_seconds: $(awk -v a="$before" -v b="$(cpu_secs "$pid")" 'BEGIN { printf "%.2f", b - a }')" >>"$RAW/$name.txt"
}

run floor wrk -t1 -c64 -d"${SECS}s" --latency "http://127.0.0.1:$FLOOR_PORT/"
# The cached read against its floor in paired rounds, the order swapped each
# round (floor first, then the read first): a one-off stall of this shared
# machine hits one round's pair, and the report takes the median of the
# rounds' ratios instead of trusting one pair. The floor's twin runs on the
# floor's other side, so each round also holds an A/A pair (twin, floor).
for ((round = 1; round <= READ_ROUNDS; round++)); do
    pair=(read_floor_twin read_floor cached_get read_floor_padded)
    ((round % 2)) || pair=(read_floor_padded cached_get read_floor read_floor_twin)
    for name in "${pair[@]}"; do
        if [[ $name == read_floor ]]; then
            timed "$READ_FLOOR_PID" "read_floor_r$round" wrk -t1 -c64 -d"${READ_SECS}s" --latency "http://127.0.0.1:$READ_FLOOR_PORT/"
        elif [[ $name == read_floor_padded ]]; then
            timed "$PADDED_PID" "read_floor_padded_r$round" wrk -t1 -c64 -d"${READ_SECS}s" --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PADDED_PORT/api/tasks/$TASK"
        elif [[ $name == read_floor_twin ]]; then
            timed "$TWIN_PID" "read_floor_twin_r$round" wrk -t1 -c64 -d"${READ_SECS}s" --latency "http://127.0.0.1:$TWIN_PORT/"
        else
            timed "$API_PID" "cached_get_r$round" wrk -t1 -c64 -d"${READ_SECS}s" --latency -H "Authorization: Bearer $TOKEN" "$API/api/tasks/$TASK"
        fi
    done
done
run redis_get redis-benchmark -h 127.0.0.1 -p "$REDISPORT" -c 64 -n 400000 -d 420 -t get -q
# The write against pgbench running its transaction, in paired rounds like
# the read: a disk stall of this shared host (a commit waiting most of a
# second for its fsync) otherwise decides the whole ratio.
for ((round = 1; round <= WRITE_ROUNDS; round++)); do
    pair=(pgbench_create create_task)
    ((round % 2)) || pair=(create_task pgbench_create)
    for name in "${pair[@]}"; do
        if [[ $name == create_task ]]; then
            run "create_task_r$round" env TOKENS_FILE="$STATE/tokens" wrk -t1 -c16 -d"${SECS}s" --latency -s loadtest/bench/post_task.lua "$API"
        else
            run "pgbench_create_r$round" "$PG_BIN_DIR/pgbench" -h 127.0.0.1 -p "$PGPORT" -U postgres -n -M prepared -c 16 -j 1 -T "$SECS" -f loadtest/bench/create_task.sql bench
        fi
    done
done
run pgbench_read "$PG_BIN_DIR/pgbench" -h 127.0.0.1 -p "$PGPORT" -U postgres -n -M prepared -c 64 -j 1 -T "$SECS" -f "$STATE/read_task.sql" bench
run hash_time "$BIN/hash_time" 20 "$(nproc)"
# The login storm, with cached reads running beside it.
# The reads are paced (200/s, open loop): a steady population of readers,
# not a second saturating load that would take the cores from the logins.
[[ -n "${BENCH_ONLY:-}" && " $BENCH_ONLY " != *" login_storm "* ]] ||
    "$BIN/loadgen" paced-get --url "$API/api/tasks/$TASK" --token "$TOKEN" --rate 200 --secs "$SECS" \
        >"$RAW/cached_get_during_storm.txt" 2>&1 &
beside=$!
run login_storm env EMAILS_FILE="$STATE/emails" wrk -t1 -c8 -d"${SECS}s" --latency -s loadtest/bench/login.lua "$API"
wait "$beside" || true

run ws_idle "$BIN/loadgen" idle --api "$API" --ws "ws://127.0.0.1:$WS_PORT/ws/updates" \
    --conns "${WS_IDLE_CONNS:-19000}" --users 100 --pid "$WS_PID" --hold 1
# The same with permessage-deflate, on a fresh ws-node: memory the first
# run freed (and the allocator kept) would otherwise hide what these
# sockets take.
if [[ -z "${BENCH_ONLY:-}" || " $BENCH_ONLY " == *" ws_idle_deflate "* ]]; then
    kill -TERM "$WS_PID" && wait "$WS_PID" || true
    start_ws_node
    for ((i = 0; i < 100; i++)); do curl -fsS -o /dev/null "http://127.0.0.1:$WS_PORT/readyz" 2>/dev/null && break; sleep 0.1; done
fi
run ws_idle_deflate "$BIN/loadgen" idle --api "$API" --ws "ws://127.0.0.1:$WS_PORT/ws/updates" \
    --conns "${WS_IDLE_CONNS:-19000}" --users 100 --pid "$WS_PID" --hold 1 --deflate 1
sleep 2
run ws_fanout "$BIN/loadgen" fanout --api "$API" --ws "ws://127.0.0.1:$WS_PORT/ws/updates" \
    --conns "${WS_FANOUT_CONNS:-10000}" --users "${WS_FANOUT_USERS:-1000}" --rate "${WS_FANOUT_RATE:-500}" --secs "$SECS" --pid "$WS_PID"
# With and without compression: tasks with a ~420-character description
# (what a real board carries; a title alone is mostly ids and timestamps).
for mode in described deflate; do
    sleep 2
    run "ws_fanout_$mode" "$BIN/loadgen" fanout --api "$API" --ws "ws://127.0.0.1:$WS_PORT/ws/updates" \
        --conns "${WS_FANOUT_CONNS:-10000}" --users "${WS_FANOUT_USERS:-1000}" --rate "${WS_FANOUT_RATE:-500}" --secs "$SECS" --pid "$WS_PID" \
        --description 1 --deflate "$([[ $mode == deflate ]] && echo 1 || echo 0)"
done
sleep 2
run ws_broadcast "$BIN/loadgen" broadcast --api "$API" --ws "ws://127.0.0.1:$WS_PORT/ws/updates" \
    --conns "${WS_FANOUT_CONNS:-10000}" --rate 1 --secs 3 --pid "$WS_PID"
for mode in described deflate; do
    sleep 2
    run "ws_broadcast_$mode" "$BIN/loadgen" broadcast --api "$API" --ws "ws://127.0.0.1:$WS_PORT/ws/updates" \
        --conns "${WS_FANOUT_CONNS:-10000}" --rate 1 --secs 3 --pid "$WS_PID" \
        --description 1 --deflate "$([[ $mode == deflate ]] && echo 1 || echo 0)"
done

# Capacity (issue 10, part 3): 1,000 users × 2 sockets while the writer steps
# its rate up; compared with `POST /api/tasks` alone (create_task) above, and
# with the same writer and steps against the write path alone, nobody
# subscribed (write_capacity: its writes' p99 under 10 ms).
sleep 2
run write_capacity "$BIN/loadgen" capacity --api "$API" --conns 0 --users 1000 \
    --rates "${WS_CAPACITY_RATES:-500,750,1000,1125,1250,1375,1500,1625,1750,1875,2000,2250,2500,3000}" --secs "$SECS"
sleep 2
run ws_capacity "$BIN/loadgen" capacity --api "$API" --ws "ws://127.0.0.1:$WS_PORT/ws/updates" \
    --conns 2000 --users 1000 --rates "${WS_CAPACITY_RATES:-500,750,1000,1125,1250,1375,1500,1625,1750,1875,2000,2250,2500,3000}" --secs "$SECS" --pid "$WS_PID"

# Events through Redis alone (issue 12): published as the api-node does and
# received by the ws-node's own broker, one Redis against a throwaway Redis
# Cluster (3 primaries + 3 replicas) on the same cores, with and without the
# WAIT for a replica that api-nodes add on a cluster.
run redis_events_single "$BIN/loadgen" redis-events --redis "redis://127.0.0.1:$REDISPORT" --users 1000 --secs "$SECS"
if [[ -z "${BENCH_ONLY:-}" || " $BENCH_ONLY " == *" redis_events_cluster"* ]]; then
    start_redis_cluster "$STATE/redis-cluster"
    run redis_events_cluster "$BIN/loadgen" redis-events --redis "$SVC_REDIS_CLUSTER_URL" --users 1000 --secs "$SECS"
    run redis_events_cluster_wait "$BIN/loadgen" redis-events --redis "$SVC_REDIS_CLUSTER_URL" --users 1000 --secs "$SECS" --wait-replicas 1
    stop_redis_cluster
fi

# One process holds both ends here, so at most half the fd limit of sockets.
run tcp_floor "$BIN/loadgen" tcp-floor --conns "$(( ${WS_FANOUT_CONNS:-10000} < 9900 ? ${WS_FANOUT_CONNS:-10000} : 9900 ))"

log "writing loadtest/RESULTS.md and loadtest/results/latency.png"
"$REPO/.local/venv/bin/python" loadtest/report.py "$RAW" "$REPORT_DIR"
