"""The lab as typed, frozen data: what a scenario file says, after validation.

Names follow Swarm's own vocabulary: a *node* runs *tasks* of a *service*; a
service *publishes* ports on the *ingress* network; each node has a
``docker_gwbridge`` and an ``ingress_sbox``. Nothing here touches the kernel
or allocates addresses (see :mod:`netlab.ipam`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal

# What the task app can serve; Swarm also knows sctp (refused by the scenario reader).
Protocol = Literal["tcp", "udp"]
PublishMode = Literal["ingress", "host"]
NodeRole = Literal["manager", "worker"]
Availability = Literal["active", "pause", "drain"]


@dataclass(frozen=True)
class PublishedPort:
    """One ``--publish published:target/protocol`` of a service."""

    published: int
    target: int
    protocol: Protocol = "tcp"
    mode: PublishMode = "ingress"


@dataclass(frozen=True)
class Constraint:
    """A placement constraint such as ``node.role==manager``.

    ``key`` is ``node.role`` or ``node.hostname``; ``equal`` is False for ``!=``.
    """

    key: str
    value: str
    equal: bool = True

    def matches(self, node: Node) -> bool:
        """True when ``node`` satisfies this constraint."""
        actual = node.role if self.key == "node.role" else node.name
        return (actual == self.value) == self.equal

    def __str__(self) -> str:
        return f"{self.key}{'==' if self.equal else '!='}{self.value}"


@dataclass(frozen=True)
class Node:
    """A simulated Swarm node (one host network namespace)."""

    name: str
    role: NodeRole = "worker"
    availability: Availability = "active"


@dataclass(frozen=True)
class Service:
    """A replicated Swarm service."""

    name: str
    replicas: int
    ports: tuple[PublishedPort, ...] = ()
    constraints: tuple[Constraint, ...] = ()

    @property
    def ingress_ports(self) -> tuple[PublishedPort, ...]:
        """The ports published through the routing mesh."""
        return tuple(p for p in self.ports if p.mode == "ingress")

    @property
    def host_ports(self) -> tuple[PublishedPort, ...]:
        """The ports published in host mode: only on the nodes that run a task."""
        return tuple(p for p in self.ports if p.mode == "host")


@dataclass(frozen=True)
class Task:
    """One slot of a service placed on a node: ``<service>.<slot>``."""

    service: str
    slot: int
    node: str

    @property
    def name(self) -> str:
        return f"{self.service}.{self.slot}"


# Swarm's task states (swarmkit api.TaskState), in their order of life.
TaskState = Literal["new", "pending", "assigned", "accepted", "preparing", "starting", "running",
                    "complete", "shutdown", "failed", "rejected", "remove", "orphaned"]


@dataclass(frozen=True)
class TaskRecord:
    """A task as the orchestrator tracks it: ``<service>.<slot>`` on a node, in a state.

    The state file holds the desired tasks (what the orchestrator wants, with
    the state it wants them in) and the actual ones (what runs).
    """

    service: str
    slot: int
    node: str
    state: TaskState = "running"

    @property
    def name(self) -> str:
        return f"{self.service}.{self.slot}"


@dataclass(frozen=True)
class IngressNetwork:
    """The ``ingress`` overlay network (``docker network create --ingress``)."""

    subnet: ipaddress.IPv4Network = ipaddress.IPv4Network("10.0.0.0/24")
    vni: int = 4096
    mtu: int = 1450
    name: str = "ingress"

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The ``.1`` address that IPAM reserves; it sits on ``br0``."""
        return self.subnet.network_address + 1


@dataclass(frozen=True)
class Underlay:
    """The physical side: the LAN between nodes, the gwbridge, the VXLAN port."""

    lan: ipaddress.IPv4Network = ipaddress.IPv4Network("192.168.56.0/24")
    gwbridge: ipaddress.IPv4Network = ipaddress.IPv4Network("172.18.0.0/16")
    data_path_port: int = 4789
    lan_mtu: int = 1500


@dataclass(frozen=True)
class Lab:
    """A whole scenario: nodes, services, networks and the placed tasks."""

    name: str
    nodes: tuple[Node, ...]
    services: tuple[Service, ...]
    ingress: IngressNetwork = field(default_factory=IngressNetwork)
    underlay: Underlay = field(default_factory=Underlay)
    tasks: tuple[Task, ...] = ()
    iptables: str | None = None     # the scenario's default backend: auto, nft or legacy

    @cached_property
    def _index(self) -> tuple[dict[str, Node], dict[str, Service],
                              dict[str, tuple[Task, ...]], dict[str, tuple[Task, ...]]]:
        """Nodes and services by name, tasks by service and by node; built on first use."""
        of: dict[str, list[Task]] = {}
        on: dict[str, list[Task]] = {}
        for task in self.tasks:
            of.setdefault(task.service, []).append(task)
            on.setdefault(task.node, []).append(task)
        return ({n.name: n for n in reversed(self.nodes)},
                {s.name: s for s in reversed(self.services)},
                {k: tuple(v) for k, v in of.items()}, {k: tuple(v) for k, v in on.items()})

    def node(self, name: str) -> Node:
        """The node called ``name``; raises KeyError if there is none."""
        return self._index[0][name]

    def service(self, name: str) -> Service:
        """The service called ``name``; raises KeyError if there is none."""
        return self._index[1][name]

    def tasks_of(self, service: str) -> tuple[Task, ...]:
        """The tasks of ``service``, by slot (a lookup: labs have thousands of tasks)."""
        return self._index[2].get(service, ())

    def tasks_on(self, node: str) -> tuple[Task, ...]:
        """The tasks placed on ``node``, in placement order."""
        return self._index[3].get(node, ())


def eligible_nodes(service: Service, nodes: tuple[Node, ...]) -> tuple[Node, ...]:
    """Nodes that may run tasks of ``service``: active and meeting every constraint."""
    return tuple(
        n for n in nodes
        if n.availability == "active" and all(c.matches(n) for c in service.constraints)
    )


def place_tasks(nodes: tuple[Node, ...], services: tuple[Service, ...],
                previous: tuple[Task, ...] = ()) -> tuple[Task, ...]:
    """Place the tasks of ``services`` as Swarm's scheduler does, deterministically.

    A task in ``previous`` (same service and slot) stays on its node while
    that node is still there, not drained, and meets the service's
    constraints: Swarm never moves a running task to rebalance, and a
    paused node keeps its tasks (it only takes no new ones). Every other
    slot 1..replicas goes, service by service in order, to the eligible
    (active) node with the fewest
    tasks of this service, then the fewest tasks in all (the tasks that
    stay count), then the first in file order. With no ``previous`` tasks
    this is a fresh placement. Raises ValueError naming the service when a
    task must be placed and no node may run it.
    """
    stays: dict[tuple[str, int], str] = {}
    wanted = {s.name: s for s in services}
    eligible_of = {s.name: eligible_nodes(s, nodes) for s in services}
    by_name = {n.name: n for n in nodes}
    for task in previous:
        service, node = wanted.get(task.service), by_name.get(task.node)
        if (service is not None and node is not None and 1 <= task.slot <= service.replicas
                and node.availability != "drain"
                and all(c.matches(node) for c in service.constraints)):
            stays[(task.service, task.slot)] = task.node
    total: dict[str, int] = {n.name: 0 for n in nodes}
    held: dict[str, set[tuple[int, str]]] = {n.name: set() for n in nodes}   # host-mode ports
    host_ports = {s.name: {(p.published, p.protocol) for p in s.host_ports} for s in services}
    for (name, _slot), node in stays.items():
        total[node] += 1
        held[node] |= host_ports[name]
    tasks: list[Task] = []
    for service in services:
        eligible = eligible_of[service.name]
        mine: dict[str, int] = {n.name: 0 for n in eligible}
        for slot in range(1, service.replicas + 1):
            if (node := stays.get((service.name, slot))) in mine:   # not on a paused node
                mine[node] += 1
        order = {n.name: i for i, n in enumerate(eligible)}
        for slot in range(1, service.replicas + 1):
            node = stays.get((service.name, slot))
            if node is None:
                free = [n for n in mine if not held[n] & host_ports[service.name]]
                if not free:
                    raise ValueError(service.name)
                node = min(free, key=lambda n: (mine[n], total[n], order[n]))
                mine[node] += 1
                total[node] += 1
                held[node] |= host_ports[service.name]
            tasks.append(Task(service.name, slot, node))
    return tuple(tasks)


def reschedule(lab: Lab, previous: tuple[Task, ...]) -> Lab:
    """``lab`` with its tasks placed after ``previous`` (see :func:`place_tasks`):
    what a change to a running lab leads to. Raises ValueError as place_tasks."""
    return replace(lab, tasks=place_tasks(lab.nodes, lab.services, previous))
