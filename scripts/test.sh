#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#
#   sudo bash scripts/test.sh
#
# Installs what is missing (scripts/setup.sh), runs the unit tests natively,
# then the integration tests as root: natively when this kernel has IPVS,
# otherwise inside `netlab vm` (a throwaway VM with Debian's kernel).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 1

bash scripts/setup.sh || { echo "test: setup failed" >&2; exit 1; }

PY=.venv/bin/python

# A real Docker for the real-Swarm tests (tests/integration/test_real_swarm.py):
# Debian's docker.io unpacked into /var/lib/netlab/docker-root, run only inside
# netlab vm; nothing is installed as a service and nothing starts here.
echo "test: unpacking Debian's Docker for the real-Swarm tests (scripts/docker-root.sh)"
bash scripts/docker-root.sh >/dev/null || { echo "test: scripts/docker-root.sh failed" >&2; exit 1; }

echo "test: lint (scripts/lint.sh: ruff and mypy)"
bash scripts/lint.sh
lint=$?

echo "test: unit tests"
$PY -m pytest tests/unit -q
unit=$?

if $PY -c 'import sys; from netlab.vm.detect import host_has_ipvs; sys.exit(not host_has_ipvs())'; then
    where="natively"
    echo "test: integration tests (natively, this kernel has IPVS)"
    $PY -m pytest tests/integration -q -p no:cacheprovider
    integration=$?
else
    where="in netlab vm"
    echo "test: this kernel has no IPVS; running the integration tests inside netlab vm"
    # The VM is stopped after NETLAB_TEST_VM_TIMEOUT s (default 75 min), inside CI's 90.
    .venv/bin/netlab vm --timeout "${NETLAB_TEST_VM_TIMEOUT:-4500}" -- \
        .venv/bin/python -m pytest tests/integration -q -p no:cacheprovider
    integration=$?
fi

verdict() {  # pytest's exit 5 ("no tests collected") counts as a failure too
    case "$1" in
        0) echo "passed" ;;
        5) echo "FAILED (no tests collected)" ;;
        *) echo "FAILED (exit $1)" ;;
    esac
}
echo "test: lint $(verdict "$lint"); unit $(verdict "$unit"); integration ($where) $(verdict "$integration")"
[[ $lint == 0 && $unit == 0 && $integration == 0 ]]
