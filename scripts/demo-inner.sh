#!/usr/bin/env bash
# The demo's steps, run as root on a kernel with IPVS (scripts/demo.sh runs this
# natively or inside `netlab vm`). The lab is always torn down at the end.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

if [[ -x .venv/bin/netlab ]]; then NETLAB=(.venv/bin/netlab); else NETLAB=(netlab); fi
LAB=hello-a

step() { echo; echo "demo: \$ netlab $*"; "${NETLAB[@]}" "$@"; }

teardown() {
    local status=$?
    echo; echo "demo: \$ netlab down $LAB"
    "${NETLAB[@]}" down "$LAB" || status=1
    exit "$status"
}
trap teardown EXIT

step up scenarios/hello-a.yaml
step status "$LAB"
step curl "$LAB" node2:5000 --count 6
# The tutorials' way in: the machine's own iptables inside node2's ingress_sbox.
step exec "$LAB" node2/ingress_sbox -- iptables -t mangle -S PREROUTING
step trace "$LAB" node2:5000
