#!/usr/bin/env bash
# The demo: bring up the seed scenario (hello-a published on port 5000 across
# the nodes), show its status, send requests through the routing mesh, trace
# one, and tear it down.
#
#   bash scripts/demo.sh          (as root, or as a user with sudo)
#
# Installs what is missing (scripts/setup.sh) and runs inside `netlab vm` when
# this kernel has no IPVS.
set -uo pipefail

# As root it runs as it is; as another user it runs itself again with sudo (exit 3
# when there is no sudo: run it as root, e.g. after `su -`).
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { echo "demo: run as root (there is no sudo here)" >&2; exit 3; }
    exec sudo bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")" "$@"
fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 1

bash scripts/setup.sh || { echo "demo: setup failed" >&2; exit 1; }

if .venv/bin/python -c 'import sys; from netlab.vm.detect import host_has_ipvs; sys.exit(not host_has_ipvs())'; then
    bash scripts/demo-inner.sh
else
    echo "demo: this kernel has no IPVS; running the demo inside netlab vm"
    .venv/bin/netlab vm -- bash scripts/demo-inner.sh
fi
status=$?
if [[ $status == 0 ]]; then echo "demo: done"; else echo "demo: FAILED (exit $status)" >&2; fi
exit "$status"
