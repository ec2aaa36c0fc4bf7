"""A real Swarm node read into typed data: nodes, networks, services, tasks, sandboxes.

:func:`read_snapshot` asks the Engine (a ``docker.APIClient``, or a fake
fed recorded JSON) for what a manager knows, and lists this node's network
namespaces under ``/var/run/docker/netns``. Real ids are mapped to the names
a netlab scenario and plan use:

- a node is named by its hostname made a valid netlab node name
  (:func:`scenario_names`);
- a task is ``<service>.<slot>`` (a global service's: ``<service>.<node>``);
- a namespace gets the plan target it plays (:mod:`netlab.plan.names`):
  ``ingress_sbox`` is ``<node>/ingress_sbox``, ``1-<network id[:10]>`` the
  overlay ``<node>/ov-<network>``, ``lb_<network id[:9]>`` the load balancer
  sandbox ``<node>/lb-<network>``, a task container's ``SandboxKey`` the
  task; the node's own namespace (``/proc/1/ns/net``) is ``<node>``.

Nothing here changes anything; the only machine access besides the client is
the directory listing, which callers may replace.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from netlab.docker.connect import EngineClient, swarm_info
from netlab.errors import MissingFeature
from netlab.scenario.names import NODE, name_problem

DOCKER_NETNS = "/var/run/docker/netns"
HOST_NETNS = "/proc/1/ns/net"
VXLAN_OPTION = "com.docker.network.driver.overlay.vxlanid_list"
MTU_OPTION = "com.docker.network.driver.mtu"
TASK_ID_LABEL = "com.docker.swarm.task.id"
TASK_NAME_LABEL = "com.docker.swarm.task.name"


@dataclass(frozen=True)
class RealNode:
    """A Swarm node; ``name`` is its scenario name, ``addr`` its ``Status.Addr``."""

    id: str
    hostname: str
    name: str
    role: str                 # manager | worker
    addr: str
    availability: str         # active | pause | drain
    state: str                # ready | down | unknown | disconnected


@dataclass(frozen=True)
class RealNetwork:
    """A network of the Engine; ``vni`` is its VXLAN id (overlay networks only)."""

    id: str
    name: str
    driver: str
    scope: str
    subnet: str | None
    gateway: str | None
    vni: int | None
    ingress: bool
    mtu: int | None = None    # com.docker.network.driver.mtu, when set

    @property
    def overlay(self) -> bool:
        """True for a Swarm overlay network (the ingress one included)."""
        return self.driver == "overlay" and self.scope == "swarm"


@dataclass(frozen=True)
class RealPort:
    """A published port of a service (``Endpoint.Ports``)."""

    published: int
    target: int
    protocol: str             # tcp | udp | sctp
    mode: str                 # ingress | host


@dataclass(frozen=True)
class RealService:
    """A service: ``networks`` are the user networks it is attached to (by name,
    in attach order; ingress is implied by an ingress port); ``vips`` maps a
    network's name to the service's VIP on it (``10.0.0.5/24``). ``image`` is
    ``ContainerSpec.Image`` (``""``: none), and ``restart``, ``healthcheck``,
    ``update`` and ``rollback`` are the Engine's ``TaskTemplate.RestartPolicy``,
    ``ContainerSpec.Healthcheck``, ``UpdateConfig`` and ``RollbackConfig`` as
    it answers them (durations in nanoseconds; None when the spec has none)."""

    id: str
    name: str
    mode: str                 # replicated | global
    replicas: int | None      # None for global
    endpoint_mode: str        # vip | dnsrr
    ports: tuple[RealPort, ...]
    networks: tuple[str, ...]
    vips: dict[str, str] = field(default_factory=dict)
    constraints: tuple[str, ...] = ()
    image: str = ""
    restart: dict[str, Any] | None = None
    healthcheck: dict[str, Any] | None = None
    update: dict[str, Any] | None = None
    rollback: dict[str, Any] | None = None


@dataclass(frozen=True)
class RealTask:
    """A running task: ``name`` is its scenario name, ``node`` its node's scenario
    name, ``addresses`` its address per network name (``10.0.0.7/24``)."""

    id: str
    service: str
    slot: int | None
    node: str
    state: str
    desired_state: str
    container_id: str | None
    addresses: dict[str, str]
    name: str


@dataclass(frozen=True)
class RealSandbox:
    """A network namespace of this node and the plan target it plays (``""``: none,
    e.g. a container that is not a task); ``what`` says what Docker made it for."""

    path: str
    target: str
    what: str


@dataclass(frozen=True)
class Snapshot:
    """What a manager knows of its Swarm, and this node's namespaces."""

    this_node: str
    nodes: tuple[RealNode, ...]
    networks: tuple[RealNetwork, ...]
    services: tuple[RealService, ...]
    tasks: tuple[RealTask, ...]
    sandboxes: tuple[RealSandbox, ...]
    cluster_id: str = ""

    def node(self, name: str) -> RealNode:
        """The node of scenario name ``name``; raises KeyError."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def network(self, name: str) -> RealNetwork:
        """The network called ``name``; raises KeyError."""
        for net in self.networks:
            if net.name == name:
                return net
        raise KeyError(name)

    def service(self, name: str) -> RealService:
        """The service called ``name``; raises KeyError."""
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(name)

    def sandbox(self, target: str) -> RealSandbox | None:
        """This node's namespace playing ``target``, or None."""
        return next((s for s in self.sandboxes if s.target == target), None)


def _shortened(host: str, position: int, taken: set[str]) -> str | None:
    """A valid node name for ``host`` that is not in ``taken``, or None.

    The hostname is made a label (lowercase, other characters ``-``; the first
    label of a dotted one first). One too long has its head cut and its tail
    kept, the part that tells hosts apart (``swarm-worker1`` -> ``swarm-wor1``:
    the trailing digits; else the last characters), so hosts that share a long
    prefix stay names a reader recognises. One that is taken or reserved gets
    its position as a suffix (``lan`` fourth: ``lan-4``).
    """
    limit = NODE.max_len
    labels = []
    for text in (host.split(".")[0], host):
        label = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")
        if label and label not in labels:
            labels.append(label)

    def keep(label: str, tail: str) -> list[str]:
        if not 0 < len(tail) < limit - 1:
            return []
        head = label[:len(label) - len(tail)]
        joined = head[:limit - len(tail)].rstrip("-") + tail
        dashed = f"{head[:limit - len(tail) - 1].rstrip('-')}-{tail}"
        return [dashed, joined] if head.endswith("-") else [joined, dashed]

    candidates: list[str] = []
    for label in labels:
        if len(label) > limit:
            digits = re.search(r"[0-9]+$", label)
            candidates += keep(label, digits.group()) if digits else []
        candidates.append(label[:limit].strip("-"))
    for label in labels:
        if len(label) > limit:
            candidates += [c for n in range(1, limit // 2)
                           for c in keep(label, label[-n:].lstrip("-"))]
    candidates += [f"{label[:limit - len(str(position)) - 1].rstrip('-')}-{position}"
                   for label in labels]
    return next((c for c in candidates
                 if c and c not in taken and name_problem(c, NODE) is None), None)


def scenario_names(hostnames: Iterable[str]) -> list[str]:
    """A valid, distinct netlab node name for each hostname, in order; stable (the
    names of the same hostnames are the same) and idempotent (names fed back in
    come back unchanged).

    A hostname that is a valid node name is kept (these are placed first, so a
    shortened name never takes a kept one); so is the first label of a dotted
    one when valid and free. Any other is shortened by :func:`_shortened`
    (head cut, distinguishing tail kept; taken or reserved: ``-<N>``, N its
    position from 1); when nothing fits, ``node<N>`` (the first free one).
    """
    hosts = list(hostnames)
    out: list[str | None] = [None] * len(hosts)
    taken: set[str] = set()
    for i, host in enumerate(hosts):
        if name_problem(host, NODE) is None and host not in taken:
            out[i] = host
            taken.add(host)
    for i, host in enumerate(hosts):
        first = host.split(".")[0]
        if out[i] is None and first != host and name_problem(first, NODE) is None \
                and first not in taken:
            out[i] = first
            taken.add(first)
    for i, host in enumerate(hosts):
        if out[i] is None:
            name = _shortened(host, i + 1, taken)
            n = i + 1
            while name is None:
                name = f"node{n}" if f"node{n}" not in taken else None
                n += 1
            out[i] = name
            taken.add(name)
    return [n for n in out if n is not None]


def _nodes(raw: list[dict[str, Any]]) -> tuple[RealNode, ...]:
    """Nodes in a stable order: managers first (the leader first), then by hostname."""
    def order(n: dict) -> tuple:
        role = (n.get("Spec") or {}).get("Role", "worker")
        leader = bool((n.get("ManagerStatus") or {}).get("Leader"))
        return (role != "manager", not leader, (n.get("Description") or {}).get("Hostname", ""),
                n.get("ID", ""))
    raw = sorted(raw, key=order)
    hosts = [(n.get("Description") or {}).get("Hostname", "") for n in raw]
    return tuple(
        RealNode(n["ID"], host, name, (n.get("Spec") or {}).get("Role", "worker"),
                 (n.get("Status") or {}).get("Addr", ""),
                 (n.get("Spec") or {}).get("Availability", "active"),
                 (n.get("Status") or {}).get("State", "unknown"))
        for n, host, name in zip(raw, hosts, scenario_names(hosts), strict=True))


def _int(text: object) -> int | None:
    try:
        return int(str(text).split(",")[0])
    except (TypeError, ValueError):
        return None


def _networks(raw: list[dict[str, Any]]) -> tuple[RealNetwork, ...]:
    out = []
    for n in raw:
        config = ((n.get("IPAM") or {}).get("Config") or [{}])
        first = config[0] if config else {}
        options = n.get("Options") or {}
        out.append(RealNetwork(
            n["Id"], n["Name"], n.get("Driver", ""), n.get("Scope", ""), first.get("Subnet"),
            first.get("Gateway"), _int(options.get(VXLAN_OPTION)) if VXLAN_OPTION in options else None,
            bool(n.get("Ingress")), _int(options.get(MTU_OPTION)) if MTU_OPTION in options else None))
    return tuple(sorted(out, key=lambda n: (not n.ingress, n.name)))


def _ports(svc: dict[str, Any]) -> tuple[RealPort, ...]:
    """``Endpoint.Ports`` (published ports Swarm assigned included), else the spec's."""
    raw = ((svc.get("Endpoint") or {}).get("Ports")
           or ((svc.get("Spec") or {}).get("EndpointSpec") or {}).get("Ports") or [])
    return tuple(RealPort(int(p.get("PublishedPort") or 0), int(p.get("TargetPort") or 0),
                          p.get("Protocol", "tcp"), p.get("PublishMode", "ingress"))
                 for p in raw)


def _object(value: Any) -> dict[str, Any] | None:
    """A JSON object of the Engine's answer, or None (absent, or not an object)."""
    return value if isinstance(value, dict) else None


def _services(raw: list[dict[str, Any]], net_names: dict[str, str]) -> tuple[RealService, ...]:
    out = []
    for s in raw:
        spec = s.get("Spec") or {}
        mode = spec.get("Mode") or {}
        template = spec.get("TaskTemplate") or {}
        attached = template.get("Networks") or spec.get("Networks") or []
        networks = tuple(net_names.get(a.get("Target", ""), a.get("Target", "")) for a in attached)
        vips = {net_names.get(v.get("NetworkID", ""), v.get("NetworkID", "")): v.get("Addr", "")
                for v in (s.get("Endpoint") or {}).get("VirtualIPs") or []}
        container = template.get("ContainerSpec") or {}
        out.append(RealService(
            s["ID"], spec.get("Name", s["ID"][:12]),
            "global" if "Global" in mode else "replicated",
            None if "Global" in mode else int((mode.get("Replicated") or {}).get("Replicas", 1)),
            (spec.get("EndpointSpec") or {}).get("Mode", "vip"), _ports(s),
            tuple(n for n in networks if n != "ingress"), vips,
            tuple((template.get("Placement") or {}).get("Constraints") or ()),
            str(container.get("Image") or ""), _object(template.get("RestartPolicy")),
            _object(container.get("Healthcheck")), _object(spec.get("UpdateConfig")),
            _object(spec.get("RollbackConfig"))))
    return tuple(sorted(out, key=lambda s: s.name))


def _tasks(raw: list[dict[str, Any]], services: dict[str, str], nodes: dict[str, str],
           net_names: dict[str, str]) -> tuple[RealTask, ...]:
    """The running tasks, by service and slot."""
    out = []
    for t in raw:
        status = t.get("Status") or {}
        if status.get("State") != "running":
            continue
        service = services.get(t.get("ServiceID", ""), t.get("ServiceID", "")[:12])
        node = nodes.get(t.get("NodeID", ""), t.get("NodeID", "")[:12])
        slot = t.get("Slot") or None
        addresses = {}
        for a in t.get("NetworksAttachments") or []:
            net = a.get("Network") or {}
            name = (net.get("Spec") or {}).get("Name") or net_names.get(net.get("ID", ""), "")
            if a.get("Addresses"):
                addresses[name] = a["Addresses"][0]
        container = (status.get("ContainerStatus") or {}).get("ContainerID") or None
        out.append(RealTask(t["ID"], service, slot, node, status.get("State", ""),
                            t.get("DesiredState", ""), container, addresses,
                            f"{service}.{slot}" if slot else f"{service}.{node}"))
    return tuple(sorted(out, key=lambda t: (t.service, t.slot or 0, t.node)))


def _sandboxes(client: EngineClient, this: str, networks: tuple[RealNetwork, ...],
               tasks: tuple[RealTask, ...], listing: list[str]) -> tuple[RealSandbox, ...]:
    """This node's namespaces and the targets they play (see the module docstring)."""
    by_file: dict[str, tuple[str, str]] = {
        "ingress_sbox": (f"{this}/ingress_sbox", "Docker's ingress sandbox")}
    for net in networks:
        if net.overlay:
            plan_name = "ingress" if net.ingress else net.name
            by_file[f"1-{net.id[:10]}"] = (f"{this}/ov-{plan_name}",
                                           f"overlay network {net.name} (id {net.id[:12]})")
            if not net.ingress:
                by_file[f"lb_{net.id[:9]}"] = (f"{this}/lb-{net.name}",
                                               f"load balancer of network {net.name} (id {net.id[:12]})")
    by_container = {t.container_id: t for t in tasks if t.container_id and t.node == this}
    for c in client.containers(filters={"label": TASK_ID_LABEL}):
        task = by_container.get(c["Id"])
        key = ((client.inspect_container(c["Id"]).get("NetworkSettings") or {})
               .get("SandboxKey") or "")
        if not key:
            continue
        label = (c.get("Labels") or {}).get(TASK_NAME_LABEL, "")
        by_file.setdefault(os.path.basename(key), (
            task.name if task else "",
            f"container {c['Id'][:12]} ({label or (c.get('Names') or ['?'])[0].lstrip('/')})"))
    out = [RealSandbox(HOST_NETNS, this, "the node's own network namespace")]
    for name in listing:
        target, what = by_file.get(name, ("", "not a namespace netlab models"))
        out.append(RealSandbox(os.path.join(DOCKER_NETNS, name), target, what))
    return tuple(out)


def list_docker_netns(directory: str = DOCKER_NETNS) -> list[str]:
    """The namespace files Docker keeps in ``directory``, sorted (none when it is absent)."""
    try:
        return sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []


def read_snapshot(client: EngineClient,
                  listdir: Callable[[], list[str]] = list_docker_netns,
                  manager: EngineClient | None = None) -> Snapshot:
    """The Swarm as a manager knows it, and this node's namespaces (``listdir``
    lists the files under /var/run/docker/netns).

    ``client`` is this node's Engine. On a manager it answers everything. A
    worker's Engine knows no nodes, services or tasks (only managers answer
    those calls): they are read from ``manager``, another Engine of the same
    Swarm that is a manager, while what is this node's stays local: its node
    id (``/info``), its local networks (docker_gwbridge), its task containers
    and their sandboxes. Raises MissingFeature (exit 3) when the Engine is in
    no Swarm, is a worker and no ``manager`` is given, or ``manager`` is no
    manager of the Swarm this node is in (see
    :func:`netlab.docker.connect.swarm_info`)."""
    info = swarm_info(client, cluster_wide=manager is None)
    swarm = info["Swarm"]
    cluster_client = client
    if not swarm.get("ControlAvailable") and manager is not None:
        cluster_client = manager
        swarm_info(manager, cluster_wide=True, field="--manager")
    nodes = _nodes(cluster_client.nodes())
    node_names = {n.id: n.name for n in nodes}
    if swarm["NodeID"] not in node_names:
        if cluster_client is not client:
            raise MissingFeature(f"--manager: the Swarm that Engine manages has no node "
                                 f"{swarm['NodeID'][:12]} (this one): a manager of another Swarm? "
                                 "(hint: --manager URL of a manager of this node's Swarm)")
        raise MissingFeature("--docker: this node is not among the Swarm's nodes; run on a manager "
                             "that is part of the Swarm")
    this = node_names[swarm["NodeID"]]
    raw_networks = cluster_client.networks()
    if cluster_client is not client:
        # The Swarm's networks from the manager, this node's own (docker_gwbridge, bridge) here.
        raw_networks = ([n for n in raw_networks if n.get("Scope") == "swarm"]
                        + [n for n in client.networks() if n.get("Scope") != "swarm"])
    networks = _networks(raw_networks)
    net_names = {n.id: n.name for n in networks}
    raw_services = cluster_client.services()
    services = _services(raw_services, net_names)
    tasks = _tasks(cluster_client.tasks(), {s["ID"]: (s.get("Spec") or {}).get("Name", s["ID"][:12])
                                            for s in raw_services}, node_names, net_names)
    sandboxes = _sandboxes(client, this, networks, tasks, listdir())
    cluster = ((swarm.get("Cluster") or {}).get("ID")) or ""
    if not cluster and cluster_client is not client:
        cluster = ((cluster_client.info().get("Swarm") or {}).get("Cluster") or {}).get("ID") or ""
    return Snapshot(this, nodes, networks, services, tasks, sandboxes, cluster)
