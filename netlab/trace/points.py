"""Where a trace looks: the namespaces a request can cross and their capture points.

The path of a request to ``NODE:PORT`` is known before it is sent, up to the
one choice IPVS makes: the sender, the LAN, the node's host namespace, its
ingress_sbox and overlay namespace, and for every task of the service its
node's host and overlay namespaces and the task itself. A port published in
host mode by a task on that node takes no such detour: the sender, the LAN,
the node's host namespace (the bridge driver's DNAT) and the task. Every interface of
those namespaces is a capture point except bridges (a bridge device does not
see the unicast it forwards between its ports; its ports do).
"""

from __future__ import annotations

from dataclasses import dataclass

from netlab.model import Lab, PublishedPort, Service, Task
from netlab.plan.types import Plan


@dataclass(frozen=True)
class CapturePoint:
    """One interface in one namespace, named as users read it: ``node2/ingress_sbox/eth1``."""

    netns: str        # kernel name, nl-<lab>-...
    target: str       # node2/ingress_sbox, hello-a.1, client, lan
    node: str         # the node it belongs to ("client" and "lan" for those)
    role: str         # host, sandbox, overlay, task, client, lan
    iface: str

    @property
    def label(self) -> str:
        return f"{self.target}/{self.iface}"


@dataclass(frozen=True)
class TracePath:
    """The namespaces and capture points of one trace, and what the scenario says of the port."""

    service: Service | None
    port: PublishedPort | None
    namespaces: tuple[str, ...]       # kernel names, in a stable order
    points: tuple[CapturePoint, ...]


def publisher(lab: Lab, port: int, proto: str) -> tuple[Service, PublishedPort] | None:
    """The service that publishes ``proto/port`` in ingress mode, if any."""
    for svc in lab.services:
        for p in svc.ports:
            if p.published == port and p.protocol == proto and p.mode == "ingress":
                return svc, p
    return None


def host_publisher(lab: Lab, node: str, port: int,
                   proto: str) -> tuple[Service, PublishedPort, Task] | None:
    """The task on ``node`` that publishes ``proto/port`` in host mode, if any.

    Swarm's HostPortFilter keeps it to one task per node and port.
    """
    for task in lab.tasks_on(node):
        for p in lab.service(task.service).host_ports:
            if p.published == port and p.protocol == proto:
                return lab.service(task.service), p, task
    return None


def host_publishers(lab: Lab, port: int, proto: str) -> tuple[str, tuple[str, ...]] | None:
    """(service, the nodes running its tasks) when ``proto/port`` is published in host mode."""
    for svc in lab.services:
        if any(p.published == port and p.protocol == proto for p in svc.host_ports):
            nodes = tuple(dict.fromkeys(t.node for t in lab.tasks_of(svc.name)))
            return svc.name, nodes
    return None


def _namespaces(lab: Lab, plan: Plan, node: str, sender: str,
                service: Service | None, host_task: Task | None = None) -> list[str]:
    """Targets the request may cross, as plan targets, without duplicates."""
    targets = [sender]
    targets += [t.node for t in lab.tasks if t.name == sender]   # a task sends via its node
    if host_task is not None:
        targets += ["lan", node, host_task.name]
    else:
        targets += ["lan", node, f"{node}/ingress_sbox", f"{node}/ov-ingress"]
    if service is not None and host_task is None:
        for task in lab.tasks:
            if task.service == service.name:
                targets += [task.node, f"{task.node}/ov-ingress", task.name]
    by_target = {ns.target: ns.name for ns in plan.netns}
    seen: list[str] = []
    for t in targets:
        name = by_target.get(t)
        if name is not None and name not in seen:
            seen.append(name)
    return seen


def trace_path(lab: Lab, plan: Plan, node: str, port: int, proto: str,
               sender: str = "client") -> TracePath:
    """The capture points for a request from ``sender`` to ``node``'s ``proto/port``."""
    found = publisher(lab, port, proto)
    service, published = found if found else (None, None)
    host = host_publisher(lab, node, port, proto) if found is None else None
    host_task = None
    if host is not None:
        service, published, host_task = host
    names = _namespaces(lab, plan, node, sender, service, host_task)
    return TracePath(service, published, tuple(names), points_of(plan, names))


def points_of(plan: Plan, names: list[str]) -> tuple[CapturePoint, ...]:
    """Every interface of the namespaces ``names`` (kernel names) as capture points."""
    info = {ns.name: ns for ns in plan.netns}
    ifaces: dict[str, list[str]] = {n: [] for n in names}
    for veth in plan.veths:
        for end in (veth.a, veth.b):
            if end.netns in ifaces:
                ifaces[end.netns].append(end.name)
    for vx in plan.vxlans:
        if vx.netns in ifaces:
            ifaces[vx.netns].append(vx.name)
    points = []
    for name in names:
        ns = info[name]
        owner = ns.node or ns.target
        for iface in sorted(ifaces[name]):
            points.append(CapturePoint(name, ns.target, owner, ns.role, iface))
    return tuple(points)
