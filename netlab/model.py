"""The lab as typed, frozen data: what a scenario file says, after validation.

Names follow Swarm's own vocabulary: a *node* runs *tasks* of a *service*; a
service *publishes* ports on the *ingress* network; each node has a
``docker_gwbridge`` and an ``ingress_sbox``. Nothing here touches the kernel
or allocates addresses (see :mod:`netlab.ipam`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal

# What the task app can serve; Swarm also knows sctp (refused by the scenario reader).
Protocol = Literal["tcp", "udp"]
PublishMode = Literal["ingress", "host"]
NodeRole = Literal["manager", "worker"]
Availability = Literal["active", "pause", "drain"]
NodeState = Literal["ready", "down"]      # swarmkit's NodeStatus.State, as netlab models it
EndpointMode = Literal["vip", "dnsrr"]
RestartCondition = Literal["none", "on-failure", "any"]
FailureAction = Literal["pause", "continue", "rollback"]
UpdateOrder = Literal["stop-first", "start-first"]

#: What a service without ``image:`` runs: netlab's own task app (its HTTP echo).
DEFAULT_IMAGE = "netlab/app:latest"
#: The longest image reference netlab takes (Docker's own limit is 255 for the name).
IMAGE_MAX = 255
# docker/distribution's reference grammar for a tag (reference/regexp.go): [\w][\w.-]{0,127}
_IMAGE_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
#: The longest duration a scenario or state file may hold, in seconds (a year).
DURATION_MAX = 365 * 86400.0
#: The largest count (parallelism, max_attempts, retries), as an int32.
COUNT_MAX = (1 << 31) - 1


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
class RestartPolicy:
    """``deploy.restart_policy``: when and how often a task that ended is replaced.

    Defaults are Swarm's (swarmkit ``api/defaults/service.go``, ``Service.Task.Restart``:
    condition any, delay 5s; ``InterpolateService`` fills a missing delay with it),
    not the compose spec's prose (delay 0): a stack deployed without one restarts
    after 5 s. ``max_attempts`` 0 is unlimited, ``window`` 0 unbounded (swarmkit
    ``manager/orchestrator/restart/restart.go``, ``shouldRestart``).
    """

    condition: RestartCondition = "any"
    delay: float = 5.0          # seconds
    max_attempts: int = 0       # 0: unlimited
    window: float = 0.0         # seconds; 0: unbounded


@dataclass(frozen=True)
class HealthCheck:
    """A service's ``healthcheck:``, as the HTTP GET netlab makes for it.

    ``test`` is as written, in list form (a string test is ``("CMD-SHELL", text)``);
    netlab does not run it but makes the request it would make, from inside the
    task's network namespace: ``GET http://127.0.0.1:<port><path>``. Defaults are
    the Engine's (moby ``daemon/health.go``: ``defaultProbeInterval`` 30s,
    ``defaultProbeTimeout`` 30s, ``defaultProbeRetries`` 3, ``defaultStartPeriod`` 0).
    """

    test: tuple[str, ...]       # as written, in list form (CMD-SHELL form for a string)
    port: int                   # the URL's port
    path: str                   # the URL's path, e.g. "/health"
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0


@dataclass(frozen=True)
class UpdateConfig:
    """``deploy.update_config`` or ``deploy.rollback_config``: how tasks are replaced.

    Defaults are swarmkit's (``api/defaults/service.go``, ``Service.Update`` and
    ``Service.Rollback``: parallelism 1, failure action pause, monitor 5s, order
    stop-first), which the Docker CLI shows as its flags' defaults
    (``cli/command/service/opts.go``, ``buildServiceDefaultFlagMapping``).
    ``parallelism`` 0 replaces every task at once; ``rollback`` is no failure
    action of a rollback.
    """

    parallelism: int = 1
    delay: float = 0.0
    failure_action: FailureAction = "pause"
    monitor: float = 5.0
    max_failure_ratio: float = 0.0
    order: UpdateOrder = "stop-first"


@dataclass(frozen=True)
class Node:
    """A simulated Swarm node (one host network namespace).

    ``availability`` is what the operator sets (``docker node update
    --availability``); ``state`` is what the managers see: ``down`` when the
    node is cut off the LAN (``netlab node LAB NODE down``).
    """

    name: str
    role: NodeRole = "worker"
    availability: Availability = "active"
    state: NodeState = "ready"


def normalized_image(text: str) -> tuple[str | None, str]:
    """``text`` as ``NAME:TAG`` (``:latest`` added when there is no tag), or None and why
    it is not an image reference netlab reads."""
    if not text:
        return None, "the image is empty"
    if any(c.isspace() or not c.isprintable() for c in text):
        return None, f"image {text!r} holds whitespace or a control character"
    if len(text) > IMAGE_MAX:
        return None, f"image {text[:40]!r}… is longer than {IMAGE_MAX} characters"
    if "@" in text:
        return None, f"image {text!r} has a digest; netlab names images by tag"
    head, slash, last = text.rpartition("/")
    name, colon, tag = last.partition(":")
    if not name or (slash and not head) or head.endswith("/") or "//" in head:
        return None, f"image {text!r} has an empty name"
    if colon and not _IMAGE_TAG.fullmatch(tag):
        return None, f"image {text!r} has a bad tag {tag!r} (letters, digits, _ . -, up to 128)"
    return (text if colon else f"{text}:latest"), ""


def image_tag(image: str) -> str:
    """The tag of an image reference (``name[:tag][@digest]``), ``latest`` when none:
    a ``:`` before the last ``/`` is a registry's port, not a tag."""
    last = image.partition("@")[0].rsplit("/", 1)[-1]
    _name, sep, tag = last.partition(":")
    return tag if sep and tag else "latest"


@dataclass(frozen=True)
class Service:
    """A replicated Swarm service.

    ``image`` is what its tasks run (:data:`DEFAULT_IMAGE`, netlab's own task
    app, when the scenario names none); netlab's app answers in every case and
    reports the image and its tag (:attr:`version`).
    """

    name: str
    replicas: int
    ports: tuple[PublishedPort, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    networks: tuple[str, ...] = ()            # user overlay networks, in attach order
    endpoint_mode: EndpointMode = "vip"
    expose: tuple[int, ...] = ()              # tcp ports the app listens on besides targets
    image: str = DEFAULT_IMAGE                # without image: netlab's own task app
    env: tuple[tuple[str, str], ...] = ()     # (name, value), sorted by name
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    healthcheck: HealthCheck | None = None    # None: no check (none written, or disabled)
    update_config: UpdateConfig = field(default_factory=UpdateConfig)
    rollback_config: UpdateConfig = field(default_factory=UpdateConfig)

    @property
    def version(self) -> str:
        """The image's tag (``web:2`` -> ``2``), ``latest`` when it has none; a
        registry's port is no tag (``registry:5000/web`` -> ``latest``)."""
        return image_tag(self.image)

    @property
    def mode(self) -> str:
        """Swarm's service mode: always ``replicated`` here (global services are not
        modelled; ``netlab swarm export`` writes one as a replica per node and says so)."""
        return "replicated"

    @property
    def on_ingress(self) -> bool:
        """True when the tasks join the ingress network: the service publishes an
        ingress port, or it is on no user network (netlab's default, as before)."""
        return bool(self.ingress_ports) or not self.networks

    @property
    def attachments(self) -> tuple[str, ...]:
        """The networks a task joins, in libnetwork's join order: ``ingress`` first
        when it is on it, then the user networks (eth0, then eth2…; eth1 is
        docker_gwbridge)."""
        return (("ingress",) if self.on_ingress else ()) + self.networks

    @property
    def ingress_ports(self) -> tuple[PublishedPort, ...]:
        """The ports published through the routing mesh."""
        return tuple(p for p in self.ports if p.mode == "ingress")

    @property
    def host_ports(self) -> tuple[PublishedPort, ...]:
        """The ports published in host mode: only on the nodes that run a task."""
        return tuple(p for p in self.ports if p.mode == "host")


def task_name(service: str, slot: int, instance: int = 0) -> str:
    """``<service>.<slot>``; the second task of a slot (a start-first update starts the
    new one beside the old) is ``<service>.<slot>.<instance>``, as Docker names
    each task ``<service>.<slot>.<task id>``. A service name has no dot, so the
    first dot ends it."""
    return f"{service}.{slot}" if not instance else f"{service}.{slot}.{instance}"


def service_of_task(name: str) -> str:
    """The service of the task named ``name`` (see :func:`task_name`)."""
    return name.partition(".")[0]


@dataclass(frozen=True)
class Task:
    """One slot of a service placed on a node: ``<service>.<slot>`` (see :func:`task_name`)."""

    service: str
    slot: int
    node: str
    # The service's spec the task was made from (swarmkit copies it into each task):
    # a rolling update replaces the tasks whose image or env differ from the service's.
    image: str = DEFAULT_IMAGE
    env: tuple[tuple[str, str], ...] = ()
    # 0, or 1 for a task started beside its slot's other one (start-first), and its
    # successors until the next start-first: the two alternate.
    instance: int = 0

    @property
    def name(self) -> str:
        return task_name(self.service, self.slot, self.instance)

    def runs(self, service: Service) -> bool:
        """True when the task runs ``service``'s current spec (image and env)."""
        return self.image == service.image and self.env == service.env


def new_task(service: Service, slot: int, node: str) -> Task:
    """A new task of ``service``'s current spec in ``slot`` on ``node``."""
    return Task(service.name, slot, node, service.image, service.env)


# Swarm's task states (swarmkit api.TaskState), in their order of life.
TaskState = Literal["new", "pending", "assigned", "accepted", "preparing", "starting", "running",
                    "complete", "shutdown", "failed", "rejected", "remove", "orphaned"]


@dataclass(frozen=True)
class TaskRecord:
    """A task as the orchestrator tracks it: ``<service>.<slot>`` on a node, in a state.

    The state file holds the desired tasks (what the orchestrator wants, with
    the state it wants them in) and the actual ones (what runs). A task that
    a change shut down keeps, as swarmkit's task history does, the ingress
    address it had, when it ended (UTC, ISO 8601) and the change that ended
    it (``scale hello-a=1``, ``node node2 down``): what ``trace`` names when
    a request still reaches it.
    """

    service: str
    slot: int
    node: str
    state: TaskState = "running"
    address: str | None = None
    ended_at: str | None = None
    ended_by: str | None = None
    instance: int = 0

    @property
    def name(self) -> str:
        return task_name(self.service, self.slot, self.instance)


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
class OverlayNetwork:
    """A user overlay network (``docker network create -d overlay``, Compose ``networks:``).

    ``mtu`` is the interfaces' MTU: ``com.docker.network.driver.mtu`` minus
    VXLAN's 50 bytes (1450 by default). Its VXLAN id is allocated with the
    addresses (:mod:`netlab.ipam`), as swarmkit's ovmanager hands VNIs out.
    """

    name: str
    subnet: ipaddress.IPv4Network
    mtu: int = 1450

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
    networks: tuple[OverlayNetwork, ...] = ()   # user overlay networks, in file order
    time_scale: float | None = None  # the scenario's time_scale for the manager (None: 1)

    def network(self, name: str) -> OverlayNetwork:
        """The user network called ``name``; raises KeyError if there is none."""
        for net in self.networks:
            if net.name == name:
                return net
        raise KeyError(name)

    def services_on(self, network: str) -> tuple[Service, ...]:
        """The services attached to the user network ``network``, in file order."""
        return tuple(s for s in self.services if network in s.networks)

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
    """Nodes that may run tasks of ``service``: ready, active and meeting every constraint."""
    return tuple(
        n for n in nodes
        if n.availability == "active" and n.state == "ready"
        and all(c.matches(n) for c in service.constraints)
    )


def place_tasks(nodes: tuple[Node, ...], services: tuple[Service, ...],
                previous: tuple[Task, ...] = ()) -> tuple[Task, ...]:
    """Place the tasks of ``services`` as Swarm's scheduler does, deterministically.

    A task in ``previous`` (same service and slot) stays on its node while
    that node is still there, not drained, not down, and meets the service's
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
        service, on = wanted.get(task.service), by_name.get(task.node)
        if (service is not None and on is not None and 1 <= task.slot <= service.replicas
                and on.availability != "drain" and on.state != "down"
                and all(c.matches(on) for c in service.constraints)):
            stays[(task.service, task.slot)] = task.node
    total: dict[str, int] = {n.name: 0 for n in nodes}
    held: dict[str, set[tuple[int, str]]] = {n.name: set() for n in nodes}   # host-mode ports
    host_ports = {s.name: {(p.published, p.protocol) for p in s.host_ports} for s in services}
    for (name, _slot), kept_on in stays.items():
        total[kept_on] += 1
        held[kept_on] |= host_ports[name]
    tasks: list[Task] = []
    for service in services:
        eligible = eligible_of[service.name]
        mine: dict[str, int] = {n.name: 0 for n in eligible}
        for slot in range(1, service.replicas + 1):
            kept_on = stays.get((service.name, slot), "")
            if kept_on in mine:   # not on a paused node
                mine[kept_on] += 1
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
            tasks.append(new_task(service, slot, node))
    return tuple(tasks)


def reschedule(lab: Lab, previous: tuple[Task, ...]) -> Lab:
    """``lab`` with its tasks placed after ``previous`` (see :func:`place_tasks`):
    what a change to a running lab leads to. Raises ValueError as place_tasks."""
    return replace(lab, tasks=place_tasks(lab.nodes, lab.services, previous))


def _scale_down(tasks: tuple[Task, ...], replicas: int) -> tuple[Task, ...]:
    """The tasks of one service that stay when it is scaled down to ``replicas``.

    As swarmkit's replicated orchestrator (``manager/orchestrator/replicated/
    services.go``, ``reconcile``, case ``specifiedSlots < numSlots``):
    "Preferentially remove tasks on the nodes that have the most copies of
    this service, to leave a more balanced result." Each task gets an index
    counting it as the nth copy of the service on its node (1, 2, 3, …), the
    tasks are sorted by that index, the first ``replicas`` are kept and the
    rest go to ``deleteTasks``. swarmkit's sort is not stable and its slots
    come from a map, so ties there fall in no fixed order; here a tie
    removes the highest slot first, so the result is deterministic.
    """
    nth: dict[str, int] = {}
    indexed = []
    for task in sorted(tasks, key=lambda t: t.slot):
        nth[task.node] = nth.get(task.node, 0) + 1
        indexed.append((nth[task.node], task.slot, task))
    kept = {t.slot for _, _, t in sorted(indexed, key=lambda x: (x[0], x[1]))[:replicas]}
    return tuple(t for t in tasks if t.slot in kept)


def _free_slots(used: set[int], count: int) -> list[int]:
    """The ``count`` lowest slot numbers not in ``used``, as swarmkit's ``addTasks``
    ("Find a slot number that is missing a running task", from 1 up)."""
    out: list[int] = []
    slot = 0
    while len(out) < count:
        slot += 1
        if slot not in used:
            out.append(slot)
    return out


def scale(lab: Lab, replicas: dict[str, int]) -> Lab:
    """``lab`` with each named service scaled to its number of replicas, as
    ``docker service scale`` does on a running swarm.

    Tasks that stay keep their slot and node. Scaling down removes tasks as
    swarmkit does (:func:`_scale_down`); scaling up adds tasks in the lowest
    free slots (:func:`_free_slots`), each on the eligible (active) node with
    the fewest tasks of the service, then the fewest tasks in all, then the
    first in node order (the rule of :func:`place_tasks`). Slots may thus
    have gaps after a scale-down, as in Swarm. Raises KeyError for a service
    the lab does not have, ValueError naming the service when a task must be
    placed and no node may run it.
    """
    for name in replicas:
        lab.service(name)
    services = tuple(replace(s, replicas=replicas[s.name]) if s.name in replicas else s
                     for s in lab.services)
    total: dict[str, int] = {n.name: 0 for n in lab.nodes}
    kept: dict[str, tuple[Task, ...]] = {}
    for service in services:
        mine = lab.tasks_of(service.name)
        kept[service.name] = (_scale_down(mine, service.replicas)
                              if len(mine) > service.replicas else mine)
        for task in kept[service.name]:
            total[task.node] += 1
    tasks: list[Task] = []
    for service in services:
        mine = kept[service.name]
        free = _free_slots({t.slot for t in mine}, service.replicas - len(mine))
        tasks += _place(service, mine, free, lab.nodes, total)
    return replace(lab, services=services, tasks=tuple(tasks))


def _place(service: Service, kept: tuple[Task, ...], slots: list[int], nodes: tuple[Node, ...],
           total: dict[str, int]) -> list[Task]:
    """``kept`` and a new task of ``service`` in each of ``slots``, by slot; each new one
    on the eligible node with the fewest tasks of the service, then the fewest in all
    (``total``, updated), then the first in node order. Raises ValueError naming the
    service when there are slots and no eligible node."""
    mine = list(kept)
    if slots:
        eligible = eligible_nodes(service, nodes)
        if not eligible:
            raise ValueError(service.name)
        count = {n.name: 0 for n in eligible}
        for task in mine:
            if task.node in count:
                count[task.node] += 1
        order = {n.name: i for i, n in enumerate(eligible)}
        for slot in slots:
            node = min(count, key=lambda n: (count[n], total[n], order[n]))
            count[node] += 1
            total[node] += 1
            mine.append(new_task(service, slot, node))
    return sorted(mine, key=lambda t: t.slot)


def restart_off(lab: Lab) -> Lab:
    """``lab`` with every task on a node that is down or drained, or that no longer
    meets its service's constraints, restarted elsewhere: a new task of the same slot,
    placed as :func:`_place` does; the others stay (a paused node keeps its tasks).

    As swarmkit's ``restartTasksByNodeID`` (replicated orchestrator, on a node
    drained or DOWN). Raises ValueError naming a service none of whose tasks
    may be placed.
    """
    by_name = {n.name: n for n in lab.nodes}

    def stays(task: Task) -> bool:
        n = by_name[task.node]
        return (n.availability != "drain" and n.state != "down"
                and all(c.matches(n) for c in lab.service(task.service).constraints))

    total = {n.name: 0 for n in lab.nodes}
    for task in lab.tasks:
        if stays(task):
            total[task.node] += 1
    tasks: list[Task] = []
    for service in lab.services:
        mine = lab.tasks_of(service.name)
        kept = tuple(t for t in mine if stays(t))
        moved = [t for t in mine if not stays(t)]
        placed = _place(service, kept, [t.slot for t in moved], lab.nodes, total)
        # A replacement keeps the instance of the task it replaces (a slot may hold two
        # while a start-first update runs): names stay unique.
        instances = {t.slot: [m.instance for m in moved if m.slot == t.slot] for t in moved}
        tasks += [t if any(t is k for k in kept) else
                  replace(t, instance=instances[t.slot].pop(0)) for t in placed]
    return replace(lab, tasks=tuple(tasks))


def without_task(lab: Lab, task: str) -> Lab:
    """``lab`` without task ``task`` (its slot left empty, the service's replicas
    unchanged): a task that failed or completed, as swarmkit leaves its slot
    until the restart supervisor starts a replacement. Raises KeyError for a
    task the lab does not run."""
    if task not in {t.name for t in lab.tasks}:
        raise KeyError(task)
    return replace(lab, tasks=tuple(t for t in lab.tasks if t.name != task))


def beside(lab: Lab, service: str, slot: int) -> Lab:
    """``lab`` with a new task of ``service``'s current spec in ``slot`` beside the one
    there (start-first), of the other instance, placed as :func:`fill_slot` places
    one; ``lab`` itself when the slot is empty or holds two already. Raises
    KeyError for an unknown service, ValueError naming it when no node may run it."""
    svc = lab.service(service)
    mine = lab.tasks_of(service)
    there = [t for t in mine if t.slot == slot]
    if len(there) != 1:
        return lab
    total = {n.name: 0 for n in lab.nodes}
    for t in lab.tasks:
        total[t.node] += 1
    # Placed with the old one still counted on its node, as the scheduler sees it.
    placed = _place(svc, mine, [slot], lab.nodes, total)
    fresh = next(t for t in placed if not any(t is m for m in mine))
    task = replace(fresh, instance=1 - there[0].instance)
    order = {s.name: i for i, s in enumerate(lab.services)}
    tasks = tuple(sorted((*lab.tasks, task), key=lambda t: (order[t.service], t.slot, t.instance)))
    return replace(lab, tasks=tasks)


def fill_slot(lab: Lab, service: str, slot: int) -> Lab:
    """``lab`` with a new task of ``service`` in ``slot``, placed as a scale places one
    (:func:`_place`); ``lab`` itself when the slot is taken. Raises KeyError for an
    unknown service, ValueError naming it when no node may run the task."""
    svc = lab.service(service)
    mine = lab.tasks_of(service)
    if slot in {t.slot for t in mine}:
        return lab
    total = {n.name: 0 for n in lab.nodes}
    for t in lab.tasks:
        total[t.node] += 1
    placed = _place(svc, mine, [slot], lab.nodes, total)
    others = tuple(t for t in lab.tasks if t.service != service)
    order = {s.name: i for i, s in enumerate(lab.services)}
    tasks = tuple(sorted(others + tuple(placed), key=lambda t: (order[t.service], t.slot)))
    return replace(lab, tasks=tasks)
