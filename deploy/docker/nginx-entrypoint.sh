#!/bin/sh
# Renders the load balancer template (deploy/nginx/nginx.conf, installed as
# /etc/nginx/nginx.conf.template) from the environment and runs nginx in the
# foreground (the template says `daemon off;`). Arguments go to nginx, so
# `nginx-entrypoint.sh -t` renders and only tests the configuration, and
# `nginx-entrypoint.sh --render-only` renders RUNTIME_DIR/nginx.conf and
# exits. This is the one renderer of the template: scripts/cluster.sh and
# the tests' nginx (test-support/src/ws/nginx.rs) call it too.
#
#   API_SERVERS     space-separated host:port of the api-nodes (required)
#   WS_SERVERS      space-separated host:port of the ws-nodes (required)
#   LISTEN          nginx's listen address (default 80)
#   RUNTIME_DIR     pid file, temp files, logs, rendered config (default /tmp/nginx)
#   NGINX_TEMPLATE  the template (default /etc/nginx/nginx.conf.template)
#   NGINX_BIN       the nginx binary (default nginx)
#   BOARD_DIR       the live board's files, copied to RUNTIME_DIR/www where
#                   the template serves them (default /usr/share/tasks-board;
#                   absent: / answers 404)
#   NGINX_LOG_FILES set to 1 to keep the logs as files in RUNTIME_DIR instead
#                   of linking them to the container's stdout/stderr
set -eu

: "${API_SERVERS:?API_SERVERS: space-separated host:port of the api-nodes}"
: "${WS_SERVERS:?WS_SERVERS: space-separated host:port of the ws-nodes}"
LISTEN="${LISTEN:-80}"
RUNTIME_DIR="${RUNTIME_DIR:-/tmp/nginx}"
NGINX_TEMPLATE="${NGINX_TEMPLATE:-/etc/nginx/nginx.conf.template}"
NGINX_BIN="${NGINX_BIN:-nginx}"

# NAME "a:1 b:2" PARAMS -> "server a:1 PARAMS; server b:2 PARAMS;" (each
# checked: it is pasted into the configuration and into a sed replacement).
servers() {
    list=""
    for s in $2; do
        case "$s" in
            *[!A-Za-z0-9.:_\[\]-]* | "")
                echo "nginx-entrypoint: $1: bad host:port '$s'" >&2
                exit 2
                ;;
        esac
        list="${list}server $s $3; "
    done
    if [ -z "$list" ]; then
        echo "nginx-entrypoint: $1 is empty" >&2
        exit 2
    fi
    printf '%s' "$list"
}

# The parameters the template's header explains (a refused api-node is
# skipped for 2 s; ws-nodes are never marked down).
api=$(servers API_SERVERS "$API_SERVERS" "max_fails=1 fail_timeout=2s")
ws=$(servers WS_SERVERS "$WS_SERVERS" "max_fails=0")
case "$LISTEN" in
    *[!A-Za-z0-9.:\[\]]* | "")
        echo "nginx-entrypoint: bad LISTEN '$LISTEN'" >&2
        exit 2
        ;;
esac
case "$RUNTIME_DIR" in
    /*) ;;
    *)
        echo "nginx-entrypoint: RUNTIME_DIR must be an absolute path" >&2
        exit 2
        ;;
esac
case "$RUNTIME_DIR" in
    *[!A-Za-z0-9./_-]*)
        echo "nginx-entrypoint: bad RUNTIME_DIR '$RUNTIME_DIR'" >&2
        exit 2
        ;;
esac

mkdir -p "$RUNTIME_DIR"
BOARD_DIR="${BOARD_DIR:-/usr/share/tasks-board}"
if [ -d "$BOARD_DIR" ]; then
    rm -rf "$RUNTIME_DIR/www"
    cp -R "$BOARD_DIR" "$RUNTIME_DIR/www"
fi
if [ "${NGINX_LOG_FILES:-0}" != 1 ]; then
    # The template logs into RUNTIME_DIR; in a container the logs belong on
    # stdout/stderr (docker logs, kubectl logs).
    ln -sf /dev/stdout "$RUNTIME_DIR/access.log"
    ln -sf /dev/stderr "$RUNTIME_DIR/error.log"
fi
sed -e "s|__LISTEN__|$LISTEN|g" \
    -e "s|__API_SERVERS__|$api|g" \
    -e "s|__WS_SERVERS__|$ws|g" \
    -e "s|__RUNTIME_DIR__|$RUNTIME_DIR|g" \
    "$NGINX_TEMPLATE" > "$RUNTIME_DIR/nginx.conf"

if grep -q '__[A-Z_]*__' "$RUNTIME_DIR/nginx.conf"; then
    echo "nginx-entrypoint: placeholders left unrendered in $RUNTIME_DIR/nginx.conf:" >&2
    grep -n '__[A-Z_]*__' "$RUNTIME_DIR/nginx.conf" >&2
    exit 2
fi

if [ "${1:-}" = --render-only ]; then
    exit 0
fi
exec "$NGINX_BIN" -p "$RUNTIME_DIR/" -c "$RUNTIME_DIR/nginx.conf" "$@"
