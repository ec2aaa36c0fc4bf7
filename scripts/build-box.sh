#!/usr/bin/env bash
# Build a Debian 12 Vagrant box for libvirt from Debian's packages alone, and
# add it to Vagrant under a local name (default netlab-local/bookworm64):
#
#   bash scripts/build-box.sh [--name NAME] [--rebuild]      (as root)
#   NETLAB_BOX=netlab-local/bookworm64 vagrant up     (in vagrant/)
#
# The box is self-contained: it carries every package that provisioning
# installs (scripts/setup.sh's list, the kernel, docker.io, curl) and a wheel
# house of netlab's Python dependencies, with /etc/pip.conf pointing pip at it
# (no index). So `vagrant up` provisions with no network beyond this machine:
# the VMs' libvirt networks are isolated (vagrant/Vagrantfile, NETLAB_ISOLATED),
# and the guest has no route out, no DNS server, no time sync daemon and no
# apt/man-db timers. Why not let the guest reach a mirror instead: this
# machine reaches Debian's mirror and PyPI directly, with no proxy a guest
# could use; giving the guest a way out means a NAT network, i.e. forwarding
# and masquerading in this machine's root network namespace, which netlab
# never touches.
#
# The disk is made without mounting anything: mmdebstrap builds the root in a
# directory, `mkfs.ext4 -d` turns it into a partition image, GRUB's i386-pc
# boot.img and a core.img (grub-mkimage, from the box's own grub-pc-bin) go
# into the MBR and the gap before the partition, and qemu-img makes the qcow2.
#
# Cached under /var/cache/netlab/vagrant-box/<recipe hash>/: the hash covers
# this script, scripts/setup.sh (its package list), vagrant/provision.sh and
# pyproject.toml (the wheels), so a change to any rebuilds the box; `vagrant
# box add --force` replaces the box Vagrant holds when its hash differs.
# Exit: 0 ok, 1 the build failed, 2 bad usage, 3 a tool is missing.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${NETLAB_BOX_CACHE:-/var/cache/netlab/vagrant-box}"
NAME="netlab-local/bookworm64"
REBUILD=0
DISK_GB=20
SUITE=bookworm
MIRROR="${NETLAB_BOX_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${NETLAB_BOX_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

say() { echo "build-box: $*"; }
die() { echo "build-box: error: $*" >&2; exit 1; }
usage() { echo "build-box: $1 (usage: build-box.sh [--name NAME] [--rebuild])" >&2; exit 2; }
missing() { echo "build-box: $1" >&2; exit 3; }

while (($#)); do
    case "$1" in
        --name) if (($# < 2)) || [[ -z "$2" ]]; then usage "--name needs a box name"; fi
                NAME="$2"; shift 2 ;;
        --name=*) NAME="${1#--name=}"; [[ -n "$NAME" ]] || usage "--name needs a box name"; shift ;;
        --rebuild) REBUILD=1; shift ;;
        -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) usage "unknown argument: $1" ;;
    esac
done
[[ "$NAME" =~ ^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)?$ ]] || usage "bad box name: $NAME"

[[ "$(id -u)" == 0 ]] || missing "run as root: mmdebstrap and the disk image need it"
for tool in mmdebstrap mkfs.ext4 sfdisk qemu-img vagrant sha256sum tar; do
    PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null \
        || missing "$tool is missing: apt-get install mmdebstrap e2fsprogs fdisk qemu-utils vagrant"
done
export PATH="$PATH:/usr/sbin:/sbin"
[[ -x "$REPO/.venv/bin/python" ]] || missing "no venv at $REPO/.venv: run 'bash scripts/setup.sh' first (the wheels come from its pip)"

# What provisioning installs, read from scripts/setup.sh so the two never drift.
setup_packages() {
    bash -c 'eval "$(sed -n "/^COMMON_PACKAGES=(/,/)/p" "$1")"; echo "${COMMON_PACKAGES[*]}"' _ "$REPO/scripts/setup.sh"
}
read -r -a SETUP_PACKAGES <<<"$(setup_packages)"
((${#SETUP_PACKAGES[@]} > 5)) || die "could not read COMMON_PACKAGES from scripts/setup.sh"
# ... and what provision.sh adds on the swarm VMs (DOCKER_PACKAGES).
docker_packages() {
    bash -c 'eval "$(grep "^DOCKER_PACKAGES=(" "$1")"; echo "${DOCKER_PACKAGES[*]}"' _ "$REPO/vagrant/provision.sh"
}
read -r -a DOCKER_PACKAGES <<<"$(docker_packages)"
((${#DOCKER_PACKAGES[@]})) || die "could not read DOCKER_PACKAGES from vagrant/provision.sh"
# boot and access; setup.sh's list; what setup.sh adds on Debian (the kernel);
# provision.sh's for the swarm VMs and the README's curl.
PACKAGES=(systemd-sysv udev dbus e2fsprogs initramfs-tools linux-image-amd64 grub-pc-bin
          openssh-server sudo rsync less iputils-ping
          "${SETUP_PACKAGES[@]}" "${DOCKER_PACKAGES[@]}" curl)

HASH="$(cat "$0" "$REPO/scripts/setup.sh" "$REPO/vagrant/provision.sh" "$REPO/pyproject.toml" \
        | sha256sum | cut -c1-16)"
DIR="$CACHE_ROOT/$HASH"
BOX="$DIR/netlab-bookworm64-libvirt.box"

if ((REBUILD)) || [[ ! -s "$BOX" ]]; then
    start=$SECONDS
    mkdir -p "$CACHE_ROOT"
    # Older recipes' boxes go: one box is kept.
    find "$CACHE_ROOT" -mindepth 1 -maxdepth 1 -type d ! -name "$HASH" -exec rm -rf {} +
    rm -rf "$DIR"; mkdir -p "$DIR"
    WORK="$(mktemp -d "$DIR/work.XXXXXX")"
    trap 'rm -rf "$WORK"' EXIT
    ROOT="$WORK/root"

    say "wheels for netlab's Python dependencies (pyproject.toml, with [test])"
    wheels="$WORK/wheels"
    (cd "$REPO" && .venv/bin/python -m pip wheel -q --disable-pip-version-check \
        -w "$wheels" '.[test]' 'setuptools>=68' wheel) >"$WORK/pip.log" 2>&1 \
        || { tail -n 30 "$WORK/pip.log" >&2; die "pip wheel failed"; }
    rm -f "$wheels"/netlab-*.whl

    say "root filesystem: mmdebstrap $SUITE with ${#PACKAGES[@]} packages (this takes minutes)"
    include="$(IFS=,; echo "${PACKAGES[*]}")"
    mm_args=(--variant=minbase --include="$include" --aptopt='APT::Install-Recommends "false"'
             --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
             --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*')
    mmdebstrap "${mm_args[@]}" "$SUITE" "$ROOT" \
        "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
        "deb $SECURITY_MIRROR $SUITE-security main" >"$WORK/mmdebstrap.log" 2>&1 \
        || { tail -n 30 "$WORK/mmdebstrap.log" >&2; die "mmdebstrap failed"; }

    say "configuring the guest: vagrant user, sshd, networkd, no timers, no DNS, pip offline"
    kver="$(find "$ROOT/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sort -V | tail -1)"
    kver="${kver#vmlinuz-}"
    [[ -n "$kver" ]] || die "no kernel in the root filesystem's /boot"
    [[ -f "$ROOT/boot/initrd.img-$kver" ]] || die "no initrd for $kver in the root filesystem"
    uuid="$(cat /proc/sys/kernel/random/uuid)"
    install -d -m 0755 "$ROOT/var/cache/netlab"
    cp -r "$wheels" "$ROOT/var/cache/netlab/wheels"
    cat >"$ROOT/etc/pip.conf" <<'EOF'
# netlab box: pip installs from the wheels carried in the box, never from an index
[global]
no-index = true
find-links = /var/cache/netlab/wheels
EOF
    echo "UUID=$uuid / ext4 errors=remount-ro 0 1" >"$ROOT/etc/fstab"
    echo localhost >"$ROOT/etc/hostname"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
    # No DNS server: nothing in the guest resolves a name outside /etc/hosts.
    rm -f "$ROOT/etc/resolv.conf"
    echo "# netlab box: no DNS server on purpose (isolated network); names are in /etc/hosts" \
        >"$ROOT/etc/resolv.conf"
    : >"$ROOT/etc/machine-id"
    cat >"$ROOT/etc/systemd/network/20-eth0.network" <<'EOF'
[Match]
Name=eth0

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no

[DHCPv4]
UseDNS=no
UseNTP=no
UseDomains=no
EOF
    # sshd's host keys are made at first boot, so no two VMs share them.
    rm -f "$ROOT"/etc/ssh/ssh_host_*
    cat >"$ROOT/etc/systemd/system/netlab-ssh-keygen.service" <<'EOF'
[Unit]
Description=Make sshd host keys missing from the netlab box
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
RequiredBy=ssh.service
EOF
    echo 'UseDNS no' >"$ROOT/etc/ssh/sshd_config.d/netlab.conf"
    chroot "$ROOT" useradd -m -s /bin/bash -U vagrant
    install -d -m 0700 -o 1000 -g 1000 "$ROOT/home/vagrant/.ssh"
    vagrant_pub="$(find /usr/share/rubygems-integration /opt/vagrant /usr/share/vagrant /usr/lib/ruby \
                  -path '*/keys/vagrant.pub' 2>/dev/null | head -1 || true)"
    [[ -n "$vagrant_pub" ]] || die "Vagrant's insecure public key (keys/vagrant.pub) not found"
    install -m 0600 -o "$(chroot "$ROOT" id -u vagrant)" -g "$(chroot "$ROOT" id -g vagrant)" \
        "$vagrant_pub" "$ROOT/home/vagrant/.ssh/authorized_keys"
    chroot "$ROOT" chown -R vagrant:vagrant /home/vagrant/.ssh
    echo 'vagrant ALL=(ALL) NOPASSWD: ALL' >"$ROOT/etc/sudoers.d/vagrant"
    chmod 0440 "$ROOT/etc/sudoers.d/vagrant"
    chroot "$ROOT" passwd -l root >/dev/null
    chroot "$ROOT" systemctl enable systemd-networkd.service netlab-ssh-keygen.service ssh.service >/dev/null 2>&1
    # Nothing calls out on its own: no update/cleanup timers, no wait for a network that
    # vagrant configures later. (No time sync daemon is installed at all.)
    chroot "$ROOT" systemctl mask apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer \
        fstrim.timer dpkg-db-backup.timer systemd-networkd-wait-online.service >/dev/null 2>&1
    # docker.io is carried for the swarm VMs; it starts only where provision.sh starts it.
    # (apparmor's service only loads the profiles installed, docker's among them.)
    chroot "$ROOT" systemctl disable docker.service docker.socket containerd.service >/dev/null 2>&1 || true
    chroot "$ROOT" apt-get clean

    say "boot loader: GRUB (i386-pc) into the MBR, Linux $kver"
    install -d "$ROOT/boot/grub"
    cp -r "$ROOT/usr/lib/grub/i386-pc" "$ROOT/boot/grub/"
    cat >"$ROOT/boot/grub/grub.cfg" <<EOF
set timeout=1
set default=0
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
menuentry "Debian 12 (netlab box)" {
    linux /boot/vmlinuz-$kver root=UUID=$uuid ro console=tty0 console=ttyS0,115200n8 net.ifnames=0 biosdevname=0
    initrd /boot/initrd.img-$kver
}
EOF
    chroot "$ROOT" grub-mkimage -O i386-pc -o /boot/grub/core.img -p '(hd0,msdos1)/boot/grub' \
        biosdisk part_msdos ext2 normal linux boot configfile search serial terminal echo
    cp "$ROOT/boot/grub/core.img" "$WORK/core.img"
    cp "$ROOT/usr/lib/grub/i386-pc/boot.img" "$WORK/boot.img"
    (( $(stat -c %s "$WORK/core.img") < 2047 * 512 )) || die "core.img does not fit before the partition"

    say "disk: ${DISK_GB} GiB ext4 (mkfs.ext4 -d, nothing mounted), qcow2"
    part="$WORK/part.img"; disk="$WORK/disk.raw"
    truncate -s "$((DISK_GB * 1024 - 1))M" "$part"
    mkfs.ext4 -q -F -L netlab-root -U "$uuid" -O '^orphan_file,^metadata_csum_seed' -d "$ROOT" "$part" \
        || die "mkfs.ext4 -d failed"
    truncate -s "${DISK_GB}G" "$disk"
    echo 'label: dos
start=2048, type=83, bootable' | sfdisk -q "$disk" || die "sfdisk failed"
    dd if="$WORK/boot.img" of="$disk" bs=440 count=1 conv=notrunc status=none
    dd if="$WORK/core.img" of="$disk" bs=512 seek=1 conv=notrunc status=none
    dd if="$part" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
    rm -f "$part"
    qemu-img convert -O qcow2 "$disk" "$WORK/box.img"
    rm -f "$disk"
    vsize="$(qemu-img info --output=json "$WORK/box.img" | sed -n 's/.*"virtual-size": *\([0-9]*\).*/\1/p')"
    cat >"$WORK/metadata.json" <<EOF
{"provider": "libvirt", "format": "qcow2", "virtual_size": $((vsize / 1024 / 1024 / 1024))}
EOF
    cat >"$WORK/Vagrantfile" <<'EOF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.disk_bus = "virtio"
  end
end
EOF
    tar -C "$WORK" -cf "$BOX.tmp" metadata.json Vagrantfile box.img
    mv "$BOX.tmp" "$BOX"
    echo "$HASH" >"$DIR/recipe"
    rm -rf "$WORK"; trap - EXIT
    say "built $BOX ($(du -h "$BOX" | cut -f1)) in $((SECONDS - start)) s"
else
    say "cached: $BOX (recipe $HASH)"
fi

# Add it to Vagrant unless the box of this recipe is already there.
STAMP="$CACHE_ROOT/added-$(echo "$NAME" | tr '/' '_')"
if vagrant box list 2>/dev/null | grep -q "^$NAME " && [[ "$(cat "$STAMP" 2>/dev/null)" == "$HASH" ]]; then
    say "box $NAME (recipe $HASH) already added"
else
    vagrant box add --force --name "$NAME" "$BOX" >/dev/null || die "vagrant box add failed"
    echo "$HASH" >"$STAMP"
    say "added box $NAME (recipe $HASH); use it with NETLAB_BOX=$NAME"
fi
