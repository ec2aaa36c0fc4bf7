#!/usr/bin/env bash
# Boot the README's Vagrant set-ups for real, under libvirt, and run the
# README's Vagrant lines word for word (read from README.md itself):
#
#   bash scripts/vagrant-run.sh netlab   # as root: one VM: up, seed, curl, trace, destroy
#   bash scripts/vagrant-run.sh swarm    # as root: three VMs, a real Swarm, export/diff/trace, destroy
#
# In order: installs Debian's vagrant, vagrant-libvirt, libvirt-daemon-system
# (and the box's build tools) when missing; starts virtlogd and libvirtd by hand
# when no libvirt daemon answers (there may be no init system), and at the end
# stops only those, by their pids; builds the box (scripts/build-box.sh,
# cached); then, holding the VM lock (NETLAB_VM_LOCK, default
# /tmp/netlab-vm.lock, so no other VM shares the cores), runs the set-up's
# lines from the README's "In Vagrant" block with NETLAB_BOX set to the local
# box (whose libvirt networks are isolated), each timed, and checks what they
# print: round robin, a delivered trace, the seed answering on every VM.
# Last (also on failure or Ctrl-C) `vagrant destroy -f`, then a check with
# virsh that no domain, volume, network or dnsmasq of the run is left; the
# box's base volume and a storage pool the run created are removed too.
#
# Exit: 0 all passed, 1 a step failed, 2 bad usage, 3 a missing tool or feature.
set -uo pipefail
# The whole script is one { ... } group, so bash reads all of it before running any:
# a checkout that changes during a run (a pull, an edit) cannot change the run.
{

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BOX_NAME="netlab-local/bookworm64"
LOCK="${NETLAB_VM_LOCK:-/tmp/netlab-vm.lock}"
VIRSH=(virsh -q -c qemu:///system)

usage() { echo "vagrant-run: $1 (usage: vagrant-run.sh netlab|swarm)" >&2; exit 2; }
say() { echo "vagrant-run: $*"; }
missing() { echo "vagrant-run: $*" >&2; exit 3; }

(($# == 1)) || usage "one set-up expected"
SETUP="$1"
case "$SETUP" in netlab|swarm) ;; -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage "unknown set-up: $SETUP" ;; esac
[[ "$(id -u)" == 0 ]] || missing "run as root (libvirt's system daemon and the box build need it)"
export PATH="$PATH:/usr/sbin:/sbin"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
STEPS=()
step_done() { STEPS+=("$(printf '%7s s  %s' "$(since "$2")" "$1")"); }
T0="$(now)"

# --- packages -----------------------------------------------------------------
installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }
need=()
for pkg in vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients dnsmasq-base qemu-system-x86 \
           qemu-utils mmdebstrap e2fsprogs fdisk rsync; do
    installed "$pkg" || need+=("$pkg")
done
if ((${#need[@]})); then
    command -v apt-get >/dev/null || missing "apt-get not found; install by hand: ${need[*]}"
    say "installing ${need[*]}"
    start="$(now)"
    log="$(mktemp)"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"; } \
           >"$log" 2>&1; then
        tail -n 20 "$log" >&2; rm -f "$log"; missing "installing ${need[*]} failed; install them by hand"
    fi
    rm -f "$log"
    step_done "apt-get install ${need[*]}" "$start"
fi

# --- libvirt daemons ------------------------------------------------------------
STARTED_PIDS=()
LIBVIRT_LOG=/var/log/netlab-vagrant-run
# A network that libvirt would start by itself with forwarding (NAT) would change
# this machine's root network namespace: refuse rather than start it.
for f in /etc/libvirt/qemu/networks/autostart/*.xml; do
    [[ -e "$f" ]] || continue
    if grep -q '<forward' "$f"; then
        missing "libvirt would autostart the forwarding network $(basename "$f" .xml): disable it first" \
                "('virsh net-autostart $(basename "$f" .xml) --disable', or remove $f)"
    fi
done
# libvirt's isolated networks add top-level chains (LIBVIRT_INP, _OUT, _FWI, _FWO,
# _FWX, _PRT) to this machine's iptables and leave them, empty, when the networks
# go: a libvirtd started here had none before, so they are removed at the end.
LIBVIRT_CHAINS_BEFORE=""
libvirt_chains() { iptables-save 2>/dev/null | grep -E '^:LIBVIRT_|-j LIBVIRT_' | sort; }
remove_libvirt_chains() {
    local table chain parent
    for table in filter nat mangle; do
        for chain in $(iptables -t "$table" -S 2>/dev/null | awk '/^-N LIBVIRT_/ {print $2}'); do
            # Only an empty chain (its own -N line alone): a rule in it is libvirt's still in use.
            [[ "$(iptables -t "$table" -S "$chain" | wc -l)" == 1 ]] || continue
            for parent in INPUT OUTPUT FORWARD POSTROUTING; do
                while iptables -t "$table" -D "$parent" -j "$chain" 2>/dev/null; do :; done
            done
            iptables -t "$table" -X "$chain" 2>/dev/null
        done
    done
    [[ -z "$(libvirt_chains)" ]] && say "libvirt's emptied iptables chains removed (none were there before;" \
        "the empty tables iptables-nft made for them stay: iptables cannot delete a table)"
}
if "${VIRSH[@]}" version >/dev/null 2>&1; then
    say "a libvirt daemon already answers at qemu:///system; using it"
else
    LIBVIRT_CHAINS_BEFORE="$(libvirt_chains)"
    mkdir -p "$LIBVIRT_LOG"
    if ! pgrep -x virtlogd >/dev/null; then
        /usr/sbin/virtlogd >"$LIBVIRT_LOG/virtlogd.log" 2>&1 &
        STARTED_PIDS+=($!)
        say "started virtlogd (pid $!)"
    fi
    /usr/sbin/libvirtd >"$LIBVIRT_LOG/libvirtd.log" 2>&1 &
    STARTED_PIDS+=($!)
    say "started libvirtd (pid $!)"
    for _ in $(seq 1 60); do "${VIRSH[@]}" version >/dev/null 2>&1 && break; sleep 0.5; done
    "${VIRSH[@]}" version >/dev/null 2>&1 || { tail -n 20 "$LIBVIRT_LOG/libvirtd.log" >&2; 
        for pid in "${STARTED_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
        missing "libvirtd did not answer (log above, $LIBVIRT_LOG/libvirtd.log)"; }
fi
"${VIRSH[@]}" domcapabilities --virttype qemu >/dev/null 2>&1 \
    || missing "libvirt offers no qemu domain type here (is qemu-system-x86 installed?)"

POOL_EXISTED=0; "${VIRSH[@]}" pool-info default >/dev/null 2>&1 && POOL_EXISTED=1
NETS_BEFORE="$("${VIRSH[@]}" net-list --all --name | sort)"
VOLS_BEFORE="$("${VIRSH[@]}" vol-list default 2>/dev/null | awk '{print $1}' | sort)"

LOCK_FD=""
cleanup_done=0
cleanup() {
    ((cleanup_done)) && return; cleanup_done=1
    local start; start="$(now)"
    if [[ -d "$REPO/vagrant/.vagrant" ]]; then
        say "\$ vagrant destroy -f   (cleanup)"
        (cd "$REPO/vagrant" && vagrant destroy -f >/dev/null 2>&1)
    fi
    # What the run created and vagrant may leave: the box's base volume, the pool,
    # the isolated networks (vagrant-libvirt removes them with the last domain).
    local vol net
    while read -r vol; do
        [[ -n "$vol" ]] && ! grep -qxF "$vol" <<<"$VOLS_BEFORE" \
            && "${VIRSH[@]}" vol-delete --pool default "$vol" >/dev/null 2>&1
    done < <("${VIRSH[@]}" vol-list default 2>/dev/null | awk '{print $1}')
    while read -r net; do
        [[ -n "$net" ]] && ! grep -qxF "$net" <<<"$NETS_BEFORE" && {
            "${VIRSH[@]}" net-destroy "$net" >/dev/null 2>&1; "${VIRSH[@]}" net-undefine "$net" >/dev/null 2>&1; }
    done < <("${VIRSH[@]}" net-list --all --name)
    if ((!POOL_EXISTED)) && "${VIRSH[@]}" pool-info default >/dev/null 2>&1; then
        "${VIRSH[@]}" pool-destroy default >/dev/null 2>&1; "${VIRSH[@]}" pool-undefine default >/dev/null 2>&1
    fi
    rm -rf "$REPO/vagrant/.vagrant"
    # The check: nothing of the run is left.
    local left=()
    [[ -z "$("${VIRSH[@]}" list --all --name)" ]] || left+=("domains: $("${VIRSH[@]}" list --all --name | xargs)")
    [[ "$("${VIRSH[@]}" net-list --all --name | sort)" == "$NETS_BEFORE" ]] \
        || left+=("networks: $("${VIRSH[@]}" net-list --all --name | xargs)")
    if "${VIRSH[@]}" pool-info default >/dev/null 2>&1; then
        [[ "$("${VIRSH[@]}" vol-list default | awk '{print $1}' | sort)" == "$VOLS_BEFORE" ]] \
            || left+=("volumes: $("${VIRSH[@]}" vol-list default | awk '{print $1}' | xargs)")
    fi
    pgrep -f 'dnsmasq.*libvirt/dnsmasq/netlab-' >/dev/null && left+=("dnsmasq: $(pgrep -f 'dnsmasq.*libvirt/dnsmasq/netlab-' | xargs)")
    pgrep -f 'qemu-system-x86_64.*-name guest=vagrant' >/dev/null && left+=("qemu: $(pgrep -f 'qemu-system-x86_64.*-name guest=vagrant' | xargs)")
    if ((${#left[@]})); then
        say "LEFT BEHIND: ${left[*]}"; LEFTOVERS=1
    else
        say "virsh: no domain, network, volume, dnsmasq or qemu of this run is left"
    fi
    [[ -n "$LOCK_FD" ]] && { exec {LOCK_FD}>&-; LOCK_FD=""; }
    step_done "cleanup and leftover check (virsh)" "$start"
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null && say "stopped pid $pid"
    done
    for pid in "${STARTED_PIDS[@]}"; do
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid" 2>/dev/null; say "killed pid $pid"; }
        wait "$pid" 2>/dev/null
    done
    if ((${#STARTED_PIDS[@]})) && [[ -z "$LIBVIRT_CHAINS_BEFORE" ]]; then remove_libvirt_chains; fi
}
LEFTOVERS=0
trap 'cleanup' EXIT
trap 'say "interrupted"; exit 130' INT TERM

# --- the box ------------------------------------------------------------------------
start="$(now)"
bash "$REPO/scripts/build-box.sh" --name "$BOX_NAME"
rc=$?
((rc == 0)) || { say "scripts/build-box.sh failed (exit $rc)"; exit "$rc"; }
step_done "box (scripts/build-box.sh)" "$start"

# --- the README's lines --------------------------------------------------------------
# The fenced block after "## In Vagrant"; a blank line separates the netlab part
# (first) from the swarm part.
readme_block() {
    awk '/^## In Vagrant/ { s = 1; next } s && /^```/ { if (in_) exit; in_ = 1; next } in_ { print }' \
        "$REPO/README.md"
}
mapfile -t ALL_LINES < <(readme_block)
((${#ALL_LINES[@]})) || { echo "vagrant-run: no code block under '## In Vagrant' in README.md" >&2; exit 1; }
LINES=(); part=netlab
for line in "${ALL_LINES[@]}"; do
    [[ -z "${line// /}" ]] && { part=swarm; continue; }
    [[ "$part" == "$SETUP" || "$line" == "cd vagrant" ]] && LINES+=("$line")
done

export NETLAB_BOX="$BOX_NAME" VAGRANT_DEFAULT_PROVIDER=libvirt
export NETLAB_SERIAL_LOG_DIR=/var/log/libvirt/qemu   # each guest's console, for when a boot fails
say "NETLAB_BOX=$NETLAB_BOX VAGRANT_DEFAULT_PROVIDER=libvirt; ${#LINES[@]} README lines of the $SETUP set-up"

# What a line must print, beyond its exit status 0.
check_output() {  # check_output LINE OUTFILE
    local line="$1" out="$2"
    case "$line" in
        *"netlab curl "*)
            local tasks; tasks="$(grep -oE 'hello-a\.[0-9]+' "$out" | sort -u | wc -l)"
            ((tasks >= 2)) || { say "check: expected replies from 2 tasks (round robin), saw $tasks"; return 1; } ;;
        *"swarm-worker1"*"netlab trace"*)   # node2 runs no task: each answer crossed to another VM
            grep -qi 'delivered' "$out" || { say "check: the trace did not say delivered"; return 1; }
            grep -qE 'on node[13] answered' "$out" \
                || { say "check: the worker's trace reached no task on another VM"; return 1; } ;;
        *"netlab trace"*)
            grep -qi 'delivered' "$out" || { say "check: the trace did not say delivered"; return 1; } ;;
        *"swarm diff"*)
            grep -q ' 0 difference(s)' "$out" || { say "check: the diff found differences"; return 1; } ;;
        *"curl -s "*)
            grep -q 'hello-a' "$out" || { say "check: the seed did not answer"; return 1; } ;;
        *"swarm export"*)
            local nodes; nodes="$(grep -cE '^  [a-z0-9-]+: \{role: (manager|worker)\}' "$out")"
            ((nodes >= 3)) || { say "check: expected 3 nodes in the export, saw $nodes"; return 1; } ;;
        *"docker node ls"*)
            local ready; ready="$(grep -c 'Ready' "$out")"
            ((ready >= 3)) || { say "check: expected 3 nodes Ready, saw $ready"; return 1; } ;;
    esac
    return 0
}

OUT="$(mktemp -d)"
failed=0
dir="$REPO"
i=0
for line in "${LINES[@]}"; do
    i=$((i + 1))
    if [[ "$line" == vagrant\ up* && -z "$LOCK_FD" ]]; then
        start="$(now)"
        exec {LOCK_FD}>>"$LOCK"
        say "waiting for the VM lock $LOCK"
        flock "$LOCK_FD"
        step_done "waiting for the VM lock" "$start"
    fi
    echo "\$ $line"
    start="$(now)"
    if [[ "$line" == "cd "* ]]; then
        dir="$(cd "$dir" && eval "$line" && pwd)" || { failed=1; break; }
        continue
    fi
    # vagrant's upload progress ("Progress: N%" with carriage returns) is left out;
    # vagrant's own headlines ("==> ...") get the seconds since the line started.
    (cd "$dir" && bash -c "$line") 2>&1 | stdbuf -oL tr '\r' '\n' | grep --line-buffered -v 'Progress: [0-9]*%' \
        | awk -v t0="$start" '/^==> / { "date +%s.%N" | getline t; close("date +%s.%N"); printf "[+%5.0f s] ", t - t0 }
                              { print; fflush() }' | tee "$OUT/$i"
    rc=${PIPESTATUS[0]}
    step_done "$line" "$start"
    # A failed `vagrant up` ends the run; after any other failed line the next lines
    # still run, so one run shows all that fails.
    if ((rc != 0)); then
        say "FAILED (exit $rc): $line"; failed=1
        [[ "$line" == vagrant\ up* ]] && break
        continue
    fi
    check_output "$line" "$OUT/$i" || { say "FAILED: $line"; failed=1; }
done
rm -rf "$OUT"

cleanup
say "steps of the $SETUP set-up ($(date -u +%FT%TZ), $(nproc) cores, $(grep -qE 'vmx|svm' /proc/cpuinfo && echo 'KVM possible' || echo 'no KVM: plain emulation')):"
printf '  %s\n' "${STEPS[@]}"
say "total $(since "$T0") s"
if ((failed || LEFTOVERS)); then say "$SETUP set-up FAILED"; exit 1; fi
say "$SETUP set-up passed"
exit 0
}
