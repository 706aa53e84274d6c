# The public load balancer: nginx with the repository's template
# (deploy/nginx/nginx.conf), rendered at start from the environment by
# deploy/docker/nginx-entrypoint.sh.
# Build context: the repository root.
#   docker build -f deploy/docker/nginx.Dockerfile -t tasks-nginx .
#   docker run -e API_SERVERS="api1:8080 api2:8080" -e WS_SERVERS="ws1:8090" -p 8080:80 tasks-nginx
#
# Environment:
#   API_SERVERS  space-separated host:port of the api-nodes (required)
#   WS_SERVERS   space-separated host:port of the ws-nodes (required)
#   LISTEN       nginx's listen address (default 80)
#   RUNTIME_DIR  pid file, temp files and logs (default /tmp/nginx; the logs
#                there are linked to the container's stdout/stderr)
FROM nginx:1.27-alpine
COPY deploy/nginx/nginx.conf /etc/nginx/nginx.conf.template
COPY deploy/docker/nginx-entrypoint.sh /usr/local/bin/nginx-entrypoint.sh
# The live board and the client library it imports (served at /).
COPY clients/board/ /usr/share/tasks-board/
COPY clients/js/src/ /usr/share/tasks-board/lib/
RUN chmod 0755 /usr/local/bin/nginx-entrypoint.sh
ENV LISTEN=80 \
    RUNTIME_DIR=/tmp/nginx
EXPOSE 80
# SIGQUIT: nginx's graceful shutdown (finish requests in flight).
STOPSIGNAL SIGQUIT
# The template already says `daemon off;`, so no `-g 'daemon off;'` here
# (nginx refuses a duplicate directive). Extra arguments go to nginx.
ENTRYPOINT ["/usr/local/bin/nginx-entrypoint.sh"]
CMD []
