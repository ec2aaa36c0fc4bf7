#!/usr/bin/env bash
# Install what netlab needs, idempotently: the distribution's packages (only
# the missing ones), a venv at <repo>/.venv, and netlab in it (again only when
# pyproject.toml changed). Safe to run any number of times. Debian 12 and
# Ubuntu 24.04 (and their derivatives) are supported; the distribution is read
# from /etc/os-release.
#
#   sudo bash scripts/setup.sh
#
# Environment: PYTHON (default python3) makes the venv.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
STAMP="$VENV/.netlab-installed"
PYTHON="${PYTHON:-python3}"

# What each package is for:
#   python3 python3-venv python3-dev gcc  the venv; python-iptables builds a C helper
#   iproute2 iptables ipvsadm conntrack   the lab's plumbing; iptables brings both
#                                         backends (iptables-nft-*, iptables-legacy-*)
#   tcpdump kmod procps                   captures, modprobe, sysctl (the tests use it)
#   qemu-system-x86 busybox-static file   `netlab vm`: qemu, and virtme-ng's initramfs
#                                         (it needs a static busybox, and `file` to check it)
#   the kernel (per distribution below)   `netlab vm` boots it: IPVS, VXLAN, br_netfilter
#                                         and nf_tables as modules
COMMON_PACKAGES=(python3 python3-venv python3-dev gcc iproute2 iptables ipvsadm
                 conntrack tcpdump kmod procps qemu-system-x86 busybox-static file)

# Modules the kernel that `netlab vm` boots must have (as modules or built in).
VM_MODULES=(ip_vs ip_vs_rr xt_ipvs vxlan veth bridge br_netfilter nf_tables nft_compat
            9p 9pnet_virtio)

# Tools that must be on PATH once the packages are in.
TOOLS=(ip bridge ss iptables iptables-nft-save iptables-nft-restore iptables-legacy-save
       iptables-legacy-restore ipvsadm conntrack tcpdump modprobe sysctl
       qemu-system-x86_64 busybox file)

say() { echo "setup: $*"; }
die() { echo "setup: error: $*" >&2; exit 1; }

if [[ "$(id -u)" != 0 ]]; then
    die "run as root (sudo bash scripts/setup.sh): it installs the distribution's packages"
fi

# The distribution decides the kernel package: Debian's linux-image-amd64 has
# every module netlab uses; Ubuntu's linux-image-generic pulls in
# linux-modules-extra, where some netfilter modules live.
distro_family() {
    local id="" like=""
    if [[ -r /etc/os-release ]]; then
        id="$(. /etc/os-release && echo "${ID:-}")"
        like="$(. /etc/os-release && echo "${ID_LIKE:-}")"
    fi
    case " $id $like " in
        *" ubuntu "*) echo ubuntu ;;
        *" debian "*) echo debian ;;
        *) echo "unknown:${id:-unknown}" ;;
    esac
}
FAMILY="$(distro_family)"
case "$FAMILY" in
    debian) KERNEL_PACKAGE=linux-image-amd64 ;;
    ubuntu) KERNEL_PACKAGE=linux-image-generic ;;
    *) die "unsupported distribution (${FAMILY#unknown:} in /etc/os-release); netlab's setup" \
           "knows Debian 12 and Ubuntu 24.04. Install by hand: ${COMMON_PACKAGES[*]}" \
           "and a kernel image with IPVS modules, then run this again" ;;
esac
[[ "$(uname -m)" == x86_64 ]] || die "netlab vm needs an x86_64 machine (this is $(uname -m))"
PACKAGES=("${COMMON_PACKAGES[@]}" "$KERNEL_PACKAGE")

installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

APT_UPDATED=0
apt_install() {  # apt_install PKG...: install quietly; show apt's output only when it fails
    local log
    command -v apt-get >/dev/null || die "apt-get not found; install by hand: $*"
    log="$(mktemp)"
    export DEBIAN_FRONTEND=noninteractive
    if ((!APT_UPDATED)); then
        if ! apt-get update -q >"$log" 2>&1; then
            tail -n 20 "$log" >&2; rm -f "$log"; die "apt-get update failed"
        fi
        APT_UPDATED=1
    fi
    if ! apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1; then
        tail -n 30 "$log" >&2; rm -f "$log"; die "apt-get install $* failed"
    fi
    rm -f "$log"
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    say "installing $FAMILY packages: ${missing[*]}"
    apt_install "${missing[@]}"
else
    say "$FAMILY packages present"
fi

absent=()
for tool in "${TOOLS[@]}"; do
    PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null || absent+=("$tool")
done
((${#absent[@]} == 0)) || die "still missing after installing packages: ${absent[*]}"

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
    (cd "$REPO" && "$VENV/bin/python" -m pip install -q --disable-pip-version-check --use-pep517 -e '.[test]') \
        || die "pip install -e '.[test]' failed"
    touch "$STAMP"
else
    say "netlab already installed in the venv"
fi

"$VENV/bin/python" -c 'import netlab' || die "netlab is not importable from $VENV"
[[ -x "$VENV/bin/vng" ]] || die "virtme-ng (vng) is missing from $VENV"

# The kernel `netlab vm` will boot (netlab's own choice) and the modules it lacks.
vm_kernel_gaps() {
    "$VENV/bin/python" - "${VM_MODULES[@]}" <<'PY'
import sys
from pathlib import Path

from netlab.errors import NetlabError
from netlab.vm.detect import has_module
from netlab.vm.kernels import find_kernel

try:
    kernel = find_kernel()
except NetlabError as err:
    print(f"setup: error: {err}", file=sys.stderr)
    sys.exit(1)
tree = Path("/lib/modules") / kernel.version
print(kernel.version, *(m for m in sys.argv[1:] if not has_module(tree, m)))
PY
}
read -r -a gaps <<<"$(vm_kernel_gaps)" || true
((${#gaps[@]})) || die "no kernel for netlab vm (see above)"
if ((${#gaps[@]} > 1)) && [[ "$FAMILY" == ubuntu ]] && ! installed "linux-modules-extra-${gaps[0]}"; then
    say "installing linux-modules-extra-${gaps[0]} (the VM kernel lacks ${gaps[*]:1})"
    apt_install "linux-modules-extra-${gaps[0]}"
    read -r -a gaps <<<"$(vm_kernel_gaps)" || true
fi
((${#gaps[@]} == 1)) \
    || die "the kernel netlab vm boots (${gaps[0]}) lacks modules: ${gaps[*]:1}"
say "ready ($VENV/bin/netlab; netlab vm boots ${gaps[0]})"
