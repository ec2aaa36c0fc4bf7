#!/usr/bin/env bash
# Check vagrant/Vagrantfile as CI does: install Debian's vagrant and
# vagrant-libvirt if missing, then `vagrant validate` with the libvirt
# provider's settings checked, and without provider settings (VirtualBox
# itself is not in Debian, and validating its settings needs VBoxManage).
# Boots nothing.
#
#   sudo bash scripts/check-vagrant.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../vagrant"

say() { echo "check-vagrant: $*"; }
missing=()
for pkg in vagrant vagrant-libvirt; do
    [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    log="$(mktemp)"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        tail -n 20 "$log" >&2; rm -f "$log"; echo "check-vagrant: installing ${missing[*]} failed" >&2; exit 1
    fi
    rm -f "$log"
fi

bash -n provision.sh join-swarm.sh ../scripts/build-box.sh ../scripts/vagrant-run.sh
# vagrant keeps its machine index under .vagrant/ next to the Vagrantfile; the
# check must leave the tree as it found it.
had_dot_vagrant=0; [[ -e .vagrant ]] && had_dot_vagrant=1
status=0
VAGRANT_DEFAULT_PROVIDER=libvirt vagrant validate || status=1
# As scripts/vagrant-run.sh boots it: the local box, isolated networks, plain emulation.
NETLAB_BOX=netlab-local/bookworm64 NETLAB_VM_KVM=0 VAGRANT_DEFAULT_PROVIDER=libvirt vagrant validate \
    || status=1
VAGRANT_DEFAULT_PROVIDER=virtualbox vagrant validate --ignore-provider || status=1
((had_dot_vagrant)) || rm -rf .vagrant
if ((status == 0)); then
    say "Vagrantfile valid (libvirt settings checked, also as scripts/vagrant-run.sh boots it; VirtualBox settings not: no VBoxManage)"
fi
exit "$status"
