#!/usr/bin/env bash
# Provision a Vagrant VM for netlab (run by the Vagrantfile, as root, in the VM).
#
#   provision.sh netlab                 netlab, natively: scripts/setup.sh, the
#                                       kernel modules a lab needs, `netlab` on PATH
#   provision.sh swarm-manager IP       the same, Docker, `docker swarm init`
#   provision.sh swarm-worker IP        the same, Docker (the host's trigger joins it)
#   provision.sh seed-service           on the manager: the seed service hello-a
#
# Idempotent: running it again changes nothing that is already right.
# NETLAB_REHEARSAL=1 (the fresh-machine rehearsal, a chroot) skips what only a
# booted VM can do: loading modules and starting dockerd.
set -euo pipefail

REPO="${NETLAB_REPO:-/vagrant}"
say() { echo "provision: $*"; }
die() { echo "provision: error: $*" >&2; exit 1; }
[[ "$(id -u)" == 0 ]] || die "run as root"
[[ -f "$REPO/scripts/setup.sh" ]] || die "$REPO holds no netlab checkout (is the synced folder there?)"

# What a lab needs from the VM's own kernel, loaded now and at every boot
# (dockerd loads the same ones on a Swarm node; netlab itself never loads a module).
MODULES=(br_netfilter ip_vs ip_vs_rr xt_ipvs vxlan veth bridge nf_tables nft_compat
         nf_conntrack xt_conntrack xt_state xt_mark xt_addrtype iptable_nat iptable_mangle
         iptable_filter)

netlab_node() {
    bash "$REPO/scripts/setup.sh"
    ln -sfn "$REPO/.venv/bin/netlab" /usr/local/bin/netlab
    mkdir -p /etc/modules-load.d
    printf '%s\n' "# netlab: modules a lab needs (vagrant/provision.sh)" "${MODULES[@]}" \
        > /etc/modules-load.d/netlab.conf
    if [[ "${NETLAB_REHEARSAL:-0}" == 1 ]]; then
        say "rehearsal: modules not loaded (a chroot shares the host's kernel)"
    else
        for m in "${MODULES[@]}"; do modprobe "$m" || die "modprobe $m failed: this kernel lacks it"; done
    fi
    say "netlab $(/usr/local/bin/netlab --version 2>/dev/null | awk '{print $NF}') at /usr/local/bin/netlab"
}

# docker.io and apparmor: Debian's kernel has AppArmor on, and then dockerd loads its
# docker-default profile with apparmor_parser for every container; without it (apparmor
# is only a Recommends of docker.io) every task fails to start ("AppArmor enabled on
# system but the docker-default profile could not be loaded"), as the first real boot of
# the swarm VMs found.
DOCKER_PACKAGES=(docker.io apparmor)

docker_node() {
    local pkg missing=()
    for pkg in "${DOCKER_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        say "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if [[ "${NETLAB_REHEARSAL:-0}" == 1 ]]; then
        say "rehearsal: dockerd not started"; return
    fi
    systemctl enable --now docker >/dev/null
    docker image inspect netlab/task:latest >/dev/null 2>&1 || bash "$REPO/scripts/task-image.sh"
}

# The manager's Engine also listens on tcp://IP:2375 of the private network, so a
# worker's `netlab swarm diff` and `trace --docker` can read the Swarm's services and
# tasks there (--manager tcp://192.168.59.11:2375): a worker's Engine has none. No TLS:
# the network is the set-up's own (isolated with a netlab-local box); a lab, not production.
manager_api() {
    local ip="$1" dropin=/etc/systemd/system/docker.service.d/netlab-manager-api.conf exec
    exec="$(sed -n 's/^ExecStart=//p' /lib/systemd/system/docker.service | head -n 1)"
    [[ -n "$exec" ]] || die "no ExecStart in /lib/systemd/system/docker.service"
    mkdir -p "$(dirname "$dropin")"
    printf '[Service]\nExecStart=\nExecStart=%s -H tcp://%s:2375\n' "$exec" "$ip" >"$dropin.new"
    if ! cmp -s "$dropin.new" "$dropin"; then
        mv "$dropin.new" "$dropin"
        systemctl daemon-reload
        systemctl restart docker
        say "dockerd also listens on tcp://$ip:2375 (for the workers' --manager)"
    else
        rm -f "$dropin.new"
    fi
}

case "${1:-}" in
    netlab)
        netlab_node ;;
    swarm-manager)
        ip="${2:?swarm-manager needs its IP}"
        netlab_node; docker_node
        [[ "${NETLAB_REHEARSAL:-0}" == 1 ]] && exit 0
        manager_api "$ip"
        if [[ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]]; then
            docker swarm init --advertise-addr "$ip" >/dev/null
            say "swarm initialised at $ip"
        fi ;;
    swarm-worker)
        netlab_node; docker_node ;;
    seed-service)
        # Wait for the three nodes, then create the seed as the scenario says and
        # wait for its two tasks to run, so the next command finds it answering.
        # Both waits last up to NETLAB_SEED_TIMEOUT s (default 30 minutes: under
        # plain emulation the workers join late and a task starts slowly).
        deadline=$((SECONDS + ${NETLAB_SEED_TIMEOUT:-1800})); ready=0
        while ((SECONDS < deadline)); do
            ready="$(docker node ls --format '{{.Status}}' | grep -c '^Ready$' || true)"
            ((ready >= 3)) && break
            sleep 5
        done
        ((ready >= 3)) || die "only $ready of 3 swarm nodes are Ready"
        if ! docker service inspect hello-a >/dev/null 2>&1; then
            docker service create --detach --no-resolve-image --name hello-a --replicas 2 -p 5000:3000 \
                --hostname '{{.Task.Name}}' --env NODE='{{.Node.Hostname}}' netlab/task:latest >/dev/null
            say "service hello-a created (2 replicas, -p 5000:3000)"
        fi
        while ((SECONDS < deadline)); do
            [[ "$(docker service ls --filter name=hello-a --format '{{.Replicas}}')" == 2/2 ]] && break
            sleep 5
        done
        docker service ps hello-a --format '{{.Name}} {{.Node}} {{.CurrentState}}'
        [[ "$(docker service ls --filter name=hello-a --format '{{.Replicas}}')" == 2/2 ]] \
            || die "hello-a's tasks are not running" ;;
    *)
        die "usage: provision.sh netlab | swarm-manager IP | swarm-worker IP | seed-service" ;;
esac
