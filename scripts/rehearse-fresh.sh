#!/usr/bin/env bash
# Rehearse the README's first command on a fresh Debian 12 machine, as a new
# user would: a minimal Debian 12 (bookworm) root filesystem, the committed
# tree copied in, and `bash scripts/demo.sh` run in it as root (chroot). It
# proves that scripts/setup.sh installs everything the demo needs.
#
#   sudo bash scripts/rehearse-fresh.sh [--command CMD] [--rebuild]
#                                       [--setup-first] [--vm-lock FILE]
#
#   --command CMD  run CMD (in the tree's top directory) instead of
#                  `bash scripts/demo.sh`, e.g. --command 'bash scripts/test.sh'
#   --rebuild      build the base root filesystem again even when it is cached
#   --setup-first  run `bash scripts/setup.sh` in the box before CMD (CMD's own
#                  setup then finds everything installed); with --vm-lock, the
#                  setup runs before the lock is taken
#   --vm-lock FILE take an exclusive flock on FILE (on the host) while CMD runs,
#                  so CMD's VM never runs beside another holder's (CI runs its
#                  integration tests' VM under the same lock)
#
# Only what is committed is rehearsed (`git archive HEAD`): uncommitted changes
# are not. The base (mmdebstrap --variant=minbase plus python3, ca-certificates
# and iproute2, what a fresh minimal box has) is cached as a tarball under
# /var/cache/netlab/rehearse/, keyed by this recipe and the host's apt sources
# and Acquire settings. Each run unpacks it into a scratch directory and
# removes that directory at the end.
#
# From the host, read at run time (never stored in the repository): the apt
# sources for Debian 12 and the Acquire:: settings (so apt in the box uses the
# same mirror), /etc/hosts and /etc/resolv.conf (bind-mounted read-only), the
# extra CA certificates in /usr/local/share/ca-certificates, /etc/pip.conf,
# /etc/xdg/pip, the PIP_* and proxy variables (so pip reaches its index).
#
# Downloads are kept between runs (apt's .deb files and pip's cache, under
# /var/cache/netlab/rehearse/downloads/, bind-mounted into the box): the box
# still installs every package itself, from indexes fetched fresh, and apt
# uses a kept .deb only when its checksum is the one the index names.
#
# The box gets /proc, /sys, /dev and /dev/pts bind-mounted, fresh tmpfs on /run
# and /dev/shm, /run/netns ready for `ip netns add`, and a policy-rc.d that
# keeps packages from starting daemons. Everything runs in a private mount
# namespace; at the end (or on INT/TERM) every process whose root is in the
# box is ended, every mount is undone in reverse order (lazily only as a last
# resort) and the scratch directory is removed. Exits with the command's
# status (1 when the rehearsal itself could not be set up, 2 for bad usage).
#
# The demo boots a VM: where other VMs may run, wrap this in a lock, e.g.
# `flock /tmp/netlab-vm.lock bash scripts/rehearse-fresh.sh`. It takes none
# itself (CI runs alone).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR=/var/cache/netlab/rehearse
SUITE=bookworm
VARIANT=minbase
INCLUDE=python3,ca-certificates,iproute2
RECIPE="netlab-rehearse-1 suite=$SUITE variant=$VARIANT include=$INCLUDE"
BOX_TREE=/root/netlab
COMMAND="bash scripts/demo.sh"
REBUILD=0
SETUP_FIRST=0
VM_LOCK=""

say() { echo "rehearse: $*"; }
die() { echo "rehearse: error: $*" >&2; exit 1; }
usage_error() {
    echo "rehearse: $1 (usage: rehearse-fresh.sh [--command CMD] [--rebuild]" \
         "[--setup-first] [--vm-lock FILE])" >&2
    exit 2
}

while (($#)); do
    case "$1" in
        --command) (($# >= 2)) || usage_error "--command needs a command"
                   COMMAND="$2"; shift 2 ;;
        --command=*) COMMAND="${1#--command=}"; shift ;;
        --rebuild) REBUILD=1; shift ;;
        --setup-first) SETUP_FIRST=1; shift ;;
        --vm-lock) (($# >= 2)) || usage_error "--vm-lock needs a file"
                   VM_LOCK="$2"; shift 2 ;;
        --vm-lock=*) VM_LOCK="${1#--vm-lock=}"; shift ;;
        -h|--help) sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) usage_error "unknown argument: $1" ;;
    esac
done
[[ -n "${COMMAND// }" ]] || usage_error "--command is empty"
[[ "$(id -u)" == 0 ]] || die "run as root: it builds a root filesystem and mounts into it"

# Everything below runs in a private mount namespace: nothing mounted in the
# box propagates to the host, and nothing is left mounted if this shell dies.
if [[ "${NETLAB_REHEARSE_IN_NS:-}" != 1 ]]; then
    command -v unshare >/dev/null || die "unshare (util-linux) is missing"
    NETLAB_REHEARSE_IN_NS=1 exec unshare --mount --propagation private -- \
        "$BASH" "${BASH_SOURCE[0]}" --command "$COMMAND" $( ((REBUILD)) && echo --rebuild) \
        $( ((SETUP_FIRST)) && echo --setup-first) ${VM_LOCK:+--vm-lock "$VM_LOCK"}
fi
unset NETLAB_REHEARSE_IN_NS

now() { date +%s; }
T_START="$(now)"
WORK=""     # scratch directory: the box's root is $WORK/root
ROOT=""
RUN_PID=""

# ---------------------------------------------------------------- cleanup

box_pids() {  # print the pids of processes whose root directory is inside the box
    local proc root
    [[ -n "$ROOT" ]] || return 0
    for proc in /proc/[0-9]*; do
        root="$(readlink "$proc/root" 2>/dev/null)" || continue
        [[ "$root" == "$ROOT" || "$root" == "$ROOT/"* ]] && echo "${proc#/proc/}"
    done
}

end_box_processes() {
    local pids tries
    pids="$(box_pids)"
    [[ -n "$pids" ]] || return 0
    say "ending processes left in the box: $(echo $pids)"
    kill -TERM $pids 2>/dev/null
    for tries in 1 2 3 4 5 6 7 8 9 10; do
        sleep 1
        pids="$(box_pids)"
        [[ -n "$pids" ]] || return 0
    done
    say "killing: $(echo $pids)"
    kill -KILL $pids 2>/dev/null
    sleep 1
}

box_mounts() {  # mount points inside the box, most recent first
    [[ -n "$ROOT" ]] || return 0
    awk -v root="$ROOT" '$5 == root || index($5, root "/") == 1 { print $5 }' \
        /proc/self/mountinfo | tac
}

unmount_box() {
    local mnt tries left
    for tries in 1 2 3; do
        while IFS= read -r mnt; do
            umount "$mnt" 2>/dev/null
        done < <(box_mounts)
        [[ -z "$(box_mounts)" ]] && return 0
        sleep 1
    done
    while IFS= read -r mnt; do
        say "unmounting $mnt lazily (still busy)"
        umount -l "$mnt" 2>/dev/null
    done < <(box_mounts)
    left="$(box_mounts)"
    [[ -z "$left" ]] || { say "still mounted: $(echo $left)"; return 1; }
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n "$RUN_PID" ]]; then
        kill -TERM "$RUN_PID" 2>/dev/null
    fi
    end_box_processes
    [[ -n "$RUN_PID" ]] && wait "$RUN_PID" 2>/dev/null
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        if unmount_box; then
            rm -rf --one-file-system "$WORK" || say "could not remove $WORK"
        else
            say "left $WORK in place: something is still mounted in it"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

# ---------------------------------------------------------------- the base

# The host's apt sources for Debian 12 (one-line .list or deb822 .sources).
host_sources() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        if [[ "$f" == *.sources ]]; then
            grep -Eq "^[[:space:]]*Suites:(.*[[:space:]])?$SUITE([[:space:]]|\$)" "$f" && echo "$f"
        else
            grep -Eq "^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+[[:space:]]+$SUITE([[:space:]]|\$)" "$f" \
                && echo "$f"
        fi
    done
}

# The host's Acquire:: settings that differ from apt's defaults, as apt.conf
# lines (IndexTargets are left out: they describe what installed packages fetch).
host_acquire() {
    local empty conf
    empty="$(mktemp -d)"; conf="$empty.conf"
    printf 'Dir::Etc::parts "%s";\nDir::Etc::main "/dev/null";\n' "$empty" >"$conf"
    comm -13 <(APT_CONFIG="$conf" apt-config dump 2>/dev/null | grep '^Acquire::' | sort) \
             <(apt-config dump 2>/dev/null | grep '^Acquire::' | sort) \
        | grep -v '^Acquire::IndexTargets::'
    rm -rf "$empty" "$conf"
}

ensure_mmdebstrap() {
    command -v mmdebstrap >/dev/null && return 0
    say "installing mmdebstrap on the host"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q --no-install-recommends mmdebstrap; } \
        >"$WORK/apt.log" 2>&1 || { tail -n 20 "$WORK/apt.log" >&2; die "could not install mmdebstrap"; }
}

# Sets BASE to the cached tarball, building it first when needed; BASE_HOW says which.
base_tarball() {
    local sources=() acquire="$WORK/host-acquire.conf" key tmp f
    mapfile -t sources < <(host_sources)
    ((${#sources[@]})) || die "this host has no apt source for Debian 12 ($SUITE) in" \
        "/etc/apt/sources.list{,.d}; the rehearsal uses the host's own mirror"
    host_acquire >"$acquire"
    key="$( { echo "$RECIPE arch=$(dpkg --print-architecture)"
              for f in "${sources[@]}"; do echo "== $f"; cat "$f"; done
              echo "== Acquire"; cat "$acquire"; } | sha256sum | cut -c1-16)"
    BASE="$CACHE_DIR/debian12-$VARIANT-$key.tar.gz"
    if [[ -s "$BASE" ]] && ((!REBUILD)); then
        BASE_HOW="cached"
        return 0
    fi
    ensure_mmdebstrap
    mkdir -p "$CACHE_DIR" && chmod 700 "$CACHE_DIR"
    tmp="$CACHE_DIR/.building-$$.tar.gz"
    say "building the base: mmdebstrap --variant=$VARIANT --include=$INCLUDE $SUITE" \
        "(sources: ${sources[*]})"
    if ! mmdebstrap --quiet --variant="$VARIANT" --include="$INCLUDE" \
            --aptopt="$acquire" \
            --customize-hook='rm -f "$1/etc/resolv.conf" "$1/etc/hostname"' \
            "$SUITE" "$tmp" "${sources[@]}" >"$WORK/mmdebstrap.log" 2>&1; then
        rm -f "$tmp"
        tail -n 30 "$WORK/mmdebstrap.log" >&2
        die "mmdebstrap failed"
    fi
    mv -f "$tmp" "$BASE"
    for f in "$CACHE_DIR"/debian12-"$VARIANT"-*.tar.gz; do  # older recipes or host settings
        [[ "$f" == "$BASE" ]] || rm -f "$f"
    done
    BASE_HOW="built, $(du -m "$BASE" | cut -f1) MB"
}

# ---------------------------------------------------------------- the box

mount_box() {  # mount_box ARGS... TARGET-IN-BOX
    local target="$ROOT${*: -1}"
    mount "${@:1:$#-1}" "$target" || die "mount ${*:1:$#-1} $target failed"
}

bind_file_ro() {  # bind a host file read-only over the same path in the box
    local file="$1"
    [[ -e "$file" ]] || return 0
    rm -f "$ROOT$file"; : >"$ROOT$file"
    mount_box --bind "$file" "$file"
    mount -o remount,bind,ro "$ROOT$file" || die "remount $ROOT$file read-only failed"
}

prepare_box() {
    local name value
    mkdir -p "$ROOT"
    tar -C "$ROOT" --numeric-owner -xzpf "$BASE" || die "unpacking $BASE failed"

    printf '#!/bin/sh\n# rehearse-fresh.sh: no package starts a daemon in the box\nexit 101\n' \
        >"$ROOT/usr/sbin/policy-rc.d"
    chmod 755 "$ROOT/usr/sbin/policy-rc.d"

    mkdir -p "$ROOT$BOX_TREE"
    git -C "$REPO" archive --format=tar HEAD | tar -C "$ROOT$BOX_TREE" -xf - \
        || die "git archive HEAD failed"

    mount_box --bind /proc /proc
    mount_box --bind /sys /sys
    mount_box --bind /dev /dev
    mount_box --bind /dev/pts /dev/pts
    mount_box -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
    mount_box -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
    mkdir -p "$ROOT/run/netns" "$ROOT/run/lock" && chmod 1777 "$ROOT/run/lock"
    mount_box --bind "$ROOT/run/netns" /run/netns   # what `ip netns add` does, done up front
    mount --make-shared "$ROOT/run/netns" || die "making /run/netns shared failed"
    bind_file_ro /etc/hosts
    bind_file_ro /etc/resolv.conf
    mkdir -p "$CACHE_DIR/downloads/apt" "$CACHE_DIR/downloads/pip" "$ROOT/root/.cache/pip"
    mount_box --bind "$CACHE_DIR/downloads/apt" /var/cache/apt/archives
    mount_box --bind "$CACHE_DIR/downloads/pip" /root/.cache/pip

    if compgen -G '/usr/local/share/ca-certificates/*' >/dev/null; then
        cp -a /usr/local/share/ca-certificates/. "$ROOT/usr/local/share/ca-certificates/"
        chroot "$ROOT" update-ca-certificates >/dev/null 2>&1 \
            || die "update-ca-certificates in the box failed"
    fi
    [[ -f /etc/pip.conf ]] && cp /etc/pip.conf "$ROOT/etc/pip.conf"
    [[ -d /etc/xdg/pip ]] && mkdir -p "$ROOT/etc/xdg" && cp -a /etc/xdg/pip "$ROOT/etc/xdg/"

    # The environment the command sees: a login's basics, plus the host's PIP_*
    # and proxy variables. A PIP_* value naming a path the box lacks (a local
    # wheel directory) is left out: a fresh machine has none.
    BOX_ENV=(HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}"
             PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
    [[ -n "${CI:-}" ]] && BOX_ENV+=(CI="$CI")
    while IFS= read -r name; do
        value="${!name}"
        case "$name" in
            PIP_*) if [[ "$value" == /* && ! -e "$ROOT$value" ]] || [[ "$value" == file:* ]]; then
                       say "not passing $name ($value is not in the box)"; continue
                   fi ;;
        esac
        BOX_ENV+=("$name=$value")
    done < <(compgen -e | grep -E '^(PIP_[A-Z_]+|https?_proxy|HTTPS?_PROXY|no_proxy|NO_PROXY)$')
}

# Copy the command's output through, noting when setup finished ("setup: ready").
mark_phases() {
    local line
    while IFS= read -r line; do
        printf '%s\n' "$line"
        if [[ ! -e "$WORK/setup-done" && "$line" == "setup: ready"* ]]; then
            now >"$WORK/setup-done"
        fi
        [[ "$line" == "rehearse: VM lock taken" ]] && now >"$WORK/lock-taken"
    done
}

# ---------------------------------------------------------------- main

WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/netlab-rehearse.XXXXXX")" || die "mktemp failed"
chmod 755 "$WORK"
ROOT="$WORK/root"

HEAD="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)" || die "$REPO is not a git checkout"
say "rehearsing commit $HEAD on a fresh Debian 12 (uncommitted changes are not rehearsed)"
if [[ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    say "note: $REPO has uncommitted changes; they are not in the box"
fi

base_tarball
T_BASE="$(now)"
say "base: $BASE ($BASE_HOW, $((T_BASE - T_START)) s)"
prepare_box
T_READY="$(now)"
say "box ready at $ROOT ($((T_READY - T_BASE)) s); running as root in $BOX_TREE: $COMMAND"

in_box() {  # run a command line in the box, as root, in the tree (never holding the lock fd)
    chroot "$ROOT" /usr/bin/env -i "${BOX_ENV[@]}" /bin/bash -c "cd $BOX_TREE && $1" \
        </dev/null 2>&1 9>&-
}

(
    status=0
    if ((SETUP_FIRST)); then
        echo "rehearse: \$ bash scripts/setup.sh (before \`$COMMAND\`)"
        in_box "bash scripts/setup.sh" || status=$?
    fi
    if [[ $status == 0 && -n "$VM_LOCK" ]]; then
        echo "rehearse: waiting for the VM lock $VM_LOCK"
        exec 9>>"$VM_LOCK" && flock 9 || status=1
        echo "rehearse: VM lock taken"
    fi
    if [[ $status == 0 ]]; then
        in_box "$COMMAND"
        status=$?
    fi
    echo "$status" >"$WORK/status"
    end_box_processes   # a daemon left behind would hold the output pipe open
) | mark_phases &
RUN_PID=$!
wait "$RUN_PID"
RUN_PID=""
T_END="$(now)"

status="$(cat "$WORK/status" 2>/dev/null)"
[[ "$status" =~ ^[0-9]+$ ]] || status=1
if [[ -e "$WORK/setup-done" ]]; then
    T_SETUP="$(cat "$WORK/setup-done")"
    if [[ -e "$WORK/lock-taken" ]]; then
        T_LOCK="$(cat "$WORK/lock-taken")"
        phases="setup $((T_SETUP - T_READY)) s, waiting for the VM lock $((T_LOCK - T_SETUP)) s,"
        phases+=" then the rest $((T_END - T_LOCK)) s"
    else
        phases="setup $((T_SETUP - T_READY)) s, then the rest $((T_END - T_SETUP)) s"
    fi
else
    phases="setup did not finish ($((T_END - T_READY)) s)"
fi
say "timings: base $((T_BASE - T_START)) s ($BASE_HOW), unpack $((T_READY - T_BASE)) s," \
    "$phases; total $((T_END - T_START)) s"
if [[ "$status" == 0 ]]; then
    say "passed: \`$COMMAND\` on a fresh Debian 12 (commit $HEAD)"
else
    say "FAILED: \`$COMMAND\` exited $status on a fresh Debian 12 (commit $HEAD)"
fi
exit "$status"
