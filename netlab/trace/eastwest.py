"""East-west traces: from a task to a service by name (``api:80``) or VIP (``10.0.1.5:80``).

As Docker 20.10 routes it (reference §1.3, §1.6): the name resolves to the
service's VIP on a user network the task shares (``vip`` mode) or to its
tasks' addresses (``dnsrr``); the task sends on its interface on that
network; its node's ``lb-<net>`` sandbox owns the VIP, marks the packet in
``mangle INPUT``, IPVS picks a task and ``nat POSTROUTING`` SNATs it to the
sandbox's LB endpoint address; the chosen task is reached over ``br0``, or
over ``vxlan0`` with the network's VNI when it runs on another node.

This module knows what the scenario says about such a request (the
resolution, the network, the namespaces to capture in); the packets are
followed by the same correlator as an ingress request.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from netlab.client import parse_east_west
from netlab.errors import BadInput
from netlab.kernel.reader import KernelReader
from netlab.model import Lab
from netlab.plan.types import Plan
from netlab.state import LabState
from netlab.trace.model import Hop, Trace
from netlab.trace.points import TracePath, points_of


@dataclass(frozen=True)
class Resolution:
    """What the sending task's name lookup answers, and where the answer comes from."""

    name: str | None            # "api", or None when the target is an address
    addresses: tuple[str, ...]  # the answer, in order
    kind: str                   # "vip" | "dnsrr" | "tasks" | "address"
    network: str
    service: str | None


@dataclass(frozen=True)
class EastWest:
    """A parsed east-west target: the address the request goes to, and why."""

    ip: str
    port: int
    resolution: Resolution
    sender_ip: str              # the task's address on the network


def _owner(state: LabState, ip: str) -> tuple[str, str | None, str]:
    """(network, service, kind) of an address on a user network: a VIP or a task's."""
    for net, na in state.allocations.networks.items():
        for service, sa in na.vips.items():
            if str(sa.vip) == ip:
                return net, service, "vip"
        for task, tip in na.tasks.items():
            if str(tip) == ip:
                return net, task.partition(".")[0], "dnsrr"
    raise BadInput(f"SERVICE:PORT: {ip} is no VIP or task address of a user network of "
                   f"lab {state.lab} (hint: netlab status {state.lab} lists them)")


def parse(state: LabState, sender: str, text: str, reader: KernelReader) -> EastWest:
    """``api:80`` or ``VIP:80`` from task ``sender``; raises BadInput naming the problem."""
    ips, port = parse_east_west(state, sender, text, reader)
    name = text.rpartition(":")[0]
    try:
        ipaddress.IPv4Address(name)
        name_or_none = None
    except ValueError:
        name_or_none = name.lower()
    ip = ips[0]
    net, service, kind = _owner(state, ip)
    if name_or_none and name_or_none.startswith("tasks."):
        kind = "tasks"
    elif name_or_none is None:
        kind = "address"
    sender_ip = state.allocations.networks[net].tasks.get(sender)
    if sender_ip is None:
        raise BadInput(f"--from: {sender} is not on network {net}, where {ip} is "
                       f"(hint: a task of a service attached to {net})")
    return EastWest(ip, port, Resolution(name_or_none, ips, kind, net, service), str(sender_ip))


def path(lab: Lab, plan: Plan, sender: str, ew: EastWest) -> TracePath:
    """Where an east-west request can go: the sender and its node's overlay and LB
    sandbox on the network, the LAN, and every task of the service with its node's
    host (VXLAN's underlay) and overlay namespaces."""
    net = ew.resolution.network
    node = next(t.node for t in lab.tasks if t.name == sender)
    targets = [sender, node, f"{node}/ov-{net}", f"{node}/lb-{net}", "lan"]
    service = lab.service(ew.resolution.service) if ew.resolution.service else None
    for task in lab.tasks_of(service.name) if service else ():
        targets += [task.node, f"{task.node}/ov-{net}", task.name]
    by_target = {ns.target: ns.name for ns in plan.netns}
    names = list(dict.fromkeys(by_target[t] for t in targets if t in by_target))
    return TracePath(service, None, tuple(names), points_of(plan, names))


def resolve_hop(ew: EastWest, sender: str, node: str, src: str) -> Hop:
    """The first hop: the name's answer, with where it comes from."""
    r = ew.resolution
    answer = ", ".join(r.addresses)
    if r.kind == "address":
        detail = f"{ew.ip} is an address: no name to resolve ({r.service}'s VIP on {r.network})" \
            if r.service else f"{ew.ip} is an address: no name to resolve"
    elif r.kind == "vip":
        detail = f"{r.name} → {answer} (the VIP of {r.service} on {r.network}, endpoint_mode vip)"
    else:
        detail = (f"{r.name} → {answer} ({r.service}'s task addresses on {r.network}, "
                  f"{'tasks.<svc>' if r.kind == 'tasks' else 'endpoint_mode dnsrr'}); "
                  f"the request goes to the first, {ew.ip}")
    if r.kind != "address":
        detail += (f"; answered by the embedded DNS to an A query {sender} sent to "
                   "127.0.0.11:53 (DNAT'ed by its DOCKER_OUTPUT chain to the lab's DNS server)")
    return Hop(0, node, sender, None, None, src, f"{ew.ip}:{ew.port}", "dns",
               "resolve", detail, None, ("dns",) if r.kind != "address" else ("records",))


def with_resolution(trace: Trace, hop: Hop) -> Trace:
    """``trace`` with ``hop`` first and every hop renumbered."""
    hops = (hop, *trace.hops)
    return replace(trace, hops=tuple(replace(h, seq=i) for i, h in enumerate(hops, 1)))
