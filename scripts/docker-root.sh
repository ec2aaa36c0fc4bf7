#!/usr/bin/env bash
# Unpack Debian's Docker 20.10 (docker.io, containerd, runc; apparmor's parser) into a private
# directory, for the real-Swarm benchmark and tests that run inside `netlab vm`:
# nothing is installed, no service is started, nothing runs on this machine.
#
#   sudo bash scripts/docker-root.sh        # prints the directory
#
# The packages come from the machine's apt sources (`apt-get download`), the
# tree goes to $NETLAB_DOCKER_ROOT (default /var/lib/netlab/docker-root: not
# under /var/cache, which `netlab vm` hides behind a tmpfs). Re-running with
# the same package versions does nothing. dockerd needs libdevmapper and
# libseccomp from the distribution; they are installed when missing (plain
# libraries, no daemons).
set -euo pipefail

ROOT="${NETLAB_DOCKER_ROOT:-/var/lib/netlab/docker-root}"
PACKAGES=(docker.io containerd runc apparmor)   # apparmor: its parser loads docker-default (the kernel has AppArmor)
LIBS=(libdevmapper1.02.1 libseccomp2)
die() { echo "docker-root: error: $*" >&2; exit 1; }
[[ "$(id -u)" == 0 ]] || die "run as root"
command -v apt-get >/dev/null || die "apt-get not found (Debian or Ubuntu needed)"

missing=()
for lib in "${LIBS[@]}"; do
    [[ "$(dpkg-query -W -f='${Status}' "$lib" 2>/dev/null)" == "install ok installed" ]] || missing+=("$lib")
done
if ((${#missing[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi

versions="$(apt-cache policy "${PACKAGES[@]}" | awk '/^[^ ]/{p=$1} /Candidate:/{print p, $2}')"
if [[ -x "$ROOT/usr/sbin/dockerd" && -f "$ROOT/.versions" && "$(cat "$ROOT/.versions")" == "$versions" ]]; then
    echo "$ROOT"; exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download "${PACKAGES[@]}" >/dev/null 2>&1) \
    || die "apt-get download ${PACKAGES[*]} failed (apt-get update first?)"
rm -rf "$ROOT.new"
mkdir -p "$ROOT.new"
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$ROOT.new"; done
echo "$versions" > "$ROOT.new/.versions"
rm -rf "$ROOT"
mv "$ROOT.new" "$ROOT"
echo "$ROOT"
