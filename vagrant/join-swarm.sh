#!/usr/bin/env bash
# Run on the Vagrant host by the Vagrantfile's trigger: join WORKER to the
# swarm that MANAGER leads, with the worker token read from the manager.
#
#   bash join-swarm.sh MANAGER WORKER MANAGER_IP WORKER_IP
set -euo pipefail
manager="$1" worker="$2" manager_ip="$3" worker_ip="$4"

token=""
for _ in $(seq 1 60); do   # the manager may still be provisioning (parallel up)
    token="$(vagrant ssh "$manager" -c 'sudo docker swarm join-token -q worker' 2>/dev/null | tr -d '\r' || true)"
    [[ "$token" == SWMTKN-* ]] && break
    sleep 5
done
[[ "$token" == SWMTKN-* ]] || { echo "join-swarm: $manager has no swarm after 5 min; run 'vagrant provision $manager'" >&2; exit 1; }
vagrant ssh "$worker" -c "sudo docker info --format '{{.Swarm.LocalNodeState}}' | grep -qx active || sudo docker swarm join --advertise-addr $worker_ip --token $token $manager_ip:2377"
