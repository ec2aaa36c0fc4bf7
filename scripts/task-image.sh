#!/usr/bin/env bash
# Build the task image `netlab/task:latest` offline: a busybox root whose
# server answers every HTTP request on each TCP port of $PORTS (default: $PORT,
# default 3000) with one JSON line naming the task and its node, as netlab's own
# task app does (`netlab up --tasks containers` runs it in each task). Nothing
# is pulled from a registry: the root is Debian's static busybox, imported
# with `docker import`.
#
#   bash scripts/task-image.sh            # needs a running dockerd
#
# Service example (the seed, hello-a):
#   docker service create --name hello-a --replicas 2 -p 5000:3000 \
#     --hostname '{{.Task.Name}}' --env NODE='{{.Node.Hostname}}' netlab/task:latest
set -euo pipefail

IMAGE="${NETLAB_TASK_IMAGE:-netlab/task:latest}"
BUSYBOX="$(command -v busybox || true)"
die() { echo "task-image: error: $*" >&2; exit 1; }

[[ -n "$BUSYBOX" ]] || die "busybox is missing; install Debian's busybox-static"
file -L "$BUSYBOX" | grep -q 'statically linked' \
    || die "$BUSYBOX is not static; install Debian's busybox-static"
command -v docker >/dev/null || die "docker is missing; install Debian's docker.io"
docker info >/dev/null 2>&1 || die "no Docker daemon answers; start dockerd first"

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
for applet in sh cat hostname date nc printf awk readlink nslookup; do ln -s busybox "$root/bin/$applet"; done

# One connection on stdin/stdout (nc -e): read the request, answer 200 with the JSON
# netlab's own task app gives (service, task, node, task_ip, port, client, client_port,
# path) plus "server": "busybox", then close. The task is the hostname; SERVICE, NODE
# and TASK_IP come from the environment. busybox nc exports no peer address, so the
# ports and the client come from /proc/net/tcp{,6}, found by the inode of the socket
# on stdin (an IPv4 peer of nc's dual-stack socket is v4-mapped there: the last 8 hex digits).
cat > "$root/bin/answer" <<'ANSWER'
#!/bin/sh
read -r method path version
while read -r line; do [ "${line%$(printf '\r')}" = "" ] && break; done
ino="$(readlink /proc/self/fd/0)"; ino="${ino#socket:[}"; ino="${ino%]}"
set -- $(awk -v ino="$ino" '
  function hex(s,  i, n) { n = 0; for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789ABCDEF", toupper(substr(s, i, 1))) - 1; return n }
  function ip(h) { h = substr(h, length(h) - 7); return hex(substr(h, 7, 2)) "." hex(substr(h, 5, 2)) "." hex(substr(h, 3, 2)) "." hex(substr(h, 1, 2)) }
  $10 == ino { split($2, l, ":"); split($3, r, ":"); print hex(l[2]), ip(r[1]), hex(r[2]); exit }' /proc/net/tcp /proc/net/tcp6)
body="{\"service\": \"${SERVICE:-}\", \"task\": \"$(hostname)\", \"node\": \"${NODE:-}\", \"task_ip\": \"${TASK_IP:-}\", \"port\": ${1:-${PORT:-3000}}, \"client\": \"${2:-}\", \"client_port\": ${3:-0}, \"path\": \"${path:-/}\", \"server\": \"busybox\"}"
printf 'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s\n' \
    "$(( ${#body} + 1 ))" "$body"
ANSWER
chmod 755 "$root/bin/answer"
# One listener per TCP port in $PORTS (default: $PORT), each serving every connection.
cat > "$root/bin/serve" <<'SERVE'
#!/bin/sh
for port in ${PORTS:-${PORT:-3000}}; do nc -ll -p "$port" -e /bin/answer & done
wait
SERVE
chmod 755 "$root/bin/serve"

tar -C "$root" -c . | docker import \
    --change 'ENV PORT=3000' --change 'EXPOSE 3000' --change 'CMD ["/bin/serve"]' \
    - "$IMAGE" >/dev/null
echo "task-image: built $IMAGE (busybox $("$BUSYBOX" 2>&1 | head -1 | awk '{print $2}'))"
