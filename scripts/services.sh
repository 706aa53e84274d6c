# shellcheck shell=bash disable=SC2034
#
# scripts/services.sh — helpers to run throwaway, private PostgreSQL and Redis
# instances for tests and local development. Source it from bash:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/services.sh"
#     trap stop_services EXIT
#     ensure_packages
#     start_postgres "$REPO/.local/x/pg" "$(free_port)"
#     start_redis    "$REPO/.local/x/redis" "$(free_port)"
#     start_redis_cluster "$REPO/.local/x/redis-cluster"   # 3 masters + 3 replicas
#
# It never touches system services: instances listen on 127.0.0.1 only, keep
# all state in the directories given to them, and stop_services stops exactly
# what this shell started. Every function returns non-zero on failure (with a
# message on stderr) and works with or without `set -euo pipefail`.
#
# Variables set for callers:
#   REPO            repository root (all state lives under $REPO/.local/)
#   PG_BIN_DIR      PostgreSQL server binaries (set by ensure_packages / start_postgres)
#   SVC_PG_DIR      effective PostgreSQL state dir (DIR, or a /tmp fallback)
#   SVC_PG_PORT     port of the running PostgreSQL
#   SVC_REDIS_DIR   Redis state dir
#   SVC_REDIS_PORT  port of the running Redis
#   SVC_REDIS_CLUSTER_DIR    Redis Cluster state dir (start_redis_cluster)
#   SVC_REDIS_CLUSTER_PORTS  the cluster's 6 node ports, space separated
#   SVC_REDIS_CLUSTER_URL    redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
#                            (the 3 masters, in the form the nodes' REDIS_URL takes)
# Tunables: PG_FAST=1 (fsync off etc., tests only), SVC_START_TIMEOUT (s, default 30),
# REDIS_MAXMEMORY (default 256mb; least recently used keys are evicted past it).

if [[ -z "${REPO:-}" ]]; then
    REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fi

# A fresh machine may have rustup's cargo only in ~/.cargo/bin, which a
# non-login shell does not put on PATH; every script that builds sources
# this file first.
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

PG_BIN_DIR="${PG_BIN_DIR:-}"
SVC_PG_DIR=""
SVC_PG_DATA=""
SVC_PG_PORT=""
SVC_REDIS_DIR=""
SVC_REDIS_PORT=""
SVC_REDIS_PIDFILE=""
SVC_REDIS_CLUSTER_DIR=""
SVC_REDIS_CLUSTER_PORTS=""
SVC_REDIS_CLUSTER_URL=""
SVC_REDIS_CLUSTER_PIDFILES=()

svc_log() { printf '[services] %s\n' "$*" >&2; }
svc_err() { printf '[services] ERROR: %s\n' "$*" >&2; }

_svc_is_root() { [[ "$(id -u)" == 0 ]]; }

# Print the last lines of a log file to stderr (if it exists).
_svc_log_tail() {
    local file=$1 lines=${2:-40}
    if [[ -r "$file" ]]; then
        printf -- '----- last %s lines of %s -----\n' "$lines" "$file" >&2
        tail -n "$lines" -- "$file" >&2 || true
        printf -- '----- end of %s -----\n' "$file" >&2
    else
        svc_err "no log file at $file"
    fi
}

# Find the PostgreSQL server binary directory (highest installed version).
pg_find_bin_dir() {
    local d best="" v bestv=""
    if [[ -n "${PG_BIN_DIR:-}" && -x "$PG_BIN_DIR/initdb" && -x "$PG_BIN_DIR/pg_ctl" ]]; then
        printf '%s\n' "$PG_BIN_DIR"
        return 0
    fi
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]] || continue
        v=${d#/usr/lib/postgresql/}
        v=${v%/bin}
        if [[ -z "$bestv" ]] || [[ "$(printf '%s\n%s\n' "$bestv" "$v" | sort -V | tail -n1)" == "$v" ]]; then
            best=$d
            bestv=$v
        fi
    done
    if [[ -z "$best" ]] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        best="$(dirname "$(command -v initdb)")"
    fi
    [[ -n "$best" ]] || return 1
    printf '%s\n' "$best"
}

# Install postgresql / redis-server (and any extra commands given as arguments,
# e.g. `ensure_packages curl`, the package being named like the command) if
# missing. apt-get update runs only when something must be installed.
ensure_packages() {
    local pkgs=() cmd sudo=()
    if ! pg_find_bin_dir >/dev/null; then
        pkgs+=(postgresql)
    elif ! command -v psql >/dev/null 2>&1 && [[ ! -x "$(pg_find_bin_dir)/psql" ]]; then
        pkgs+=(postgresql-client)
    fi
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        pkgs+=(redis-server)
    fi
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 || pkgs+=("$cmd")
    done

    if ((${#pkgs[@]} > 0)); then
        svc_log "installing missing packages: ${pkgs[*]}"
        if ! command -v apt-get >/dev/null 2>&1; then
            svc_err "apt-get not found; please install: ${pkgs[*]}"
            return 1
        fi
        if ! _svc_is_root; then
            if ! command -v sudo >/dev/null 2>&1; then
                svc_err "not root and sudo is missing; please install: ${pkgs[*]}"
                return 1
            fi
            sudo=(sudo)
        fi
        ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update -q || {
            svc_err "apt-get update failed"
            return 1
        }
        ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${pkgs[@]}" </dev/null || {
            svc_err "apt-get install ${pkgs[*]} failed"
            return 1
        }
    fi

    PG_BIN_DIR="$(pg_find_bin_dir)" || {
        svc_err "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and PATH)"
        return 1
    }
    export PG_BIN_DIR
    local c
    for c in redis-server redis-cli; do
        command -v "$c" >/dev/null 2>&1 || {
            svc_err "$c not found after installation"
            return 1
        }
    done
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || {
            svc_err "$c not found after installation"
            return 1
        }
    done
}

# Print a free TCP port on 127.0.0.1.
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 - <<'EOF' && return 0
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
    fi
    local i p
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 30000))
        if ! port_in_use "$p"; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    svc_err "could not find a free port"
    return 1
}

# True if process PID exists and has not exited. `kill -0` alone also
# succeeds for a zombie (exited, not yet reaped by its parent), which would
# make a stop loop wait out its whole grace period for a process long gone.
pid_running() {
    local pid=$1 stat
    kill -0 "$pid" 2>/dev/null || return 1
    # Field 3 of /proc/PID/stat is the state; the name before it (field 2,
    # in parentheses) may itself contain spaces or parentheses.
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 0
    stat=${stat##*) }
    [[ "${stat%% *}" != Z ]]
}

# True if something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Run a command as the user owning the PostgreSQL cluster: `postgres` when we
# are root (initdb refuses to run as root), the current user otherwise.
# Runs from / so that an unreadable current directory does not matter.
_svc_as_pg() {
    if ! _svc_is_root; then
        "$@"
        return
    fi
    local home
    home="$(getent passwd postgres | cut -d: -f6)"
    if command -v setpriv >/dev/null 2>&1; then
        (cd / && HOME="${home:-/}" setpriv --reuid=postgres --regid=postgres --init-groups -- "$@")
    elif command -v runuser >/dev/null 2>&1; then
        (cd / && runuser -u postgres -- "$@")
    else
        local q
        q="$(printf '%q ' "$@")"
        (cd / && su postgres -s /bin/bash -c "$q")
    fi
}

# Can the cluster owner create files in DIR (is every parent traversable)?
_svc_pg_can_use_dir() {
    # shellcheck disable=SC2016 # $1 expands in the inner shell
    _svc_as_pg /bin/sh -c 'test -d "$1" && test -w "$1" && test -x "$1"' sh "$1" 2>/dev/null
}

# Quote a value for postgresql.conf.
_svc_pg_quote() { printf "'%s'" "${1//\'/\'\'}"; }

# Stop a postmaster running on DATA (e.g. left over by a killed run).
_svc_pg_stop_data() {
    local data=$1 bin=${PG_BIN_DIR:-}
    [[ -n "$bin" && -f "$data/postmaster.pid" ]] || return 0
    if _svc_as_pg "$bin/pg_ctl" status -D "$data" >/dev/null 2>&1; then
        local pid i
        pid="$(head -n1 "$data/postmaster.pid" 2>/dev/null || true)"
        [[ "$pid" =~ ^[0-9]+$ ]] || pid=""
        svc_log "stopping PostgreSQL on $data"
        if ! _svc_as_pg "$bin/pg_ctl" stop -D "$data" -m fast -w -t 30 >/dev/null 2>&1 && [[ -n "$pid" ]]; then
            svc_err "pg_ctl stop failed; sending SIGQUIT to postmaster $pid"
            kill -QUIT "$pid" 2>/dev/null || true
            sleep 1
            kill -KILL "$pid" 2>/dev/null || true
        fi
        # pg_ctl returns once postmaster.pid is gone; wait for the process too.
        for ((i = 0; i < 50 && ${#pid} > 0; i++)); do
            pid_running "$pid" || break
            sleep 0.1
        done
    fi
    return 0
}

# start_postgres DIR PORT
# initdb into DIR/pgdata (if absent) and start PostgreSQL on 127.0.0.1:PORT,
# socket in DIR, log in DIR/postgres.log. If the cluster owner (postgres when
# root) cannot use DIR, the cluster lives in a /tmp directory instead (its path
# is remembered in DIR/pg-fallback-dir, so it is reused by later runs).
start_postgres() {
    local dir=${1:?start_postgres DIR PORT} port=${2:?start_postgres DIR PORT}
    local timeout=${SVC_START_TIMEOUT:-30} bin eff data log sock i

    if [[ -n "$SVC_PG_DATA" ]]; then
        svc_err "start_postgres: this shell already runs PostgreSQL on $SVC_PG_DATA"
        return 1
    fi
    bin="$(pg_find_bin_dir)" || {
        svc_err "PostgreSQL server binaries not found; run ensure_packages"
        return 1
    }
    PG_BIN_DIR=$bin
    export PG_BIN_DIR
    if _svc_is_root && ! getent passwd postgres >/dev/null; then
        svc_err "running as root but there is no 'postgres' system user to run PostgreSQL as"
        return 1
    fi

    mkdir -p -- "$dir" || { svc_err "cannot create $dir"; return 1; }
    dir="$(cd -- "$dir" && pwd)" || return 1
    eff=$dir
    if _svc_is_root; then
        chown postgres: -- "$dir" || return 1
        chmod 700 -- "$dir" || return 1
        if ! _svc_pg_can_use_dir "$dir"; then
            eff=""
            if [[ -f "$dir/pg-fallback-dir" ]]; then
                eff="$(cat -- "$dir/pg-fallback-dir")"
                if [[ "$eff" != /tmp/* || ! -d "$eff" || "$(stat -c %U -- "$eff")" != postgres ]]; then
                    eff=""
                fi
            fi
            if [[ -z "$eff" ]]; then
                eff="$(mktemp -d /tmp/pg-local.XXXXXXXX)" || return 1
                chown postgres: -- "$eff" || return 1
                chmod 700 -- "$eff" || return 1
                printf '%s\n' "$eff" >"$dir/pg-fallback-dir"
            fi
            svc_log "user postgres cannot access $dir; using $eff for the cluster"
        fi
    fi
    data=$eff/pgdata
    log=$eff/postgres.log
    sock=$eff
    SVC_PG_DIR=$eff

    # An existing cluster needs the server version that created it.
    if [[ -f "$data/PG_VERSION" ]]; then
        local ver
        ver="$(cat -- "$data/PG_VERSION")"
        if [[ -x "/usr/lib/postgresql/$ver/bin/postgres" && "$bin" != "/usr/lib/postgresql/$ver/bin" ]]; then
            bin="/usr/lib/postgresql/$ver/bin"
            PG_BIN_DIR=$bin
            svc_log "existing cluster in $data is version $ver; using $bin"
        fi
    fi

    # A postmaster left over by a killed run on the same data dir: stop it.
    _svc_pg_stop_data "$data"

    if port_in_use "$port"; then
        svc_err "port $port on 127.0.0.1 is already in use (pick another one)"
        return 1
    fi

    if [[ ! -f "$data/PG_VERSION" ]]; then
        local initdb_args=(-D "$data" -U postgres -A trust -E UTF8 --locale=C)
        [[ "${PG_FAST:-}" == 1 ]] && initdb_args+=(--no-sync)
        rm -rf -- "$data"
        if ! _svc_as_pg "$bin/initdb" "${initdb_args[@]}" >"$eff/initdb.log" 2>&1; then
            svc_err "initdb failed"
            _svc_log_tail "$eff/initdb.log"
            return 1
        fi
        printf "\ninclude_if_exists = 'postgresql.local.conf'\n" >>"$data/postgresql.conf"
    fi

    # Unix socket paths are limited to ~107 bytes; disable the socket if too long.
    if ((${#sock} + 20 > 100)); then
        sock=""
    fi
    {
        echo "# written by scripts/services.sh on every start"
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $port"
        echo "unix_socket_directories = $(_svc_pg_quote "$sock")"
        echo "max_connections = 300"
        echo "logging_collector = off"
        if [[ "${PG_FAST:-}" == 1 ]]; then
            echo "fsync = off"
            echo "synchronous_commit = off"
            echo "full_page_writes = off"
        fi
    } >"$data/postgresql.local.conf"
    _svc_is_root && chown postgres: -- "$data/postgresql.local.conf" "$data/postgresql.conf"

    svc_log "starting PostgreSQL ($bin) on 127.0.0.1:$port, data $data"
    SVC_PG_DATA=$data
    SVC_PG_PORT=$port
    if [[ "$eff" != "$dir" ]]; then
        ln -sfn -- "$log" "$dir/postgres.log"
    fi
    if ! _svc_as_pg "$bin/pg_ctl" start -D "$data" -l "$log" -w -t "$timeout" >/dev/null 2>&1; then
        svc_err "PostgreSQL failed to start on 127.0.0.1:$port"
        _svc_log_tail "$log"
        _svc_pg_stop_data "$data"
        SVC_PG_DATA=""
        return 1
    fi
    for ((i = 0; i < timeout * 5; i++)); do
        if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres >/dev/null 2>&1; then
            svc_log "PostgreSQL is ready on 127.0.0.1:$port"
            return 0
        fi
        sleep 0.2
    done
    svc_err "PostgreSQL did not become ready on 127.0.0.1:$port within ${timeout}s"
    _svc_log_tail "$log"
    _svc_pg_stop_data "$data"
    SVC_PG_DATA=""
    return 1
}

_svc_redis_pid() {
    local pidfile=$1 pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(head -n1 -- "$pidfile" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    pid_running "$pid" || return 1
    # Guard against pid reuse: it must be a redis-server.
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null || echo redis-server)" == redis-server* ]] || return 1
    printf '%s\n' "$pid"
}

_svc_redis_stop_pidfile() {
    local pidfile=$1 pid i
    pid="$(_svc_redis_pid "$pidfile")" || { rm -f -- "$pidfile"; return 0; }
    svc_log "stopping Redis (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        pid_running "$pid" || break
        sleep 0.1
    done
    if pid_running "$pid"; then
        svc_err "Redis (pid $pid) did not stop; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f -- "$pidfile"
    return 0
}

# start_redis DIR PORT — daemonized redis-server on 127.0.0.1:PORT without
# persistence; pidfile, log (and working dir) in DIR.
start_redis() {
    local dir=${1:?start_redis DIR PORT} port=${2:?start_redis DIR PORT}
    local timeout=${SVC_START_TIMEOUT:-30} pidfile log i

    if [[ -n "$SVC_REDIS_PIDFILE" ]]; then
        svc_err "start_redis: this shell already runs Redis ($SVC_REDIS_PIDFILE)"
        return 1
    fi
    command -v redis-server >/dev/null 2>&1 || { svc_err "redis-server not found; run ensure_packages"; return 1; }
    mkdir -p -- "$dir" || { svc_err "cannot create $dir"; return 1; }
    dir="$(cd -- "$dir" && pwd)" || return 1
    pidfile=$dir/redis.pid
    log=$dir/redis.log

    # A redis left over by a killed run in the same dir: stop it.
    _svc_redis_stop_pidfile "$pidfile"

    if port_in_use "$port"; then
        svc_err "port $port on 127.0.0.1 is already in use (pick another one)"
        return 1
    fi

    svc_log "starting Redis on 127.0.0.1:$port, dir $dir"
    SVC_REDIS_DIR=$dir
    SVC_REDIS_PORT=$port
    SVC_REDIS_PIDFILE=$pidfile
    # Bounded like the deployments' (deploy/docker/compose.yml): evicting
    # any key is safe, see api-node/src/cache.rs.
    if ! (cd -- "$dir" && redis-server --bind 127.0.0.1 --port "$port" \
        --save '' --appendonly no --daemonize yes \
        --maxmemory "${REDIS_MAXMEMORY:-256mb}" --maxmemory-policy allkeys-lru \
        --pidfile "$pidfile" --logfile "$log" --dir "$dir" </dev/null); then
        svc_err "redis-server failed to start"
        _svc_log_tail "$log"
        SVC_REDIS_PIDFILE=""
        return 1
    fi
    for ((i = 0; i < timeout * 5; i++)); do
        if [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]]; then
            svc_log "Redis is ready on 127.0.0.1:$port"
            return 0
        fi
        # Fail fast if the daemon wrote its pidfile and died.
        if ((i > 5)) && [[ -f "$pidfile" ]] && ! _svc_redis_pid "$pidfile" >/dev/null; then
            break
        fi
        sleep 0.2
    done
    svc_err "Redis did not answer PING on 127.0.0.1:$port within ${timeout}s (or exited)"
    _svc_log_tail "$log"
    _svc_redis_stop_pidfile "$pidfile"
    SVC_REDIS_PIDFILE=""
    return 1
}

# SIGTERM every Redis of these pidfiles at once, then wait for each (the usual
# grace, then SIGKILL), so that stopping N nodes takes the time of one.
_svc_redis_stop_pidfiles() {
    local f pid
    for f in "$@"; do
        if pid="$(_svc_redis_pid "$f")"; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for f in "$@"; do
        _svc_redis_stop_pidfile "$f"
    done
    return 0
}

# start_redis_cluster DIR — a throwaway Redis Cluster of 3 primaries and 3
# replicas on free 127.0.0.1 ports, node timeout 2 s, no persistence,
# bounded like start_redis. `xtask redis-cluster` (xtask/src/
# redis_cluster.rs; built without the nodes' crates) starts the nodes as daemons, forms the cluster and
# returns once it is ready (within SVC_START_TIMEOUT per stage); node N keeps
# its pidfile (redis.pid), log and cluster config in DIR/nodeN. This shell
# owns the processes: stop_services (or stop_redis_cluster) stops them by
# their pidfiles. Sets SVC_REDIS_CLUSTER_DIR, SVC_REDIS_CLUSTER_PORTS and
# SVC_REDIS_CLUSTER_URL (the primaries). Any cluster left in DIR by a killed
# run is stopped and replaced: the cluster is new on every start.
start_redis_cluster() {
    local dir=${1:?start_redis_cluster DIR} out n
    if ((${#SVC_REDIS_CLUSTER_PIDFILES[@]} > 0)); then
        svc_err "start_redis_cluster: this shell already runs a Redis Cluster ($SVC_REDIS_CLUSTER_DIR)"
        return 1
    fi
    command -v redis-server >/dev/null 2>&1 || { svc_err "redis-server not found; run ensure_packages"; return 1; }
    command -v redis-cli >/dev/null 2>&1 || { svc_err "redis-cli not found; run ensure_packages"; return 1; }
    mkdir -p -- "$dir" || { svc_err "cannot create $dir"; return 1; }
    dir="$(cd -- "$dir" && pwd)" || return 1
    stop_redis_cluster "$dir"
    SVC_REDIS_CLUSTER_DIR=$dir
    for ((n = 1; n <= 6; n++)); do
        SVC_REDIS_CLUSTER_PIDFILES+=("$dir/node$n/redis.pid")
    done
    svc_log "starting a Redis Cluster (3 primaries, 3 replicas) in $dir"
    if ! out="$(cd -- "$REPO" && cargo run -q --locked -p xtask --no-default-features -- redis-cluster "$dir")"; then
        svc_err "the Redis Cluster in $dir did not come up: $out"
        _svc_redis_cluster_abort
        return 1
    fi
    { read -r SVC_REDIS_CLUSTER_URL && read -r SVC_REDIS_CLUSTER_PORTS; } <<<"$out"
    svc_log "Redis Cluster is ready: $SVC_REDIS_CLUSTER_URL (all nodes: $SVC_REDIS_CLUSTER_PORTS)"
    return 0
}

# After a failed start: stop the nodes, forget the cluster.
_svc_redis_cluster_abort() {
    stop_redis_cluster
    SVC_REDIS_CLUSTER_PORTS=""
    SVC_REDIS_CLUSTER_URL=""
}

# stop_redis_cluster [DIR] — stop the nodes of the cluster this shell started
# (idempotent; stop_services calls it), or, given DIR, every node whose
# pidfile is in DIR/node*/ (one left by a killed run). A node that has exited
# but not been reaped yet counts as stopped.
stop_redis_cluster() {
    local f files=() running=0 where=${1:-$SVC_REDIS_CLUSTER_DIR}
    if (($# > 0)); then
        for f in "$1"/node*/redis.pid; do
            [[ -e $f ]] && files+=("$f")
        done
    else
        files=(${SVC_REDIS_CLUSTER_PIDFILES[@]+"${SVC_REDIS_CLUSTER_PIDFILES[@]}"})
        SVC_REDIS_CLUSTER_PIDFILES=()
    fi
    ((${#files[@]} > 0)) || return 0
    for f in "${files[@]}"; do
        _svc_redis_pid "$f" >/dev/null && running=$((running + 1))
    done
    ((running == 0)) || svc_log "stopping the Redis Cluster in $where ($running nodes)"
    _svc_redis_stop_pidfiles "${files[@]}"
}

# Stop whatever this shell started. Idempotent; meant for `trap stop_services EXIT`.
stop_services() {
    stop_redis_cluster
    if [[ -n "${SVC_REDIS_PIDFILE:-}" ]]; then
        _svc_redis_stop_pidfile "$SVC_REDIS_PIDFILE"
        SVC_REDIS_PIDFILE=""
    fi
    if [[ -n "${SVC_PG_DATA:-}" ]]; then
        _svc_pg_stop_data "$SVC_PG_DATA"
        SVC_PG_DATA=""
    fi
    return 0
}

# At the script's exit (normal, error, Ctrl-C or SIGTERM): SIGTERM every
# pid in the caller's PIDS array and wait for them, stop the services, and
# wipe STATE_DIR. For the benchmarks' throwaway runs.
stop_all_at_exit() {
    _SVC_EXIT_STATE=${1:?stop_all_at_exit STATE_DIR}
    trap _svc_stop_all EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# shellcheck disable=SC2317 # invoked via trap
_svc_stop_all() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    stop_services
    wipe_state_dir "$_SVC_EXIT_STATE"
    exit "$rc"
}

# Remove a state directory made for start_postgres/start_redis(_cluster), including the
# /tmp fallback of its PostgreSQL cluster. Stops anything still running there.
# Only for throwaway state (tests).
wipe_state_dir() {
    local dir=$1 f fb
    [[ -n "$dir" && -d "$dir" ]] || return 0
    while IFS= read -r -d '' f; do
        fb="$(cat -- "$f" 2>/dev/null || true)"
        if [[ "$fb" == /tmp/?* && -d "$fb" ]]; then
            _svc_pg_stop_data "$fb/pgdata"
            rm -rf -- "$fb"
        fi
    done < <(find "$dir" -name pg-fallback-dir -type f -print0 2>/dev/null)
    while IFS= read -r -d '' f; do
        _svc_pg_stop_data "$(dirname -- "$f")"
    done < <(find "$dir" -name postmaster.pid -type f -print0 2>/dev/null)
    while IFS= read -r -d '' f; do
        _svc_redis_stop_pidfile "$f"
    done < <(find "$dir" -name redis.pid -type f -print0 2>/dev/null)
    rm -rf -- "$dir"
}
