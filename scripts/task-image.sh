#!/usr/bin/env bash
# Build the task image `netlab/task:latest` offline: a busybox root whose
# server answers every HTTP request on $PORT (default 3000) with one JSON
# line naming the task and its node, as netlab's own task app does. Nothing
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
for applet in sh cat hostname date nc printf; do ln -s busybox "$root/bin/$applet"; done

# One connection: read the request line, answer 200 with a JSON body, close.
cat > "$root/bin/answer" <<'ANSWER'
#!/bin/sh
read -r method path version
while read -r line; do [ "${line%$(printf '\r')}" = "" ] && break; done
body="{\"task\": \"$(hostname)\", \"node\": \"${NODE:-}\", \"port\": ${PORT:-3000}, \"path\": \"${path:-/}\"}"
printf 'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s\n' \
    "$(( ${#body} + 1 ))" "$body"
ANSWER
chmod 755 "$root/bin/answer"
cat > "$root/bin/serve" <<'SERVE'
#!/bin/sh
exec nc -ll -p "${PORT:-3000}" -e /bin/answer
SERVE
chmod 755 "$root/bin/serve"

tar -C "$root" -c . | docker import \
    --change 'ENV PORT=3000' --change 'EXPOSE 3000' --change 'CMD ["/bin/serve"]' \
    - "$IMAGE" >/dev/null
echo "task-image: built $IMAGE (busybox $("$BUSYBOX" 2>&1 | head -1 | awk '{print $2}'))"
