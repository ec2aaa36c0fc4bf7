#!/usr/bin/env bash
# Install what netlab needs, idempotently: Debian packages (only the missing
# ones), a venv at <repo>/.venv, and netlab in it (again only when
# pyproject.toml changed). Safe to run any number of times.
#
#   sudo bash scripts/setup.sh
#
# Environment: PYTHON (default python3) makes the venv.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
STAMP="$VENV/.netlab-installed"
PYTHON="${PYTHON:-python3}"

# qemu-system-x86 and linux-image-amd64 are for `netlab vm` (a kernel with IPVS
# when the running one has none).
PACKAGES=(python3 python3-venv python3-dev gcc iproute2 iptables ipvsadm
          conntrack tcpdump kmod qemu-system-x86 linux-image-amd64)

say() { echo "setup: $*"; }
die() { echo "setup: error: $*" >&2; exit 1; }

if [[ "$(id -u)" != 0 ]]; then
    die "run as root (sudo bash scripts/setup.sh): it installs Debian packages"
fi

installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null || die "apt-get not found; install by hand: ${missing[*]}"
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
else
    say "Debian packages present"
fi

command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "netlab needs Python >= 3.11; $PYTHON is $("$PYTHON" -V 2>&1)"

if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    say "venv present at $VENV"
else
    say "creating venv at $VENV"
    "$PYTHON" -m venv --clear "$VENV" || die "python3 -m venv failed (is python3-venv installed?)"
    rm -f "$STAMP"
fi

if [[ ! -e "$STAMP" || "$REPO/pyproject.toml" -nt "$STAMP" ]]; then
    say "installing netlab and its dependencies into the venv (pip install -e '.[test]')"
    (cd "$REPO" && "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]') \
        || die "pip install -e '.[test]' failed"
    touch "$STAMP"
else
    say "netlab already installed in the venv"
fi

"$VENV/bin/python" -c 'import netlab' || die "netlab is not importable from $VENV"
[[ -x "$VENV/bin/vng" ]] || die "virtme-ng (vng) is missing from $VENV"
say "ready ($VENV/bin/netlab)"
