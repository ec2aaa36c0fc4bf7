"""Deterministic address allocation, as Swarm's IPAM would hand them out.

Ingress network (global scope): ``.1`` is the gateway on ``br0``; then one
ingress-sandbox (LB) address per node, in node order, as nodes join; then per
service its VIP followed by its tasks' addresses. docker_gwbridge (local scope,
per node): ``.1`` the host bridge, ``.2`` the ingress sandbox's ``eth1``, then
the node's tasks in order. LAN: node *i* gets ``.11+i``; the client ``.2``.
MACs are ``02:42:`` followed by the four IP bytes, as libnetwork's
``GenerateMACFromIP``. Firewall marks start at 0x100, one per service with an
ingress port; VNIs come from the ingress network (4096 by default).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from netlab.model import Lab

IPv4 = ipaddress.IPv4Address

FWMARK_BASE = 0x100
LAN_NODE_OFFSET = 11
LAN_CLIENT_OFFSET = 2


class AddressSpaceExhausted(ValueError):
    """A subnet is too small for what the scenario asks of it."""


def mac_for(ip: IPv4) -> str:
    """libnetwork's ``GenerateMACFromIP``: ``02:42:`` + the address bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)


@dataclass(frozen=True)
class NodeAddresses:
    """What one node is given: its LAN address and its ingress sandbox's."""

    lan_ip: IPv4
    sandbox_ip: IPv4          # ingress_sbox eth0 on the ingress overlay
    gateway_ip: IPv4          # docker_gwbridge on the node (172.18.0.1)
    sandbox_gw_ip: IPv4       # ingress_sbox eth1 (172.18.0.2)


@dataclass(frozen=True)
class TaskAddresses:
    ingress_ip: IPv4          # eth0 on the ingress overlay
    gw_ip: IPv4               # eth1 on the node's docker_gwbridge


@dataclass(frozen=True)
class ServiceAddresses:
    vip: IPv4
    fwmark: int


@dataclass(frozen=True)
class Addressing:
    """Every address, MAC and mark of a lab, keyed by node, service and task name."""

    client_ip: IPv4
    nodes: dict[str, NodeAddresses]
    services: dict[str, ServiceAddresses]
    tasks: dict[str, TaskAddresses]


def _take(pool: list[IPv4], what: str, subnet: ipaddress.IPv4Network) -> IPv4:
    if not pool:
        raise AddressSpaceExhausted(f"{subnet} has no address left for {what}")
    return pool.pop(0)


def allocate(lab: Lab) -> Addressing:
    """Allocate every address of ``lab``; raises AddressSpaceExhausted."""
    ingress = lab.ingress.subnet
    pool = list(ingress.hosts())[1:]  # .1 is the gateway
    nodes: dict[str, NodeAddresses] = {}
    lan_hosts = list(lab.underlay.lan.hosts())
    gw_hosts = list(lab.underlay.gwbridge.hosts())
    if len(lan_hosts) < LAN_NODE_OFFSET + len(lab.nodes):
        raise AddressSpaceExhausted(f"{lab.underlay.lan} is too small for {len(lab.nodes)} nodes")
    gw_pools: dict[str, list[IPv4]] = {}
    for i, node in enumerate(lab.nodes):
        gw_pools[node.name] = list(gw_hosts[2:])
        nodes[node.name] = NodeAddresses(
            lan_ip=lan_hosts[LAN_NODE_OFFSET - 1 + i],
            sandbox_ip=_take(pool, f"the ingress sandbox of {node.name}", ingress),
            gateway_ip=gw_hosts[0],
            sandbox_gw_ip=gw_hosts[1],
        )
    services: dict[str, ServiceAddresses] = {}
    tasks: dict[str, TaskAddresses] = {}
    mark = FWMARK_BASE
    for service in lab.services:
        if service.ingress_ports:
            services[service.name] = ServiceAddresses(
                vip=_take(pool, f"the VIP of {service.name}", ingress), fwmark=mark)
            mark += 1
        for task in lab.tasks_of(service.name):
            tasks[task.name] = TaskAddresses(
                ingress_ip=_take(pool, f"task {task.name}", ingress),
                gw_ip=_take(gw_pools[task.node], f"task {task.name}", lab.underlay.gwbridge),
            )
    return Addressing(
        client_ip=lan_hosts[LAN_CLIENT_OFFSET - 1],
        nodes=nodes, services=services, tasks=tasks,
    )
