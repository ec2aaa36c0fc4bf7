#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#
#   bash scripts/test.sh          (as root, or as a user with sudo)
#
# Installs what is missing (scripts/setup.sh), runs the unit tests natively,
# then the integration tests as root: natively when this kernel has IPVS,
# otherwise inside `netlab vm` (a throwaway VM with Debian's kernel).
# Prints each phase's time (and the VM's boot), the number of tests of each
# kind, and the slowest integration tests.
set -uo pipefail

# As root it runs as it is; as another user it runs itself again with sudo (exit 3
# when there is no sudo: run it as root, e.g. after `su -`).
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { echo "test: run as root (there is no sudo here)" >&2; exit 3; }
    exec sudo bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")" "$@"
fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 1

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
PHASES=()
phase_done() {  # phase_done NAME START: print and keep "NAME N.N s"
    local took
    took="$(since "$2")"
    PHASES+=("$1 ${took} s")
    echo "test: phase $1 took ${took} s"
}
# The counts from pytest's last line ("1044 passed, 1 warning in 25.3s").
counts() { grep -E '^=*[ ]*[0-9]+ (passed|failed|error)' "$1" | tail -1 | sed -E 's/^=+ //; s/ in [0-9.]+s.*$//; s/ =+$//'; }
LOGS="$(mktemp -d)"
trap 'rm -rf "$LOGS"' EXIT

t0="$(now)"
start="$(now)"
bash scripts/setup.sh || { echo "test: setup failed" >&2; exit 1; }
phase_done setup "$start"

PY=.venv/bin/python

# A real Docker for the real-Swarm tests (tests/integration/test_real_swarm.py):
# Debian's docker.io unpacked into /var/lib/netlab/docker-root, run only inside
# netlab vm; nothing is installed as a service and nothing starts here.
echo "test: unpacking Debian's Docker for the real-Swarm tests (scripts/docker-root.sh)"
start="$(now)"
bash scripts/docker-root.sh >/dev/null || { echo "test: scripts/docker-root.sh failed" >&2; exit 1; }
phase_done docker-root "$start"

echo "test: lint (scripts/lint.sh: ruff and mypy)"
start="$(now)"
bash scripts/lint.sh
lint=$?
phase_done lint "$start"

echo "test: unit tests"
start="$(now)"
$PY -m pytest tests/unit -q -p no:cacheprovider 2>&1 | tee "$LOGS/unit"
unit=${PIPESTATUS[0]}
phase_done unit "$start"

# Integration: -rA-less -q output, the 15 slowest tests, and each test's figure.
PYTEST_INTEGRATION=(-m pytest tests/integration -q -p no:cacheprovider --durations=15)
start="$(now)"
if $PY -c 'import sys; from netlab.vm.detect import host_has_ipvs; sys.exit(not host_has_ipvs())'; then
    where="natively"
    echo "test: integration tests (natively, this kernel has IPVS)"
    $PY "${PYTEST_INTEGRATION[@]}" 2>&1 | tee "$LOGS/integration"
    integration=${PIPESTATUS[0]}
else
    where="in netlab vm"
    echo "test: this kernel has no IPVS; running the integration tests inside netlab vm"
    # With NETLAB_VM_LOCK set (.ci/run sets it), the VM waits for an exclusive
    # flock on that file, so it never runs beside another VM of the same run.
    vm_lock=()
    [[ -n "${NETLAB_VM_LOCK:-}" ]] && vm_lock=(flock "$NETLAB_VM_LOCK")
    # The guest prints when it starts: the boot is the time from the VM's start to there.
    # The VM is stopped after NETLAB_TEST_VM_TIMEOUT s (default 75 min), inside CI's 90.
    "${vm_lock[@]}" sh -c 'NETLAB_TEST_VM_T0="$(date +%s.%N)" exec "$@"' sh \
        .venv/bin/netlab vm --timeout "${NETLAB_TEST_VM_TIMEOUT:-4500}" -- \
        sh -c 'awk -v a="$NETLAB_TEST_VM_T0" -v b="$(date +%s.%N)" '"'"'BEGIN { printf "test: the VM booted in %.1f s\n", b - a }'"'"'; exec "$@"' sh \
        .venv/bin/python "${PYTEST_INTEGRATION[@]}" 2>&1 | tee "$LOGS/integration"
    integration=${PIPESTATUS[0]}
fi
phase_done "integration($where)" "$start"

verdict() {  # pytest's exit 5 ("no tests collected") counts as a failure too
    case "$1" in
        0) echo "passed" ;;
        5) echo "FAILED (no tests collected)" ;;
        *) echo "FAILED (exit $1)" ;;
    esac
}
echo "test: tests: unit $(counts "$LOGS/unit"); integration $(counts "$LOGS/integration")"
echo "test: phases: $(IFS=';'; echo "${PHASES[*]}" | sed 's/;/; /g'); total $(since "$t0") s"
echo "test: lint $(verdict "$lint"); unit $(verdict "$unit"); integration ($where) $(verdict "$integration")"
[[ $lint == 0 && $unit == 0 && $integration == 0 ]]
