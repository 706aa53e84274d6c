# shellcheck shell=bash
# scripts/local-cluster.sh — sourced by the checks that need the whole
# local topology (cluster-check.sh, browser-check.sh): scripts/up.sh in the
# background under CLUSTER_DIR, waited for, and stopped when the check
# exits; if the check failed, the cluster's logs are kept in
# .local/NAME-failed/. Needs REPO, CLUSTER_DIR, PUBLIC (nginx's base URL)
# and a `log` function from the caller.

# start_local_cluster NAME — returns once nginx answers and up.sh has
# printed how to stop it; exits the caller if the cluster does not come up.
start_local_cluster() {
    LOCAL_CLUSTER_NAME=$1
    mkdir -p "$CLUSTER_DIR"
    UP_NO_BUILD=1 bash "$REPO/scripts/up.sh" >"$CLUSTER_DIR/up.log" 2>&1 &
    LOCAL_CLUSTER_PID=$!
    trap stop_local_cluster EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local i
    for ((i = 0; i < 900; i++)); do
        curl -fsS -o /dev/null "$PUBLIC/openapi.json" 2>/dev/null && grep -q "Stop:" "$CLUSTER_DIR/up.log" && return 0
        kill -0 "$LOCAL_CLUSTER_PID" 2>/dev/null || { log "scripts/up.sh exited (see $CLUSTER_DIR/up.log)"; exit 1; }
        sleep 0.2
    done
    log "the cluster did not come up within 180 s"
    exit 1
}

# shellcheck disable=SC2317 # invoked via trap
stop_local_cluster() {
    local rc=$? kept="$REPO/.local/$LOCAL_CLUSTER_NAME-failed"
    trap - EXIT
    kill -TERM "$LOCAL_CLUSTER_PID" 2>/dev/null || true
    wait "$LOCAL_CLUSTER_PID" 2>/dev/null || true
    if ((rc != 0)); then
        log "failed; the cluster's log:"
        tail -n 40 "$CLUSTER_DIR/up.log" >&2 || true
        rm -rf "$kept"
        mkdir -p "$kept"
        cp -r "$CLUSTER_DIR/logs" "$CLUSTER_DIR/run/nginx" "$CLUSTER_DIR"/*.log "$kept/" 2>/dev/null || true
        rm -rf "$kept/nginx/www"
        log "logs kept in .local/$LOCAL_CLUSTER_NAME-failed/"
    fi
    rm -rf "$CLUSTER_DIR"
    exit "$rc"
}
