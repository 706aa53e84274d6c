#!/usr/bin/env bash
#
# loadtest/variants.sh — the cached read of several api-node variants
# against the cached-read floor, in one run, for telling small changes
# apart on this noisy machine. Every variant is its own api-node process on
# the same PostgreSQL and Redis; each round runs every server once (wrk
# -t1 -c64, the bench's read), in an order rotated round to round, and the
# report gives each server's median req/s, p99, CPU per request (user +
# system, from /proc; the system part beside it), Redis's CPU per request
# of it (how well the server's calls were batched shows there), and its
# req/s and p99 ratios to the floor of the same round. References: `twin`,
# the same floor binary on another port (the A/A pair: what two identical
# servers get here), and `twin_auth`, the twin sent the api-node's request
# with its path and bearer token.
#
#   loadtest/variants.sh NAME=BINARY[:ENV=VALUE,...] ...
#   e.g. loadtest/variants.sh main=/tmp/api-main change=/tmp/api-change
#   (the first variant also registers the user and creates the task)
#
#   VARIANT_ROUNDS=6  VARIANT_SECS=8
#   VARIANT_PERF_ALL=1 records each wrk run system-wide (perf record -a),
#                      to NAME_rN.perf beside its output
#   VARIANT_SYSCALLS=1 counts each server's system calls during its run
#                      (perf stat), to NAME_rN.syscalls
#   VARIANT_REDIS_STATS=1 keeps Redis's INFO commandstats and stats of each
#                      run (commands per read: how well calls were batched)
#   VARIANT_PERF=NAME  runs that variant under `perf record -g` (the
#                      profile lands in .local/variants-last/NAME.perf)
#   VARIANT_INSTRUCTIONS=1 runs the floor and every variant under valgrind's
#                      callgrind instead and reports instructions per
#                      request (user space only) — a count, not a time: it
#                      repeats to a fraction of a percent whatever else the
#                      machine does, so it tells apart changes far smaller
#                      than a timed run can. Throughput and p99 under
#                      valgrind mean nothing and are not reported; each
#                      round's profile is NAME_rN.callgrind (read it with
#                      callgrind_annotate --inclusive=yes). Two rounds do.
#   VARIANT_PAD=N      adds `padded`: the floor doing N iterations of busy
#                      work per request (see its doc), sent the api-node's
#                      request — at the api-node's count of instructions,
#                      what that count alone costs in req/s and p99
#   VARIANT_FLOOR=BINARY the floor to compare with (default: the release
#                      build's; build both with the same profile)
#
# Builds nothing: build the binaries first (`cargo build --release -p
# api-node -p loadgen`). Outputs go to .local/variants-last/.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=scripts/services.sh
source "$REPO/scripts/services.sh"

(($# > 0)) || { sed -n '3,/^set -euo/p' "$0" | sed '$d'; exit 2; }
ROUNDS="${VARIANT_ROUNDS:-6}"
SECS="${VARIANT_SECS:-8}"
STATE="$REPO/.local/variants-$$"
OUT="$REPO/.local/variants-last"
FLOOR="${VARIANT_FLOOR:-$REPO/target/release/floor}"
PIDS=()

log() { printf '[variants] %s\n' "$*" >&2; }

stop_all_at_exit "$STATE"

INSTRUCTIONS="${VARIANT_INSTRUCTIONS:-}"
ensure_packages wrk curl ${INSTRUCTIONS:+valgrind}
mkdir -p "$STATE"
rm -rf "$OUT" && mkdir -p "$OUT"
PGPORT="$(free_port)"
start_postgres "$STATE/pg" "$PGPORT"
REDISPORT="$(free_port)"
start_redis "$STATE/redis" "$REDISPORT"
"$PG_BIN_DIR/psql" -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -c 'CREATE DATABASE bench'
export DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/bench"
export REDIS_URL="redis://127.0.0.1:$REDISPORT"
JWT_SECRET="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
export JWT_SECRET RUST_LOG=warn

grind() { # NAME — the valgrind prefix of that server's command, into grind
    grind=()
    # Instrumentation starts switched off: start-up and the warm-up are
    # not counted; the dumps after each round hold only that round.
    [[ -z $INSTRUCTIONS ]] ||
        grind=(valgrind --tool=callgrind --instr-atstart=no "--callgrind-out-file=$OUT/$1.callgrind")
}
declare -A URL PID
NAMES=()
serve() { # NAME PORT COMMAND... — starts a server, remembering its URL
    local name=$1 port=$2
    shift 2
    "$@" >"$OUT/$name.log" 2>&1 &
    PIDS+=($!)
    PID[$name]=$!
    NAMES+=("$name")
    URL[$name]="http://127.0.0.1:$port"
}
grind floor
port="$(free_port)" && serve floor "$port" "${grind[@]}" "$FLOOR" "127.0.0.1:$port" "$REDIS_URL"
twin=floor # counts repeat: no A/A pair needed
if [[ -z $INSTRUCTIONS ]]; then
    port="$(free_port)" && serve twin "$port" "$FLOOR" "127.0.0.1:$port" "$REDIS_URL"
    twin=twin
fi
# The twin again (the floor itself when counting), sent the api-node's
# request (its path and bearer token): what the bigger request alone costs.
NAMES+=(twin_auth)
URL[twin_auth]=${URL[$twin]} PID[twin_auth]=${PID[$twin]}
if [[ -n ${VARIANT_PAD:-} ]]; then
    grind padded
    port="$(free_port)" && serve padded "$port" "${grind[@]}" "$FLOOR" "127.0.0.1:$port" "$REDIS_URL" "$VARIANT_PAD"
fi
first=""
for spec in "$@"; do
    name=${spec%%=*} rest=${spec#*=}
    bin=${rest%%:*} envs=()
    [[ $rest != *:* ]] || IFS=, read -ra envs <<<"${rest#*:}"
    [[ -n $first ]] || { first=$name; "$bin" migrate; }
    port="$(free_port)" perf=()
    [[ ${VARIANT_PERF:-} != "$name" ]] || perf=(perf record ${VARIANT_PERF_ARGS:--F 999 -g} -o "$OUT/$name.perf" --)
    grind "$name"
    serve "$name" "$port" env LISTEN_ADDR="127.0.0.1:$port" "${envs[@]}" "${grind[@]}" "${perf[@]}" "$bin"
done
for name in "${NAMES[@]}"; do
    [[ $name != twin_auth ]] || continue
    for ((i = 0; i < 1200; i++)); do # valgrind starts slowly
        curl -fsS -o /dev/null "${URL[$name]}/" 2>/dev/null && break
        curl -fsS -o /dev/null "${URL[$name]}/readyz" 2>/dev/null && break
        sleep 0.1
    done
done

API="${URL[$first]}"
curl -fsS -o /dev/null -X POST "$API/api/auth/register" -H 'content-type: application/json' \
    -d '{"email":"variants@example.com","password":"bench-password-1","name":"Variants"}'
TOKEN="$(curl -fsS -X POST "$API/api/auth/login" -H 'content-type: application/json' \
    -d '{"email":"variants@example.com","password":"bench-password-1"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
TASK="$(curl -fsS -X POST "$API/api/tasks" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d '{"title":"the cached task","description":"read over and over","priority":5}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
for name in "${NAMES[@]}"; do
    [[ $name == floor || $name == twin* || $name == padded ]] && continue
    curl -fsS -o /dev/null -H "authorization: Bearer $TOKEN" "${URL[$name]}/api/tasks/$TASK"
done

target_of() { # NAME — the URL wrk reads and its headers, into target and auth
    if [[ $1 == twin_auth || $1 == padded ]]; then
        target="${URL[$1]}/api/tasks/$TASK" auth=(-H "Authorization: Bearer $TOKEN")
    elif [[ $1 == floor || $1 == twin ]]; then
        target="${URL[$1]}/" auth=()
    else
        target="${URL[$1]}/api/tasks/$TASK" auth=(-H "Authorization: Bearer $TOKEN")
    fi
}
# Fewer connections under valgrind: a request still in flight when wrk
# stops is counted by callgrind but not by wrk, so at most 16 stray.
CONNS=64
if [[ -n $INSTRUCTIONS ]]; then
    CONNS=16
    for name in "${NAMES[@]}"; do
        target_of "$name"
        wrk -t1 -c$CONNS -d2s "${auth[@]}" "$target" >/dev/null
        callgrind_control -i on "${PID[$name]}" >/dev/null
    done
    # A process serving two names was counting during the second's warm-up.
    for name in "${NAMES[@]}"; do callgrind_control -z "${PID[$name]}" >/dev/null; done
fi

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
sys_ticks() { awk '{ print $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
REDIS_PID="$(redis-cli -p "$REDISPORT" info server | awk -F: '/^process_id:/ { print $2 + 0 }')"
for ((round = 1; round <= ROUNDS; round++)); do
    n=${#NAMES[@]}
    for ((k = 0; k < n; k++)); do
        name=${NAMES[(k + round) % n]}
        target_of "$name"
        log "round $round: $name"
        before=$(cpu_ticks "${PID[$name]}") sys_before=$(sys_ticks "${PID[$name]}")
        redis_before=$(cpu_ticks "$REDIS_PID")
        sys_perf=()
        [[ -z ${VARIANT_PERF_ALL:-} ]] || sys_perf=(perf record -a -F 1999 -o "$OUT/${name}_r$round.perf" --)
        [[ -z ${VARIANT_SYSCALLS:-} ]] ||
            perf stat -e 'syscalls:sys_enter_*' -p "${PID[$name]}" -o "$OUT/${name}_r$round.syscalls" -- sleep "$SECS" &
        "${sys_perf[@]}" wrk -t1 -c$CONNS -d"${SECS}s" --latency "${auth[@]}" "$target" >"$OUT/${name}_r$round.txt" 2>&1
        if [[ -n ${VARIANT_REDIS_STATS:-} ]]; then
            redis-cli -p "$REDISPORT" info commandstats >"$OUT/${name}_r$round.redis"
            redis-cli -p "$REDISPORT" info stats >>"$OUT/${name}_r$round.redis"
            redis-cli -p "$REDISPORT" config resetstat >/dev/null
        fi
        echo "server_cpu_ticks: $(($(cpu_ticks "${PID[$name]}") - before))" >>"$OUT/${name}_r$round.txt"
        echo "server_sys_ticks: $(($(sys_ticks "${PID[$name]}") - sys_before))" >>"$OUT/${name}_r$round.txt"
        echo "redis_cpu_ticks: $(($(cpu_ticks "$REDIS_PID") - redis_before))" >>"$OUT/${name}_r$round.txt"
        if [[ -n $INSTRUCTIONS ]]; then # a dump also zeroes the counts
            callgrind_control -d "${PID[$name]}" >/dev/null
            dump="$(ls -t "$OUT/${name/twin_auth/$twin}.callgrind".* | head -1)"
            mv "$dump" "$OUT/${name}_r$round.callgrind"
            awk '/^summary:/ { print "instructions: " $2 }' "$OUT/${name}_r$round.callgrind" >>"$OUT/${name}_r$round.txt"
        fi
    done
done

python3 - "$OUT" "$ROUNDS" "$HZ" "${NAMES[@]}" <<'EOF' | tee "$OUT/summary.txt"
import re, statistics, sys
out, rounds, hz, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}
def read(name, r):
    text = open(f"{out}/{name}_r{r}.txt").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    v, u = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)", text, re.M).groups()
    done = int(re.search(r"(\d+) requests in", text).group(1))
    ticks = int(re.search(r"server_cpu_ticks: (\d+)", text).group(1))
    redis = int(re.search(r"redis_cpu_ticks: (\d+)", text).group(1))
    sys_ = int(re.search(r"server_sys_ticks: (\d+)", text).group(1))
    per = lambda t: t / hz / done * 1e6
    return rps, float(v) * UNIT[u], per(ticks), per(redis), per(sys_)
def instructions(name, r):
    text = open(f"{out}/{name}_r{r}.txt").read()
    done = int(re.search(r"(\d+) requests in", text).group(1))
    return int(re.search(r"instructions: (\d+)", text).group(1)) / done
if re.search(r"instructions:", open(f"{out}/{names[0]}_r1.txt").read()):
    ir = {n: [instructions(n, r) for r in range(1, rounds + 1)] for n in names}
    floor = statistics.median(ir["floor"])
    print(f"{'server':<14}{'Ir/req':>9}{'- floor':>9}{'/floor':>8}   Ir/req by round")
    for n in names:
        m = statistics.median(ir[n])
        print(f"{n:<14}{m:>9.0f}{m - floor:>9.0f}{m / floor:>8.2f}   " + " ".join(f"{x:.0f}" for x in ir[n]))
    sys.exit(0)
data = {n: [read(n, r) for r in range(1, rounds + 1)] for n in names}
print(f"{'server':<14}{'req/s':>9}{'p99 ms':>8}{'cpu µs':>8}{'sys µs':>8}{'redis µs':>9}{'rps/floor':>11}{'p99/floor':>11}   p99/floor by round")
for n in names:
    rps = statistics.median(x[0] for x in data[n])
    p99 = statistics.median(x[1] for x in data[n])
    cpu = statistics.median(x[2] for x in data[n])
    redis = statistics.median(x[3] for x in data[n])
    sys_ = statistics.median(x[4] for x in data[n])
    rr = [a[0] / f[0] for a, f in zip(data[n], data["floor"])]
    pr = [a[1] / f[1] for a, f in zip(data[n], data["floor"])]
    print(f"{n:<14}{rps:>9.0f}{p99:>8.2f}{cpu:>8.1f}{sys_:>8.1f}{redis:>9.1f}{statistics.median(rr):>11.2f}{statistics.median(pr):>11.2f}   "
          + " ".join(f"{p:.2f}" for p in pr))
EOF
