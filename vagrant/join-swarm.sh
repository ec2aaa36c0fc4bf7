#!/usr/bin/env bash
# Run on the Vagrant host by the Vagrantfile's trigger: join WORKER to the
# swarm that MANAGER leads, with the worker token read from the manager.
#
#   bash join-swarm.sh MANAGER WORKER MANAGER_IP WORKER_IP
set -euo pipefail
manager="$1" worker="$2" manager_ip="$3" worker_ip="$4"

# The manager may still be provisioning (vagrant-libvirt brings the VMs up in
# parallel): wait for its swarm up to NETLAB_JOIN_TIMEOUT seconds (default 30
# minutes; under plain emulation a VM's provisioning takes many minutes).
wait_s="${NETLAB_JOIN_TIMEOUT:-1800}"
token=""
deadline=$((SECONDS + wait_s))
while ((SECONDS < deadline)); do
    token="$(vagrant ssh "$manager" -c 'sudo docker swarm join-token -q worker' 2>/dev/null | tr -d '\r' || true)"
    [[ "$token" == SWMTKN-* ]] && break
    sleep 10
done
[[ "$token" == SWMTKN-* ]] || { echo "join-swarm: $manager has no swarm after $wait_s s; run 'vagrant provision $manager'" >&2; exit 1; }
vagrant ssh "$worker" -c "sudo docker info --format '{{.Swarm.LocalNodeState}}' | grep -qx active || sudo docker swarm join --advertise-addr $worker_ip --token $token $manager_ip:2377"
