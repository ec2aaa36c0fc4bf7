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

from netlab.errors import BadInput
from netlab.model import Lab

IPv4 = ipaddress.IPv4Address

FWMARK_BASE = 0x100
LAN_NODE_OFFSET = 11
LAN_CLIENT_OFFSET = 2


class AddressSpaceExhausted(BadInput, ValueError):
    """A subnet is too small for what the scenario asks of it (exit 2).

    The scenario checks size every subnet as this module takes from it, so a
    validated lab never raises this.
    """


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


def host(subnet: ipaddress.IPv4Network, n: int, what: str) -> IPv4:
    """Host ``n`` of ``subnet`` (1 is the address after the network address), by arithmetic.

    The same as ``list(subnet.hosts())[n - 1]`` for a /30 or larger, without
    listing 2^29 addresses for a /3. Raises AddressSpaceExhausted naming
    ``what`` when ``n`` is past the last host (the broadcast address is not one).
    """
    if not 1 <= n <= subnet.num_addresses - 2:
        raise AddressSpaceExhausted(f"{subnet} has no address left for {what} "
                                    "(hint: use a larger subnet)")
    return subnet.network_address + n


def allocate(lab: Lab) -> Addressing:
    """Allocate every address of ``lab``; raises AddressSpaceExhausted.

    Costs what is allocated, whatever the size of the subnets.
    """
    ingress, lan, gwbridge = lab.ingress.subnet, lab.underlay.lan, lab.underlay.gwbridge
    ingress_taken = 1  # .1 is the gateway
    gw_taken = {node.name: 2 for node in lab.nodes}  # .1 docker_gwbridge, .2 the ingress sandbox

    def next_ingress(what: str) -> IPv4:
        nonlocal ingress_taken
        ingress_taken += 1
        return host(ingress, ingress_taken, what)

    def next_gw(node: str, what: str) -> IPv4:
        gw_taken[node] += 1
        return host(gwbridge, gw_taken[node], what)

    if lan.num_addresses - 2 < LAN_NODE_OFFSET - 1 + len(lab.nodes):
        raise AddressSpaceExhausted(f"{lan} is too small for {len(lab.nodes)} nodes "
                                    "(hint: use a larger subnet)")
    nodes: dict[str, NodeAddresses] = {}
    for i, node in enumerate(lab.nodes):
        nodes[node.name] = NodeAddresses(
            lan_ip=host(lan, LAN_NODE_OFFSET + i, f"node {node.name}"),
            sandbox_ip=next_ingress(f"the ingress sandbox of {node.name}"),
            gateway_ip=host(gwbridge, 1, "docker_gwbridge"),
            sandbox_gw_ip=host(gwbridge, 2, f"the ingress sandbox of {node.name}"),
        )
    services: dict[str, ServiceAddresses] = {}
    tasks: dict[str, TaskAddresses] = {}
    mark = FWMARK_BASE
    for service in lab.services:
        if service.ingress_ports:
            services[service.name] = ServiceAddresses(
                vip=next_ingress(f"the VIP of {service.name}"), fwmark=mark)
            mark += 1
        for task in lab.tasks_of(service.name):
            tasks[task.name] = TaskAddresses(
                ingress_ip=next_ingress(f"task {task.name}"),
                gw_ip=next_gw(task.node, f"task {task.name}"),
            )
    return Addressing(
        client_ip=host(lan, LAN_CLIENT_OFFSET, "the client"),
        nodes=nodes, services=services, tasks=tasks,
    )
