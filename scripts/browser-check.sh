#!/usr/bin/env bash
#
# scripts/browser-check.sh — the browser side, end to end. First the client
# library alone: its unit tests (node --test, clients/js/test/unit) and its
# TypeScript declarations checked against an app's use of it
# (clients/js/test/types). Then, against the local cluster (scripts/up.sh on
# its own ports and state directory: 2 api-nodes, 2 ws-nodes, nginx serving
# the board at /): the library in Node (clients/js/test/integration) and the
# live board in a real headless Chromium driven by Playwright
# (clients/js/test/browser/board.test.js).
#
# Installs what it needs when missing: node and npm, Debian's chromium, and
# playwright-core and typescript from clients/js/test/browser/package-lock.json
# (npm ci; Playwright never downloads a browser: it drives /usr/bin/chromium).
# Screenshots of the board are kept in .local/browser-artifacts/; on failure
# the cluster's logs go to .local/browser-check-failed/.
#
#   BUILD_PROFILE=debug (default)   which build the nodes come from
#   BROWSER_NO_BUILD=1              use the binaries as they are (no cargo build)
#   BROWSER_TIMEOUT=300             seconds for the browser tests, all of them
#   CHROMIUM=/usr/bin/chromium
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=scripts/services.sh
source "$REPO/scripts/services.sh"

export BUILD_PROFILE="${BUILD_PROFILE:-debug}"
export CLUSTER_DIR="$REPO/.local/browser-$$"
export PROMETHEUS=0 API_NODES=2 WS_NODES=2
TESTS="$REPO/clients/js/test/browser"
ARTIFACTS="$REPO/.local/browser-artifacts"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

log() { printf '[browser-check] %s\n' "$*" >&2; }
die() { printf '[browser-check] FAILED: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/local-cluster.sh
source "$REPO/scripts/local-cluster.sh"

as_root() { if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo -n "$@"; fi; }
apt_install() {
    log "installing $* (apt)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null ||
        { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }
}

# --- what it needs ------------------------------------------------------------

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
# The library itself needs 18; playwright-core needs 20.
((node_major >= 20)) || die "node $(node --version) is too old: the browser tests need Node >= 20 (playwright-core)"
[[ -x "$CHROMIUM" ]] || apt_install chromium
[[ -x "$CHROMIUM" ]] || die "no Chromium at $CHROMIUM"
# npm ci only when the installed tree is not the lockfile's.
if ! cmp -s "$TESTS/package-lock.json" "$TESTS/node_modules/.package-lock.json.ci" 2>/dev/null; then
    log "npm ci (playwright-core, typescript: $TESTS/package-lock.json)"
    (cd "$TESTS" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    cp "$TESTS/package-lock.json" "$TESTS/node_modules/.package-lock.json.ci"
fi

# --- the client library's unit tests ------------------------------------------

log "client library unit tests (node --test)"
(cd clients/js && node --test test/unit/*.test.js) || die "the client library's unit tests"
log "client library declarations (tsc --noEmit --strict test/types/usage.ts)"
(cd clients/js && "$TESTS/node_modules/.bin/tsc" --noEmit --strict --target es2022 --module esnext \
    --moduleResolution bundler test/types/usage.ts) || die "index.d.ts does not type-check an app's use of the library"

# --- the cluster --------------------------------------------------------------

# Ports of its own, free now: another check (this one in another clone, the
# cluster check) may be running on this machine. A block of seven: nginx,
# PG, Redis, two api-nodes, two ws-nodes; between the cluster check's fixed
# ports and the kernel's ephemeral range (32768 up).
pick_ports() {
    local try base p
    for ((try = 0; try < 50; try++)); do
        base=$((27000 + (RANDOM % 576) * 10))
        for p in 0 1 2 3 4 5 6; do port_in_use $((base + p)) && continue 2; done
        export PUBLIC_PORT=$base PG_PORT=$((base + 1)) REDIS_PORT=$((base + 2))
        export API_BASE_PORT=$((base + 3)) WS_BASE_PORT=$((base + 5))
        return 0
    done
    return 1
}
pick_ports || die "no block of free ports found"
PUBLIC="http://127.0.0.1:$PUBLIC_PORT"
if [[ "${BROWSER_NO_BUILD:-}" == 1 && -x "target/$BUILD_PROFILE/api-node" && -x "target/$BUILD_PROFILE/ws-node" ]]; then
    log "using the $BUILD_PROFILE binaries as they are"
else
    profile_flag=()
    [[ $BUILD_PROFILE == release ]] && profile_flag=(--release)
    # The same packages as cluster-check.sh builds: the same features, so
    # after it this build has nothing to do.
    log "building api-node and ws-node ($BUILD_PROFILE)"
    cargo build "${profile_flag[@]}" --locked -p api-node -p ws-node -p loadgen
fi

mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS"/*.png
started=$SECONDS
start_local_cluster browser-check
# The URL up.sh prints is where the tests (and a person) open the board.
grep -qF "Live board: $PUBLIC/ " "$CLUSTER_DIR/up.log" || die "scripts/up.sh does not print the board's URL ($PUBLIC/)"
board_html=$(curl -fsS "$PUBLIC/") && [[ $board_html == *'<title>Tasks'* ]] || die "nginx does not serve the board at $PUBLIC/"
log "cluster up behind $PUBLIC in $((SECONDS - started)) s; the library in Node, then the board in Chromium"

# --- the library in Node, against the cluster -------------------------------

# Node 22 has a global WebSocket; Node 20 has it behind a flag.
node_flags=()
if [[ $(node -p 'typeof WebSocket') != function ]] && node --experimental-websocket -e '' 2>/dev/null; then
    node_flags=(--experimental-websocket)
fi
BOARD_URL="$PUBLIC/" timeout --kill-after=10 60 \
    node "${node_flags[@]}" --test "$REPO/clients/js/test/integration/node.test.js" || die "the client library in Node against the cluster"

# --- the browser tests --------------------------------------------------------

BOARD_URL="$PUBLIC/" RUN_DIR="$CLUSTER_DIR/run" CLUSTER_ENV="$CLUSTER_DIR/env" \
    ARTIFACTS="$ARTIFACTS" CHROMIUM="$CHROMIUM" REPO="$REPO" \
    timeout --kill-after=10 "${BROWSER_TIMEOUT:-300}" \
    node --test "$TESTS/board.test.js" || die "the browser tests (screenshots in .local/browser-artifacts/)"
log "passed in $((SECONDS - started)) s; screenshots in .local/browser-artifacts/"
