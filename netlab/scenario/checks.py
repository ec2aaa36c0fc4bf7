"""Checks that span sections: port clashes, placement, subnets, sizes, scale, MTU.

Each check reads already-typed parts (with their positions) and records one
issue per problem. Sizes follow :mod:`netlab.ipam` exactly, so a scenario
that passes here is one ``ipam.allocate`` can address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import replace

from netlab.ipam import LAN_NODE_OFFSET
from netlab.model import Lab, Node, Task, eligible_nodes, place_tasks
from netlab.plan import size
from netlab.scenario.issues import IssueLog, field
from netlab.scenario.networks import NetworksRead, SubnetSpec
from netlab.scenario.overlays import NetworkSpec
from netlab.scenario.ports import PortSpec
from netlab.scenario.services import ServiceSpec
from netlab.scenario.yamltree import Pos

VXLAN_OVERHEAD = 50
RESERVED_RANGES = (
    (ipaddress.IPv4Network("0.0.0.0/8"), "'this network' (0.0.0.0/8)"),
    (ipaddress.IPv4Network("127.0.0.0/8"), "loopback (127.0.0.0/8)"),
    (ipaddress.IPv4Network("224.0.0.0/4"), "multicast (224.0.0.0/4)"),
    (ipaddress.IPv4Network("240.0.0.0/4"), "reserved space (240.0.0.0/4)"),
)
_DISJOINT_HINT = ("ingress.subnet, underlay.lan, underlay.gwbridge and the networks' subnets "
                  "must not overlap (defaults 10.0.0.0/24, 192.168.56.0/24, 172.18.0.0/16)")


def _free_above(used: set[int]) -> list[int | None]:
    """``free[p]``: the first port above ``p`` that ``used`` leaves free (None: none left)."""
    free: list[int | None] = [None] * 65536
    for port in range(65534, -1, -1):
        free[port] = port + 1 if port + 1 not in used else free[port + 1]
    return free


def _port_conflict(spec: PortSpec, other: PortSpec) -> bool:
    """True when ``spec`` may not publish what ``other`` (written earlier) publishes.

    As swarmkit's ``controlapi/service.go``: a service's own repeat is
    refused whatever the modes (``validateEndpointSpec``: "duplicate
    published ports provided"); another service's port is refused when
    either is in ingress mode (``checkPortConflicts``); two services in host
    mode may share it, "handled by the scheduler" (``HostPortFilter``: never
    two such tasks on one node; see :func:`check_host_ports`).
    """
    return (spec.service == other.service or spec.port.mode == "ingress"
            or other.port.mode == "ingress")


def check_published_ports(ports: Sequence[PortSpec], data_path_port: int, log: IssueLog) -> None:
    """Each published port/protocol once in the lab, and never the VXLAN UDP port.

    Another service's port is refused as swarmkit does (``port '5000' is
    already in use by service ...``); a service's own repeat as Docker's
    ``duplicate published ports``. Two services may publish one port in host
    mode (see :func:`_port_conflict`).
    """
    first: dict[tuple[int, str], list[PortSpec]] = {}
    free_by_protocol: dict[str, list[int | None]] = {}
    for spec in ports:
        port = spec.port
        key = (port.published, port.protocol)
        path = field(spec.path, "published")
        if port.protocol == "udp" and port.published == data_path_port:
            log.add(path, f"published port {port.published}/udp is the VXLAN data path port",
                    "the nodes' VXLAN traffic would be caught by the routing mesh; publish "
                    "another port or change underlay.data_path_port", spec.pos)
        earlier = first.setdefault(key, [])
        other = next((o for o in earlier if _port_conflict(spec, o)), None)
        earlier.append(spec)
        if other is None:
            continue
        if port.protocol not in free_by_protocol:
            free_by_protocol[port.protocol] = _free_above(
                {p.port.published for p in ports if p.port.protocol == port.protocol})
        free = free_by_protocol[port.protocol][port.published]
        free_hint = f", e.g. {free}" if free else ""
        proto = "" if port.protocol == "tcp" else f"/{port.protocol}"
        if other.service != spec.service:
            how = "an ingress port" if other.port.mode == "ingress" else "a host-published port"
            message = (f"port '{port.published}{proto}' is already in use by service "
                       f"'{other.service}' as {how} ({other.path}, line {other.pos.line})")
            hint = ("an ingress port is published on every node, so no other service may "
                    f"publish it; pick another{free_hint}")
        else:
            message = (f"published port {port.published}/{port.protocol} is already published by "
                       f"{other.path} (line {other.pos.line})")
            hint = ("a published port serves one service on the routing mesh; "
                    f"pick another{free_hint}")
        log.add(path, message, hint, spec.pos)


def check_host_ports(nodes: Sequence[Node], services: Sequence[ServiceSpec],
                     log: IssueLog) -> tuple[Task, ...] | None:
    """The placed tasks, or None after recording the service whose task no node can take.

    Call after :func:`check_placement` passed: then the only reason left is
    swarmkit's ``HostPortFilter``, which keeps two tasks publishing one port
    in host mode off the same node (Docker would leave the task pending with
    "host-mode port already in use on N nodes").
    """
    try:
        return place_tasks(tuple(nodes), tuple(s.service for s in services))
    except ValueError as err:
        name = str(err)
    spec = next(s for s in services if s.service.name == name)
    service = spec.service
    ports = ", ".join(f"{p.published}/{p.protocol}" for p in service.host_ports)
    sharing = [s.service for s in services if s.service.name != name and
               {(p.published, p.protocol) for p in s.service.host_ports}
               & {(p.published, p.protocol) for p in service.host_ports}]
    eligible = len(eligible_nodes(service, tuple(nodes)))
    others = (" (with " + ", ".join(f"{s.name} ({s.replicas})" for s in sharing) + ")"
              if sharing else "")
    path, pos = ((field(field(spec.path, "deploy"), "replicas"), spec.replicas_pos)
                 if spec.replicas_pos else (spec.path, spec.pos))
    log.add(path,
            f"no node can run every task: {service.replicas} tasks{others} publish {ports} in "
            f"host mode, one per node, and {eligible} node{'s' if eligible != 1 else ''} may "
            "run this service",
            "Docker would leave the task pending (host-mode port already in use); use fewer "
            "replicas, more nodes, or mode: ingress", pos)
    return None


def check_placement(nodes: Sequence[Node], services: Sequence[ServiceSpec], log: IssueLog) -> bool:
    """Every service with replicas has an active node meeting its constraints.

    Returns True when all services can be placed.
    """
    ok = True
    roster = ", ".join(f"{n.name} ({n.role}, {n.availability})" for n in nodes)
    for spec in services:
        service = spec.service
        if service.replicas == 0:
            continue
        matching = [n for n in nodes if all(c.matches(n) for c in service.constraints)]
        if any(n.availability == "active" for n in matching):
            continue
        ok = False
        listed = ", ".join(str(c) for c in service.constraints)
        if service.constraints:
            path = field(field(field(spec.path, "deploy"), "placement"), "constraints")
            pos: Pos | None = spec.constraints_pos
        elif spec.replicas_pos:
            path, pos = field(field(spec.path, "deploy"), "replicas"), spec.replicas_pos
        else:
            path, pos = spec.path, spec.pos
        if not matching:
            message = f"no node can run this service: no node matches {listed}"
            hint = f"the nodes are {roster}; Docker would leave the tasks pending (no suitable node)"
        elif service.constraints:
            names = ", ".join(n.name for n in matching)
            message = (f"no node can run this service: the nodes matching {listed} "
                       f"({names}) are drained or paused")
            hint = "set availability: active on one of them, or change the constraints"
        else:
            message = "no node can run this service: every node is drained or paused"
            hint = "set availability: active on a node, or set replicas: 0"
        log.add(path, message, hint, pos)
    return ok


def check_subnets(subnets: Sequence[SubnetSpec], log: IssueLog) -> None:
    """The ingress, lan and gwbridge subnets are disjoint and not special ranges."""
    for spec in subnets:
        if spec.pos is None:
            continue
        for reserved, name in RESERVED_RANGES:
            if spec.network.overlaps(reserved):
                log.add(spec.path, f"{spec.label} {spec.network} overlaps {name}",
                        "use private space such as 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16",
                        spec.pos)
    for i, a in enumerate(subnets):
        for b in subnets[i + 1:]:
            if not a.network.overlaps(b.network) or (a.pos is None and b.pos is None):
                continue
            here, other = _blame(a, b)
            default = " (the default)" if other.pos is None else ""
            log.add(here.path,
                    f"{here.label} {here.network} overlaps the {other.label} {other.network}{default}",
                    _DISJOINT_HINT, here.pos)


def _blame(a: SubnetSpec, b: SubnetSpec) -> tuple[SubnetSpec, SubnetSpec]:
    """(the one to report at, the other): the one the user wrote, the later if both."""
    if a.pos is None:
        return b, a
    if b.pos is None:
        return a, b
    return (b, a) if (b.pos.line, b.pos.column) > (a.pos.line, a.pos.column) else (a, b)


def _hosts(network: ipaddress.IPv4Network) -> int:
    return max(network.num_addresses - 2, 0)


def _fits(network: ipaddress.IPv4Network, need: int) -> ipaddress.IPv4Network:
    prefix = network.prefixlen
    while prefix > 0 and (1 << (32 - prefix)) - 2 < need:
        prefix -= 1
    return ipaddress.IPv4Network((network.network_address, prefix), strict=False)


def _too_small(log: IssueLog, spec: SubnetSpec, need: int, why: str) -> None:
    default = " (the default)" if spec.pos is None else ""
    log.add(spec.path,
            f"{spec.label} {spec.network}{default} has {_hosts(spec.network)} usable addresses "
            f"but this scenario needs {need}: {why}",
            f"use a larger subnet, e.g. {_fits(spec.network, need)}", spec.pos)


def check_sizes(net: NetworksRead, nodes: int, services: Sequence[ServiceSpec],
                tasks: Sequence[Task] | None, log: IssueLog) -> None:
    """Each subnet holds what :func:`netlab.ipam.allocate` will take from it.

    ingress: 1 gateway + 1 sandbox per node + 1 VIP per service + 1 per task;
    lan: nodes from host ``LAN_NODE_OFFSET`` on; gwbridge: 2 + the most tasks
    on one node (checked only when ``tasks`` is known).
    """
    by_path = {s.path: s for s in net.subnets}
    vips = sum(1 for s in services if s.service.ingress_ports)
    replicas = sum(s.service.replicas for s in services)
    if (spec := by_path.get("ingress.subnet")) is not None:
        need = 1 + nodes + vips + replicas
        if _hosts(spec.network) < need:
            _too_small(log, spec, need,
                       f"1 gateway + {nodes} ingress sandboxes + {vips} service VIPs + {replicas} tasks")
    if (spec := by_path.get("underlay.lan")) is not None:
        need = LAN_NODE_OFFSET + nodes
        if _hosts(spec.network) < need:
            _too_small(log, spec, need,
                       f"node addresses start at host {LAN_NODE_OFFSET} (the client is host 2) "
                       f"and there are {nodes} nodes")
    if (spec := by_path.get("underlay.gwbridge")) is not None and tasks:
        per_node: dict[str, int] = {}
        for task in tasks:
            per_node[task.node] = per_node.get(task.node, 0) + 1
        node, most = max(per_node.items(), key=lambda kv: kv[1])
        need = 2 + most
        if _hosts(spec.network) < need:
            _too_small(log, spec, need,
                       f"{node} holds 1 bridge address + 1 ingress sandbox + {most} tasks")


def plan_items(nodes: int, services: Sequence[ServiceSpec], networks: Sequence[str] = ()) -> int:
    """About how many items :func:`netlab.plan.build.build_plan` makes (a slight
    overestimate, never under): :func:`netlab.plan.size.estimate` of the specs."""
    return size.estimate(nodes, [s.service for s in services], networks).items


def check_scale(nodes: int, services: Sequence[ServiceSpec], networks: Sequence[str],
                log: IssueLog) -> bool:
    """The lab's plan stays under size.MAX_PLAN_ITEMS items and MAX_PLAN_RULES rules, so
    planning it cannot eat the
    machine; checked before any task is placed. Records one issue naming the
    section whose cut shrinks the plan most (nodes, services or networks) and
    returns False when it does not fit."""
    models = [s.service for s in services]
    found = size.estimate(nodes, models, networks)
    if found.fits:
        return True
    # Which section to name: the one whose reduction to its least shrinks the plan most.
    cuts = {"nodes": size.estimate(1, models, networks),
            "services": size.estimate(nodes, [replace(m, replicas=min(m.replicas, 1), ports=())
                                              for m in models], networks),
            "networks": size.estimate(nodes, [replace(m, networks=()) for m in models], ())}
    path = min(cuts, key=lambda k: cuts[k].share)
    tasks = sum(m.replicas for m in models)
    ports = sum(len(m.ports) for m in models)
    log.add(path, size.too_big(found),
            f"every node holds a neighbour and FDB entry per node and per task, rules per "
            f"published port and two namespaces per network on each node that has a task on it: "
            f"use fewer (now {nodes} nodes, "
            f"{tasks} tasks, {ports} published ports, {len(networks)} networks)",
            None)
    return False


def check_mtu(net: NetworksRead, log: IssueLog) -> None:
    """The ingress MTU plus VXLAN's 50 bytes fits in the LAN's MTU."""
    mtu, lan_mtu = net.ingress.mtu, net.underlay.lan_mtu
    if mtu <= lan_mtu - VXLAN_OVERHEAD:
        return
    if net.mtu_pos is not None or net.lan_mtu_pos is None:
        path, pos = "ingress.mtu", net.mtu_pos
    else:
        path, pos = "underlay.lan_mtu", net.lan_mtu_pos
    log.add(path,
            f"ingress mtu {mtu} does not fit the lan MTU {lan_mtu} once VXLAN adds its "
            f"{VXLAN_OVERHEAD} bytes",
            f"set ingress.mtu to at most {lan_mtu - VXLAN_OVERHEAD} (VXLAN wraps each frame in "
            "inner Ethernet 14 + VXLAN 8 + UDP 8 + outer IPv4 20 bytes)", pos)


def check_network_sizes(lab: Lab, specs: Sequence[NetworkSpec], log: IssueLog) -> None:
    """Each user network's subnet holds what :func:`netlab.ipam.allocate` takes from it:
    1 gateway + 1 LB endpoint per node + 1 VIP per vip-mode service + 1 per task."""
    pos = {s.name: s.subnet_pos for s in specs}
    for net in lab.networks:
        services = lab.services_on(net.name)
        vips = sum(1 for s in services if s.endpoint_mode == "vip")
        tasks = sum(s.replicas for s in services)
        need = 1 + len(lab.nodes) + vips + tasks
        if _hosts(net.subnet) < need:
            spec = SubnetSpec(f"network {net.name} subnet",
                              f"networks.{net.name}.ipam.config[0].subnet", net.subnet,
                              pos.get(net.name))
            _too_small(log, spec, need, f"1 gateway + {len(lab.nodes)} load balancers + "
                       f"{vips} service VIPs + {tasks} tasks")
